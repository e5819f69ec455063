//! A real Prometheus server scraping real proxies (the harness canary analysis will be
//! tested with): what the proxies counted is what Prometheus answers, with the labels
//! canary metrics select on.
//!
//! ```text
//! test --> client app /call --> client proxy ==mTLS==> web proxy --> web app
//!                               admin /metrics         admin /metrics
//!                                      ^--- Prometheus (scrape every 1 s) ---^
//! ```

use http::Method;
use trellis_e2e::mesh::MeshedApp;
use trellis_e2e::operator::{Operator, write_manifest};
use trellis_e2e::prometheus::{JOB, Prometheus, TARGETS_TIMEOUT};

const MANIFESTS: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {permissive: true}
";

/// How many calls the client makes.
const CALLS: usize = 7;

/// The calls proxies sent and received, as canary analysis will query them.
const OUTBOUND: &str = r#"trellis_requests_total{direction="outbound"}"#;
const INBOUND: &str = r#"trellis_requests_total{direction="inbound"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_what_the_proxies_counted() {
    let manifests = tempfile::tempdir().unwrap();
    write_manifest(manifests.path(), "shop.yaml", MANIFESTS);
    let operator = Operator::start(manifests.path()).await.unwrap();
    let web = MeshedApp::builder("shop", "web-1")
        .service_account("web")
        .label("app", "web")
        .start(&operator)
        .await
        .unwrap();
    let client = MeshedApp::builder("shop", "client-1")
        .service_account("client")
        .calls_out()
        .start(&operator)
        .await
        .unwrap();
    operator
        .wait_status("web-1 registered and ready", |s| {
            s["workloads"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|w| w["name"] == "web-1" && w["ready"] == true)
            })
        })
        .await
        .unwrap();
    for _ in 0..CALLS {
        let reply = client.call(Method::GET, "web.shop", "/").await.unwrap();
        assert_eq!(reply.status, 200, "{reply}");
    }

    let Some(prom) = Prometheus::start(&[client.proxy.admin, web.proxy.admin]).await else {
        return;
    };
    prom.wait_targets_up(2, TARGETS_TIMEOUT).await;
    let scraped = |v: Option<f64>| v.is_some();
    let outbound = prom
        .wait_value(&format!("sum({OUTBOUND})"), TARGETS_TIMEOUT, scraped)
        .await;
    assert_eq!(
        outbound,
        Some(CALLS as f64),
        "every call, counted once by the client's proxy"
    );
    let inbound = prom
        .wait_value(&format!("sum({INBOUND})"), TARGETS_TIMEOUT, scraped)
        .await;
    assert_eq!(inbound, Some(CALLS as f64), "and once by web's proxy");

    let series = prom.query(OUTBOUND).await;
    let series = series["result"].as_array().unwrap();
    assert!(!series.is_empty(), "{series:?}");
    for s in series {
        let labels = &s["metric"];
        assert_eq!(
            labels["backend"], "shop/web:80",
            "<namespace>/<service>:<port>: {s}"
        );
        assert_eq!(labels["job"], JOB, "{s}");
        assert_eq!(labels["instance"], client.proxy.admin.to_string(), "{s}");
    }
}
