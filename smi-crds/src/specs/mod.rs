//! `specs.smi-spec.io`: the route resources TrafficTargets and TrafficSplits refer to.
//!
//! | kind           | versions                    | hub      |
//! |----------------|-----------------------------|----------|
//! | HTTPRouteGroup | v1alpha3, v1alpha4          | v1alpha4 |
//! | TCPRoute       | v1alpha3 (no ports), v1alpha4 | v1alpha4 |
//! | UDPRoute       | v1alpha4                    | v1alpha4 |

pub mod convert;
pub mod http_route_group;
pub mod tcp_route;
pub mod udp_route;

pub const GROUP: &str = "specs.smi-spec.io";
pub const HUB_VERSION: &str = "v1alpha4";

/// The HTTP methods a match may name; `*` means any.
pub const METHODS: [&str; 10] = [
    "*", "GET", "HEAD", "PUT", "POST", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub type HTTPRouteGroup = http_route_group::v1alpha4::HTTPRouteGroup;
pub type TCPRoute = tcp_route::v1alpha4::TCPRoute;
pub type UDPRoute = udp_route::v1alpha4::UDPRoute;
