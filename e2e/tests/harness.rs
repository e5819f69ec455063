//! The end-to-end harness on its own (no proxy): the scripted backends, clients, toy gRPC
//! servers and the control plane do what the proxy tests rely on.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use trellis_e2e::backend::{Backend, TcpEcho};
use trellis_e2e::client::{
    Http1Conn, Http2Conn, chunked, empty, get_request, load, request, served_by,
};
use trellis_e2e::config::{Destination, backend, route, single, versions_in, yaml};
use trellis_e2e::control_plane::ControlPlane;
use trellis_e2e::grpc::{ToyIdentity, certify_request, identity_client_via};
use trellis_e2e::proxy::parse_listening;
use trellis_proxy_api::v1::discovery_client::DiscoveryClient;
use trellis_proxy_api::v1::{Ack, OutboundRequest, ack, outbound_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answers_with_its_name_follows_its_script_and_records_requests() {
    let b = Backend::start("backend-a").await;
    b.push_statuses([503, 502]);
    let mut conn = Http1Conn::connect(b.addr()).await.unwrap();

    let statuses: Vec<u16> = [
        conn.get("web.test", "/1").await.unwrap(),
        conn.get("web.test", "/2").await.unwrap(),
        conn.get("web.test", "/3").await.unwrap(),
    ]
    .iter()
    .map(|r| r.status.as_u16())
    .collect();
    assert_eq!(statuses, [503, 502, 200]);
    let reply = conn
        .send(
            request(Method::POST, "web.test", "/body")
                .header("x-test", "yes")
                .body(chunked(
                    vec![Bytes::from("a"), Bytes::from("b")],
                    Duration::from_millis(5),
                ))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.text(), "backend-a");
    assert_eq!(b.count(), 4);
    assert_eq!(b.connections(), 1, "one keep-alive connection");
    let last = b.requests().pop().unwrap();
    assert_eq!(
        (&last.method, last.path.as_str(), &last.body[..]),
        (&Method::POST, "/body", &b"ab"[..])
    );
    assert_eq!(last.header("x-test").as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_holds_requests_until_released_and_speaks_http2() {
    let b = Backend::start("backend-h").await;
    b.hold();
    let mut h2 = Http2Conn::connect(b.addr()).await.unwrap();
    let held = tokio::spawn(async move { h2.get("web.test", "/").await });
    assert!(b.wait_for_in_flight(1, Duration::from_secs(2)).await);
    b.release();
    let reply = held.await.unwrap().unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-h".into())
    );
    assert_eq!(b.requests()[0].version, http::Version::HTTP_2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_spreads_requests_over_connections() {
    let b = Backend::start("backend-l").await;
    let replies = load(b.addr(), 100, 10, |_| get_request("web.test", "/")).await;
    assert_eq!(served_by(&replies, "backend-l"), 100);
    assert_eq!(b.connections(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_upgrades_websocket_requests_and_echoes() {
    let b = Backend::start("backend-ws").await;
    let mut conn = Http1Conn::connect(b.addr()).await.unwrap();
    let response = conn
        .send_raw(
            request(Method::GET, "web.test", "/ws")
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 101);
    let mut io = TokioIo::new(hyper::upgrade::on(response).await.unwrap());
    io.write_all(b"ping").await.unwrap();
    let mut buf = [0; 4];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_echo_server_echoes() {
    let echo = TcpEcho::start().await;
    let mut s = TcpStream::connect(echo.addr()).await.unwrap();
    s.write_all(b"\x00\x01abc").await.unwrap();
    let mut buf = [0; 5];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x00\x01abc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_toy_identity_server_answers_grpc_directly() {
    let identity = ToyIdentity::start("identity-a").await;
    // Straight to the server, with a made-up :authority (as through the proxy).
    let mut client = identity_client_via(identity.addr(), "identity.test")
        .await
        .unwrap();
    let ok = client.certify(certify_request()).await.unwrap();
    assert_eq!(ok.into_inner().leaf_certificate, b"identity-a");
    identity.fail_with(tonic::Code::NotFound, "gone");
    let err = client.certify(certify_request()).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::NotFound, "gone"));
    assert_eq!(identity.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_pushes_versions_and_records_acks() {
    let cp = ControlPlane::start().await;
    let b = Backend::start("a").await;
    cp.set(single("web.test", "a", &[b.addr()]).version("1").proto());
    let mut client = DiscoveryClient::connect(cp.url()).await.unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(OutboundRequest {
        target: Some(outbound_request::Target::Authority("web.test".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut configs = client
        .watch_outbound(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = configs.message().await.unwrap().unwrap();
    assert_eq!(first.version, "1");
    assert_eq!(
        first.backends[0].endpoints[0]
            .address
            .as_ref()
            .unwrap()
            .port,
        u32::from(b.addr().port())
    );
    tx.send(OutboundRequest {
        ack: Some(Ack {
            result: Some(ack::Result::Applied("1".into())),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        cp.wait_for_applied("1", Duration::from_secs(2))
            .await
            .is_some()
    );

    cp.set(single("web.test", "a", &[b.addr()]).version("2").proto());
    let second = configs.message().await.unwrap().unwrap();
    assert_eq!(second.version, "2");
    assert_eq!(cp.subscriptions(), ["web.test"]);

    cp.kill();
    let ended = tokio::time::timeout(Duration::from_secs(2), configs.message())
        .await
        .expect("the stream ends when the control plane dies");
    assert!(!matches!(ended, Ok(Some(_))));
}

#[test]
fn config_files_render_as_yaml_the_proxy_api_reads() {
    let dest = Destination::new("web.test")
        .version("3")
        .route(route("split", &[("a", 80), ("b", 20)]))
        .backend(backend("a", &["127.0.0.1:8081".parse().unwrap()]))
        .backend(backend("b", &["127.0.0.1:8082".parse().unwrap()]));
    let file = yaml(std::slice::from_ref(&dest));
    assert_eq!(versions_in(&file), ["3"]);
    let parsed: serde_json::Value = serde_saphyr::from_str(&file).unwrap();
    assert_eq!(&parsed["outbound"][0], dest.json());
    let proto = dest.proto();
    assert_eq!(proto.routes[0].backends[1].weight, 20);
}

#[test]
fn the_listening_line_names_three_addresses() {
    let (o, i, a) = parse_listening(
        "trellis-proxy listening outbound=127.0.0.1:4140 inbound=0.0.0.0:4143 admin=[::1]:4191",
    )
    .unwrap();
    assert_eq!(
        (o.port(), i.port(), a.to_string().as_str()),
        (4140, 4143, "[::1]:4191")
    );
    assert!(parse_listening("trellis-proxy listening outbound=127.0.0.1:1").is_err());
}
