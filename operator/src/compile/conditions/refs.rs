//! Checks across resources: the Services and route resources an accepted TrafficSplit,
//! TrafficTarget, TrafficPolicy or Canary names, and what happens while one is missing.
//!
//! | resource      | reference                                   | reason when missing |
//! |---------------|---------------------------------------------|---------------------|
//! | TrafficSplit  | `spec.service` (root), `spec.backends[].service` | BackendNotFound |
//! | TrafficSplit  | `spec.matches[].name` (HTTPRouteGroup)      | RouteNotFound       |
//! | TrafficTarget | `spec.rules[]` (HTTPRouteGroup, TCPRoute, UDPRoute) and their `matches` | RouteNotFound |
//! | TrafficPolicy | `spec.service`, `spec.mirror.service`, `spec.routes[].mirror.service` | BackendNotFound |
//! | TrafficPolicy | `spec.routes[].httpRouteGroup` and `matches` | RouteNotFound      |
//! | Canary        | `spec.service` (root), `spec.stable`, `spec.canary` | BackendNotFound |

use std::fmt;

use smi_crds::access::{TrafficTarget, rule_kinds};
use smi_crds::conditions::reasons;
use smi_crds::specs::HTTPRouteGroup;
use smi_crds::split::TrafficSplit;
use smi_crds::trellis::canary::Canary;
use smi_crds::trellis::traffic_policy::{Mirror, TrafficPolicy};

use crate::index::{ObjKey, Reader, split_root};

/// One reference that does not resolve.
pub(super) struct Missing {
    pub reason: &'static str,
    /// Field path of the reference (`spec.backends[1].service`).
    pub field: String,
    /// What is missing, what would fix it, and what happens meanwhile.
    pub message: String,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn missing(reason: &'static str, field: String, message: String) -> Missing {
    Missing {
        reason,
        field,
        message,
    }
}

fn no_service(field: String, key: &ObjKey, meanwhile: &str) -> Missing {
    missing(
        reasons::BACKEND_NOT_FOUND,
        field,
        format!(
            "no Service {:?} in namespace {:?}: create it or fix the name; until then {meanwhile}",
            key.name, key.namespace
        ),
    )
}

fn no_route(field: String, kind: &str, key: &ObjKey, meanwhile: &str) -> Missing {
    missing(
        reasons::ROUTE_NOT_FOUND,
        field,
        format!(
            "no {kind} {:?} in namespace {:?}: create it or fix the name; until then {meanwhile}",
            key.name, key.namespace
        ),
    )
}

/// The match names of `names` that `group` does not have.
fn no_matches(
    field: impl Fn(usize) -> String,
    group: &HTTPRouteGroup,
    group_name: &str,
    names: &[String],
    meanwhile: &str,
) -> Vec<Missing> {
    let known: Vec<&str> = group.spec.matches.iter().map(|m| m.name.as_str()).collect();
    names
        .iter()
        .enumerate()
        .filter(|(_, n)| !known.contains(&n.as_str()))
        .map(|(k, n)| {
            missing(
                reasons::ROUTE_NOT_FOUND,
                field(k),
                format!(
                    "HTTPRouteGroup {group_name:?} has no match {n:?} (its matches: {}): fix the \
                     name or add the match; until then {meanwhile}",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
        .collect()
}

/// A split's root Service, backend Services and HTTPRouteGroups. A missing backend is
/// allowed (SMI Routing 2: a split is often committed before the new version's Service)
/// but reported; a missing group keeps the whole split from applying to any request.
pub(super) fn split(reader: &Reader<'_>, ns: &str, ts: &TrafficSplit) -> Vec<Missing> {
    let mut out = Vec::new();
    let root = split_root(ns, &ts.spec.service);
    if reader.service(&root).is_none() {
        out.push(no_service(
            "spec.service".into(),
            &root,
            "the split routes nothing (clients call the root Service)",
        ));
    }
    for (i, b) in ts.spec.backends.iter().enumerate() {
        let key = ObjKey::new(ns, &b.service);
        if reader.service(&key).is_none() {
            out.push(no_service(
                format!("spec.backends[{i}].service"),
                &key,
                "this backend gets no traffic",
            ));
        }
    }
    for (i, m) in ts.spec.matches.iter().enumerate() {
        let key = ObjKey::new(ns, &m.name);
        if reader.route_group(&key).is_none() {
            out.push(no_route(
                format!("spec.matches[{i}].name"),
                "HTTPRouteGroup",
                &key,
                "the split applies to no request (they go to the root Service)",
            ));
        }
    }
    out
}

/// A TrafficTarget's route rules and the match names they select. A rule that does not
/// resolve allows nothing (compile::inbound fails closed).
pub(super) fn target(reader: &Reader<'_>, ns: &str, tt: &TrafficTarget) -> Vec<Missing> {
    const MEANWHILE: &str = "this rule allows nothing";
    let mut out = Vec::new();
    for (i, rule) in tt.spec.rules.iter().enumerate() {
        let key = ObjKey::new(ns, &rule.name);
        let field = format!("spec.rules[{i}].name");
        match rule.kind.as_str() {
            rule_kinds::HTTP_ROUTE_GROUP => match reader.route_group(&key) {
                None => out.push(no_route(field, &rule.kind, &key, MEANWHILE)),
                Some(group) => out.extend(no_matches(
                    |k| format!("spec.rules[{i}].matches[{k}]"),
                    group,
                    &rule.name,
                    &rule.matches,
                    MEANWHILE,
                )),
            },
            rule_kinds::TCP_ROUTE if reader.tcp_route(&key).is_none() => {
                out.push(no_route(field, &rule.kind, &key, MEANWHILE));
            }
            rule_kinds::UDP_ROUTE if reader.udp_route(&key).is_none() => {
                out.push(no_route(field, &rule.kind, &key, MEANWHILE));
            }
            _ => {}
        }
    }
    out
}

/// A TrafficPolicy's Service, mirror Services and route groups and matches.
pub(super) fn policy(reader: &Reader<'_>, ns: &str, tp: &TrafficPolicy) -> Vec<Missing> {
    let spec = &tp.spec;
    let mut out = Vec::new();
    let service = ObjKey::new(ns, &spec.service);
    if reader.service(&service).is_none() {
        out.push(no_service(
            "spec.service".into(),
            &service,
            "the policy applies to nothing",
        ));
    }
    mirror(
        reader,
        ns,
        "spec.mirror.service".into(),
        spec.mirror.as_ref(),
        &mut out,
    );
    const MEANWHILE: &str = "this route's settings apply to no request";
    for (i, route) in spec.routes.iter().enumerate() {
        let key = ObjKey::new(ns, &route.http_route_group);
        match reader.route_group(&key) {
            None => out.push(no_route(
                format!("spec.routes[{i}].httpRouteGroup"),
                "HTTPRouteGroup",
                &key,
                MEANWHILE,
            )),
            Some(group) => out.extend(no_matches(
                |k| format!("spec.routes[{i}].matches[{k}]"),
                group,
                &route.http_route_group,
                &route.matches,
                MEANWHILE,
            )),
        }
        let field = format!("spec.routes[{i}].mirror.service");
        mirror(reader, ns, field, route.mirror.as_ref(), &mut out);
    }
    out
}

/// A Canary's root Service and its two backends: each missing one is named.
pub(super) fn canary(reader: &Reader<'_>, ns: &str, c: &Canary) -> Vec<Missing> {
    let spec = &c.spec;
    [
        (
            "spec.service",
            &spec.service,
            "the Canary routes nothing (clients call the root Service)",
        ),
        ("spec.stable", &spec.stable, "this backend gets no traffic"),
        (
            "spec.canary",
            &spec.canary,
            "this backend gets no traffic and has no version to analyse",
        ),
    ]
    .into_iter()
    .filter_map(|(field, name, meanwhile)| {
        let key = ObjKey::new(ns, name);
        reader
            .service(&key)
            .is_none()
            .then(|| no_service(field.into(), &key, meanwhile))
    })
    .collect()
}

fn mirror(
    reader: &Reader<'_>,
    ns: &str,
    field: String,
    m: Option<&Mirror>,
    out: &mut Vec<Missing>,
) {
    let Some(m) = m else { return };
    let key = ObjKey::new(ns, &m.service);
    if reader.service(&key).is_none() {
        out.push(no_service(field, &key, "nothing is mirrored"));
    }
}
