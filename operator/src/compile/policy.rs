//! TrafficPolicy -> `trellis.proxy.v1` settings. Pure functions over one policy spec.
//!
//! ```text
//! spec.{timeout, retries, fault, mirror}  --route_settings(None)-->    every route to the Service
//! spec.routes[i].{...} over the above     --route_settings(Some(i))--> the route of routes[i]
//! spec.routes[i] + its HTTPRouteGroup     --route_matches-->           that route's HttpMatches
//! spec.{loadBalancer, circuitBreaker}     --backend_settings-->        the Service's backends
//! spec.rateLimit                          --inbound_rate_limit-->      each workload's inbound port
//! ```
//!
//! Validation (`smi_crds::validate`) rejects bad values before a policy gets here; what
//! still cannot be expressed (a duration that does not parse, a ring hash without a key)
//! is left out, so the proxy falls back to its default instead of refusing the config.

use smi_crds::specs::HTTPRouteGroup;
use smi_crds::specs::http_route_group::HttpMatch;
use smi_crds::trellis::traffic_policy::{self as tp, BalancerType, RoutePolicy, TrafficPolicySpec};
use smi_crds::validate::parse_duration;
use trellis_proxy_api::v1 as api;

/// Share of requests mirrored when `mirror.percent` is omitted.
pub const DEFAULT_MIRROR_PERCENT: f64 = 100.0;
/// Retries per second a budget always allows when `budget.minPerSecond` is omitted (the
/// proxy's own default when no budget is set).
pub const DEFAULT_BUDGET_MIN_PER_SECOND: u32 = 10;

/// What a policy sets on one outbound route: the service-level fields, with a matching
/// RoutePolicy's fields replacing them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteSettings {
    pub timeout: Option<pbjson_types::Duration>,
    pub retry: Option<api::Retry>,
    pub fault: Option<api::Fault>,
    /// (mirror Service name in the policy's namespace, percent); the caller resolves the
    /// Service into a backend.
    pub mirror: Option<(String, f64)>,
}

/// Service-level settings (`route == None`) or the settings for one RoutePolicy (index
/// into `spec.routes`). A field the route sets replaces the service-level one, even when
/// it compiles to nothing (`fault: {}` turns a service-level fault off); an index out of
/// range gives the service-level settings.
pub fn route_settings(spec: &TrafficPolicySpec, route: Option<usize>) -> RouteSettings {
    let service = RouteSettings {
        timeout: spec.timeout.as_deref().and_then(duration),
        retry: spec.retries.as_ref().map(retry),
        fault: spec.fault.as_ref().and_then(fault),
        mirror: spec.mirror.as_ref().map(mirror),
    };
    let Some(r) = route.and_then(|i| spec.routes.get(i)) else {
        return service;
    };
    RouteSettings {
        timeout: match &r.timeout {
            Some(t) => duration(t),
            None => service.timeout,
        },
        retry: match &r.retries {
            Some(x) => Some(retry(x)),
            None => service.retry,
        },
        fault: match &r.fault {
            Some(f) => fault(f),
            None => service.fault,
        },
        mirror: match &r.mirror {
            Some(m) => Some(mirror(m)),
            None => service.mirror,
        },
    }
}

/// Balancer and circuit breaker for the backends of the policy's Service; `None` leaves
/// the proxy's default (peak EWMA, no circuit breaking).
pub fn backend_settings(
    spec: &TrafficPolicySpec,
) -> (Option<api::Balancer>, Option<api::CircuitBreaker>) {
    (
        spec.load_balancer.as_ref().and_then(balancer),
        spec.circuit_breaker.as_ref().map(circuit_breaker),
    )
}

/// The rate limit each workload behind the Service enforces on its inbound port; the
/// burst defaults to the rate.
pub fn inbound_rate_limit(spec: &TrafficPolicySpec) -> Option<api::RateLimit> {
    let rl = spec.rate_limit.as_ref()?;
    (rl.requests_per_second > 0).then(|| api::RateLimit {
        requests_per_second: rl.requests_per_second,
        burst: rl
            .burst
            .filter(|b| *b > 0)
            .unwrap_or(rl.requests_per_second),
    })
}

/// The HTTP matches of RoutePolicy `route`, resolved against its HTTPRouteGroup, in the
/// order the route lists them; `Err` names the missing group or match.
pub fn route_matches(
    spec: &TrafficPolicySpec,
    route: usize,
    group: Option<&HTTPRouteGroup>,
) -> Result<Vec<api::HttpMatch>, String> {
    let Some(r) = spec.routes.get(route) else {
        return Err(format!(
            "no spec.routes[{route}]: the policy has {} route(s)",
            spec.routes.len()
        ));
    };
    let Some(group) = group else {
        return Err(format!(
            "no HTTPRouteGroup {:?} (spec.routes[{route}].httpRouteGroup)",
            r.http_route_group
        ));
    };
    r.matches
        .iter()
        .enumerate()
        .map(|(k, name)| {
            group
                .spec
                .matches
                .iter()
                .find(|m| m.name == *name)
                .map(http_match)
                .ok_or_else(|| missing_match(r, route, k, name))
        })
        .collect()
}

fn missing_match(r: &RoutePolicy, route: usize, k: usize, name: &str) -> String {
    format!(
        "HTTPRouteGroup {:?} has no match {name:?} (spec.routes[{route}].matches[{k}])",
        r.http_route_group
    )
}

/// An HTTPRouteGroup match as the proxy reads it: the path regex as written, methods
/// upper-cased (`*` anywhere means any method: none listed), header names lower-cased.
pub fn http_match(m: &HttpMatch) -> api::HttpMatch {
    let any_method = m.methods.iter().any(|x| x == "*");
    api::HttpMatch {
        path_regex: m.path_regex.clone().unwrap_or_default(),
        methods: if any_method {
            Vec::new()
        } else {
            m.methods.iter().map(|x| x.to_ascii_uppercase()).collect()
        },
        headers: m
            .headers
            .iter()
            .map(|h| api::HeaderMatch {
                name: h.name.to_ascii_lowercase(),
                value_regex: h.value.clone(),
            })
            .collect(),
    }
}

fn duration(text: &str) -> Option<pbjson_types::Duration> {
    parse_duration(text).ok().map(Into::into)
}

fn retry(r: &tp::Retries) -> api::Retry {
    api::Retry {
        attempts: r.attempts,
        per_try_timeout: r.per_try_timeout.as_deref().and_then(duration),
        retry_on: r.retry_on.clone(),
        statuses: r.statuses.clone(),
        grpc_codes: r.grpc_codes.clone(),
        backoff: r.backoff.as_ref().map(|b| api::Backoff {
            base: b.base.as_deref().and_then(duration),
            max: b.max.as_deref().and_then(duration),
        }),
        budget: r.budget.as_ref().map(|b| api::RetryBudget {
            percent: b.percent,
            min_per_second: b.min_per_second.unwrap_or(DEFAULT_BUDGET_MIN_PER_SECOND),
            window: b.window.as_deref().and_then(duration),
        }),
        // 0: the proxy's default (64 KiB).
        max_replay_body_bytes: r.max_replay_body_bytes.unwrap_or(0),
    }
}

/// `None` when nothing is injected. A delay without a duration, or an abort without
/// exactly one error, is left out (the proxy would refuse it).
fn fault(f: &tp::Fault) -> Option<api::Fault> {
    let delay = f.delay.as_ref().and_then(|d| {
        Some(api::FaultDelay {
            percent: d.percent,
            delay: Some(duration(&d.duration)?),
        })
    });
    let abort = f.abort.as_ref().and_then(|a| {
        let error = match (a.http_status, a.grpc_code) {
            (Some(s), None) => api::fault_abort::Error::HttpStatus(s),
            (None, Some(c)) => api::fault_abort::Error::GrpcCode(c),
            _ => return None,
        };
        Some(api::FaultAbort {
            percent: a.percent,
            error: Some(error),
        })
    });
    (delay.is_some() || abort.is_some()).then_some(api::Fault { delay, abort })
}

fn mirror(m: &tp::Mirror) -> (String, f64) {
    (
        m.service.clone(),
        m.percent.unwrap_or(DEFAULT_MIRROR_PERCENT),
    )
}

/// `None` for a ring hash without a key: the proxy's default balancer instead of a
/// refused config.
fn balancer(lb: &tp::LoadBalancer) -> Option<api::Balancer> {
    use api::balancer::Kind;
    let kind = match lb.r#type {
        BalancerType::PeakEwma => Kind::PeakEwma(api::PeakEwma {
            decay: lb.decay.as_deref().and_then(duration),
        }),
        BalancerType::RoundRobin => Kind::RoundRobin(api::RoundRobin {}),
        BalancerType::LeastRequest => Kind::LeastRequest(api::LeastRequest {}),
        BalancerType::RingHash => {
            use api::ring_hash::Key;
            let h = lb.hash_on.as_ref()?;
            let key = match (&h.header, &h.cookie, h.source_ip) {
                (Some(header), _, _) => Key::Header(header.to_ascii_lowercase()),
                (None, Some(cookie), _) => Key::Cookie(cookie.clone()),
                (None, None, Some(true)) => Key::SourceIp(true),
                _ => return None,
            };
            Kind::RingHash(api::RingHash { key: Some(key) })
        }
    };
    Some(api::Balancer { kind: Some(kind) })
}

fn circuit_breaker(cb: &tp::CircuitBreaker) -> api::CircuitBreaker {
    api::CircuitBreaker {
        consecutive_failures: cb.consecutive_failures,
        base_ejection_time: cb.base_ejection_time.as_deref().and_then(duration),
        max_ejection_time: cb.max_ejection_time.as_deref().and_then(duration),
        // 0: the proxy's defaults (50 %, no limit).
        max_ejection_percent: cb.max_ejection_percent.unwrap_or(0),
        max_concurrent_requests: cb.max_concurrent_requests.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::balancer::Kind;
    use api::fault_abort::Error;
    use api::ring_hash::Key;

    /// A policy for Service `web` with the given spec fields (YAML).
    fn mk_policy(fields: &str) -> TrafficPolicySpec {
        serde_saphyr::from_str(&format!("service: web\n{fields}")).expect("test policy parses")
    }

    fn mk_group(matches: &str) -> HTTPRouteGroup {
        serde_saphyr::from_str(&format!(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: web-routes, namespace: shop}}\nspec:\n  matches: {matches}\n"
        ))
        .expect("test group parses")
    }

    fn ms(millis: i64) -> pbjson_types::Duration {
        pbjson_types::Duration {
            seconds: millis / 1000,
            nanos: (millis % 1000) as i32 * 1_000_000,
        }
    }

    fn retry_of(fields: &str) -> Option<api::Retry> {
        route_settings(&mk_policy(fields), None).retry
    }

    fn attempts(n: u32) -> api::Retry {
        api::Retry {
            attempts: n,
            ..Default::default()
        }
    }

    #[test]
    fn timeout() {
        for (fields, want) in [
            ("timeout: 5s", Some(ms(5_000))),
            ("timeout: 250ms", Some(ms(250))),
            ("timeout: 1m30s", Some(ms(90_000))),
            ("", None),
            ("timeout: soon", None),
        ] {
            assert_eq!(
                route_settings(&mk_policy(fields), None).timeout,
                want,
                "{fields}"
            );
        }
    }

    #[test]
    fn retry_fields() {
        for (fields, want) in [
            ("", None),
            ("retries: {attempts: 3}", Some(attempts(3))),
            (
                "retries: {attempts: 2, perTryTimeout: 1s}",
                Some(api::Retry {
                    per_try_timeout: Some(ms(1_000)),
                    ..attempts(2)
                }),
            ),
            (
                "retries: {attempts: 2, perTryTimeout: 1d}",
                Some(attempts(2)),
            ),
            (
                "retries: {attempts: 2, retryOn: [5xx, gateway-error, reset, connect-failure, retriable-4xx]}",
                Some(api::Retry {
                    retry_on: [
                        "5xx",
                        "gateway-error",
                        "reset",
                        "connect-failure",
                        "retriable-4xx",
                    ]
                    .map(String::from)
                    .to_vec(),
                    ..attempts(2)
                }),
            ),
            (
                "retries: {attempts: 2, statuses: [503, 429]}",
                Some(api::Retry {
                    statuses: vec![503, 429],
                    ..attempts(2)
                }),
            ),
            (
                "retries: {attempts: 2, grpcCodes: [14]}",
                Some(api::Retry {
                    grpc_codes: vec![14],
                    ..attempts(2)
                }),
            ),
            (
                "retries: {attempts: 2, maxReplayBodyBytes: 1024}",
                Some(api::Retry {
                    max_replay_body_bytes: 1024,
                    ..attempts(2)
                }),
            ),
        ] {
            assert_eq!(retry_of(fields), want, "{fields}");
        }
    }

    #[test]
    fn retry_backoff() {
        let backoff = |base, max| api::Retry {
            backoff: Some(api::Backoff { base, max }),
            ..attempts(2)
        };
        for (fields, want) in [
            (
                "{base: 25ms, max: 250ms}",
                backoff(Some(ms(25)), Some(ms(250))),
            ),
            ("{base: 100ms}", backoff(Some(ms(100)), None)),
            ("{max: 2s}", backoff(None, Some(ms(2_000)))),
            ("{base: fast, max: 1s}", backoff(None, Some(ms(1_000)))),
            ("{}", backoff(None, None)),
        ] {
            let policy = format!("retries: {{attempts: 2, backoff: {fields}}}");
            assert_eq!(retry_of(&policy), Some(want), "{fields}");
        }
    }

    #[test]
    fn retry_budget() {
        let budget = |percent, min_per_second, window| api::Retry {
            budget: Some(api::RetryBudget {
                percent,
                min_per_second,
                window,
            }),
            ..attempts(2)
        };
        for (fields, want) in [
            (
                "{percent: 20, minPerSecond: 5, window: 30s}",
                budget(20.0, 5, Some(ms(30_000))),
            ),
            ("{percent: 12.5}", budget(12.5, 10, None)),
            ("{percent: 0, minPerSecond: 0}", budget(0.0, 0, None)),
        ] {
            let policy = format!("retries: {{attempts: 2, budget: {fields}}}");
            assert_eq!(retry_of(&policy), Some(want), "{fields}");
        }
    }

    #[test]
    fn circuit_breaker() {
        for (fields, want) in [
            ("", None),
            (
                "circuitBreaker: {consecutiveFailures: 5}",
                Some(api::CircuitBreaker {
                    consecutive_failures: 5,
                    ..Default::default()
                }),
            ),
            (
                "circuitBreaker: {consecutiveFailures: 7, baseEjectionTime: 30s, maxEjectionTime: 5m, maxEjectionPercent: 25, maxConcurrentRequests: 1000}",
                Some(api::CircuitBreaker {
                    consecutive_failures: 7,
                    base_ejection_time: Some(ms(30_000)),
                    max_ejection_time: Some(ms(300_000)),
                    max_ejection_percent: 25,
                    max_concurrent_requests: 1000,
                }),
            ),
        ] {
            assert_eq!(backend_settings(&mk_policy(fields)).1, want, "{fields}");
        }
    }

    #[test]
    fn balancer_types() {
        let kind = |k| Some(api::Balancer { kind: Some(k) });
        let ring = |k| kind(Kind::RingHash(api::RingHash { key: Some(k) }));
        for (fields, want) in [
            ("", None),
            (
                "loadBalancer: {}",
                kind(Kind::PeakEwma(api::PeakEwma { decay: None })),
            ),
            (
                "loadBalancer: {type: PeakEwma, decay: 5s}",
                kind(Kind::PeakEwma(api::PeakEwma {
                    decay: Some(ms(5_000)),
                })),
            ),
            (
                "loadBalancer: {type: RoundRobin}",
                kind(Kind::RoundRobin(api::RoundRobin {})),
            ),
            (
                "loadBalancer: {type: LeastRequest}",
                kind(Kind::LeastRequest(api::LeastRequest {})),
            ),
            (
                "loadBalancer: {type: RingHash, hashOn: {header: X-User}}",
                ring(Key::Header("x-user".into())),
            ),
            (
                "loadBalancer: {type: RingHash, hashOn: {cookie: Session}}",
                ring(Key::Cookie("Session".into())),
            ),
            (
                "loadBalancer: {type: RingHash, hashOn: {sourceIp: true}}",
                ring(Key::SourceIp(true)),
            ),
            ("loadBalancer: {type: RingHash}", None),
            (
                "loadBalancer: {type: RingHash, hashOn: {sourceIp: false}}",
                None,
            ),
        ] {
            assert_eq!(backend_settings(&mk_policy(fields)).0, want, "{fields}");
        }
    }

    #[test]
    fn fault() {
        let delay = Some(api::FaultDelay {
            percent: 10.0,
            delay: Some(ms(2_000)),
        });
        let abort = |percent, error| {
            Some(api::FaultAbort {
                percent,
                error: Some(error),
            })
        };
        for (fields, want) in [
            ("", None),
            ("fault: {}", None),
            (
                "fault: {delay: {percent: 10, duration: 2s}}",
                Some(api::Fault { delay, abort: None }),
            ),
            (
                "fault: {abort: {percent: 5, httpStatus: 503}}",
                Some(api::Fault {
                    delay: None,
                    abort: abort(5.0, Error::HttpStatus(503)),
                }),
            ),
            (
                "fault: {abort: {percent: 0.5, grpcCode: 14}}",
                Some(api::Fault {
                    delay: None,
                    abort: abort(0.5, Error::GrpcCode(14)),
                }),
            ),
            (
                "fault: {delay: {percent: 10, duration: 2s}, abort: {percent: 5, httpStatus: 500}}",
                Some(api::Fault {
                    delay,
                    abort: abort(5.0, Error::HttpStatus(500)),
                }),
            ),
            ("fault: {delay: {percent: 10, duration: later}}", None),
            (
                "fault: {abort: {percent: 5, httpStatus: 503, grpcCode: 14}}",
                None,
            ),
        ] {
            assert_eq!(
                route_settings(&mk_policy(fields), None).fault,
                want,
                "{fields}"
            );
        }
    }

    #[test]
    fn rate_limit_is_enforced_inbound_with_burst_defaulting_to_the_rate() {
        let limit = |requests_per_second, burst| {
            Some(api::RateLimit {
                requests_per_second,
                burst,
            })
        };
        for (fields, want) in [
            ("", None),
            ("rateLimit: {requestsPerSecond: 100}", limit(100, 100)),
            (
                "rateLimit: {requestsPerSecond: 100, burst: 250}",
                limit(100, 250),
            ),
            ("rateLimit: {requestsPerSecond: 0}", None),
        ] {
            let policy = mk_policy(fields);
            assert_eq!(inbound_rate_limit(&policy), want, "{fields}");
            assert_eq!(route_settings(&policy, None), RouteSettings::default());
        }
    }

    #[test]
    fn mirror() {
        for (fields, want) in [
            ("", None),
            (
                "mirror: {service: web-shadow}",
                Some(("web-shadow".into(), 100.0)),
            ),
            (
                "mirror: {service: web-shadow, percent: 12.5}",
                Some(("web-shadow".into(), 12.5)),
            ),
        ] {
            assert_eq!(
                route_settings(&mk_policy(fields), None).mirror,
                want,
                "{fields}"
            );
        }
    }

    #[test]
    fn a_route_replaces_only_the_fields_it_sets() {
        let policy = mk_policy(
            "timeout: 5s
retries: {attempts: 3, retryOn: [5xx]}
fault: {abort: {percent: 5, httpStatus: 503}}
mirror: {service: web-shadow, percent: 10}
routes:
- {httpRouteGroup: web-routes, matches: [search], timeout: 30s}
- {httpRouteGroup: web-routes, matches: [health], fault: {}, retries: {attempts: 1}}
- {httpRouteGroup: web-routes, matches: [upload], mirror: {service: web-upload-shadow}}",
        );
        let service = route_settings(&policy, None);
        assert_eq!(
            service,
            RouteSettings {
                timeout: Some(ms(5_000)),
                retry: Some(api::Retry {
                    retry_on: vec!["5xx".into()],
                    ..attempts(3)
                }),
                fault: Some(api::Fault {
                    delay: None,
                    abort: Some(api::FaultAbort {
                        percent: 5.0,
                        error: Some(Error::HttpStatus(503)),
                    }),
                }),
                mirror: Some(("web-shadow".into(), 10.0)),
            }
        );
        for (route, want) in [
            (
                Some(0),
                RouteSettings {
                    timeout: Some(ms(30_000)),
                    ..service.clone()
                },
            ),
            (
                Some(1),
                RouteSettings {
                    fault: None,
                    retry: Some(attempts(1)),
                    ..service.clone()
                },
            ),
            (
                Some(2),
                RouteSettings {
                    mirror: Some(("web-upload-shadow".into(), 100.0)),
                    ..service.clone()
                },
            ),
            (Some(3), service.clone()),
        ] {
            assert_eq!(route_settings(&policy, route), want, "route {route:?}");
        }
    }

    #[test]
    fn route_matches_resolve_in_route_order() {
        let policy = mk_policy(
            "routes:
- {httpRouteGroup: web-routes, matches: [post-items, get-items], timeout: 1s}
- {httpRouteGroup: web-routes, matches: [nope], timeout: 1s}",
        );
        let group = mk_group(
            "[{name: get-items, pathRegex: /items, methods: [GET]}, {name: post-items, methods: [post]}]",
        );
        assert_eq!(
            route_matches(&policy, 0, Some(&group)),
            Ok(vec![
                api::HttpMatch {
                    methods: vec!["POST".into()],
                    ..Default::default()
                },
                api::HttpMatch {
                    path_regex: "/items".into(),
                    methods: vec!["GET".into()],
                    headers: vec![],
                },
            ])
        );
        assert_eq!(
            route_matches(&policy, 1, Some(&group)),
            Err(
                "HTTPRouteGroup \"web-routes\" has no match \"nope\" (spec.routes[1].matches[0])"
                    .into()
            )
        );
        assert_eq!(
            route_matches(&policy, 0, None),
            Err("no HTTPRouteGroup \"web-routes\" (spec.routes[0].httpRouteGroup)".into())
        );
        assert_eq!(
            route_matches(&policy, 2, Some(&group)),
            Err("no spec.routes[2]: the policy has 2 route(s)".into())
        );
    }

    #[test]
    fn http_match_normalizes_methods_and_header_names() {
        let group = mk_group(
            "[{name: a, pathRegex: '/api/.*', methods: [get, HEAD], headers: [{X-Canary: 'true'}]}, {name: b, methods: [GET, '*']}, {name: c}]",
        );
        let got: Vec<api::HttpMatch> = group.spec.matches.iter().map(http_match).collect();
        assert_eq!(
            got,
            [
                api::HttpMatch {
                    path_regex: "/api/.*".into(),
                    methods: vec!["GET".into(), "HEAD".into()],
                    headers: vec![api::HeaderMatch {
                        name: "x-canary".into(),
                        value_regex: "true".into(),
                    }],
                },
                api::HttpMatch::default(),
                api::HttpMatch::default(),
            ]
        );
    }
}
