//! The control-plane/proxy API (`trellis.proxy.v1`), shared by the operator and the proxy.
//!
//! ```text
//! proxy --Identity.Certify(identity, token, CSR)--> operator: leaf + chain + anchors
//! proxy <==Discovery.WatchInbound(workload)======== operator: InboundConfig stream
//! proxy <==Discovery.WatchOutbound(authority|addr)= operator: OutboundConfig stream
//! proxy --Ack{applied | Nack{version, reason}}----> operator (on the same streams)
//! ```
//!
//! The protobuf sources are in `proto/`; `build.rs` compiles them with protox, so no
//! `protoc` is needed. Every config message carries a `version`; a proxy applies it
//! atomically or NACKs it with a reason and keeps the last good one.

pub mod codec;

/// The protobuf package of the API.
pub const PACKAGE: &str = "trellis.proxy.v1";

/// Generated messages and tonic clients/servers.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("trellis.proxy.v1");
    include!(concat!(env!("OUT_DIR"), "/trellis.proxy.v1.serde.rs"));
}

/// Default proxy ports, as every Trellis component and doc uses them.
pub mod ports {
    /// Outbound listener: the app's outgoing traffic.
    pub const OUTBOUND: u16 = 4140;
    /// Inbound listener: traffic from other proxies and clients.
    pub const INBOUND: u16 = 4143;
    /// Admin listener: `/metrics`, `/ready`, `/live`, `/config`.
    pub const ADMIN: u16 = 4191;
}
