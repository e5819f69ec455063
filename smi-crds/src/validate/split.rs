//! TrafficSplit rules (SMI-SEMANTICS "Routing").

use super::names::SERVICE_RULE;
use super::{Problem, duplicates, is_dns1035_label, is_dns1123_label};
use crate::specs;
use crate::split::v1alpha4::TrafficSplitSpec;
use crate::weight::MAX_WEIGHT;

pub(super) fn validate(spec: &TrafficSplitSpec, namespace: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    problems.extend(root_service(&spec.service, namespace));
    for (i, m) in spec.matches.iter().enumerate() {
        if m.kind != crate::specs::http_route_group::KIND {
            problems.push(Problem::error(
                format!("spec.matches[{i}].kind"),
                format!("must be HTTPRouteGroup, got {:?}", m.kind),
            ));
        }
        if m.name.is_empty() {
            problems.push(Problem::error(
                format!("spec.matches[{i}].name"),
                "required: the name of an HTTPRouteGroup",
            ));
        }
        if let Some(group) = m
            .api_group
            .as_deref()
            .filter(|g| !g.is_empty() && *g != specs::GROUP)
        {
            problems.push(Problem::error(
                format!("spec.matches[{i}].apiGroup"),
                format!("must be {} (or omitted), got {group:?}", specs::GROUP),
            ));
        }
    }
    problems.extend(duplicates(
        &spec.matches,
        |m| &m.name,
        |i| format!("spec.matches[{i}].name"),
        "match",
    ));
    if spec.backends.is_empty() {
        problems.push(Problem::error(
            "spec.backends",
            "at least one backend is required: list the Services that receive the traffic",
        ));
    }
    for (i, b) in spec.backends.iter().enumerate() {
        let field = format!("spec.backends[{i}].service");
        if b.service.is_empty() {
            problems.push(Problem::error(
                field,
                "required: the name of a Service in this namespace",
            ));
        } else if !is_dns1035_label(&b.service) {
            problems.push(Problem::error(
                field,
                format!(
                    "{:?} is not a valid Service name: {SERVICE_RULE}",
                    b.service
                ),
            ));
        }
        if b.weight.whole().is_none() {
            problems.push(Problem::error(
                format!("spec.backends[{i}].weight"),
                format!(
                    "must be a whole number between 0 and {MAX_WEIGHT}, got {}",
                    b.weight
                ),
            ));
        }
    }
    problems.extend(duplicates(
        &spec.backends,
        |b| &b.service,
        |i| format!("spec.backends[{i}].service"),
        "backend",
    ));
    if !spec.backends.is_empty() && spec.backends.iter().all(|b| b.weight.value() == 0.0) {
        problems.push(Problem::warning(
            "spec.backends",
            format!(
                "every backend has weight 0: requests to {:?} get 503 until a weight is raised",
                spec.service
            ),
        ));
    }
    problems
}

/// `spec.service` is a Service name, or its FQDN in the split's own namespace.
fn root_service(service: &str, namespace: &str) -> Option<Problem> {
    const FIELD: &str = "spec.service";
    if service.is_empty() {
        return Some(Problem::error(
            FIELD,
            "required: the name of the root Service clients call",
        ));
    }
    let host = service.trim_end_matches('.').to_ascii_lowercase();
    let mut labels = host.split('.');
    let name = labels.next().unwrap_or_default();
    let ns = labels.next();
    let svc = labels.next();
    let invalid = || {
        Problem::error(
            FIELD,
            format!(
                "{service:?} is not a valid Service name: {SERVICE_RULE} \
                 (or <name>.<namespace>.svc.<cluster domain>)"
            ),
        )
    };
    if !is_dns1035_label(name) {
        return Some(invalid());
    }
    match (ns, svc) {
        (None, _) => None,
        (Some(ns), Some("svc")) if is_dns1123_label(ns) => (ns != namespace).then(|| {
            Problem::error(
                FIELD,
                format!(
                    "{service:?} is in namespace {ns:?}; a TrafficSplit splits a Service of its own \
                     namespace ({namespace:?}): create the TrafficSplit in {ns:?}"
                ),
            )
        }),
        _ => Some(invalid()),
    }
}
