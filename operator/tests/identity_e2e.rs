//! The operator's Identity API in front of real `trellis-proxy` processes: each proxy asks
//! for its certificate with a join token, and the two talk mTLS with those certificates.
//!
//! ```text
//!            Certify(web, join token)        Certify(api, join token)
//!              .------> operator IdentityServer (in this test) <------.
//! client --HTTP--> proxy web (outbound) ==mTLS==> proxy api (inbound: authorize web) --HTTP--> app
//! ```
//!
//! Needs the `trellis-proxy` binary: `cargo test --workspace` builds it; with
//! `cargo test -p trellis-operator` run `cargo build -p trellis-proxy` first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::Http1Conn;
use trellis_e2e::config::{Destination, route};
use trellis_e2e::inbound_config::{InboundPolicy, authorization, meshed, yaml};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;
use trellis_e2e::serve::GrpcServer;
use trellis_operator::identity::{self, IdentitySettings, JoinTokens};

const API: &str = "api.shop.test";
const WEB_ID: &str = "spiffe://cluster.local/ns/shop/sa/web";
const API_ID: &str = "spiffe://cluster.local/ns/shop/sa/api";

/// The operator's Identity API on loopback, with its data directory.
struct Operator {
    dir: tempfile::TempDir,
    registry: prometheus::Registry,
    tokens: Arc<JoinTokens>,
    server: GrpcServer,
}

impl Operator {
    async fn start() -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        // Settings that never change: the sender may go.
        let (_, settings) = watch::channel(IdentitySettings {
            trust_domain: "cluster.local".into(),
            workload_lifetime: Duration::from_secs(3600),
        });
        let (server, tokens) = identity::start(
            dir.path(),
            identity::DEFAULT_ROOT_LIFETIME,
            settings,
            &registry,
        )
        .unwrap();
        let server = GrpcServer::start(server.into_service()).await;
        Operator {
            dir,
            registry,
            tokens,
            server,
        }
    }

    /// A file holding the join token for `ns`/`sa`, as `trellis join-token` prints it.
    fn token_file(&self, ns: &str, sa: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{ns}-{sa}.token"));
        std::fs::write(&path, format!("{}\n", self.tokens.token_for(ns, sa))).unwrap();
        path
    }

    /// `trellis_operator_certificates_issued_total{result}`.
    fn outcomes(&self, result: &str) -> f64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        metrics::sum(
            &text,
            "trellis_operator_certificates_issued_total",
            &[("result", result)],
        )
    }
}

/// A proxy asking `operator` for `id`'s certificate with the token in `token_file`.
async fn proxy(
    operator: &Operator,
    id: &str,
    token_file: &Path,
    config: &str,
    app: Option<&Backend>,
    wait_ready: bool,
) -> Proxy {
    let mut builder = Proxy::builder()
        .config(config)
        .arg("--identity")
        .arg(id)
        .arg("--identity-token-file")
        .arg(token_file)
        .arg("--identity-url")
        .arg(operator.server.url())
        .wait_ready(wait_ready);
    if let Some(app) = app {
        builder = builder.inbound_target(app.addr());
    }
    builder.start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_with_certificates_from_the_operator_talk_mtls() {
    let operator = Operator::start().await;
    let app = Backend::start("app").await;
    let policy = InboundPolicy::deny()
        .port(meshed(app.addr().port()).authorization(authorization("web", &[WEB_ID], &[])));
    let api_token = operator.token_file("shop", "api");
    let server = proxy(
        &operator,
        API_ID,
        &api_token,
        &yaml(&[], &policy),
        Some(&app),
        true,
    )
    .await;

    let endpoint = json!({
        "address": {"ip": "127.0.0.1", "port": server.inbound.port()},
        "identity": API_ID,
    });
    let dest = Destination::new(API)
        .route(route("default", &[("api", 1)]))
        .backend(json!({"name": "api", "endpoints": [endpoint]}));
    let web_token = operator.token_file("shop", "web");
    let client = proxy(
        &operator,
        WEB_ID,
        &web_token,
        &yaml(&[dest], &InboundPolicy::allow()),
        None,
        true,
    )
    .await;

    let mut conn = Http1Conn::connect(client.outbound).await.unwrap();
    for _ in 0..3 {
        let reply = conn.get(API, "/orders").await.unwrap();
        assert_eq!(reply.status, 200, "{reply}");
    }
    assert_eq!(app.count(), 3);

    let inbound = server.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(
            &inbound,
            "trellis_requests_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("peer_identity", WEB_ID)
            ],
        ),
        3.0,
        "the server proxy saw the client's identity over mTLS:\n{inbound}"
    );
    let outbound = client.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(
            &outbound,
            "trellis_requests_total",
            &[
                ("direction", "outbound"),
                ("tls", "true"),
                ("peer_identity", API_ID)
            ],
        ),
        3.0,
        "the client proxy proved the server's identity:\n{outbound}"
    );
    for (proxy, id) in [(&client, WEB_ID), (&server, API_ID)] {
        let shown = &proxy.config_dump().await.unwrap()["identity"];
        assert_eq!(shown["id"], json!(id));
        assert!(shown["last_error"].is_null(), "{shown}");
    }
    assert_eq!(operator.outcomes("issued"), 2.0);
    assert_eq!(operator.outcomes("denied"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_with_another_service_accounts_token_is_never_ready() {
    let operator = Operator::start().await;
    // The token proves shop/api; the proxy claims shop/web.
    let api_token = operator.token_file("shop", "api");
    let impostor = proxy(&operator, WEB_ID, &api_token, "outbound: []\n", None, false).await;

    for _ in 0..200 {
        if operator.outcomes("denied") >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        operator.outcomes("denied") >= 2.0,
        "the proxy asked and retried"
    );
    let reply = impostor.get("/ready").await.unwrap();
    assert_eq!(reply.status, 503, "{reply}");
    let text = reply.text();
    assert!(text.contains("no certificate yet"), "{text}");
    assert!(
        text.contains("does not prove namespace \"shop\", service account \"web\""),
        "/ready says why: {text}"
    );
    assert_eq!(operator.outcomes("issued"), 0.0);
    assert!(
        impostor.config_dump().await.unwrap()["identity"]["id"].is_null(),
        "no certificate was ever put in force"
    );
}
