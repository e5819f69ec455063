//! The control plane feeding real proxies: `trellis operator --local` reads manifests from
//! a directory, proxies register their workloads and get certificates, and requests are
//! routed and authorized from the compiled config alone (no static proxy config).
//!
//! ```text
//! test --HTTP--> client proxy (shop/client-1) ==mTLS==> web-1 proxy --> backend "web-v1"
//!                                             ==mTLS==> web-v2-1 proxy --> backend "web-v2"
//!                       all three proxies: --control-plane operator --register --identity ...
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, Reply, get_request};
use trellis_e2e::metrics;
use trellis_e2e::operator::{Operator, write_manifest};
use trellis_e2e::proxy::Proxy;

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web-v2}, ports: [{name: http, port: 80, targetPort: 8080}]}
";

/// The client may GET /hello* on web and web-v2 (both run as ServiceAccount web).
const ACCESS: &str = "\
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: web-routes, namespace: shop}
spec:
  matches:
  - {name: hello, pathRegex: /hello, methods: [GET]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-web, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: web, namespace: shop}
  sources:
  - {kind: ServiceAccount, name: client, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: web-routes, matches: [hello]}
";

const SPLIT_ALL_TO_V2: &str = "\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-rollout, namespace: shop}
spec:
  service: web
  backends:
  - {service: web, weight: 0}
  - {service: web-v2, weight: 100}
";

/// A proxy for `shop/<name>` registered with `app: <app>`, certified as ServiceAccount `sa`.
async fn sidecar(
    operator: &Operator,
    name: &str,
    app: &str,
    sa: &str,
    backend: Option<&Backend>,
) -> Proxy {
    let token = operator.join_token("shop", sa).unwrap();
    let mut builder = Proxy::builder()
        .control_plane(&operator.url())
        .arg("--workload")
        .arg(format!("shop/{name}"))
        .arg("--register")
        .arg("--service-account")
        .arg(sa)
        .arg("--label")
        .arg(format!("app={app}"))
        .arg("--identity")
        .arg(format!("spiffe://cluster.local/ns/shop/sa/{sa}"))
        .arg("--identity-token-file")
        .arg(&token)
        .wait_ready(true);
    if let Some(backend) = backend {
        builder = builder.inbound_target(backend.addr());
    }
    builder.start().await.unwrap()
}

async fn call(client: &Proxy, path: &str) -> Reply {
    let mut conn = Http1Conn::connect(client.outbound).await.unwrap();
    conn.send(get_request("web.shop", path)).await.unwrap()
}

/// Calls until `ok` holds for a reply (config changes take a moment to arrive).
async fn eventually(client: &Proxy, path: &str, what: &str, ok: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = call(client, path).await;
        if ok(&reply) {
            return reply;
        }
        assert!(Instant::now() < deadline, "{what}: last reply {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn manifests(dir: &Path) {
    write_manifest(dir, "services.yaml", SERVICES);
    write_manifest(dir, "access.yaml", ACCESS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_fed_by_the_operator_route_and_authorize_real_requests() {
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path());
    let operator = Operator::start(dir.path()).await.unwrap();
    let v1 = Backend::start("web-v1").await;
    let v2 = Backend::start("web-v2").await;
    let web = sidecar(&operator, "web-1", "web", "web", Some(&v1)).await;
    let _web_v2 = sidecar(&operator, "web-v2-1", "web-v2", "web", Some(&v2)).await;
    let client = sidecar(&operator, "client-1", "client", "client", None).await;
    operator
        .wait_status("three registered workloads", |s| {
            s["workloads"].as_array().is_some_and(|w| w.len() == 3)
        })
        .await
        .unwrap();

    // Each proxy shows what the operator made of its registration.
    let deadline = Instant::now() + Duration::from_secs(5);
    let registration = loop {
        let r = web.config_dump().await.unwrap()["registration"].clone();
        if r["identity"].is_string() || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        registration["identity"],
        "spiffe://cluster.local/ns/shop/sa/web"
    );
    assert_eq!(registration["services"], serde_json::json!(["shop/web"]));

    // Allowed by the TrafficTarget: GET /hello, over mTLS, proven identities on both sides.
    let reply = eventually(&client, "/hello", "GET /hello reaches web", |r| {
        r.status == 200
    })
    .await;
    assert_eq!(reply.text(), "web-v1");
    let inbound = web.metrics().await.unwrap();
    assert!(
        metrics::sum(
            &inbound,
            "trellis_requests_total",
            &[
                ("direction", "inbound"),
                ("tls", "true"),
                ("peer_identity", "spiffe://cluster.local/ns/shop/sa/client"),
            ],
        ) >= 1.0,
        "web's proxy saw the client's identity:\n{inbound}"
    );

    // Not in the HTTPRouteGroup: denied by web's proxy, never reaching the app.
    let before = v1.requests().len();
    let denied = call(&client, "/admin").await;
    assert_eq!(denied.status, 403, "{denied}");
    assert_eq!(
        v1.requests().len(),
        before,
        "a denied request never reaches the app"
    );

    // A TrafficSplit committed now moves every request to web-v2.
    write_manifest(dir.path(), "split.yaml", SPLIT_ALL_TO_V2);
    let reply = eventually(&client, "/hello", "the split sends to web-v2", |r| {
        r.text() == "web-v2"
    })
    .await;
    assert_eq!(reply.status, 200);
    for _ in 0..10 {
        assert_eq!(
            call(&client, "/hello").await.text(),
            "web-v2",
            "weight 0 gets nothing"
        );
    }

    // Deleting the TrafficTarget denies again (SMI's default is deny).
    std::fs::remove_file(dir.path().join("access.yaml")).unwrap();
    eventually(
        &client,
        "/hello",
        "without a TrafficTarget the call is denied",
        |r| r.status == 403,
    )
    .await;

    // The operator's status lists every resource with its conditions.
    let status = operator.status().await.unwrap();
    let split = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "TrafficSplit")
        .expect("the split is listed");
    assert_eq!(split["origin"]["file"], "split.yaml");
    assert_eq!(split["conditions"][0]["type"], "Accepted");
    assert_eq!(split["conditions"][0]["status"], "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_manifest_keeps_the_last_good_config_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path());
    write_manifest(dir.path(), "split.yaml", SPLIT_ALL_TO_V2);
    let operator = Operator::start(dir.path()).await.unwrap();
    let v1 = Backend::start("web-v1").await;
    let v2 = Backend::start("web-v2").await;
    let _web = sidecar(&operator, "web-1", "web", "web", Some(&v1)).await;
    let _web_v2 = sidecar(&operator, "web-v2-1", "web-v2", "web", Some(&v2)).await;
    let client = sidecar(&operator, "client-1", "client", "client", None).await;
    eventually(&client, "/hello", "the split sends to web-v2", |r| {
        r.text() == "web-v2"
    })
    .await;

    // A negative weight: the split is not accepted, the previous one stays in force.
    write_manifest(
        dir.path(),
        "split.yaml",
        &SPLIT_ALL_TO_V2.replace("weight: 100", "weight: -1"),
    );
    let status = operator
        .wait_status("the split rejected", |s| {
            s["resources"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|r| r["kind"] == "TrafficSplit" && r["conditions"][0]["status"] == "False")
            })
        })
        .await
        .unwrap();
    let split = status["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "TrafficSplit")
        .unwrap();
    let message = split["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("spec.backends[1].weight"), "{message}");
    assert_eq!(split["origin"]["file"], "split.yaml");
    assert_eq!(split["origin"]["line"], 8, "the line of the bad weight");
    for _ in 0..10 {
        assert_eq!(
            call(&client, "/hello").await.text(),
            "web-v2",
            "the last good split holds"
        );
    }
}
