//! From `trellis.proxy.v1` messages to the validated model. An error names the field
//! (`routes[0].matches[1].path_regex`) and is sent back to the control plane as the NACK
//! reason; the proxy keeps its last good config.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use trellis_proxy_api::v1 as api;

use super::model::*;
use crate::tls::SpiffeId;

/// Why a config message was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

pub(super) type Result<T> = std::result::Result<T, ConfigError>;

pub(super) fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T> {
    Err(ConfigError {
        field: field.into(),
        message: message.into(),
    })
}

const DEFAULT_EWMA_DECAY: Duration = Duration::from_secs(10);
const DEFAULT_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(25),
    max: Duration::from_millis(250),
};
const DEFAULT_BUDGET: RetryBudget = RetryBudget {
    ratio: 0.2,
    min_per_second: 10,
    window: Duration::from_secs(10),
};
const DEFAULT_MAX_REPLAY_BODY: usize = 64 * 1024;

impl TryFrom<api::OutboundConfig> for Outbound {
    type Error = ConfigError;

    fn try_from(config: api::OutboundConfig) -> Result<Self> {
        let mut backends = HashMap::new();
        for (i, b) in config.backends.into_iter().enumerate() {
            let field = format!("backends[{i}]");
            let backend = backend(b, &field)?;
            if backends.contains_key(&*backend.name) {
                return err(
                    format!("{field}.name"),
                    format!("duplicate backend {:?}", backend.name),
                );
            }
            backends.insert(backend.name.to_string(), Arc::new(backend));
        }
        let routes = config
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, r)| route(r, &format!("routes[{i}]"), &backends).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Outbound {
            version: config.version,
            authority: config.authority.into(),
            protocol: protocol(config.protocol, "protocol")?,
            routes,
            rate_limit: config
                .rate_limit
                .map(|r| rate_limit(r, "rate_limit"))
                .transpose()?,
        })
    }
}

pub(super) fn protocol(value: i32, field: &str) -> Result<Protocol> {
    Ok(match api::ProtocolHint::try_from(value) {
        Ok(api::ProtocolHint::Unspecified) => Protocol::Detect,
        Ok(api::ProtocolHint::Http1) => Protocol::Http1,
        Ok(api::ProtocolHint::Http2) => Protocol::Http2,
        Ok(api::ProtocolHint::Grpc) => Protocol::Grpc,
        Ok(api::ProtocolHint::Opaque) => Protocol::Opaque,
        Err(_) => return err(field, format!("unknown protocol {value}")),
    })
}

fn route(r: api::Route, field: &str, backends: &HashMap<String, Arc<Backend>>) -> Result<Route> {
    let matches = r
        .matches
        .into_iter()
        .enumerate()
        .map(|(i, m)| http_match(m, &format!("{field}.matches[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let mut weighted = Vec::new();
    for (i, wb) in r.backends.into_iter().enumerate() {
        let Some(backend) = backends.get(&wb.backend) else {
            return err(
                format!("{field}.backends[{i}].backend"),
                format!("no backend named {:?}", wb.backend),
            );
        };
        if wb.weight > 0 {
            weighted.push((backend.clone(), wb.weight));
        }
    }
    let mirror = match r.mirror {
        None => None,
        Some(m) => {
            let Some(backend) = backends.get(&m.backend) else {
                return err(
                    format!("{field}.mirror.backend"),
                    format!("no backend named {:?}", m.backend),
                );
            };
            Some(Mirror {
                backend: backend.clone(),
                ratio: percent(m.percent, &format!("{field}.mirror.percent"))?,
            })
        }
    };
    Ok(Route {
        name: r.name.into(),
        matches,
        backends: weighted,
        unavailable_reason: r.unavailable_reason,
        timeout: r
            .timeout
            .map(|d| duration(d, &format!("{field}.timeout")))
            .transpose()?,
        retry: r
            .retry
            .map(|x| retry(x, &format!("{field}.retry")))
            .transpose()?,
        fault: r
            .fault
            .map(|x| fault(x, &format!("{field}.fault")))
            .transpose()?,
        mirror,
        rate_limit: r
            .rate_limit
            .map(|x| rate_limit(x, &format!("{field}.rate_limit")))
            .transpose()?,
    })
}

pub(super) fn http_match(m: api::HttpMatch, field: &str) -> Result<HttpMatch> {
    let path = match m.path_regex.as_str() {
        "" => None,
        re => Some(anchored(
            re,
            &format!("^(?:{re})"),
            &format!("{field}.path_regex"),
        )?),
    };
    let methods = m
        .methods
        .iter()
        .enumerate()
        .map(|(i, name)| {
            http::Method::from_bytes(name.as_bytes()).or_else(|_| {
                err(
                    format!("{field}.methods[{i}]"),
                    format!("{name:?} is not an HTTP method"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let headers = m
        .headers
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let at = format!("{field}.headers[{i}]");
            let name = http::HeaderName::from_bytes(h.name.as_bytes()).or_else(|_| {
                err(
                    format!("{at}.name"),
                    format!("{:?} is not a header name", h.name),
                )
            })?;
            let re = anchored(
                &h.value_regex,
                &format!("^(?:{})$", h.value_regex),
                &format!("{at}.value_regex"),
            )?;
            Ok((name, re))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(HttpMatch {
        path,
        methods,
        headers,
    })
}

/// Compiles `wrapped` (an anchored form of `written`), reporting errors about `written`.
fn anchored(written: &str, wrapped: &str, field: &str) -> Result<Regex> {
    Regex::new(wrapped).or_else(|e| {
        let text = e.to_string();
        let last = text.lines().last().unwrap_or_default().trim();
        let reason = last.strip_prefix("error: ").unwrap_or(last).to_owned();
        err(field, format!("invalid regex {written:?}: {reason}"))
    })
}

fn backend(b: api::Backend, field: &str) -> Result<Backend> {
    if b.name.is_empty() {
        return err(format!("{field}.name"), "required");
    }
    let endpoints = b
        .endpoints
        .into_iter()
        .enumerate()
        .map(|(i, e)| endpoint(e, &format!("{field}.endpoints[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let balancer = match b.balancer.and_then(|x| x.kind) {
        None => Balancer::PeakEwma {
            decay: DEFAULT_EWMA_DECAY,
        },
        Some(api::balancer::Kind::PeakEwma(p)) => Balancer::PeakEwma {
            decay: p
                .decay
                .map(|d| duration(d, &format!("{field}.balancer.peak_ewma.decay")))
                .transpose()?
                .unwrap_or(DEFAULT_EWMA_DECAY),
        },
        Some(api::balancer::Kind::RoundRobin(_)) => Balancer::RoundRobin,
        Some(api::balancer::Kind::LeastRequest(_)) => Balancer::LeastRequest,
        Some(api::balancer::Kind::RingHash(h)) => Balancer::RingHash(match h.key {
            Some(api::ring_hash::Key::Header(name)) => {
                HashKey::Header(http::HeaderName::from_bytes(name.as_bytes()).or_else(|_| {
                    err(
                        format!("{field}.balancer.ring_hash.header"),
                        format!("{name:?} is not a header name"),
                    )
                })?)
            }
            Some(api::ring_hash::Key::Cookie(name)) if !name.is_empty() => HashKey::Cookie(name),
            Some(api::ring_hash::Key::SourceIp(true)) => HashKey::SourceIp,
            _ => {
                return err(
                    format!("{field}.balancer.ring_hash"),
                    "name a header, a cookie or source_ip",
                );
            }
        }),
    };
    let circuit_breaker = b
        .circuit_breaker
        .map(|cb| circuit_breaker(cb, &format!("{field}.circuit_breaker")))
        .transpose()?;
    Ok(Backend {
        name: b.name.into(),
        endpoints,
        balancer,
        circuit_breaker,
    })
}

fn endpoint(e: api::Endpoint, field: &str) -> Result<Endpoint> {
    let Some(addr) = e.address else {
        return err(format!("{field}.address"), "required");
    };
    let identity = if e.identity.is_empty() {
        None
    } else {
        match e.identity.parse::<SpiffeId>() {
            Ok(id) => Some(Arc::new(id)),
            Err(not) => return err(format!("{field}.identity"), not.to_string()),
        }
    };
    Ok(Endpoint {
        address: socket_address(&addr, &format!("{field}.address"))?,
        identity,
        labels: e.labels.into_iter().collect(),
    })
}

fn socket_address(a: &api::SocketAddress, field: &str) -> Result<SocketAddr> {
    let ip: IpAddr = a.ip.parse().or_else(|_| {
        err(
            format!("{field}.ip"),
            format!("{:?} is not an IP address", a.ip),
        )
    })?;
    let port = u16::try_from(a.port).ok().filter(|p| *p != 0).map_or_else(
        || {
            err(
                format!("{field}.port"),
                format!("{} is not a port (1-65535)", a.port),
            )
        },
        Ok,
    )?;
    Ok(SocketAddr::new(ip, port))
}

fn retry(r: api::Retry, field: &str) -> Result<Retry> {
    if r.attempts == 0 {
        return err(
            format!("{field}.attempts"),
            "must be at least 1 (the first attempt counts)",
        );
    }
    let on = r
        .retry_on
        .iter()
        .enumerate()
        .map(|(i, name)| match name.as_str() {
            "5xx" => Ok(RetryOn::ServerError),
            "gateway-error" => Ok(RetryOn::GatewayError),
            "reset" => Ok(RetryOn::Reset),
            "connect-failure" => Ok(RetryOn::ConnectFailure),
            "retriable-4xx" => Ok(RetryOn::Retriable4xx),
            other => err(
                format!("{field}.retry_on[{i}]"),
                format!(
                    "unknown condition {other:?}; use one of {}",
                    RetryOn::NAMES.join(", ")
                ),
            ),
        })
        .collect::<Result<Vec<_>>>()?;
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .map(|(i, s)| status(*s, &format!("{field}.statuses[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    for (i, code) in r.grpc_codes.iter().enumerate() {
        grpc_code(*code, &format!("{field}.grpc_codes[{i}]"))?;
    }
    let backoff = match r.backoff {
        None => DEFAULT_BACKOFF,
        Some(b) => Backoff {
            base: b
                .base
                .map(|d| duration(d, &format!("{field}.backoff.base")))
                .transpose()?
                .unwrap_or(DEFAULT_BACKOFF.base),
            max: b
                .max
                .map(|d| duration(d, &format!("{field}.backoff.max")))
                .transpose()?
                .unwrap_or(DEFAULT_BACKOFF.max),
        },
    };
    let budget = match r.budget {
        None => DEFAULT_BUDGET,
        Some(b) => RetryBudget {
            ratio: percent(b.percent, &format!("{field}.budget.percent"))?,
            min_per_second: b.min_per_second,
            window: b
                .window
                .map(|d| duration(d, &format!("{field}.budget.window")))
                .transpose()?
                .unwrap_or(DEFAULT_BUDGET.window),
        },
    };
    Ok(Retry {
        attempts: r.attempts,
        per_try_timeout: r
            .per_try_timeout
            .map(|d| duration(d, &format!("{field}.per_try_timeout")))
            .transpose()?,
        on,
        statuses,
        grpc_codes: r.grpc_codes,
        backoff,
        budget,
        max_replay_body_bytes: match r.max_replay_body_bytes {
            0 => DEFAULT_MAX_REPLAY_BODY,
            n => n as usize,
        },
    })
}

fn fault(f: api::Fault, field: &str) -> Result<Fault> {
    let delay = f
        .delay
        .map(|d| {
            let ratio = percent(d.percent, &format!("{field}.delay.percent"))?;
            let Some(delay) = d.delay else {
                return err(format!("{field}.delay.delay"), "required");
            };
            Ok((ratio, duration(delay, &format!("{field}.delay.delay"))?))
        })
        .transpose()?;
    let abort = f
        .abort
        .map(|a| {
            let ratio = percent(a.percent, &format!("{field}.abort.percent"))?;
            let abort = match a.error {
                Some(api::fault_abort::Error::HttpStatus(s)) => {
                    Abort::Http(status(s, &format!("{field}.abort.http_status"))?)
                }
                Some(api::fault_abort::Error::GrpcCode(c)) => {
                    Abort::Grpc(grpc_code(c, &format!("{field}.abort.grpc_code"))?)
                }
                None => {
                    return err(
                        format!("{field}.abort"),
                        "name an http_status or a grpc_code",
                    );
                }
            };
            Ok((ratio, abort))
        })
        .transpose()?;
    Ok(Fault { delay, abort })
}

pub(super) fn rate_limit(r: api::RateLimit, field: &str) -> Result<RateLimit> {
    if r.requests_per_second == 0 {
        return err(format!("{field}.requests_per_second"), "must be at least 1");
    }
    Ok(RateLimit {
        per_second: r.requests_per_second,
        burst: r.burst.max(1),
    })
}

fn circuit_breaker(cb: api::CircuitBreaker, field: &str) -> Result<CircuitBreaker> {
    let base = cb
        .base_ejection_time
        .map(|d| duration(d, &format!("{field}.base_ejection_time")))
        .transpose()?
        .unwrap_or(Duration::from_secs(30));
    let max = cb
        .max_ejection_time
        .map(|d| duration(d, &format!("{field}.max_ejection_time")))
        .transpose()?
        .unwrap_or(Duration::from_secs(300));
    if max < base {
        return err(
            format!("{field}.max_ejection_time"),
            "must not be shorter than base_ejection_time",
        );
    }
    let max_ejection_ratio = match cb.max_ejection_percent {
        0 => 0.5,
        p if p <= 100 => f64::from(p) / 100.0,
        p => {
            return err(
                format!("{field}.max_ejection_percent"),
                format!("must be 0-100, got {p}"),
            );
        }
    };
    Ok(CircuitBreaker {
        consecutive_failures: cb.consecutive_failures,
        base_ejection: base,
        max_ejection: max,
        max_ejection_ratio,
        max_concurrent_requests: Some(cb.max_concurrent_requests).filter(|n| *n > 0),
    })
}

fn duration(d: pbjson_types::Duration, field: &str) -> Result<Duration> {
    Duration::try_from(d).or_else(|_| err(field, "must be a positive duration"))
}

fn percent(p: f64, field: &str) -> Result<f64> {
    if (0.0..=100.0).contains(&p) {
        Ok(p / 100.0)
    } else {
        err(field, format!("must be between 0 and 100, got {p}"))
    }
}

fn status(code: u32, field: &str) -> Result<http::StatusCode> {
    u16::try_from(code)
        .ok()
        .and_then(|c| http::StatusCode::from_u16(c).ok())
        .map_or_else(
            || err(field, format!("{code} is not an HTTP status (100-599)")),
            Ok,
        )
}

fn grpc_code(code: u32, field: &str) -> Result<u32> {
    if code <= 16 {
        Ok(code)
    } else {
        err(field, format!("{code} is not a gRPC status code (0-16)"))
    }
}

#[cfg(test)]
mod tests;
