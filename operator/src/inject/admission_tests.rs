//! The webhook as the API server sees it: AdmissionReview JSON in and out.

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::inject::fixtures::*;

const UID: &str = "705ab4f5-6393-11e8-b7cc-42010a800002";

/// The AdmissionReview the API server sends for `operation` on `object`.
fn request(operation: &str, object: Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Pod").to_owned();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": kind},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false,
        }
    })
}

fn answer(review_json: Value) -> Value {
    let out = review(review_json, &Config::default(), false);
    assert_eq!(out["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(out["kind"], "AdmissionReview");
    out["response"].clone()
}

/// The JSONPatch operations of a response.
fn ops(response: &Value) -> Vec<Value> {
    let b64 = response["patch"].as_str().expect("a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// RFC 6902 `add` (the only operation injection uses), written from the RFC, not from
/// the code under test: a member is added or replaced, an array item inserted at its
/// index or appended at `-`.
fn apply(doc: &mut Value, ops: &[Value]) {
    for op in ops {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        let mut tokens: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        let last = tokens.pop().unwrap();
        let mut target = &mut *doc;
        for t in &tokens {
            target = match target {
                Value::Array(items) => &mut items[t.parse::<usize>().unwrap()],
                other => other.get_mut(t).unwrap_or_else(|| panic!("{path}: no {t}")),
            };
        }
        let value = op["value"].clone();
        match target {
            Value::Array(items) if last == "-" => items.push(value),
            Value::Array(items) => {
                let i: usize = last.parse().unwrap();
                assert!(i <= items.len(), "{path}: index out of bounds");
                items.insert(i, value);
            }
            Value::Object(map) => {
                map.insert(last, value);
            }
            _ => panic!("{path}: parent is not a container"),
        }
    }
}

#[test]
fn a_pod_create_is_allowed_with_a_json_patch_and_the_uid_echoed() {
    let response = answer(request("CREATE", pod(WEB)));
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
}

#[test]
fn the_patch_applied_to_the_pod_gives_the_injected_pod() {
    for native in [false, true] {
        let out = review(request("CREATE", pod(WEB)), &Config::default(), native);
        let mut patched = pod(WEB);
        apply(&mut patched, &ops(&out["response"]));
        assert_eq!(
            typed(&patched),
            injected(&pod(WEB), &Config::default(), native)
        );
    }
}

#[test]
fn the_patch_only_adds_and_escapes_annotation_keys() {
    let annotated = web(|p| p["metadata"]["annotations"] = json!({"team": "shop"}));
    let ops = ops(&answer(request("CREATE", annotated)));
    let paths: Vec<&str> = ops.iter().map(|op| op["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/trellis.dev~1injected",
            "/spec/initContainers/-",
            "/spec/containers/0",
            "/spec/volumes/-",
            "/spec/volumes/-",
        ]
    );
    assert!(ops.iter().all(|op| op["op"] == "add"));
}

#[test]
fn kubectl_applies_the_patch_to_the_same_pod() {
    // kubectl's JSONPatch (evanphx/json-patch) as a second, independent reader; offline.
    let Some(kubectl) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
    else {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pod.json");
    std::fs::write(&file, pod(WEB).to_string()).unwrap();
    let out = review(request("CREATE", pod(WEB)), &Config::default(), true);
    let patch = Value::Array(ops(&out["response"])).to_string();
    let run = std::process::Command::new(kubectl)
        .args([
            "patch",
            "--local",
            "--type=json",
            "-o",
            "json",
            "-p",
            &patch,
            "-f",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let patched: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(
        typed(&patched),
        injected(&pod(WEB), &Config::default(), true)
    );
}

#[test]
fn skipped_pods_are_allowed_without_a_patch() {
    let opted_out = web(|p| p["metadata"]["labels"]["trellis.dev/inject"] = json!("disabled"));
    let host = web(|p| p["spec"]["hostNetwork"] = json!(true));
    let mut twice = pod(WEB);
    apply(&mut twice, &ops(&answer(request("CREATE", pod(WEB)))));
    for object in [opted_out, host, twice] {
        let response = answer(request("CREATE", object));
        assert_eq!(response["uid"], UID);
        assert_eq!(response["allowed"], true);
        assert_eq!(response.get("patch"), None);
        assert_eq!(response.get("patchType"), None);
    }
}

#[test]
fn other_operations_and_kinds_are_allowed_untouched() {
    let update = answer(request("UPDATE", pod(WEB)));
    assert_eq!(
        (update["allowed"].clone(), update.get("patch")),
        (json!(true), None)
    );
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]}});
    let other = answer(request("CREATE", service));
    assert_eq!(
        (other["allowed"].clone(), other.get("patch")),
        (json!(true), None)
    );
}

#[test]
fn a_pod_with_a_bad_annotation_is_denied_with_the_annotation_named() {
    let bad = web(|p| {
        p["metadata"].as_object_mut().unwrap().remove("name");
        p["metadata"]["generateName"] = json!("web-7d9f8-");
        p["metadata"]["annotations"] = json!({"trellis.dev/skip-outbound-ports": "smtp"});
    });
    let response = answer(request("CREATE", bad));
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        r#"trellis: cannot inject the proxy into pod shop/web-7d9f8-*: annotation trellis.dev/skip-outbound-ports: "smtp" is not a port (1-65535); write e.g. 25 or 8000-8100"#
    );
}

#[test]
fn a_body_that_is_not_a_review_is_invalid() {
    let response = answer(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}));
    assert_eq!(response["allowed"], false);
    assert!(
        response["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not an AdmissionReview")
    );
}
