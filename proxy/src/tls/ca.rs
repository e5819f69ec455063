//! A certificate authority for workload identities: a self-signed root that issues short
//! leaf certificates whose only name is a SPIFFE id (URI SAN), usable for both ends of mTLS.
//! The control plane's `Identity.Certify` signs CSRs with it; tests use it directly.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;

use super::SpiffeId;

/// A root certificate and its key.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    root: rcgen::Certificate,
}

/// A leaf certificate with its private key, PEM-encoded.
#[derive(Clone, Debug)]
pub struct IssuedPem {
    pub cert: String,
    pub key: String,
}

impl Ca {
    /// A new root for `trust_domain`, valid for `lifetime`.
    pub fn new(trust_domain: &str, lifetime: Duration) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("trellis root {trust_domain}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = (SystemTime::now() - Duration::from_secs(60)).into();
        params.not_after = (SystemTime::now() + lifetime).into();
        let root = params.self_signed(&key)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            root,
        })
    }

    /// The root certificate (the trust anchor).
    pub fn root(&self) -> &CertificateDer<'static> {
        self.root.der()
    }

    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// A leaf for `id` over `public_key`, valid for `lifetime` (backdated a minute for
    /// clock skew).
    pub fn issue(
        &self,
        id: &SpiffeId,
        public_key: &impl rcgen::PublicKeyData,
        lifetime: Duration,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = (SystemTime::now() - Duration::from_secs(60)).into();
        params.not_after = (SystemTime::now() + lifetime).into();
        params.signed_by(public_key, &self.issuer)
    }

    /// Signs a certificate signing request (PKCS#10, DER) for `id`: the request's signature
    /// proves its key; its own names are ignored, the leaf names `id` only (the caller has
    /// checked the token proving `id`).
    pub fn certify(
        &self,
        id: &SpiffeId,
        csr: &[u8],
        lifetime: Duration,
    ) -> Result<rcgen::Certificate, rcgen::Error> {
        let request = rcgen::CertificateSigningRequestParams::from_der(&csr.to_vec().into())?;
        self.issue(id, &request.public_key, lifetime)
    }

    /// A fresh key and a leaf for `id`, both PEM-encoded (for files and tests).
    pub fn issue_pem(&self, id: &SpiffeId, lifetime: Duration) -> Result<IssuedPem, rcgen::Error> {
        let key = KeyPair::generate()?;
        let cert = self.issue(id, &key, lifetime)?;
        Ok(IssuedPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        })
    }
}
