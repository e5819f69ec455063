//! `trellis-proxy`: the Trellis sidecar proxy.
//!
//! ```text
//! config source (file | Discovery) --> store (validated snapshot, or NACK; last good kept)
//!                                          |
//! listen: accept -> detect -> outbound stack: telemetry -> route -> rate_limit -> fault
//!                                -> timeout -> mirror -> retry -> split -> balance -> connect
//!                           -> inbound stack:  telemetry -> authorize -> forward -> connect
//!                           -> opaque TCP forward
//! admin: /metrics /ready /live /config
//! ```
//!
//! - [`config`]: the validated model, from `trellis.proxy.v1` messages or a file.
//! - [`store`]: the config in force, read per request through a watch channel.
//! - [`outbound`], [`inbound`]: the HTTP stacks, one tower layer per module.
//! - [`balance`], [`connect`]: endpoint choice and ejection; pooled HTTP/1.1 and HTTP/2.
//! - [`listen`]: listeners and protocol detection; [`admin`]; [`telemetry`].
//! - [`init`]: `trellis-proxy init`, the iptables and ip6tables rules of transparent
//!   interception.
//! - [`tls`]: mTLS with SPIFFE identities; [`identity`]: where the certificate comes from
//!   (files, or the control plane's Identity API) and its renewal.

pub mod admin;
pub mod answer;
pub mod app;
pub mod balance;
pub mod body;
pub mod config;
pub mod connect;
pub mod discovery;
pub mod identity;
pub mod inbound;
pub mod init;
pub mod listen;
pub mod outbound;
pub mod register;
pub mod source_file;
pub mod store;
pub mod svc;
pub mod telemetry;
pub mod tls;
