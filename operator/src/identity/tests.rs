//! The CA files and the certificates signed with them.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, KeyPair, SanType};
use x509_parser::extensions::GeneralName;

use super::ca::CertifyError;
use super::x509::{certificate_pem, certificates, whole_seconds};
use super::*;

const TD: &str = "cluster.local";
const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
const HOUR: Duration = Duration::from_secs(3600);

fn web() -> SpiffeId {
    "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap()
}

fn new_store(dir: &Path) -> CaStore {
    CaStore::load_or_create(dir, TD, YEAR).unwrap()
}

/// A CSR for `key` asking for other names than the one it will get.
fn csr(key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["evil.example".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/kube-system/sa/admin"
            .try_into()
            .unwrap(),
    ));
    params.serialize_request(key).unwrap().der().to_vec()
}

fn write(dir: &Path, pem: &CaPem) {
    Layout::new(dir).write(pem).unwrap();
}

fn load_err(dir: &Path) -> String {
    CaStore::load(dir).unwrap_err().to_string()
}

#[test]
fn the_ca_is_generated_once_then_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let first = new_store(dir.path());
    assert!(first.created());
    let second = new_store(dir.path());
    assert!(!second.created());
    let (a, b) = (first.material(), second.material());
    assert_eq!(a.roots().len(), 1);
    assert_eq!(a.roots()[0].fingerprint, b.roots()[0].fingerprint);
    assert_eq!(a.issuer_der(), b.issuer_der());
    assert_eq!(
        a.roots()[0].subject,
        "O=Trellis, CN=Trellis root CA cluster.local"
    );

    let layout = Layout::new(dir.path());
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&layout.issuer_key), 0o600);
    assert_eq!(mode(&layout.roots), 0o644);
    assert_eq!(mode(&layout.dir), 0o700);
}

#[test]
fn a_missing_file_beside_present_ones_is_named() {
    let dir = tempfile::tempdir().unwrap();
    new_store(dir.path());
    let layout = Layout::new(dir.path());
    std::fs::remove_file(&layout.issuer_key).unwrap();
    let err = CaStore::load_or_create(dir.path(), TD, YEAR)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}: missing", layout.issuer_key.display())),
        "{err}"
    );
}

#[test]
fn corrupt_files_are_named_with_what_is_wrong() {
    let now = SystemTime::now();
    let good = CaPem::generate(TD, YEAR, now).unwrap();
    let other = CaPem::generate(TD, YEAR, now).unwrap();
    let expired = CaPem::generate(TD, HOUR, now - 2 * HOUR).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let cases = [
        (
            CaPem {
                roots: "not pem at all".into(),
                ..good.clone()
            },
            &layout.roots,
            "bad PEM",
        ),
        (
            CaPem {
                roots: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
                ..good.clone()
            },
            &layout.roots,
            "certificate 1: not an X.509 certificate",
        ),
        (
            CaPem {
                roots: format!("{}{}", good.roots, good.issuer),
                ..good.clone()
            },
            &layout.roots,
            "certificate 2 (O=Trellis, CN=Trellis issuer cluster.local) is not self-signed",
        ),
        (
            CaPem {
                issuer: other.issuer.clone(),
                issuer_key: other.issuer_key.clone(),
                ..good.clone()
            },
            &layout.issuer,
            "is not signed by any of the 1 root(s)",
        ),
        (expired.clone(), &layout.issuer, "the issuer expired on"),
        (
            CaPem {
                issuer_key: other.issuer_key.clone(),
                ..good.clone()
            },
            &layout.issuer_key,
            "the key does not match the issuer certificate",
        ),
        (
            CaPem {
                issuer_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
                ..good.clone()
            },
            &layout.issuer_key,
            "not a PEM private key",
        ),
    ];
    for (pem, file, says) in cases {
        write(dir.path(), &pem);
        let err = load_err(dir.path());
        assert!(
            err.starts_with(&format!("{}: ", file.display())),
            "names {}: {err}",
            file.display()
        );
        assert!(err.contains(says), "{says:?}: {err}");
    }
}

#[test]
fn rotation_trusts_old_and_new_roots_and_the_issuer_chains_to_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = new_store(dir.path()).material();
    let rotation = rotate_root(dir.path(), None, YEAR).unwrap();
    let now = CaStore::load(dir.path()).unwrap().material();
    let fingerprints: Vec<&str> = now.roots().iter().map(|r| r.fingerprint.as_str()).collect();
    assert_eq!(
        fingerprints,
        [
            old.roots()[0].fingerprint.as_str(),
            rotation.new_root.fingerprint.as_str()
        ]
    );
    assert_eq!(now.issuer_root().fingerprint, rotation.new_root.fingerprint);
    assert_ne!(now.issuer_der(), old.issuer_der());
    assert_eq!(
        rotation.new_root.subject,
        "O=Trellis, CN=Trellis root CA cluster.local"
    );

    // The old root signed the issuer no more: it cannot be dropped by mistake the other way.
    let err = drop_root(dir.path(), &rotation.new_root.fingerprint[..12]).unwrap_err();
    assert!(
        err.to_string().contains("signed the issuer in force"),
        "{err}"
    );

    let dropped = drop_old_roots(dir.path()).unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].fingerprint, old.roots()[0].fingerprint);
    let roots = read_roots(dir.path()).unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0].fingerprint, rotation.new_root.fingerprint);
    assert!(drop_old_roots(dir.path()).unwrap().is_empty());
}

#[test]
fn a_root_is_dropped_by_its_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let old = new_store(dir.path()).material().roots()[0].clone();
    rotate_root(dir.path(), Some("example.org"), YEAR).unwrap();
    let third = rotate_root(dir.path(), None, YEAR).unwrap();
    assert_eq!(third.roots.len(), 3);
    assert_eq!(
        third.new_root.subject,
        "O=Trellis, CN=Trellis root CA example.org"
    );
    let colons: Vec<String> = old.fingerprint.as_bytes()[..16]
        .chunks(2)
        .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
        .collect();
    let dropped = drop_root(dir.path(), &format!("sha256:{}", colons.join(":"))).unwrap();
    assert_eq!(dropped.fingerprint, old.fingerprint);
    assert_eq!(read_roots(dir.path()).unwrap().len(), 2);
    for (bad, says) in [
        ("abc", "not a fingerprint"),
        ("0000000000000000", "no root"),
    ] {
        let err = drop_root(dir.path(), bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn rotation_recovers_from_an_expired_issuer() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &CaPem::generate(TD, HOUR, SystemTime::now() - 2 * HOUR).unwrap(),
    );
    assert!(load_err(dir.path()).contains("expired"));
    rotate_root(dir.path(), None, YEAR).unwrap();
    CaStore::load(dir.path()).unwrap();
}

#[test]
fn changed_files_are_reloaded_and_bad_ones_leave_the_ca_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    assert!(store.reload_if_changed().unwrap().is_none());
    let before = store.material();

    let layout = Layout::new(dir.path());
    std::fs::write(&layout.issuer, "garbage").unwrap();
    let err = store.reload_if_changed().unwrap_err().to_string();
    assert!(
        err.starts_with(&layout.issuer.display().to_string()),
        "{err}"
    );
    assert_eq!(store.material().issuer_der(), before.issuer_der());
    // Reported once, not at every poll.
    assert!(store.reload_if_changed().unwrap().is_none());

    rotate_root(dir.path(), None, YEAR).unwrap();
    let after = store.reload_if_changed().unwrap().expect("a new CA");
    assert_eq!(after.roots().len(), 2);
    assert_ne!(store.material().issuer_der(), before.issuer_der());
}

#[test]
fn a_leaf_names_the_requested_identity_only_and_lives_the_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_store(dir.path()).material();
    let key = KeyPair::generate().unwrap();
    let now = SystemTime::now();
    let leaf = ca.certify(&web(), &csr(&key), HOUR, now).unwrap();

    let (_, cert) = x509_parser::parse_x509_certificate(&leaf.der).unwrap();
    let names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => format!("URI:{u}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(names, ["URI:spiffe://cluster.local/ns/shop/sa/web"]);
    assert!(!cert.is_ca());
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let validity = cert.validity();
    let lifetime = validity.not_after.timestamp() - validity.not_before.timestamp();
    assert_eq!(lifetime, (HOUR + ca::CLOCK_SKEW).as_secs() as i64);
    assert_eq!(whole_seconds(now) + HOUR, leaf.not_after);
    let (_, issuer) = x509_parser::parse_x509_certificate(ca.issuer_der()).unwrap();
    cert.verify_signature(Some(issuer.public_key())).unwrap();

    // Two certificates never share a serial.
    let again = ca.certify(&web(), &csr(&key), HOUR, now).unwrap();
    let (_, again) = x509_parser::parse_x509_certificate(&again.der).unwrap();
    assert_ne!(cert.raw_serial(), again.raw_serial());
}

#[test]
fn a_leaf_never_outlives_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &CaPem::generate(TD, HOUR, SystemTime::now()).unwrap(),
    );
    let ca = CaStore::load(dir.path()).unwrap().material();
    let key = KeyPair::generate().unwrap();
    let leaf = ca
        .certify(&web(), &csr(&key), 10 * HOUR, SystemTime::now())
        .unwrap();
    assert_eq!(leaf.not_after, ca.issuer_not_after());
    let later = SystemTime::now() + 2 * HOUR;
    let err = ca.certify(&web(), &csr(&key), HOUR, later).unwrap_err();
    assert!(matches!(err, CertifyError::IssuerExpired(_)), "{err}");
}

#[test]
fn a_csr_must_parse_and_prove_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_store(dir.path()).material();
    let key = KeyPair::generate().unwrap();
    let mut tampered = csr(&key);
    // Change a byte of the signed request info (inside the requested DNS name).
    let at = tampered
        .windows(4)
        .position(|w| w == b"evil")
        .expect("the DNS name in the CSR");
    tampered[at] = b'd';
    for (der, says) in [
        (
            b"garbage".to_vec(),
            "not a PKCS#10 certificate signing request",
        ),
        (tampered, "no proof of possession"),
    ] {
        match ca.certify(&web(), &der, HOUR, SystemTime::now()) {
            Err(CertifyError::Csr(reason)) => assert!(reason.contains(says), "{reason}"),
            other => panic!("{says}: {other:?}"),
        }
    }
}

#[test]
fn pem_certificates_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_store(dir.path()).material();
    let der = ca.roots()[0].der.clone();
    assert_eq!(certificates(&certificate_pem(&der)).unwrap(), [der]);
}
