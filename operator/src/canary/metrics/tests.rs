//! The providers end to end over real HTTP on 127.0.0.1: proxies serving `/metrics`
//! (builtin) and a server answering like Prometheus' query API.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use smi_crds::trellis::canary::{
    NoDataPolicy, REQUEST_DURATION, REQUEST_SUCCESS_RATE, ThresholdRange,
};
use tokio::net::TcpListener;

use super::*;
use crate::canary::machine::{NoData, Verdict};

/// An HTTP server on 127.0.0.1 answering every request with `(status, body)` from
/// `answer`, and recording the path and query of each request.
struct Server {
    addr: SocketAddr,
    answer: Arc<Mutex<(u16, String)>>,
    asked: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(status: u16, body: &str) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(Mutex::new((status, body.to_owned())));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (a, q) = (answer.clone(), asked.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (a, q) = (a.clone(), q.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    q.lock().unwrap().push(request.uri().to_string());
                    let (status, body) = a.lock().unwrap().clone();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Server {
            addr,
            answer,
            asked,
        }
    }

    fn set(&self, body: &str) {
        self.answer.lock().unwrap().1 = body.to_owned();
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }
}

/// An address where nothing listens.
async fn nobody() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// A proxy's `/metrics` after `success` and `failure` requests to `shop/api-v3:80`, the
/// successes under 10 ms and the failures under 1 s.
fn proxy_metrics(success: u32, failure: u32) -> String {
    let labels = r#"direction="outbound",authority="api.shop.svc.cluster.local:80",route="",backend="shop/api-v3:80""#;
    let requests = |class: &str, status: u16, n: u32| {
        format!(
            "trellis_requests_total{{{labels},status_code=\"{status}\",grpc_status=\"\",classification=\"{class}\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/api\"}} {n}\n"
        )
    };
    let bucket = |class: &str, le: &str, n: u32| {
        format!(
            "trellis_request_duration_seconds_bucket{{{labels},classification=\"{class}\",le=\"{le}\"}} {n}\n"
        )
    };
    [
        "# HELP trellis_requests_total HTTP and gRPC requests, by outcome\n".to_owned(),
        "# TYPE trellis_requests_total counter\n".to_owned(),
        requests("success", 200, success),
        requests("failure", 500, failure),
        "# TYPE trellis_request_duration_seconds histogram\n".to_owned(),
        bucket("success", "0.01", success),
        bucket("success", "1", success),
        bucket("success", "+Inf", success),
        bucket("failure", "0.01", 0),
        bucket("failure", "1", failure),
        bucket("failure", "+Inf", failure),
    ]
    .concat()
}

fn request(provider: ProviderType, name: &str, address: Option<String>) -> MetricRequest {
    MetricRequest {
        provider,
        prometheus_address: address,
        namespace: "shop".into(),
        service: "api".into(),
        backend: "api-v3".into(),
        stable: "api-v2".into(),
        target: "v3".into(),
        metric: Metric {
            name: name.into(),
            threshold_range: ThresholdRange {
                min: Some(99.0),
                max: None,
            },
            ..Metric::default()
        },
        window: Duration::from_secs(30),
    }
}

#[tokio::test]
async fn the_builtin_provider_scrapes_the_proxies_and_measures_the_window() {
    let proxy = Server::start(200, &proxy_metrics(1000, 10)).await;
    let gone = nobody().await;
    let mut providers = Providers::new();
    let backends = BTreeSet::from(["shop/api-v3".to_owned()]);
    let success_rate = request(ProviderType::Builtin, REQUEST_SUCCESS_RATE, None);

    let first = providers
        .scrape(Duration::ZERO, &[proxy.addr, gone], &backends)
        .await;
    assert_eq!(first.scraped, 1);
    assert_eq!(first.failed.len(), 1, "{first:?}");
    assert_eq!(first.failed[0].0, gone);
    assert!(
        first.failed[0].1.starts_with("cannot connect: "),
        "{first:?}"
    );
    assert_eq!(proxy.asked(), ["/metrics"]);
    assert_eq!(
        providers.measure(&success_rate).await,
        Measurement::NoData("no requests to shop/api-v3 in the last 30s".into()),
        "one scrape: nothing counted yet"
    );

    // 30 s later the proxy has sent 200 more requests, 1 of them failed.
    proxy.set(&proxy_metrics(1199, 11));
    providers
        .scrape(Duration::from_secs(30), &[proxy.addr, gone], &backends)
        .await;
    assert_eq!(
        providers.measure(&success_rate).await,
        Measurement::Value(99.5)
    );
    let (verdict, _) = judge(&success_rate.metric, &Measurement::Value(99.5));
    assert_eq!(verdict, Verdict::Pass);
    // The failure took up to 1 s: rank 198 of 200 is under 10 ms (199 successes).
    let duration = request(ProviderType::Builtin, REQUEST_DURATION, None);
    let Measurement::Value(p99) = providers.measure(&duration).await else {
        panic!("a p99")
    };
    assert!((p99 - 10.0 * 198.0 / 199.0).abs() < 1e-9, "{p99}");
}

#[tokio::test]
async fn a_proxy_answering_something_else_than_metrics_is_reported() {
    let broken = Server::start(200, "<html>hello</html>").await;
    let failing = Server::start(503, "").await;
    let mut providers = Providers::new();
    let backends = BTreeSet::from(["shop/api-v3".to_owned()]);
    let report = providers
        .scrape(Duration::ZERO, &[broken.addr, failing.addr], &backends)
        .await;
    let mut want = vec![
        (
            broken.addr,
            "GET /metrics: line 1: no metric name in \"<html>hello</html>\"".to_owned(),
        ),
        (
            failing.addr,
            "GET /metrics answered 503 Service Unavailable".to_owned(),
        ),
    ];
    want.sort();
    assert_eq!(
        report,
        ScrapeReport {
            scraped: 0,
            failed: want
        }
    );
    assert_eq!(
        providers
            .scrape(Duration::ZERO, &[broken.addr], &BTreeSet::new())
            .await,
        ScrapeReport::default(),
        "no canary under analysis: nobody is scraped"
    );
    assert_eq!(broken.asked().len(), 1);
}

/// `%2F` -> `/` (enough to read the query back).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn the_prometheus_provider_sends_the_rendered_query_and_reads_the_answer() {
    let prometheus = Server::start(
        200,
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"99.5"]}]}}"#,
    )
    .await;
    let address = format!("http://{}/prom/", prometheus.addr);
    let mut providers = Providers::new();
    let success_rate = request(
        ProviderType::Prometheus,
        REQUEST_SUCCESS_RATE,
        Some(address.clone()),
    );
    assert_eq!(
        providers.measure(&success_rate).await,
        Measurement::Value(99.5)
    );
    let asked = prometheus.asked();
    let query = asked[0]
        .strip_prefix("/prom/api/v1/query?query=")
        .expect(&asked[0]);
    assert_eq!(
        url_decode(query),
        r#"sum(rate(trellis_requests_total{direction="outbound",backend=~"shop/api-v3:.*",classification="success"}[30s])) / sum(rate(trellis_requests_total{direction="outbound",backend=~"shop/api-v3:.*"}[30s])) * 100"#
    );

    prometheus.set(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#);
    let custom = MetricRequest {
        metric: Metric {
            name: "errors".into(),
            query: Some(r#"sum(rate(errors_total{app="{{ backend }}",version="{{ target }}"}[{{ interval }}]))"#.into()),
            no_data: NoDataPolicy::Skip,
            ..success_rate.metric.clone()
        },
        window: Duration::from_secs(120),
        ..success_rate.clone()
    };
    let measured = providers.measure(&custom).await;
    assert_eq!(
        measured,
        Measurement::NoData(format!(
            "the query returned no series from Prometheus at {address}"
        ))
    );
    assert_eq!(
        url_decode(prometheus.asked()[1].split_once("query=").unwrap().1),
        r#"sum(rate(errors_total{app="api-v3",version="v3"}[2m]))"#
    );
    assert_eq!(
        judge(&custom.metric, &measured).0,
        Verdict::NoData(NoData::Skip)
    );
}

#[tokio::test]
async fn an_unreachable_prometheus_or_a_bad_query_is_an_error_naming_it() {
    let address = format!("http://{}", nobody().await);
    let mut providers = Providers::new();
    let Measurement::Error(why) = providers
        .measure(&request(
            ProviderType::Prometheus,
            REQUEST_DURATION,
            Some(address.clone()),
        ))
        .await
    else {
        panic!("an error")
    };
    assert!(
        why.starts_with(&format!("Prometheus at {address}: cannot connect: ")),
        "{why}"
    );
    let mut bad = request(ProviderType::Prometheus, "errors", Some(address));
    bad.metric.query = Some("rate(x[{{ window }}])".into());
    assert_eq!(
        providers.measure(&bad).await,
        Measurement::Error(
            "the query of metric \"errors\": unknown variable {{ window }}; known: namespace, \
             service, backend, stable, target, interval"
                .into()
        )
    );
    bad.prometheus_address = None;
    assert_eq!(
        providers.measure(&bad).await,
        Measurement::Error(
            "provider type prometheus needs an address (spec.analysis.provider.address)".into()
        )
    );
    bad.provider = ProviderType::Builtin;
    assert_eq!(
        providers.measure(&bad).await,
        Measurement::Error(
            "metric \"errors\" has a query, which needs provider type prometheus (the builtin \
             provider measures the built-in metrics only)"
                .into()
        )
    );
}

#[test]
fn durations_are_written_as_promql_writes_them() {
    for (d, text) in [
        (Duration::from_secs(30), "30s"),
        (Duration::from_secs(60), "1m"),
        (Duration::from_secs(90), "90s"),
        (Duration::from_secs(300), "5m"),
        (Duration::from_secs(7200), "2h"),
        (Duration::from_millis(1500), "1500ms"),
    ] {
        assert_eq!(show_duration(d), text);
    }
}

#[test]
fn meshed_workloads_that_registered_an_admin_port_are_scraped_at_their_first_address() {
    let workload = |name: &str, meshed: bool, admin_port: Option<u16>| Workload {
        meshed,
        admin_port,
        addresses: vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()],
        ..crate::compile::fixtures::workload("shop", name, "web", "10.0.0.5")
    };
    let workloads = [
        workload("web-1", true, Some(4191)),
        workload("old-proxy", true, None),
        workload("legacy", false, Some(4191)),
    ];
    assert_eq!(
        admin_addresses(&workloads),
        ["10.0.0.5:4191".parse::<SocketAddr>().unwrap()]
    );
}

#[tokio::test]
async fn a_tick_prepares_once_and_measures_every_metric_of_a_canary() {
    use smi_crds::trellis::canary::{Analysis, Canary, CanarySpec};

    let proxy = Server::start(200, &proxy_metrics(1000, 10)).await;
    let mut canary = Canary::new(
        "api",
        CanarySpec {
            service: "api".into(),
            stable: "api-v2".into(),
            canary: "api-v3".into(),
            analysis: Analysis {
                interval: "1m".into(),
                metrics: vec![
                    request(ProviderType::Builtin, REQUEST_SUCCESS_RATE, None).metric,
                    Metric {
                        threshold_range: ThresholdRange {
                            min: None,
                            max: Some(5.0),
                        },
                        ..request(ProviderType::Builtin, REQUEST_DURATION, None).metric
                    },
                ],
                ..Analysis::default()
            },
            ..CanarySpec::default()
        },
    );
    canary.metadata.namespace = Some("shop".into());
    let snapshot = crate::compile::fixtures::mesh(vec![], vec![]);
    let mut providers = Providers::default();

    let report = providers
        .prepare(&[&canary], &snapshot, &[proxy.addr])
        .await;
    assert_eq!(report.scraped, 1);
    proxy.set(&proxy_metrics(1199, 11));
    providers
        .prepare(&[&canary], &snapshot, &[proxy.addr])
        .await;
    let measured = providers.measure_all(&canary, &snapshot, Some("v3")).await;
    let verdicts: Vec<_> = measured
        .iter()
        .map(|(v, s)| (v.clone(), s.verdict.as_str(), s.message.as_deref()))
        .collect();
    assert_eq!(
        verdicts,
        [
            (Verdict::Pass, "Pass", None),
            (
                Verdict::Fail("9.95 > max 5".into()),
                "Fail",
                Some("9.95 > max 5")
            ),
        ]
    );
    assert_eq!(measured[0].1.value, Some(99.5));
}
