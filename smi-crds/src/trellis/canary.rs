//! `Canary` (`trellis.dev/v1alpha1`, namespaced): progressive delivery between two backend
//! Services of one root Service, driven by metrics, in the manner of Flagger.
//!
//! ```text
//!   clients --call--> spec.service (root)
//!                        |  TrafficSplit generated and owned by the operator (never in Git)
//!                        +--(100 - w)--> spec.stable    the version in production
//!                        +------ w ----> spec.canary    the new version under analysis
//!   every analysis.interval: webhooks + metrics hold -> w steps up; at the last step ->
//!   promotion (all on the canary); failedChecks reaching analysis.threshold -> rollback
//!   (all on the stable)
//! ```
//!
//! A run starts when the canary backend runs a new version: the value of the `targetLabel`
//! (default `version`) on its workloads. Durations are strings such as `30s`, `1m`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const KIND: &str = "Canary";

/// The label whose value on the canary backend's workloads names the version under analysis.
pub const DEFAULT_TARGET_LABEL: &str = "version";

/// Built-in metric: share of the canary backend's requests that did not fail, in percent.
pub const REQUEST_SUCCESS_RATE: &str = "request-success-rate";
/// Built-in metric: 99th percentile of the canary backend's request durations, in ms.
pub const REQUEST_DURATION: &str = "request-duration";

/// Moves traffic from a stable backend to a canary backend step by step while live
/// metrics stay healthy, and rolls back when they do not.
#[derive(
    kube::CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq,
)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "Canary",
    plural = "canaries",
    shortname = "cn",
    namespaced,
    status = "CanaryStatus",
    derive = "PartialEq",
    doc = "Canary moves the traffic of a root Service from a stable backend Service to a canary backend Service step by step while live metrics stay healthy, and rolls back when they do not.",
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.service",
        description = "The root Service clients call."
    ),
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the run is."
    ),
    printcolumn(
        name = "Weight",
        type_ = "integer",
        json_path = ".status.canaryWeight",
        description = "Percent of the traffic on the canary backend."
    ),
    printcolumn(
        name = "FailedChecks",
        type_ = "integer",
        json_path = ".status.failedChecks",
        description = "Failed checks in this run."
    ),
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".status.target",
        description = "The version under analysis."
    ),
    printcolumn(
        name = "LastTransition",
        type_ = "date",
        json_path = ".status.lastTransitionTime"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// The root Service clients call (a Service in the Canary's namespace).
    pub service: String,
    /// The backend Service running the version in production.
    pub stable: String,
    /// The backend Service running the new version.
    pub canary: String,
    /// Name of the TrafficSplit the operator generates and drives. Omitted: the Canary's
    /// name. It must not be committed to Git: the operator owns it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<String>,
    /// Label of the canary backend's workloads (Pods) whose value names the version under
    /// analysis; a new value starts a new run. Omitted: `version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    /// How long the canary backend may have no ready workloads before the run fails.
    /// Omitted: `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline: Option<String>,
    /// `true` freezes the run where it is: no checks, no steps.
    #[serde(default, skip_serializing_if = "is_false")]
    pub suspend: bool,
    /// `true` rolls the run back at the next tick (all traffic on the stable backend);
    /// a new version on the canary backend starts a new run once it is `false` again.
    #[serde(default, skip_serializing_if = "is_false")]
    pub abort: bool,
    /// How the canary is checked and how traffic moves. Required.
    pub analysis: Analysis,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// How the canary is checked and how traffic moves.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Analysis {
    /// Time between two checks (`1m`, `30s`). Required.
    pub interval: String,
    /// Failed checks in a run (cumulative, as in Flagger) that roll the canary back.
    /// Omitted: 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
    /// Canary weight added at each passed check, 1-100, up to `maxWeight`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_weight: Option<u32>,
    /// The canary weights in order, each 1-100 and increasing (instead of `stepWeight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step_weights: Vec<u32>,
    /// Highest canary weight before promotion, with `stepWeight`. Omitted: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_weight: Option<u32>,
    /// Blue/green: this many passed checks with no traffic moved, then promotion (instead
    /// of `stepWeight`/`stepWeights`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u32>,
    /// Where metrics come from. Omitted: MeshConfig's `metrics`, else `builtin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Checks run at every interval; each must hold for the run to step forward.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<Metric>,
    /// HTTP calls at points of the run (load tests, gates, notifications).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<Webhook>,
}

/// A metrics source.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Provider {
    /// `builtin` (the proxies' own metrics) or `prometheus`.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Base URL of the Prometheus HTTP API (`http://prometheus.monitoring:9090`), for
    /// `prometheus`. Omitted: MeshConfig's `metrics.prometheusUrl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// The operator scrapes the proxies' own `/metrics` (no Prometheus needed).
    #[default]
    Builtin,
    /// A Prometheus server at `address`.
    Prometheus,
}

/// One metric check.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metric {
    /// `request-success-rate` (percent of requests to the canary backend that did not
    /// fail) or `request-duration` (their p99 in milliseconds), measured on the client
    /// side; any other name needs a `query`. Unique among the Canary's metrics.
    pub name: String,
    /// A PromQL query (Prometheus provider) returning one number. Variables:
    /// `{{ namespace }}`, `{{ service }}` (root), `{{ backend }}` (canary backend),
    /// `{{ stable }}`, `{{ target }}` (version under analysis) and `{{ interval }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The range the value must be in to pass. Required.
    pub threshold_range: ThresholdRange,
    /// Window the value is measured over. Omitted: the analysis interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// What a check without data counts as: `fail` (default), `pass` or `skip`.
    #[serde(default)]
    pub no_data: NoDataPolicy,
}

/// Inclusive bounds; at least one is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThresholdRange {
    /// Lowest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NoDataPolicy {
    /// No data is a failed check (a canary nobody calls is not proven healthy).
    #[default]
    Fail,
    /// No data passes.
    Pass,
    /// No data is not counted either way.
    Skip,
}

/// An HTTP call at a point of the run: `POST url` with a JSON body naming the Canary; any
/// 2xx within `timeout` passes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    /// Unique among the Canary's webhooks; events and status name the webhook by it.
    pub name: String,
    /// When it is called: `pre-rollout`, `rollout`, `confirm-promotion`, `post-rollout`
    /// or `rollback`.
    #[serde(rename = "type")]
    pub type_: WebhookType,
    /// `http://` or `https://` URL.
    pub url: String,
    /// Omitted: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Sent as `metadata` in the body.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookType {
    /// Before any traffic moves; a failure is a failed check.
    PreRollout,
    /// At every check (load tests); a failure is a failed check.
    #[default]
    Rollout,
    /// Before promotion; a failure holds the run in `WaitingPromotion`.
    ConfirmPromotion,
    /// After a run ends (promoted or rolled back); informational.
    PostRollout,
    /// At every check; a 2xx answer rolls the run back (a manual gate).
    Rollback,
}

/// What the operator observed, written by it (never by users or Git).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// `Initializing`, `Progressing`, `WaitingPromotion`, `Succeeded` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Percent of the traffic on the canary backend.
    #[serde(default)]
    pub canary_weight: u32,
    /// Failed checks in this run.
    #[serde(default)]
    pub failed_checks: u32,
    /// Passed checks in this run (blue/green).
    #[serde(default)]
    pub iterations: u32,
    /// The version under analysis (value of the target label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The generated TrafficSplit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split: Option<String>,
    /// The last value of every metric, its range and verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricStatus>,
    /// What happened last (why a run failed, what it waits for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// The `metadata.generation` the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted` (valid), `ResolvedRefs` (Services exist) and `Ready` (a run succeeded
    /// or none is needed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::status::conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// One metric's last check.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricStatus {
    /// The metric's name in `spec.analysis.metrics`.
    pub name: String,
    /// Omitted: no data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The range the value had to be in.
    pub threshold_range: ThresholdRange,
    /// `Pass`, `Fail`, `NoData` (counted as the policy says) or `Error` (query failed,
    /// counted as no data).
    pub verdict: String,
    /// What went wrong (a query error, no requests in the window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
