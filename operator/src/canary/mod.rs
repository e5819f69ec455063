//! Progressive delivery (issue 7): a `Canary` moves traffic from a stable backend to a
//! canary backend while its checks hold, and rolls back when they do not.
//!
//! - [`machine`]: the pure state machine (observations in, state and decisions out), with
//!   Flagger's weight formula and order of checks.
//!
//! Not wired into the operator yet: the resource, the metrics providers and the adapter that
//! owns the generated TrafficSplit come next.

pub mod hooks;
pub mod machine;
pub mod metrics;
pub mod observe;
pub mod split;
pub mod status;
