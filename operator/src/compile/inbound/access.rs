//! TrafficTargets -> the authorizations of each port (SMI-SEMANTICS Access 1-3).
//!
//! ```text
//! TrafficTarget ns/tt (destination = the workload's ServiceAccount)
//!   sources            -> identities (SPIFFE ids)
//!   TCPRoute/UDPRoute  -> the ports it applies to (union; `[]` = all; none = all)
//!   HTTPRouteGroup     -> routes (union of the selected matches; none = every request)
//!   => Authorization { name: "ns/tt", identities, routes } on each port it applies to
//! ```
//!
//! A TrafficTarget's parts are AND-ed (source AND port AND route); separate
//! TrafficTargets are OR-ed (one authorization each, in name order). A rule whose route
//! resource or match does not exist allows nothing (fail closed); the `ResolvedRefs`
//! condition of the TrafficTarget says what is missing.

use std::collections::BTreeSet;

use smi_crds::access::{TrafficTarget, rule_kinds};
use trellis_proxy_api::v1::{self as api, ProtocolHint};

use crate::compile::{policy, spiffe_id};
use crate::index::{ObjKey, Reader, Workload};

/// One TrafficTarget, resolved.
pub(super) struct Target {
    /// `namespace/name`.
    name: String,
    identities: Vec<String>,
    ports: Ports,
    /// `None`: no HTTPRouteGroup rule (every request). `Some`: the union of the selected
    /// matches; empty when every HTTPRouteGroup rule failed to resolve (nothing).
    routes: Option<Vec<api::HttpMatch>>,
}

/// The ports a TrafficTarget applies to.
enum Ports {
    All,
    Only(BTreeSet<u16>),
}

/// The TrafficTargets whose destination is the workload's ServiceAccount, by name.
/// TrafficTargets without sources allow nothing and are left out.
pub(super) fn targets(reader: &Reader<'_>, trust_domain: &str, workload: &Workload) -> Vec<Target> {
    let namespace = &workload.key.namespace;
    let sa = ObjKey::new(namespace, &workload.service_account);
    reader
        .targets_of(&sa)
        .into_iter()
        .filter(|(_, tt)| !tt.spec.sources.is_empty())
        .map(|(name, tt)| target(reader, trust_domain, namespace, name, tt))
        .collect()
}

/// Access 1-3 for one TrafficTarget.
///
/// - Identities: each source ServiceAccount's SPIFFE id, its namespace defaulting to the
///   TrafficTarget's (Access 2).
/// - Ports: with no TCPRoute/UDPRoute rule, every port; otherwise the union of their
///   `matches.ports`, `[]` meaning every port. Those numbers are the ports the workload
///   receives on (its container ports, the Services' target ports), not Service ports: the
///   destination of a TrafficTarget is a ServiceAccount, not a Service, and the proxy
///   sees the port it was called on. A rule naming a route that does not exist adds no
///   port.
/// - Routes: with no HTTPRouteGroup rule, every request; otherwise the union of the
///   matches each rule selects (`matches` omitted: every match of the group). A rule
///   naming a group that does not exist, or a match the group does not have, adds no
///   route (the whole rule allows nothing, not just the missing match).
fn target(
    reader: &Reader<'_>,
    trust_domain: &str,
    namespace: &str,
    name: &str,
    tt: &TrafficTarget,
) -> Target {
    let identities = tt
        .spec
        .sources
        .iter()
        .map(|s| {
            spiffe_id(
                trust_domain,
                s.namespace.as_deref().unwrap_or(namespace),
                &s.name,
            )
        })
        .collect();
    let mut ports: Option<Ports> = None;
    let mut routes: Option<Vec<api::HttpMatch>> = None;
    for rule in &tt.spec.rules {
        let key = ObjKey::new(namespace, &rule.name);
        match rule.kind.as_str() {
            rule_kinds::HTTP_ROUTE_GROUP => {
                let selected = routes.get_or_insert_with(Vec::new);
                for m in http_rule(reader, &key, &rule.matches) {
                    if !selected.contains(&m) {
                        selected.push(m);
                    }
                }
            }
            rule_kinds::TCP_ROUTE | rule_kinds::UDP_ROUTE => {
                let route_ports = if rule.kind == rule_kinds::TCP_ROUTE {
                    reader.tcp_route(&key).map(|r| &r.spec.matches.ports)
                } else {
                    reader.udp_route(&key).map(|r| &r.spec.matches.ports)
                };
                let union = ports.get_or_insert_with(|| Ports::Only(BTreeSet::new()));
                match (route_ports, &mut *union) {
                    (None, _) | (Some(_), Ports::All) => {}
                    (Some(p), _) if p.is_empty() => *union = Ports::All,
                    (Some(p), Ports::Only(set)) => {
                        set.extend(p.iter().filter_map(|n| u16::try_from(*n).ok()));
                    }
                }
            }
            // Validation rejects other kinds.
            _ => {}
        }
    }
    Target {
        name: format!("{namespace}/{name}"),
        identities,
        ports: ports.unwrap_or(Ports::All),
        routes,
    }
}

/// The matches one HTTPRouteGroup rule selects; empty when the group or one of the named
/// matches does not exist.
fn http_rule(reader: &Reader<'_>, group: &ObjKey, names: &[String]) -> Vec<api::HttpMatch> {
    let Some(group) = reader.route_group(group) else {
        return Vec::new();
    };
    let matches = &group.spec.matches;
    if names.is_empty() {
        return matches.iter().map(policy::http_match).collect();
    }
    names
        .iter()
        .map(|n| {
            matches
                .iter()
                .find(|m| m.name == *n)
                .map(policy::http_match)
        })
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

/// The authorizations on `port`: one per TrafficTarget that applies there, in name order.
///
/// A TrafficTarget applies to a port in its port set, except that one with HTTPRouteGroup
/// rules does not apply to an opaque port (its routes can never match a request there),
/// and one whose HTTPRouteGroup rules all failed to resolve applies nowhere (its routes
/// would be empty, which the proxy reads as "every request").
pub(super) fn authorizations(
    targets: &[Target],
    port: u16,
    protocol: ProtocolHint,
) -> Vec<api::Authorization> {
    targets
        .iter()
        .filter(|t| match &t.ports {
            Ports::All => true,
            Ports::Only(set) => set.contains(&port),
        })
        .filter(|t| match &t.routes {
            None => true,
            Some(routes) => !routes.is_empty() && protocol != ProtocolHint::Opaque,
        })
        .map(|t| api::Authorization {
            name: t.name.clone(),
            identities: t.identities.clone(),
            routes: t.routes.clone().unwrap_or_default(),
        })
        .collect()
}
