//! Conversions between TrafficTarget v1alpha2 and the hub (v1alpha3).
//!
//! v1alpha3 has no `destination.port`: a v1alpha2 object with a port is refused (the port
//! restricts access, so dropping it would allow more than the user wrote). v1alpha2 has no
//! UDPRoute rules: converting such a hub object down is refused too.

use super::{GROUP, KIND, Subject, rule_kinds, v1alpha2, v1alpha3};
use crate::ConversionError;

impl TryFrom<v1alpha2::TrafficTarget> for v1alpha3::TrafficTarget {
    type Error = ConversionError;

    fn try_from(tt: v1alpha2::TrafficTarget) -> Result<Self, ConversionError> {
        let d = tt.spec.destination;
        if let Some(port) = d.port {
            return Err(ConversionError::new(
                KIND,
                format!("{GROUP}/v1alpha3"),
                "spec.destination.port",
                format!(
                    "v1alpha3 has no destination port (got {port}); remove the port and allow \
                     it with a TCPRoute rule (specs.smi-spec.io TCPRoute with matches.ports)"
                ),
            ));
        }
        let spec = v1alpha3::TrafficTargetSpec {
            destination: Subject {
                kind: d.kind,
                name: d.name,
                namespace: d.namespace,
            },
            rules: tt.spec.rules,
            sources: tt.spec.sources,
        };
        Ok(Self {
            metadata: tt.metadata,
            spec,
            status: tt.status,
        })
    }
}

impl TryFrom<v1alpha3::TrafficTarget> for v1alpha2::TrafficTarget {
    type Error = ConversionError;

    fn try_from(tt: v1alpha3::TrafficTarget) -> Result<Self, ConversionError> {
        if let Some(i) = tt
            .spec
            .rules
            .iter()
            .position(|r| r.kind == rule_kinds::UDP_ROUTE)
        {
            return Err(ConversionError::new(
                KIND,
                format!("{GROUP}/v1alpha2"),
                format!("spec.rules[{i}].kind"),
                "v1alpha2 has no UDPRoute rules; read this TrafficTarget as v1alpha3",
            ));
        }
        let d = tt.spec.destination;
        let spec = v1alpha2::TrafficTargetSpec {
            destination: v1alpha2::Destination {
                kind: d.kind,
                name: d.name,
                namespace: d.namespace,
                port: None,
            },
            rules: tt.spec.rules,
            sources: tt.spec.sources,
        };
        Ok(Self {
            metadata: tt.metadata,
            spec,
            status: tt.status,
        })
    }
}
