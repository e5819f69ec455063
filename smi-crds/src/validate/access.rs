//! TrafficTarget rules (SMI-SEMANTICS "Access").

use super::names::SUBDOMAIN_RULE;
use super::{Problem, duplicates, is_dns1123_subdomain};
use crate::access::v1alpha3::TrafficTargetSpec;
use crate::access::{SERVICE_ACCOUNT, Subject, rule_kinds};

const RULE_KINDS: [&str; 3] = [
    rule_kinds::HTTP_ROUTE_GROUP,
    rule_kinds::TCP_ROUTE,
    rule_kinds::UDP_ROUTE,
];

pub(super) fn validate(spec: &TrafficTargetSpec, namespace: &str) -> Vec<Problem> {
    let mut problems = subject("spec.destination", &spec.destination);
    if let Some(ns) = spec
        .destination
        .namespace
        .as_deref()
        .filter(|ns| *ns != namespace)
    {
        problems.push(Problem::error(
            "spec.destination.namespace",
            format!(
                "{ns:?} differs from the TrafficTarget's namespace {namespace:?}; a TrafficTarget \
                 only grants access to its own namespace: create it in {ns:?}"
            ),
        ));
    }
    if spec.sources.is_empty() {
        problems.push(Problem::warning(
            "spec.sources",
            "no sources: this TrafficTarget allows no traffic",
        ));
    }
    for (i, s) in spec.sources.iter().enumerate() {
        problems.extend(subject(&format!("spec.sources[{i}]"), s));
    }
    problems.extend(duplicates(
        &spec.sources,
        |s| format!("{}/{}", s.namespace.as_deref().unwrap_or(namespace), s.name),
        |i| format!("spec.sources[{i}]"),
        "source",
    ));
    for (i, rule) in spec.rules.iter().enumerate() {
        if !RULE_KINDS.contains(&rule.kind.as_str()) {
            problems.push(Problem::error(
                format!("spec.rules[{i}].kind"),
                format!(
                    "must be one of {}, got {:?}",
                    RULE_KINDS.join(", "),
                    rule.kind
                ),
            ));
        }
        if rule.name.is_empty() {
            problems.push(Problem::error(
                format!("spec.rules[{i}].name"),
                "required: the name of the route resource",
            ));
        }
        if !rule.matches.is_empty() && rule.kind != rule_kinds::HTTP_ROUTE_GROUP {
            problems.push(Problem::error(
                format!("spec.rules[{i}].matches"),
                format!(
                    "matches name HTTPRouteGroup matches; a {} rule takes none (remove matches)",
                    rule.kind
                ),
            ));
        }
        problems.extend(duplicates(
            &rule.matches,
            |m| m,
            |k| format!("spec.rules[{i}].matches[{k}]"),
            "match",
        ));
    }
    problems.extend(duplicates(
        &spec.rules,
        |r| format!("{}/{}", r.kind, r.name),
        |i| format!("spec.rules[{i}]"),
        "rule",
    ));
    problems
}

fn subject(field: &str, s: &Subject) -> Vec<Problem> {
    let mut problems = Vec::new();
    if s.kind != SERVICE_ACCOUNT {
        problems.push(Problem::error(
            format!("{field}.kind"),
            format!("must be {SERVICE_ACCOUNT}, got {:?}", s.kind),
        ));
    }
    if s.name.is_empty() {
        problems.push(Problem::error(
            format!("{field}.name"),
            "required: the name of a ServiceAccount",
        ));
    } else if !is_dns1123_subdomain(&s.name) {
        problems.push(Problem::error(
            format!("{field}.name"),
            format!(
                "{:?} is not a valid ServiceAccount name: {SUBDOMAIN_RULE}",
                s.name
            ),
        ));
    }
    problems
}
