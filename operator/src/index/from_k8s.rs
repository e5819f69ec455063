//! Kubernetes objects (from manifests or the API server) into the index's model.

use std::net::IpAddr;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use smi_crds::validate::{DEFAULT_NAMESPACE, Problem};
use trellis_proxy_api::v1::ProtocolHint;

use super::model::{Namespace, ObjKey, Service, ServicePort, TargetPort};

/// A Service; `Err` names the field that cannot be used.
pub fn service(svc: &core::Service) -> Result<Service, Problem> {
    let name = svc
        .metadata
        .name
        .as_deref()
        .ok_or_else(|| Problem::error("metadata.name", "required"))?;
    let namespace = svc
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let spec = svc.spec.clone().unwrap_or_default();
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().flatten().enumerate() {
        let port = u16::try_from(p.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Problem::error(
                    format!("spec.ports[{i}].port"),
                    format!("must be a port number between 1 and 65535, got {}", p.port),
                )
            })?;
        let target_port = match &p.target_port {
            None => TargetPort::Number(port),
            Some(IntOrString::Int(n)) => {
                TargetPort::Number(u16::try_from(*n).ok().filter(|n| *n > 0).ok_or_else(|| {
                    Problem::error(
                        format!("spec.ports[{i}].targetPort"),
                        format!(
                            "must be a port number between 1 and 65535 or a port name, got {n}"
                        ),
                    )
                })?)
            }
            Some(IntOrString::String(s)) => match s.parse::<u16>() {
                Ok(n) if n > 0 => TargetPort::Number(n),
                _ => TargetPort::Name(s.clone()),
            },
        };
        let name = p.name.clone().unwrap_or_default();
        ports.push(ServicePort {
            protocol: protocol_hint(p.app_protocol.as_deref(), &name),
            udp: p.protocol.as_deref() == Some("UDP"),
            name,
            port,
            target_port,
        });
    }
    let cluster_ips = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .collect();
    Ok(Service {
        key: ObjKey::new(namespace, name),
        ports,
        selector: spec.selector.map(|s| s.into_iter().collect()),
        cluster_ips,
    })
}

pub fn namespace(ns: &core::Namespace) -> Option<Namespace> {
    Some(Namespace {
        name: ns.metadata.name.clone()?,
        labels: ns
            .metadata
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        annotations: ns
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// `appProtocol` first, then the Istio-style port name prefix (`http-web`, `grpc`).
pub fn protocol_hint(app_protocol: Option<&str>, port_name: &str) -> ProtocolHint {
    let by_name = |name: &str| match name.split('-').next().unwrap_or_default() {
        "http" => ProtocolHint::Http1,
        "http2" | "h2c" => ProtocolHint::Http2,
        "grpc" => ProtocolHint::Grpc,
        "tcp" | "tls" | "mongo" | "mysql" | "redis" => ProtocolHint::Opaque,
        _ => ProtocolHint::Unspecified,
    };
    match app_protocol.map(str::to_ascii_lowercase).as_deref() {
        Some("http") => ProtocolHint::Http1,
        Some("kubernetes.io/h2c" | "http2" | "h2c") => ProtocolHint::Http2,
        Some("grpc") => ProtocolHint::Grpc,
        Some("tcp" | "tls" | "kubernetes.io/ws" | "kubernetes.io/wss") => ProtocolHint::Opaque,
        _ => by_name(&port_name.to_ascii_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(yaml: &str) -> core::Service {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn ports_target_ports_and_protocol_hints() {
        let s = service(&mk("metadata: {name: web, namespace: shop}\n\
             spec:\n  selector: {app: web}\n  clusterIP: 10.96.0.10\n  ports:\n\
             \x20 - {name: http, port: 80, targetPort: web-http}\n\
             \x20 - {name: grpc-api, port: 9090, targetPort: 9091}\n\
             \x20 - {name: metrics, port: 9100, appProtocol: tcp}\n\
             \x20 - {name: dns, port: 53, protocol: UDP}\n"))
        .unwrap();
        assert_eq!(s.key, ObjKey::new("shop", "web"));
        assert_eq!(s.cluster_ips, vec!["10.96.0.10".parse::<IpAddr>().unwrap()]);
        let got: Vec<_> = s
            .ports
            .iter()
            .map(|p| (p.port, p.target_port.clone(), p.protocol, p.udp))
            .collect();
        assert_eq!(
            got,
            [
                (
                    80,
                    TargetPort::Name("web-http".into()),
                    ProtocolHint::Http1,
                    false
                ),
                (9090, TargetPort::Number(9091), ProtocolHint::Grpc, false),
                (9100, TargetPort::Number(9100), ProtocolHint::Opaque, false),
                (53, TargetPort::Number(53), ProtocolHint::Unspecified, true),
            ]
        );
    }

    #[test]
    fn a_service_without_namespace_is_in_default() {
        let s = service(&mk("metadata: {name: web}\nspec: {ports: [{port: 80}]}\n")).unwrap();
        assert_eq!(s.key, ObjKey::new("default", "web"));
        assert_eq!(s.selector, None);
    }

    #[test]
    fn a_bad_target_port_names_the_field() {
        let e = service(&mk(
            "metadata: {name: web}\nspec: {ports: [{port: 80, targetPort: 70000}]}\n",
        ))
        .unwrap_err();
        assert_eq!(e.field, "spec.ports[0].targetPort");
    }
}
