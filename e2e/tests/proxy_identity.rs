//! The proxy's certificate from the Identity API: a key made in memory, a CSR and a token
//! sent to `Identity.Certify`, renewal at 70 % of the lifetime. The API here is a real
//! gRPC server signing with a test CA ([`IdentityServer`]).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::Http1Conn;
use trellis_e2e::config::{Destination, route};
use trellis_e2e::identity::{IdentityServer, Pki, spiffe};
use trellis_e2e::inbound_config::{InboundPolicy, authorization, meshed, yaml};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;
use trellis_proxy::tls::{Credentials, Tls};

const API: &str = "api.shop.test";

fn write_token(dir: &Path, token: &str) -> std::path::PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, token).unwrap();
    path
}

/// A proxy asking `identity` for `id` with `token`, serving `config`.
async fn certified_proxy(
    identity: &IdentityServer,
    id: &str,
    token_file: &Path,
    config: &str,
    app: Option<SocketAddr>,
    wait_ready: bool,
) -> Proxy {
    let mut builder = Proxy::builder()
        .config(config)
        .arg("--identity")
        .arg(id)
        .arg("--identity-token-file")
        .arg(token_file)
        .arg("--identity-url")
        .arg(identity.url())
        .wait_ready(wait_ready);
    if let Some(app) = app {
        builder = builder.inbound_target(app);
    }
    builder.start().await.unwrap()
}

async fn config_identity(proxy: &Proxy) -> serde_json::Value {
    proxy.config_dump().await.unwrap()["identity"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_is_not_ready_until_the_identity_api_issues_its_certificate() {
    let identity = IdentityServer::start(Pki::new(), Duration::from_secs(3600)).await;
    let dir = tempfile::tempdir().unwrap();
    let token = write_token(dir.path(), "web-token");
    let web = spiffe("shop", "web");
    // The token proves nothing yet: every request is refused.
    let proxy = certified_proxy(&identity, &web, &token, "outbound: []\n", None, false).await;

    let mut reply = proxy.get("/ready").await.unwrap();
    for _ in 0..100 {
        if identity.refused() > 0 {
            reply = proxy.get("/ready").await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(reply.status, 503, "{reply}");
    assert!(reply.text().contains("no certificate yet"), "{reply}");
    assert!(
        config_identity(&proxy).await["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("does not prove")),
        "the API's refusal is shown on /config"
    );

    identity.allow("web-token", &web);
    proxy.wait_ready().await.unwrap();

    let shown = config_identity(&proxy).await;
    assert_eq!(shown["id"], json!(web));
    assert!(shown["valid_until"].as_f64().unwrap() > shown["renew_at"].as_f64().unwrap());
    let m = proxy.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(
            &m,
            "trellis_identity_certify_total",
            &[("result", "issued")]
        ),
        1.0
    );
    assert!(
        metrics::sum(
            &m,
            "trellis_identity_certify_total",
            &[("result", "failed")]
        ) >= 1.0
    );
}

/// Certificates living 4 s are renewed at about 2.8 s; for 10 s a request every 40 ms goes
/// client proxy -> server proxy (one pooled mTLS connection, kept across renewals), and
/// every 200 ms a fresh mTLS handshake reaches the server proxy directly (it must present
/// an unexpired certificate, so renewal must have happened). Nothing may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_renewed_mid_traffic_without_a_failed_request() {
    let lifetime = Duration::from_secs(4);
    let identity = IdentityServer::start(Pki::new(), lifetime).await;
    let web = spiffe("shop", "web");
    let api = spiffe("shop", "api");
    identity.allow("web-token", &web);
    identity.allow("api-token", &api);
    let dir = tempfile::tempdir().unwrap();
    let web_token = write_token(dir.path(), "web-token");
    let api_token = dir.path().join("api-token");
    std::fs::write(&api_token, "api-token").unwrap();

    let app = Backend::start("app").await;
    let policy = InboundPolicy::deny()
        .port(meshed(app.addr().port()).authorization(authorization("web", &[&web], &[])));
    let server = certified_proxy(
        &identity,
        &api,
        &api_token,
        &yaml(&[], &policy),
        Some(app.addr()),
        true,
    )
    .await;
    let endpoint = json!({
        "address": {"ip": "127.0.0.1", "port": server.inbound.port()},
        "identity": api,
    });
    let dest = Destination::new(API)
        .route(route("default", &[("api", 1)]))
        .backend(json!({"name": "api", "endpoints": [endpoint]}));
    let client = certified_proxy(
        &identity,
        &web,
        &web_token,
        &yaml(&[dest], &InboundPolicy::allow()),
        None,
        true,
    )
    .await;
    let first_expiry = config_identity(&server).await["valid_until"]
        .as_f64()
        .unwrap();
    // A meshed peer of our own with a long-lived certificate, for fresh handshakes.
    let peer_dir = identity.pki().identity_dir(&web, Duration::from_secs(3600));
    let peer = Arc::new(Tls::new(Credentials::load(peer_dir.path()).unwrap()).unwrap());

    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    let pooled = {
        let (failures, sent) = (failures.clone(), sent.clone());
        let outbound = client.outbound;
        tokio::spawn(async move {
            let mut conn = Http1Conn::connect(outbound).await.unwrap();
            while Instant::now() < deadline {
                let reply = conn.get(API, "/steady").await;
                sent.fetch_add(1, Ordering::SeqCst);
                if !matches!(&reply, Ok(r) if r.status == 200) {
                    eprintln!("pooled request failed: {reply:?}");
                    failures.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };
    let mut handshakes = 0;
    while Instant::now() < deadline {
        let reply = match Http1Conn::connect_mtls(server.inbound, &peer, &api).await {
            Ok(mut conn) => conn.get(API, "/fresh").await,
            Err(e) => Err(e),
        };
        handshakes += 1;
        if !matches!(&reply, Ok(r) if r.status == 200) {
            eprintln!("fresh handshake failed: {reply:?}");
            failures.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pooled.await.unwrap();

    assert_eq!(failures.load(Ordering::SeqCst), 0, "no request failed");
    assert!(sent.load(Ordering::SeqCst) > 100 && handshakes > 30);
    // 10 s of 4 s certificates renewed at 70 %: at least 3 renewals after the first each.
    for proxy in [&server, &client] {
        let m = proxy.metrics().await.unwrap();
        let issued = metrics::sum(
            &m,
            "trellis_identity_certify_total",
            &[("result", "issued")],
        );
        assert!(issued >= 4.0, "issued {issued}");
    }
    let last_expiry = config_identity(&server).await["valid_until"]
        .as_f64()
        .unwrap();
    assert!(
        last_expiry >= first_expiry + 6.0,
        "the server's certificate in force was renewed: {first_expiry} -> {last_expiry}"
    );
    // The pooled connection was never dropped: one mTLS connection from the client proxy
    // carried every steady request.
    let m = server.metrics().await.unwrap();
    let inbound_mtls = metrics::sum(
        &m,
        "trellis_tcp_connections_total",
        &[("direction", "inbound"), ("tls", "true")],
    );
    assert_eq!(inbound_mtls, 1.0 + handshakes as f64);
}
