//! Keeping the serving certificate fresh while the operator runs: the Secret is checked
//! periodically ([`secret::load_or_create`] renews it when due); when the certificate
//! changed (renewed here or by another replica) the caBundle is patched first, then the
//! server is handed the new certificate. The bundle still holds the previous CA, so
//! connections made with either certificate are trusted during the switch.

use std::time::Duration;

use kube::Client;

use super::ca_bundle;
use super::certs::ServingCert;
use super::secret::{self, SecretError};

/// How often the Secret is checked (renewal happens 30 days ahead).
pub const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    CaBundle(#[from] ca_bundle::CaBundleError),
}

/// Checks the Secret every [`CHECK_EVERY`] forever, starting from `current` (what the
/// server serves); `on_new` gets each new certificate (e.g. `Tls::reload`). Failures
/// are logged and retried at the next check.
pub async fn keep_fresh(
    client: Client,
    namespace: String,
    mut current: ServingCert,
    on_new: impl Fn(&ServingCert) + Send,
) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match refresh_once(client.clone(), &namespace, &current).await {
            Ok(Some(new)) => {
                on_new(&new);
                current = new;
            }
            Ok(None) => {}
            Err(e) => eprintln!("trellis operator: webhook certificate check: {e}"),
        }
    }
}

/// One check: the new certificate, with the caBundle already patched, or `None` when
/// the Secret still holds `current`.
pub async fn refresh_once(
    client: Client,
    namespace: &str,
    current: &ServingCert,
) -> Result<Option<ServingCert>, RefreshError> {
    let stored = secret::load_or_create(client.clone(), namespace).await?;
    if &stored == current {
        return Ok(None);
    }
    ca_bundle::patch_all(client, namespace, &stored.ca_pem).await?;
    Ok(Some(stored))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use base64::Engine as _;
    use serde_json::{Value, json};

    use super::*;
    use crate::webhook::certs;
    use crate::webhook::mock_api::{self, not_found};

    fn mk_secret(cert: &ServingCert) -> Value {
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "trellis-webhook-tls", "namespace": "mesh", "resourceVersion": "9"},
            "type": "kubernetes.io/tls",
            "data": {"ca.crt": b64(&cert.ca_pem), "tls.crt": b64(&cert.cert_pem), "tls.key": b64(&cert.key_pem)}
        })
    }

    const SECRET: &str = "/api/v1/namespaces/mesh/secrets/trellis-webhook-tls";

    #[tokio::test]
    async fn an_unchanged_secret_changes_nothing() {
        let current = certs::generate("mesh", SystemTime::now()).unwrap();
        let secret = mk_secret(&current);
        let (client, mut api) = mock_api::pair();
        let scenario = async move {
            api.expect("GET", SECRET, Value::Null, 200, secret).await;
            api.expect_none().await;
        };
        let (result, ()) = tokio::join!(refresh_once(client, "mesh", &current), scenario);
        assert_eq!(result.unwrap(), None);
    }

    #[tokio::test]
    async fn a_certificate_renewed_by_another_replica_is_trusted_then_served() {
        let current = certs::generate("mesh", SystemTime::now()).unwrap();
        let renewed = certs::renew(&current, "mesh", SystemTime::now()).unwrap();
        let secret = mk_secret(&renewed);
        let (client, mut api) = mock_api::pair();
        let scenario = async move {
            api.expect("GET", SECRET, Value::Null, 200, secret).await;
            // The caBundle is patched before the new certificate is served (here every
            // target is missing, so each is only read).
            let admission = "/apis/admissionregistration.k8s.io/v1";
            let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
            let reads = [
                format!("{admission}/validatingwebhookconfigurations/trellis-validation"),
                format!("{admission}/mutatingwebhookconfigurations/trellis-injection"),
            ]
            .into_iter()
            .chain(ca_bundle::CONVERTED_CRDS.map(|crd| format!("{crds}/{crd}")));
            for path in reads {
                api.expect("GET", &path, Value::Null, 404, not_found("object", "x"))
                    .await;
            }
        };
        let (result, ()) = tokio::join!(refresh_once(client, "mesh", &current), scenario);
        assert_eq!(result.unwrap(), Some(renewed));
    }
}
