//! MeshConfig rules.

use super::{
    Problem, check_port, is_dns1123_label, is_dns1123_subdomain, is_http_url, parse_duration,
};
use crate::trellis::mesh_config::{DEFAULT_NAME, LOG_LEVELS, MeshConfig, MetricsProvider};

const MIN_WORKLOAD_LIFETIME_SECS: u64 = 600;

pub(super) fn validate(mc: &MeshConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(name) = mc
        .metadata
        .name
        .as_deref()
        .filter(|n| !n.is_empty() && *n != DEFAULT_NAME)
    {
        problems.push(Problem::error(
            "metadata.name",
            format!("only the MeshConfig named {DEFAULT_NAME:?} is read; rename {name:?} to {DEFAULT_NAME:?}"),
        ));
    }
    let spec = &mc.spec;
    if !is_dns1123_subdomain(&spec.trust_domain) {
        problems.push(Problem::error(
            "spec.trustDomain",
            format!(
                "{:?} is not a valid trust domain: use a lowercase DNS name such as cluster.local (no scheme, no port)",
                spec.trust_domain
            ),
        ));
    }
    let um = &spec.unmeshed_clients;
    for (i, ns) in um.allowed_namespaces.iter().enumerate() {
        if !is_dns1123_label(ns) {
            problems.push(Problem::error(
                format!("spec.unmeshedClients.allowedNamespaces[{i}]"),
                format!("{ns:?} is not a valid namespace name"),
            ));
        }
    }
    problems.extend(ports(
        "spec.unmeshedClients.allowedPorts",
        &um.allowed_ports,
    ));

    let certs = &spec.certificates;
    let workload = lifetime(
        "spec.certificates.workloadLifetime",
        &certs.workload_lifetime,
        &mut problems,
    );
    let root = lifetime(
        "spec.certificates.rootLifetime",
        &certs.root_lifetime,
        &mut problems,
    );
    if let Some(w) = workload.filter(|w| w.as_secs() < MIN_WORKLOAD_LIFETIME_SECS) {
        problems.push(Problem::error(
            "spec.certificates.workloadLifetime",
            format!("{w:?} is too short: use at least 10m"),
        ));
    }
    if let (Some(w), Some(r)) = (workload, root)
        && r <= w
    {
        problems.push(Problem::error(
            "spec.certificates.rootLifetime",
            format!(
                "must be longer than workloadLifetime ({}), got {}",
                certs.workload_lifetime, certs.root_lifetime
            ),
        ));
    }

    let proxy = &spec.proxy;
    let listeners = [
        ("spec.proxy.outboundPort", proxy.outbound_port),
        ("spec.proxy.inboundPort", proxy.inbound_port),
        ("spec.proxy.adminPort", proxy.admin_port),
    ];
    for (i, (field, port)) in listeners.iter().enumerate() {
        problems.extend(check_port((*field).to_owned(), *port));
        if let Some((other, _)) = listeners[..i].iter().find(|(_, p)| p == port) {
            problems.push(Problem::error(
                *field,
                format!("{port} is already {other}; each listener needs its own port"),
            ));
        }
    }
    if !LOG_LEVELS.contains(&proxy.log_level.as_str()) {
        problems.push(Problem::error(
            "spec.proxy.logLevel",
            format!(
                "{:?} is not a log level; use one of {}",
                proxy.log_level,
                LOG_LEVELS.join(", ")
            ),
        ));
    }
    problems.extend(ports(
        "spec.proxy.skipOutboundPorts",
        &proxy.skip_outbound_ports,
    ));
    problems.extend(ports(
        "spec.proxy.skipInboundPorts",
        &proxy.skip_inbound_ports,
    ));

    let metrics = &spec.metrics;
    match (metrics.provider, metrics.prometheus_url.as_deref()) {
        (MetricsProvider::Prometheus, None | Some("")) => problems.push(Problem::error(
            "spec.metrics.prometheusUrl",
            "required when provider is Prometheus, e.g. http://prometheus.monitoring:9090",
        )),
        (_, Some(url)) if !is_http_url(url) => problems.push(Problem::error(
            "spec.metrics.prometheusUrl",
            format!("{url:?} is not an http(s) URL, e.g. http://prometheus.monitoring:9090"),
        )),
        _ => {}
    }
    if let Some(tracing) = &spec.tracing {
        if !is_http_url(&tracing.otlp_endpoint) {
            problems.push(Problem::error(
                "spec.tracing.otlpEndpoint",
                format!(
                    "{:?} is not an http(s) URL, e.g. http://otel-collector.observability:4317",
                    tracing.otlp_endpoint
                ),
            ));
        }
        if !(0.0..=100.0).contains(&tracing.sampling_percent) {
            problems.push(Problem::error(
                "spec.tracing.samplingPercent",
                format!(
                    "must be between 0 and 100, got {}",
                    tracing.sampling_percent
                ),
            ));
        }
    }
    problems
}

fn lifetime(field: &str, value: &str, problems: &mut Vec<Problem>) -> Option<std::time::Duration> {
    parse_duration(value)
        .map_err(|message| problems.push(Problem::error(field, message)))
        .ok()
}

fn ports(field: &str, ports: &[i64]) -> Vec<Problem> {
    ports
        .iter()
        .enumerate()
        .filter_map(|(i, p)| check_port(format!("{field}[{i}]"), *p))
        .collect()
}
