//! Certificates for the two-proxy targets: one certificate authority per bench run, a client
//! and a server identity issued by it, written in the layout each proxy reads. trellis-proxy
//! and HAProxy get the same certificates (ECDSA P-256, the SPIFFE id as the only name).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result};
use trellis_proxy::tls::{Ca, IssuedPem, SpiffeId};

pub const TRUST_DOMAIN: &str = "bench.local";
const NAMESPACE: &str = "bench";
/// Long enough for any run; nothing renews them.
const LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub fn client_id() -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, NAMESPACE, "client")
}

pub fn server_id() -> SpiffeId {
    SpiffeId::new(TRUST_DOMAIN, NAMESPACE, "server")
}

/// A client and a server certificate from one fresh CA.
pub struct Pair {
    pub roots: String,
    pub client: IssuedPem,
    pub server: IssuedPem,
}

impl Pair {
    /// The run's certificates, issued on first use.
    pub fn shared() -> Result<&'static Pair> {
        static PAIR: OnceLock<Result<Pair, String>> = OnceLock::new();
        PAIR.get_or_init(|| Pair::issue().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn issue() -> Result<Self> {
        let ca = Ca::new(TRUST_DOMAIN, LIFETIME).context("creating the bench CA")?;
        let issue = |id: &SpiffeId| {
            ca.issue_pem(id, LIFETIME)
                .with_context(|| format!("issuing a certificate for {id}"))
        };
        Ok(Pair {
            roots: ca.root_pem(),
            client: issue(&client_id())?,
            server: issue(&server_id())?,
        })
    }
}

/// `dir/cert.pem`, `dir/key.pem`, `dir/roots.pem`: what `trellis-proxy --identity-dir` reads.
pub fn write_trellis_dir(dir: &Path, issued: &IssuedPem, roots: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in [
        ("cert.pem", issued.cert.as_str()),
        ("key.pem", issued.key.as_str()),
        ("roots.pem", roots),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir.to_owned())
}

/// HAProxy's `crt` file: the certificate followed by its key, in one PEM file.
pub fn haproxy_crt(issued: &IssuedPem) -> String {
    let mut pem = issued.cert.clone();
    if !pem.ends_with('\n') {
        pem.push('\n');
    }
    pem.push_str(&issued.key);
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_gets_certificate_then_key_in_one_file() {
        let pem = haproxy_crt(&IssuedPem {
            cert: "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----".into(),
            key: "-----BEGIN PRIVATE KEY-----\nBB\n-----END PRIVATE KEY-----\n".into(),
        });
        assert_eq!(
            pem,
            "-----BEGIN CERTIFICATE-----\nAA\n-----END CERTIFICATE-----\n\
             -----BEGIN PRIVATE KEY-----\nBB\n-----END PRIVATE KEY-----\n"
        );
    }

    #[test]
    fn identities_are_the_ones_the_mtls_check_looks_for() {
        assert_eq!(
            client_id().to_string(),
            "spiffe://bench.local/ns/bench/sa/client"
        );
        assert_eq!(
            server_id().to_string(),
            "spiffe://bench.local/ns/bench/sa/server"
        );
    }
}
