//! The operator's own Prometheus metrics (`trellis_operator_*`), served on its admin
//! endpoint's `/metrics`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

pub struct Metrics {
    pub registry: Registry,
    /// Open Discovery watches, by `kind` (inbound, outbound).
    pub subscriptions: IntGaugeVec,
    /// Configs sent to proxies, by `kind`.
    pub pushes: IntCounterVec,
    /// Recompiles of a subscription, by `kind` and `result` (pushed: a new version was
    /// sent; unchanged: the config came out the same).
    pub compiles: IntCounterVec,
    /// Time to compile one subscription's config, by `kind`.
    pub compile_seconds: HistogramVec,
    /// Acks and NACKs from proxies, by `kind` and `result` (applied, rejected).
    pub acks: IntCounterVec,
    /// The index revision in force.
    pub index_revision: IntGauge,
    /// Workloads registered by proxies (local mode) or known from Pods.
    pub workloads: IntGauge,
    /// Resources read, by `kind` and `accepted` (true, false).
    pub resources: IntGaugeVec,
    /// Errors of sources (a manifest directory or Git repository that cannot be read), by
    /// `source`.
    pub source_errors: IntCounterVec,
    /// Canary transitions (Started, CheckFailed, RolledBack, Succeeded, ...), by
    /// `namespace`, `canary` and `reason`.
    pub canary_events: IntCounterVec,
    /// Percent of a Canary's traffic on its canary backend, by `namespace` and `canary`.
    pub canary_weight: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            subscriptions: IntGaugeVec::new(
                Opts::new("trellis_operator_subscriptions", "Open Discovery watches."),
                &["kind"],
            )
            .expect("valid metric"),
            pushes: IntCounterVec::new(
                Opts::new("trellis_operator_pushes_total", "Configs sent to proxies."),
                &["kind"],
            )
            .expect("valid metric"),
            compiles: IntCounterVec::new(
                Opts::new(
                    "trellis_operator_compiles_total",
                    "Subscription recompiles, by whether a new version was pushed.",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
            compile_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "trellis_operator_compile_duration_seconds",
                    "Time to compile one subscription's config.",
                )
                .buckets(vec![
                    0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
                ]),
                &["kind"],
            )
            .expect("valid metric"),
            acks: IntCounterVec::new(
                Opts::new(
                    "trellis_operator_acks_total",
                    "Acks (applied) and NACKs (rejected) sent by proxies.",
                ),
                &["kind", "result"],
            )
            .expect("valid metric"),
            index_revision: IntGauge::new(
                "trellis_operator_index_revision",
                "Revision of the index in force.",
            )
            .expect("valid metric"),
            workloads: IntGauge::new(
                "trellis_operator_workloads",
                "Workloads known (registered proxies or Pods).",
            )
            .expect("valid metric"),
            resources: IntGaugeVec::new(
                Opts::new(
                    "trellis_operator_resources",
                    "SMI and Trellis resources read, by kind and whether accepted.",
                ),
                &["kind", "accepted"],
            )
            .expect("valid metric"),
            source_errors: IntCounterVec::new(
                Opts::new(
                    "trellis_operator_source_errors_total",
                    "Times a source could not be read or held invalid manifests.",
                ),
                &["source"],
            )
            .expect("valid metric"),
            canary_events: IntCounterVec::new(
                Opts::new(
                    "trellis_operator_canary_events_total",
                    "Canary transitions, by reason (Started, Restarted, CheckFailed, WaitingPromotion, Succeeded, Finalized, RolledBack).",
                ),
                &["namespace", "canary", "reason"],
            )
            .expect("valid metric"),
            canary_weight: IntGaugeVec::new(
                Opts::new(
                    "trellis_operator_canary_weight",
                    "Percent of a Canary's traffic on its canary backend.",
                ),
                &["namespace", "canary"],
            )
            .expect("valid metric"),
            registry,
        };
        for c in [
            Box::new(m.subscriptions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.pushes.clone()),
            Box::new(m.compiles.clone()),
            Box::new(m.compile_seconds.clone()),
            Box::new(m.acks.clone()),
            Box::new(m.index_revision.clone()),
            Box::new(m.workloads.clone()),
            Box::new(m.resources.clone()),
            Box::new(m.source_errors.clone()),
            Box::new(m.canary_events.clone()),
            Box::new(m.canary_weight.clone()),
        ] {
            m.registry.register(c).expect("metric names are unique");
        }
        m
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
