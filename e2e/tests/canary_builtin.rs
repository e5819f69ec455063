//! Canary analysis with the builtin metrics provider, end to end: the operator scrapes the
//! real proxies' `/metrics` itself (no Prometheus), and a Canary committed to Git moves
//! real traffic from `api-primary` (v1) to `api-canary` (v2) while the checks hold.
//!
//! ```text
//! git commit Canary --> operator (analysis every 1 s, scraping every proxy's /metrics)
//!                         --generated TrafficSplit api--> client proxy
//! client app /call --> client proxy ==> api-v1 (stable) | api-v2 (canary)
//! ```

use std::time::Duration;

use trellis_e2e::canary::{Scenario, assert_traffic_follows, canary_manifest, weights};

const RUN_TIMEOUT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let Some(scenario) = Scenario::start(0.0).await.unwrap() else {
        return;
    };
    let samples = scenario
        .run(&canary_manifest("1s", "1s", ""), RUN_TIMEOUT)
        .await
        .unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last.phase, "Succeeded");
    assert_eq!(last.failed_checks, 0);
    assert_eq!(weights(&samples), vec![0, 20, 40, 60, 100]);
    let mut all = samples;
    let end = scenario
        .settle(&mut all, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_traffic_follows(&all);
    assert_eq!(end.weight, 100);
    assert_eq!(
        end.stable_served, 0,
        "after promotion v1 serves nothing: {end:?}"
    );

    let rate = scenario.metric("request-success-rate").await.unwrap();
    assert_eq!(rate["verdict"], "Pass", "{rate}");
    assert_eq!(rate["value"], 100.0, "{rate}");
    let p99 = scenario.metric("request-duration").await.unwrap();
    assert_eq!(p99["verdict"], "Pass", "{p99}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_answering_10_percent_errors_rolls_back_after_3_failed_checks() {
    let Some(scenario) = Scenario::start(0.1).await.unwrap() else {
        return;
    };
    let samples = scenario
        .run(&canary_manifest("1s", "1s", ""), RUN_TIMEOUT)
        .await
        .unwrap();
    let last = samples.last().unwrap();
    assert_eq!(last.phase, "Failed");
    assert_eq!(last.failed_checks, 3);
    assert_eq!(last.weight, 0);
    assert!(
        weights(&samples).iter().all(|w| *w <= 40),
        "a failing canary never gets far: {:?}",
        weights(&samples)
    );
    let mut all = samples;
    let end = scenario
        .settle(&mut all, Duration::from_millis(1500))
        .await
        .unwrap();
    assert_traffic_follows(&all);
    assert_eq!(end.weight, 0);
    assert_eq!(
        end.canary_served, 0,
        "after the rollback v2 serves nothing: {end:?}"
    );

    let canary = scenario.view().await.unwrap();
    let message = canary["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("request-success-rate"),
        "the status says which check failed: {message}"
    );
    let reasons: Vec<&str> = canary["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.last(), Some(&"RolledBack"), "{reasons:?}");
    assert_eq!(
        reasons.iter().filter(|r| **r == "CheckFailed").count(),
        2,
        "{reasons:?}"
    );
}
