//! Builders that keep compile tests short: a mesh from YAML manifests and workloads.

use std::collections::BTreeMap;

use trellis_proxy_api::v1::ProtocolHint;

use crate::index::{
    Options, Origin, Service, ServicePort, Snapshot, SourceObject, TargetPort, Update, Workload,
    WorkloadPort, from_k8s,
};

/// One object from YAML: a Service, a Namespace or any SMI/Trellis resource.
pub fn object(yaml: &str) -> SourceObject {
    let value: serde_json::Value = serde_saphyr::from_str(yaml).expect("test YAML parses");
    match value["kind"].as_str() {
        Some("Service") => SourceObject::Service(
            from_k8s::service(&serde_json::from_value(value).unwrap()).unwrap(),
        ),
        Some("Namespace") => SourceObject::Namespace(
            from_k8s::namespace(&serde_json::from_value(value).unwrap()).unwrap(),
        ),
        _ => {
            let resource = smi_crds::dynamic::parse(value)
                .expect("test resource parses")
                .expect("a kind Trellis serves");
            SourceObject::Resource(Box::new(resource), Origin::source("test"))
        }
    }
}

/// A Service `ns/name` selecting `app: <name>`, with ports `(name, port, targetPort)`.
pub fn service(ns: &str, name: &str, ports: &[(&str, u16, u16)]) -> SourceObject {
    SourceObject::Service(Service {
        key: crate::index::ObjKey::new(ns, name),
        ports: ports
            .iter()
            .map(|(port_name, port, target)| ServicePort {
                name: (*port_name).to_owned(),
                port: *port,
                target_port: TargetPort::Number(*target),
                protocol: from_k8s::protocol_hint(None, port_name),
                udp: false,
            })
            .collect(),
        selector: Some([("app".to_owned(), name.to_owned())].into()),
        cluster_ips: vec![],
    })
}

/// A ready, meshed workload `ns/name` labelled `app: <app>`, ServiceAccount `<app>`.
pub fn workload(ns: &str, name: &str, app: &str, ip: &str) -> Workload {
    Workload {
        key: crate::index::ObjKey::new(ns, name),
        service_account: app.to_owned(),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        addresses: vec![ip.parse().expect("an IP address")],
        ports: vec![WorkloadPort {
            name: "http".into(),
            port: 8080,
            protocol: ProtocolHint::Unspecified,
        }],
        ready: true,
        meshed: true,
    }
}

/// The snapshot of a local-mode mesh holding `objects` and `workloads`.
pub fn mesh(objects: Vec<SourceObject>, workloads: Vec<Workload>) -> Snapshot {
    Snapshot::build(
        Options {
            endpoints_from_workloads: true,
        },
        objects
            .into_iter()
            .map(Update::Apply)
            .chain(workloads.into_iter().map(Update::Workload)),
    )
}
