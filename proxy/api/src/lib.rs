//! The control-plane/proxy API (`trellis.proxy.v1`), shared by the operator and the proxy.
//!
//! The protobuf services (Identity, Discovery) and their generated tonic code arrive with
//! the proxy's request path; what both sides already agree on lives here.

/// The protobuf package of the API.
pub const PACKAGE: &str = "trellis.proxy.v1";

/// Default proxy ports, as every Trellis component and doc uses them.
pub mod ports {
    /// Outbound listener: the app's outgoing traffic.
    pub const OUTBOUND: u16 = 4140;
    /// Inbound listener: traffic from other proxies and clients.
    pub const INBOUND: u16 = 4143;
    /// Admin listener: `/metrics`, `/ready`, `/live`, `/config`.
    pub const ADMIN: u16 = 4191;
}
