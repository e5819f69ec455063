//! Outbound: the config a client workload needs to send requests to one destination.
//!
//! ```text
//! Target --resolve--+--> Service + port: routes, in the order the proxy tries them
//!                   |      1. TrafficSplits with matches (A/B), by name   <ns>/<split>
//!                   |      2. TrafficPolicy spec.routes[i]                <ns>/<policy>/<i>
//!                   |      3. the default route (no matches): the oldest
//!                   |         split without matches                      <ns>/<split>
//!                   |         or else the root Service's endpoints        default
//!                   |    every route: the policy's timeout, retry, fault, mirror
//!                   |    backends: one per Service, at the root's port number
//!                   +--> workload address: one route to that workload's endpoint
//!                   +--> other address: one route to exactly that address (passthrough)
//!                   +--> unknown Service or port: one route without backends (503 + why)
//! ```
//!
//! Files: `resolve` (the target), `split` (TrafficSplits -> routes), `backend` (Services
//! -> backends and eligibility); `tests/` states every rule as the exact config.
//!
//! Pure: reads the snapshot only through a [`Reader`], so that the keys it read are what
//! the config depends on (the discovery server pushes again when one of them changes).

mod backend;
mod resolve;
mod split;
#[cfg(test)]
mod tests;

use smi_crds::trellis::traffic_policy::TrafficPolicy;
use trellis_proxy_api::v1 as api;

use super::policy::{RouteSettings, backend_settings, route_matches, route_settings};
use super::{Client, Compiled, Target};
use crate::index::{ObjKey, Reader, Service, ServicePort, Snapshot};
use backend::Backends;
use resolve::Destination;

pub use resolve::{CLUSTER_DOMAIN, DEFAULT_PORT, canonical_authority};
pub use split::{DEFAULT_ROUTE, effective_default_split};

/// The config a client workload needs to send requests to `target`, and the keys it read.
pub fn outbound(
    snapshot: &Snapshot,
    client: &Client,
    target: &Target,
) -> Compiled<api::OutboundConfig> {
    let reader = snapshot.reader();
    let config = match resolve::resolve(&reader, client, target) {
        Destination::Service(service, port) => service_config(&reader, service, port),
        Destination::Workload(workload, address) => {
            let mut backends = Backends::new(&reader, address.port(), Default::default());
            let backend = backends.workload(workload, address);
            let protocol = workload
                .ports
                .iter()
                .find(|p| p.port == address.port())
                .map_or(api::ProtocolHint::Unspecified, |p| p.protocol);
            single_route(protocol, backend, backends)
        }
        Destination::Passthrough(address) => {
            let mut backends = Backends::new(&reader, address.port(), Default::default());
            let backend = backends.passthrough(address);
            single_route(api::ProtocolHint::Unspecified, backend, backends)
        }
        Destination::Unavailable { authority, reason } => api::OutboundConfig {
            authority,
            routes: vec![api::Route {
                name: DEFAULT_ROUTE.to_owned(),
                unavailable_reason: reason,
                ..Default::default()
            }],
            ..Default::default()
        },
    };
    Compiled {
        config,
        deps: reader.into_deps(),
    }
}

/// A config for an address that is no Service (no authority): its one route sends
/// everything to `backend`.
fn single_route(
    protocol: api::ProtocolHint,
    backend: String,
    backends: Backends<'_, '_>,
) -> api::OutboundConfig {
    api::OutboundConfig {
        protocol: protocol.into(),
        routes: vec![api::Route {
            name: DEFAULT_ROUTE.to_owned(),
            backends: vec![api::WeightedBackend { backend, weight: 1 }],
            ..Default::default()
        }],
        backends: backends.into_vec(),
        ..Default::default()
    }
}

/// A Service at one of its ports: splits, policy routes, the default route.
///
/// Rule 3: `protocol` is the Service port's protocol hint.
fn service_config(reader: &Reader<'_>, root: &Service, port: &ServicePort) -> api::OutboundConfig {
    let policy = root_policy(reader, &root.key);
    let root_backend_settings = policy
        .map(|(_, p)| backend_settings(&p.spec))
        .unwrap_or_default();
    let mut backends = Backends::new(reader, port.port, root_backend_settings);
    let splits = reader.splits_of(&root.key);

    let mut routes = split::matched_routes(reader, &mut backends, &root.key, &splits);
    for route in &mut routes {
        apply_settings(&mut backends, &root.key, route, policy, None);
    }
    let mut default = split::default_route(&mut backends, root, &splits);
    if let Some((name, policy)) = policy {
        routes.extend(policy_routes(
            reader,
            &mut backends,
            &root.key,
            name,
            policy,
            &default,
        ));
    }
    apply_settings(&mut backends, &root.key, &mut default, policy, None);
    routes.push(default);

    api::OutboundConfig {
        authority: canonical_authority(&root.key),
        protocol: port.protocol.into(),
        routes,
        backends: backends.into_vec(),
        ..Default::default()
    }
}

/// Rule 8: the TrafficPolicy of the root Service; with several, the first by name applies
/// (the conditions module reports the others).
fn root_policy<'a>(reader: &Reader<'a>, root: &ObjKey) -> Option<(&'a str, &'a TrafficPolicy)> {
    reader.policies_of(root).into_iter().next()
}

/// Rule 8: each `spec.routes[i]` of the root's policy is a route named
/// `<ns>/<policy>/<i>`, placed after the split routes and before the default route: its
/// matches come from the route's HTTPRouteGroup (a missing group or match leaves the
/// route out, as would an empty match list, which would catch every request), its
/// backends are the default route's, and its settings are the service-level ones with
/// the route's fields replacing them.
fn policy_routes(
    reader: &Reader<'_>,
    backends: &mut Backends<'_, '_>,
    root: &ObjKey,
    name: &str,
    policy: &TrafficPolicy,
    default: &api::Route,
) -> Vec<api::Route> {
    let spec = &policy.spec;
    let mut routes = Vec::new();
    for (i, route) in spec.routes.iter().enumerate() {
        let group = reader.route_group(&ObjKey::new(&root.namespace, &route.http_route_group));
        let Ok(matches) = route_matches(spec, i, group) else {
            continue;
        };
        if matches.is_empty() {
            continue;
        }
        let mut route = api::Route {
            name: format!("{}/{name}/{i}", root.namespace),
            matches,
            backends: default.backends.clone(),
            unavailable_reason: default.unavailable_reason.clone(),
            ..Default::default()
        };
        apply_settings(backends, root, &mut route, Some((name, policy)), Some(i));
        routes.push(route);
    }
    routes
}

/// Rule 8: timeout, retry, fault and mirror of `route_settings(spec, policy_route)` on a
/// route. The mirror Service (in the root's namespace, at the root's port) becomes a
/// backend of its own, in no weighted list; a mirror Service that does not exist, lacks
/// the port or has no ready endpoint is left out (its copies would go nowhere).
fn apply_settings(
    backends: &mut Backends<'_, '_>,
    root: &ObjKey,
    route: &mut api::Route,
    policy: Option<(&str, &TrafficPolicy)>,
    policy_route: Option<usize>,
) {
    let Some((_, policy)) = policy else {
        return;
    };
    let RouteSettings {
        timeout,
        retry,
        fault,
        mirror,
    } = route_settings(&policy.spec, policy_route);
    route.timeout = timeout;
    route.retry = retry;
    route.fault = fault;
    route.mirror = mirror.and_then(|(service, percent)| {
        let backend = backends
            .service(&ObjKey::new(&root.namespace, &service))
            .ok()?;
        Some(api::Mirror { backend, percent })
    });
}
