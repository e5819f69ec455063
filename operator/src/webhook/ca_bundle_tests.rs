use serde_json::{Value, json};

use super::*;
use crate::webhook::mock_api::{self, ApiServer, not_found};

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
/// base64 of [`CA_PEM`], as `caBundle` holds it.
const CA_BUNDLE: &str =
    "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

const VWC: &str = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations";
const MWC: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const APPLY: &str = "?&force=true&fieldManager=trellis-operator";

fn metadata_of(name: &str) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": name}})
}

fn vwc_apply() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "trellis-validation"},
        "webhooks": [{"name": "validate.trellis.dev", "clientConfig": {"caBundle": CA_BUNDLE}}]
    })
}

fn mwc_apply() -> Value {
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "trellis-injection"},
        "webhooks": [
            {"name": "inject.trellis.dev", "clientConfig": {"caBundle": CA_BUNDLE}},
            {"name": "inject-pod.trellis.dev", "clientConfig": {"caBundle": CA_BUNDLE}}
        ]
    })
}

fn crd_apply(crd: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": crd},
        "spec": {"conversion": {
            "strategy": "Webhook",
            "webhook": {
                "conversionReviewVersions": ["v1"],
                "clientConfig": {
                    "service": {"name": "trellis-operator", "namespace": "mesh", "path": "/convert", "port": 443},
                    "caBundle": CA_BUNDLE
                }
            }
        }}
    })
}

/// Expects the read and the apply of one object that exists.
async fn expect_patch(api: &mut ApiServer, collection: &str, name: &str, body: Value) {
    let path = format!("{collection}/{name}");
    api.expect("GET", &path, Value::Null, 200, metadata_of(name))
        .await;
    let reply = body.clone();
    api.expect("PATCH", &format!("{path}{APPLY}"), body, 200, reply)
        .await;
}

async fn expect_crds(api: &mut ApiServer) {
    for crd in CONVERTED_CRDS {
        expect_patch(api, CRDS, crd, crd_apply(crd)).await;
    }
}

async fn run(scenario: impl AsyncFnOnce(ApiServer)) -> Result<Patched, CaBundleError> {
    let (client, server) = mock_api::pair();
    let (result, ()) = tokio::join!(patch_all(client, "mesh", CA_PEM), scenario(server));
    result
}

#[test]
fn the_bundle_is_the_pem_in_base64() {
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(CA_PEM),
        CA_BUNDLE
    );
}

#[tokio::test]
async fn both_webhook_configurations_and_the_four_crds_get_the_ca_bundle() {
    let done = run(async |mut api| {
        let vwc = vwc_apply();
        expect_patch(&mut api, VWC, "trellis-validation", vwc).await;
        let mwc = mwc_apply();
        expect_patch(&mut api, MWC, "trellis-injection", mwc).await;
        expect_crds(&mut api).await;
        api.expect_none().await;
    })
    .await
    .unwrap();
    assert_eq!(
        done,
        Patched {
            patched: vec![
                "ValidatingWebhookConfiguration/trellis-validation".to_owned(),
                "MutatingWebhookConfiguration/trellis-injection".to_owned(),
                "CustomResourceDefinition/trafficsplits.split.smi-spec.io".to_owned(),
                "CustomResourceDefinition/traffictargets.access.smi-spec.io".to_owned(),
                "CustomResourceDefinition/httproutegroups.specs.smi-spec.io".to_owned(),
                "CustomResourceDefinition/tcproutes.specs.smi-spec.io".to_owned(),
            ],
            skipped: vec![],
        }
    );
}

#[tokio::test]
async fn a_chart_installed_without_injection_is_patched_without_it() {
    let done = run(async |mut api| {
        let vwc = vwc_apply();
        expect_patch(&mut api, VWC, "trellis-validation", vwc).await;
        api.expect(
            "GET",
            &format!("{MWC}/trellis-injection"),
            Value::Null,
            404,
            not_found(
                "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                "trellis-injection",
            ),
        )
        .await;
        expect_crds(&mut api).await;
    })
    .await
    .unwrap();
    assert_eq!(
        done.skipped,
        ["MutatingWebhookConfiguration/trellis-injection"]
    );
    assert_eq!(done.patched.len(), 5);
}

#[tokio::test]
async fn a_refused_patch_names_the_object() {
    let forbidden = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "validatingwebhookconfigurations.admissionregistration.k8s.io \"trellis-validation\" is forbidden: User \"system:serviceaccount:mesh:trellis-operator\" cannot patch resource \"validatingwebhookconfigurations\"",
        "reason": "Forbidden", "code": 403
    });
    let err = run(async |mut api| {
        let path = format!("{VWC}/trellis-validation");
        api.expect(
            "GET",
            &path,
            Value::Null,
            200,
            metadata_of("trellis-validation"),
        )
        .await;
        api.expect_with("PATCH", &format!("{path}{APPLY}"), |_| {}, 403, forbidden)
            .await;
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(
            "cannot patch the caBundle of ValidatingWebhookConfiguration/trellis-validation: "
        ),
        "{message}"
    );
}
