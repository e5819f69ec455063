//! Semantic validation beyond the schema.
//!
//! Each check returns [`Problem`]s naming the field path (`spec.backends[1].weight`) and
//! saying what would be valid. Checks look at one resource; checks across resources
//! (does the referenced Service exist?) belong to whoever holds the set of resources.

mod access;
mod canary;
mod duration;
mod mesh_config;
mod names;
mod specs;
mod split;
mod traffic_policy;

use std::fmt;

pub use duration::parse_duration;
pub use names::{is_dns1035_label, is_dns1123_label, is_dns1123_subdomain};

use crate::dynamic::Resource;

/// Namespace a resource without `metadata.namespace` is read in.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The resource is not accepted; the last good version stays in force.
    Error,
    /// The resource is accepted but probably does not do what was meant.
    Warning,
}

/// One finding about one field of one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// Field path, e.g. `spec.backends[1].weight`.
    pub field: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl Problem {
    pub fn error(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn warning(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.field, self.message),
            Severity::Warning => write!(f, "{}: warning: {}", self.field, self.message),
        }
    }
}

/// Every problem of one resource, in field order.
pub fn validate(resource: &Resource) -> Vec<Problem> {
    let mut problems = metadata(resource);
    let namespace = resource
        .metadata()
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    problems.extend(match resource {
        Resource::TrafficSplit(ts) => split::validate(&ts.spec, namespace),
        Resource::TrafficTarget(tt) => access::validate(&tt.spec, namespace),
        Resource::HTTPRouteGroup(g) => specs::validate_http_route_group(&g.spec.matches),
        Resource::TCPRoute(r) => specs::validate_ports(&r.spec.matches.ports),
        Resource::UDPRoute(r) => specs::validate_ports(&r.spec.matches.ports),
        Resource::MeshConfig(m) => mesh_config::validate(m),
        Resource::TrafficPolicy(p) => traffic_policy::validate(&p.spec),
        Resource::Canary(c) => canary::validate(&c.spec),
    });
    problems
}

fn metadata(resource: &Resource) -> Vec<Problem> {
    let meta = resource.metadata();
    let mut problems = Vec::new();
    match meta.name.as_deref() {
        None | Some("") => problems.push(Problem::error("metadata.name", "required")),
        Some(name) if !is_dns1123_subdomain(name) => problems.push(Problem::error(
            "metadata.name",
            format!("{name:?} is not a valid name: {}", names::SUBDOMAIN_RULE),
        )),
        Some(_) => {}
    }
    if let Some(ns) = meta.namespace.as_deref() {
        if !resource.is_namespaced() {
            problems.push(Problem::error(
                "metadata.namespace",
                format!(
                    "{} is cluster-scoped; remove the namespace",
                    resource.kind()
                ),
            ));
        } else if !is_dns1123_label(ns) {
            problems.push(Problem::error(
                "metadata.namespace",
                format!("{ns:?} is not a valid namespace: {}", names::LABEL_RULE),
            ));
        }
    }
    problems
}

/// Problems for list entries that repeat an earlier one: `key` gives the identity.
fn duplicates<'a, T, K: PartialEq + fmt::Display>(
    items: &'a [T],
    key: impl Fn(&'a T) -> K,
    field: impl Fn(usize) -> String,
    what: &str,
) -> Vec<Problem> {
    let keys: Vec<K> = items.iter().map(key).collect();
    let mut problems = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if let Some(first) = keys[..i].iter().position(|earlier| earlier == k) {
            problems.push(Problem::error(
                field(i),
                format!(
                    "duplicate {what} \"{k}\" (also {}); list each once",
                    field(first)
                ),
            ));
        }
    }
    problems
}

/// A port number check shared by routes and MeshConfig.
fn check_port(field: String, port: i64) -> Option<Problem> {
    (!(1..=65535).contains(&port)).then(|| {
        Problem::error(
            field,
            format!("must be a port number between 1 and 65535, got {port}"),
        )
    })
}

/// An `http://` or `https://` URL with something after the scheme (Prometheus, OTLP,
/// webhooks).
fn is_http_url(url: &str) -> bool {
    ["http://", "https://"].iter().any(|scheme| {
        url.strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty())
    })
}
