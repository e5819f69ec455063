//! Load balancing across the endpoints of one backend: which endpoint the proxy picks, by
//! latency (peak EWMA, the default), in turn (round robin), by requests in flight (least
//! request) or by a key (ring hash).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, empty, get_request, load, request, tally};
use trellis_e2e::config::{Destination, backend, route, with, yaml};
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";

/// `web.test` with one backend `web` over these endpoints, balanced by `balancer` (`None`:
/// the default).
fn mk_balanced(endpoints: &[&Backend], balancer: Option<Value>) -> Destination {
    let addrs: Vec<_> = endpoints.iter().map(|e| e.addr()).collect();
    let mut web = backend("web", &addrs);
    if let Some(b) = balancer {
        web = with(web, "balancer", b);
    }
    Destination::new(WEB)
        .route(route("default", &[("web", 1)]))
        .backend(web)
}

async fn start(dest: Destination) -> Proxy {
    Proxy::start(&yaml(&[dest])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_sends_markedly_less_to_a_slow_endpoint() {
    let slow = Backend::slow("slow", Duration::from_millis(50)).await;
    let fast = Backend::start("fast").await;
    let proxy = start(mk_balanced(&[&slow, &fast], None)).await;

    let replies = load(proxy.outbound, 1000, 10, |_| get_request(WEB, "/")).await;

    assert_eq!(
        replies.iter().filter(|r| r.is_ok()).count(),
        1000,
        "{:?}",
        tally(&replies)
    );
    assert!(
        slow.count() < 250,
        "the slow endpoint got {} of 1000 requests (fast: {})",
        slow.count(),
        fast.count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_requests_evenly() {
    let e1 = Backend::start("e1").await;
    let e2 = Backend::start("e2").await;
    let e3 = Backend::start("e3").await;
    let proxy = start(mk_balanced(
        &[&e1, &e2, &e3],
        Some(json!({"round_robin": {}})),
    ))
    .await;

    let replies = load(proxy.outbound, 300, 5, |_| get_request(WEB, "/")).await;

    let counts = tally(&replies);
    for e in ["e1", "e2", "e3"] {
        let n = counts.get(&format!("200 {e}")).copied().unwrap_or(0);
        assert!((85..=115).contains(&n), "{e} got {n}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_avoids_an_endpoint_holding_a_long_request() {
    let busy = Backend::start("busy").await;
    let free = Backend::start("free").await;
    let proxy = start(mk_balanced(
        &[&busy, &free],
        Some(json!({"least_request": {}})),
    ))
    .await;
    busy.hold();
    // Requests until one of them is stuck on `busy` (the others come back from `free`).
    let mut long = None;
    for _ in 0..20 {
        let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
        let handle = tokio::spawn(async move { conn.get(WEB, "/long").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        if busy.in_flight() == 1 {
            long = Some(handle);
            break;
        }
        let reply = handle.await.unwrap().unwrap();
        assert_eq!(reply.text(), "free");
    }
    let long = long.expect("some request reached the busy endpoint");

    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    for i in 0..50 {
        let reply = tokio::time::timeout(Duration::from_secs(2), conn.get(WEB, "/short"))
            .await
            .unwrap_or_else(|_| panic!("request {i} went to the endpoint holding a request"))
            .unwrap();
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "free".into()));
    }
    assert_eq!(busy.count(), 1, "only the long request reached it");

    busy.release();
    let reply = long.await.unwrap().unwrap();
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "busy".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_header_keeps_each_key_on_one_endpoint() {
    let e1 = Backend::start("e1").await;
    let e2 = Backend::start("e2").await;
    let e3 = Backend::start("e3").await;
    let proxy = start(mk_balanced(
        &[&e1, &e2, &e3],
        Some(json!({"ring_hash": {"header": "x-user"}})),
    ))
    .await;

    let replies = load(proxy.outbound, 200, 10, |i| {
        request(Method::GET, WEB, "/")
            .header("x-user", format!("user-{}", i % 20))
            .body(empty())
            .unwrap()
    })
    .await;

    let mut by_user: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, r) in replies.iter().enumerate() {
        let r = r.as_ref().unwrap();
        assert_eq!(r.status, 200, "{r}");
        by_user.entry(i % 20).or_default().insert(r.text());
    }
    for (user, endpoints) in &by_user {
        assert_eq!(endpoints.len(), 1, "user-{user} went to {endpoints:?}");
    }
    let used: BTreeSet<_> = by_user.values().flatten().collect();
    assert!(used.len() >= 2, "20 users all went to {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_the_source_ip_keeps_each_client_on_one_endpoint() {
    let e1 = Backend::start("e1").await;
    let e2 = Backend::start("e2").await;
    let e3 = Backend::start("e3").await;
    let proxy = start(mk_balanced(
        &[&e1, &e2, &e3],
        Some(json!({"ring_hash": {"source_ip": true}})),
    ))
    .await;

    let mut by_client: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    for round in 0..3 {
        for n in 2..22 {
            let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, n));
            // A new connection every time: the client, not the connection, is the key.
            let mut conn = Http1Conn::connect_from(client, proxy.outbound)
                .await
                .unwrap();
            let reply = conn.get(WEB, "/").await.unwrap();
            assert_eq!(reply.status, 200, "round {round} from {client}: {reply}");
            by_client.entry(client).or_default().insert(reply.text());
        }
    }
    for (client, endpoints) in &by_client {
        assert_eq!(endpoints.len(), 1, "{client} went to {endpoints:?}");
    }
    let used: BTreeSet<_> = by_client.values().flatten().collect();
    assert!(used.len() >= 2, "20 clients all went to {used:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_hash_on_a_cookie_keeps_each_session_on_one_endpoint() {
    let e1 = Backend::start("e1").await;
    let e2 = Backend::start("e2").await;
    let e3 = Backend::start("e3").await;
    let proxy = start(mk_balanced(
        &[&e1, &e2, &e3],
        Some(json!({"ring_hash": {"cookie": "session"}})),
    ))
    .await;

    let replies = load(proxy.outbound, 200, 10, |i| {
        request(Method::GET, WEB, "/")
            .header(
                "cookie",
                format!("theme=dark; session=s{}; lang=en", i % 20),
            )
            .body(empty())
            .unwrap()
    })
    .await;

    let mut by_session: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, r) in replies.iter().enumerate() {
        by_session
            .entry(i % 20)
            .or_default()
            .insert(r.as_ref().unwrap().text());
    }
    for (session, endpoints) in &by_session {
        assert_eq!(
            endpoints.len(),
            1,
            "session s{session} went to {endpoints:?}"
        );
    }
    let used: BTreeSet<_> = by_session.values().flatten().collect();
    assert!(used.len() >= 2, "20 sessions all went to {used:?}");
}
