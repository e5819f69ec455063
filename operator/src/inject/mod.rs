//! Sidecar injection: what the mutating webhook and `trellis inject` do to a pod template.
//!
//! ```text
//! inject.yaml ──> config::Config ─┐
//! pod metadata + spec ────────────┼─> pod::inject (pure) ─> Injection | Skip
//! namespace labels (optional) ────┘        │
//!                      ┌───────────────────┴───────────────────┐
//!          Injection::patch (JSONPatch)              Injection::apply (edit in place)
//!          admission::review: /inject                files: `trellis inject` YAML streams
//! ```
//!
//! [`names`] holds the labels, annotations, container names and paths that are part of
//! the interface; [`annotations`] reads the pod annotations users may set; [`containers`]
//! builds the proxy, the init container and the token volume; [`skip`] the port and
//! network lists of `trellis-proxy init`. See docs/injection.md.

pub mod admission;
pub mod annotations;
pub mod config;
pub mod containers;
mod edit;
pub mod files;
pub mod names;
pub mod pod;
pub mod skip;

#[cfg(test)]
mod fixtures;

pub use config::{Config, SidecarMode};
pub use pod::{Injection, Skip, inject};
