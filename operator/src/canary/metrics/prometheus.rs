//! The Prometheus provider: a metric's PromQL (its `query`, or the built-in one for
//! `request-success-rate` / `request-duration`) with the Canary's variables filled in,
//! sent to `GET <address>/api/v1/query`; the answer must be one number.
//!
//! ```text
//! render(query, vars)   {{ namespace }} {{ service }} {{ backend }} {{ stable }}
//!                       {{ target }} {{ interval }}   (spaces inside the braces optional)
//! query(address, promql) -> answer(json)
//!   one sample / a scalar          -> Value
//!   no series, NaN, +-Inf          -> NoData
//!   several series, a range vector, status "error", HTTP or connection errors -> Error
//! ```
//!
//! Only `http://` addresses: the operator carries no HTTPS client (Prometheus is usually
//! reached in the cluster or through a local sidecar).

use std::time::Duration;

use serde_json::Value;
use smi_crds::trellis::canary::{Metric, REQUEST_DURATION, REQUEST_SUCCESS_RATE};
use thiserror::Error;

use super::measure::Measurement;
use super::{client, show_duration};

/// How long Prometheus may take to answer a query.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// `request-success-rate`: percent of the requests client proxies sent to the canary
/// backend (any port) that did not fail.
pub const SUCCESS_RATE_QUERY: &str = r#"sum(rate(trellis_requests_total{direction="outbound",backend=~"{{ namespace }}/{{ backend }}:.*",classification="success"}[{{ interval }}])) / sum(rate(trellis_requests_total{direction="outbound",backend=~"{{ namespace }}/{{ backend }}:.*"}[{{ interval }}])) * 100"#;

/// `request-duration`: p99 in milliseconds of the requests client proxies sent to the
/// canary backend (any port).
pub const DURATION_QUERY: &str = r#"histogram_quantile(0.99, sum by (le) (rate(trellis_request_duration_seconds_bucket{direction="outbound",backend=~"{{ namespace }}/{{ backend }}:.*"}[{{ interval }}]))) * 1000"#;

/// The variables of a query.
pub const VARIABLES: [&str; 6] = [
    "namespace",
    "service",
    "backend",
    "stable",
    "target",
    "interval",
];

/// What a query's variables stand for.
#[derive(Clone, Debug, PartialEq)]
pub struct Vars<'a> {
    /// The Canary's namespace.
    pub namespace: &'a str,
    /// The root Service.
    pub service: &'a str,
    /// The canary backend Service.
    pub backend: &'a str,
    /// The stable backend Service.
    pub stable: &'a str,
    /// The version under analysis.
    pub target: &'a str,
    /// The metric's window, as a PromQL duration (`30s`, `1m`).
    pub interval: Duration,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("unknown variable {{{{ {name} }}}}; known: {}", VARIABLES.join(", "))]
    Unknown { name: String },
    #[error("{{{{ at byte {at} is not closed with }}}}")]
    Unclosed { at: usize },
}

/// The metric's PromQL before rendering: its `query`, or the built-in one for its name.
pub fn query_of(metric: &Metric) -> Result<&str, String> {
    match (&metric.query, metric.name.as_str()) {
        (Some(query), _) => Ok(query),
        (None, REQUEST_SUCCESS_RATE) => Ok(SUCCESS_RATE_QUERY),
        (None, REQUEST_DURATION) => Ok(DURATION_QUERY),
        (None, name) => Err(format!(
            "metric {name:?} has no query: only {REQUEST_SUCCESS_RATE} and {REQUEST_DURATION} \
             are built in"
        )),
    }
}

/// `template` with every `{{ variable }}` replaced.
pub fn render(template: &str, vars: &Vars) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let at = template.len() - rest.len() + open;
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(TemplateError::Unclosed { at })?;
        let name = after[..close].trim();
        let value = match name {
            "namespace" => vars.namespace.to_owned(),
            "service" => vars.service.to_owned(),
            "backend" => vars.backend.to_owned(),
            "stable" => vars.stable.to_owned(),
            "target" => vars.target.to_owned(),
            "interval" => show_duration(vars.interval),
            _ => {
                return Err(TemplateError::Unknown {
                    name: name.to_owned(),
                });
            }
        };
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs `promql` at the Prometheus server at `address` (`http://host:port[/prefix]`).
pub async fn query(address: &str, promql: &str, timeout: Duration) -> Measurement {
    let (authority, prefix) = match endpoint(address) {
        Ok(endpoint) => endpoint,
        Err(why) => return Measurement::Error(format!("Prometheus address {address:?}: {why}")),
    };
    let path = format!("{prefix}/api/v1/query?query={}", url_encode(promql));
    match client::get(&authority, &path, timeout).await {
        Ok(reply) => answer(address, reply.status.as_u16(), &reply.body),
        Err(why) => Measurement::Error(format!("Prometheus at {address}: {why}")),
    }
}

/// The authority to connect to (`host:port`, port 80 when omitted) and the path prefix.
fn endpoint(address: &str) -> Result<(String, String), String> {
    let Some(rest) = address.strip_prefix("http://") else {
        return Err(if address.starts_with("https://") {
            "https is not supported by the prometheus provider; use an http:// address".into()
        } else {
            "not an http:// URL (http://prometheus.monitoring:9090)".into()
        });
    };
    let (authority, prefix) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    if authority.is_empty() || prefix.starts_with('?') {
        return Err("not an http:// URL (http://prometheus.monitoring:9090)".into());
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty());
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, prefix.trim_end_matches('/').to_owned()))
}

/// Percent-encodes everything but the unreserved characters of RFC 3986.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Prometheus' answer (`status` code, JSON `body`) to an instant query as a measurement.
pub fn answer(address: &str, status: u16, body: &[u8]) -> Measurement {
    let error = |why: String| Measurement::Error(format!("Prometheus at {address}: {why}"));
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        let text = String::from_utf8_lossy(body);
        let said: String = text.trim().chars().take(200).collect();
        return error(format!("HTTP {status}, not the query API's JSON: {said:?}"));
    };
    if json["status"] != "success" {
        let kind = json["errorType"].as_str().unwrap_or("error");
        let message = json["error"].as_str().unwrap_or("(no message)");
        return error(format!(
            "the query failed (HTTP {status}, {kind}): {message}"
        ));
    }
    let data = &json["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([]) => {
                return Measurement::NoData(format!(
                    "the query returned no series from Prometheus at {address}"
                ));
            }
            Some([one]) => &one["value"],
            Some(many) => {
                return error(format!(
                    "the query returned {} series; aggregate it to one with sum() (or \
                     another aggregation); the first: {}",
                    many.len(),
                    many[0]["metric"]
                ));
            }
            None => return error("a vector answer without a result list".into()),
        },
        Some(other) => {
            return error(format!(
                "the query returned a {other}; it must return one number (an instant \
                 vector with one series, or a scalar)"
            ));
        }
        None => return error("an answer without data.resultType".into()),
    };
    let Some(value) = sample[1].as_str().and_then(number) else {
        return error(format!("a sample without a number: {sample}"));
    };
    if value.is_finite() {
        Measurement::Value(value)
    } else {
        Measurement::NoData(format!(
            "the query returned {} from Prometheus at {address} (no requests in the window?)",
            sample[1].as_str().unwrap_or_default()
        ))
    }
}

fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests;
