//! `POST /convert`: the CRD conversion webhook of the SMI kinds with older versions.
//!
//! Each object is read at its own version with [`dynamic::parse`] (to the hub) and
//! written at `desiredAPIVersion` with [`dynamic::to_version`]. Metadata and `status` are
//! the API server's: they are copied from the object as sent, except `labels` and
//! `annotations`, which a conversion may change (TrafficSplit v1alpha1 keeps its weights
//! as written in an annotation). One object that cannot be converted fails the whole
//! review, with a message naming the object and the field; the API server shows it as
//! `conversion webhook for <group/version>, Kind=<kind> failed: <message>`.

use kube::core::Status;
use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use serde_json::{Map, Value};
use smi_crds::dynamic::{self, ParseError};

/// The handler of `POST /convert`: a `ConversionReview` in, a `ConversionReview` out.
pub fn review(body: Value) -> Value {
    let response = match serde_json::from_value::<ConversionReview>(body)
        .map_err(|e| e.to_string())
        .and_then(|r| ConversionRequest::from_review(r).map_err(|e| e.to_string()))
    {
        Ok(request) => convert(request),
        Err(e) => ConversionResponse::invalid(Status::failure(
            &format!("not a ConversionReview: {e}"),
            "InvalidRequest",
        )),
    };
    serde_json::to_value(response.into_review()).expect("a ConversionReview serializes")
}

/// Converts every object of `request` to its `desiredAPIVersion`, in order.
pub fn convert(request: ConversionRequest) -> ConversionResponse {
    let desired = request.desired_api_version.clone();
    let converted: Result<Vec<Value>, String> = request
        .objects
        .iter()
        .map(|object| convert_object(object, &desired))
        .collect();
    let response = ConversionResponse::for_request(request);
    match converted {
        Ok(objects) => response.success(objects),
        Err(message) => response.failure(Status::failure(&message, "Invalid")),
    }
}

/// One object at `desired` (`split.smi-spec.io/v1alpha2`), or why it cannot be.
fn convert_object(object: &Value, desired: &str) -> Result<Value, String> {
    let fail = |field: &str, message: &str| {
        format!(
            "cannot convert {} to {desired}: {field}: {message}",
            object_id(object)
        )
    };
    let from = |e: ParseError| fail(e.field(), &e.message());
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = |v: &str| v.split_once('/').map_or("", |(g, _)| g).to_owned();
    let Some((desired_group, version)) = desired.split_once('/') else {
        return Err(fail(
            "apiVersion",
            "desiredAPIVersion must be <group>/<version>",
        ));
    };
    if group(api_version) != desired_group {
        return Err(fail(
            "apiVersion",
            &format!("{api_version} and {desired} are different API groups"),
        ));
    }
    let resource = dynamic::parse(object.clone())
        .map_err(from)?
        .ok_or_else(|| fail("kind", "not a kind Trellis converts"))?;
    let mut converted = dynamic::to_version(&resource, version).map_err(from)?;
    carry_over(object, &mut converted);
    Ok(converted)
}

/// Puts the object's own metadata and status on `converted`, keeping the converted
/// labels and annotations (the only metadata a conversion may change).
fn carry_over(object: &Value, converted: &mut Value) {
    let mut metadata = object["metadata"].as_object().cloned().unwrap_or_default();
    for key in ["labels", "annotations"] {
        match converted["metadata"].get(key) {
            Some(v) if !is_empty(v) => {
                metadata.insert(key.to_owned(), v.clone());
            }
            _ => {
                metadata.remove(key);
            }
        }
    }
    let out = converted
        .as_object_mut()
        .expect("resources serialize to JSON objects");
    out.insert("metadata".to_owned(), Value::Object(metadata));
    match object.get("status") {
        Some(status) => out.insert("status".to_owned(), status.clone()),
        None => out.remove("status"),
    };
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_object().is_some_and(Map::is_empty)
}

/// `TrafficSplit default/web` (as `kubectl` names objects in messages).
fn object_id(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or("object");
    let name = object["metadata"]["name"].as_str().unwrap_or("<no name>");
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
