//! Routing through `trellis-proxy`: which backend a request reaches, by weight and by match,
//! and what the proxy answers when nothing can take the request.

use http::Method;
use serde_json::json;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, get_request, load, request, served_by, tally};
use trellis_e2e::config::{Destination, backend, route, single, with, yaml};
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";

/// `web.test` split between backends `a` and `b` by these weights.
fn mk_split(a: &Backend, weight_a: u32, b: &Backend, weight_b: u32) -> Destination {
    Destination::new(WEB)
        .route(route("split", &[("a", weight_a), ("b", weight_b)]))
        .backend(backend("a", &[a.addr()]))
        .backend(backend("b", &[b.addr()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_sends_80_20_within_3_points() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let proxy = Proxy::start(&yaml(&[mk_split(&a, 80, &b, 20)]))
        .await
        .unwrap();

    let replies = load(proxy.outbound, 2000, 50, |_| get_request(WEB, "/")).await;

    let to_a = served_by(&replies, "backend-a");
    let to_b = served_by(&replies, "backend-b");
    assert_eq!(to_a + to_b, 2000, "{:?}", tally(&replies));
    let share_a = to_a as f64 / 2000.0;
    assert!(
        (share_a - 0.8).abs() <= 0.03,
        "backend-a got {:.1}% (want 80 ± 3)",
        share_a * 100.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_route_whose_path_method_and_header_match_takes_the_request() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let c = Backend::start("backend-c").await;
    let dest = Destination::new(WEB)
        .route(with(
            route("api-reads", &[("a", 1)]),
            "matches",
            json!([{"path_regex": "/api/.*", "methods": ["GET"]}]),
        ))
        .route(with(
            route("canary", &[("b", 1)]),
            "matches",
            json!([{"headers": [{"name": "x-canary", "value_regex": "yes|true"}]}]),
        ))
        .route(route("default", &[("c", 1)]))
        .backend(backend("a", &[a.addr()]))
        .backend(backend("b", &[b.addr()]))
        .backend(backend("c", &[c.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let cases: &[(Method, &str, Option<&str>, &str)] = &[
        (Method::GET, "/api/users", None, "backend-a"),
        (Method::POST, "/api/users", None, "backend-c"),
        (Method::GET, "/apix", None, "backend-c"),
        (Method::GET, "/v1/api/users", None, "backend-c"),
        (Method::GET, "/other", Some("yes"), "backend-b"),
        (Method::GET, "/other", Some("true"), "backend-b"),
        (Method::GET, "/other", Some("yesno"), "backend-c"),
        (Method::GET, "/api/users", Some("yes"), "backend-a"),
        (Method::POST, "/api/users", Some("yes"), "backend-b"),
    ];
    for (method, path, canary, want) in cases {
        let mut req = request(method.clone(), WEB, path);
        if let Some(v) = canary {
            req = req.header("x-canary", *v);
        }
        let reply = conn
            .send(req.body(trellis_e2e::client::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            (reply.status.as_u16(), reply.text().as_str()),
            (200, *want),
            "{method} {path} x-canary={canary:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authority_with_a_port_finds_the_destination_without_it() {
    let a = Backend::start("backend-a").await;
    let proxy = Proxy::start(&yaml(&[single(WEB, "a", &[a.addr()])]))
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get("web.test:8080", "/").await.unwrap();

    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_authority_gets_503_from_the_proxy() {
    let a = Backend::start("backend-a").await;
    let proxy = Proxy::start(&yaml(&[single(WEB, "a", &[a.addr()])]))
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get("nowhere.test", "/").await.unwrap();

    assert_eq!(reply.status, 503, "{reply}");
    assert!(reply.is_proxy_answer(503), "{reply}");
    assert_eq!(a.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_with_every_weight_zero_answers_503_with_its_unavailable_reason() {
    let a = Backend::start("backend-a").await;
    let b = Backend::start("backend-b").await;
    let dest = mk_split(&a, 0, &b, 0);
    let dest = Destination::new(WEB)
        .route(with(
            dest.json()["routes"][0].clone(),
            "unavailable_reason",
            json!("web is drained for maintenance"),
        ))
        .backend(backend("a", &[a.addr()]))
        .backend(backend("b", &[b.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!(reply.status, 503, "{reply}");
    assert!(reply.is_proxy_answer(503), "{reply}");
    assert!(
        reply.text().contains("web is drained for maintenance"),
        "{reply}"
    );
    assert_eq!(a.count() + b.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_config_file_works_like_yaml() {
    let a = Backend::start("backend-a").await;
    let file = json!({"outbound": [single(WEB, "a", &[a.addr()]).json()]});
    let proxy = Proxy::start(&serde_json::to_string_pretty(&file).unwrap())
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/").await.unwrap();

    assert_eq!(
        (reply.status.as_u16(), reply.text()),
        (200, "backend-a".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_route_matches_gets_404_from_the_proxy() {
    let a = Backend::start("backend-a").await;
    let dest = Destination::new(WEB)
        .route(with(
            route("api", &[("a", 1)]),
            "matches",
            json!([{"path_regex": "/api/.*"}]),
        ))
        .backend(backend("a", &[a.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn.get(WEB, "/elsewhere").await.unwrap();

    assert!(reply.is_proxy_answer(404), "{reply}");
    assert_eq!(a.count(), 0);
}

/// A sidecar bound to 127.0.0.1 answers on ::1 as well (same port), so IPv6 traffic
/// redirected by `trellis-proxy init` reaches it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbound_listener_answers_on_ipv6_loopback_on_the_same_port() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        assert!(!trellis_e2e::strict(), "this machine has no IPv6 loopback");
        return;
    }
    let app = Backend::start("app").await;
    let proxy = Proxy::start(&yaml(&[single("app.test", "app", &[app.addr()])]))
        .await
        .unwrap();
    let v6 = std::net::SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), proxy.outbound.port());

    let reply = Http1Conn::connect(v6)
        .await
        .unwrap()
        .get("app.test", "/")
        .await
        .unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    assert_eq!(app.count(), 1);
}
