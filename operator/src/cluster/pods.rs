//! Pods as workloads: what the index needs of a Pod (pure).
//!
//! Every Pod with an address is a workload, meshed or not: the index matches Service
//! selectors against workloads to make endpoints, as the EndpointSlice controller does, and
//! a meshed workload's endpoints carry its ServiceAccount (the identity its proxy proves).

use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use trellis_proxy_api::ports;

use crate::index::from_k8s::protocol_hint;
use crate::index::{ObjKey, Workload, WorkloadPort};

use crate::inject::names::PROXY_CONTAINER;

/// The workload a Pod is; `None` while it has no address or once it has finished (its
/// workload, if any, is then removed).
pub fn workload(pod: &core::Pod) -> Option<Workload> {
    let meta = &pod.metadata;
    let key = ObjKey::new(meta.namespace.as_deref()?, meta.name.as_deref()?);
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let mut addresses: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if addresses.is_empty() {
        addresses.extend(
            status
                .pod_ip
                .as_deref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    if addresses.is_empty() {
        return None;
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let meshed = is_meshed(&spec);
    let ready = meta.deletion_timestamp.is_none()
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
    let ports = spec
        .containers
        .iter()
        .filter(|c| c.name != PROXY_CONTAINER)
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| {
            let name = p.name.clone().unwrap_or_default();
            Some(WorkloadPort {
                protocol: protocol_hint(None, &name),
                name,
                port: u16::try_from(p.container_port).ok()?,
            })
        })
        .collect();
    Some(Workload {
        key,
        service_account: spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".into()),
        labels: Arc::new(
            meta.labels
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        ),
        addresses,
        ports,
        ready,
        meshed,
        inbound_port: None,
        admin_port: meshed.then_some(ports::ADMIN),
    })
}

/// Whether the Pod runs the Trellis proxy: as a container, or as a native sidecar (an init
/// container that keeps running).
pub fn is_meshed(spec: &core::PodSpec) -> bool {
    spec.containers.iter().any(|c| c.name == PROXY_CONTAINER)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == PROXY_CONTAINER && c.restart_policy.as_deref() == Some("Always"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> core::Pod {
        serde_saphyr::from_str(yaml).unwrap()
    }

    const MESHED: &str = "
metadata:
  name: web-7d4f
  namespace: shop
  labels: {app: web, version: v2}
spec:
  serviceAccountName: web
  containers:
  - name: app
    ports: [{name: http, containerPort: 8080}, {name: dns, containerPort: 53, protocol: UDP}]
  - name: trellis-proxy
    ports: [{name: trellis-admin, containerPort: 4191}]
status:
  phase: Running
  podIP: 10.1.0.7
  podIPs: [{ip: 10.1.0.7}, {ip: 'fd00::7'}]
  conditions: [{type: Ready, status: 'True'}]
";

    #[test]
    fn a_meshed_pod_is_a_workload_with_its_service_account_addresses_and_app_ports() {
        let w = workload(&pod(MESHED)).unwrap();
        assert_eq!(w.key, ObjKey::new("shop", "web-7d4f"));
        assert_eq!(w.service_account, "web");
        assert_eq!(w.labels.get("version").map(String::as_str), Some("v2"));
        assert_eq!(
            w.addresses,
            [
                "10.1.0.7".parse::<IpAddr>().unwrap(),
                "fd00::7".parse().unwrap()
            ]
        );
        assert!(w.ready && w.meshed);
        assert_eq!(
            w.admin_port,
            Some(4191),
            "where the operator scrapes /metrics"
        );
        let ports: Vec<_> = w.ports.iter().map(|p| (p.name.as_str(), p.port)).collect();
        assert_eq!(
            ports,
            [("http", 8080)],
            "TCP ports of the app, not the proxy's"
        );
    }

    #[test]
    fn a_pod_without_the_proxy_is_an_unmeshed_workload_of_the_default_service_account() {
        let w = workload(&pod("
metadata: {name: legacy, namespace: shop}
spec:
  containers: [{name: app}]
status: {phase: Running, podIP: 10.1.0.8, conditions: [{type: Ready, status: 'False'}]}
"))
        .unwrap();
        assert!(!w.meshed && !w.ready);
        assert_eq!(w.service_account, "default");
        assert_eq!(w.admin_port, None);
    }

    #[test]
    fn a_native_sidecar_proxy_makes_the_pod_meshed() {
        let w = workload(&pod("
metadata: {name: job, namespace: shop}
spec:
  initContainers: [{name: trellis-init}, {name: trellis-proxy, restartPolicy: Always}]
  containers: [{name: app}]
status: {phase: Running, podIP: 10.1.0.9}
"))
        .unwrap();
        assert!(w.meshed);
    }

    #[test]
    fn a_terminating_pod_is_not_ready_and_a_finished_or_unscheduled_pod_is_no_workload() {
        let mut terminating = pod(MESHED);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
            ));
        assert!(!workload(&terminating).unwrap().ready);

        let mut finished = pod(MESHED);
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(workload(&finished), None);

        let pending = pod("metadata: {name: p, namespace: shop}\nstatus: {phase: Pending}\n");
        assert_eq!(workload(&pending), None);
    }
}
