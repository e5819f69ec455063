//! Protocols through the proxy: HTTP/2 with prior knowledge, real gRPC (tonic on both
//! ends), chunked HTTP/1.1 bodies, WebSocket-style upgrades and opaque TCP.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_stream::wrappers::ReceiverStream;
use trellis_e2e::backend::{Backend, TcpEcho};
use trellis_e2e::client::{Http1Conn, Http2Conn, chunked, empty, full, get_request, request};
use trellis_e2e::config::{Destination, backend, route, single, with, yaml};
use trellis_e2e::control_plane::ControlPlane;
use trellis_e2e::grpc::{ToyIdentity, certify_request, channel_via, identity_client_via};
use trellis_e2e::proxy::Proxy;
use trellis_proxy_api::v1::discovery_client::DiscoveryClient;
use trellis_proxy_api::v1::{Ack, OutboundRequest, ack, outbound_request};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_past_the_route_timeout_gets_deadline_exceeded() {
    let identity = ToyIdentity::start("identity-a").await;
    identity.set_delay(Duration::from_secs(3));
    let dest = Destination::new(IDENTITY)
        .route(with(
            route("default", &[("svc", 1)]),
            "timeout",
            json!("0.3s"),
        ))
        .backend(backend("svc", &[identity.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut client = identity_client_via(proxy.outbound, IDENTITY).await.unwrap();

    let status = client.certify(certify_request()).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_over_the_rate_limit_gets_resource_exhausted() {
    let identity = ToyIdentity::start("identity-a").await;
    let dest = single(IDENTITY, "svc", &[identity.addr()])
        .set("rate_limit", json!({"requests_per_second": 1, "burst": 1}));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut client = identity_client_via(proxy.outbound, IDENTITY).await.unwrap();

    let first = client.certify(certify_request()).await;
    let second = client.certify(certify_request()).await;

    assert!(first.is_ok(), "{first:?}");
    let status = second.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(identity.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_on_the_inbound_listener_reaches_the_app() {
    let app = Backend::start("app").await;
    let unused = Backend::start("unused").await;
    let proxy = Proxy::builder()
        .config(&yaml(&[single(WEB, "svc", &[unused.addr()])]))
        .inbound_target(app.addr())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.inbound).await.unwrap();

    for i in 0..3 {
        let reply = conn.get("app.test", &format!("/in/{i}")).await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "app".into()));
    }

    assert_eq!(app.count(), 3);
    assert_eq!(unused.count(), 0);
    let m = proxy.metrics().await.unwrap();
    assert_eq!(
        trellis_e2e::metrics::sum(
            &m,
            "trellis_requests_total",
            &[("direction", "inbound"), ("status_code", "200")]
        ),
        3.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_response_reaches_the_client_as_the_backend_produces_it() {
    use http_body_util::BodyExt;
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let response = conn.send_raw(get_request(WEB, "/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(3), body.frame())
        .await
        .expect("the first chunk arrives before the backend sends the rest")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "chunk-1\n");

    a.release_streams();
    let rest = tokio::time::timeout(Duration::from_secs(3), body.collect())
        .await
        .expect("the rest arrives")
        .unwrap()
        .to_bytes();
    assert_eq!(rest, "chunk-2\nchunk-3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_pass_intact_both_ways_over_http1_and_http2() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let payload: Bytes = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let mut h1 = Http1Conn::connect(proxy.outbound).await.unwrap();
    let mut h2 = Http2Conn::connect(proxy.outbound).await.unwrap();

    let via_h1 = h1
        .send(
            request(Method::POST, WEB, "/echo")
                .body(full(payload.clone()))
                .unwrap(),
        )
        .await
        .unwrap();
    let via_h2 = h2
        .send(
            request(Method::PUT, WEB, "/echo")
                .body(full(payload.clone()))
                .unwrap(),
        )
        .await
        .unwrap();

    for (reply, seen) in [(via_h1, &a.requests()[0]), (via_h2, &a.requests()[1])] {
        assert_eq!(reply.status, 200);
        assert!(
            seen.body == payload,
            "the backend got {} bytes",
            seen.body.len()
        );
        assert!(
            reply.body == payload,
            "the client got {} bytes",
            reply.body.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_the_query_string_pass_through() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn
        .send(
            request(Method::GET, WEB, "/search?q=a%20b&page=2")
                .header("x-request-id", "req-123")
                .header("authorization", "Bearer secret")
                .header("cookie", "session=abc; theme=dark")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.header("x-backend").as_deref(), Some("backend-a"));
    let seen = &a.requests()[0];
    assert_eq!(seen.path, "/search?q=a%20b&page=2");
    assert_eq!(seen.header("host").as_deref(), Some(WEB));
    assert_eq!(seen.header("x-request-id").as_deref(), Some("req-123"));
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer secret")
    );
    assert_eq!(
        seen.header("cookie").as_deref(),
        Some("session=abc; theme=dark")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_streams_share_one_http2_connection() {
    let a = Backend::start("backend-a").await;
    let proxy = proxy_to(WEB, a.addr()).await;
    let conn = Http2Conn::connect(proxy.outbound).await.unwrap();

    let mut streams = Vec::new();
    for i in 0..100 {
        let mut conn = conn.clone();
        streams.push(tokio::spawn(async move {
            conn.get(WEB, &format!("/s/{i}")).await
        }));
    }
    for s in streams {
        let reply = s.await.unwrap().unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "backend-a".into())
        );
    }
    assert_eq!(a.count(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_grpc_answers_are_trailers_only_with_the_error_header() {
    let identity = ToyIdentity::start("identity-a").await;
    let proxy = proxy_to(IDENTITY, identity.addr()).await;
    let mut conn = Http2Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn
        .send(
            request(
                Method::POST,
                "nowhere.test",
                "/trellis.proxy.v1.Identity/Certify",
            )
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(full(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(
        reply.header("grpc-status").as_deref(),
        Some("14"),
        "{reply}"
    );
    assert!(reply.header("grpc-message").is_some(), "{reply}");
    assert!(reply.proxy_error().is_some(), "{reply}");
    assert!(reply.body.is_empty(), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_call_is_retried_on_the_configured_codes() {
    let identity = ToyIdentity::start("identity-a").await;
    identity.fail_next(2, tonic::Code::Unavailable, "warming up");
    let dest = Destination::new(IDENTITY)
        .route(with(
            route("default", &[("svc", 1)]),
            "retry",
            json!({"attempts": 3, "grpc_codes": [14]}),
        ))
        .backend(backend("svc", &[identity.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut client = identity_client_via(proxy.outbound, IDENTITY).await.unwrap();

    let response = client.certify(certify_request()).await;

    assert!(response.is_ok(), "{response:?}");
    assert_eq!(identity.calls(), 3);
}

/// Opens `WatchOutbound` for `web.test` through the proxy to a control plane behind it
/// (authority `cp.test`), and checks both directions of the stream carry messages while it
/// stays open: the first config arrives, the ack reaches the server, a pushed version
/// arrives.
async fn bidi_stream_through(proxy: &Proxy, cp: &ControlPlane) {
    let channel = channel_via(proxy.outbound, "cp.test").await.unwrap();
    let mut client = DiscoveryClient::new(channel);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(OutboundRequest {
        target: Some(outbound_request::Target::Authority(WEB.into())),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut configs = tokio::time::timeout(
        Duration::from_secs(3),
        client.watch_outbound(ReceiverStream::new(rx)),
    )
    .await
    .expect("the stream opens while the client keeps its side open")
    .unwrap()
    .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(3), configs.message())
        .await
        .expect("the first message arrives")
        .unwrap()
        .unwrap();
    assert_eq!(first.version, "1");

    tx.send(OutboundRequest {
        ack: Some(Ack {
            result: Some(ack::Result::Applied("1".into())),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(
        cp.wait_for_applied("1", Duration::from_secs(3))
            .await
            .is_some(),
        "a message from the client reaches the server mid-stream"
    );
    cp.set(
        single(WEB, "x", &["127.0.0.1:9".parse().unwrap()])
            .version("2")
            .proto(),
    );
    let second = tokio::time::timeout(Duration::from_secs(3), configs.message())
        .await
        .expect("a later message from the server arrives mid-stream")
        .unwrap()
        .unwrap();
    assert_eq!(second.version, "2");
}

/// A control plane serving version 1 for `web.test`, and a proxy routing `cp.test` to it
/// with these extra route fields.
async fn control_plane_behind_proxy(route_fields: serde_json::Value) -> (ControlPlane, Proxy) {
    let cp = ControlPlane::start().await;
    cp.set(
        single(WEB, "x", &["127.0.0.1:9".parse().unwrap()])
            .version("1")
            .proto(),
    );
    let mut r = route("default", &[("cp", 1)]);
    for (k, v) in route_fields.as_object().expect("an object") {
        r = with(r, k, v.clone());
    }
    let dest = Destination::new("cp.test")
        .route(r)
        .backend(backend("cp", &[cp.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    (cp, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_grpc_stream_flows_through_the_proxy() {
    let (cp, proxy) = control_plane_behind_proxy(json!({})).await;
    bidi_stream_through(&proxy, &cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_grpc_stream_flows_through_a_route_with_retries() {
    let (cp, proxy) = control_plane_behind_proxy(json!({
        "retry": {"attempts": 2, "retry_on": ["5xx"], "grpc_codes": [14]},
    }))
    .await;
    bidi_stream_through(&proxy, &cp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_grpc_stream_flows_through_a_mirrored_route() {
    let shadow = Backend::start("shadow").await;
    let cp = ControlPlane::start().await;
    cp.set(
        single(WEB, "x", &["127.0.0.1:9".parse().unwrap()])
            .version("1")
            .proto(),
    );
    let dest = Destination::new("cp.test")
        .route(with(
            route("default", &[("cp", 1)]),
            "mirror",
            json!({"backend": "shadow", "percent": 100}),
        ))
        .backend(backend("cp", &[cp.addr()]))
        .backend(backend("shadow", &[shadow.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();

    bidi_stream_through(&proxy, &cp).await;
}
