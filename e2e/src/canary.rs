//! Watching a canary run from outside, as a user would: steady load through a meshed
//! client, the Canary's status from the operator's `/status`, and the requests each backend
//! app actually served.
//!
//! ```text
//! Load:    client app /call --> client proxy ==> api-primary (v1) | api-canary (v2)
//! Timeline: every 100 ms: Canary {phase, canaryWeight, failedChecks} from /status
//!           + requests served by the stable app and by the canary app (/_demo/stats)
//! segments: the timeline cut where the weight changes; each segment's share of requests
//!           served by the canary app is what the proxies really did at that weight
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use http::Method;
use serde_json::Value;

use crate::demo_app::DemoApp;
use crate::mesh::call_path;
use crate::operator::Operator;

/// Calls `service` through the client app's `/call`, `concurrency` at a time, until dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub sent: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(client_app: SocketAddr, service: &str, concurrency: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let path = call_path(Method::GET, service, "/");
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, sent, path) = (stop.clone(), sent.clone(), path.clone());
                tokio::spawn(async move {
                    let mut conn = None;
                    while !stop.load(Ordering::Relaxed) {
                        if conn.is_none() {
                            conn = crate::client::Http1Conn::connect(client_app).await.ok();
                        }
                        let Some(c) = conn.as_mut() else {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        };
                        if c.get(&client_app.to_string(), &path).await.is_err() {
                            conn = None;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Load { stop, sent, tasks }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One look at the run.
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: Instant,
    pub phase: String,
    pub weight: u64,
    pub failed_checks: u64,
    /// Requests served so far by the stable app and by the canary app.
    pub stable_served: u64,
    pub canary_served: u64,
}

impl Sample {
    /// A sample of the Canary `view` (its `/status` entry) and the apps' request counts.
    pub fn of(view: &Value, stable_served: u64, canary_served: u64) -> Sample {
        let s = &view["status"];
        Sample {
            at: Instant::now(),
            phase: s["phase"].as_str().unwrap_or_default().to_owned(),
            weight: s["canaryWeight"].as_u64().unwrap_or_default(),
            failed_checks: s["failedChecks"].as_u64().unwrap_or_default(),
            stable_served,
            canary_served,
        }
    }
}

/// What happened at one weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub weight: u64,
    pub duration: Duration,
    pub stable_served: u64,
    pub canary_served: u64,
}

impl Segment {
    /// Percent of the segment's requests the canary app served.
    pub fn canary_share(&self) -> f64 {
        let total = self.stable_served + self.canary_served;
        if total == 0 {
            return 0.0;
        }
        self.canary_served as f64 * 100.0 / total as f64
    }
}

/// The Canary `namespace/name` in a `/status` document.
pub fn canary_of<'a>(status: &'a Value, namespace: &str, name: &str) -> Option<&'a Value> {
    status["canaries"]
        .as_array()?
        .iter()
        .find(|c| c["namespace"] == namespace && c["name"] == name)
}

/// Samples the run every 100 ms until its phase is one of `until` (after having been
/// `Progressing`) or `timeout` passes.
pub async fn watch(
    operator: &Operator,
    canary: (&str, &str),
    stable_app: &DemoApp,
    canary_app: &DemoApp,
    until: &[&str],
    timeout: Duration,
) -> anyhow::Result<Vec<Sample>> {
    let deadline = Instant::now() + timeout;
    let mut samples: Vec<Sample> = Vec::new();
    let mut progressed = false;
    loop {
        let status = operator.status().await?;
        let (stable, canary_stats) = (stable_app.stats().await?, canary_app.stats().await?);
        let Some(view) = canary_of(&status, canary.0, canary.1) else {
            // The controller shows a Canary at its first tick after the commit is applied.
            if Instant::now() > deadline {
                bail!(
                    "/status never listed the Canary {}/{}: {status:#}",
                    canary.0,
                    canary.1
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let sample = Sample::of(view, stable.requests, canary_stats.requests);
        progressed |= sample.phase == "Progressing";
        let done = progressed && until.contains(&sample.phase.as_str());
        samples.push(sample);
        if done {
            return Ok(samples);
        }
        if Instant::now() > deadline {
            bail!(
                "the canary never reached {until:?} within {timeout:?}; weights seen {:?}; last status {view:#}\noperator stderr:\n{}",
                weights(&samples),
                operator.stderr_text()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The weights in the order they were seen, each once per stretch.
pub fn weights(samples: &[Sample]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for s in samples {
        if out.last() != Some(&s.weight) {
            out.push(s.weight);
        }
    }
    out
}

/// The timeline cut where the weight changes. The first `settle` of each stretch is left
/// out: the proxies apply a new weight a moment after the status shows it.
pub fn segments(samples: &[Sample], settle: Duration) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=samples.len() {
        if i < samples.len() && samples[i].weight == samples[start].weight {
            continue;
        }
        let stretch = &samples[start..i];
        let from = stretch
            .iter()
            .find(|s| s.at >= stretch[0].at + settle)
            .unwrap_or(&stretch[stretch.len() - 1]);
        let to = &stretch[stretch.len() - 1];
        out.push(Segment {
            weight: stretch[0].weight,
            duration: to.at.saturating_duration_since(from.at),
            stable_served: to.stable_served - from.stable_served,
            canary_served: to.canary_served - from.canary_served,
        });
        start = i;
    }
    out
}

/// `api` is what clients call (every version behind it); `api-primary` runs v1 and
/// `api-canary` runs v2, told apart by the `version` label, as a Canary expects.
pub const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-primary, namespace: shop}
spec: {selector: {app: api, version: v1}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: api-canary, namespace: shop}
spec: {selector: {app: api, version: v2}, ports: [{name: http, port: 80, targetPort: http}]}
---
apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec: {permissive: true}
";

/// A Canary of `api` (stable `api-primary`, canary `api-canary`) checking the success rate
/// (min 99 %) and p99 (max 500 ms) every `interval`, 20 % more traffic per passed check up
/// to 60 %, rolling back after 3 failed checks. `provider` is an `analysis.provider` block
/// (YAML, indented for `analysis`), or empty for the default.
pub fn canary_manifest(interval: &str, window: &str, provider: &str) -> String {
    format!(
        "\
apiVersion: trellis.dev/v1alpha1
kind: Canary
metadata: {{name: api, namespace: shop}}
spec:
  service: api
  stable: api-primary
  canary: api-canary
  analysis:
    interval: {interval}
    threshold: 3
    stepWeight: 20
    maxWeight: 60
{provider}    metrics:
    - name: request-success-rate
      interval: {window}
      thresholdRange: {{min: 99}}
    - name: request-duration
      interval: {window}
      thresholdRange: {{max: 500}}
"
    )
}

/// The mesh of a canary test: the operator following a repository, the stable app (v1), the
/// canary app (v2, answering `canary_error_rate` of its requests with 500), a client, and
/// steady load from the client to `api`.
pub struct Scenario {
    pub mesh: crate::mesh::GitMesh,
    pub client: crate::mesh::MeshedApp,
    pub stable: crate::mesh::MeshedApp,
    pub canary: crate::mesh::MeshedApp,
    pub load: Load,
}

impl Scenario {
    /// `None` when git is missing and the run is not strict.
    pub async fn start(canary_error_rate: f64) -> anyhow::Result<Option<Scenario>> {
        use crate::mesh::{GitMesh, MeshedApp};
        let Some(mesh) = GitMesh::start(&[("services.yaml", SERVICES)]).await? else {
            return Ok(None);
        };
        let stable = MeshedApp::builder("shop", "api-v1")
            .label("app", "api")
            .label("version", "v1")
            .version("v1")
            .start(&mesh.operator)
            .await?;
        let canary = MeshedApp::builder("shop", "api-v2")
            .label("app", "api")
            .label("version", "v2")
            .version("v2")
            .error_rate(canary_error_rate)
            .start(&mesh.operator)
            .await?;
        let client = MeshedApp::builder("shop", "client")
            .calls_out()
            .start(&mesh.operator)
            .await?;
        mesh.wait_registered(&[&stable, &canary, &client]).await?;
        let load = Load::start(client.addr(), "api.shop", 4);
        Ok(Some(Scenario {
            mesh,
            client,
            stable,
            canary,
            load,
        }))
    }

    /// Every proxy's admin listener (what Prometheus scrapes).
    pub fn admin_addresses(&self) -> Vec<SocketAddr> {
        [&self.client, &self.stable, &self.canary]
            .iter()
            .map(|a| a.proxy.admin)
            .collect()
    }

    /// Commits the Canary and watches the run until it succeeds or fails.
    pub async fn run(&self, canary_yaml: &str, timeout: Duration) -> anyhow::Result<Vec<Sample>> {
        let commit = self
            .mesh
            .commit("canary.yaml", canary_yaml, "canary for api v2");
        self.mesh.applied(&commit).await?;
        watch(
            &self.mesh.operator,
            ("shop", "api"),
            &self.stable.app,
            &self.canary.app,
            &["Succeeded", "Failed"],
            timeout,
        )
        .await
    }

    /// Keeps sampling `more` (after the run ended), adding to `samples`; returns the last
    /// stretch at one weight (see [`segments`]).
    pub async fn settle(
        &self,
        samples: &mut Vec<Sample>,
        more: Duration,
    ) -> anyhow::Result<Segment> {
        let end = Instant::now() + more;
        while Instant::now() < end {
            let status = self.mesh.operator.status().await?;
            let view = canary_of(&status, "shop", "api").expect("the Canary");
            let stable = self.stable.app.stats().await?.requests;
            let canary = self.canary.app.stats().await?.requests;
            samples.push(Sample::of(view, stable, canary));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(segments(samples, Duration::from_millis(200))
            .pop()
            .expect("at least one sample"))
    }

    /// The Canary's `/status` entry.
    pub async fn view(&self) -> anyhow::Result<Value> {
        let status = self.mesh.operator.status().await?;
        Ok(canary_of(&status, "shop", "api")
            .expect("the Canary")
            .clone())
    }

    /// The last check of the Canary's metric `name` (`status.metrics[]`).
    pub async fn metric(&self, name: &str) -> anyhow::Result<Value> {
        let view = self.view().await?;
        Ok(view["status"]["metrics"]
            .as_array()
            .and_then(|all| all.iter().find(|m| m["name"] == name))
            .unwrap_or_else(|| panic!("no metric {name} in {view:#}"))
            .clone())
    }
}

/// Each stretch at one weight saw the canary app serve that share of the requests, within
/// 15 points (stretches under 60 requests are too short to judge). Prints every stretch.
pub fn assert_traffic_follows(samples: &[Sample]) {
    for segment in segments(samples, Duration::from_millis(200)) {
        eprintln!("{segment:?}");
        let total = segment.stable_served + segment.canary_served;
        if total < 60 {
            continue;
        }
        let share = segment.canary_share();
        assert!(
            (share - segment.weight as f64).abs() <= 15.0,
            "at weight {} the canary app served {share:.1} % of {total} requests: {segment:?}",
            segment.weight
        );
    }
}
