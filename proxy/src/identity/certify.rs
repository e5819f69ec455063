//! The Identity API client: one key made in memory for the life of the process, a CSR for
//! the proxy's SPIFFE id, and `Identity.Certify` called with the workload's token (re-read
//! from its file each time: projected tokens rotate). The certificate is renewed at 70 % of
//! its lifetime; a failed request is retried with jittered exponential backoff, never
//! waiting past the point where the certificate in force would expire unrenewed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use trellis_proxy_api::v1 as api;
use trellis_proxy_api::v1::identity_client::IdentityClient;

use super::put_in_force;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::tls::{Credentials, SpiffeId, Tls};

/// Where and as whom to ask for certificates.
#[derive(Clone, Debug)]
pub struct CertifySettings {
    /// The control plane's gRPC address (http://host:port).
    pub url: String,
    /// The identity asked for.
    pub identity: SpiffeId,
    /// The token proving it (a projected ServiceAccount token or a join token).
    pub token_file: PathBuf,
}

/// First retry delay and the cap of the exponential backoff.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

pub struct Client {
    settings: CertifySettings,
    key: KeyPair,
    csr: Vec<u8>,
    channel: tonic::transport::Channel,
}

impl Client {
    pub fn new(settings: CertifySettings) -> anyhow::Result<Self> {
        let key = KeyPair::generate().context("generating the proxy's private key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, settings.identity.to_string());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            settings
                .identity
                .to_string()
                .try_into()
                .context("the identity as a URI")?,
        )];
        let csr = params
            .serialize_request(&key)
            .context("building the certificate signing request")?
            .der()
            .to_vec();
        let channel = tonic::transport::Endpoint::from_shared(settings.url.clone())
            .with_context(|| format!("{:?} is not a URL (http://host:port)", settings.url))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect_lazy();
        Ok(Self {
            settings,
            key,
            csr,
            channel,
        })
    }

    /// Keeps a current certificate in `tls` for as long as the proxy runs.
    pub async fn run(self, tls: Arc<Tls>, store: Store, metrics: Arc<Metrics>) {
        let mut failures: u32 = 0;
        loop {
            let received = SystemTime::now();
            let outcome = match self.certify().await {
                Ok(credentials) => put_in_force(&tls, credentials, &store, &metrics, received)
                    .map_err(|e| anyhow::anyhow!("the issued certificate is unusable: {e}")),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(renew_at) => {
                    metrics
                        .identity_certify
                        .with_label_values(&["issued"])
                        .inc();
                    if failures > 0 {
                        eprintln!(
                            "trellis-proxy: certificate for {} issued after {failures} failed attempts",
                            self.settings.identity
                        );
                    }
                    failures = 0;
                    let wait = renew_at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    metrics
                        .identity_certify
                        .with_label_values(&["failed"])
                        .inc();
                    failures += 1;
                    let in_force = tls.credentials();
                    let message = format!("{e:#}");
                    eprintln!(
                        "trellis-proxy: requesting a certificate for {} from {} failed: {message}; {}",
                        self.settings.identity,
                        self.settings.url,
                        if in_force.is_some() {
                            "the certificate in force stays until it expires"
                        } else {
                            "not ready until one is issued"
                        }
                    );
                    let mut status = store.snapshot().identity.clone();
                    status.last_error = Some(message.clone());
                    if in_force.is_none() {
                        status.not_ready = Some(format!(
                            "no certificate yet for {}: {message}",
                            self.settings.identity
                        ));
                    }
                    store.set_identity(status);
                    let left = in_force.map(|c| {
                        c.not_after
                            .duration_since(SystemTime::now())
                            .unwrap_or_default()
                    });
                    tokio::time::sleep(backoff(failures, left, fastrand::f64())).await;
                }
            }
        }
    }

    async fn certify(&self) -> anyhow::Result<Credentials> {
        let file = &self.settings.token_file;
        let token = std::fs::read_to_string(file)
            .with_context(|| format!("reading the token file {}", file.display()))?;
        let request = api::CertifyRequest {
            identity: self.settings.identity.to_string(),
            token: token.trim().to_owned(),
            certificate_signing_request: self.csr.clone(),
        };
        let response = IdentityClient::new(self.channel.clone())
            .certify(request)
            .await
            .map_err(|status| anyhow::anyhow!("{}: {}", status.code(), status.message()))?
            .into_inner();
        let chain = std::iter::once(response.leaf_certificate)
            .chain(response.intermediate_certificates)
            .map(CertificateDer::from)
            .collect();
        let roots = response
            .trust_anchors
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let credentials = Credentials::new(chain, key, roots)?;
        anyhow::ensure!(
            credentials.identity == self.settings.identity,
            "the Identity API issued a certificate for {}, not for {}",
            credentials.identity,
            self.settings.identity
        );
        Ok(credentials)
    }
}

/// The wait before retry number `failures` (1, 2, ...): exponential from
/// [`BACKOFF_BASE`] up to [`BACKOFF_MAX`], full jitter (`random` in 0..1), and at most a
/// quarter of the certificate's time `left`, so several retries fit before it expires.
pub fn backoff(failures: u32, left: Option<Duration>, random: f64) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let mut cap = exp.min(BACKOFF_MAX);
    if let Some(left) = left {
        cap = cap.min(left / 4);
    }
    cap.mul_f64(random.clamp(0.0, 1.0))
        .max(Duration::from_millis(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap() {
        let full = |n| backoff(n, None, 1.0);
        assert_eq!(full(1), Duration::from_millis(200));
        assert_eq!(full(2), Duration::from_millis(400));
        assert_eq!(full(4), Duration::from_millis(1600));
        assert_eq!(full(10), BACKOFF_MAX);
        assert_eq!(full(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn backoff_is_jittered_and_never_zero() {
        assert_eq!(backoff(3, None, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(3, None, 0.0), Duration::from_millis(10));
    }

    #[test]
    fn backoff_leaves_time_to_retry_before_the_certificate_expires() {
        let left = Some(Duration::from_secs(2));
        assert_eq!(backoff(10, left, 1.0), Duration::from_millis(500));
    }
}
