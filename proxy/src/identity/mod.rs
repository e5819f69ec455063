//! This proxy's mTLS identity: where its certificate comes from and how it stays current.
//!
//! - [`dir`]: `cert.pem`, `key.pem`, `roots.pem` in a directory (tests, or certificates
//!   managed by something else), re-read when they change.
//! - [`certify`]: `Identity.Certify` at the control plane: the key is made in memory and
//!   never leaves the proxy, a CSR and a token go out, the certificate comes back; renewed
//!   at 70 % of its lifetime, with backoff on failure.
//!
//! Either way the certificate is swapped into [`Tls`] for new handshakes while open
//! connections keep theirs, and the store shows its state on `/ready` and `/config`: the
//! proxy is not ready until it holds a certificate.

pub mod certify;
pub mod dir;

use std::sync::Arc;
use std::time::SystemTime;

pub use certify::CertifySettings;

use crate::app::IdentitySource;
use crate::store::{IdentityStatus, Store};
use crate::telemetry::Metrics;
use crate::tls::{Credentials, Tls};

/// Loads or requests the first certificate's source and keeps it current in the
/// background. A directory that does not hold valid credentials is an error at start.
pub async fn start(
    source: &IdentitySource,
    store: &Store,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<Arc<Tls>> {
    match source {
        IdentitySource::Dir(path) => {
            let credentials = Credentials::load(path).map_err(|e| {
                anyhow::anyhow!(
                    "--identity-dir: {e} (the directory needs cert.pem, key.pem and roots.pem)"
                )
            })?;
            let tls = Arc::new(Tls::pending());
            put_in_force(&tls, credentials, store, metrics, SystemTime::now())?;
            tokio::spawn(dir::watch(
                path.clone(),
                tls.clone(),
                store.clone(),
                metrics.clone(),
            ));
            Ok(tls)
        }
        IdentitySource::Certify(settings) => {
            let tls = Arc::new(Tls::pending());
            store.set_identity(IdentityStatus {
                not_ready: Some(format!(
                    "no certificate yet: requesting one for {} from {}",
                    settings.identity, settings.url
                )),
                ..IdentityStatus::default()
            });
            let client = certify::Client::new(settings.clone())?;
            tokio::spawn(client.run(tls.clone(), store.clone(), metrics.clone()));
            Ok(tls)
        }
    }
}

/// Swaps `credentials` in and records them; `received`: when they arrived (renewal is at
/// 70 % of the lifetime left from then).
fn put_in_force(
    tls: &Tls,
    credentials: Credentials,
    store: &Store,
    metrics: &Metrics,
    received: SystemTime,
) -> Result<SystemTime, crate::tls::TlsError> {
    let renew_at = credentials.renew_at(received);
    let status = IdentityStatus {
        id: Some(credentials.identity.to_string()),
        valid_until: Some(credentials.not_after),
        renew_at: Some(renew_at),
        not_ready: None,
        last_error: None,
    };
    let expiry = credentials
        .not_after
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    tls.update(credentials)?;
    metrics.identity_expiry.set(expiry.as_secs_f64());
    store.set_identity(status);
    Ok(renew_at)
}
