//! A workload's credentials: its certificate chain, private key and the trust anchors it
//! accepts peers from. Read from PEM (files or the Identity API's answer).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{SpiffeId, TlsError};

pub struct Credentials {
    /// The identity in the leaf certificate.
    pub identity: SpiffeId,
    /// Leaf first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Every root trusted for peers (old and new together while roots rotate).
    pub roots: Arc<RootCertStore>,
    pub not_after: SystemTime,
}

impl Credentials {
    /// From PEM texts: `cert` (leaf then intermediates), `key`, `roots` (one or more).
    pub fn from_pem(cert: &str, key: &str, roots: &str) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::pem("certificate", e))?;
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
            .map_err(|e| TlsError::pem("private key", e))?;
        let roots = CertificateDer::pem_slice_iter(roots.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::pem("roots", e))?;
        Self::new(chain, key, roots)
    }

    /// From DER: `chain` (leaf then intermediates), `key`, `roots` (one or more).
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        roots: Vec<CertificateDer<'static>>,
    ) -> Result<Self, TlsError> {
        let leaf = chain
            .first()
            .ok_or_else(|| TlsError::pem("certificate", "no CERTIFICATE block"))?;
        let mut store = RootCertStore::empty();
        for root in roots {
            store.add(root).map_err(|e| TlsError::pem("roots", e))?;
        }
        if store.is_empty() {
            return Err(TlsError::pem("roots", "no CERTIFICATE block"));
        }
        let (identity, not_after) = leaf_identity(leaf)?;
        Ok(Self {
            identity,
            chain,
            key,
            roots: Arc::new(store),
            not_after,
        })
    }

    /// From a directory holding `cert.pem`, `key.pem` and `roots.pem`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| TlsError::File {
                file: path.display().to_string(),
                message: e.to_string(),
            })
        };
        Self::from_pem(&read("cert.pem")?, &read("key.pem")?, &read("roots.pem")?).map_err(|e| {
            match e {
                TlsError::Pem { what, message } => TlsError::File {
                    file: dir.display().to_string(),
                    message: format!("{what}: {message}"),
                },
                other => other,
            }
        })
    }

    /// When the certificate should be renewed: at 70 % of its lifetime from `issued`.
    pub fn renew_at(&self, issued: SystemTime) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(issued)
            .unwrap_or(Duration::ZERO);
        issued + lifetime.mul_f64(0.7)
    }
}

/// The SPIFFE id (URI SAN) and expiry of a leaf certificate.
pub fn leaf_identity(cert: &CertificateDer<'_>) -> Result<(SpiffeId, SystemTime), TlsError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| TlsError::pem("certificate", e))?;
    let not_after =
        UNIX_EPOCH + Duration::from_secs(parsed.validity().not_after.timestamp().max(0) as u64);
    let uris: Vec<&str> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let id = uris
        .iter()
        .find_map(|u| u.parse::<SpiffeId>().ok())
        .ok_or(TlsError::NoIdentity)?;
    Ok((id, not_after))
}
