//! Validated outbound configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method};
use regex::Regex;

use crate::tls::SpiffeId;

/// Protocol of a destination or port, as far as the control plane knows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// Detect from the first bytes.
    #[default]
    Detect,
    Http1,
    Http2,
    Grpc,
    Opaque,
}

/// Everything needed to send requests to one destination.
#[derive(Clone, Debug)]
pub struct Outbound {
    pub version: String,
    /// Shared with metrics labels, so a request never copies it.
    pub authority: Arc<str>,
    pub protocol: Protocol,
    /// In order: the first route whose matches hold takes the request.
    pub routes: Vec<Arc<Route>>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    /// Any match selects the route; empty: every request.
    pub matches: Vec<HttpMatch>,
    /// Backends with weight > 0, with their weights.
    pub backends: Vec<(Arc<Backend>, u32)>,
    /// Why no backend is eligible (the 503 body).
    pub unavailable_reason: String,
    pub timeout: Option<Duration>,
    pub retry: Option<Retry>,
    pub fault: Option<Fault>,
    pub mirror: Option<Mirror>,
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug)]
pub struct HttpMatch {
    /// Anchored at the start of the path.
    pub path: Option<Regex>,
    /// Empty: any method.
    pub methods: Vec<Method>,
    /// Whole-value regexes.
    pub headers: Vec<(HeaderName, Regex)>,
}

impl HttpMatch {
    /// Whether a request with this method, path and headers is selected.
    pub fn matches(&self, method: &Method, path: &str, headers: &http::HeaderMap) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.path.as_ref().is_none_or(|re| re.is_match(path))
            && self.headers.iter().all(|(name, re)| {
                headers
                    .get_all(name)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| re.is_match(v)))
            })
    }
}

#[derive(Debug)]
pub struct Backend {
    pub name: Arc<str>,
    pub endpoints: Vec<Endpoint>,
    pub balancer: Balancer,
    pub circuit_breaker: Option<CircuitBreaker>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: SocketAddr,
    /// SPIFFE id the endpoint must prove over mTLS; `None`: plaintext.
    pub identity: Option<Arc<SpiffeId>>,
    pub labels: HashMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Balancer {
    /// Power of two choices over peak-EWMA latency (the default).
    PeakEwma {
        decay: Duration,
    },
    RoundRobin,
    LeastRequest,
    RingHash(HashKey),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HashKey {
    Header(HeaderName),
    Cookie(String),
    SourceIp,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Retry {
    /// Attempts including the first.
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    pub on: Vec<RetryOn>,
    pub statuses: Vec<http::StatusCode>,
    pub grpc_codes: Vec<u32>,
    pub backoff: Backoff,
    pub budget: RetryBudget,
    pub max_replay_body_bytes: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOn {
    /// Any 5xx response.
    ServerError,
    /// 502, 503, 504.
    GatewayError,
    /// The connection was reset before a response.
    Reset,
    /// No connection could be made.
    ConnectFailure,
    /// 409.
    Retriable4xx,
}

impl RetryOn {
    pub const NAMES: [&str; 5] = [
        "5xx",
        "gateway-error",
        "reset",
        "connect-failure",
        "retriable-4xx",
    ];
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retries may add this share (0.2 = 20 %) to the request rate...
    pub ratio: f64,
    /// ...plus this many per second.
    pub min_per_second: u32,
    pub window: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    pub delay: Option<(f64, Duration)>,
    pub abort: Option<(f64, Abort)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abort {
    Http(http::StatusCode),
    Grpc(u32),
}

#[derive(Debug)]
pub struct Mirror {
    pub backend: Arc<Backend>,
    /// Share of requests copied, 0.0-1.0.
    pub ratio: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CircuitBreaker {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_ejection_ratio: f64,
    pub max_concurrent_requests: Option<u32>,
}
