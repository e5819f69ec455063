//! `POST /inject`: the mutating webhook (pure). An AdmissionReview of a Pod CREATE in, an
//! AdmissionReview out: allowed, with a JSONPatch (RFC 6902) that adds the proxy when the
//! pod is injected, without one when it is skipped (not a Pod CREATE, opted out, already
//! injected, hostNetwork). A pod with an annotation that cannot be used is denied, with
//! the annotation named: its owner sees the message (the ReplicaSet's FailedCreate
//! event) and fixes it, rather than running unmeshed unnoticed.
//!
//! Namespace labels are not in the review: the webhook's namespaceSelector and
//! objectSelector have chosen the pod, so only the pod's own opt-out label is checked.

use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use super::config::Config;
use super::pod::inject;

/// The handler of `POST /inject`: an `AdmissionReview` in, an `AdmissionReview` out.
pub fn review(review: Value, config: &Config, native_sidecars: bool) -> Value {
    let request = serde_json::from_value::<AdmissionReview<DynamicObject>>(review)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let request: Result<AdmissionRequest<DynamicObject>, _> = r.try_into();
            request.map_err(|_| "the review has no request".to_owned())
        });
    let response = match request {
        Ok(request) => respond(&request, config, native_sidecars),
        Err(e) => AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")),
    };
    let mut out =
        serde_json::to_value(response.into_review()).expect("an AdmissionReview serializes");
    base64_patch(&mut out);
    out
}

/// kube writes `response.patch` (Go `[]byte`) as an array of numbers; Go reads that, but
/// the documented form, and the one every webhook sends, is a base64 string.
fn base64_patch(review: &mut Value) {
    use base64::Engine as _;
    let Some(patch) = review.pointer_mut("/response/patch") else {
        return;
    };
    if let Some(items) = patch.as_array() {
        let bytes: Vec<u8> = items
            .iter()
            .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect::<Option<_>>()
            .expect("a patch is bytes");
        *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
}

/// The answer to one admission request.
pub fn respond(
    request: &AdmissionRequest<DynamicObject>,
    config: &Config,
    native_sidecars: bool,
) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create || request.sub_resource.is_some() {
        return allowed;
    }
    let Some(object) = &request.object else {
        return allowed;
    };
    let json = serde_json::to_value(object).expect("a DynamicObject serializes");
    let pod: Pod = match serde_json::from_value(json.clone()) {
        Ok(pod) => pod,
        // The API server has checked the pod already; if this version cannot read it, let
        // it through unchanged rather than stop it.
        Err(e) => {
            return warn(
                allowed,
                format!("trellis: pod not injected, cannot read it: {e}"),
            );
        }
    };
    let Some(spec) = &pod.spec else {
        return allowed;
    };
    match inject(&pod.metadata, spec, None, config, native_sidecars) {
        Ok(injection) => {
            let ops = Value::Array(injection.patch(&json, ""));
            let patch = serde_json::from_value(ops).expect("our ops are JSONPatch operations");
            allowed.with_patch(patch).expect("a JSONPatch serializes")
        }
        Err(skip) if skip.is_error() => {
            let name = pod_name(&pod, request);
            allowed.deny(format!(
                "trellis: cannot inject the proxy into pod {name}: {skip}"
            ))
        }
        Err(_) => allowed,
    }
}

fn warn(mut response: AdmissionResponse, warning: String) -> AdmissionResponse {
    response.warnings = Some(vec![warning]);
    response
}

/// `namespace/name`, or `namespace/generateName*` before the API server names the pod.
fn pod_name(pod: &Pod, request: &AdmissionRequest<DynamicObject>) -> String {
    let m = &pod.metadata;
    let namespace = m
        .namespace
        .clone()
        .or_else(|| request.namespace.clone())
        .unwrap_or_default();
    let name = match (&m.name, &m.generate_name) {
        (Some(name), _) => name.clone(),
        (None, Some(prefix)) => format!("{prefix}*"),
        (None, None) => "(unnamed)".into(),
    };
    format!("{namespace}/{name}")
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
