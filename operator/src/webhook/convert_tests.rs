use serde_json::{Value, json};

use super::review;

/// The metadata the API server sends: everything but labels and annotations must come
/// back exactly as sent.
fn mk_meta(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "shop",
        "uid": "7c1d7a0e-5f0b-4c55-9a43-0d5f0e3f6a11",
        "resourceVersion": "48213",
        "generation": 3,
        "creationTimestamp": "2025-01-02T03:04:05Z",
        "labels": {"app": "web"},
        "annotations": {"team": "checkout"},
        "managedFields": [{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "time": "2025-01-02T03:04:05Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {}}
        }]
    })
}

fn mk_status() -> Value {
    json!({
        "observedGeneration": 3,
        "conditions": [{
            "type": "Accepted",
            "status": "True",
            "reason": "Accepted",
            "message": "",
            "lastTransitionTime": "2025-01-02T03:04:06Z"
        }]
    })
}

fn mk_object(api_version: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": mk_meta(name),
        "spec": spec,
        "status": mk_status(),
    })
}

fn mk_review(desired: &str, objects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "desiredAPIVersion": desired,
            "objects": objects,
        }
    })
}

/// The one converted object of a successful review.
fn converted(object: Value, desired: &str) -> Value {
    let answer = review(mk_review(desired, vec![object]));
    assert_eq!(answer["apiVersion"], "apiextensions.k8s.io/v1");
    assert_eq!(answer["kind"], "ConversionReview");
    let response = &answer["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["result"]["status"], "Success", "{response:#}");
    let objects = response["convertedObjects"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    objects[0].clone()
}

/// The message of a failed review.
fn failure(object: Value, desired: &str) -> String {
    let answer = review(mk_review(desired, vec![object]));
    let response = &answer["response"];
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(response["result"]["status"], "Failure", "{response:#}");
    assert!(response["convertedObjects"].as_array().unwrap().is_empty());
    response["result"]["message"].as_str().unwrap().to_owned()
}

/// Converts `old` to `hub_version`, checks the body is `hub`, converts back and checks
/// the original comes back.
fn round_trip(old: Value, hub: Value) {
    let old_version = old["apiVersion"].as_str().unwrap().to_owned();
    let hub_version = hub["apiVersion"].as_str().unwrap().to_owned();
    let up = converted(old.clone(), &hub_version);
    assert_eq!(up["apiVersion"], hub["apiVersion"]);
    assert_eq!(up["kind"], hub["kind"]);
    assert_eq!(up["metadata"], hub["metadata"]);
    assert_eq!(up["spec"], hub["spec"]);
    assert_eq!(up["status"], hub["status"]);
    assert_eq!(up, hub);
    let down = converted(up, &old_version);
    assert_eq!(down, old);
}

#[test]
fn traffic_split_v1alpha3_round_trips_through_v1alpha4() {
    let spec = json!({
        "service": "web",
        "matches": [{"kind": "HTTPRouteGroup", "name": "canary-users"}],
        "backends": [{"service": "web-v1", "weight": 90}, {"service": "web-v2", "weight": 10}]
    });
    round_trip(
        mk_object(
            "split.smi-spec.io/v1alpha3",
            "TrafficSplit",
            "web",
            spec.clone(),
        ),
        mk_object("split.smi-spec.io/v1alpha4", "TrafficSplit", "web", spec),
    );
}

#[test]
fn traffic_split_v1alpha2_round_trips_through_v1alpha4() {
    let spec = json!({
        "service": "web",
        "backends": [{"service": "web-v1", "weight": 500}, {"service": "web-v2", "weight": 0}]
    });
    round_trip(
        mk_object(
            "split.smi-spec.io/v1alpha2",
            "TrafficSplit",
            "web",
            spec.clone(),
        ),
        mk_object("split.smi-spec.io/v1alpha4", "TrafficSplit", "web", spec),
    );
}

#[test]
fn traffic_split_v1alpha1_weights_become_whole_numbers_and_come_back_as_written() {
    let old = mk_object(
        "split.smi-spec.io/v1alpha1",
        "TrafficSplit",
        "web",
        json!({
            "service": "web",
            "backends": [{"service": "web-v1", "weight": "500m"}, {"service": "web-v2", "weight": "1"}]
        }),
    );
    let mut hub = mk_object(
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        "web",
        json!({
            "service": "web",
            "backends": [{"service": "web-v1", "weight": 5}, {"service": "web-v2", "weight": 10}]
        }),
    );
    hub["metadata"]["annotations"]["split.trellis.dev/v1alpha1-weights"] =
        json!(r#"{"web-v1":"500m","web-v2":"1"}"#);
    round_trip(old, hub);
}

#[test]
fn traffic_target_v1alpha2_round_trips_through_v1alpha3() {
    let spec = json!({
        "destination": {"kind": "ServiceAccount", "name": "api", "namespace": "shop"},
        "rules": [{"kind": "HTTPRouteGroup", "name": "api-routes", "matches": ["reads"]}],
        "sources": [{"kind": "ServiceAccount", "name": "web", "namespace": "shop"}]
    });
    round_trip(
        mk_object(
            "access.smi-spec.io/v1alpha2",
            "TrafficTarget",
            "api",
            spec.clone(),
        ),
        mk_object("access.smi-spec.io/v1alpha3", "TrafficTarget", "api", spec),
    );
}

#[test]
fn http_route_group_v1alpha3_round_trips_through_v1alpha4() {
    let spec = json!({
        "matches": [{
            "name": "reads",
            "pathRegex": "/api/.*",
            "methods": ["GET", "HEAD"],
            "headers": [{"x-canary": "true"}]
        }]
    });
    round_trip(
        mk_object(
            "specs.smi-spec.io/v1alpha3",
            "HTTPRouteGroup",
            "api-routes",
            spec.clone(),
        ),
        mk_object(
            "specs.smi-spec.io/v1alpha4",
            "HTTPRouteGroup",
            "api-routes",
            spec,
        ),
    );
}

#[test]
fn tcp_route_v1alpha3_round_trips_through_v1alpha4_as_all_ports() {
    round_trip(
        mk_object("specs.smi-spec.io/v1alpha3", "TCPRoute", "db", json!({})),
        mk_object(
            "specs.smi-spec.io/v1alpha4",
            "TCPRoute",
            "db",
            json!({"matches": {"ports": []}}),
        ),
    );
}

#[test]
fn objects_without_status_or_labels_get_none() {
    let mut old = mk_object(
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "web",
        json!({"service": "web", "backends": [{"service": "web-v1", "weight": 1}]}),
    );
    let meta = old["metadata"].as_object_mut().unwrap();
    meta.remove("labels");
    meta.remove("annotations");
    old.as_object_mut().unwrap().remove("status");
    let up = converted(old.clone(), "split.smi-spec.io/v1alpha4");
    assert_eq!(up["metadata"], old["metadata"]);
    assert_eq!(up.get("status"), None);
}

#[test]
fn every_object_of_a_review_is_converted_in_order() {
    let a = mk_object(
        "split.smi-spec.io/v1alpha2",
        "TrafficSplit",
        "a",
        json!({"service": "a", "backends": [{"service": "a-v1", "weight": 1}]}),
    );
    let b = mk_object(
        "split.smi-spec.io/v1alpha3",
        "TrafficSplit",
        "b",
        json!({"service": "b", "backends": [{"service": "b-v1", "weight": 1}]}),
    );
    let answer = review(mk_review("split.smi-spec.io/v1alpha4", vec![a, b]));
    let names: Vec<&Value> = answer["response"]["convertedObjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["metadata"]["name"])
        .collect();
    assert_eq!(names, [&json!("a"), &json!("b")]);
}

#[test]
fn a_split_with_matches_cannot_be_read_as_v1alpha2() {
    let hub = mk_object(
        "split.smi-spec.io/v1alpha4",
        "TrafficSplit",
        "web",
        json!({
            "service": "web",
            "matches": [{"kind": "HTTPRouteGroup", "name": "canary-users"}],
            "backends": [{"service": "web-v1", "weight": 1}]
        }),
    );
    let message = failure(hub, "split.smi-spec.io/v1alpha2");
    assert!(
        message.starts_with(
            "cannot convert TrafficSplit shop/web to split.smi-spec.io/v1alpha2: spec.matches: "
        ),
        "{message}"
    );
}

#[test]
fn a_tcp_route_with_ports_cannot_be_read_as_v1alpha3() {
    let hub = mk_object(
        "specs.smi-spec.io/v1alpha4",
        "TCPRoute",
        "db",
        json!({"matches": {"ports": [5432]}}),
    );
    let message = failure(hub, "specs.smi-spec.io/v1alpha3");
    assert!(
        message.starts_with(
            "cannot convert TCPRoute shop/db to specs.smi-spec.io/v1alpha3: spec.matches.ports: "
        ),
        "{message}"
    );
}

#[test]
fn an_unserved_desired_version_fails_with_the_served_ones() {
    let old = mk_object(
        "split.smi-spec.io/v1alpha3",
        "TrafficSplit",
        "web",
        json!({"service": "web", "backends": [{"service": "web-v1", "weight": 1}]}),
    );
    assert_eq!(
        failure(old, "split.smi-spec.io/v1beta1"),
        "cannot convert TrafficSplit shop/web to split.smi-spec.io/v1beta1: apiVersion: \
         split.smi-spec.io/v1beta1 does not serve TrafficSplit; served versions: \
         split.smi-spec.io/v1alpha4, split.smi-spec.io/v1alpha3, split.smi-spec.io/v1alpha2, \
         split.smi-spec.io/v1alpha1"
    );
}

#[test]
fn an_object_that_does_not_read_names_its_field() {
    let old = mk_object(
        "split.smi-spec.io/v1alpha3",
        "TrafficSplit",
        "web",
        json!({"service": "web", "backends": [{"service": "web-v1", "weight": 1, "port": 80}]}),
    );
    let message = failure(old, "split.smi-spec.io/v1alpha4");
    assert!(
        message.starts_with(
            "cannot convert TrafficSplit shop/web to split.smi-spec.io/v1alpha4: spec.backends[0].port: unknown field"
        ),
        "{message}"
    );
}

#[test]
fn a_desired_version_of_another_group_fails() {
    let old = mk_object("specs.smi-spec.io/v1alpha3", "TCPRoute", "db", json!({}));
    assert_eq!(
        failure(old, "split.smi-spec.io/v1alpha4"),
        "cannot convert TCPRoute shop/db to split.smi-spec.io/v1alpha4: apiVersion: \
         specs.smi-spec.io/v1alpha3 and split.smi-spec.io/v1alpha4 are different API groups"
    );
}

#[test]
fn a_body_that_is_not_a_review_fails_without_a_uid() {
    let answer = review(json!({"kind": "ConversionReview"}));
    assert_eq!(answer["response"]["uid"], "");
    assert_eq!(answer["response"]["result"]["status"], "Failure");
    let message = answer["response"]["result"]["message"].as_str().unwrap();
    assert!(message.starts_with("not a ConversionReview: "), "{message}");
}
