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
        labels: std::sync::Arc::new(BTreeMap::from([("app".to_owned(), app.to_owned())])),
        addresses: vec![ip.parse().expect("an IP address")],
        ports: vec![WorkloadPort {
            name: "http".into(),
            port: 8080,
            protocol: ProtocolHint::Unspecified,
        }],
        ready: true,
        meshed: true,
        inbound_port: None,
        admin_port: None,
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

/// A Namespace with annotations (`trellis.dev/permissive`, ...).
pub fn namespace(name: &str, annotations: &[(&str, &str)]) -> SourceObject {
    SourceObject::Namespace(crate::index::Namespace {
        name: name.to_owned(),
        labels: Default::default(),
        annotations: annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

/// A TrafficTarget `ns/name` to the ServiceAccount `destination`. A source is `sa` or
/// `namespace/sa`; a rule is `Kind name [match...]` (`HTTPRouteGroup api-routes get-api`).
pub fn traffic_target(
    ns: &str,
    name: &str,
    destination: &str,
    sources: &[&str],
    rules: &[&str],
) -> SourceObject {
    let sources: Vec<String> = sources
        .iter()
        .map(|s| match s.split_once('/') {
            Some((sns, sa)) => format!("{{kind: ServiceAccount, name: {sa}, namespace: {sns}}}"),
            None => format!("{{kind: ServiceAccount, name: {s}}}"),
        })
        .collect();
    let rules: Vec<String> = rules
        .iter()
        .map(|r| {
            let mut words = r.split_whitespace();
            let kind = words.next().expect("a rule kind");
            let rule = words.next().expect("a rule name");
            let matches: Vec<&str> = words.collect();
            format!(
                "{{kind: {kind}, name: {rule}, matches: [{}]}}",
                matches.join(", ")
            )
        })
        .collect();
    object(&format!(
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\n\
         metadata: {{name: {name}, namespace: {ns}}}\n\
         spec:\n  destination: {{kind: ServiceAccount, name: {destination}}}\n\
         \x20 sources: [{}]\n  rules: [{}]\n",
        sources.join(", "),
        rules.join(", ")
    ))
}

/// A TCPRoute (`kind` `TCPRoute`) or UDPRoute `ns/name` selecting `ports` (`[]`: all).
pub fn port_route(kind: &str, ns: &str, name: &str, ports: &[u16]) -> SourceObject {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    object(&format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: {kind}\n\
         metadata: {{name: {name}, namespace: {ns}}}\nspec: {{matches: {{ports: [{}]}}}}\n",
        ports.join(", ")
    ))
}

/// The MeshConfig `default` with `spec` (YAML flow mapping body: `permissive: true`).
pub fn mesh_config(spec: &str) -> SourceObject {
    object(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: {{name: default}}\nspec: {{{spec}}}\n"
    ))
}
