//! The `status` the operator wants on a resource, and the server-side apply body that
//! writes it (pure).
//!
//! Conditions come from [`crate::compile::conditions`] (the same ones `trellis status`
//! shows); each carries the resource's generation as `observedGeneration`, and keeps the
//! `lastTransitionTime` the API server has while its status (`True`/`False`) does not
//! change, as Kubernetes conventions ask.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};
use smi_crds::trellis::canary::CanaryStatus;

use crate::compile::conditions::Condition as Ours;
use crate::index::ResourceRef;

/// The status of an SMI/Trellis resource: `observedGeneration` and its conditions.
pub fn status(ours: &[Ours], generation: Option<i64>, current: &Value, now: &Time) -> Value {
    let mut status = json!({ "conditions": conditions(ours, &[], generation, current, now) });
    if let Some(g) = generation {
        status["observedGeneration"] = g.into();
    }
    status
}

/// A Canary's status: its run (phase, weights, metrics), its `Ready` condition and the
/// `Accepted`/`ResolvedRefs` every resource has.
pub fn canary_status(
    run: &CanaryStatus,
    ours: &[Ours],
    generation: Option<i64>,
    current: &Value,
    now: &Time,
) -> Value {
    let mut run = run.clone();
    let own = std::mem::take(&mut run.conditions);
    run.observed_generation = generation;
    let mut status = serde_json::to_value(run).expect("a CanaryStatus serializes");
    status["conditions"] = serde_json::to_value(conditions(ours, &own, generation, current, now))
        .expect("conditions serialize");
    status
}

fn conditions(
    ours: &[Ours],
    extra: &[Condition],
    generation: Option<i64>,
    current: &Value,
    now: &Time,
) -> Vec<Condition> {
    let held: Vec<Condition> = current
        .get("conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let since = |type_: &str, status: &str| {
        held.iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone())
    };
    let from_ours = ours.iter().map(|c| {
        let status = if c.status { "True" } else { "False" };
        Condition {
            type_: c.type_.to_owned(),
            status: status.to_owned(),
            reason: c.reason.to_owned(),
            message: c.message.clone(),
            observed_generation: generation,
            last_transition_time: since(c.type_, status),
        }
    });
    let from_extra = extra.iter().map(|c| Condition {
        observed_generation: generation,
        last_transition_time: since(&c.type_, &c.status),
        ..c.clone()
    });
    from_ours.chain(from_extra).collect()
}

/// The server-side apply body for `resource`'s status subresource: only the fields the
/// operator owns (`status`), with the identity the API server needs.
pub fn apply_body(resource: &ResourceRef, api_version: &str, status: Value) -> Value {
    let mut metadata = json!({ "name": &*resource.name });
    if let Some(ns) = &resource.namespace {
        metadata["namespace"] = (&**ns).into();
    }
    json!({
        "apiVersion": api_version,
        "kind": resource.kind,
        "metadata": metadata,
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn accepted(ok: bool) -> Ours {
        Ours {
            type_: "Accepted",
            status: ok,
            reason: if ok { "Accepted" } else { "Invalid" },
            message: if ok {
                "accepted and in force"
            } else {
                "spec.backends[0].weight: must be >= 0"
            }
            .into(),
        }
    }

    #[test]
    fn a_first_status_carries_the_generation_and_now_as_transition_time() {
        let s = status(&[accepted(true)], Some(4), &Value::Null, &at(100));
        assert_eq!(
            s,
            json!({
                "observedGeneration": 4,
                "conditions": [{
                    "type": "Accepted", "status": "True", "reason": "Accepted",
                    "message": "accepted and in force", "observedGeneration": 4,
                    "lastTransitionTime": "1970-01-01T00:01:40Z",
                }],
            })
        );
    }

    #[test]
    fn the_transition_time_moves_only_when_the_condition_s_status_changes() {
        let first = status(&[accepted(true)], Some(1), &Value::Null, &at(100));
        let same = status(&[accepted(true)], Some(2), &first, &at(200));
        assert_eq!(
            same["conditions"][0]["lastTransitionTime"],
            "1970-01-01T00:01:40Z"
        );
        assert_eq!(same["conditions"][0]["observedGeneration"], 2);
        let flipped = status(&[accepted(false)], Some(3), &same, &at(300));
        assert_eq!(
            flipped["conditions"][0]["lastTransitionTime"],
            "1970-01-01T00:05:00Z"
        );
        assert_eq!(flipped["conditions"][0]["reason"], "Invalid");
    }

    #[test]
    fn writing_the_same_status_again_gives_the_same_body() {
        let first = status(&[accepted(false)], Some(3), &Value::Null, &at(100));
        assert_eq!(status(&[accepted(false)], Some(3), &first, &at(999)), first);
    }

    #[test]
    fn a_canary_status_has_its_run_and_every_condition() {
        let run = CanaryStatus {
            phase: Some("Progressing".into()),
            canary_weight: 20,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "Progressing".into(),
                message: "advancing".into(),
                observed_generation: None,
                last_transition_time: at(5),
            }],
            ..CanaryStatus::default()
        };
        let s = canary_status(&run, &[accepted(true)], Some(2), &Value::Null, &at(100));
        assert_eq!(s["phase"], "Progressing");
        assert_eq!(s["canaryWeight"], 20);
        assert_eq!(s["observedGeneration"], 2);
        let types: Vec<_> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["Accepted", "Ready"]);
    }

    #[test]
    fn the_apply_body_names_the_resource_at_the_watched_version() {
        let r = ResourceRef {
            kind: "TrafficSplit",
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let body = apply_body(
            &r,
            "split.smi-spec.io/v1alpha4",
            json!({"observedGeneration": 1}),
        );
        assert_eq!(
            body,
            json!({
                "apiVersion": "split.smi-spec.io/v1alpha4", "kind": "TrafficSplit",
                "metadata": {"name": "web", "namespace": "shop"},
                "status": {"observedGeneration": 1},
            })
        );
        let mesh = ResourceRef {
            kind: "MeshConfig",
            namespace: None,
            name: "default".into(),
        };
        assert_eq!(
            apply_body(&mesh, "trellis.dev/v1alpha1", json!({}))["metadata"],
            json!({"name": "default"})
        );
    }
}
