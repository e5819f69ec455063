//! mTLS between two real proxies, as between two meshed pods:
//!
//! ```text
//! client --HTTP--> client proxy (outbound) --mTLS, ALPN trellis.dev/mtls/1--> server proxy
//!                                                        (inbound: authorize) --HTTP--> app
//! ```
//!
//! Certificates come from a test CA ([`Pki`]) through `--identity-dir`; the Identity API
//! path (CSR, renewal) is in `proxy_identity.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, Http2Conn, Reply, get_request};
use trellis_e2e::config::{Destination, route};
use trellis_e2e::identity::{Pki, spiffe};
use trellis_e2e::inbound_config::{InboundPolicy, authorization, meshed, unmeshed, yaml};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;
use trellis_proxy::tls::{Credentials, Tls};

const HOUR: Duration = Duration::from_secs(3600);
const API: &str = "api.shop.test";

fn web() -> String {
    spiffe("shop", "web")
}

fn api() -> String {
    spiffe("shop", "api")
}

/// The client proxy's config: `API` goes to one meshed endpoint, `server` proving `identity`.
fn client_config(server: SocketAddr, identity: &str) -> String {
    let endpoint = json!({
        "address": {"ip": server.ip().to_string(), "port": server.port()},
        "identity": identity,
    });
    let dest = Destination::new(API)
        .route(route("default", &[("api", 1)]))
        .backend(json!({"name": "api", "endpoints": [endpoint]}));
    yaml(&[dest], &InboundPolicy::allow())
}

/// A client proxy with the identity in `dir` whose `API` is `server`, proving `identity`.
async fn client_proxy(server: SocketAddr, identity: &str, dir: &std::path::Path) -> Proxy {
    Proxy::builder()
        .config(&client_config(server, identity))
        .arg("--identity-dir")
        .arg(dir)
        .start()
        .await
        .unwrap()
}

/// A server proxy with the identity in `dir` in front of `app` under `policy`.
async fn server_proxy(policy: &InboundPolicy, app: &Backend, dir: &std::path::Path) -> Proxy {
    Proxy::builder()
        .config(&yaml(&[], policy))
        .inbound_target(app.addr())
        .arg("--identity-dir")
        .arg(dir)
        .access_log()
        .start()
        .await
        .unwrap()
}

struct Mesh {
    app: Backend,
    server: Proxy,
    client: Proxy,
    _dirs: Vec<tempfile::TempDir>,
}

/// An app behind a server proxy with `api`'s identity and `policy`, and a client proxy
/// with `client_id` (issued by `client_pki`) that expects the server to be `expect`.
async fn mesh_with(
    pki: &Pki,
    client_pki: &Pki,
    client_id: &str,
    expect: &str,
    policy: impl FnOnce(u16) -> InboundPolicy,
) -> Mesh {
    let app = Backend::start("app").await;
    let server_dir = pki.identity_dir(&api(), HOUR);
    let server = server_proxy(&policy(app.addr().port()), &app, server_dir.path()).await;
    let client_dir = client_pki.identity_dir(client_id, HOUR);
    let client = client_proxy(server.inbound, expect, client_dir.path()).await;
    Mesh {
        app,
        server,
        client,
        _dirs: vec![server_dir, client_dir],
    }
}

/// `api` lets `web` in on the app's port, for every request.
fn web_allowed(port: u16) -> InboundPolicy {
    InboundPolicy::deny().port(meshed(port).authorization(authorization("web", &[&web()], &[])))
}

async fn mesh() -> Mesh {
    let pki = Pki::new();
    mesh_with(&pki, &pki, &web(), &api(), web_allowed).await
}

async fn call(proxy: &Proxy, path: &str) -> Reply {
    Http1Conn::connect(proxy.outbound)
        .await
        .unwrap()
        .get(API, path)
        .await
        .unwrap()
}

async fn sum(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics::sum(&proxy.metrics().await.unwrap(), name, labels)
}

async fn denied(proxy: &Proxy, port: u16, reason: &str) -> f64 {
    let port = port.to_string();
    sum(
        proxy,
        "trellis_inbound_denied_total",
        &[("port", &port), ("reason", reason)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meshed_call_is_mutually_authenticated_and_each_side_sees_the_other() {
    let m = mesh().await;

    let reply = call(&m.client, "/orders").await;

    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(m.app.count(), 1);
    // The client proxy proved the server is api; the server proxy read web from the
    // client's certificate.
    let api = api();
    let outbound = [
        ("direction", "outbound"),
        ("tls", "true"),
        ("peer_identity", api.as_str()),
    ];
    assert_eq!(
        sum(&m.client, "trellis_requests_total", &outbound).await,
        1.0
    );
    let web = web();
    let inbound = [
        ("direction", "inbound"),
        ("tls", "true"),
        ("peer_identity", web.as_str()),
        ("status_code", "200"),
    ];
    assert_eq!(
        sum(&m.server, "trellis_requests_total", &inbound).await,
        1.0
    );
    let mtls_connections = [("direction", "inbound"), ("tls", "true")];
    assert_eq!(
        sum(
            &m.server,
            "trellis_tcp_connections_total",
            &mtls_connections
        )
        .await,
        1.0,
        "one mTLS connection, HTTP detected inside it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_travels_over_mtls_and_is_detected_inside_the_tunnel() {
    let m = mesh().await;
    let mut conn = Http2Conn::connect(m.client.outbound).await.unwrap();

    let reply = conn.get(API, "/h2").await.unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    let inbound = [
        ("direction", "inbound"),
        ("tls", "true"),
        ("protocol", "http2"),
    ];
    assert_eq!(
        sum(&m.server, "trellis_tcp_connections_total", &inbound).await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_cannot_reach_a_port_that_requires_mtls() {
    let m = mesh().await;
    let port = m.app.addr().port();

    let mut plain = Http1Conn::connect(m.server.inbound).await.unwrap();
    let reply = plain.get(API, "/orders").await.unwrap();

    assert!(reply.is_proxy_answer(403), "{reply}");
    assert_eq!(reply.proxy_error().as_deref(), Some("unauthenticated"));
    assert_eq!(m.app.count(), 0);
    assert_eq!(denied(&m.server, port, "unauthenticated").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_proving_another_identity_is_refused_by_the_client_proxy() {
    let pki = Pki::new();
    // The control plane says the endpoint is `db`; the server proves `api`.
    let db = spiffe("shop", "db");
    let m = mesh_with(&pki, &pki, &web(), &db, web_allowed).await;

    let reply = call(&m.client, "/orders").await;

    assert!(reply.is_proxy_answer(502), "{reply}");
    let error = reply.proxy_error().unwrap_or_default();
    assert!(
        error.contains(&api()) && error.contains(&db),
        "names who answered and who was expected: {error}"
    );
    assert_eq!(m.app.count(), 0, "no request reached the app");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_another_ca_is_refused_by_the_server_proxy() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let client_dir = stranger.identity_dir(&web(), HOUR);
    // The client trusts the server's CA (so only the server can refuse).
    stranger.write_identity(client_dir.path(), &web(), HOUR, &[pki.root_pem()]);
    let m = mesh_with(&pki, &pki, &web(), &api(), web_allowed).await;
    let client = client_proxy(m.server.inbound, &api(), client_dir.path()).await;

    let reply = call(&client, "/orders").await;

    assert!(reply.is_proxy_answer(502), "{reply}");
    assert_eq!(m.app.count(), 0);
    let failures = [("direction", "inbound")];
    assert_eq!(
        sum(&m.server, "trellis_tls_handshake_failures_total", &failures).await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_and_new_roots_are_trusted_together_while_roots_rotate() {
    let old = Pki::new();
    let new = Pki::new();
    // The server already has a certificate from the new root; the client still has one
    // from the old root. Both trust both roots.
    let app = Backend::start("app").await;
    let server_dir = new.identity_dir(&api(), HOUR);
    new.write_identity(server_dir.path(), &api(), HOUR, &[old.root_pem()]);
    let server = server_proxy(&web_allowed(app.addr().port()), &app, server_dir.path()).await;
    let client_dir = old.identity_dir(&web(), HOUR);
    old.write_identity(client_dir.path(), &web(), HOUR, &[new.root_pem()]);
    let client = client_proxy(server.inbound, &api(), client_dir.path()).await;

    assert_eq!(call(&client, "/").await.status, 200);

    // The old root is retired: the server re-reads its files and refuses the old client.
    new.write_identity(server_dir.path(), &api(), HOUR, &[]);
    let mut refused = None;
    for _ in 0..60 {
        // A fresh client proxy, so a new handshake is made.
        let probe = client_proxy(server.inbound, &api(), client_dir.path()).await;
        let reply = call(&probe, "/").await;
        if reply.status == 502 {
            refused = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused.is_some(), "the old root stopped being trusted");
}

/// Who calls in the authorization table.
#[derive(Clone, Copy)]
enum Client {
    /// Meshed, `shop/web`.
    Web,
    /// Meshed, `shop/batch`.
    Batch,
    /// Plaintext.
    Plain,
}
use Client::{Batch, Plain, Web};

fn web_public_only(port: u16) -> InboundPolicy {
    InboundPolicy::deny().port(meshed(port).authorization(authorization(
        "web",
        &[&web()],
        &["/public"],
    )))
}

fn web_on_another_port(port: u16) -> InboundPolicy {
    web_allowed(port + 1)
}

fn unmeshed_port(port: u16) -> InboundPolicy {
    InboundPolicy::deny().port(unmeshed(port))
}

fn meshed_port(port: u16) -> InboundPolicy {
    InboundPolicy::deny().port(meshed(port))
}

fn permissive(_: u16) -> InboundPolicy {
    InboundPolicy::allow()
}

/// Each authorization outcome for meshed and plaintext clients: the status, the reason
/// and the metric increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authorization_outcome_has_its_status_reason_and_metric() {
    let pki = Pki::new();
    let client_tls = |id: &str| {
        let dir = pki.identity_dir(id, HOUR);
        Arc::new(Tls::new(Credentials::load(dir.path()).unwrap()).unwrap())
    };
    let web_tls = client_tls(&web());
    let batch_tls = client_tls(&spiffe("shop", "batch"));

    // (outcome, policy for the app's port, client, path, status, denial reason)
    type Case = (
        &'static str,
        fn(u16) -> InboundPolicy,
        Client,
        &'static str,
        u16,
    );
    let cases: [(Case, Option<&str>); 8] = [
        (("allowed identity", web_allowed, Web, "/orders", 200), None),
        (
            ("identity not allowed", web_allowed, Batch, "/orders", 403),
            Some("identity_not_allowed"),
        ),
        (
            ("route not allowed", web_public_only, Web, "/admin", 403),
            Some("route_not_allowed"),
        ),
        (
            ("port not allowed", web_on_another_port, Web, "/orders", 403),
            Some("port_not_allowed"),
        ),
        (
            ("unmeshed allowed", unmeshed_port, Plain, "/orders", 200),
            None,
        ),
        (
            ("unmeshed denied", meshed_port, Plain, "/orders", 403),
            Some("unauthenticated"),
        ),
        (
            ("permissive, meshed", permissive, Batch, "/orders", 200),
            None,
        ),
        (
            ("permissive, plaintext", permissive, Plain, "/orders", 200),
            None,
        ),
    ];
    for ((name, policy, client, path, status), reason) in cases {
        let app = Backend::start("app").await;
        let port = app.addr().port();
        let dir = pki.identity_dir(&api(), HOUR);
        let server = server_proxy(&policy(port), &app, dir.path()).await;
        let tls = match client {
            Web => Some(&web_tls),
            Batch => Some(&batch_tls),
            Plain => None,
        };
        let mut conn = match tls {
            Some(tls) => Http1Conn::connect_mtls(server.inbound, tls, &api())
                .await
                .unwrap(),
            None => Http1Conn::connect(server.inbound).await.unwrap(),
        };
        let reply = conn.send(get_request(API, path)).await.unwrap();

        assert_eq!(reply.status, status, "{name}: {reply}");
        let all_denials = sum(&server, "trellis_inbound_denied_total", &[]).await;
        match reason {
            None => {
                assert_eq!(app.count(), 1, "{name}");
                assert_eq!(all_denials, 0.0, "{name}");
            }
            Some(reason) => {
                assert!(reply.is_proxy_answer(403), "{name}: {reply}");
                assert_eq!(reply.proxy_error().as_deref(), Some(reason), "{name}");
                assert_eq!(app.count(), 0, "{name}");
                assert_eq!(denied(&server, port, reason).await, 1.0, "{name}");
                assert_eq!(all_denials, 1.0, "{name}");
            }
        }
    }
}
