//! Real TLS 1.3 handshakes between the two ends, over an in-memory pipe.

use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn web() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "web")
}

fn api() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "api")
}

fn mk_tls(ca: &Ca, id: &SpiffeId, roots: &str) -> Tls {
    let issued = ca.issue_pem(id, DAY).unwrap();
    Tls::new(Credentials::from_pem(&issued.cert, &issued.key, roots).unwrap()).unwrap()
}

/// Runs a handshake; returns what each side saw: the server's view of the client identity
/// and the client's error, if any.
async fn handshake(
    client: &Tls,
    expect: &SpiffeId,
    server: &Tls,
) -> (Option<SpiffeId>, Result<Vec<u8>, String>) {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server.server_config().unwrap());
    let server_side = tokio::spawn(async move {
        let mut stream = acceptor.accept(b).await.ok()?;
        let id = peer_identity(stream.get_ref().1);
        stream.write_all(b"hello").await.ok()?;
        stream.shutdown().await.ok()?;
        id
    });
    let connector = TlsConnector::from(client.client_config(expect).unwrap());
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let client_result = async {
        let mut stream = connector
            .connect(name, a)
            .await
            .map_err(|e| e.to_string())?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(alpn.as_deref(), Some(ALPN));
        let mut buf = Vec::new();
        stream
            .read_to_end(&mut buf)
            .await
            .map_err(|e| e.to_string())?;
        Ok(buf)
    }
    .await;
    (server_side.await.unwrap(), client_result)
}

#[tokio::test]
async fn peers_with_the_expected_identities_talk_and_see_each_other() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let roots = ca.root_pem();
    let client = mk_tls(&ca, &web(), &roots);
    let server = mk_tls(&ca, &api(), &roots);
    let (seen_by_server, got) = handshake(&client, &api(), &server).await;
    assert_eq!(got.unwrap(), b"hello");
    assert_eq!(seen_by_server, Some(web()));
}

#[tokio::test]
async fn a_server_with_another_identity_is_refused() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let roots = ca.root_pem();
    let client = mk_tls(&ca, &web(), &roots);
    let impostor = mk_tls(&ca, &SpiffeId::new("cluster.local", "shop", "evil"), &roots);
    let (_, got) = handshake(&client, &api(), &impostor).await;
    let err = got.unwrap_err();
    assert!(
        err.contains("IdentityMismatch") && err.contains("\"evil\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_certificate_from_another_root_is_refused_both_ways() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let other = Ca::new("cluster.local", DAY).unwrap();
    let client = mk_tls(&ca, &web(), &ca.root_pem());
    let stranger = mk_tls(&other, &api(), &other.root_pem());
    let (_, got) = handshake(&client, &api(), &stranger).await;
    let err = got.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    let (seen, got) = handshake(&stranger, &web(), &client).await;
    assert_eq!(seen, None, "the server refused the unknown client");
    assert!(got.is_err());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let server = mk_tls(&ca, &api(), &ca.root_pem());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.root().clone()).unwrap();
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(
            Arc::new(roots),
            api(),
        )))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server.server_config().unwrap());
    let server_side = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let _ = connector.connect(name, a).await;
    let refused = server_side.await.unwrap().unwrap_err().to_string();
    assert!(refused.contains("peer sent no certificates"), "{refused}");
}

#[tokio::test]
async fn while_roots_rotate_both_roots_are_trusted() {
    let old = Ca::new("cluster.local", DAY).unwrap();
    let new = Ca::new("cluster.local", DAY).unwrap();
    let both = format!("{}{}", old.root_pem(), new.root_pem());
    let client = mk_tls(&old, &web(), &both);
    let server_on_new = mk_tls(&new, &api(), &both);
    let (seen, got) = handshake(&client, &api(), &server_on_new).await;
    assert_eq!(got.unwrap(), b"hello");
    assert_eq!(seen, Some(web()));
}

#[tokio::test]
async fn renewed_credentials_apply_to_the_next_handshake() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let roots = ca.root_pem();
    let client = mk_tls(&ca, &web(), &roots);
    let server = mk_tls(&ca, &api(), &roots);
    let first = server.credentials().unwrap().not_after;
    let renewed = ca.issue_pem(&api(), 2 * DAY).unwrap();
    server
        .update(Credentials::from_pem(&renewed.cert, &renewed.key, &roots).unwrap())
        .unwrap();
    assert!(server.credentials().unwrap().not_after > first);
    let (_, got) = handshake(&client, &api(), &server).await;
    assert_eq!(got.unwrap(), b"hello");
}

#[test]
fn renewal_is_due_at_70_percent_of_the_lifetime() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let issued = ca.issue_pem(&web(), Duration::from_secs(1000)).unwrap();
    let creds = Credentials::from_pem(&issued.cert, &issued.key, &ca.root_pem()).unwrap();
    let from = creds.not_after - Duration::from_secs(1000);
    let due = creds.renew_at(from).duration_since(from).unwrap();
    assert_eq!(due.as_secs(), 700);
}

#[test]
fn a_certificate_without_a_spiffe_id_is_refused_with_the_expected_form() {
    let ca = Ca::new("cluster.local", DAY).unwrap();
    let err = Credentials::from_pem(&ca.root_pem(), "", &ca.root_pem())
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("private key"), "{err}");
    let key = rcgen::KeyPair::generate().unwrap();
    let err = Credentials::from_pem(&ca.root_pem(), &key.serialize_pem(), &ca.root_pem())
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        err,
        "the certificate carries no SPIFFE id (URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>)"
    );
}
