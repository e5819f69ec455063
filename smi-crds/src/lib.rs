//! Rust types for every SMI API version Trellis serves, and for Trellis' own CRDs.
//!
//! ```text
//!   manifest (any served version) --parse--> versioned type --convert--> hub type
//!                                                                           |
//!                                        validate (field path + message) <--+
//!   hub type --convert--> any served version (CRD conversion, round trips)
//! ```
//!
//! - [`split`], [`access`], [`specs`]: the SMI groups, one module per version; the newest
//!   version of each kind is the hub (storage version) and every other version converts
//!   to and from it ([`split::convert`], ...).
//! - [`trellis`]: `trellis.dev/v1alpha1` resources (MeshConfig, TrafficPolicy, Canary).
//! - [`dynamic`]: from an untyped object (`apiVersion`, `kind`, body) to a hub resource,
//!   and from a hub resource to any served version.
//! - [`validate`]: semantic checks beyond the schema; every problem names its field.
//! - [`crdgen`]: the multi-version CustomResourceDefinitions written to the Helm chart.
//!
//! This crate knows nothing about proxies, gRPC or the Kubernetes client.

// `#[kube(printcolumn(name = .., type_ = ..), printcolumn(..))]` repeats keys by design.
#![allow(clippy::duplicated_attributes)]

pub mod access;
pub mod conditions;
pub mod crdgen;
pub mod dynamic;
mod error;
pub mod headers;
pub mod quantity;
pub mod specs;
pub mod split;
pub mod status;
pub mod trellis;
pub mod validate;
pub mod weight;

pub use error::ConversionError;

pub use dynamic::{ParseError, Resource};
