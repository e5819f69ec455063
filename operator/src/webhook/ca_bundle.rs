//! Telling the API server to trust the webhook CA: `caBundle` patched into the webhook
//! configurations and into the `spec.conversion` of the SMI CRDs with older versions.
//!
//! Each write is a server-side apply (field manager `trellis-operator`, forced) of the
//! few fields the operator owns, so Helm and ArgoCD keep everything else. Each object
//! is read first (metadata only): a missing webhook configuration is skipped with one
//! log line (the chart may be installed without injection); a missing CRD is skipped
//! the same way, since applying would try to create a CRD from a fragment.

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use super::certs::SERVICE;

/// The field manager of every write (`kubectl get -o yaml --show-managed-fields`).
pub const FIELD_MANAGER: &str = "trellis-operator";

/// ValidatingWebhookConfiguration and its webhook (path `/validate`).
pub const VALIDATING: (&str, &[&str]) = ("trellis-validation", &["validate.trellis.dev"]);
/// MutatingWebhookConfiguration and its webhooks (both path `/inject`: one for labelled
/// namespaces, one for labelled pods elsewhere).
pub const MUTATING: (&str, &[&str]) = (
    "trellis-injection",
    &["inject.trellis.dev", "inject-pod.trellis.dev"],
);
/// The CRDs converted by `/convert`: the SMI kinds with more than one version.
pub const CONVERTED_CRDS: [&str; 4] = [
    "trafficsplits.split.smi-spec.io",
    "traffictargets.access.smi-spec.io",
    "httproutegroups.specs.smi-spec.io",
    "tcproutes.specs.smi-spec.io",
];
/// The Service port the API server calls (targetPort 9443).
pub const SERVICE_PORT: i32 = 443;

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {id}: {source}")]
pub struct CaBundleError {
    action: &'static str,
    /// `Kind/name`.
    id: String,
    source: kube::Error,
}

/// What [`patch_all`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Patched {
    /// `Kind/name` of every object patched.
    pub patched: Vec<String>,
    /// `Kind/name` of every object that does not exist.
    pub skipped: Vec<String>,
}

/// Patches `ca_pem` (the Secret's `ca.crt`) into every object that needs it.
pub async fn patch_all(
    client: Client,
    namespace: &str,
    ca_pem: &str,
) -> Result<Patched, CaBundleError> {
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let mut done = Patched::default();
    let targets = [
        (
            api::<ValidatingWebhookConfiguration>(&client),
            VALIDATING.0,
            webhook_body::<ValidatingWebhookConfiguration>(VALIDATING, &ca_bundle),
        ),
        (
            api::<MutatingWebhookConfiguration>(&client),
            MUTATING.0,
            webhook_body::<MutatingWebhookConfiguration>(MUTATING, &ca_bundle),
        ),
    ]
    .into_iter()
    .chain(CONVERTED_CRDS.map(|crd| {
        (
            api::<CustomResourceDefinition>(&client),
            crd,
            conversion_body(crd, namespace, &ca_bundle),
        )
    }));
    for (api, name, body) in targets {
        apply(&api, name, body, &mut done).await?;
    }
    Ok(done)
}

/// The apply body of a webhook configuration: its webhooks' `caBundle`.
fn webhook_body<K: Resource<DynamicType = ()>>(
    (config, webhooks): (&str, &[&str]),
    ca_bundle: &str,
) -> Value {
    let webhooks: Vec<Value> = webhooks
        .iter()
        .map(|name| json!({"name": name, "clientConfig": {"caBundle": ca_bundle}}))
        .collect();
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": config},
        "webhooks": webhooks,
    })
}

/// The apply body of a CRD: conversion by the operator's `/convert`.
fn conversion_body(crd: &str, namespace: &str, ca_bundle: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd},
        "spec": {"conversion": {
            "strategy": "Webhook",
            "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {
                    "service": {
                        "name": SERVICE,
                        "namespace": namespace,
                        "path": "/convert",
                        "port": SERVICE_PORT,
                    },
                    "caBundle": ca_bundle,
                },
            },
        }},
    })
}

/// An untyped API of `K` (the answers are not read, so they need not be complete).
fn api<K: Resource<DynamicType = ()>>(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &ApiResource::erase::<K>(&()))
}

async fn apply(
    api: &Api<DynamicObject>,
    name: &str,
    body: Value,
    done: &mut Patched,
) -> Result<(), CaBundleError> {
    let id = format!("{}/{name}", body["kind"].as_str().unwrap_or_default());
    let err = |action| {
        let id = id.clone();
        move |source| CaBundleError { action, id, source }
    };
    if api
        .get_metadata_opt(name)
        .await
        .map_err(err("read"))?
        .is_none()
    {
        eprintln!("trellis operator: {id} does not exist; its caBundle is not set");
        done.skipped.push(id);
        return Ok(());
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(body))
        .await
        .map_err(err("patch the caBundle of"))?;
    done.patched.push(id);
    Ok(())
}

#[cfg(test)]
#[path = "ca_bundle_tests.rs"]
mod tests;
