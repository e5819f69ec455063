use std::path::PathBuf;

use serde_json::{Value, json};

use super::review;
use crate::lint;
use crate::manifest::{Document, Manifests, Object};

const UID: &str = "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4";

fn mk_split(api_version: &str, backends: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "TrafficSplit",
        "metadata": {"name": "web"},
        "spec": {"service": "web", "backends": backends},
    })
}

fn mk_review(operation: &str, object: Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = json!({"group": group, "version": version, "kind": object["kind"]});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": gvk,
            "resource": {"group": group, "version": version, "resource": "trafficsplits"},
            "name": object["metadata"]["name"],
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "dev@example.com", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": null,
            "dryRun": false
        }
    })
}

/// The response of a review of `object`, with its uid checked.
fn answer(operation: &str, object: Value) -> Value {
    let answer = review(mk_review(operation, object));
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], UID);
    answer["response"].clone()
}

/// What `trellis validate` prints for `object` in namespace `shop` (with its Services
/// present), without the `file:line: ` prefix and `warning: ` marker.
fn trellis_validate(object: Value) -> Vec<String> {
    let mk = |value: Value| Object {
        file: PathBuf::from("split.yaml"),
        doc: Document::detached(value, 1),
    };
    let service =
        |name: &str| mk(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}}));
    let manifests = Manifests {
        objects: vec![
            mk(object),
            service("web"),
            service("web-v1"),
            service("web-v2"),
        ],
        ..Manifests::default()
    };
    lint::lint(&manifests, "shop")
        .findings
        .iter()
        .map(|f| {
            f.to_string()
                .trim_start_matches("split.yaml:1: ")
                .replace(": warning: ", ": ")
        })
        .collect()
}

#[test]
fn a_valid_split_is_allowed_without_warnings() {
    let response = answer(
        "CREATE",
        mk_split(
            "split.smi-spec.io/v1alpha4",
            json!([{"service": "web-v1", "weight": 90}, {"service": "web-v2", "weight": 10}]),
        ),
    );
    assert_eq!(response["allowed"], true);
    assert_eq!(response.get("warnings"), None);
}

#[test]
fn a_split_that_sends_nothing_anywhere_is_allowed_with_the_warning() {
    let split = mk_split(
        "split.smi-spec.io/v1alpha4",
        json!([{"service": "web-v1", "weight": 0}]),
    );
    let response = answer("UPDATE", split.clone());
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"],
        json!([
            "TrafficSplit/shop/web: spec.backends: every backend has weight 0: requests to \"web\" get 503 until a weight is raised"
        ])
    );
    assert_eq!(response["warnings"], json!(trellis_validate(split)));
}

#[test]
fn a_negative_weight_is_denied_with_what_trellis_validate_prints() {
    let split = mk_split(
        "split.smi-spec.io/v1alpha4",
        json!([{"service": "web-v1", "weight": -1}, {"service": "web-v2", "weight": 10}]),
    );
    let response = answer("CREATE", split.clone());
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["status"], "Failure");
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(
        response["status"]["message"],
        "TrafficSplit/shop/web: spec.backends[0].weight: must be a whole number between 0 and 4294967295, got -1"
    );
    assert_eq!(
        response["status"]["message"],
        trellis_validate(split).join("; ")
    );
}

#[test]
fn every_error_is_listed() {
    let split = mk_split(
        "split.smi-spec.io/v1alpha4",
        json!([{"service": "Web_V1", "weight": 1.5}]),
    );
    let response = answer("CREATE", split.clone());
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert_eq!(
        message.matches("TrafficSplit/shop/web: ").count(),
        2,
        "{message}"
    );
    assert!(message.contains("spec.backends[0].service: \"Web_V1\" is not a valid Service name"));
    assert!(
        message
            .contains("; TrafficSplit/shop/web: spec.backends[0].weight: must be a whole number")
    );
}

#[test]
fn an_unserved_version_is_denied_with_the_served_ones() {
    let split = mk_split(
        "split.smi-spec.io/v1beta1",
        json!([{"service": "web-v1", "weight": 1}]),
    );
    let response = answer("CREATE", split.clone());
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "TrafficSplit/shop/web: apiVersion: split.smi-spec.io/v1beta1 does not serve TrafficSplit; \
         served versions: split.smi-spec.io/v1alpha4, split.smi-spec.io/v1alpha3, \
         split.smi-spec.io/v1alpha2, split.smi-spec.io/v1alpha1"
    );
    assert_eq!(
        response["status"]["message"],
        trellis_validate(split).join("; ")
    );
}

#[test]
fn an_older_version_is_checked_after_conversion() {
    let split = mk_split(
        "split.smi-spec.io/v1alpha1",
        json!([{"service": "web-v1", "weight": "-1"}]),
    );
    let response = answer("CREATE", split.clone());
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        trellis_validate(split).join("; ")
    );
}

#[test]
fn a_cluster_scoped_mesh_config_is_named_without_namespace() {
    let mut review_body = mk_review(
        "CREATE",
        json!({
            "apiVersion": "trellis.dev/v1alpha1",
            "kind": "MeshConfig",
            "metadata": {"name": "Default"},
            "spec": {}
        }),
    );
    review_body["request"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let response = review(review_body)["response"].clone();
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("MeshConfig/Default: metadata.name: \"Default\" is not a valid name"),
        "{message}"
    );
}

#[test]
fn deletes_and_status_updates_are_allowed_unread() {
    let broken = mk_split("split.smi-spec.io/v1beta1", json!([]));
    assert_eq!(answer("DELETE", broken.clone())["allowed"], true);
    let mut status_update = mk_review("UPDATE", broken);
    status_update["request"]["subResource"] = json!("status");
    assert_eq!(review(status_update)["response"]["allowed"], true);
}

#[test]
fn other_kinds_are_allowed() {
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "web"},
        "data": {}
    });
    assert_eq!(answer("CREATE", config_map)["allowed"], true);
}

#[test]
fn a_body_that_is_not_a_review_is_refused() {
    let answer = review(json!({"kind": "AdmissionReview"}));
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("not an AdmissionReview: "), "{message}");
}
