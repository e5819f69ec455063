//! Endpoints from workloads (local mode): what the EndpointSlice controller does for a
//! Service with a selector, for workloads that registered instead of Pods.
//!
//! A workload selected by the Service is an endpoint at each of its addresses; each
//! Service port's `targetPort` resolves to a number, or by name to the workload's port of
//! that name (a workload without it gets no traffic on that port, as in Kubernetes).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::model::{Endpoint, EndpointSet, Service, TargetPort, Workload};

/// The endpoints of `service` among `workloads` (all of the Service's namespace).
pub fn derive<'a>(service: &Service, workloads: impl Iterator<Item = &'a Workload>) -> EndpointSet {
    let Some(selector) = &service.selector else {
        return EndpointSet::default();
    };
    // Most workloads of a Service resolve its ports alike: they share one map.
    let mut shared: Option<Arc<BTreeMap<String, u16>>> = None;
    let mut endpoints: Vec<Endpoint> = workloads
        .filter(|w| w.selected_by(selector))
        .flat_map(|w| {
            let resolved: BTreeMap<String, u16> = service
                .ports
                .iter()
                .filter_map(|p| {
                    let port = match &p.target_port {
                        TargetPort::Number(n) => *n,
                        TargetPort::Name(name) => w.named_port(name)?.port,
                    };
                    Some((p.name.clone(), w.inbound_port.unwrap_or(port)))
                })
                .collect();
            let ports = match &shared {
                Some(p) if **p == resolved => p.clone(),
                _ => {
                    let p = Arc::new(resolved);
                    shared = Some(p.clone());
                    p
                }
            };
            w.addresses.iter().map(move |ip| Endpoint {
                ip: *ip,
                ports: ports.clone(),
                ready: w.ready,
                service_account: w.meshed.then(|| w.service_account.clone()),
                workload: Some(w.key.name.to_string()),
                labels: w.labels.clone(),
            })
        })
        .collect();
    endpoints.sort_by(|a, b| a.ip.cmp(&b.ip).then_with(|| a.workload.cmp(&b.workload)));
    EndpointSet { endpoints }
}

#[cfg(test)]
mod tests {
    use trellis_proxy_api::v1::ProtocolHint;

    use super::*;
    use crate::index::model::{ObjKey, ServicePort, WorkloadPort};

    fn mk_service(selector: &[(&str, &str)], target: TargetPort) -> Service {
        Service {
            key: ObjKey::new("shop", "web"),
            ports: vec![ServicePort {
                name: "http".into(),
                port: 80,
                target_port: target,
                protocol: ProtocolHint::Unspecified,
                udp: false,
            }],
            selector: Some(
                selector
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            cluster_ips: vec![],
        }
    }

    fn mk_workload(name: &str, ip: &str, labels: &[(&str, &str)], ready: bool) -> Workload {
        Workload {
            key: ObjKey::new("shop", name),
            service_account: "web".into(),
            labels: Arc::new(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            addresses: vec![ip.parse().unwrap()],
            ports: vec![WorkloadPort {
                name: "web-http".into(),
                port: 8080,
                protocol: ProtocolHint::Http1,
            }],
            ready,
            meshed: true,
            inbound_port: None,
            admin_port: None,
        }
    }

    #[test]
    fn selected_workloads_become_endpoints_with_their_readiness_and_identity() {
        let service = mk_service(&[("app", "web")], TargetPort::Number(9000));
        let workloads = [
            mk_workload("web-2", "10.0.0.2", &[("app", "web"), ("v", "2")], false),
            mk_workload("web-1", "10.0.0.1", &[("app", "web")], true),
            mk_workload("api-1", "10.0.0.3", &[("app", "api")], true),
        ];
        let set = derive(&service, workloads.iter());
        let got: Vec<_> = set
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.ip.to_string(),
                    e.ports["http"],
                    e.ready,
                    e.service_account.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("10.0.0.1".to_owned(), 9000, true, Some("web".to_owned())),
                ("10.0.0.2".to_owned(), 9000, false, Some("web".to_owned())),
            ]
        );
        assert_eq!(set.ready().count(), 1);
    }

    #[test]
    fn named_target_ports_resolve_per_workload_and_missing_names_get_no_traffic() {
        let service = mk_service(&[("app", "web")], TargetPort::Name("web-http".into()));
        let mut other = mk_workload("web-2", "10.0.0.2", &[("app", "web")], true);
        other.ports.clear();
        let set = derive(
            &service,
            [
                mk_workload("web-1", "10.0.0.1", &[("app", "web")], true),
                other,
            ]
            .iter(),
        );
        assert_eq!(set.endpoints[0].ports.get("http"), Some(&8080));
        assert_eq!(set.endpoints[1].ports.get("http"), None);
    }

    #[test]
    fn a_workload_reached_through_its_proxy_is_an_endpoint_at_the_inbound_port() {
        let service = mk_service(&[("app", "web")], TargetPort::Number(80));
        let mut w = mk_workload("web-1", "127.0.0.1", &[("app", "web")], true);
        w.inbound_port = Some(4143);
        let set = derive(&service, [w].iter());
        assert_eq!(set.endpoints[0].ports.get("http"), Some(&4143));
    }

    #[test]
    fn unmeshed_workloads_are_plaintext_endpoints() {
        let service = mk_service(&[("app", "web")], TargetPort::Number(80));
        let mut w = mk_workload("web-1", "10.0.0.1", &[("app", "web")], true);
        w.meshed = false;
        let set = derive(&service, [w].iter());
        assert_eq!(set.endpoints[0].service_account, None);
    }
}
