//! The Trellis control plane and the `trellis` CLI.
//!
//! - [`manifest`]: reading trees of YAML manifests with file and line of every field.
//! - [`lint`]: `trellis validate`: per-resource validation and cross-references.
//! - [`cli`]: the command line.
//!
//! The control plane proper (index, compile, discovery, identity) builds on these.

pub mod admin;
pub mod canary;
pub mod chart;
pub mod cli;
pub mod cluster;
pub mod compile;
pub mod demo;
pub mod demo_app;
pub mod discovery;
pub mod grpc;
pub mod identity;
pub mod index;
pub mod inject;
pub mod lint;
pub mod local;
pub mod manifest;
pub mod metrics;
pub mod registry;
pub mod source;
pub mod status_view;
pub mod webhook;
