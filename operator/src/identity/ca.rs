//! The CA material in memory: the trusted roots, the issuer (an intermediate CA signed by
//! one of the roots) and the issuer's key; generating it, checking it, signing leaves.
//!
//! ```text
//! root (self-signed, CA, pathlen 1)   <- its key signs the issuer once and is thrown away
//!   `- issuer (CA, pathlen 0)         <- issuer.key.pem signs every workload certificate
//!        `- leaf: URI SAN spiffe://<td>/ns/<ns>/sa/<sa>, serverAuth + clientAuth
//! ```
//!
//! A root's private key is never written anywhere: a new issuer always comes with a new
//! root ([`CaPem::rotated`]), which is how roots rotate.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::IdentityError;
use super::spiffe::SpiffeId;
use super::store::Layout;
use super::x509::{
    certificates, csr_public_key, fingerprint, parse_cert, random_serial, system_time,
    whole_seconds,
};

/// Backdating of every certificate, for clocks a little behind ours.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The subject name of the roots Trellis generates.
pub fn root_name(trust_domain: &str) -> String {
    format!("Trellis root CA {trust_domain}")
}

/// The subject name of the issuers Trellis generates.
pub fn issuer_name(trust_domain: &str) -> String {
    format!("Trellis issuer {trust_domain}")
}

/// The three CA files' contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPem {
    /// `roots.pem`: every trusted root, oldest first.
    pub roots: String,
    /// `issuer.pem`: the issuer certificate.
    pub issuer: String,
    /// `issuer.key.pem`: the issuer's private key (PKCS#8).
    pub issuer_key: String,
}

impl CaPem {
    /// A new root for `trust_domain` and an issuer signed by it, both valid for `lifetime`.
    pub fn generate(
        trust_domain: &str,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<CaPem, IdentityError> {
        let (root, issuer, issuer_key) = new_root_and_issuer(trust_domain, lifetime, now)?;
        Ok(CaPem {
            roots: root,
            issuer,
            issuer_key,
        })
    }

    /// These files with a new root appended (the old ones stay trusted) and the issuer
    /// replaced by one signed by the new root.
    pub fn rotated(
        &self,
        trust_domain: &str,
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<CaPem, IdentityError> {
        let (root, issuer, issuer_key) = new_root_and_issuer(trust_domain, lifetime, now)?;
        let mut roots = self.roots.clone();
        if !roots.is_empty() && !roots.ends_with('\n') {
            roots.push('\n');
        }
        roots.push_str(&root);
        Ok(CaPem {
            roots,
            issuer,
            issuer_key,
        })
    }
}

/// PEM texts of a new root, an issuer signed by it and the issuer's key.
fn new_root_and_issuer(
    trust_domain: &str,
    lifetime: Duration,
    now: SystemTime,
) -> Result<(String, String, String), IdentityError> {
    let now = whole_seconds(now);
    let not_after = now + lifetime;

    let root_key = KeyPair::generate().map_err(IdentityError::generate("the root key"))?;
    let mut params = ca_params(&root_name(trust_domain), 1, now, not_after);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = params
        .self_signed(&root_key)
        .map_err(IdentityError::generate("the root certificate"))?;
    let root_issuer = Issuer::new(params, root_key);

    let issuer_key = KeyPair::generate().map_err(IdentityError::generate("the issuer key"))?;
    let mut params = ca_params(&issuer_name(trust_domain), 0, now, not_after);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    let issuer = params
        .signed_by(&issuer_key, &root_issuer)
        .map_err(IdentityError::generate("the issuer certificate"))?;
    Ok((root.pem(), issuer.pem(), issuer_key.serialize_pem()))
}

fn ca_params(
    name: &str,
    path_len: u8,
    now: SystemTime,
    not_after: SystemTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Trellis");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.serial_number = Some(random_serial());
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = not_after.into();
    params
}

/// One trusted root.
#[derive(Clone, Debug)]
pub struct Root {
    pub der: Vec<u8>,
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// The subject, e.g. `O=Trellis, CN=Trellis root CA cluster.local`.
    pub subject: String,
    pub not_after: SystemTime,
    /// `not_after` as text, e.g. `Jan  1 00:00:00 2035 +00:00`.
    pub not_after_text: String,
}

/// A signed workload certificate.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub der: Vec<u8>,
    pub not_after: SystemTime,
}

/// Why a leaf was not issued.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// The CSR is not a valid PKCS#10 request (the client's fault).
    #[error("{0}")]
    Csr(String),
    /// The issuer expired: nothing can be issued until the CA is rotated.
    #[error("the CA's issuer expired on {0}; an operator must run `trellis identity rotate-root`")]
    IssuerExpired(String),
    #[error("signing the certificate: {0}")]
    Sign(#[from] rcgen::Error),
}

/// Checked CA material, ready to sign.
pub struct CaMaterial {
    roots: Vec<Root>,
    issuer_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
    issuer_not_after: SystemTime,
    issuer_not_after_text: String,
    /// Index in `roots` of the root that signed the issuer.
    issuer_root: usize,
}

impl std::fmt::Debug for CaMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial")
            .field("roots", &self.roots)
            .field("issuer_not_after", &self.issuer_not_after_text)
            .field("issuer_root", &self.issuer_root)
            .finish_non_exhaustive()
    }
}

impl CaMaterial {
    /// Checks the files' contents (`files` names them in errors): every root parses, is a
    /// self-signed CA; the issuer is a CA signed by one of the roots and not expired at
    /// `now`; the key is the issuer's.
    pub fn parse(
        pem: &CaPem,
        files: &Layout,
        now: SystemTime,
    ) -> Result<CaMaterial, IdentityError> {
        let roots_file = &files.roots;
        let root_ders = certificates(&pem.roots).map_err(|e| IdentityError::file(roots_file, e))?;
        if root_ders.is_empty() {
            return Err(IdentityError::file(
                roots_file,
                "no CERTIFICATE block: the file holds the trusted roots (one, or during a rotation several)",
            ));
        }
        let mut roots = Vec::with_capacity(root_ders.len());
        for (i, der) in root_ders.iter().enumerate() {
            let n = i + 1;
            let cert = parse_cert(der)
                .map_err(|e| IdentityError::file(roots_file, format!("certificate {n}: {e}")))?;
            let subject = cert.subject().to_string();
            if !cert.is_ca() {
                return Err(IdentityError::file(
                    roots_file,
                    format!("certificate {n} ({subject}) is not a CA certificate"),
                ));
            }
            if cert.verify_signature(None).is_err() {
                return Err(IdentityError::file(
                    roots_file,
                    format!(
                        "certificate {n} ({subject}) is not self-signed: the file holds roots only"
                    ),
                ));
            }
            roots.push(Root {
                fingerprint: fingerprint(der),
                subject,
                not_after: system_time(&cert),
                not_after_text: cert.validity().not_after.to_string(),
                der: der.clone(),
            });
        }

        let issuer_file = &files.issuer;
        let issuer_ders =
            certificates(&pem.issuer).map_err(|e| IdentityError::file(issuer_file, e))?;
        let [issuer_der] = &issuer_ders[..] else {
            return Err(IdentityError::file(
                issuer_file,
                format!(
                    "holds {} certificates: it must hold exactly one, the issuer",
                    issuer_ders.len()
                ),
            ));
        };
        let cert = parse_cert(issuer_der).map_err(|e| IdentityError::file(issuer_file, e))?;
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(IdentityError::file(
                issuer_file,
                format!("the issuer ({subject}) is not a CA certificate"),
            ));
        }
        let issuer_not_after = system_time(&cert);
        let issuer_not_after_text = cert.validity().not_after.to_string();
        if now >= issuer_not_after {
            return Err(IdentityError::file(
                issuer_file,
                format!(
                    "the issuer expired on {issuer_not_after_text}: run `trellis identity rotate-root --data-dir <dir>` for a new root and issuer"
                ),
            ));
        }
        let issuer_root = root_ders
            .iter()
            .position(|root| {
                parse_cert(root).is_ok_and(|root| {
                    root.subject() == cert.issuer()
                        && cert.verify_signature(Some(root.public_key())).is_ok()
                })
            })
            .ok_or_else(|| {
                IdentityError::file(
                    issuer_file,
                    format!(
                        "the issuer ({subject}) is not signed by any of the {} root(s) in {}",
                        roots.len(),
                        roots_file.display()
                    ),
                )
            })?;
        if now >= roots[issuer_root].not_after {
            return Err(IdentityError::file(
                roots_file,
                format!(
                    "root {} ({}), which signed the issuer, has expired: run `trellis identity rotate-root --data-dir <dir>`",
                    issuer_root + 1,
                    roots[issuer_root].subject
                ),
            ));
        }

        let key_file = &files.issuer_key;
        let key = KeyPair::from_pem(&pem.issuer_key).map_err(|e| {
            IdentityError::file(key_file, format!("not a PEM private key (PKCS#8): {e}"))
        })?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(IdentityError::file(
                key_file,
                format!(
                    "the key does not match the issuer certificate in {}",
                    issuer_file.display()
                ),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&issuer_der[..].into(), key)
            .map_err(|e| IdentityError::file(issuer_file, format!("the issuer: {e}")))?;
        Ok(CaMaterial {
            roots,
            issuer_der: issuer_der.clone(),
            issuer,
            issuer_not_after,
            issuer_not_after_text,
            issuer_root,
        })
    }

    /// Every trusted root, in file order (oldest first).
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// The root that signed the issuer.
    pub fn issuer_root(&self) -> &Root {
        &self.roots[self.issuer_root]
    }

    pub fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    pub fn issuer_not_after(&self) -> SystemTime {
        self.issuer_not_after
    }

    /// A leaf for `id` over the public key of `csr` (PKCS#10 DER, whose signature must
    /// prove the key), valid from `now` minus [`CLOCK_SKEW`] for `lifetime`, never past
    /// the issuer. The CSR's names and extensions are ignored: the leaf names `id` only.
    pub fn certify(
        &self,
        id: &SpiffeId,
        csr: &[u8],
        lifetime: Duration,
        now: SystemTime,
    ) -> Result<Leaf, CertifyError> {
        let public_key = csr_public_key(csr).map_err(CertifyError::Csr)?;
        let now = whole_seconds(now);
        if now >= self.issuer_not_after {
            return Err(CertifyError::IssuerExpired(
                self.issuer_not_after_text.clone(),
            ));
        }
        let not_after = (now + lifetime).min(self.issuer_not_after);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial());
        params.not_before = (now - CLOCK_SKEW).into();
        params.not_after = not_after.into();
        let leaf = params.signed_by(&public_key, &self.issuer)?;
        Ok(Leaf {
            der: leaf.der().to_vec(),
            not_after,
        })
    }
}
