//! Conversions between specs.smi-spec.io versions and their hub (v1alpha4).
//!
//! HTTPRouteGroup v1alpha3 and v1alpha4 have the same fields. TCPRoute v1alpha3 has no
//! ports: it converts to `matches.ports: []` (all ports), and a hub TCPRoute with ports
//! cannot be written as v1alpha3.

use super::{GROUP, http_route_group, tcp_route};
use crate::ConversionError;

impl From<http_route_group::v1alpha3::HTTPRouteGroup>
    for http_route_group::v1alpha4::HTTPRouteGroup
{
    fn from(g: http_route_group::v1alpha3::HTTPRouteGroup) -> Self {
        let spec = http_route_group::v1alpha4::HTTPRouteGroupSpec {
            matches: g.spec.matches,
        };
        Self {
            metadata: g.metadata,
            spec,
            status: g.status,
        }
    }
}

impl From<http_route_group::v1alpha4::HTTPRouteGroup>
    for http_route_group::v1alpha3::HTTPRouteGroup
{
    fn from(g: http_route_group::v1alpha4::HTTPRouteGroup) -> Self {
        let spec = http_route_group::v1alpha3::HTTPRouteGroupSpec {
            matches: g.spec.matches,
        };
        Self {
            metadata: g.metadata,
            spec,
            status: g.status,
        }
    }
}

impl From<tcp_route::v1alpha3::TCPRoute> for tcp_route::v1alpha4::TCPRoute {
    fn from(r: tcp_route::v1alpha3::TCPRoute) -> Self {
        let spec = tcp_route::v1alpha4::TCPRouteSpec {
            matches: tcp_route::PortMatch::default(),
        };
        Self {
            metadata: r.metadata,
            spec,
            status: r.status,
        }
    }
}

impl TryFrom<tcp_route::v1alpha4::TCPRoute> for tcp_route::v1alpha3::TCPRoute {
    type Error = ConversionError;

    fn try_from(r: tcp_route::v1alpha4::TCPRoute) -> Result<Self, ConversionError> {
        let m = &r.spec.matches;
        if !m.ports.is_empty() || m.name.is_some() {
            let field = if m.ports.is_empty() {
                "spec.matches.name"
            } else {
                "spec.matches.ports"
            };
            return Err(ConversionError::new(
                tcp_route::KIND,
                format!("{GROUP}/v1alpha3"),
                field,
                "v1alpha3 TCPRoutes select every port and have no matches; read this TCPRoute as v1alpha4",
            ));
        }
        Ok(Self {
            metadata: r.metadata,
            spec: tcp_route::v1alpha3::TCPRouteSpec {},
            status: r.status,
        })
    }
}
