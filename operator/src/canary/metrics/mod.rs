//! Metrics providers for canary analysis: the value of each metric of a Canary, from the
//! proxies' own metrics (`builtin`, the default) or from a Prometheus server.
//!
//! ```text
//! every tick (one Providers for the whole operator, owned by the tick loop):
//!   providers.prepare(&due_canaries, &snapshot, &admin_addresses(snapshot.workloads())).await
//!       = scrape(now, proxies, backends): builtin only, every proxy's /metrics once for the
//!         canary backends (`namespace/name`) of the Canaries due; unreachable proxies are
//!         left out of this round, reported and logged
//!   for each Canary whose plan asks for metrics:
//!       providers.measure_all(canary, &snapshot, target).await -> [(Verdict, MetricStatus)]
//!       = for each of requests(canary, mesh config, target):
//!           let m = providers.measure(&request).await;    // Value | NoData | Error
//!           judge(&request.metric, &m)
//!       verdict -> machine::Observations.metrics, status -> Canary status.metrics[]
//! ```
//!
//! - [`measure`]: [`Measurement`] and [`judge`] (pure): value against `thresholdRange`,
//!   no data and errors under the `noData` policy.
//! - [`builtin`]: the embedded provider; [`history`] holds the scrapes and computes a
//!   window's deltas per proxy (counter resets, proxies coming and going), [`quantile`] is
//!   PromQL's `histogram_quantile`, [`text`] reads the proxies' exposition format.
//! - [`prometheus`]: query templates, the built-in PromQL and the query API client.
//! - [`requests`]: what a Canary asks for (provider, variables, windows), pure.
//!
//! Both providers measure the same thing for the built-in metrics: requests sent by client
//! proxies (`direction="outbound"`) to any port of the canary backend Service.

pub mod builtin;
mod client;
pub mod history;
pub mod measure;
pub mod prometheus;
pub mod quantile;
pub mod requests;
pub mod text;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use smi_crds::trellis::canary::{Canary, Metric, MetricStatus, ProviderType};

pub use measure::{Measurement, judge};

use crate::canary::machine::Verdict;
use crate::index::{Snapshot, Workload};
use history::History;

/// Scrapes kept at least this long (longer when a metric asks for a longer window).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(600);

/// One metric of one Canary, as the tick loop asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricRequest {
    pub provider: ProviderType,
    /// Base URL of the Prometheus HTTP API (`http://prometheus.monitoring:9090`).
    pub prometheus_address: Option<String>,
    /// The Canary's namespace.
    pub namespace: String,
    /// The root Service.
    pub service: String,
    /// The canary backend Service (its name).
    pub backend: String,
    /// The stable backend Service (its name).
    pub stable: String,
    /// The version under analysis.
    pub target: String,
    pub metric: Metric,
    /// The metric's `interval`, or the analysis interval.
    pub window: Duration,
}

impl MetricRequest {
    /// The canary backend as the builtin provider keys it: `namespace/name`.
    pub fn builtin_backend(&self) -> String {
        format!("{}/{}", self.namespace, self.backend)
    }
}

/// What a round of scrapes reached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrapeReport {
    /// Proxies that answered.
    pub scraped: usize,
    /// Proxies that did not, with why (`10.0.0.7:4191: cannot connect: ...`).
    pub failed: Vec<(SocketAddr, String)>,
}

/// The providers, with the builtin provider's memory of past scrapes.
#[derive(Debug)]
pub struct Providers {
    history: History,
    /// The clock of [`prepare`](Self::prepare)'s scrapes.
    started: std::time::Instant,
    /// Proxies the last scrape did not reach (logged when this changes).
    unreachable: BTreeSet<SocketAddr>,
}

impl Default for Providers {
    fn default() -> Self {
        Self::new()
    }
}

impl Providers {
    pub fn new() -> Self {
        Self {
            history: History::new(DEFAULT_RETENTION),
            started: std::time::Instant::now(),
            unreachable: BTreeSet::new(),
        }
    }

    /// Once per tick, before [`measure_all`](Self::measure_all): [`scrape`](Self::scrape)s
    /// the proxies (their admin addresses) for the builtin metrics of `canaries` (the ones
    /// due), now. Proxies that could not be scraped are logged when they change.
    pub async fn prepare(
        &mut self,
        canaries: &[&Canary],
        snapshot: &Snapshot,
        proxies: &[SocketAddr],
    ) -> ScrapeReport {
        let mesh = snapshot.reader().mesh_config();
        let backends: BTreeSet<String> = canaries
            .iter()
            .filter_map(|c| requests::builtin_backend(c, &mesh))
            .collect();
        let report = self
            .scrape(self.started.elapsed(), proxies, &backends)
            .await;
        let unreachable: BTreeSet<SocketAddr> = report.failed.iter().map(|(a, _)| *a).collect();
        for (address, why) in &report.failed {
            if !self.unreachable.contains(address) {
                eprintln!(
                    "trellis operator: canary metrics: proxy {address} left out of the scrape: {why}"
                );
            }
        }
        self.unreachable = unreachable;
        report
    }

    /// Every metric of `canary`, `target` being the version under analysis: the verdict
    /// for the state machine and the status entry of each, in the order of the spec.
    pub async fn measure_all(
        &mut self,
        canary: &Canary,
        snapshot: &Snapshot,
        target: Option<&str>,
    ) -> Vec<(Verdict, MetricStatus)> {
        let mesh = snapshot.reader().mesh_config();
        let mut out = Vec::new();
        for request in requests::requests(canary, &mesh, target.unwrap_or_default()) {
            let measured = self.measure(&request).await;
            out.push(judge(&request.metric, &measured));
        }
        out
    }

    /// Once per tick, before [`measure`](Self::measure): scrapes every proxy's `/metrics`
    /// (at `proxies`, their admin addresses) and records what they counted for `backends`
    /// (`namespace/name`) at `now` (any monotonic clock, as the machine's `now`). Nothing is
    /// scraped when `backends` is empty. Windows start at a scrape, so scrape more often
    /// than the shortest window.
    pub async fn scrape(
        &mut self,
        now: Duration,
        proxies: &[SocketAddr],
        backends: &BTreeSet<String>,
    ) -> ScrapeReport {
        if backends.is_empty() {
            return ScrapeReport::default();
        }
        let round = builtin::scrape(proxies, backends).await;
        let report = ScrapeReport {
            scraped: round.scraped.len(),
            failed: round.failed,
        };
        self.history.record(now, round.scraped);
        report
    }

    /// One metric: from the scrapes up to the last [`scrape`](Self::scrape) (builtin), or
    /// from Prometheus now.
    pub async fn measure(&mut self, request: &MetricRequest) -> Measurement {
        let metric = &request.metric;
        match request.provider {
            ProviderType::Builtin => {
                if metric.query.is_some() {
                    return Measurement::Error(format!(
                        "metric {:?} has a query, which needs provider type prometheus (the \
                         builtin provider measures the built-in metrics only)",
                        metric.name
                    ));
                }
                self.history.retain_at_least(request.window);
                builtin::measure(
                    &self.history,
                    &metric.name,
                    &request.builtin_backend(),
                    request.window,
                )
            }
            ProviderType::Prometheus => {
                let Some(address) = &request.prometheus_address else {
                    return Measurement::Error(
                        "provider type prometheus needs an address \
                         (spec.analysis.provider.address)"
                            .into(),
                    );
                };
                let promql = prometheus::query_of(metric).and_then(|template| {
                    let vars = prometheus::Vars {
                        namespace: &request.namespace,
                        service: &request.service,
                        backend: &request.backend,
                        stable: &request.stable,
                        target: &request.target,
                        interval: request.window,
                    };
                    prometheus::render(template, &vars)
                        .map_err(|e| format!("the query of metric {:?}: {e}", metric.name))
                });
                match promql {
                    Ok(promql) => {
                        prometheus::query(address, &promql, prometheus::QUERY_TIMEOUT).await
                    }
                    Err(why) => Measurement::Error(why),
                }
            }
        }
    }
}

/// Where the builtin provider scrapes: the admin address (first address, admin port) of
/// every meshed workload whose proxy said where its admin listener is.
pub fn admin_addresses<'a>(workloads: impl IntoIterator<Item = &'a Workload>) -> Vec<SocketAddr> {
    workloads
        .into_iter()
        .filter(|w| w.meshed)
        .filter_map(|w| Some(SocketAddr::new(*w.addresses.first()?, w.admin_port?)))
        .collect()
}

/// A duration as PromQL writes it, in its largest whole unit: `1h`, `5m`, `30s`, `1500ms`.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, name) in [(3_600_000, "h"), (60_000, "m"), (1_000, "s")] {
        if ms >= unit && ms.is_multiple_of(unit) {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests;
