//! The embedded provider: the operator scrapes every proxy's admin `/metrics` and computes
//! the built-in metrics from what the client proxies counted for the canary backend.
//!
//! ```text
//! scrape(proxies, backends)      GET http://<admin>/metrics, all proxies at once (2 s each)
//!   -> totals(samples, backends) per proxy: direction="outbound", backend="<ns>/<svc>:<port>"
//!                                 (any port), by classification; duration buckets by `le`
//!   -> History::record(now, ..)
//! measure(history, name, backend, window)
//!   request-success-rate         success / (success + failure) * 100 over the window
//!   request-duration             histogram_quantile(0.99, buckets over the window) in ms
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use smi_crds::trellis::canary::{REQUEST_DURATION, REQUEST_SUCCESS_RATE};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::history::{History, Scraped, Totals};
use super::measure::Measurement;
use super::quantile::histogram_quantile;
use super::text::{self, Sample};
use super::{client, show_duration};

/// The proxies' metrics read (see `proxy/src/telemetry/metrics.rs`).
pub mod names {
    pub const REQUESTS: &str = "trellis_requests_total";
    pub const DURATION_BUCKETS: &str = "trellis_request_duration_seconds_bucket";
}

/// How long one proxy may take to answer `/metrics`.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);

/// Proxies scraped at the same time.
const CONCURRENT_SCRAPES: usize = 64;

/// What one proxy's samples count for each of `backends` (`namespace/name`): the requests
/// it sent to any port of the Service (`direction="outbound"`).
pub fn totals(samples: &[Sample], backends: &BTreeSet<String>) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for sample in samples {
        if sample.name != names::REQUESTS && sample.name != names::DURATION_BUCKETS {
            continue;
        }
        if sample.label("direction") != Some("outbound") {
            continue;
        }
        let Some(service) = sample.label("backend").and_then(service_of) else {
            continue;
        };
        if !backends.contains(service) {
            continue;
        }
        let totals = out.entry(service.to_owned()).or_default();
        if sample.name == names::REQUESTS {
            match sample.label("classification") {
                Some("success") => totals.success += sample.value,
                Some("failure") => totals.failure += sample.value,
                _ => {}
            }
        } else if let Some(le) = sample.label("le").and_then(le_of) {
            totals.add_bucket(le, sample.value);
        }
    }
    out
}

/// `shop/api-v3` of the backend label `shop/api-v3:80`.
fn service_of(backend: &str) -> Option<&str> {
    let (service, port) = backend.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(service)
}

fn le_of(le: &str) -> Option<f64> {
    match le {
        "+Inf" => Some(f64::INFINITY),
        _ => le.parse().ok(),
    }
}

/// A built-in metric of the canary backend `backend` (`namespace/name`) over `window`.
pub fn measure(history: &History, name: &str, backend: &str, window: Duration) -> Measurement {
    if name != REQUEST_SUCCESS_RATE && name != REQUEST_DURATION {
        return Measurement::Error(format!(
            "the builtin provider measures {REQUEST_SUCCESS_RATE} and {REQUEST_DURATION} only; \
             {name:?} needs a query and provider type prometheus"
        ));
    }
    let Some(counted) = history.over(backend, window) else {
        return Measurement::NoData("the proxies have not been scraped yet".into());
    };
    let no_requests = || {
        Measurement::NoData(format!(
            "no requests to {backend} in the last {}",
            show_duration(window)
        ))
    };
    if name == REQUEST_SUCCESS_RATE {
        let total = counted.requests();
        if total <= 0.0 {
            return no_requests();
        }
        Measurement::Value(counted.success / total * 100.0)
    } else {
        match histogram_quantile(0.99, &counted.buckets) {
            Some(seconds) => Measurement::Value(seconds * 1000.0),
            None => no_requests(),
        }
    }
}

/// One round of scrapes: the totals of every proxy that answered, and the ones that did not
/// with why (they are left out of this round, nothing else).
#[derive(Debug, Default)]
pub struct Round {
    pub scraped: Scraped,
    pub failed: Vec<(SocketAddr, String)>,
}

/// Scrapes `http://<address>/metrics` of every proxy (at most [`SCRAPE_TIMEOUT`] each, many
/// at once) and keeps what they counted for `backends` (`namespace/name`).
pub async fn scrape(addresses: &[SocketAddr], backends: &BTreeSet<String>) -> Round {
    let backends = Arc::new(backends.clone());
    let permits = Arc::new(Semaphore::new(CONCURRENT_SCRAPES));
    let mut tasks = JoinSet::new();
    for &address in addresses {
        let backends = backends.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            (address, scrape_one(address, &backends).await)
        });
    }
    let mut round = Round::default();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((address, Ok(totals))) => {
                round.scraped.insert(address, totals);
            }
            Ok((address, Err(why))) => round.failed.push((address, why)),
            Err(e) => eprintln!("trellis operator: a metrics scrape task failed: {e}"),
        }
    }
    round.failed.sort();
    round
}

async fn scrape_one(
    address: SocketAddr,
    backends: &BTreeSet<String>,
) -> Result<BTreeMap<String, Totals>, String> {
    let answer = client::get(&address.to_string(), "/metrics", SCRAPE_TIMEOUT).await?;
    if answer.status != StatusCode::OK {
        return Err(format!("GET /metrics answered {}", answer.status));
    }
    let body = std::str::from_utf8(&answer.body)
        .map_err(|_| "GET /metrics answered text that is not UTF-8".to_owned())?;
    let samples = text::parse(body).map_err(|e| format!("GET /metrics: {e}"))?;
    Ok(totals(&samples, backends))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends() -> BTreeSet<String> {
        BTreeSet::from(["shop/api-v3".to_owned()])
    }

    const PROXY_METRICS: &str = "\
# TYPE trellis_requests_total counter
trellis_requests_total{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",status_code=\"200\",grpc_status=\"\",classification=\"success\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/api\"} 90
trellis_requests_total{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",status_code=\"503\",grpc_status=\"\",classification=\"failure\",tls=\"true\",peer_identity=\"spiffe://cluster.local/ns/shop/sa/api\"} 4
trellis_requests_total{direction=\"outbound\",authority=\"api.shop:9090\",route=\"\",backend=\"shop/api-v3:9090\",status_code=\"200\",grpc_status=\"0\",classification=\"success\",tls=\"true\",peer_identity=\"\"} 6
trellis_requests_total{direction=\"inbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",status_code=\"200\",grpc_status=\"\",classification=\"success\",tls=\"true\",peer_identity=\"\"} 1000
trellis_requests_total{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v31:80\",status_code=\"200\",grpc_status=\"\",classification=\"success\",tls=\"true\",peer_identity=\"\"} 1000
trellis_requests_total{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3\",status_code=\"200\",grpc_status=\"\",classification=\"success\",tls=\"true\",peer_identity=\"\"} 1000
# TYPE trellis_request_duration_seconds histogram
trellis_request_duration_seconds_bucket{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"success\",le=\"0.1\"} 80
trellis_request_duration_seconds_bucket{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"success\",le=\"+Inf\"} 90
trellis_request_duration_seconds_bucket{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"failure\",le=\"0.1\"} 4
trellis_request_duration_seconds_bucket{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"failure\",le=\"+Inf\"} 4
trellis_request_duration_seconds_sum{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"success\"} 12.5
trellis_request_duration_seconds_count{direction=\"outbound\",authority=\"api.shop:80\",route=\"\",backend=\"shop/api-v3:80\",classification=\"success\"} 90
";

    #[test]
    fn a_proxy_s_requests_to_any_port_of_the_backend_are_summed_by_classification() {
        let samples = text::parse(PROXY_METRICS).unwrap();
        assert_eq!(
            totals(&samples, &backends()),
            BTreeMap::from([(
                "shop/api-v3".to_owned(),
                Totals {
                    success: 96.0,
                    failure: 4.0,
                    buckets: vec![(0.1, 84.0), (f64::INFINITY, 94.0)],
                }
            )]),
            "inbound requests, other Services and labels without a port are not counted"
        );
    }

    fn history_with(scrapes: &[(u64, Totals)]) -> History {
        let mut history = History::new(Duration::from_secs(600));
        for (at, totals) in scrapes {
            let proxy = SocketAddr::from(([10, 0, 0, 1], 4191));
            let scraped = BTreeMap::from([(
                proxy,
                BTreeMap::from([("shop/api-v3".to_owned(), totals.clone())]),
            )]);
            history.record(Duration::from_secs(*at), scraped);
        }
        history
    }

    fn counted(success: f64, failure: f64, buckets: &[(f64, f64)]) -> Totals {
        Totals {
            success,
            failure,
            buckets: buckets.to_vec(),
        }
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn the_success_rate_is_the_percentage_of_successes_in_the_window() {
        let history = history_with(&[
            (0, counted(100.0, 100.0, &[])),
            (30, counted(297.0, 103.0, &[])),
        ]);
        let window = Duration::from_secs(30);
        assert_eq!(
            measure(&history, REQUEST_SUCCESS_RATE, "shop/api-v3", window),
            Measurement::Value(98.5)
        );
    }

    #[test]
    fn the_duration_is_the_p99_in_milliseconds_of_the_window() {
        let history = history_with(&[
            (
                0,
                counted(0.0, 0.0, &[(0.01, 1000.0), (0.1, 1000.0), (INF, 1000.0)]),
            ),
            (
                30,
                counted(100.0, 0.0, &[(0.01, 1050.0), (0.1, 1100.0), (INF, 1100.0)]),
            ),
        ]);
        let Measurement::Value(ms) = measure(
            &history,
            REQUEST_DURATION,
            "shop/api-v3",
            Duration::from_secs(30),
        ) else {
            panic!("a value")
        };
        // rank 99 of 100: the 49th of 50 in (10, 100] ms.
        assert!((ms - (10.0 + 90.0 * 49.0 / 50.0)).abs() < 1e-9, "{ms}");
    }

    #[test]
    fn no_requests_in_the_window_is_no_data_saying_so() {
        let history = history_with(&[(0, counted(5.0, 0.0, &[])), (60, counted(5.0, 0.0, &[]))]);
        for name in [REQUEST_SUCCESS_RATE, REQUEST_DURATION] {
            assert_eq!(
                measure(&history, name, "shop/api-v3", Duration::from_secs(60)),
                Measurement::NoData("no requests to shop/api-v3 in the last 1m".into())
            );
        }
        assert_eq!(
            measure(
                &History::new(Duration::from_secs(60)),
                REQUEST_SUCCESS_RATE,
                "shop/api-v3",
                Duration::from_secs(30)
            ),
            Measurement::NoData("the proxies have not been scraped yet".into())
        );
    }

    #[test]
    fn other_metrics_need_prometheus() {
        let history = History::new(Duration::from_secs(60));
        assert_eq!(
            measure(
                &history,
                "error-budget",
                "shop/api-v3",
                Duration::from_secs(30)
            ),
            Measurement::Error(
                "the builtin provider measures request-success-rate and request-duration \
                 only; \"error-budget\" needs a query and provider type prometheus"
                    .into()
            )
        );
    }
}
