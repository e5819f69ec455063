//! The webhook serving certificate: made, checked and renewed here as pure functions
//! (the clock is an argument); [`super::secret`] stores it.
//!
//! ```text
//! Trellis webhook CA (self-signed, CA, pathlen 0)   <- its key signs once, is thrown away
//!   `- serving cert: DNS trellis-operator.<ns>.svc, trellis-operator.<ns>.svc.cluster.local
//! ```
//!
//! The API server trusts the CA through the `caBundle` of the webhook configurations and
//! CRDs. A renewal makes a new CA and serving certificate; the bundle keeps the previous
//! CA next to the new one, so a replica still serving the old certificate stays trusted
//! until it picks up the new one.

use std::fmt;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use x509_parser::certificate::X509Certificate;

use crate::identity::ca::CLOCK_SKEW;
use crate::identity::x509::{
    certificate_pem, certificates, parse_cert, random_serial, system_time, whole_seconds,
};

/// The Service the API server calls (named in the webhook configurations).
pub const SERVICE: &str = "trellis-operator";

/// How long a generated CA and serving certificate are valid.
pub const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The CA's subject common name.
pub const CA_NAME: &str = "Trellis webhook CA";

/// What the Secret `trellis-webhook-tls` holds (PEM texts).
#[derive(Clone, PartialEq, Eq)]
pub struct ServingCert {
    /// `ca.crt`: the CA bundle the API server trusts (newest CA first).
    pub ca_pem: String,
    /// `tls.crt`: the serving certificate.
    pub cert_pem: String,
    /// `tls.key`: the serving certificate's private key (PKCS#8).
    pub key_pem: String,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Why a certificate could not be made (rcgen failures; not expected in practice).
#[derive(Debug, thiserror::Error)]
#[error("cannot generate the webhook {what}: {source}")]
pub struct CertError {
    what: &'static str,
    source: rcgen::Error,
}

/// Why the stored certificate is replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// `tls.crt`, `tls.key` or `ca.crt` cannot be read.
    Unreadable(String),
    Expired,
    /// Less than [`RENEW_BEFORE`] left.
    ExpiresSoon {
        days_left: u64,
    },
    /// Made for another namespace (the release moved) or by someone else.
    WrongNames {
        found: Vec<String>,
    },
    /// `tls.key` is not the key of `tls.crt`.
    KeyMismatch,
    /// `tls.crt` was not issued by the first CA of `ca.crt`.
    NotIssuedByCa,
}

impl fmt::Display for Renewal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Renewal::Unreadable(why) => write!(f, "it cannot be read: {why}"),
            Renewal::Expired => f.write_str("it has expired"),
            Renewal::ExpiresSoon { days_left } => write!(
                f,
                "it expires in {days_left} days (renewed {} days ahead)",
                RENEW_BEFORE.as_secs() / 86400
            ),
            Renewal::WrongNames { found } => write!(
                f,
                "it is for DNS names [{}], not this namespace's Service",
                found.join(", ")
            ),
            Renewal::KeyMismatch => f.write_str("tls.key is not the key of tls.crt"),
            Renewal::NotIssuedByCa => f.write_str("tls.crt was not issued by the CA of ca.crt"),
        }
    }
}

/// The DNS names the API server uses for the Service in `namespace`.
pub fn dns_names(namespace: &str) -> Vec<String> {
    vec![
        format!("{SERVICE}.{namespace}.svc"),
        format!("{SERVICE}.{namespace}.svc.cluster.local"),
    ]
}

/// A new CA and a serving certificate it signed for `namespace`, valid for [`LIFETIME`].
pub fn generate(namespace: &str, now: SystemTime) -> Result<ServingCert, CertError> {
    let now = whole_seconds(now);
    let not_after = now + LIFETIME;
    let err = |what| move |source| CertError { what, source };

    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca = params(CA_NAME, now, not_after);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(err("CA certificate"))?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().map_err(err("serving key"))?;
    let names = dns_names(namespace);
    let mut leaf = params(&names[0], now, not_after);
    leaf.subject_alt_names = names
        .iter()
        .map(|n| n.clone().try_into().map(SanType::DnsName))
        .collect::<Result<_, _>>()
        .map_err(err("serving certificate's DNS names"))?;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    let cert = leaf
        .signed_by(&key, &issuer)
        .map_err(err("serving certificate"))?;
    Ok(ServingCert {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A new certificate replacing `old`: the bundle also holds `old`'s CA while it is
/// valid, so that the old serving certificate stays trusted during the switch.
pub fn renew(
    old: &ServingCert,
    namespace: &str,
    now: SystemTime,
) -> Result<ServingCert, CertError> {
    let mut new = generate(namespace, now)?;
    let old_ca = certificates(&old.ca_pem)
        .ok()
        .and_then(|ders| ders.into_iter().next());
    let still_valid = |der: &[u8]| parse_cert(der).is_ok_and(|c| system_time(&c) > now);
    if let Some(der) = old_ca.filter(|der| still_valid(der)) {
        new.ca_pem.push_str(&certificate_pem(&der));
    }
    Ok(new)
}

/// Whether `cert` must be replaced, and why; `None` keeps it.
pub fn renewal(cert: &ServingCert, namespace: &str, now: SystemTime) -> Option<Renewal> {
    let unreadable = |file: &str, why: String| Some(Renewal::Unreadable(format!("{file}: {why}")));
    let leaf_der = match certificates(&cert.cert_pem) {
        Ok(ders) if !ders.is_empty() => ders.into_iter().next()?,
        Ok(_) => return unreadable("tls.crt", "empty".to_owned()),
        Err(e) => return unreadable("tls.crt", e),
    };
    let leaf = match parse_cert(&leaf_der) {
        Ok(c) => c,
        Err(e) => return unreadable("tls.crt", e),
    };
    let ca_der = match certificates(&cert.ca_pem) {
        Ok(ders) if !ders.is_empty() => ders.into_iter().next()?,
        Ok(_) => return unreadable("ca.crt", "empty".to_owned()),
        Err(e) => return unreadable("ca.crt", e),
    };
    let ca = match parse_cert(&ca_der) {
        Ok(c) => c,
        Err(e) => return unreadable("ca.crt", e),
    };
    let key = match KeyPair::from_pem(&cert.key_pem) {
        Ok(k) => k,
        Err(e) => return unreadable("tls.key", e.to_string()),
    };
    let not_after = system_time(&leaf).min(system_time(&ca));
    let Ok(left) = not_after.duration_since(now) else {
        return Some(Renewal::Expired);
    };
    if left < RENEW_BEFORE {
        return Some(Renewal::ExpiresSoon {
            days_left: left.as_secs() / 86400,
        });
    }
    let found = san_dns_names(&leaf);
    let mut wanted = dns_names(namespace);
    wanted.sort();
    let mut sorted = found.clone();
    sorted.sort();
    if sorted != wanted {
        return Some(Renewal::WrongNames { found });
    }
    if key.public_key_raw() != &*leaf.public_key().subject_public_key.data {
        return Some(Renewal::KeyMismatch);
    }
    if leaf.issuer() != ca.subject() || !signed_by(&leaf, &ca) {
        return Some(Renewal::NotIssuedByCa);
    }
    None
}

/// Whether `ca`'s key signed `leaf`. Only the algorithm Trellis uses (ECDSA P-256 with
/// SHA-256) is checked; a certificate signed otherwise was not made here and is replaced.
fn signed_by(leaf: &X509Certificate<'_>, ca: &X509Certificate<'_>) -> bool {
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
    use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256;
    leaf.signature_algorithm.algorithm == OID_SIG_ECDSA_WITH_SHA256
        && UnparsedPublicKey::new(
            &ECDSA_P256_SHA256_ASN1,
            &ca.public_key().subject_public_key.data,
        )
        .verify(leaf.tbs_certificate.as_ref(), &leaf.signature_value.data)
        .is_ok()
}

fn san_dns_names(cert: &X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some((*name).to_owned()),
            _ => None,
        })
        .collect()
}

fn params(common_name: &str, now: SystemTime, not_after: SystemTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Trellis");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.serial_number = Some(random_serial());
    params.not_before = (now - CLOCK_SKEW).into();
    params.not_after = not_after.into();
    params
}

#[cfg(test)]
#[path = "certs_tests.rs"]
mod tests;
