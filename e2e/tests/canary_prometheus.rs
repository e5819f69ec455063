//! Canary analysis against a real Prometheus server, end to end: Prometheus (the Debian
//! package, started by the test) scrapes the real proxies every second, and the operator
//! asks it for the canary backend's success rate and p99 with PromQL.
//!
//! ```text
//! proxies /metrics <--scrape 1 s-- prometheus <--/api/v1/query-- operator (analysis 3 s)
//! git commit Canary (provider: prometheus) --> generated TrafficSplit --> client proxy
//! client app /call --> client proxy ==> api-v1 (stable) | api-v2 (canary)
//! ```

use std::time::Duration;

use trellis_e2e::canary::{Scenario, assert_traffic_follows, canary_manifest, weights};
use trellis_e2e::prometheus::Prometheus;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Prometheus' first scrape comes about 5 s after it starts (its target discovery timer);
/// the rates need two scrapes in a window.
const WINDOW: &str = "4s";

fn provider(prometheus: &Prometheus) -> String {
    format!(
        "    provider: {{type: prometheus, address: \"{}\"}}\n",
        prometheus.url()
    )
}

async fn scraped(scenario: &Scenario) -> Option<Prometheus> {
    let prometheus = Prometheus::start(&scenario.admin_addresses()).await?;
    prometheus.wait_targets_up(3, Duration::from_secs(20)).await;
    // The load has been running: wait until the client's calls show up as a rate.
    prometheus
        .wait_value(
            "sum(rate(trellis_requests_total{direction=\"outbound\"}[4s]))",
            Duration::from_secs(20),
            |v| v.is_some_and(|v| v > 0.0),
        )
        .await;
    Some(prometheus)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_on_prometheus_metrics() {
    let Some(scenario) = Scenario::start(0.0).await.unwrap() else {
        return;
    };
    let Some(prometheus) = scraped(&scenario).await else {
        return;
    };
    let samples = scenario
        .run(
            &canary_manifest("3s", WINDOW, &provider(&prometheus)),
            RUN_TIMEOUT,
        )
        .await
        .unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last.phase, "Succeeded", "{}", prometheus.log());
    assert_eq!(weights(&samples), vec![0, 20, 40, 60, 100]);
    let mut all = samples;
    scenario
        .settle(&mut all, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_traffic_follows(&all);

    let rate = scenario.metric("request-success-rate").await.unwrap();
    assert_eq!(rate["verdict"], "Pass", "{rate}");
    assert_eq!(rate["value"], 100.0, "{rate}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_10_percent_errors_rolls_back_on_prometheus_metrics() {
    let Some(scenario) = Scenario::start(0.1).await.unwrap() else {
        return;
    };
    let Some(prometheus) = scraped(&scenario).await else {
        return;
    };
    let samples = scenario
        .run(
            &canary_manifest("3s", WINDOW, &provider(&prometheus)),
            RUN_TIMEOUT,
        )
        .await
        .unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last.phase, "Failed", "{}", prometheus.log());
    assert_eq!(last.failed_checks, 3);
    assert_eq!(last.weight, 0);
    let mut all = samples;
    let end = scenario
        .settle(&mut all, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_traffic_follows(&all);
    assert_eq!(
        end.canary_served, 0,
        "after the rollback v2 serves nothing: {end:?}"
    );

    let rate = scenario.metric("request-success-rate").await.unwrap();
    assert_eq!(rate["verdict"], "Fail", "{rate}");
    let value = rate["value"].as_f64().unwrap();
    assert!((70.0..99.0).contains(&value), "about 90 % succeed: {rate}");
}
