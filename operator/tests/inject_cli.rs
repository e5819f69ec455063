//! `trellis inject` as a user runs it: real files, the real binary, what it prints and
//! whether Kubernetes tools read the result.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use trellis_e2e::require_tool;

const APP: &str = "\
# The shop's web front end.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      # Values YAML 1.1 would read as a boolean and a number: they must stay strings.
      labels: {app: web, canary: \"on\", version: \"1.10\"}
    spec:
      containers:
        - name: web
          image: ghcr.io/example/web:1.0
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: web        # the name clients use
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
";

/// The Service part of `APP`, as written.
fn service_text() -> &'static str {
    &APP[APP.find("apiVersion: v1").unwrap()..]
}

fn trellis(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("trellis runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every document of a YAML stream, as JSON.
fn documents(text: &str) -> Vec<Value> {
    trellis_operator::manifest::yaml::parse_stream(text)
        .documents
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .map(|items| items.iter().map(|c| c["name"].as_str().unwrap()).collect())
        .unwrap_or_default()
}

fn write(dir: &Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn a_deployment_is_injected_and_its_service_printed_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "app.yaml", APP);
    let out = trellis(&["inject", &file], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("# The shop's web front end.\n"), "{text}");
    assert!(
        text.ends_with(service_text()),
        "the Service is byte for byte:\n{text}"
    );

    let docs = documents(&text);
    assert_eq!(docs.len(), 2);
    let template = &docs[0]["spec"]["template"];
    assert_eq!(
        names(&template["spec"]["containers"]),
        ["trellis-proxy", "web"]
    );
    assert_eq!(names(&template["spec"]["initContainers"]), ["trellis-init"]);
    assert_eq!(
        names(&template["spec"]["volumes"]),
        ["trellis-identity", "trellis-xtables-lock"]
    );
    assert_eq!(
        template["metadata"]["annotations"]["trellis.dev/injected"],
        "0.1.0"
    );
    assert_eq!(template["metadata"]["labels"]["canary"], "on");
    assert_eq!(template["metadata"]["labels"]["version"], "1.10");
    assert_eq!(docs[0]["spec"]["replicas"], 2);

    assert_eq!(
        stderr(&out),
        format!(
            "{file}:2: Deployment/shop/web: injected (proxy container; inbound traffic goes to port 8080)\n\
             {file}:21: Service/shop/web: unchanged (not a workload)\n"
        )
    );
}

#[test]
fn stdin_in_native_sidecar_mode() {
    let out = trellis(&["inject", "--native-sidecars", "-"], Some(APP));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let docs = documents(&stdout(&out));
    let spec = &docs[0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["containers"]), ["web"]);
    assert_eq!(
        names(&spec["initContainers"]),
        ["trellis-init", "trellis-proxy"]
    );
    assert_eq!(spec["initContainers"][1]["restartPolicy"], "Always");
    assert!(stderr(&out).starts_with("(stdin):2: Deployment/shop/web: injected (native sidecar;"));
}

#[test]
fn the_config_file_sets_the_image_and_the_sidecar_mode() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "inject.yaml",
        "image: registry.local/proxy:dev\nsidecarMode: native\ntrustDomain: example.org\n",
    );
    let out = trellis(&["inject", "--config", &config, "-"], Some(APP));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let docs = documents(&stdout(&out));
    let proxy = &docs[0]["spec"]["template"]["spec"]["initContainers"][1];
    assert_eq!(proxy["image"], "registry.local/proxy:dev");
    assert_eq!(
        proxy["args"][5],
        "spiffe://example.org/ns/$(POD_NAMESPACE)/sa/$(POD_SERVICE_ACCOUNT)"
    );
}

#[test]
fn a_bad_config_is_a_usage_error_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), "inject.yaml", "image: x\nproxyUid: root\n");
    let out = trellis(&["inject", "--config", &config, "-"], Some(APP));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("error: {config}:2: proxyUid: invalid type: string \"root\", expected u32\n")
    );
    assert_eq!(stdout(&out), "");
}

#[test]
fn in_place_rewrites_changed_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let app = write(dir.path(), "k8s/app.yaml", APP);
    let service = write(dir.path(), "k8s/more/service.yml", service_text());
    let k8s = dir.path().join("k8s").display().to_string();
    let out = trellis(&["inject", "--in-place", &k8s], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).ends_with(&format!("wrote {app}\n")),
        "{}",
        stderr(&out)
    );
    assert_eq!(fs::read_to_string(&service).unwrap(), service_text());
    let once = fs::read_to_string(&app).unwrap();
    assert_eq!(
        names(&documents(&once)[0]["spec"]["template"]["spec"]["containers"]),
        ["trellis-proxy", "web"]
    );

    let again = trellis(&["inject", "--in-place", &k8s], None);
    assert_eq!(again.status.code(), Some(0));
    assert!(stderr(&again).contains("Deployment/shop/web: skipped: already injected"));
    assert!(!stderr(&again).contains("wrote"));
    assert_eq!(fs::read_to_string(&app).unwrap(), once);
}

#[test]
fn a_document_that_cannot_be_injected_fails_and_nothing_is_written() {
    let broken = APP.replace(
        "labels: {app: web,",
        "annotations: {trellis.dev/skip-inbound-ports: ssh}\n      labels: {app: web,",
    );
    let out = trellis(&["inject", "-"], Some(&broken));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "(stdin): document 1 (line 2): Deployment/shop/web: spec.template.metadata.annotations: \
         annotation trellis.dev/skip-inbound-ports: \"ssh\" is not a port (1-65535); write e.g. 25 or 8000-8100\n\
         error: nothing written; fix the documents above\n"
    );
    let out = trellis(&["inject", "--in-place", "-"], Some(APP));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --in-place cannot write back to stdin (-)\n"
    );
}

#[test]
fn the_output_is_valid_for_kubernetes_in_both_modes() {
    let Some(tool) = require_tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for mode in [&[][..], &["--native-sidecars"][..]] {
        let mut args = vec!["inject"];
        args.extend(mode);
        args.push("-");
        let out = trellis(&args, Some(APP));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let file = write(dir.path(), "injected.yaml", &stdout(&out));
        // Native sidecars (restartPolicy on an init container) exist from 1.29 on.
        for version in ["1.30.0", "1.34.0"] {
            let check = Command::new(&tool)
                .args(["--strict", "--kubernetes-version", version, &file])
                .output()
                .unwrap();
            let text = stdout(&check) + &stderr(&check);
            assert!(check.status.success(), "{mode:?} on {version}:\n{text}");
            assert_eq!(text.matches("passed").count(), 2, "{text}");
        }
    }
}

#[test]
fn kubectl_reads_the_output_as_written() {
    // kubectl (Go, YAML 1.1) parses offline with `patch --local`; not every machine has it.
    let Some(kubectl) = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
    else {
        eprintln!("SKIPPED: kubectl is not installed");
        return;
    };
    let out = trellis(&["inject", "-"], Some(APP));
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "injected.yaml", &stdout(&out));
    let read = Command::new(kubectl)
        .args([
            "patch",
            "--local",
            "--type=merge",
            "-p",
            "{}",
            "-o",
            "json",
            "-f",
            &file,
        ])
        .output()
        .unwrap();
    assert!(read.status.success(), "{}", stderr(&read));
    // One JSON object per document, as kubectl read them.
    let objects: Vec<Value> = serde_json::Deserializer::from_slice(&read.stdout)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(objects, documents(&stdout(&out)));
}

#[test]
fn help_shows_examples() {
    let out = trellis(&["inject", "--help"], None);
    let help = stdout(&out);
    assert!(
        help.contains("trellis inject deploy.yaml | kubectl apply -f -"),
        "{help}"
    );
    assert!(help.contains("--native-sidecars"));
    assert!(help.contains("--in-place"));
}
