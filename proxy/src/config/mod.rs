//! The proxy's configuration model.
//!
//! Everything the request path reads is here, already validated and compiled (regexes,
//! header names, durations), so the per-request code never parses or fails on config.
//! [`Outbound::try_from`] turns a `trellis.proxy.v1.OutboundConfig` into the model; its
//! error names the field and becomes the NACK reason. [`file`] reads the same model from a
//! YAML or JSON file. [`Inbound::try_from`] does the same for the inbound policy
//! (`trellis.proxy.v1.InboundConfig`).

pub mod file;
mod from_proto;
mod inbound;
mod model;

pub use from_proto::ConfigError;
pub use inbound::*;
pub use model::*;
