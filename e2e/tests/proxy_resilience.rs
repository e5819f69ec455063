//! Resilience: retries (and their budget), timeouts, outlier ejection and the concurrency
//! limit, as a client of the proxy sees them.

use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use trellis_e2e::backend::{Backend, RESET};
use trellis_e2e::client::{Http1Conn, full, get_request, load, request, tally, with_status};
use trellis_e2e::config::{Destination, backend, route, with, yaml};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";

/// `web.test` with one route (`default` plus `route_fields`) to backend `web` over these
/// endpoints (plus `backend_fields`).
fn mk_dest(endpoints: &[&Backend], route_fields: Value, backend_fields: Value) -> Destination {
    let addrs: Vec<_> = endpoints.iter().map(|e| e.addr()).collect();
    let mut r = route("default", &[("web", 1)]);
    for (k, v) in route_fields.as_object().expect("an object") {
        r = with(r, k, v.clone());
    }
    let mut b = backend("web", &addrs);
    for (k, v) in backend_fields.as_object().expect("an object") {
        b = with(b, k, v.clone());
    }
    Destination::new(WEB).route(r).backend(b)
}

async fn start(dest: Destination) -> Proxy {
    Proxy::start(&yaml(&[dest])).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_turns_a_backends_first_503s_into_a_200() {
    let web = Backend::start("web").await;
    web.push_statuses([503, 503]);
    let proxy = start(mk_dest(
        &[&web],
        json!({"retry": {"attempts": 3, "retry_on": ["5xx"]}}),
        json!({}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!((reply.status.as_u16(), reply.text()), (200, "web".into()));
    assert_eq!(web.count(), 3, "two failed attempts and one that worked");
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(&m, "trellis_retries_total", &[("route", "default")]) >= 2.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_budget_stops_a_retry_storm_against_a_failing_backend() {
    let web = Backend::start("web").await;
    web.set_status(503);
    let proxy = start(mk_dest(
        &[&web],
        json!({"retry": {
            "attempts": 3,
            "retry_on": ["5xx"],
            "backoff": {"base": "0.001s", "max": "0.002s"},
            "budget": {"percent": 10, "min_per_second": 1, "window": "10s"},
        }}),
        json!({}),
    ))
    .await;

    let replies = load(proxy.outbound, 200, 10, |_| get_request(WEB, "/")).await;

    assert_eq!(with_status(&replies, 503), 200, "{:?}", tally(&replies));
    assert!(
        web.count() <= 260,
        "the backend saw {} requests for 200 sent (no budget: 600)",
        web.count()
    );
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(&m, "trellis_retries_skipped_total", &[("reason", "budget")]) > 0.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_timeout_answers_504_when_the_backend_is_too_slow() {
    let web = Backend::slow("web", Duration::from_secs(3)).await;
    let proxy = start(mk_dest(&[&web], json!({"timeout": "0.3s"}), json!({}))).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let started = Instant::now();
    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!(reply.status, 504, "{reply}");
    assert!(reply.is_proxy_answer(504), "{reply}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the 0.3s timeout answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_try_timeout_retries_on_the_fast_endpoint() {
    let slow = Backend::slow("slow", Duration::from_secs(3)).await;
    let fast = Backend::start("fast").await;
    let proxy = start(mk_dest(
        &[&slow, &fast],
        json!({
            "timeout": "5s",
            "retry": {
                "attempts": 3,
                "per_try_timeout": "0.2s",
                "retry_on": ["5xx", "gateway-error"],
            },
        }),
        json!({"balancer": {"round_robin": {}}}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    for i in 0..6 {
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "fast".into()),
            "request {i}"
        );
        assert!(
            reply.elapsed < Duration::from_millis(2000),
            "request {i} took {:?}",
            reply.elapsed
        );
    }
    assert!(
        slow.count() >= 1,
        "round robin sent no attempt to the slow endpoint"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_ejected_and_readmitted_once_healthy() {
    let bad = Backend::start("bad").await;
    let good = Backend::start("good").await;
    bad.set_status(503);
    let proxy = start(mk_dest(
        &[&bad, &good],
        json!({}),
        json!({
            "balancer": {"round_robin": {}},
            "circuit_breaker": {"consecutive_failures": 3, "base_ejection_time": "1s"},
        }),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    for _ in 0..12 {
        conn.get(WEB, "/").await.unwrap();
    }
    let failures = bad.count();
    assert!(
        (3..=4).contains(&failures),
        "ejected after 3 consecutive failures, but it saw {failures}"
    );
    for _ in 0..10 {
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "good".into()));
    }
    assert_eq!(bad.count(), failures, "an ejected endpoint gets no traffic");
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(&m, "trellis_endpoint_ejections_total", &[]) >= 1.0,
        "{m}"
    );

    bad.set_status(200);
    let deadline = Instant::now() + Duration::from_secs(4);
    while bad.count() == failures {
        assert!(
            Instant::now() < deadline,
            "not readmitted 4s after a 1s ejection"
        );
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!(reply.status, 200, "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replies = load(proxy.outbound, 20, 1, |_| get_request(WEB, "/")).await;
    let counts = tally(&replies);
    assert!(
        counts.get("200 bad").is_some_and(|n| *n >= 5),
        "readmitted and healthy, it takes its share again: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_at_its_concurrency_limit_answers_503_at_once() {
    let web = Backend::start("web").await;
    web.hold();
    let proxy = start(mk_dest(
        &[&web],
        json!({}),
        json!({"circuit_breaker": {"max_concurrent_requests": 2}}),
    ))
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
        held.push(tokio::spawn(async move { conn.get(WEB, "/held").await }));
    }
    assert!(
        web.wait_for_in_flight(2, Duration::from_secs(5)).await,
        "two requests held at the backend"
    );

    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    for _ in 0..5 {
        let reply = tokio::time::timeout(Duration::from_secs(2), conn.get(WEB, "/over"))
            .await
            .expect("the proxy answers over-limit requests without waiting")
            .unwrap();
        assert_eq!(reply.status, 503, "{reply}");
        assert!(reply.is_proxy_answer(503), "{reply}");
    }
    assert_eq!(
        web.count(),
        2,
        "over-limit requests never reached the backend"
    );

    web.release();
    for h in held {
        assert_eq!(h.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(conn.get(WEB, "/after").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_body_is_replayed_on_retry() {
    let web = Backend::start("web").await;
    web.push_statuses([503]);
    let proxy = start(mk_dest(
        &[&web],
        json!({"retry": {"attempts": 2, "retry_on": ["5xx"]}}),
        json!({}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn
        .send(
            request(Method::POST, WEB, "/orders")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(full("item=42&quantity=3"))
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    let seen = web.requests();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/orders");
        assert_eq!(&r.body[..], b"item=42&quantity=3");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_refusing_connections_gets_502_from_the_proxy() {
    let dead = trellis_e2e::backend::refusing_addr();
    let dest = Destination::new(WEB)
        .route(route("default", &[("web", 1)]))
        .backend(backend("web", &[dead]));
    let proxy = start(dest).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert!(reply.is_proxy_answer(502), "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_on_another_endpoint() {
    let good = Backend::start("good").await;
    let dead = trellis_e2e::backend::refusing_addr();
    let dest = Destination::new(WEB)
        .route(with(
            route("default", &[("web", 1)]),
            "retry",
            json!({"attempts": 2, "retry_on": ["connect-failure"]}),
        ))
        .backend(with(
            backend("web", &[dead, good.addr()]),
            "balancer",
            json!({"round_robin": {}}),
        ));
    let proxy = start(dest).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    for i in 0..6 {
        let reply = conn.get(WEB, "/").await.unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text()),
            (200, "good".into()),
            "request {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_larger_than_the_replay_limit_is_not_retried() {
    let web = Backend::start("web").await;
    web.push_statuses([503]);
    let proxy = start(mk_dest(
        &[&web],
        json!({"retry": {"attempts": 3, "retry_on": ["5xx"], "max_replay_body_bytes": 1024}}),
        json!({}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let body = vec![b'x'; 8 * 1024];

    let reply = conn
        .send(
            request(Method::POST, WEB, "/upload")
                .body(full(body.clone()))
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 503, "the backend's own answer: {reply}");
    assert!(reply.proxy_error().is_none(), "{reply}");
    let seen = web.requests();
    assert_eq!(seen.len(), 1, "not replayed");
    assert_eq!(seen[0].body.len(), body.len(), "but sent whole");
    let m = proxy.metrics().await.unwrap();
    assert!(
        metrics::sum(
            &m,
            "trellis_retries_skipped_total",
            &[("reason", "body_too_large")]
        ) >= 1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_a_listed_status_turns_a_409_into_success() {
    let web = Backend::start("web").await;
    web.push_statuses([409]);
    let proxy = start(mk_dest(
        &[&web],
        json!({"retry": {"attempts": 2, "statuses": [409]}}),
        json!({}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(web.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_max_ejection_percent_of_endpoints_are_ejected() {
    let bad1 = Backend::start("bad1").await;
    let bad2 = Backend::start("bad2").await;
    bad1.set_status(503);
    bad2.set_status(503);
    let proxy = start(mk_dest(
        &[&bad1, &bad2],
        json!({}),
        json!({
            "balancer": {"round_robin": {}},
            "circuit_breaker": {
                "consecutive_failures": 2,
                "base_ejection_time": "10s",
                "max_ejection_percent": 50,
            },
        }),
    ))
    .await;

    let replies = load(proxy.outbound, 20, 1, |_| get_request(WEB, "/")).await;

    for r in &replies {
        let r = r.as_ref().unwrap();
        assert!(
            r.status == 503 && r.proxy_error().is_none(),
            "one endpoint stays in: every answer comes from a backend, got {r}"
        );
    }
    let m = proxy.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(&m, "trellis_endpoint_ejections_total", &[]),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_endpoint_ejected_the_proxy_answers_503() {
    let bad = Backend::start("bad").await;
    bad.set_status(503);
    let proxy = start(mk_dest(
        &[&bad],
        json!({}),
        json!({"circuit_breaker": {
            "consecutive_failures": 2,
            "base_ejection_time": "10s",
            "max_ejection_percent": 100,
        }}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    for _ in 0..2 {
        let reply = conn.get(WEB, "/").await.unwrap();
        assert!(
            reply.status == 503 && reply.proxy_error().is_none(),
            "{reply}"
        );
    }

    let reply = conn.get(WEB, "/").await.unwrap();

    assert!(reply.is_proxy_answer(503), "{reply}");
    assert_eq!(bad.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_restarted_on_the_same_address_is_reached_again() {
    let web = Backend::start("web-1").await;
    let addr = web.addr();
    let proxy = start(mk_dest(&[&web], json!({}), json!({}))).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    for _ in 0..3 {
        assert_eq!(conn.get(WEB, "/").await.unwrap().text(), "web-1");
    }

    drop(web);
    let restarted = Backend::start_on("web-2", addr).await;

    let reply = conn.get(WEB, "/").await.unwrap();
    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "web-2".into()),
        "the pooled connection to the old process is not reused"
    );
    assert_eq!(restarted.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_gets_502_and_is_retried_with_retry_on_reset() {
    let web = Backend::start("web").await;
    let plain = mk_dest(&[&web], json!({}), json!({}));
    let proxy = start(plain).await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    web.push_statuses([RESET]);

    let reply = conn.get(WEB, "/").await.unwrap();

    assert!(reply.is_proxy_answer(502), "{reply}");

    let retried = mk_dest(
        &[&web],
        json!({"retry": {"attempts": 2, "retry_on": ["reset"]}}),
        json!({}),
    )
    .version("2");
    proxy.rewrite_config(&yaml(&[retried])).await.unwrap();
    web.push_statuses([RESET]);

    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!((reply.status.as_u16(), reply.text()), (200, "web".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_refusing_connections_is_ejected_after_consecutive_failures() {
    let good = Backend::start("good").await;
    let dead = trellis_e2e::backend::refusing_addr();
    let dest = Destination::new(WEB)
        .route(route("default", &[("web", 1)]))
        .backend(with(
            with(
                backend("web", &[dead, good.addr()]),
                "balancer",
                json!({"round_robin": {}}),
            ),
            "circuit_breaker",
            json!({"consecutive_failures": 3, "base_ejection_time": "10s"}),
        ));
    let proxy = start(dest).await;

    let replies = load(proxy.outbound, 60, 1, |_| get_request(WEB, "/")).await;

    let counts = tally(&replies);
    assert_eq!(counts.get("502").copied().unwrap_or(0), 3, "{counts:?}");
    assert_eq!(
        counts.get("200 good").copied().unwrap_or(0),
        57,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_client_abandons_frees_its_concurrency_slot() {
    let web = Backend::start("web").await;
    web.hold();
    let proxy = start(mk_dest(
        &[&web],
        json!({}),
        json!({"circuit_breaker": {"max_concurrent_requests": 1}}),
    ))
    .await;
    let mut abandoned = Http1Conn::connect(proxy.outbound).await.unwrap();
    let request = tokio::spawn(async move { abandoned.get(WEB, "/abandoned").await });
    assert!(web.wait_for_in_flight(1, Duration::from_secs(5)).await);

    request.abort(); // the client goes away, closing its connection
    let _ = request.await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let next = tokio::spawn(async move { conn.get(WEB, "/next").await });
    assert!(
        web.wait_for_count(2, Duration::from_secs(3)).await,
        "the next request never reached the backend"
    );
    web.release();
    let reply = next.await.unwrap().unwrap();
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "web".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_bounds_all_retries_together() {
    let web = Backend::slow("web", Duration::from_secs(3)).await;
    let proxy = start(mk_dest(
        &[&web],
        json!({
            "timeout": "0.5s",
            "retry": {
                "attempts": 5,
                "per_try_timeout": "0.2s",
                "retry_on": ["5xx", "gateway-error", "reset"],
            },
        }),
        json!({}),
    ))
    .await;
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert!(reply.is_proxy_answer(504), "{reply}");
    assert!(
        reply.elapsed < Duration::from_millis(1500),
        "five 0.2s tries under a 0.5s route timeout took {:?}",
        reply.elapsed
    );
    assert!(
        (2..=3).contains(&web.count()),
        "tries sent within 0.5s: {}",
        web.count()
    );
}
