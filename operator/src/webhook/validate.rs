//! `POST /validate`: the validating admission webhook of the SMI and Trellis kinds.
//!
//! The object of a CREATE or UPDATE is checked as `trellis validate` checks one object:
//! read at its own version ([`dynamic::parse`]), then [`validate::validate`]. Errors deny
//! the request with the text `trellis validate` prints (`TrafficSplit/shop/web:
//! spec.backends[0].weight: must be ...`); warnings are returned as admission warnings,
//! which `kubectl` prints as `Warning: ...`. References to other objects (does the
//! backend Service exist?) are not checked here: objects arrive one at a time, in any
//! order, and the operator reports a dangling reference in the resource's status.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use kube::core::response::StatusSummary;
use serde_json::Value;
use smi_crds::dynamic::{self, Resource};
use smi_crds::validate::{self, Problem, Severity};

/// The handler of `POST /validate`: an `AdmissionReview` in, an `AdmissionReview` out.
pub fn review(body: Value) -> Value {
    let response = match serde_json::from_value::<AdmissionReview<DynamicObject>>(body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            let request: Result<AdmissionRequest<DynamicObject>, _> = r.try_into();
            request.map_err(|e| e.to_string())
        }) {
        Ok(request) => admit(&request),
        Err(e) => AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")),
    };
    serde_json::to_value(response.into_review()).expect("an AdmissionReview serializes")
}

/// Allows or denies one request.
pub fn admit(request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let response = AdmissionResponse::from(request);
    // Status is the operator's to write; deletes and connects carry no new object.
    let checked = matches!(request.operation, Operation::Create | Operation::Update)
        && request.sub_resource.is_none();
    let Some(object) = request.object.as_ref().filter(|_| checked) else {
        return response;
    };
    let object = serde_json::to_value(object).expect("a DynamicObject serializes");
    let problems = problems(object, request.namespace.as_deref());
    verdict(response, &problems.id, &problems.found)
}

/// What `trellis validate` finds in one object.
struct Found {
    /// `TrafficSplit/shop/web` (`MeshConfig/default` for the cluster-scoped kind).
    id: String,
    found: Vec<Problem>,
}

fn problems(object: Value, namespace: Option<&str>) -> Found {
    let kind = object["kind"].as_str().unwrap_or_default().to_owned();
    let name = match object["metadata"]["name"].as_str() {
        Some("") | None => "<no name>".to_owned(),
        Some(n) => n.to_owned(),
    };
    let namespace = object["metadata"]["namespace"]
        .as_str()
        .or(namespace)
        .map(str::to_owned);
    let id = match &namespace {
        Some(ns) if kind != "MeshConfig" => format!("{kind}/{ns}/{name}"),
        _ => format!("{kind}/{name}"),
    };
    let found = match dynamic::parse(object) {
        Ok(Some(mut resource)) => {
            set_namespace(&mut resource, namespace);
            validate::validate(&resource)
        }
        Ok(None) => Vec::new(),
        Err(e) => vec![Problem::error(e.field(), e.message())],
    };
    Found { id, found }
}

/// At CREATE the object may leave its namespace to the request's, as `kubectl apply -n`.
fn set_namespace(resource: &mut Resource, namespace: Option<String>) {
    if let Some(ns) = namespace.filter(|_| resource.is_namespaced()) {
        resource.metadata_mut().namespace.get_or_insert(ns);
    }
}

/// Denies on errors (all of them, `; ` apart) as the API server refuses an invalid object
/// (422 Invalid); warnings go back either way.
fn verdict(response: AdmissionResponse, id: &str, problems: &[Problem]) -> AdmissionResponse {
    let text = |p: &Problem| match p.field.as_str() {
        "" => format!("{id}: {}", p.message),
        field => format!("{id}: {field}: {}", p.message),
    };
    let of = |severity| {
        problems
            .iter()
            .filter(move |p| p.severity == severity)
            .map(text)
    };
    let errors: Vec<String> = of(Severity::Error).collect();
    let warnings: Vec<String> = of(Severity::Warning).collect();
    let mut response = if errors.is_empty() {
        response
    } else {
        let mut denied = response.deny(errors.join("; "));
        denied.result.status = Some(StatusSummary::Failure);
        denied.result.code = 422;
        denied.result.reason = "Invalid".to_owned();
        denied
    };
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    response
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
