//! Opaque TCP the app sent to an address (intercepted, not HTTP): where it goes, and
//! whether over mTLS.
//!
//! The original destination is resolved like any destination (on demand, through
//! Discovery by address). With a config, TCPRoute semantics apply: the default route's
//! backends by weight (a TrafficSplit splits connections), then an endpoint at random, with
//! mTLS when the endpoint has an identity. Without one, the connection goes to the original
//! destination itself, in plaintext, as it would without the mesh.

use std::net::SocketAddr;
use std::sync::Arc;

use super::split::pick_weighted;
use crate::config::Outbound;
use crate::tls::SpiffeId;

/// Where an opaque connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpaqueTarget {
    pub addr: SocketAddr,
    /// The identity the endpoint must prove; `None`: plaintext.
    pub identity: Option<Arc<SpiffeId>>,
}

/// Chooses the endpoint for a connection to `original`, with `random` deciding between
/// weighted backends and endpoints.
pub fn choose(
    config: Option<&Outbound>,
    original: SocketAddr,
    mut random: impl FnMut() -> u64,
) -> OpaqueTarget {
    let passthrough = OpaqueTarget {
        addr: original,
        identity: None,
    };
    let Some(config) = config else {
        return passthrough;
    };
    // The route that takes every request: the last one has no matches.
    let Some(route) = config.routes.iter().rev().find(|r| r.matches.is_empty()) else {
        return passthrough;
    };
    let weights: Vec<u32> = route.backends.iter().map(|(_, w)| *w).collect();
    let Some(b) = pick_weighted(&weights, random()) else {
        return passthrough;
    };
    let endpoints = &route.backends[b].0.endpoints;
    if endpoints.is_empty() {
        return passthrough;
    }
    // An endpoint that is the original destination itself is taken as it is.
    let endpoint = endpoints
        .iter()
        .find(|e| e.address == original)
        .unwrap_or_else(|| &endpoints[(random() % endpoints.len() as u64) as usize]);
    OpaqueTarget {
        addr: endpoint.address,
        identity: endpoint.identity.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::{Backend, Balancer, Endpoint, Protocol, Route};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn backend(name: &str, endpoints: &[(&str, Option<&str>)]) -> Arc<Backend> {
        Arc::new(Backend {
            name: name.into(),
            endpoints: endpoints
                .iter()
                .map(|(a, id)| Endpoint {
                    address: addr(a),
                    identity: id.map(|id| Arc::new(id.parse().unwrap())),
                    labels: HashMap::new(),
                })
                .collect(),
            balancer: Balancer::RoundRobin,
            circuit_breaker: None,
        })
    }

    fn config(backends: Vec<(Arc<Backend>, u32)>) -> Outbound {
        Outbound {
            version: "1".into(),
            authority: "db.shop.svc.cluster.local:5432".into(),
            protocol: Protocol::Opaque,
            routes: vec![Arc::new(Route {
                name: "default".into(),
                matches: vec![],
                backends,
                unavailable_reason: String::new(),
                timeout: None,
                retry: None,
                fault: None,
                mirror: None,
                rate_limit: None,
            })],
            rate_limit: None,
        }
    }

    #[test]
    fn an_unknown_address_is_reached_as_it_is_in_plaintext() {
        let target = choose(None, addr("10.0.0.9:5432"), || 0);
        assert_eq!(target.addr, addr("10.0.0.9:5432"));
        assert_eq!(target.identity, None);
    }

    #[test]
    fn a_meshed_endpoint_is_reached_over_mtls_with_its_identity() {
        let id = "spiffe://cluster.local/ns/shop/sa/db";
        let c = config(vec![(backend("db", &[("10.0.0.9:5432", Some(id))]), 1)]);
        let target = choose(Some(&c), addr("10.0.0.9:5432"), || 7);
        assert_eq!(target.addr, addr("10.0.0.9:5432"));
        assert_eq!(
            target.identity.as_deref().map(|i| i.to_string()),
            Some(id.into())
        );
    }

    #[test]
    fn a_split_sends_connections_to_the_backend_with_weight() {
        let c = config(vec![
            (backend("db-v1", &[("10.0.0.1:5432", None)]), 0),
            (backend("db-v2", &[("10.0.0.2:5432", None)]), 100),
        ]);
        for r in 0..20 {
            let target = choose(Some(&c), addr("10.96.0.5:5432"), || r);
            assert_eq!(target.addr, addr("10.0.0.2:5432"));
        }
    }

    #[test]
    fn a_backend_without_endpoints_falls_back_to_the_original_destination() {
        let c = config(vec![(backend("db", &[]), 1)]);
        assert_eq!(
            choose(Some(&c), addr("10.0.0.9:5432"), || 0).addr,
            addr("10.0.0.9:5432")
        );
    }
}
