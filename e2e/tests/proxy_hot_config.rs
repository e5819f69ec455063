//! Config changes while traffic flows: from the file (rewritten in place) and from the
//! control plane (pushed over gRPC), applied to connections already open, refused with a
//! reason when invalid, and survived when the control plane goes away.

use std::time::Duration;

use serde_json::json;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::Http1Conn;
use trellis_e2e::config::{Destination, single, yaml};
use trellis_e2e::control_plane::ControlPlane;
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// `web.test`, version `version`, all to `to` (named `name`).
fn mk_to(version: &str, name: &str, to: &Backend) -> Destination {
    single(WEB, name, &[to.addr()]).version(version)
}

async fn expect_backend(conn: &mut Http1Conn, want: &str) {
    let reply = conn.get(WEB, "/").await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, want.to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_config_file_applies_to_the_next_request_on_an_open_connection() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let proxy = Proxy::start(&yaml(&[mk_to("1", "a", &a)])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;

    proxy
        .rewrite_config(&yaml(&[mk_to("2", "b", &b)]))
        .await
        .unwrap();

    expect_backend(&mut conn, "backend-b").await;
    assert_eq!(b.count(), 1);
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(&m, "trellis_config_updates_total", &[("result", "applied")]) >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_config_file_leaves_the_old_config_in_force_and_shows_the_error() {
    let a = Backend::start("backend-a").await;
    let proxy = Proxy::start(&yaml(&[mk_to("1", "a", &a)])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let before = proxy.get("/config").await.unwrap().text();

    proxy
        .replace_config_file("outbound:\n  - authority: web.test\n    routes: [{name: \"x\"\n")
        .unwrap();

    let path = proxy.config_path().display().to_string();
    let mut shown = String::new();
    for _ in 0..100 {
        shown = proxy.get("/config").await.unwrap().text();
        if shown != before && shown.contains(&path) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shown.contains(&path),
        "/config names the refused file {path}: {shown}"
    );
    let doc: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(trellis_e2e::config::mentions_version(&doc, "1"), "{shown}");
    expect_backend(&mut conn, "backend-a").await;
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(
            &m,
            "trellis_config_updates_total",
            &[("result", "rejected")]
        ) >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_naming_an_undefined_backend_is_refused_naming_the_field() {
    let a = Backend::start("backend-a").await;
    let proxy = Proxy::start(&yaml(&[mk_to("1", "a", &a)])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let bad = Destination::new(WEB)
        .version("2")
        .route(trellis_e2e::config::route("default", &[("missing", 1)]))
        .backend(trellis_e2e::config::backend("a", &[a.addr()]));

    proxy.replace_config_file(&yaml(&[bad])).unwrap();

    let mut shown = String::new();
    for _ in 0..100 {
        shown = proxy.get("/config").await.unwrap().text();
        if shown.contains("routes[0].backends[0].backend") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        shown.contains("routes[0].backends[0].backend"),
        "/config names the field: {shown}"
    );
    let path = proxy.config_path().display().to_string();
    let stderr = proxy.stderr_lines();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&path) && l.contains("routes[0].backends[0].backend")),
        "stderr names the file and the field: {stderr:?}"
    );
    expect_backend(&mut conn, "backend-a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_config_applies_to_the_next_request_and_is_acked() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let cp = ControlPlane::start().await;
    cp.set(mk_to("1", "a", &a).proto());
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;
    assert!(cp.wait_for_applied("1", ACK_TIMEOUT).await.is_some());

    cp.set(mk_to("2", "b", &b).proto());
    let ack = cp.wait_for_applied("2", ACK_TIMEOUT).await;

    assert!(ack.is_some(), "acks: {:?}", cp.acks());
    expect_backend(&mut conn, "backend-b").await;
    assert_eq!(
        cp.subscriptions(),
        vec![WEB.to_owned()],
        "one watch, on demand"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pushed_config_is_nacked_naming_the_field_and_traffic_keeps_flowing() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let cp = ControlPlane::start().await;
    cp.set(mk_to("1", "a", &a).proto());
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;

    let invalid = Destination::new(WEB)
        .version("2")
        .route(trellis_e2e::config::with(
            trellis_e2e::config::route("default", &[("b", 1)]),
            "matches",
            json!([{"path_regex": "/api/(unclosed"}]),
        ))
        .backend(trellis_e2e::config::backend("b", &[b.addr()]));
    cp.set(invalid.proto());
    let nack = cp
        .wait_for_rejected("2", ACK_TIMEOUT)
        .await
        .unwrap_or_else(|| panic!("no NACK for version 2: {:?}", cp.acks()));

    let (_, reason) = nack.rejected().unwrap();
    assert!(reason.contains("path_regex"), "{reason}");
    for _ in 0..5 {
        expect_backend(&mut conn, "backend-a").await;
    }
    let mut fresh = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut fresh, "backend-a").await;
    assert_eq!(b.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_keep_flowing_on_the_last_config_when_the_control_plane_dies() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    cp.set(mk_to("1", "a", &a).proto());
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;
    assert!(cp.wait_for_applied("1", ACK_TIMEOUT).await.is_some());

    cp.kill();

    for _ in 0..10 {
        expect_backend(&mut conn, "backend-a").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut fresh = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut fresh, "backend-a").await;
    assert_eq!(proxy.get("/live").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_mounted_from_a_configmap_follows_the_symlink_swap() {
    // Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and
    // atomically swapping the `..data` symlink the file's own symlink goes through.
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let mount = tempfile::tempdir().unwrap();
    let m = mount.path();
    std::fs::create_dir(m.join("..2026_01_01_v1")).unwrap();
    std::fs::write(
        m.join("..2026_01_01_v1/proxy.yaml"),
        yaml(&[mk_to("1", "a", &a)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_01_01_v1", m.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/proxy.yaml", m.join("proxy.yaml")).unwrap();
    let proxy = Proxy::builder()
        .arg("--config")
        .arg(m.join("proxy.yaml"))
        .wait_ready(true)
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;

    std::fs::create_dir(m.join("..2026_01_02_v2")).unwrap();
    std::fs::write(
        m.join("..2026_01_02_v2/proxy.yaml"),
        yaml(&[mk_to("2", "b", &b)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_01_02_v2", m.join("..data_tmp")).unwrap();
    std::fs::rename(m.join("..data_tmp"), m.join("..data")).unwrap();
    std::fs::remove_dir_all(m.join("..2026_01_01_v1")).unwrap();

    proxy.wait_for_versions(&["2".to_owned()]).await.unwrap();
    expect_backend(&mut conn, "backend-b").await;
}

/// `web.test`, version `version`, split between `a` and `b` by these weights.
fn mk_canary(version: &str, a: &Backend, weight_a: u32, b: &Backend, weight_b: u32) -> Destination {
    Destination::new(WEB)
        .version(version)
        .route(trellis_e2e::config::route(
            "rollout",
            &[("a", weight_a), ("b", weight_b)],
        ))
        .backend(trellis_e2e::config::backend("a", &[a.addr()]))
        .backend(trellis_e2e::config::backend("b", &[b.addr()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_rollout_under_load_drops_no_request() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let proxy = Proxy::start(&yaml(&[mk_canary("1", &a, 100, &b, 0)]))
        .await
        .unwrap();
    let outbound = proxy.outbound;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let mut conn = Http1Conn::connect(outbound).await.unwrap();
            let mut failures = Vec::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                sent += 1;
                match conn.get(WEB, "/").await {
                    Ok(r) if r.status == 200 => {}
                    other => failures.push(format!("{other:?}")),
                }
            }
            (sent, failures)
        }));
    }

    for (version, weight_a, weight_b) in [("2", 90, 10), ("3", 50, 50), ("4", 0, 100)] {
        tokio::time::sleep(Duration::from_millis(200)).await;
        proxy
            .rewrite_config(&yaml(&[mk_canary(version, &a, weight_a, &b, weight_b)]))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b_before = b.count();
    let a_before = a.count();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut sent = 0;
    for c in clients {
        let (n, failures) = c.await.unwrap();
        sent += n;
        assert!(
            failures.is_empty(),
            "failed during the rollout: {failures:?}"
        );
    }
    assert!(sent > 100, "only {sent} requests sent");
    assert!(b.count() > b_before, "the rollout ends on backend-b");
    assert_eq!(a.count(), a_before, "at 0/100 backend-a gets nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_pushes_from_the_control_plane_end_on_the_last_version() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let cp = ControlPlane::start().await;
    cp.set(mk_canary("1", &a, 100, &b, 0).proto());
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    expect_backend(&mut conn, "backend-a").await;

    for v in 2..=20u32 {
        let (wa, wb) = if v == 20 {
            (0, 100)
        } else {
            (100 - v * 5, v * 5)
        };
        cp.set(mk_canary(&v.to_string(), &a, wa, &b, wb).proto());
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!(reply.status, 200, "{reply}");
    }

    assert!(
        cp.wait_for_applied("20", ACK_TIMEOUT).await.is_some(),
        "{:?}",
        cp.acks().last()
    );
    for _ in 0..10 {
        expect_backend(&mut conn, "backend-b").await;
    }
    let dump = proxy.config_dump().await.unwrap();
    assert!(trellis_e2e::config::mentions_version(&dump, "20"), "{dump}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misspelt_field_is_refused_naming_it_rather_than_ignored() {
    let a = Backend::start("backend-a").await;
    let proxy = Proxy::start(&yaml(&[mk_to("1", "a", &a)])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let typo = trellis_e2e::config::with(
        trellis_e2e::config::route("default", &[("a", 1)]),
        "retyr",
        json!({"attempts": 3}),
    );
    let dest = Destination::new(WEB)
        .version("2")
        .route(typo)
        .backend(trellis_e2e::config::backend("a", &[a.addr()]));

    proxy.replace_config_file(&yaml(&[dest])).unwrap();

    let mut shown = String::new();
    for _ in 0..100 {
        shown = proxy.get("/config").await.unwrap().text();
        if shown.contains("retyr") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(shown.contains("routes[0].retyr"), "{shown}");
    let doc: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert!(
        trellis_e2e::config::mentions_version(&doc["outbound"], "1"),
        "{shown}"
    );
    assert!(
        !trellis_e2e::config::mentions_version(&doc["outbound"], "2"),
        "{shown}"
    );
    expect_backend(&mut conn, "backend-a").await;
}
