//! X.509 and PEM odds and ends: reading PEM certificates and CSRs, writing PEM, names for
//! certificates (fingerprints), random serials and whole-second times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::SerialNumber;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

/// 128 random bits, positive.
pub fn random_serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random number generator");
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

/// `t` without its fraction of a second (certificates hold whole seconds).
pub fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The public key of a PKCS#10 request whose signature it verifies (proof of possession).
pub fn csr_public_key(der: &[u8]) -> Result<rcgen::SubjectPublicKeyInfo, String> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| format!("not a PKCS#10 certificate signing request (DER): {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after the certificate signing request",
            rest.len()
        ));
    }
    csr.verify_signature().map_err(|e| {
        format!("the request's signature does not verify with its own public key ({e}): no proof of possession of the key")
    })?;
    rcgen::SubjectPublicKeyInfo::from_der(csr.certification_request_info.subject_pki.raw)
        .map_err(|e| format!("the request's public key is not usable: {e}"))
}

/// The DER of every `CERTIFICATE` block of a PEM text.
pub fn certificates(pem: &str) -> Result<Vec<Vec<u8>>, String> {
    let mut ders = Vec::new();
    for (i, block) in Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|e| format!("bad PEM (block {}): {e}", i + 1))?;
        if block.label != "CERTIFICATE" {
            return Err(format!(
                "block {} is a {}, not a CERTIFICATE",
                i + 1,
                block.label
            ));
        }
        ders.push(block.contents);
    }
    if ders.is_empty() && !pem.trim().is_empty() {
        return Err("bad PEM: no -----BEGIN CERTIFICATE----- block".to_owned());
    }
    Ok(ders)
}

/// `der` as a PEM `CERTIFICATE` block.
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

pub fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))
}

/// When `cert` expires.
pub fn system_time(cert: &X509Certificate<'_>) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(cert.validity().not_after.timestamp().max(0) as u64)
}

/// SHA-256 of `der`, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
