//! Protocols through the proxy: HTTP/2 with prior knowledge, real gRPC (tonic on both
//! ends), chunked HTTP/1.1 bodies, WebSocket-style upgrades and opaque TCP.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_e2e::backend::{Backend, TcpEcho};
use trellis_e2e::client::{Http1Conn, Http2Conn, chunked, empty, request};
use trellis_e2e::config::{single, yaml};
use trellis_e2e::grpc::{ToyIdentity, certify_request, identity_client_via};
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";
const IDENTITY: &str = "identity.test";

async fn proxy_to(authority: &str, addr: std::net::SocketAddr) -> Proxy {
    Proxy::start(&yaml(&[single(authority, "svc", &[addr])]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_prior_knowledge_client_is_proxied() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let mut conn = Http2Conn::connect(proxy.outbound).await.unwrap();

    for i in 0..3 {
        let reply = conn.get(WEB, &format!("/h2/{i}")).await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "backend-a".into())
        );
    }

    let paths: Vec<_> = a.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/h2/0", "/h2/1", "/h2/2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_through_the_proxy_succeeds() {
    let identity = ToyIdentity::start("identity-a").await;
    let proxy = proxy_to(IDENTITY, identity.addr()).await;
    let mut client = identity_client_via(proxy.outbound, IDENTITY).await.unwrap();

    let response = client
        .certify(certify_request())
        .await
        .unwrap()
        .into_inner();

    assert_eq!(response.leaf_certificate, b"identity-a");
    assert_eq!(identity.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_error_status_reaches_the_client_with_its_code_and_message() {
    let identity = ToyIdentity::start("identity-a").await;
    identity.fail_with(tonic::Code::NotFound, "no workload shop/web");
    let proxy = proxy_to(IDENTITY, identity.addr()).await;
    let mut client = identity_client_via(proxy.outbound, IDENTITY).await.unwrap();

    let status = client.certify(certify_request()).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "no workload shop/web");
    assert_eq!(identity.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_to_an_unknown_authority_is_unavailable() {
    let identity = ToyIdentity::start("identity-a").await;
    let proxy = proxy_to(IDENTITY, identity.addr()).await;
    let mut client = identity_client_via(proxy.outbound, "nowhere.test")
        .await
        .unwrap();

    let status = client.certify(certify_request()).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert_eq!(identity.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_request_body_arrives_intact() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let chunks: Vec<Bytes> = ["first chunk, ", "second chunk, ", "and the last one"]
        .into_iter()
        .map(Bytes::from)
        .collect();

    let reply = conn
        .send(
            request(Method::POST, WEB, "/upload")
                .body(chunked(chunks, Duration::from_millis(50)))
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    let seen = a.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        &seen[0].body[..],
        b"first chunk, second chunk, and the last one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_passes_through_and_bytes_flow_both_ways() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let response = conn
        .send_raw(
            request(Method::GET, WEB, "/chat")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let upgraded = tokio::time::timeout(Duration::from_secs(5), hyper::upgrade::on(response))
        .await
        .expect("upgraded in time")
        .unwrap();
    let mut io = TokioIo::new(upgraded);

    for message in [&b"hello over the upgrade"[..], b"\x00\x01\x02 binary too"] {
        io.write_all(message).await.unwrap();
        let mut echoed = vec![0; message.len()];
        tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut echoed))
            .await
            .expect("the echo came back")
            .unwrap();
        assert_eq!(echoed, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_tcp_on_the_inbound_listener_reaches_the_app_and_comes_back() {
    let echo = TcpEcho::start().await;
    let unused = Backend::start("unused").await;
    let proxy = Proxy::builder()
        .config(&yaml(&[single(WEB, "svc", &[unused.addr()])]))
        .inbound_target(echo.addr())
        .start()
        .await
        .unwrap();
    let mut stream = TcpStream::connect(proxy.inbound).await.unwrap();

    for message in [
        &b"\x00\x01 not http at all \xff\xfe"[..],
        b"a second write on the same stream\n",
    ] {
        stream.write_all(message).await.unwrap();
        let mut echoed = vec![0; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .expect("the echo came back through the proxy")
            .unwrap();
        assert_eq!(echoed, message);
    }
    assert_eq!(echo.connections(), 1);
}
