//! The demo's progressive delivery: the API's rollout moves from a Git split to a Canary.
//!
//! ```text
//! commit                                the controller (a check every 1 s)      checked
//! api: hand the rollout to a Canary     api-primary (v2) -> api-canary (v3)     Succeeded, weights
//!   (split.yaml out; Services             0, 25, 50, 75, 100; every request on v3
//!    api-primary, api-canary and the
//!    Canary in)
//! api: v3 is the new stable             api-primary runs v3: Finalized          weight 0; every
//!                                                                               request on v3
//! api: canary v4                        api-canary runs v4 (20 % 500s): two     Failed, 2 failed
//!                                       failed checks, rolled back              checks; all on v3
//! ```
//!
//! While a run goes on, web calls the API in small batches: the builtin metrics provider
//! needs requests to the canary in every 1 s window, else "no data" fails the check. The
//! run is followed in the operator's `/status` (`canaries`); each weight change and event
//! is printed as it happens.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use smi_crds::trellis::canary::{
    CanaryStatus, MetricStatus, REQUEST_DURATION, REQUEST_SUCCESS_RATE,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::steps::{Check, SPLIT_FILE, all_on};
use super::traffic::{self, Tally};
use super::{Mesh, http, short};

const NAMESPACE: &str = "shop";
const NAME: &str = "api";
const CANARY_FILE: &str = "shop/canary.yaml";
const SERVICES_FILE: &str = "shop/services.yaml";

/// The event of a step forward (checks passed, weight up).
const ADVANCED: &str = "Advanced";

/// How long a run may take before the demo gives up on it (a healthy one takes ~5 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the run is looked at (its steps are 1 s apart).
const POLL: Duration = Duration::from_millis(100);
/// Web's load during a run: this many calls, then a pause (~150 calls a second).
const LOAD_BATCH: usize = 8;
const LOAD_PAUSE: Duration = Duration::from_millis(40);

const CANARY: &str = "\
# Progressive delivery of the API. The operator generates and owns the TrafficSplit `api`
# (never in Git): it moves api's traffic from api-primary to api-canary 25 % per check
# while the canary answers at least 99 % of requests within a p99 of 500 ms, promotes it
# after 75 %, and rolls it back after 2 failed checks. A new version on api-canary (its
# workloads' `version` label) starts a new run.
apiVersion: trellis.dev/v1alpha1
kind: Canary
metadata:
  name: api
  namespace: shop
spec:
  service: api
  stable: api-primary
  canary: api-canary
  analysis:
    interval: 1s
    threshold: 2
    stepWeight: 25
    maxWeight: 75
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 1s
    - name: request-duration
      thresholdRange: {max: 500}
";

/// The Canary's backends, appended to `shop/services.yaml`: api-primary selects the
/// version in production, api-canary the one under analysis.
fn backends(stable: &str, canary: &str) -> String {
    format!(
        "---\n\
         # The Canary's backends: api-primary runs the version in production, api-canary the\n\
         # next one. Commit a new version on api-canary to start a run.\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: api-primary, namespace: shop}}\nspec:\n  \
         selector: {{app: api, version: {stable}}}\n  ports: [{{name: http, port: 8080}}]\n\
         ---\n\
         apiVersion: v1\nkind: Service\nmetadata: {{name: api-canary, namespace: shop}}\nspec:\n  \
         selector: {{app: api, version: {canary}}}\n  ports: [{{name: http, port: 8080}}]\n"
    )
}

/// A Canary as the operator's admin `/status` shows it.
#[derive(Clone, Debug, Deserialize)]
struct CanaryView {
    namespace: String,
    name: String,
    status: CanaryStatus,
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Event {
    #[serde(default)]
    time: serde_json::Value,
    reason: String,
    message: String,
}

/// What the demo saw of one run.
struct Run {
    /// The canary weights in the order seen, each change once (the first is the weight in
    /// force when the commit was applied).
    weights: Vec<u32>,
    /// Reasons of the events the run added.
    events: Vec<String>,
    /// The Canary when the run ended, or when the wait gave up.
    last: Option<CanaryView>,
    /// Why the wait gave up.
    gave_up: Option<String>,
    took: Duration,
    /// Web's load during the run.
    load: Tally,
}

impl Run {
    /// A run about to start, the Canary being as `before` (`None`: not there yet).
    fn starting(before: Option<CanaryView>) -> Run {
        Run {
            weights: before.iter().map(|c| c.status.canary_weight).collect(),
            events: Vec::new(),
            last: before,
            gave_up: None,
            took: Duration::ZERO,
            load: Tally::default(),
        }
    }

    fn status(&self) -> Option<&CanaryStatus> {
        self.last.as_ref().map(|c| &c.status)
    }

    fn phase(&self) -> &str {
        match self.status() {
            Some(s) => s.phase.as_deref().unwrap_or("no phase"),
            None => "no Canary",
        }
    }

    fn weights(&self) -> String {
        join(&self.weights)
    }

    /// Why the run is not what `expected` says, with the Canary's status.
    fn unexpected(&self, expected: &str) -> String {
        let status = describe(self.last.as_ref());
        match &self.gave_up {
            Some(why) => format!("{why}; expected {expected}; Canary {NAMESPACE}/{NAME}: {status}"),
            None => format!("expected {expected}; Canary {NAMESPACE}/{NAME}: {status}"),
        }
    }
}

/// Web's calls to the API in the background, until stopped.
struct Load {
    stop: watch::Sender<bool>,
    task: JoinHandle<Tally>,
}

impl Load {
    fn start(web: SocketAddr) -> Load {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut total = Tally::default();
            // Dropping the sender stops the load too.
            while !*stopped.borrow() && stopped.has_changed().is_ok() {
                let batch = traffic::drive(web, "GET", "api.shop:8080", "/items", LOAD_BATCH).await;
                total.add(&batch);
                tokio::time::sleep(LOAD_PAUSE).await;
            }
            total
        });
        Load { stop, task }
    }

    async fn stop(self) -> Tally {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

impl Mesh {
    /// The Canary part of the story: one healthy canary promoted, one failing canary
    /// rolled back; a check for each commit.
    pub(super) async fn canary_story(&self, checks: &mut Vec<Check>) -> anyhow::Result<()> {
        let services = self.repo.read(SERVICES_FILE)?;
        self.progress(
            "progressive delivery: a Canary takes the API's rollout over from the Git split",
        );

        let run = self
            .canary_run(
                "api: hand the rollout to a Canary",
                "shop/split.yaml deleted; Services api-primary (v2) and api-canary (v3) and the Canary api added",
                |r| {
                    r.remove(SPLIT_FILE)?;
                    r.write(SERVICES_FILE, &format!("{services}{}", backends("v2", "v3")))?;
                    r.write(CANARY_FILE, CANARY)
                },
                |s| s.target.as_deref() == Some("v3") && ended(s),
            )
            .await?;
        let mut failures = Vec::new();
        if run.gave_up.is_some() || run.phase() != "Succeeded" {
            failures.push(run.unexpected("phase Succeeded"));
        } else if run.weights != [0, 25, 50, 75, 100] {
            failures.push(format!(
                "expected the weights 0, 25, 50, 75, 100, saw {}",
                run.weights()
            ));
        }
        let observed = format!(
            "{} in {:.1} s, weights {}",
            run.phase(),
            run.took.as_secs_f64(),
            run.weights()
        );
        checks.push(
            self.canary_check(
                "Canary promotes v3 step by step (0, 25, 50, 75, 100 %), then every request on v3",
                observed,
                failures,
            )
            .await,
        );

        let run = self
            .canary_run(
                "api: v3 is the new stable",
                "api-primary selects version v3",
                |r| {
                    r.write(
                        SERVICES_FILE,
                        &format!("{services}{}", backends("v3", "v3")),
                    )
                },
                |s| s.canary_weight == 0 || s.phase.as_deref() == Some("Failed"),
            )
            .await?;
        let mut failures = Vec::new();
        if run.gave_up.is_some() || run.status().is_none_or(|s| s.canary_weight != 0) {
            failures.push(run.unexpected("canary weight 0 (Finalized)"));
        } else if !run.events.iter().any(|e| e == "Finalized") {
            failures.push(format!(
                "expected the event Finalized, saw {:?}",
                run.events
            ));
        }
        let observed = format!(
            "{} in {:.1} s, weights {}",
            run.events.last().map_or("no event", String::as_str),
            run.took.as_secs_f64(),
            run.weights()
        );
        checks.push(
            self.canary_check(
                "v3 committed as the new stable: traffic back on api-primary (canary weight 0), every request on v3",
                observed,
                failures,
            )
            .await,
        );

        let run = self
            .canary_run(
                "api: canary v4",
                "api-canary selects version v4 (it answers 20 % of requests with 500)",
                |r| {
                    r.write(
                        SERVICES_FILE,
                        &format!("{services}{}", backends("v3", "v4")),
                    )
                },
                |s| s.target.as_deref() == Some("v4") && ended(s),
            )
            .await?;
        let mut failures = Vec::new();
        let status = run.status();
        if run.gave_up.is_some() || run.phase() != "Failed" {
            failures.push(run.unexpected("phase Failed"));
        } else if status.is_none_or(|s| s.failed_checks != 2) {
            failures.push(run.unexpected("2 failed checks"));
        } else if status
            .and_then(|s| s.message.as_deref())
            .is_none_or(|m| !m.contains(REQUEST_SUCCESS_RATE))
        {
            failures.push(run.unexpected(&format!("a message naming {REQUEST_SUCCESS_RATE}")));
        }
        let observed = format!(
            "{} after {} failed checks in {:.1} s, weights {}: {:?}",
            run.phase(),
            status.map_or(0, |s| s.failed_checks),
            run.took.as_secs_f64(),
            run.weights(),
            status
                .and_then(|s| s.message.as_deref())
                .unwrap_or_default()
        );
        checks.push(
            self.canary_check(
                "Canary v4 (20 % errors) rolled back after 2 failed checks, every request on v3 again",
                observed,
                failures,
            )
            .await,
        );
        Ok(())
    }

    /// Commits `change` with web's load running and follows the Canary until `done`.
    async fn canary_run(
        &self,
        message: &str,
        what: &str,
        change: impl FnOnce(&super::repo::Repo) -> anyhow::Result<()>,
        done: impl Fn(&CanaryStatus) -> bool,
    ) -> anyhow::Result<Run> {
        let before = self.canary().await.ok().flatten();
        let load = Load::start(self.web());
        let started = Instant::now();
        let (commit, refused) = self.commit(message, change).await?;
        let mut run = match refused {
            // A check that fails, as every other one: the story goes on.
            Some(errors) => {
                self.progress(&format!(
                    "commit {}: {what}; the operator refused it:",
                    short(commit)
                ));
                for e in &errors {
                    println!("           {e}");
                }
                let mut run = Run::starting(before);
                run.took = started.elapsed();
                run.gave_up = Some(format!(
                    "the operator refused the commit: {}",
                    errors.join("; ")
                ));
                run
            }
            None => {
                self.progress(&format!("commit {}: {what}", short(commit)));
                self.follow(before, started, done).await
            }
        };
        run.load = load.stop().await;
        self.progress(&format!("  web's calls during the run: {}", run.load));
        Ok(run)
    }

    /// Polls the Canary until `done` or [`RUN_TIMEOUT`], printing each weight change and
    /// each event that was not in `before`.
    async fn follow(
        &self,
        before: Option<CanaryView>,
        started: Instant,
        done: impl Fn(&CanaryStatus) -> bool,
    ) -> Run {
        let mut seen: Vec<Event> = before
            .as_ref()
            .map(|c| c.events.clone())
            .unwrap_or_default();
        let mut run = Run::starting(before);
        let mut error = None;
        loop {
            match self.canary().await {
                Ok(Some(view)) => {
                    let status = &view.status;
                    if run.weights.last() != Some(&status.canary_weight) {
                        run.weights.push(status.canary_weight);
                        // The checks that moved the weight: a step or the end of a run, not
                        // a finalization (no check) showing the last run's values.
                        let previous = run.status().and_then(|s| s.phase.as_deref());
                        let phase = status.phase.as_deref();
                        let checked = !ended(status) || phase != previous;
                        self.progress(&format!(
                            "  canary {NAME}: {} % on {}{}",
                            status.canary_weight,
                            status.target.as_deref().unwrap_or("-"),
                            if checked {
                                checks(&status.metrics)
                            } else {
                                String::new()
                            }
                        ));
                    }
                    for event in &view.events {
                        if seen.contains(event) {
                            continue;
                        }
                        // `Advanced` says what the weight line above said, without values.
                        if event.reason != ADVANCED {
                            self.progress(&format!(
                                "  canary {NAME}: {}: {}",
                                event.reason, event.message
                            ));
                        }
                        run.events.push(event.reason.clone());
                        seen.push(event.clone());
                    }
                    let finished = done(status);
                    run.last = Some(view);
                    if finished {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => error = Some(format!("{e:#}")),
            }
            if started.elapsed() > RUN_TIMEOUT {
                run.gave_up = Some(format!(
                    "the run did not end within {}s{}",
                    RUN_TIMEOUT.as_secs(),
                    error
                        .map(|e| format!(" (last /status error: {e})"))
                        .unwrap_or_default()
                ));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        run.took = started.elapsed();
        run
    }

    /// The demo's Canary in the operator's `/status`, if it is there.
    async fn canary(&self) -> anyhow::Result<Option<CanaryView>> {
        let status = http::status(self.admin).await?;
        let Some(canaries) = status.get("canaries") else {
            return Ok(None);
        };
        let canaries: Vec<CanaryView> = serde_json::from_value(canaries.clone())?;
        Ok(canaries
            .into_iter()
            .find(|c| c.namespace == NAMESPACE && c.name == NAME))
    }

    /// Measures every request on v3, and the check with the run's `failures` first.
    async fn canary_check(&self, title: &str, observed: String, failures: Vec<String>) -> Check {
        let (tally, verdict) = self.measure("GET", "/items", &all_on("v3")).await;
        let failure = failures
            .into_iter()
            .chain(verdict.err())
            .reduce(|a, b| format!("{a}; {b}"));
        let observed = format!("{observed}; then {tally}");
        let mark = if failure.is_none() { "ok" } else { "FAILED" };
        self.progress(&format!("  {mark}: {title}: {observed}"));
        if let Some(why) = &failure {
            self.progress(&format!("          {why}"));
        }
        Check {
            title: title.to_owned(),
            observed,
            failure,
            requests: tally.total(),
            ok: tally.ok(),
            denied: tally.status(403),
        }
    }
}

/// A run is over: promoted or rolled back.
fn ended(status: &CanaryStatus) -> bool {
    matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// ` (checks passed: success rate 100.0 %, p99 4 ms)`, or nothing before the first check.
fn checks(metrics: &[MetricStatus]) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let passed = metrics.iter().all(|m| m.verdict == "Pass");
    let values: Vec<String> = metrics.iter().map(metric).collect();
    format!(
        " ({}: {})",
        if passed {
            "checks passed"
        } else {
            "check failed"
        },
        values.join(", ")
    )
}

/// `success rate 100.0 %`, `p99 4 ms`; one out of its range with the bound it crossed.
fn metric(m: &MetricStatus) -> String {
    let Some(value) = m.value else {
        return format!("{}: no data", m.name);
    };
    let shown = match m.name.as_str() {
        REQUEST_SUCCESS_RATE => format!("success rate {value:.1} %"),
        REQUEST_DURATION => format!("p99 {value:.0} ms"),
        name => format!("{name} {value}"),
    };
    match (m.threshold_range.min, m.threshold_range.max) {
        (Some(min), _) if value < min => format!("{shown} < min {min}"),
        (_, Some(max)) if value > max => format!("{shown} > max {max}"),
        _ => shown,
    }
}

/// What a failure message shows of the Canary.
fn describe(view: Option<&CanaryView>) -> String {
    let Some(view) = view else {
        return "not in the operator's /status (canaries); is the canary controller running?"
            .into();
    };
    let s = &view.status;
    let metrics: Vec<String> = s.metrics.iter().map(metric).collect();
    format!(
        "phase {}, canaryWeight {}, failedChecks {}, target {}, message {:?}, metrics [{}]",
        s.phase.as_deref().unwrap_or("-"),
        s.canary_weight,
        s.failed_checks,
        s.target.as_deref().unwrap_or("-"),
        s.message.as_deref().unwrap_or_default(),
        metrics.join(", ")
    )
}

/// `0, 25, 50`, or `none seen`.
fn join(weights: &[u32]) -> String {
    if weights.is_empty() {
        return "none seen".into();
    }
    let weights: Vec<String> = weights.iter().map(u32::to_string).collect();
    weights.join(", ")
}

#[cfg(test)]
mod tests {
    use smi_crds::trellis::canary::ThresholdRange;

    use super::*;

    /// A metric of the demo's Canary: success rate min 99, p99 max 500 ms.
    fn mk_metric(name: &str, value: Option<f64>, verdict: &str) -> MetricStatus {
        let threshold_range = match name {
            REQUEST_SUCCESS_RATE => ThresholdRange {
                min: Some(99.0),
                max: None,
            },
            _ => ThresholdRange {
                min: None,
                max: Some(500.0),
            },
        };
        MetricStatus {
            name: name.into(),
            value,
            threshold_range,
            verdict: verdict.into(),
            message: None,
        }
    }

    #[test]
    fn a_step_line_shows_the_checks_that_let_it_through() {
        assert_eq!(checks(&[]), "", "no checks before the first step");
        assert_eq!(
            checks(&[
                mk_metric(REQUEST_SUCCESS_RATE, Some(100.0), "Pass"),
                mk_metric(REQUEST_DURATION, Some(4.2), "Pass"),
            ]),
            " (checks passed: success rate 100.0 %, p99 4 ms)"
        );
        assert_eq!(
            checks(&[
                mk_metric(REQUEST_SUCCESS_RATE, Some(81.25), "Fail"),
                mk_metric(REQUEST_DURATION, Some(4.2), "Pass"),
            ]),
            " (check failed: success rate 81.2 % < min 99, p99 4 ms)"
        );
        assert_eq!(
            checks(&[
                mk_metric(REQUEST_SUCCESS_RATE, None, "NoData"),
                mk_metric(REQUEST_DURATION, Some(612.0), "Fail"),
            ]),
            " (check failed: request-success-rate: no data, p99 612 ms > max 500)"
        );
    }

    /// `gitops-examples/` as the demo's commits leave it: each stage passes
    /// `trellis validate --strict` (no finding, not even a warning).
    #[test]
    fn every_canary_commit_validates() {
        for (stable, canary) in [("v2", "v3"), ("v3", "v3"), ("v3", "v4")] {
            let dir = tempfile::tempdir().unwrap();
            for (file, content) in super::super::repo::EXAMPLES {
                if *file == SPLIT_FILE {
                    continue;
                }
                let path = dir.path().join(file);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let content = match *file {
                    SERVICES_FILE => format!("{content}{}", backends(stable, canary)),
                    _ => (*content).to_owned(),
                };
                std::fs::write(path, content).unwrap();
            }
            std::fs::write(dir.path().join(CANARY_FILE), CANARY).unwrap();
            let manifests = crate::manifest::load(&[dir.path().to_owned()]).unwrap();
            let report = crate::lint::lint(&manifests, "default");
            let findings: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
            assert_eq!(findings, Vec::<String>::new(), "{stable} -> {canary}");
            // The MeshConfig, 6 Services, the route group, the TrafficTarget, the Canary.
            assert_eq!(report.summary.checked, 10, "{stable} -> {canary}");
        }
    }
}
