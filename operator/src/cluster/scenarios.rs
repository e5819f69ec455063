//! The Kubernetes adapter against a scripted API server (kube-rs' `tower-test` verifier
//! pattern): every request's method, path, query and body as the API server would see it.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::follow::{Follower, ObservedObjects, Resources};
use super::kinds::{self, Installed};
use super::lease::Elector;
use super::status::StatusWriter;
use super::token_review::TokenReviewer;
use crate::identity::{SpiffeId, TokenValidator};
use crate::index::{Index, Options, Snapshot};
use crate::webhook::mock_api;

fn split_kind() -> Installed {
    kinds::split_hub()
}

const SPLIT_STATUS: &str = "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/web/status?&force=true&fieldManager=trellis-operator";

/// The index after the API server listed `objects` (TrafficSplits) and `services`.
async fn listed(objects: &[Value], services: &[&str]) -> (Arc<Snapshot>, ObservedObjects) {
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let observed = ObservedObjects::default();
    let mut resources = Resources {
        installed: split_kind(),
        observed: observed.clone(),
    };
    for o in objects {
        for u in resources.applied(&serde_json::from_value(o.clone()).unwrap()) {
            index.update(u);
        }
    }
    let mut svc = super::follow::Services;
    for name in services {
        let s: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"ports": [{"port": 80}]},
        }))
        .unwrap();
        for u in svc.applied(&s) {
            index.update(u);
        }
    }
    index.flush().await;
    (index.snapshot(), observed)
}

fn split(weight: i64) -> Value {
    json!({
        "apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": "web", "namespace": "shop", "generation": 2, "uid": "u-1"},
        "spec": {"service": "web", "backends": [
            {"service": "web-v1", "weight": weight}, {"service": "web-v2", "weight": 10}]},
    })
}

fn leader(yes: bool) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(yes);
    std::mem::forget(tx);
    rx
}

fn conditions(body: &Value) -> Vec<(String, String, String)> {
    body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["observedGeneration"], 2, "{c}");
            assert!(c["lastTransitionTime"].is_string(), "{c}");
            (
                c["type"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_valid_traffic_split_gets_accepted_and_resolved_refs_by_server_side_apply() {
    let (snapshot, observed) = listed(&[split(90)], &["web", "web-v1", "web-v2"]).await;
    let (client, mut api) = mock_api::pair();
    let scenario = tokio::spawn(async move {
        api.expect_with(
            "PATCH",
            SPLIT_STATUS,
            |body| {
                assert_eq!(body["apiVersion"], "split.smi-spec.io/v1alpha4");
                assert_eq!(body["kind"], "TrafficSplit");
                assert_eq!(
                    body["metadata"],
                    json!({"name": "web", "namespace": "shop"})
                );
                assert_eq!(body["status"]["observedGeneration"], 2);
                assert_eq!(
                    conditions(body),
                    [
                        ("Accepted".into(), "True".into(), "Accepted".into()),
                        ("ResolvedRefs".into(), "True".into(), "ResolvedRefs".into()),
                    ]
                );
            },
            200,
            split(90),
        )
        .await;
        api
    });
    let mut writer = StatusWriter::new(client, &[split_kind()], observed, leader(true), "op-0");
    let pass = writer.pass(&snapshot).await;
    assert_eq!((pass.written, pass.events, pass.failed), (1, 0, 0));
    scenario.await.unwrap();
    // Nothing changed: the same status is not written twice.
    assert_eq!(writer.pass(&snapshot).await.written, 0);
}

#[tokio::test]
async fn an_invalid_traffic_split_gets_accepted_false_with_the_field_and_a_warning_event() {
    let (snapshot, observed) = listed(&[split(-5)], &["web", "web-v1", "web-v2"]).await;
    let (client, mut api) = mock_api::pair();
    let scenario = tokio::spawn(async move {
        api.expect_with(
            "POST",
            "/apis/events.k8s.io/v1/namespaces/shop/events?",
            |event| {
                assert_eq!(event["type"], "Warning");
                assert_eq!(event["reason"], "Invalid");
                assert_eq!(event["regarding"]["kind"], "TrafficSplit");
                assert_eq!(event["regarding"]["uid"], "u-1");
                assert_eq!(event["reportingController"], "trellis-operator");
                let note = event["note"].as_str().unwrap();
                assert!(note.starts_with("spec.backends[0].weight: "), "{note}");
            },
            201,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}}),
        )
        .await;
        api.expect_with(
            "PATCH",
            SPLIT_STATUS,
            |body| {
                assert_eq!(
                    conditions(body)[0],
                    ("Accepted".into(), "False".into(), "Invalid".into())
                );
                let message = body["status"]["conditions"][0]["message"].as_str().unwrap();
                assert!(
                    message.starts_with("spec.backends[0].weight: ")
                        && message.ends_with("no version of it is in force"),
                    "{message}"
                );
            },
            200,
            split(-5),
        )
        .await;
        api
    });
    let mut writer = StatusWriter::new(client, &[split_kind()], observed, leader(true), "op-0");
    let pass = writer.pass(&snapshot).await;
    assert_eq!((pass.written, pass.events, pass.failed), (1, 1, 0));
    scenario.await.unwrap();
}

#[tokio::test]
async fn only_the_leader_writes_status() {
    let (snapshot, observed) = listed(&[split(90)], &["web", "web-v1", "web-v2"]).await;

    // Another replica holds a fresh lease: this one follows and writes nothing.
    let (client, mut api) = mock_api::pair();
    let renewed = super::lease::now();
    let held = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "trellis-operator", "namespace": "trellis-system", "resourceVersion": "7"},
        "spec": {"holderIdentity": "op-1", "leaseDurationSeconds": 15,
                 "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(renewed)},
    });
    let lease_uri =
        "/apis/coordination.k8s.io/v1/namespaces/trellis-system/leases/trellis-operator";
    let scenario = tokio::spawn(async move {
        api.expect("GET", lease_uri, Value::Null, 200, held).await;
        api
    });
    let elector = Elector::new(client.clone(), "trellis-system", "trellis-operator", "op-0");
    let leads = elector.step().await.unwrap();
    assert!(!leads);
    let mut api = scenario.await.unwrap();
    let mut writer = StatusWriter::new(
        client,
        &[split_kind()],
        observed.clone(),
        leader(leads),
        "op-0",
    );
    assert_eq!(writer.pass(&snapshot).await, Default::default());
    api.expect_none().await;

    // No lease yet: this replica creates it, leads, and writes.
    let (client, mut api) = mock_api::pair();
    let scenario = tokio::spawn(async move {
        api.expect(
            "GET",
            lease_uri,
            Value::Null,
            404,
            mock_api::not_found("leases", "trellis-operator"),
        )
        .await;
        api.expect_with(
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/trellis-system/leases?",
            |lease| {
                assert_eq!(lease["metadata"]["name"], "trellis-operator");
                assert_eq!(lease["spec"]["holderIdentity"], "op-0");
                assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);
                assert_eq!(lease["spec"]["leaseTransitions"], 0);
            },
            201,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "trellis-operator"}}),
        )
        .await;
        api.expect_with("PATCH", SPLIT_STATUS, |_| {}, 200, split(90))
            .await;
        api
    });
    let elector = Elector::new(client.clone(), "trellis-system", "trellis-operator", "op-0");
    let leads = elector.step().await.unwrap();
    assert!(leads);
    let mut writer = StatusWriter::new(client, &[split_kind()], observed, leader(leads), "op-0");
    assert_eq!(writer.pass(&snapshot).await.written, 1);
    scenario.await.unwrap();
}

#[tokio::test]
async fn a_projected_token_is_checked_with_a_token_review_for_the_trellis_audience() {
    let identity: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap();
    let review = |user: &str| {
        json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "metadata": {},
            "spec": {"token": "tok", "audiences": ["trellis"]},
            "status": {"authenticated": true, "audiences": ["trellis"],
                       "user": {"username": user}},
        })
    };
    let (client, mut api) = mock_api::pair();
    let expected_body = json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "metadata": {},
        "spec": {"token": "tok", "audiences": ["trellis"]},
    });
    let sent = expected_body.clone();
    let scenario = tokio::spawn(async move {
        let uri = "/apis/authentication.k8s.io/v1/tokenreviews?";
        api.expect(
            "POST",
            uri,
            sent.clone(),
            201,
            review("system:serviceaccount:shop:web"),
        )
        .await;
        api.expect(
            "POST",
            uri,
            sent,
            201,
            review("system:serviceaccount:shop:db"),
        )
        .await;
        api
    });
    let reviewer = TokenReviewer::new(client);
    assert_eq!(reviewer.validate("tok\n", &identity).await, Ok(()));
    let refused = reviewer.validate("tok", &identity).await.unwrap_err();
    assert!(
        refused.contains("system:serviceaccount:shop:db")
            && refused.contains("its own ServiceAccount"),
        "{refused}"
    );
    scenario.await.unwrap();
}

#[tokio::test]
async fn the_split_a_canary_drives_is_applied_for_kubectl_by_the_leader() {
    use crate::index::{Origin, SourceObject, Update};
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let generated: smi_crds::split::TrafficSplit = serde_json::from_value(json!({
        "apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
        "metadata": {"name": "api", "namespace": "shop",
                     "creationTimestamp": "2026-11-22T10:00:00Z",
                     "labels": {"app.kubernetes.io/managed-by": "trellis-operator"},
                     "ownerReferences": [{"apiVersion": "trellis.dev/v1alpha1", "kind": "Canary",
                                          "name": "api", "uid": "c-1", "controller": true}]},
        "spec": {"service": "api", "backends": [
            {"service": "api-v1", "weight": 60}, {"service": "api-v2", "weight": 40}]},
    }))
    .unwrap();
    index.update(Update::Source {
        name: "canary".into(),
        objects: vec![SourceObject::Resource(
            Box::new(smi_crds::Resource::TrafficSplit(generated)),
            Origin::source("canary"),
        )],
    });
    index.flush().await;
    let (client, mut api) = mock_api::pair();
    let scenario = tokio::spawn(async move {
        api.expect_with(
            "PATCH",
            "/apis/split.smi-spec.io/v1alpha4/namespaces/shop/trafficsplits/api?&force=true&fieldManager=trellis-operator",
            |body| {
                assert_eq!(body["spec"]["backends"][1], json!({"service": "api-v2", "weight": 40}));
                assert_eq!(body["metadata"]["ownerReferences"][0]["kind"], "Canary");
                assert_eq!(body["metadata"].get("creationTimestamp"), None);
            },
            200,
            json!({"apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit", "metadata": {"name": "api"}}),
        )
        .await;
        api.expect_none().await;
        api
    });
    let mut publisher =
        super::canary_splits::SplitPublisher::new(client, split_kind(), leader(true));
    assert_eq!(publisher.pass(&index.snapshot()).await, 1);
    assert_eq!(
        publisher.pass(&index.snapshot()).await,
        0,
        "unchanged: not applied again"
    );
    scenario.await.unwrap();
}
