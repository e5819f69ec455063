//! Progressive delivery: a `Canary` moves traffic from a stable backend to a canary backend
//! while its checks hold, and rolls back when they do not.
//!
//! - [`machine`]: the pure state machine (observations in, state and decisions out), with
//!   Flagger's weight formula and order of checks.
//! - [`observe`]: what a tick reads from the index (versions behind the backends, the spec).
//! - [`hooks`]: the webhook calls.
//! - [`metrics`]: the metrics providers (builtin scrape of the proxies, Prometheus).
//! - [`split`]: the generated TrafficSplit the controller owns.
//! - [`status`]: a Canary's status from its run.
//! - [`controller`]: the adapter ticking every Canary and publishing its split.

pub mod controller;
pub mod hooks;
pub mod machine;
pub mod metrics;
pub mod observe;
pub mod split;
pub mod status;
