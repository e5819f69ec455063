//! TrafficSplits of one root Service -> routes (SMI-SEMANTICS "Routing").
//!
//! ```text
//! splits_of(root), by name
//!   with matches    -> one route each, in name order: `<ns>/<split>`, matches = the union
//!                      of the referenced HTTPRouteGroups' matches, weighted backends
//!   without matches -> the oldest one (creationTimestamp, then name) is the default
//!                      route `<ns>/<split>`; the others are ignored (Conflicted)
//!   none            -> the default route `default`: the root's own endpoints, weight 1
//! ```

use smi_crds::split::{Backend as SplitBackend, TrafficSplit};
use trellis_proxy_api::v1 as api;

use super::super::policy::http_match;
use super::backend::{Backends, Ineligible};
use crate::index::{ObjKey, Reader, Service};

/// The name of the default route when no TrafficSplit without matches applies.
pub const DEFAULT_ROUTE: &str = "default";

/// Which of `splits` (all of one root) sends the root's unmatched requests: at most one
/// split without `matches` applies, the oldest by `metadata.creationTimestamp`, then by
/// name (SMI Routing 5). Splits without a timestamp (manifests read from Git) count as
/// newer than any with one. The conditions module reports the other unmatched splits as
/// Conflicted using this same choice.
pub fn effective_default_split(splits: &[(&str, &TrafficSplit)]) -> Option<usize> {
    splits
        .iter()
        .enumerate()
        .filter(|(_, (_, split))| split.spec.matches.is_empty())
        .min_by(|(_, (a_name, a)), (_, (b_name, b))| {
            let a_time = a.metadata.creation_timestamp.as_ref();
            let b_time = b.metadata.creation_timestamp.as_ref();
            (a_time.is_none(), a_time, a_name).cmp(&(b_time.is_none(), b_time, b_name))
        })
        .map(|(i, _)| i)
}

/// Rule 5 (SMI Routing 4-5): one route per split WITH matches, in name order, named
/// `<ns>/<split>`, whose matches are the union of every match of the referenced
/// HTTPRouteGroups. A split referencing an HTTPRouteGroup that does not exist (or whose
/// groups hold no match at all) gets no route: it would otherwise catch every request;
/// the conditions module reports it.
pub(super) fn matched_routes(
    reader: &Reader<'_>,
    backends: &mut Backends<'_, '_>,
    root: &ObjKey,
    splits: &[(&str, &TrafficSplit)],
) -> Vec<api::Route> {
    let mut routes = Vec::new();
    'splits: for (name, split) in splits {
        if split.spec.matches.is_empty() {
            continue;
        }
        let mut matches = Vec::new();
        for group_ref in &split.spec.matches {
            let key = ObjKey::new(&root.namespace, &group_ref.name);
            let Some(group) = reader.route_group(&key) else {
                continue 'splits;
            };
            matches.extend(group.spec.matches.iter().map(http_match));
        }
        if matches.is_empty() {
            continue;
        }
        let (weighted, unavailable_reason) =
            weighted(backends, &root.namespace, &split.spec.backends);
        routes.push(api::Route {
            name: format!("{}/{name}", root.namespace),
            matches,
            backends: weighted,
            unavailable_reason,
            ..Default::default()
        });
    }
    routes
}

/// Rule 5 (SMI Routing 4-5): the default route, last in the config and without matches.
/// The effective split without matches ([`effective_default_split`]) gives its backends
/// (route `<ns>/<split>`); without one, everything goes to the root Service's own
/// endpoints (route `default`, one backend of weight 1).
pub(super) fn default_route(
    backends: &mut Backends<'_, '_>,
    root: &Service,
    splits: &[(&str, &TrafficSplit)],
) -> api::Route {
    let namespace = &root.key.namespace;
    let (name, (weighted, unavailable_reason)) = match effective_default_split(splits) {
        Some(i) => {
            let (name, split) = splits[i];
            (
                format!("{namespace}/{name}"),
                weighted(backends, namespace, &split.spec.backends),
            )
        }
        None => (
            DEFAULT_ROUTE.to_owned(),
            match backends.service(&root.key) {
                Ok(backend) => (
                    vec![api::WeightedBackend { backend, weight: 1 }],
                    String::new(),
                ),
                Err(why) => (Vec::new(), format!("{}: {why}", root.key.name)),
            },
        ),
    };
    api::Route {
        name,
        backends: weighted,
        unavailable_reason,
        ..Default::default()
    }
}

/// Rule 6 (SMI Routing 2-3): a split backend is in the weighted list only when its weight
/// is > 0, its Service exists, has the root's port and has a ready endpoint with a target
/// port. A backend Service that does not exist yet is allowed and gets no traffic. When
/// nothing is eligible the list is empty and the reason names each backend and why, in
/// the split's order (`web-v2: weight 0; web-v3: no Service shop/web-v3`).
///
/// Rule 7 (SMI Routing 7): a backend that is itself the root of another split is routed
/// to its own endpoints: its splits are never read.
fn weighted(
    backends: &mut Backends<'_, '_>,
    namespace: &str,
    split_backends: &[SplitBackend],
) -> (Vec<api::WeightedBackend>, String) {
    let mut eligible = Vec::new();
    let mut reasons = Vec::new();
    for b in split_backends {
        let result = match b.weight.whole() {
            None => Err(Ineligible::BadWeight(b.weight.to_string())),
            Some(0) => Err(Ineligible::Weight0),
            Some(weight) => backends
                .service(&ObjKey::new(namespace, &b.service))
                .map(|backend| api::WeightedBackend { backend, weight }),
        };
        match result {
            Ok(wb) => eligible.push(wb),
            Err(why) => reasons.push(format!("{}: {why}", b.service)),
        }
    }
    if eligible.is_empty() {
        (eligible, reasons.join("; "))
    } else {
        (eligible, String::new())
    }
}
