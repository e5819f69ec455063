//! `TrafficPolicy` (`trellis.dev/v1alpha1`, namespaced): what SMI does not cover for one
//! Service, optionally per route: timeouts, retries, circuit breaking, load balancing,
//! fault injection, rate limiting and mirroring.
//!
//! ```text
//!   client proxy (outbound route to spec.service)        server proxy (inbound port)
//!   timeout, retries, fault, mirror   <- per route        rateLimit (per workload)
//!   loadBalancer, circuitBreaker      <- per backend
//! ```
//!
//! Durations are strings such as `250ms`, `5s`, `1m` (see [`crate::validate::parse_duration`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::Status;

pub const KIND: &str = "TrafficPolicy";

/// Retry conditions the proxy knows (`spec.retries.retryOn`).
pub const RETRY_ON: [&str; 5] = [
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
];

/// Timeouts, retries, circuit breaking, load balancing, fault injection, rate limiting and
/// mirroring for the requests sent to one Service.
#[derive(
    kube::CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq,
)]
#[kube(
    group = "trellis.dev",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    plural = "trafficpolicies",
    shortname = "tp",
    namespaced,
    status = "Status",
    derive = "PartialEq",
    doc = "TrafficPolicy sets timeouts, retries, circuit breaking, load balancing, fault injection, rate limiting and mirroring for the requests sent to one Service, optionally per route.",
    printcolumn(
        name = "Service",
        type_ = "string",
        json_path = ".spec.service",
        description = "The Service whose requests the policy applies to."
    ),
    printcolumn(
        name = "Timeout",
        type_ = "string",
        json_path = ".spec.timeout",
        description = "Whole-request timeout, retries included."
    ),
    printcolumn(
        name = "Retries",
        type_ = "integer",
        json_path = ".spec.retries.attempts",
        description = "Attempts per request, the first included."
    ),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status",
        description = "Whether Trellis accepted the policy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicySpec {
    /// Name of a Service in the policy's namespace (a DNS-1035 label such as `web`). The
    /// policy applies to every request sent to it, from any meshed client.
    pub service: String,
    /// Deadline for the whole request, retries included, as a duration (`5s`, `250ms`).
    /// Over it the client gets 504. Omitted: no timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries of failed requests by the client's proxy. Omitted: no retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Ejection of failing endpoints and a cap on requests in flight, per client proxy.
    /// Omitted: no circuit breaking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// How client proxies choose an endpoint of the Service. Omitted: `PeakEwma`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Fault injection (delays, aborts) for testing resilience. Omitted: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Local rate limit each workload behind the Service enforces on its inbound side
    /// (per instance, not shared between replicas). Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Copies a share of requests to another Service; its responses are discarded.
    /// Omitted: no mirroring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// Per-route overrides, selected by HTTPRouteGroup matches. A field set in a route
    /// replaces the service-level field for the requests it selects; the first route
    /// whose matches hold applies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RoutePolicy>,
}

/// Retry settings.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retries {
    /// Attempts per request, the first included: 1 (no retry) to 10. Required.
    pub attempts: u32,
    /// Deadline of each attempt, as a duration (`1s`). Omitted: only `timeout` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Conditions that are retried: `5xx`, `gateway-error` (502, 503, 504), `reset`,
    /// `connect-failure`, `retriable-4xx` (409). Empty: only `statuses` and `grpcCodes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<String>,
    /// HTTP statuses (100-599) retried besides `retryOn`, e.g. `[503]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u32>,
    /// gRPC status codes (0-16) retried, e.g. `[14]` (UNAVAILABLE).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grpc_codes: Vec<u32>,
    /// Exponential backoff between attempts. Omitted: base `25ms`, max `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Cap on the extra load retries add. Omitted: 20 % plus 10 per second over `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RetryBudget>,
    /// Requests with bodies larger than this many bytes are not retried (the body is not
    /// kept for replay). Omitted: 65536 (64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replay_body_bytes: Option<u32>,
}

/// Jittered exponential backoff between retries.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// First delay, as a duration. Omitted: `25ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Longest delay, as a duration; at least `base`. Omitted: `250ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
}

/// Retries may add at most `percent` % to the request rate, plus `minPerSecond`,
/// measured over `window`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// Retries as a share of requests, 0-100 (may be fractional). Required.
    pub percent: f64,
    /// Retries per second always allowed, whatever the share. Omitted: 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<u32>,
    /// Time over which requests and retries are counted, as a duration. Omitted: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

/// Outlier ejection and a concurrency cap, applied by each client proxy.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Consecutive failures (5xx, connection errors) that eject an endpoint; 0 never
    /// ejects. Required.
    pub consecutive_failures: u32,
    /// First ejection time, as a duration; doubles with each ejection of the same
    /// endpoint. Omitted: `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<String>,
    /// Longest ejection time, as a duration; at least `baseEjectionTime`. Omitted: `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_time: Option<String>,
    /// Largest share of endpoints ejected at once, 0-100 %. Omitted or 0: 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<u32>,
    /// Requests in flight per client proxy beyond which new requests fail at once with
    /// 503. Omitted: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
}

/// Load-balancing algorithms.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum BalancerType {
    /// Power of two choices over a moving average of latency (the default).
    #[default]
    PeakEwma,
    /// Each endpoint in turn.
    RoundRobin,
    /// Power of two choices over requests in flight.
    LeastRequest,
    /// Consistent hashing on `hashOn` (sticky sessions).
    RingHash,
}

/// How client proxies choose an endpoint.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    /// `PeakEwma` (default), `RoundRobin`, `LeastRequest` or `RingHash`.
    #[serde(default)]
    pub r#type: BalancerType,
    /// Decay of the latency average, as a duration; only with `PeakEwma`. Omitted: `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<String>,
    /// What requests are hashed on; required with `RingHash` and only allowed with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
}

/// The key of consistent hashing; set exactly one field.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashOn {
    /// Name of a request header (e.g. `x-user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Name of a request cookie (e.g. `session`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    /// `true`: hash on the client's IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

/// Faults injected by client proxies into a share of requests.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Delays a share of requests before they are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
    /// Answers a share of requests with an error instead of sending them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
}

/// An injected delay.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    /// Share of requests delayed, 0-100 (may be fractional). Required.
    pub percent: f64,
    /// How long, as a duration (`2s`). Required.
    pub duration: String,
}

/// An injected error; set exactly one of `httpStatus` and `grpcCode`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    /// Share of requests aborted, 0-100 (may be fractional). Required.
    pub percent: f64,
    /// HTTP status returned, 200-599.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u32>,
    /// gRPC status code returned, 1-16 (14 = UNAVAILABLE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_code: Option<u32>,
}

/// A token bucket per workload instance; requests over it get HTTP 429.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second each instance accepts, at least 1. Required.
    pub requests_per_second: u32,
    /// Requests accepted at once above the sustained rate (bucket size), at least 1.
    /// Omitted: `requestsPerSecond`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// Traffic mirroring (shadowing).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// Service (DNS-1035 label) in the policy's namespace that receives the copies.
    /// Required.
    pub service: String,
    /// Share of requests copied, 0-100 (may be fractional). Omitted: 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// Overrides for the requests that some HTTPRouteGroup matches select.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoutePolicy {
    /// Name of an HTTPRouteGroup in the policy's namespace. Required.
    pub http_route_group: String,
    /// Names of matches of that group (at least one); a request selected by any of them
    /// gets this route's settings.
    pub matches: Vec<String>,
    /// Replaces `spec.timeout` for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Replaces `spec.retries` for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Replaces `spec.fault` for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Replaces `spec.mirror` for these requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}
