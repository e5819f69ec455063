//! Compile: pure functions from an index [`Snapshot`] to the `trellis.proxy.v1` config
//! one proxy needs. Every SMI rule of SMI-SEMANTICS.md lives here, tested without I/O.
//!
//! ```text
//! Snapshot --Reader (records every key read)--> outbound(client, target) -> OutboundConfig
//!                                           --> inbound(workload)        -> InboundConfig
//!                                           --> conditions()            -> per-resource conditions
//!          + the keys read = what the config depends on (the discovery server recompiles
//!            a subscription only when one of them changes)
//! ```
//!
//! - [`outbound`]: a destination (authority or original address) -> routes, weighted
//!   backends, endpoints with identities (TrafficSplit, A/B matches, TrafficPolicy).
//! - [`inbound`]: a workload -> ports and authorizations (TrafficTarget, permissive mode,
//!   unmeshed clients).
//! - [`policy`]: TrafficPolicy fields -> route and backend settings.
//! - [`conditions`]: problems across resources (missing backends, conflicting splits) as
//!   status conditions.
//!
//! Configs carry no version here; the discovery server versions them by content.

pub mod conditions;
pub mod inbound;
pub mod outbound;
pub mod policy;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::HashSet;
use std::net::SocketAddr;

use crate::index::{Key, ObjKey};

/// A compiled config and the index keys it was compiled from.
#[derive(Clone, Debug, PartialEq)]
pub struct Compiled<T> {
    pub config: T,
    pub deps: HashSet<Key>,
}

/// What a `WatchOutbound` subscription names.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `web`, `web.shop:8080`, `web.shop.svc.cluster.local.` as the client wrote it.
    Authority(String),
    /// The original destination of an intercepted connection.
    Address(SocketAddr),
}

/// The SPIFFE id of a ServiceAccount.
pub fn spiffe_id(trust_domain: &str, namespace: &str, service_account: &str) -> String {
    format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}")
}

/// Who asks: the client workload (`namespace/name`); its namespace resolves short names.
pub type Client = ObjKey;
