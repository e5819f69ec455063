//! TrafficPolicy rules. The settings a route may override (timeout, retries, fault,
//! mirror) are checked by the same functions at `spec.` and at `spec.routes[i].`.

use std::time::Duration;

use super::names::{SERVICE_RULE, SUBDOMAIN_RULE, is_header_name};
use super::{Problem, is_dns1035_label, is_dns1123_subdomain, parse_duration};
use crate::trellis::traffic_policy::{
    BalancerType, CircuitBreaker, Fault, LoadBalancer, Mirror, RETRY_ON, RateLimit, Retries,
    RoutePolicy, TrafficPolicySpec,
};

const MAX_ATTEMPTS: u32 = 10;
/// What the proxy uses when `backoff.base` / `backoff.max` are omitted.
const DEFAULT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(25), Duration::from_millis(250));
/// What the proxy uses when the ejection times are omitted.
const DEFAULT_EJECTION: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(300));

pub(super) fn validate(spec: &TrafficPolicySpec) -> Vec<Problem> {
    let mut p = Problems::default();
    if spec.service.is_empty() {
        p.error(
            "spec.service",
            "required: the name of a Service in this namespace",
        );
    } else if !is_dns1035_label(&spec.service) {
        p.error(
            "spec.service",
            format!(
                "{:?} is not a valid Service name: {SERVICE_RULE}",
                spec.service
            ),
        );
    }
    if let Some(t) = &spec.timeout {
        p.positive_duration("spec.timeout", t);
    }
    if let Some(r) = &spec.retries {
        p.retries("spec.retries", r);
    }
    if let Some(cb) = &spec.circuit_breaker {
        p.circuit_breaker(cb);
    }
    if let Some(lb) = &spec.load_balancer {
        p.load_balancer(lb);
    }
    if let Some(f) = &spec.fault {
        // On a route, `fault: {}` is meaningful: no fault for its requests.
        if f.delay.is_none() && f.abort.is_none() {
            p.warning(
                "spec.fault",
                "sets neither delay nor abort: nothing is injected",
            );
        }
        p.fault("spec.fault", f);
    }
    if let Some(rl) = &spec.rate_limit {
        p.rate_limit(rl);
    }
    if let Some(m) = &spec.mirror {
        p.mirror("spec.mirror", m, &spec.service);
    }
    for (i, route) in spec.routes.iter().enumerate() {
        p.route(i, route, &spec.service);
    }
    p.duplicate_route_matches(&spec.routes);
    p.0
}

/// Problems in field order; the helpers below are shared with the Canary rules.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::error(field, message));
    }

    pub(super) fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::warning(field, message));
    }

    pub(super) fn duration(&mut self, field: &str, value: &str) -> Option<Duration> {
        parse_duration(value)
            .map_err(|message| self.error(field, message))
            .ok()
    }

    /// A duration that must be longer than 0 (timeouts, windows, ejection times).
    pub(super) fn positive_duration(&mut self, field: &str, value: &str) -> Option<Duration> {
        let d = self.duration(field, value)?;
        if d.is_zero() {
            self.error(field, "must be longer than 0, e.g. \"1s\" or \"250ms\"");
            return None;
        }
        Some(d)
    }

    fn percent(&mut self, field: &str, value: f64) {
        if !(0.0..=100.0).contains(&value) {
            self.error(field, format!("must be between 0 and 100, got {value}"));
        }
    }

    fn retries(&mut self, at: &str, r: &Retries) {
        if !(1..=MAX_ATTEMPTS).contains(&r.attempts) {
            self.error(
                format!("{at}.attempts"),
                format!(
                    "must be between 1 (no retry) and {MAX_ATTEMPTS}, got {}; attempts count the first one",
                    r.attempts
                ),
            );
        }
        if let Some(t) = &r.per_try_timeout {
            self.positive_duration(&format!("{at}.perTryTimeout"), t);
        }
        for (i, on) in r.retry_on.iter().enumerate() {
            if !RETRY_ON.contains(&on.as_str()) {
                self.error(
                    format!("{at}.retryOn[{i}]"),
                    format!(
                        "unknown condition {on:?}; use one of {}",
                        RETRY_ON.join(", ")
                    ),
                );
            }
        }
        for (i, s) in r.statuses.iter().enumerate() {
            if !(100..=599).contains(s) {
                self.error(
                    format!("{at}.statuses[{i}]"),
                    format!("{s} is not an HTTP status: use 100-599, e.g. 503"),
                );
            }
        }
        for (i, c) in r.grpc_codes.iter().enumerate() {
            if *c > 16 {
                self.error(
                    format!("{at}.grpcCodes[{i}]"),
                    format!("{c} is not a gRPC status code: use 0-16, e.g. 14 (UNAVAILABLE)"),
                );
            }
        }
        if r.attempts > 1
            && r.retry_on.is_empty()
            && r.statuses.is_empty()
            && r.grpc_codes.is_empty()
        {
            self.warning(
                format!("{at}.retryOn"),
                "no retry conditions: nothing is retried; list conditions (e.g. [5xx, connect-failure]), statuses or grpcCodes",
            );
        }
        if let Some(b) = &r.backoff {
            let base = match &b.base {
                Some(v) => self.duration(&format!("{at}.backoff.base"), v),
                None => Some(DEFAULT_BACKOFF.0),
            };
            let max = match &b.max {
                Some(v) => self.duration(&format!("{at}.backoff.max"), v),
                None => Some(DEFAULT_BACKOFF.1),
            };
            if let (Some(base), Some(max)) = (base, max)
                && max < base
            {
                self.error(
                    format!("{at}.backoff.max"),
                    format!(
                        "must be at least base ({}), got {}",
                        b.base.as_deref().unwrap_or("25ms"),
                        b.max.as_deref().unwrap_or("250ms (the default)")
                    ),
                );
            }
        }
        if let Some(budget) = &r.budget {
            self.percent(&format!("{at}.budget.percent"), budget.percent);
            if let Some(w) = &budget.window {
                self.positive_duration(&format!("{at}.budget.window"), w);
            }
        }
    }

    fn circuit_breaker(&mut self, cb: &CircuitBreaker) {
        const AT: &str = "spec.circuitBreaker";
        let base = match &cb.base_ejection_time {
            Some(v) => self.positive_duration(&format!("{AT}.baseEjectionTime"), v),
            None => Some(DEFAULT_EJECTION.0),
        };
        let max = match &cb.max_ejection_time {
            Some(v) => self.positive_duration(&format!("{AT}.maxEjectionTime"), v),
            None => Some(DEFAULT_EJECTION.1),
        };
        if let (Some(base), Some(max)) = (base, max)
            && max < base
        {
            self.error(
                format!("{AT}.maxEjectionTime"),
                format!(
                    "must be at least baseEjectionTime ({}), got {}",
                    cb.base_ejection_time.as_deref().unwrap_or("30s"),
                    cb.max_ejection_time
                        .as_deref()
                        .unwrap_or("5m (the default)")
                ),
            );
        }
        match cb.max_ejection_percent {
            Some(p) if p > 100 => self.error(
                format!("{AT}.maxEjectionPercent"),
                format!("must be between 0 and 100, got {p}"),
            ),
            Some(0) => self.warning(
                format!("{AT}.maxEjectionPercent"),
                "0 means the default, 50 %; to never eject endpoints set consecutiveFailures to 0",
            ),
            _ => {}
        }
        if cb.max_concurrent_requests == Some(0) {
            self.error(
                format!("{AT}.maxConcurrentRequests"),
                "must be at least 1; omit it for no limit",
            );
        }
    }

    fn load_balancer(&mut self, lb: &LoadBalancer) {
        const AT: &str = "spec.loadBalancer";
        if let Some(decay) = &lb.decay {
            if lb.r#type == BalancerType::PeakEwma {
                self.positive_duration(&format!("{AT}.decay"), decay);
            } else {
                self.error(
                    format!("{AT}.decay"),
                    format!(
                        "only allowed with type PeakEwma, the type is {:?}: remove decay",
                        lb.r#type
                    ),
                );
            }
        }
        let field = format!("{AT}.hashOn");
        match (&lb.hash_on, lb.r#type) {
            (None, BalancerType::RingHash) => self.error(
                field,
                "required with type RingHash: set one of header, cookie or sourceIp: true",
            ),
            (None, _) => {}
            (Some(_), t) if t != BalancerType::RingHash => self.error(
                field,
                format!("only allowed with type RingHash, the type is {t:?}: remove hashOn or use type RingHash"),
            ),
            (Some(h), _) => {
                let mut set = Vec::new();
                if let Some(header) = &h.header {
                    set.push("header");
                    if !is_header_name(header) {
                        self.error(
                            format!("{field}.header"),
                            format!("{header:?} is not a valid header name: use letters, digits and - (e.g. x-user)"),
                        );
                    }
                }
                if let Some(cookie) = &h.cookie {
                    set.push("cookie");
                    if !is_header_name(cookie) {
                        self.error(
                            format!("{field}.cookie"),
                            format!("{cookie:?} is not a valid cookie name: use letters, digits, - and _ (e.g. session)"),
                        );
                    }
                }
                if h.source_ip == Some(true) {
                    set.push("sourceIp");
                }
                if set.len() != 1 {
                    let got = if set.is_empty() {
                        "none".to_owned()
                    } else {
                        set.join(", ")
                    };
                    self.error(
                        field,
                        format!("set exactly one of header, cookie or sourceIp: true (got {got})"),
                    );
                }
            }
        }
    }

    fn fault(&mut self, at: &str, f: &Fault) {
        if let Some(d) = &f.delay {
            self.percent(&format!("{at}.delay.percent"), d.percent);
            self.duration(&format!("{at}.delay.duration"), &d.duration);
        }
        if let Some(a) = &f.abort {
            self.percent(&format!("{at}.abort.percent"), a.percent);
            match (a.http_status, a.grpc_code) {
                (Some(s), None) if !(200..=599).contains(&s) => self.error(
                    format!("{at}.abort.httpStatus"),
                    format!("{s} is not an error status: use 200-599, e.g. 503"),
                ),
                (None, Some(c)) if !(1..=16).contains(&c) => self.error(
                    format!("{at}.abort.grpcCode"),
                    format!("{c} is not a gRPC error code: use 1-16, e.g. 14 (UNAVAILABLE)"),
                ),
                (Some(_), Some(_)) | (None, None) => self.error(
                    format!("{at}.abort"),
                    "set exactly one of httpStatus (200-599) or grpcCode (1-16)",
                ),
                _ => {}
            }
        }
    }

    fn rate_limit(&mut self, rl: &RateLimit) {
        if rl.requests_per_second == 0 {
            self.error(
                "spec.rateLimit.requestsPerSecond",
                "must be at least 1; remove rateLimit for no limit",
            );
        }
        if rl.burst == Some(0) {
            self.error(
                "spec.rateLimit.burst",
                "must be at least 1; omit it to allow requestsPerSecond at once",
            );
        }
    }

    fn mirror(&mut self, at: &str, m: &Mirror, service: &str) {
        let field = format!("{at}.service");
        if m.service.is_empty() {
            self.error(
                field,
                "required: the name of a Service in this namespace that receives the copies",
            );
        } else if !is_dns1035_label(&m.service) {
            self.error(
                field,
                format!(
                    "{:?} is not a valid Service name: {SERVICE_RULE}",
                    m.service
                ),
            );
        } else if m.service == service {
            self.error(
                field,
                format!("{service:?} is the policy's own Service: each request would be sent to it twice; mirror to another Service"),
            );
        }
        if let Some(percent) = m.percent {
            self.percent(&format!("{at}.percent"), percent);
        }
    }

    fn route(&mut self, i: usize, route: &RoutePolicy, service: &str) {
        let at = format!("spec.routes[{i}]");
        let group = &route.http_route_group;
        if group.is_empty() {
            self.error(
                format!("{at}.httpRouteGroup"),
                "required: the name of an HTTPRouteGroup in this namespace",
            );
        } else if !is_dns1123_subdomain(group) {
            self.error(
                format!("{at}.httpRouteGroup"),
                format!("{group:?} is not a valid HTTPRouteGroup name: {SUBDOMAIN_RULE}"),
            );
        }
        if route.matches.is_empty() {
            self.error(
                format!("{at}.matches"),
                format!(
                    "at least one match is required: names of matches of HTTPRouteGroup {group:?}"
                ),
            );
        }
        for (k, m) in route.matches.iter().enumerate() {
            if m.is_empty() {
                self.error(
                    format!("{at}.matches[{k}]"),
                    format!("required: the name of a match of HTTPRouteGroup {group:?}"),
                );
            }
        }
        if route.timeout.is_none()
            && route.retries.is_none()
            && route.fault.is_none()
            && route.mirror.is_none()
        {
            self.warning(
                at.clone(),
                "sets none of timeout, retries, fault or mirror: its requests get the service-level settings",
            );
        }
        if let Some(t) = &route.timeout {
            self.positive_duration(&format!("{at}.timeout"), t);
        }
        if let Some(r) = &route.retries {
            self.retries(&format!("{at}.retries"), r);
        }
        if let Some(f) = &route.fault {
            self.fault(&format!("{at}.fault"), f);
        }
        if let Some(m) = &route.mirror {
            self.mirror(&format!("{at}.mirror"), m, service);
        }
    }

    /// A match of a group named in two places: the first route takes its requests, so the
    /// later mention never applies.
    fn duplicate_route_matches(&mut self, routes: &[RoutePolicy]) {
        let mut seen: Vec<(&str, &str, String)> = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            for (k, m) in route.matches.iter().enumerate() {
                let field = format!("spec.routes[{i}].matches[{k}]");
                let group = route.http_route_group.as_str();
                if m.is_empty() {
                    continue;
                }
                match seen.iter().find(|(g, name, _)| *g == group && name == m) {
                    Some((_, _, first)) => self.error(
                        field,
                        format!(
                            "duplicate route match \"{group}/{m}\" (also {first}); the first route takes its requests: list each match once"
                        ),
                    ),
                    None => seen.push((group, m, field)),
                }
            }
        }
    }
}
