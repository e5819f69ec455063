use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use super::*;
use crate::webhook::certs;
use crate::webhook::server::tests::{mk_admission_review, mk_conversion_review};

/// The webhook server on 127.0.0.1 with a new certificate for namespace `mesh`.
async fn start() -> (SocketAddr, Tls, ServingCert) {
    let cert = certs::generate("mesh", SystemTime::now()).unwrap();
    let tls = Tls::new(&cert).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, tls.clone(), Routes::webhooks()));
    (addr, tls, cert)
}

/// A TLS connection to `addr` as the API server makes it: trusting `ca_pem` (the
/// caBundle), for the Service's DNS name, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let name = ServerName::try_from("trellis-operator.mesh.svc").unwrap();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

fn post(path: &str, review: Value) -> Request<Full<Bytes>> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(review.to_string())))
        .unwrap()
}

async fn json_of(response: http::Response<hyper::body::Incoming>) -> Value {
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_api_server_trusting_the_ca_gets_answers_over_http2() {
    let (addr, _, cert) = start().await;
    let tls = connect(addr, &cert.ca_pem, b"h2").await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);

    let answer = json_of(
        sender
            .send_request(post("/convert", mk_conversion_review()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["kind"], "ConversionReview");
    assert_eq!(answer["response"]["result"]["status"], "Success");

    let answer = json_of(
        sender
            .send_request(post("/validate", mk_admission_review()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "a-1");
    assert_eq!(answer["response"]["allowed"], false);
}

#[tokio::test]
async fn http1_clients_are_served_too() {
    let (addr, _, cert) = start().await;
    let tls = connect(addr, &cert.ca_pem, b"http/1.1").await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let answer = json_of(
        sender
            .send_request(post("/convert", mk_conversion_review()))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(answer["response"]["uid"], "c-1");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_fails_the_handshake() {
    let (addr, _, _) = start().await;
    let other = certs::generate("mesh", SystemTime::now()).unwrap();
    let err = connect(addr, &other.ca_pem, b"h2").await.unwrap_err();
    // Every Trellis webhook CA has the same name: the signature is what fails.
    assert_eq!(err.to_string(), "invalid peer certificate: BadSignature");
}

#[tokio::test]
async fn a_reloaded_certificate_is_served_to_new_connections() {
    let (addr, tls, old) = start().await;
    let new = certs::generate("mesh", SystemTime::now()).unwrap();
    tls.reload(&new).unwrap();
    assert!(connect(addr, &new.ca_pem, b"h2").await.is_ok());
    assert!(connect(addr, &old.ca_pem, b"h2").await.is_err());
}

#[test]
fn a_bad_key_is_refused_naming_the_file() {
    let cert = certs::generate("mesh", SystemTime::now()).unwrap();
    let bad = ServingCert {
        key_pem: "garbage".to_owned(),
        ..cert
    };
    let err = server_config(&bad).err().unwrap();
    assert!(err.to_string().starts_with("tls.key: "), "{err}");
}
