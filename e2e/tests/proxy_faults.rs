//! Fault injection, rate limits and mirroring, as a client of the proxy (and the backends
//! behind it) see them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, get_request, load, served_by, tally, with_status};
use trellis_e2e::config::{Destination, backend, route, single, with, yaml};
use trellis_e2e::grpc::{ToyIdentity, certify_request, identity_client_via};
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";

/// `web.test` with one route `default` (plus `route_fields`) to backend `web`.
fn mk_route(web: &Backend, route_fields: Value) -> Destination {
    let mut r = route("default", &[("web", 1)]);
    for (k, v) in route_fields.as_object().expect("an object") {
        r = with(r, k, v.clone());
    }
    Destination::new(WEB)
        .route(r)
        .backend(backend("web", &[web.addr()]))
}

async fn start(dest: Destination) -> Proxy {
    Proxy::start(&yaml(&[dest])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_fault_at_50_percent_delays_about_half_the_requests() {
    let web = Backend::start("web").await;
    let proxy = start(mk_route(
        &web,
        json!({"fault": {"delay": {"percent": 50, "delay": "0.4s"}}}),
    ))
    .await;

    let replies = load(proxy.outbound, 400, 50, |_| get_request(WEB, "/")).await;

    assert_eq!(served_by(&replies, "web"), 400, "{:?}", tally(&replies));
    let delayed = replies
        .iter()
        .filter(|r| r.as_ref().unwrap().elapsed >= Duration::from_millis(300))
        .count();
    assert!(
        (140..=260).contains(&delayed),
        "{delayed} of 400 requests delayed (want 35-65%)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_fault_at_30_percent_answers_about_30_percent_with_its_status() {
    let web = Backend::start("web").await;
    let proxy = start(mk_route(
        &web,
        json!({"fault": {"abort": {"percent": 30, "http_status": 503}}}),
    ))
    .await;

    let replies = load(proxy.outbound, 400, 20, |_| get_request(WEB, "/")).await;

    let aborted = with_status(&replies, 503);
    assert!(
        (80..=160).contains(&aborted),
        "{aborted} of 400 aborted (want 20-40%): {:?}",
        tally(&replies)
    );
    assert_eq!(served_by(&replies, "web") + aborted, 400);
    for r in replies.iter().flatten().filter(|r| r.status == 503) {
        assert!(r.is_proxy_answer(503), "{r}");
    }
    assert_eq!(web.count(), 400 - aborted, "aborted requests never left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_abort_fault_reaches_a_grpc_client_as_that_status_code() {
    let identity = ToyIdentity::start("identity-a").await;
    let dest = Destination::new("identity.test")
        .route(with(
            route("default", &[("identity", 1)]),
            "fault",
            json!({"abort": {"percent": 100, "grpc_code": 7}}),
        ))
        .backend(backend("identity", &[identity.addr()]));
    let proxy = start(dest).await;
    let mut client = identity_client_via(proxy.outbound, "identity.test")
        .await
        .unwrap();

    let status = client.certify(certify_request()).await.unwrap_err();

    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(identity.calls(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_answers_429_beyond_its_burst() {
    let web = Backend::start("web").await;
    let dest = single(WEB, "web", &[web.addr()])
        .set("rate_limit", json!({"requests_per_second": 10, "burst": 5}));
    let proxy = start(dest).await;

    let replies = load(proxy.outbound, 30, 30, |_| get_request(WEB, "/")).await;

    let limited = with_status(&replies, 429);
    let served = served_by(&replies, "web");
    assert_eq!(limited + served, 30, "{:?}", tally(&replies));
    assert!(
        (15..=27).contains(&limited),
        "{limited} of a burst of 30 got 429 (burst 5, 10/s)"
    );
    assert!(served >= 5, "the burst of 5 is served: {served}");
    for r in replies.iter().flatten().filter(|r| r.status == 429) {
        assert!(r.is_proxy_answer(429), "{r}");
    }
}

/// `web.test` routed to backend `a`, mirrored 100% to backend `m`.
fn mk_mirrored(a: &Backend, m: &Backend) -> Destination {
    Destination::new(WEB)
        .route(with(
            route("default", &[("a", 1)]),
            "mirror",
            json!({"backend": "m", "percent": 100}),
        ))
        .backend(backend("a", &[a.addr()]))
        .backend(backend("m", &[m.addr()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_backend_receives_a_copy_of_every_request() {
    let a = Backend::start("backend-a").await;
    let m = Backend::start("backend-m").await;
    let proxy = start(mk_mirrored(&a, &m)).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    for i in 0..10 {
        let reply = conn.get(WEB, &format!("/items/{i}")).await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "backend-a".into())
        );
    }

    assert!(
        m.wait_for_count(10, Duration::from_secs(3)).await,
        "the mirror saw {} of 10",
        m.count()
    );
    let mut paths: Vec<_> = m.requests().into_iter().map(|r| r.path).collect();
    paths.sort();
    let mut want: Vec<_> = (0..10).map(|i| format!("/items/{i}")).collect();
    want.sort();
    assert_eq!(paths, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_mirror_does_not_slow_the_original_requests() {
    let a = Backend::start("backend-a").await;
    let m = Backend::slow("backend-m", Duration::from_secs(2)).await;
    let proxy = start(mk_mirrored(&a, &m)).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    for i in 0..5 {
        let started = Instant::now();
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "backend-a".into())
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "request {i} waited {:?} for the 2s mirror",
            started.elapsed()
        );
    }
    assert!(
        m.wait_for_count(5, Duration::from_secs(3)).await,
        "the mirror saw {} of 5",
        m.count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_at_50_percent_copies_about_half_the_requests() {
    let a = Backend::start("backend-a").await;
    let m = Backend::start("backend-m").await;
    let dest = Destination::new(WEB)
        .route(with(
            route("default", &[("a", 1)]),
            "mirror",
            json!({"backend": "m", "percent": 50}),
        ))
        .backend(backend("a", &[a.addr()]))
        .backend(backend("m", &[m.addr()]));
    let proxy = start(dest).await;

    let replies = load(proxy.outbound, 300, 10, |_| get_request(WEB, "/")).await;
    assert_eq!(served_by(&replies, "backend-a"), 300);
    m.wait_for_count(100, Duration::from_secs(3)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert!(
        (100..=200).contains(&m.count()),
        "{} of 300 mirrored at 50%",
        m.count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_on_a_route_limits_only_that_route() {
    let web = Backend::start("web").await;
    let dest = Destination::new(WEB)
        .route(with(
            with(
                route("limited", &[("web", 1)]),
                "matches",
                json!([{"path_regex": "/limited"}]),
            ),
            "rate_limit",
            json!({"requests_per_second": 1, "burst": 2}),
        ))
        .route(route("free", &[("web", 1)]))
        .backend(backend("web", &[web.addr()]));
    let proxy = start(dest).await;

    let limited = load(proxy.outbound, 20, 20, |_| get_request(WEB, "/limited")).await;
    let free = load(proxy.outbound, 20, 20, |_| get_request(WEB, "/free")).await;

    assert!(with_status(&limited, 429) >= 15, "{:?}", tally(&limited));
    assert_eq!(served_by(&free, "web"), 20, "{:?}", tally(&free));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_post_carries_its_body_and_host() {
    use http::Method;
    use trellis_e2e::client::{full, request};
    let a = Backend::start("backend-a").await;
    let m = Backend::start("backend-m").await;
    let proxy = start(mk_mirrored(&a, &m)).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn
        .send(
            request(Method::POST, WEB, "/orders")
                .body(full("item=42"))
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.text(), "backend-a");
    assert!(m.wait_for_count(1, Duration::from_secs(3)).await);
    let copy = &m.requests()[0];
    assert_eq!(
        (&copy.method, copy.path.as_str(), &copy.body[..]),
        (&Method::POST, "/orders", &b"item=42"[..])
    );
    assert_eq!(copy.header("host").as_deref(), Some(WEB));
}
