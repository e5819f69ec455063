//! EndpointSlices into a Service's endpoints (pure).
//!
//! The index derives a Service's endpoints from the Pods its selector matches, so slices
//! matter for Services without a selector (endpoints written by hand or by another
//! controller): their slices are merged into one [`EndpointSet`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::index::{Endpoint, EndpointSet, ObjKey};

/// The label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The Service a slice belongs to.
pub fn service_of(slice: &EndpointSlice) -> Option<ObjKey> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get(SERVICE_NAME)?;
    Some(ObjKey::new(meta.namespace.as_deref()?, service))
}

/// The endpoints of every slice of one Service, sorted by address. IPv4 and IPv6 slices
/// both count; FQDN slices hold no addresses and add nothing.
pub fn endpoint_set<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> EndpointSet {
    let mut endpoints = Vec::new();
    for slice in slices {
        if slice.address_type == "FQDN" {
            continue;
        }
        let ports: Arc<BTreeMap<String, u16>> = Arc::new(
            slice
                .ports
                .iter()
                .flatten()
                .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
                .filter_map(|p| {
                    let port = u16::try_from(p.port?).ok()?;
                    Some((p.name.clone().unwrap_or_default(), port))
                })
                .collect(),
        );
        for e in &slice.endpoints {
            // `ready` unset means ready (the API's documented default).
            let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            let workload = e
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| r.name.clone());
            for address in &e.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                endpoints.push(Endpoint {
                    ip,
                    ports: ports.clone(),
                    ready,
                    service_account: None,
                    workload: workload.clone(),
                    labels: Arc::default(),
                });
            }
        }
    }
    endpoints.sort_by_key(|e| e.ip);
    endpoints.dedup_by(|a, b| a.ip == b.ip && a.ports == b.ports);
    EndpointSet { endpoints }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(yaml: &str) -> EndpointSlice {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn the_slices_of_a_service_merge_into_its_endpoints_with_their_ports_and_readiness() {
        let a = slice(
            "
metadata: {name: db-abc, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv4
ports: [{name: pg, port: 5432}, {name: stats, port: 9000, protocol: UDP}]
endpoints:
- addresses: [10.9.0.2]
  conditions: {ready: false}
- addresses: [10.9.0.1]
  targetRef: {kind: Pod, name: db-0}
",
        );
        let b = slice(
            "
metadata: {name: db-def, namespace: shop, labels: {kubernetes.io/service-name: db}}
addressType: IPv6
ports: [{name: pg, port: 5432}]
endpoints: [{addresses: ['fd00::3']}]
",
        );
        assert_eq!(service_of(&a), Some(ObjKey::new("shop", "db")));
        let set = endpoint_set([&a, &b]);
        let seen: Vec<_> = set
            .endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.ready, e.workload.clone()))
            .collect();
        assert_eq!(
            seen,
            [
                ("10.9.0.1".to_owned(), true, Some("db-0".to_owned())),
                ("10.9.0.2".to_owned(), false, None),
                ("fd00::3".to_owned(), true, None),
            ]
        );
        assert_eq!(
            *set.endpoints[0].ports,
            BTreeMap::from([("pg".to_owned(), 5432)]),
            "TCP ports only"
        );
        assert_eq!(
            set.endpoints[0].service_account, None,
            "plaintext endpoints"
        );
    }

    #[test]
    fn a_slice_without_the_service_label_belongs_to_no_service() {
        let orphan =
            slice("metadata: {name: x, namespace: shop}\naddressType: IPv4\nendpoints: []\n");
        assert_eq!(service_of(&orphan), None);
    }
}
