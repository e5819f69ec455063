//! Kubernetes mode (`trellis operator --kube`): the adapter between the API server and the
//! pure core (index, compile, conditions).
//!
//! ```text
//! API server --watchers (watch.rs)--> follow.rs --Update--> index --> compile, discovery
//!   Services, Namespaces, Pods (pods.rs), EndpointSlices (slices.rs),
//!   SMI + Trellis kinds at the version the CRD serves (kinds.rs), as untyped objects
//! ```

pub mod ca_secret;
pub mod canary_splits;
pub mod follow;
pub mod kinds;
pub mod lease;
pub mod pods;
pub mod run;
#[cfg(test)]
mod scenarios;
pub mod slices;
pub mod status;
pub mod token_review;
pub mod watch;
pub mod webhooks;
