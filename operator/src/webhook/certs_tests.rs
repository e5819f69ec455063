use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::identity::x509::{certificates, parse_cert};

const DAY: Duration = Duration::from_secs(86400);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn mk_cert(namespace: &str) -> ServingCert {
    generate(namespace, t0()).unwrap()
}

#[test]
fn the_serving_certificate_names_the_operator_service() {
    let cert = mk_cert("trellis-system");
    let ders = certificates(&cert.cert_pem).unwrap();
    assert_eq!(ders.len(), 1);
    let leaf = parse_cert(&ders[0]).unwrap();
    assert_eq!(
        san_dns_names(&leaf),
        [
            "trellis-operator.trellis-system.svc",
            "trellis-operator.trellis-system.svc.cluster.local"
        ]
    );
    assert!(!leaf.is_ca());
    let ca_ders = certificates(&cert.ca_pem).unwrap();
    let ca = parse_cert(&ca_ders[0]).unwrap();
    assert!(ca.is_ca());
    assert_eq!(ca.subject().to_string(), "O=Trellis, CN=Trellis webhook CA");
    assert_eq!(leaf.issuer(), ca.subject());
    assert!(cert.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn a_fresh_certificate_is_kept_until_30_days_before_it_expires() {
    let cert = mk_cert("mesh");
    assert_eq!(renewal(&cert, "mesh", t0()), None);
    assert_eq!(renewal(&cert, "mesh", t0() + 335 * DAY), None);
    assert_eq!(
        renewal(&cert, "mesh", t0() + 336 * DAY - Duration::from_secs(1)),
        Some(Renewal::ExpiresSoon { days_left: 29 })
    );
}

#[test]
fn an_expired_certificate_is_renewed() {
    let cert = mk_cert("mesh");
    assert_eq!(
        renewal(&cert, "mesh", t0() + 366 * DAY),
        Some(Renewal::Expired)
    );
}

#[test]
fn a_certificate_for_another_namespace_is_renewed() {
    let cert = mk_cert("old-namespace");
    assert_eq!(
        renewal(&cert, "mesh", t0()),
        Some(Renewal::WrongNames {
            found: vec![
                "trellis-operator.old-namespace.svc".to_owned(),
                "trellis-operator.old-namespace.svc.cluster.local".to_owned()
            ]
        })
    );
}

#[test]
fn unreadable_files_are_renewed_naming_the_file() {
    let good = mk_cert("mesh");
    let bad_crt = ServingCert {
        cert_pem: "not a certificate".to_owned(),
        ..good.clone()
    };
    assert_eq!(
        renewal(&bad_crt, "mesh", t0()),
        Some(Renewal::Unreadable(
            "tls.crt: bad PEM: no -----BEGIN CERTIFICATE----- block".to_owned()
        ))
    );
    let no_ca = ServingCert {
        ca_pem: String::new(),
        ..good.clone()
    };
    assert_eq!(
        renewal(&no_ca, "mesh", t0()),
        Some(Renewal::Unreadable("ca.crt: empty".to_owned()))
    );
    let bad_key = ServingCert {
        key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_owned(),
        ..good
    };
    assert!(
        matches!(renewal(&bad_key, "mesh", t0()), Some(Renewal::Unreadable(why)) if why.starts_with("tls.key: ")),
    );
}

#[test]
fn a_key_of_another_certificate_is_renewed() {
    let cert = ServingCert {
        key_pem: mk_cert("mesh").key_pem,
        ..mk_cert("mesh")
    };
    assert_eq!(renewal(&cert, "mesh", t0()), Some(Renewal::KeyMismatch));
}

#[test]
fn a_certificate_of_another_ca_is_renewed() {
    // Same CA name, another CA key: only the signature tells them apart.
    let cert = ServingCert {
        ca_pem: mk_cert("mesh").ca_pem,
        ..mk_cert("mesh")
    };
    assert_eq!(renewal(&cert, "mesh", t0()), Some(Renewal::NotIssuedByCa));
}

#[test]
fn a_renewal_keeps_trusting_the_previous_ca_while_it_is_valid() {
    let old = mk_cert("mesh");
    let new = renew(&old, "mesh", t0() + 340 * DAY).unwrap();
    assert_eq!(renewal(&new, "mesh", t0() + 340 * DAY), None);
    let bundle = certificates(&new.ca_pem).unwrap();
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[1], certificates(&old.ca_pem).unwrap()[0]);

    let after_expiry = renew(&old, "mesh", t0() + 400 * DAY).unwrap();
    assert_eq!(certificates(&after_expiry.ca_pem).unwrap().len(), 1);
}

#[test]
fn the_private_key_is_not_printed() {
    let cert = mk_cert("mesh");
    let debug = format!("{cert:?}");
    assert!(debug.contains("<redacted>"));
    assert!(!debug.contains("PRIVATE KEY"));
}

#[test]
fn renewal_reasons_read_as_log_lines() {
    assert_eq!(
        Renewal::ExpiresSoon { days_left: 12 }.to_string(),
        "it expires in 12 days (renewed 30 days ahead)"
    );
    assert_eq!(
        Renewal::WrongNames {
            found: vec!["a.svc".to_owned()]
        }
        .to_string(),
        "it is for DNS names [a.svc], not this namespace's Service"
    );
}
