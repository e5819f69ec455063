//! What operators see of the proxy: metrics, admin endpoints, tracing headers, the access
//! log, and a graceful shutdown on SIGTERM.

use std::time::Duration;

use http::Method;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use trellis_e2e::backend::Backend;
use trellis_e2e::client::{Http1Conn, empty, request};
use trellis_e2e::config::{route, single, with, yaml};
use trellis_e2e::metrics;
use trellis_e2e::proxy::Proxy;

const WEB: &str = "web.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_direction_route_backend_and_status() {
    let web = Backend::start("web").await;
    web.push_statuses([503]);
    let proxy = Proxy::start(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    assert_eq!(conn.get(WEB, "/").await.unwrap().status, 503);
    for _ in 0..3 {
        assert_eq!(conn.get(WEB, "/").await.unwrap().status, 200);
    }

    let m = proxy.metrics().await.unwrap();

    let ok = [
        ("direction", "outbound"),
        ("route", "default"),
        ("backend", "web"),
        ("status_code", "200"),
    ];
    assert_eq!(metrics::sum(&m, "trellis_requests_total", &ok), 3.0, "{m}");
    let failed = [
        ("direction", "outbound"),
        ("route", "default"),
        ("backend", "web"),
        ("status_code", "503"),
        ("classification", "failure"),
    ];
    assert_eq!(
        metrics::sum(&m, "trellis_requests_total", &failed),
        1.0,
        "{m}"
    );
    let samples = metrics::select(&m, "trellis_requests_total", &ok);
    assert!(
        samples
            .iter()
            .all(|s| s.label("authority").is_some_and(|a| a.starts_with(WEB))),
        "{samples:?}"
    );
    assert!(
        metrics::sum(
            &m,
            "trellis_request_duration_seconds_count",
            &[("direction", "outbound"), ("route", "default")]
        ) >= 4.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_answer_live_ready_and_the_config_version() {
    let web = Backend::start("web").await;
    let proxy = Proxy::start(&yaml(&[single(WEB, "web", &[web.addr()]).version("7")]))
        .await
        .unwrap();

    assert_eq!(proxy.get("/live").await.unwrap().status, 200);
    assert_eq!(proxy.get("/ready").await.unwrap().status, 200);
    let config = proxy.config_dump().await.unwrap();
    assert!(
        trellis_e2e::config::mentions_version(&config, "7"),
        "{config}"
    );
    assert!(config.to_string().contains(WEB), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_arrive_unchanged_at_the_backend_on_every_attempt() {
    let web = Backend::start("web").await;
    web.push_statuses([503]);
    let dest = trellis_e2e::config::Destination::new(WEB)
        .route(with(
            route("default", &[("web", 1)]),
            "retry",
            json!({"attempts": 2, "retry_on": ["5xx"]}),
        ))
        .backend(trellis_e2e::config::backend("web", &[web.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let trace = [
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "vendor=opaque-value"),
        (
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        ),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
        ("x-b3-sampled", "1"),
    ];
    let mut req = request(Method::GET, WEB, "/traced");
    for (name, value) in trace {
        req = req.header(name, value);
    }

    let reply = conn.send(req.body(empty()).unwrap()).await.unwrap();

    assert_eq!(reply.status, 200, "{reply}");
    let seen = web.requests();
    assert_eq!(seen.len(), 2, "the first attempt and the retry");
    for attempt in &seen {
        for (name, value) in trace {
            assert_eq!(attempt.header(name).as_deref(), Some(value), "{name}");
        }
    }
}

/// Whether `line` is a JSON object with `path` as some value and a status-like field of 200.
fn logs_request(line: &str, path: &str) -> bool {
    let Ok(Value::Object(entry)) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    let has_path = entry.values().any(|v| v.as_str() == Some(path));
    let has_status = entry.iter().any(|(k, v)| {
        k.contains("status") && (v.as_u64() == Some(200) || v.as_str() == Some("200"))
    });
    has_path && has_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_a_json_line_per_request_with_status_path_and_trace_id() {
    let web = Backend::start("web").await;
    let proxy = Proxy::builder()
        .config(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .access_log()
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();

    let reply = conn
        .send(
            request(Method::GET, WEB, "/orders/42")
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    let line = proxy
        .wait_for_stdout(Duration::from_secs(3), |l| logs_request(l, "/orders/42"))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no JSON access log line for GET /orders/42 with status 200: {:?}",
                proxy.stdout_lines()
            )
        });
    assert!(
        line.contains("0af7651916cd43dd8448eb211c80319c"),
        "the trace id is logged: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_refuses_new_connections_and_exits_0() {
    let web = Backend::slow("web", Duration::from_millis(500)).await;
    let mut proxy = Proxy::start(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .await
        .unwrap();
    let outbound = proxy.outbound;
    let mut conn = Http1Conn::connect(outbound).await.unwrap();
    let in_flight = tokio::spawn(async move { conn.get(WEB, "/slow").await });
    assert!(web.wait_for_in_flight(1, Duration::from_secs(5)).await);

    proxy.send_sigterm().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let refused = match TcpStream::connect(outbound).await {
        Err(_) => true,
        // Accepted by a backlog the proxy never serves: it must not answer.
        Ok(stream) => {
            let mut late = Http1Conn::handshake_on(stream).await;
            match late.as_mut() {
                Ok(c) => c.get(WEB, "/late").await.is_err(),
                Err(_) => true,
            }
        }
    };
    assert!(refused, "a new connection was served after SIGTERM");
    let reply = in_flight.await.unwrap().unwrap();
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "web".into()));
    let status = proxy.wait_exit(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_headers_reach_mirrored_copies_unchanged() {
    let web = Backend::start("web").await;
    let mirror = Backend::start("mirror").await;
    let dest = trellis_e2e::config::Destination::new(WEB)
        .route(with(
            route("default", &[("web", 1)]),
            "mirror",
            json!({"backend": "mirror", "percent": 100}),
        ))
        .backend(trellis_e2e::config::backend("web", &[web.addr()]))
        .backend(trellis_e2e::config::backend("mirror", &[mirror.addr()]));
    let proxy = Proxy::start(&yaml(&[dest])).await.unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    let reply = conn
        .send(
            request(Method::GET, WEB, "/traced")
                .header("traceparent", traceparent)
                .header("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7")
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();

    assert_eq!(reply.status, 200);
    assert!(mirror.wait_for_count(1, Duration::from_secs(3)).await);
    for seen in [&web.requests()[0], &mirror.requests()[0]] {
        assert_eq!(seen.header("traceparent").as_deref(), Some(traceparent));
        assert_eq!(
            seen.header("x-b3-traceid").as_deref(),
            Some("80f198ee56343ba864fe8b2a57d3eff7")
        );
    }
    let m = proxy.metrics().await.unwrap();
    assert_eq!(
        metrics::sum(
            &m,
            "trellis_mirrored_requests_total",
            &[("route", "default"), ("backend", "mirror")]
        ),
        1.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_counted_by_direction_and_detected_protocol() {
    let web = Backend::start("web").await;
    let echo = trellis_e2e::backend::TcpEcho::start().await;
    let proxy = Proxy::builder()
        .config(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .inbound_target(echo.addr())
        .start()
        .await
        .unwrap();

    let mut h1 = Http1Conn::connect(proxy.outbound).await.unwrap();
    assert_eq!(h1.get(WEB, "/").await.unwrap().status, 200);
    let mut h2 = trellis_e2e::client::Http2Conn::connect(proxy.outbound)
        .await
        .unwrap();
    assert_eq!(h2.get(WEB, "/").await.unwrap().status, 200);
    let mut opaque = TcpStream::connect(proxy.inbound).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        opaque.write_all(b"\x00\x00 opaque bytes").await.unwrap();
        let mut back = [0; 15];
        opaque.read_exact(&mut back).await.unwrap();
    }

    let m = proxy.metrics().await.unwrap();
    let count = |direction: &str, protocol: &str| {
        metrics::sum(
            &m,
            "trellis_tcp_connections_total",
            &[("direction", direction), ("protocol", protocol)],
        )
    };
    assert_eq!(count("outbound", "http1"), 1.0, "{m}");
    assert_eq!(count("outbound", "http2"), 1.0, "{m}");
    assert_eq!(count("inbound", "opaque"), 1.0, "{m}");
    assert!(
        metrics::sum(
            &m,
            "trellis_tcp_open_connections",
            &[("direction", "outbound")]
        ) >= 2.0,
        "{m}"
    );
    assert!(
        metrics::sum(
            &m,
            "trellis_tcp_read_bytes_total",
            &[("direction", "inbound")]
        ) >= 15.0,
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_drain_timeout_does_not_keep_the_proxy_alive() {
    let web = Backend::slow("web", Duration::from_secs(8)).await;
    let mut proxy = Proxy::builder()
        .config(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .arg("--drain-timeout")
        .arg("0.5s")
        .start()
        .await
        .unwrap();
    let mut conn = Http1Conn::connect(proxy.outbound).await.unwrap();
    let in_flight = tokio::spawn(async move { conn.get(WEB, "/slow").await });
    assert!(web.wait_for_in_flight(1, Duration::from_secs(5)).await);

    proxy.send_sigterm().unwrap();

    let status = proxy.wait_exit(Duration::from_secs(3)).await;
    assert!(
        status.is_ok(),
        "still running 3s after SIGTERM with a 0.5s drain"
    );
    let outcome = tokio::time::timeout(Duration::from_secs(2), in_flight)
        .await
        .expect("the cut request ends for the client too")
        .unwrap();
    assert!(!matches!(&outcome, Ok(r) if r.status == 200), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_requests_are_counted_by_grpc_status() {
    use trellis_e2e::grpc::{ToyIdentity, certify_request, identity_client_via};
    let identity = ToyIdentity::start("identity-a").await;
    let proxy = Proxy::start(&yaml(&[single("identity.test", "svc", &[identity.addr()])]))
        .await
        .unwrap();
    let mut client = identity_client_via(proxy.outbound, "identity.test")
        .await
        .unwrap();
    identity.fail_with(tonic::Code::NotFound, "no such workload");
    assert!(client.certify(certify_request()).await.is_err());
    identity.succeed();
    assert!(client.certify(certify_request()).await.is_ok());

    let m = proxy.metrics().await.unwrap();

    let count = |grpc_status: &str, classification: &str| {
        metrics::sum(
            &m,
            "trellis_requests_total",
            &[
                ("direction", "outbound"),
                ("backend", "svc"),
                ("grpc_status", grpc_status),
                ("classification", classification),
            ],
        )
    };
    assert_eq!(count("5", "failure"), 1.0, "{m}");
    assert_eq!(count("0", "success"), 1.0, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_http2_stream_in_flight_finish_and_refuses_new_streams() {
    use trellis_e2e::client::Http2Conn;
    let web = Backend::slow("web", Duration::from_millis(500)).await;
    let mut proxy = Proxy::start(&yaml(&[single(WEB, "web", &[web.addr()])]))
        .await
        .unwrap();
    let conn = Http2Conn::connect(proxy.outbound).await.unwrap();
    let mut first = conn.clone();
    let in_flight = tokio::spawn(async move { first.get(WEB, "/slow").await });
    assert!(web.wait_for_in_flight(1, Duration::from_secs(5)).await);

    proxy.send_sigterm().unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    let mut late = conn.clone();
    let refused = late.get(WEB, "/late").await;
    assert!(
        refused.is_err(),
        "a new stream after GOAWAY was served: {refused:?}"
    );
    let reply = in_flight.await.unwrap().unwrap();
    assert_eq!((reply.status.as_u16(), reply.text()), (200, "web".into()));
    let status = proxy.wait_exit(Duration::from_secs(5)).await.unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(web.count(), 1);
}
