//! On-demand discovery from the control plane: a proxy watches a destination when its own
//! traffic first needs it, waits a bounded time for the first config, names its workload,
//! lets idle destinations go, and watches again when the control plane comes back.

use std::time::{Duration, Instant};

use trellis_e2e::backend::Backend;
use trellis_e2e::client::Http1Conn;
use trellis_e2e::config::single;
use trellis_e2e::control_plane::ControlPlane;
use trellis_e2e::proxy::{Proxy, ProxyBuilder};
use trellis_proxy_api::v1::Workload;

const WEB: &str = "web.test";
const WAIT: Duration = Duration::from_secs(5);

fn with_control_plane(cp: &ControlPlane) -> ProxyBuilder {
    Proxy::builder().control_plane(&cp.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_for_a_new_destination_waits_for_its_first_config() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    let proxy = with_control_plane(&cp).start().await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let request = tokio::spawn(async move { conn.get(WEB, "/").await });
    assert!(
        cp.wait_until(WAIT, |cp| cp.subscriptions().contains(&WEB.to_owned()))
            .await,
        "the first request makes the proxy watch {WEB}: {:?}",
        cp.subscriptions()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    cp.set(single(WEB, "a", &[a.addr()]).proto());

    let reply = request.await.unwrap().unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_never_configured_gets_503_after_the_discovery_timeout() {
    let cp = ControlPlane::start().await;
    let proxy = with_control_plane(&cp)
        .arg("--discovery-timeout")
        .arg("0.5s")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let started = Instant::now();
    let reply = conn.get("unknown.test", "/").await.unwrap();

    assert!(reply.is_proxy_answer(503), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered after {:?} with a 0.5s discovery timeout",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_names_its_workload_when_it_watches() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    cp.set(single(WEB, "a", &[a.addr()]).proto());
    let proxy = with_control_plane(&cp)
        .arg("--workload")
        .arg("shop/web")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    assert_eq!(conn.get(WEB, "/").await.unwrap().status, 200);

    let watches = cp.watches();
    assert_eq!(watches.len(), 1, "{watches:?}");
    assert_eq!(
        watches[0].workload,
        Some(Workload {
            namespace: "shop".into(),
            name: "web".into()
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_destination_is_unsubscribed_and_watched_again_when_called() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    cp.set(single(WEB, "a", &[a.addr()]).proto());
    let proxy = with_control_plane(&cp)
        .arg("--discovery-idle")
        .arg("1s")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    assert_eq!(conn.get(WEB, "/").await.unwrap().status, 200);
    assert_eq!(cp.open_watches(), 1);

    assert!(
        cp.wait_until(WAIT, |cp| cp.open_watches() == 0).await,
        "the watch of an idle destination is closed"
    );

    let reply = conn.get(WEB, "/").await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
    assert_eq!(cp.subscriptions(), [WEB, WEB]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_watches_again_when_the_control_plane_comes_back() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let cp = ControlPlane::start().await;
    cp.set(single(WEB, "a", &[a.addr()]).version("1").proto());
    let proxy = with_control_plane(&cp).start().await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    assert_eq!(conn.get(WEB, "/").await.unwrap().text(), "backend-a");

    let addr = cp.addr();
    cp.kill();
    drop(cp);
    assert_eq!(conn.get(WEB, "/").await.unwrap().text(), "backend-a");
    let restarted = ControlPlane::start_on(addr).await;
    restarted.set(single(WEB, "b", &[b.addr()]).version("2").proto());

    let applied = restarted
        .wait_for_applied("2", Duration::from_secs(8))
        .await;
    assert!(
        applied.is_some(),
        "the proxy did not watch the restarted control plane: {:?}",
        restarted.watches()
    );
    assert_eq!(conn.get(WEB, "/").await.unwrap().text(), "backend-b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_answers_an_alias_with_the_canonical_destination() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    cp.set_for(
        "web",
        single("web.shop.svc.cluster.local", "a", &[a.addr()]).proto(),
    );
    let proxy = with_control_plane(&cp).start().await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get("web", "/").await.unwrap();

    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
    assert_eq!(cp.subscriptions(), ["web"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_config_that_is_refused_answers_503_with_the_reason_at_once() {
    let cp = ControlPlane::start().await;
    let invalid = trellis_e2e::config::Destination::new(WEB)
        .route(trellis_e2e::config::route("default", &[("missing", 1)]));
    cp.set(invalid.proto());
    let proxy = with_control_plane(&cp).start().await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let started = Instant::now();
    let reply = conn.get(WEB, "/").await.unwrap();

    assert!(reply.is_proxy_answer(503), "{reply}");
    assert!(
        reply.text().contains("routes[0].backends[0].backend"),
        "{reply}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}, not at once (discovery timeout 3s)",
        started.elapsed()
    );
    assert!(cp.wait_for_rejected("1", WAIT).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_with_the_reason_while_the_control_plane_is_unreachable() {
    let nowhere = trellis_e2e::backend::refusing_addr();
    let proxy = Proxy::builder()
        .control_plane(&format!("http://{nowhere}"))
        .arg("--discovery-timeout")
        .arg("0.5s")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();
    let ready = proxy.get("/ready").await.unwrap();

    assert!(reply.is_proxy_answer(503), "{reply}");
    assert_eq!(ready.status, 503, "{ready}");
    assert!(!ready.text().trim().is_empty(), "/ready gives its reason");
    assert_eq!(proxy.get("/live").await.unwrap().status, 200);
}
