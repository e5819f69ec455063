//! Inbound authorization through the real proxy: the config file's `inbound:` policy
//! decides which requests (and opaque TCP connections) reach the app; denials are 403
//! (gRPC `PERMISSION_DENIED`) with the reason in `trellis-proxy-error`, and counted in
//! `trellis_inbound_denied_total{port, reason}`. Every client here is plaintext:
//! outcomes that need an mTLS identity are covered by the unit tests of
//! `proxy/src/inbound/authorize.rs`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use trellis_e2e::backend::{Backend, TcpEcho};
use trellis_e2e::client::{Http1Conn, Http2Conn, Reply, full, request};
use trellis_e2e::inbound_config::{
    InboundPolicy, authorization, meshed, unmeshed, yaml as policy_yaml,
};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

/// A proxy whose inbound side forwards to `target` under `policy`.
async fn proxy_with(policy: &InboundPolicy, target: SocketAddr) -> Proxy {
    Proxy::builder()
        .config(&policy_yaml(&[], policy))
        .inbound_target(target)
        .access_log()
        .start()
        .await
        .unwrap()
}

async fn get(proxy: &Proxy, path: &str) -> Reply {
    let mut conn = Http1Conn::connect(proxy.inbound).await.unwrap();
    conn.get("app.test", path).await.unwrap()
}

async fn denied(proxy: &Proxy, port: u16, reason: &str) -> f64 {
    let m = proxy.metrics().await.unwrap();
    metrics::sum(
        &m,
        "trellis_inbound_denied_total",
        &[("port", &port.to_string()), ("reason", reason)],
    )
}

fn assert_denied(reply: &Reply, reason: &str) {
    assert!(reply.is_proxy_answer(403), "{reply}");
    assert_eq!(reply.proxy_error().as_deref(), Some(reason), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_a_meshed_only_port_gets_403_unauthenticated_and_is_counted() {
    let app = Backend::start("app").await;
    let port = app.addr().port();
    let policy =
        InboundPolicy::deny().port(meshed(port).authorization(authorization("web", &[WEB], &[])));
    let proxy = proxy_with(&policy, app.addr()).await;

    let reply = get(&proxy, "/").await;

    assert_denied(&reply, "unauthenticated");
    assert_eq!(app.count(), 0);
    assert_eq!(denied(&proxy, port, "unauthenticated").await, 1.0);
    let logged = |l: &String| l.contains("inbound denied") && l.contains("unauthenticated");
    for _ in 0..100 {
        if proxy.stderr_lines().iter().any(logged) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stderr = proxy.stderr_lines();
    assert!(
        stderr.iter().any(logged),
        "a log line on stderr: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_allowing_unmeshed_clients_lets_plaintext_requests_reach_the_app() {
    let app = Backend::start("app").await;
    let policy = InboundPolicy::deny().port(unmeshed(app.addr().port()));
    let proxy = proxy_with(&policy, app.addr()).await;

    let reply = get(&proxy, "/anything").await;

    assert_eq!((reply.status.as_u16(), reply.text()), (200, "app".into()));
    assert_eq!(app.count(), 1);
    let line = proxy
        .wait_for_stdout(Duration::from_secs(5), |l| l.contains("\"authorization\""))
        .await
        .expect("an access log line");
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["authorization"], "unmeshed", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_not_in_the_policy_is_denied_by_default() {
    let app = Backend::start("app").await;
    let port = app.addr().port();
    let other = if port == 1 { 2 } else { port - 1 };
    let policy = InboundPolicy::deny().port(unmeshed(other));
    let proxy = proxy_with(&policy, app.addr()).await;

    let reply = get(&proxy, "/").await;

    assert_denied(&reply, "port_not_allowed");
    assert_eq!(app.count(), 0);
    assert_eq!(denied(&proxy, port, "port_not_allowed").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_authorization_routes_match_gets_403_route_not_allowed() {
    let app = Backend::start("app").await;
    let port = app.addr().port();
    let policy = InboundPolicy::deny().port(unmeshed(port).authorization(authorization(
        "api-only",
        &[],
        &["/api"],
    )));
    let proxy = proxy_with(&policy, app.addr()).await;

    let allowed = get(&proxy, "/api/items").await;
    let refused = get(&proxy, "/admin").await;

    assert_eq!(allowed.status, 200, "{allowed}");
    assert_denied(&refused, "route_not_allowed");
    assert_eq!(app.count(), 1);
    assert_eq!(denied(&proxy, port, "route_not_allowed").await, 1.0);
    let line = proxy
        .wait_for_stdout(Duration::from_secs(5), |l| l.contains("/api/items"))
        .await
        .expect("an access log line");
    assert!(line.contains("\"authorization\":\"api-only\""), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_permissive_default_policy_allows_everything() {
    let app = Backend::start("app").await;
    let policy = InboundPolicy::allow()
        .port(meshed(app.addr().port()).authorization(authorization("web", &[WEB], &["/x"])));
    let proxy = proxy_with(&policy, app.addr()).await;

    let reply = get(&proxy, "/anything").await;

    assert_eq!((reply.status.as_u16(), reply.text()), (200, "app".into()));
    let m = proxy.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(&m, "trellis_inbound_denied_total", &[]),
        0.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_grpc_call_gets_permission_denied_trailers_only() {
    let app = Backend::start("app").await;
    let port = app.addr().port();
    let proxy = proxy_with(&InboundPolicy::deny(), app.addr()).await;
    let mut conn = Http2Conn::connect(proxy.inbound).await.unwrap();

    let reply = conn
        .send(
            request(Method::POST, "app.test", "/trellis.test.Svc/Call")
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .body(full(Bytes::from_static(&[0, 0, 0, 0, 0])))
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(reply.header("grpc-status").as_deref(), Some("7"), "{reply}");
    assert_eq!(reply.proxy_error().as_deref(), Some("port_not_allowed"));
    assert!(reply.body.is_empty(), "{reply}");
    assert_eq!(app.count(), 0);
    assert_eq!(denied(&proxy, port, "port_not_allowed").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_opaque_tcp_connection_is_closed_and_counted() {
    let echo = TcpEcho::start().await;
    let port = echo.addr().port();
    let policy =
        InboundPolicy::deny().port(meshed(port).authorization(authorization("web", &[WEB], &[])));
    let proxy = proxy_with(&policy, echo.addr()).await;
    let mut stream = TcpStream::connect(proxy.inbound).await.unwrap();

    stream.write_all(b"\x00\x01 not http \xff").await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("the proxy closes the connection");

    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, nothing echoed: {read:?}"
    );
    assert_eq!(echo.connections(), 0);
    assert_eq!(denied(&proxy, port, "unauthenticated").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_opaque_tcp_connection_reaches_the_app() {
    let echo = TcpEcho::start().await;
    let policy = InboundPolicy::deny().port(unmeshed(echo.addr().port()));
    let proxy = proxy_with(&policy, echo.addr()).await;
    let mut stream = TcpStream::connect(proxy.inbound).await.unwrap();

    stream.write_all(b"\x00\x01 echo me").await.unwrap();
    let mut echoed = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
        .await
        .expect("the echo came back")
        .unwrap();

    assert_eq!(&echoed, b"\x00\x01 echo me");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_in_the_file_applies_to_the_next_request_and_shows_on_config() {
    let app = Backend::start("app").await;
    let port = app.addr().port();
    let proxy = proxy_with(&InboundPolicy::deny().version("inbound-1"), app.addr()).await;
    let mut conn = Http1Conn::connect(proxy.inbound).await.unwrap();
    let before = conn.get("app.test", "/").await.unwrap();

    proxy
        .replace_config_file(&policy_yaml(
            &[],
            &InboundPolicy::deny()
                .version("inbound-2")
                .port(unmeshed(port)),
        ))
        .unwrap();
    proxy
        .wait_for_versions(&["inbound-2".into()])
        .await
        .unwrap();
    let after = conn.get("app.test", "/").await.unwrap();

    assert_denied(&before, "port_not_allowed");
    assert_eq!(after.status, 200, "same connection, new policy: {after}");
    let dump = proxy.config_dump().await.unwrap();
    assert_eq!(dump["inbound"]["version"], "inbound-2", "{dump}");
    assert_eq!(
        dump["inbound"]["config"]["ports"][0]["port"], port,
        "{dump}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_an_inbound_section_allows_every_inbound_request() {
    let app = Backend::start("app").await;
    let proxy = Proxy::builder()
        .config("outbound: []\n")
        .inbound_target(app.addr())
        .start()
        .await
        .unwrap();

    let reply = get(&proxy, "/").await;

    assert_eq!(reply.status, 200, "{reply}");
    let dump = proxy.config_dump().await.unwrap();
    assert_eq!(
        dump["inbound"]["config"]["default_policy"], "DEFAULT_POLICY_ALLOW",
        "{dump}"
    );
}
