//! What a proxy watches at the control plane besides the destinations its traffic names:
//! its workload's inbound policy (`WatchInbound`: applied, changed on the same stream,
//! NACKed when invalid, kept while the control plane is away), and destinations named by
//! address, which it watches by original destination.

use std::net::SocketAddr;
use std::time::Duration;

use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, Reply};
use trellis_e2e::config::single;
use trellis_e2e::control_plane::ControlPlane;
use trellis_e2e::inbound_config::{InboundPolicy, unmeshed};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;
use trellis_proxy_api::v1::InboundConfig;

const WORKLOAD: &str = "shop/api";
const WAIT: Duration = Duration::from_secs(5);

/// The `InboundConfig` a control plane sends for this policy.
fn proto(policy: &InboundPolicy) -> InboundConfig {
    serde_json::from_value(policy.json().clone())
        .unwrap_or_else(|e| panic!("not an InboundConfig: {e}\n{}", policy.json()))
}

/// Version `version`: deny by default, plaintext clients allowed on the app's port.
fn unmeshed_allowed(version: &str, app: &Backend) -> InboundConfig {
    proto(
        &InboundPolicy::deny()
            .version(version)
            .port(unmeshed(app.addr().port())),
    )
}

/// Version `version`: deny by default, no port listed.
fn deny_all(version: &str) -> InboundConfig {
    proto(&InboundPolicy::deny().version(version))
}

/// A proxy for [`WORKLOAD`] with its inbound side in front of `app`.
async fn proxy_for(cp: &ControlPlane, app: &Backend) -> Proxy {
    Proxy::builder()
        .control_plane(&cp.url())
        .arg("--workload")
        .arg(WORKLOAD)
        .inbound_target(app.addr())
        .start()
        .await
        .unwrap()
}

async fn get(proxy: &Proxy) -> Reply {
    let mut conn = Http1Conn::connect(proxy.inbound).await.unwrap();
    conn.get("api.test", "/").await.unwrap()
}

fn assert_allowed(reply: &Reply) {
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "app".into()));
}

fn assert_denied(reply: &Reply, reason: &str) {
    assert!(reply.is_proxy_answer(403), "{reply}");
    assert_eq!(reply.proxy_error().as_deref(), Some(reason), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbound_policy_comes_from_the_control_plane_and_changes_on_the_same_stream() {
    let app = Backend::start("app").await;
    let cp = ControlPlane::start().await;
    cp.set_default_inbound(None);
    let proxy = proxy_for(&cp, &app).await;
    assert!(
        cp.wait_until(WAIT, |cp| cp.open_inbound_watches() == 1)
            .await,
        "the proxy watches its inbound policy at start"
    );

    assert_denied(&get(&proxy).await, "no_inbound_policy");

    cp.set_inbound(WORKLOAD, unmeshed_allowed("1", &app));
    assert!(cp.wait_for_inbound_applied("1", WAIT).await.is_some());
    assert_allowed(&get(&proxy).await);

    cp.set_inbound(WORKLOAD, deny_all("2"));
    assert!(cp.wait_for_inbound_applied("2", WAIT).await.is_some());
    assert_denied(&get(&proxy).await, "port_not_allowed");

    let applied: Vec<_> = cp
        .inbound_acks()
        .iter()
        .map(|a| (a.workload.clone(), a.applied().map(str::to_owned)))
        .collect();
    let acked = |v: &str| (WORKLOAD.to_owned(), Some(v.to_owned()));
    assert_eq!(applied, [acked("1"), acked("2")]);
    assert_eq!(cp.inbound_watches(), [WORKLOAD], "one stream carried both");
    assert_eq!(app.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_inbound_policy_is_nacked_and_the_previous_one_stays_in_force() {
    let app = Backend::start("app").await;
    let cp = ControlPlane::start().await;
    cp.set_inbound(WORKLOAD, unmeshed_allowed("1", &app));
    let proxy = proxy_for(&cp, &app).await;
    assert!(cp.wait_for_inbound_applied("1", WAIT).await.is_some());
    assert_allowed(&get(&proxy).await);

    let invalid = proto(&InboundPolicy::deny().version("2").port(unmeshed(0)));
    cp.set_inbound(WORKLOAD, invalid);

    let nack = cp
        .wait_for_inbound_rejected("2", WAIT)
        .await
        .unwrap_or_else(|| panic!("no NACK for version 2: {:?}", cp.inbound_acks()));
    let (_, reason) = nack.rejected().unwrap();
    assert!(reason.contains("ports[0].port"), "{reason}");
    assert_allowed(&get(&proxy).await);
    let dump = proxy.config_dump().await.unwrap();
    assert_eq!(dump["inbound"]["version"], "1", "{dump}");
    let m = proxy.metrics().await.unwrap();
    let updates = |result| {
        metrics::sum(
            &m,
            "trellis_config_updates_total",
            &[("source", "grpc"), ("result", result)],
        )
    };
    assert_eq!((updates("applied"), updates("rejected")), (1.0, 1.0), "{m}");
    let stderr = proxy.stderr_lines();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("refused inbound policy 2")),
        "the refusal is logged: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_inbound_policy_stays_in_force_while_the_control_plane_is_away() {
    let app = Backend::start("app").await;
    let cp = ControlPlane::start().await;
    cp.set_inbound(WORKLOAD, unmeshed_allowed("1", &app));
    let proxy = proxy_for(&cp, &app).await;
    assert!(cp.wait_for_inbound_applied("1", WAIT).await.is_some());

    let addr = cp.addr();
    cp.kill();
    drop(cp);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_allowed(&get(&proxy).await);

    let restarted = ControlPlane::start_on(addr).await;
    restarted.set_inbound(WORKLOAD, deny_all("2"));
    assert!(
        restarted
            .wait_for_inbound_applied("2", Duration::from_secs(8))
            .await
            .is_some(),
        "the proxy watches the restarted control plane: {:?}",
        restarted.inbound_watches()
    );
    assert_denied(&get(&proxy).await, "port_not_allowed");
    let stderr = proxy.stderr_lines();
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("keeping the last good policy")),
        "the lost control plane is logged: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_named_by_address_is_watched_by_original_destination() {
    let a = Backend::start("backend-a").await;
    let cp = ControlPlane::start().await;
    let by_address = a.addr().to_string();
    cp.set_for(&by_address, single(&by_address, "a", &[a.addr()]).proto());
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(&by_address, "/").await.unwrap();

    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
    assert_eq!(cp.original_destinations(), [a.addr()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_address_is_watched_by_original_destination() {
    let cp = ControlPlane::start().await;
    let proxy = Proxy::builder()
        .control_plane(&cp.url())
        .arg("--discovery-timeout")
        .arg("0.5s")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get("[fd00::1]:8080", "/").await.unwrap();

    assert!(reply.is_proxy_answer(503), "nothing serves it: {reply}");
    let addr: SocketAddr = "[fd00::1]:8080".parse().unwrap();
    assert_eq!(cp.original_destinations(), [addr]);
}
