//! The pod annotations users set to tune injection ([`names::annotations`]), read and
//! checked: a bad value is refused with the annotation's name, never passed on to an init
//! container that would fail at pod start.

use std::collections::BTreeMap;

use super::config::Quantity;
use super::names::annotations as a;
use super::skip::{Cidr, PortRange, parse_list};

/// What a pod's annotations ask for; empty lists and `None` where they say nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub skip_outbound_ports: Vec<PortRange>,
    pub skip_inbound_ports: Vec<PortRange>,
    pub skip_outbound_cidrs: Vec<Cidr>,
    pub cpu_request: Option<Quantity>,
    pub memory_request: Option<Quantity>,
    pub cpu_limit: Option<Quantity>,
    pub memory_limit: Option<Quantity>,
}

/// An annotation whose value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {message}")]
pub struct InvalidAnnotation {
    pub annotation: String,
    pub message: String,
}

impl Overrides {
    /// Reads the Trellis annotations among `annotations`.
    pub fn read(annotations: &BTreeMap<String, String>) -> Result<Overrides, InvalidAnnotation> {
        let fail = |annotation: &str, message: String| InvalidAnnotation {
            annotation: annotation.into(),
            message,
        };
        let list = |annotation: &str| -> Result<Vec<_>, InvalidAnnotation> {
            Ok(match annotations.get(annotation) {
                Some(text) => parse_list(text).map_err(|m| fail(annotation, m))?,
                None => Vec::new(),
            })
        };
        let cidrs = |annotation: &str| -> Result<Vec<Cidr>, InvalidAnnotation> {
            Ok(match annotations.get(annotation) {
                Some(text) => parse_list(text).map_err(|m| fail(annotation, m))?,
                None => Vec::new(),
            })
        };
        let quantity = |annotation: &str| -> Result<Option<Quantity>, InvalidAnnotation> {
            annotations
                .get(annotation)
                .map(|text| text.parse().map_err(|m| fail(annotation, m)))
                .transpose()
        };
        Ok(Overrides {
            skip_outbound_ports: list(a::SKIP_OUTBOUND_PORTS)?,
            skip_inbound_ports: list(a::SKIP_INBOUND_PORTS)?,
            skip_outbound_cidrs: cidrs(a::SKIP_OUTBOUND_CIDRS)?,
            cpu_request: quantity(a::PROXY_CPU_REQUEST)?,
            memory_request: quantity(a::PROXY_MEMORY_REQUEST)?,
            cpu_limit: quantity(a::PROXY_CPU_LIMIT)?,
            memory_limit: quantity(a::PROXY_MEMORY_LIMIT)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Overrides, String> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Overrides::read(&map).map_err(|e| e.to_string())
    }

    #[test]
    fn no_annotations_ask_for_nothing() {
        assert_eq!(
            read(&[("app.kubernetes.io/name", "web")]),
            Ok(Overrides::default())
        );
    }

    #[test]
    fn each_annotation_is_read() {
        let o = read(&[
            (a::SKIP_OUTBOUND_PORTS, "25,3306"),
            (a::SKIP_INBOUND_PORTS, "22"),
            (a::SKIP_OUTBOUND_CIDRS, "169.254.169.254/32"),
            (a::PROXY_CPU_REQUEST, "50m"),
            (a::PROXY_MEMORY_REQUEST, "64Mi"),
            (a::PROXY_CPU_LIMIT, "1"),
            (a::PROXY_MEMORY_LIMIT, "256Mi"),
        ])
        .unwrap();
        assert_eq!(o.skip_outbound_ports.len(), 2);
        assert_eq!(o.skip_inbound_ports.len(), 1);
        assert_eq!(o.skip_outbound_cidrs.len(), 1);
        assert_eq!(o.cpu_request, Some(Quantity("50m".into())));
        assert_eq!(o.memory_limit, Some(Quantity("256Mi".into())));
    }

    #[test]
    fn a_bad_value_names_the_annotation() {
        assert_eq!(
            read(&[(a::SKIP_OUTBOUND_PORTS, "25,smtp")]).unwrap_err(),
            r#"annotation trellis.dev/skip-outbound-ports: "smtp" is not a port (1-65535); write e.g. 25 or 8000-8100"#
        );
        assert!(
            read(&[(a::PROXY_MEMORY_LIMIT, "a lot")])
                .unwrap_err()
                .starts_with(
                    r#"annotation trellis.dev/proxy-memory-limit: "a lot" is not a quantity"#
                )
        );
        assert!(
            read(&[(a::SKIP_OUTBOUND_CIDRS, "10.0.0.0/40")])
                .unwrap_err()
                .contains("is not an IP network")
        );
    }
}
