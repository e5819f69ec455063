use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use super::*;
use crate::webhook::certs::{self, ServingCert};
use crate::webhook::mock_api::{self, already_exists, conflict, not_found};

const DAY: Duration = Duration::from_secs(86400);
const PATH: &str = "/api/v1/namespaces/mesh/secrets/trellis-webhook-tls";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn unb64(value: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The Secret as the API server returns it.
fn mk_secret(cert: &ServingCert) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "trellis-webhook-tls",
            "namespace": "mesh",
            "resourceVersion": "7",
            "labels": {"app.kubernetes.io/managed-by": "trellis-operator"}
        },
        "type": "kubernetes.io/tls",
        "data": {
            "ca.crt": b64(&cert.ca_pem),
            "tls.crt": b64(&cert.cert_pem),
            "tls.key": b64(&cert.key_pem)
        }
    })
}

/// The certificate in a Secret body the operator sent.
fn cert_of(body: &Value) -> ServingCert {
    ServingCert {
        ca_pem: unb64(&body["data"]["ca.crt"]),
        cert_pem: unb64(&body["data"]["tls.crt"]),
        key_pem: unb64(&body["data"]["tls.key"]),
    }
}

async fn run(
    now: SystemTime,
    scenario: impl AsyncFnOnce(mock_api::ApiServer),
) -> Result<ServingCert, SecretError> {
    let (client, server) = mock_api::pair();
    let (result, ()) = tokio::join!(load_or_create_at(client, "mesh", now), scenario(server));
    result
}

#[tokio::test]
async fn a_good_secret_is_used_as_it_is() {
    let now = SystemTime::now();
    let stored = certs::generate("mesh", now - 10 * DAY).unwrap();
    let secret = mk_secret(&stored);
    let got = run(now, async move |mut api| {
        api.expect("GET", PATH, Value::Null, 200, secret).await;
        api.expect_none().await;
    })
    .await
    .unwrap();
    assert_eq!(got, stored);
}

#[tokio::test]
async fn a_missing_secret_is_created() {
    let now = SystemTime::now();
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let got = run(now, async move |mut api| {
        api.expect("GET", PATH, Value::Null, 404, not_found("secrets", "trellis-webhook-tls"))
            .await;
        let mut created = Value::Null;
        let check = |body: &Value| {
            assert_eq!(
                body["metadata"],
                json!({
                    "name": "trellis-webhook-tls",
                    "labels": {"app.kubernetes.io/managed-by": "trellis-operator"}
                })
            );
            assert_eq!(body["type"], "kubernetes.io/tls");
            let keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
            assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
            created = body.clone();
        };
        api.expect_with(
            "POST",
            "/api/v1/namespaces/mesh/secrets?",
            check,
            201,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "trellis-webhook-tls"}}),
        )
        .await;
        sent_tx.send(created).unwrap();
    })
    .await
    .unwrap();
    let sent = cert_of(&sent_rx.await.unwrap());
    assert_eq!(got, sent);
    assert_eq!(certs::renewal(&got, "mesh", now), None);
}

#[tokio::test]
async fn a_replica_that_loses_the_create_race_uses_the_winners_secret() {
    let now = SystemTime::now();
    let winner = certs::generate("mesh", now).unwrap();
    let secret = mk_secret(&winner);
    let got = run(now, async move |mut api| {
        api.expect(
            "GET",
            PATH,
            Value::Null,
            404,
            not_found("secrets", "trellis-webhook-tls"),
        )
        .await;
        api.expect_with(
            "POST",
            "/api/v1/namespaces/mesh/secrets?",
            |_| {},
            409,
            already_exists("secrets", "trellis-webhook-tls"),
        )
        .await;
        api.expect("GET", PATH, Value::Null, 200, secret).await;
    })
    .await
    .unwrap();
    assert_eq!(got, winner);
}

#[tokio::test]
async fn a_certificate_about_to_expire_is_replaced_keeping_the_old_ca_trusted() {
    let now = SystemTime::now();
    let old = certs::generate("mesh", now - 340 * DAY).unwrap();
    let secret = mk_secret(&old);
    let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
    let got = run(now, async move |mut api| {
        api.expect("GET", PATH, Value::Null, 200, secret.clone()).await;
        let mut replaced = Value::Null;
        let check = |body: &Value| {
            // The stored Secret with new data: same metadata (resourceVersion included,
            // so a concurrent replace fails instead of being lost).
            assert_eq!(body["metadata"], secret["metadata"]);
            assert_eq!(body["type"], "kubernetes.io/tls");
            replaced = body.clone();
        };
        api.expect_with("PUT", &format!("{PATH}?"), check, 200, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "trellis-webhook-tls"}}))
            .await;
        sent_tx.send(replaced).unwrap();
    })
    .await
    .unwrap();
    let sent = cert_of(&sent_rx.await.unwrap());
    assert_eq!(got, sent);
    assert_ne!(got.cert_pem, old.cert_pem);
    assert_eq!(certs::renewal(&got, "mesh", now), None);
    assert!(
        got.ca_pem.ends_with(&old.ca_pem),
        "the old CA stays in the bundle"
    );
}

#[tokio::test]
async fn a_replica_that_loses_the_replace_race_uses_the_winners_secret() {
    let now = SystemTime::now();
    let old = certs::generate("other-namespace", now).unwrap();
    let winner = certs::generate("mesh", now).unwrap();
    let (stale, fresh) = (mk_secret(&old), mk_secret(&winner));
    let got = run(now, async move |mut api| {
        api.expect("GET", PATH, Value::Null, 200, stale).await;
        api.expect_with(
            "PUT",
            &format!("{PATH}?"),
            |_| {},
            409,
            conflict("secrets", "trellis-webhook-tls"),
        )
        .await;
        api.expect("GET", PATH, Value::Null, 200, fresh).await;
    })
    .await
    .unwrap();
    assert_eq!(got, winner);
}

#[tokio::test]
async fn a_secret_missing_a_key_is_replaced() {
    let now = SystemTime::now();
    let mut secret = mk_secret(&certs::generate("mesh", now).unwrap());
    secret["data"].as_object_mut().unwrap().remove("tls.key");
    let got = run(now, async move |mut api| {
        api.expect("GET", PATH, Value::Null, 200, secret).await;
        api.expect_with("PUT", &format!("{PATH}?"), |body| {
            assert!(body["data"]["tls.key"].is_string());
        }, 200, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "trellis-webhook-tls"}}))
            .await;
    })
    .await
    .unwrap();
    assert_eq!(certs::renewal(&got, "mesh", now), None);
}

#[tokio::test]
async fn a_refused_read_names_the_secret() {
    let forbidden = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": "secrets \"trellis-webhook-tls\" is forbidden: User \"system:serviceaccount:mesh:trellis-operator\" cannot get resource \"secrets\" in API group \"\" in the namespace \"mesh\"",
        "reason": "Forbidden", "code": 403
    });
    let err = run(SystemTime::now(), async move |mut api| {
        api.expect("GET", PATH, Value::Null, 403, forbidden).await;
    })
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("cannot read the Secret mesh/trellis-webhook-tls: "),
        "{message}"
    );
    assert!(
        message.contains("cannot get resource \\\"secrets\\\"")
            || message.contains("cannot get resource \"secrets\""),
        "{message}"
    );
}
