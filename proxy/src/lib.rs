//! `trellis-proxy`: the Trellis sidecar proxy.
//!
//! ```text
//! config source (file | Discovery) --> config::Outbound / config::Inbound (validated, or NACK)
//!                                              |
//!   listener -> detect -> route -> split -> balance -> connect   (the request path, to come)
//! ```
//!
//! - [`config`]: the proxy's own model of its configuration, built from `trellis.proxy.v1`
//!   messages; a message that does not validate is refused with a reason (a NACK) and the
//!   last good config stays in force.

pub mod config;
