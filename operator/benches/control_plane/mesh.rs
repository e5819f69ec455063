//! The generated mesh: deterministic, computed from a few numbers, never held twice.
//!
//! ```text
//! namespace ns-NNN (services / per_namespace of them), each with 100 Services svc-III:
//!   selector {app: svc-III}; port 80 (http, -> 8080); odd III also 9090 (grpc, -> 9090)
//!   endpoints_per_service workloads svc-III-K (labels app, version; SA svc-III; one IP)
//!   III % 10 == 0: TrafficSplit svc-III-rollout, backends svc-III+1 (90) and svc-III+2 (10)
//!   every Service: TrafficTarget to-svc-III (sources: SAs of the next three Services,
//!     rules: HTTPRouteGroup `routes`, matches get and post)
//!   III % 100 == 5: TrafficPolicy svc-III (timeout, retries, circuit breaker)
//! ```
//!
//! Objects are made on demand from their index numbers, so the benchmark itself holds no
//! copy of the mesh: what the process holds is the index's.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;
use trellis_operator::index::{
    Namespace, ObjKey, Origin, Service, ServicePort, SourceObject, TargetPort, Workload,
    WorkloadPort,
};
use trellis_proxy_api::v1::ProtocolHint;

/// Every `SPLIT_EVERY`-th Service of a namespace is a split root.
pub const SPLIT_EVERY: usize = 10;
/// Every `POLICY_EVERY`-th Service (offset 5) has a TrafficPolicy.
pub const POLICY_EVERY: usize = 100;
/// The port every Service has; odd Services also have [`GRPC_PORT`].
pub const HTTP_PORT: u16 = 80;
pub const GRPC_PORT: u16 = 9090;

#[derive(Clone, Copy, Debug)]
pub struct Mesh {
    pub services: usize,
    pub per_namespace: usize,
    pub endpoints_per_service: usize,
}

/// What the generated mesh holds, for the report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Counts {
    pub namespaces: usize,
    pub services: usize,
    pub service_ports: usize,
    pub workloads: usize,
    pub traffic_splits: usize,
    pub traffic_targets: usize,
    pub http_route_groups: usize,
    pub traffic_policies: usize,
}

impl Mesh {
    pub fn namespaces(&self) -> usize {
        self.services.div_ceil(self.per_namespace)
    }

    pub fn workloads(&self) -> usize {
        self.services * self.endpoints_per_service
    }

    pub fn namespace_of(&self, service: usize) -> usize {
        service / self.per_namespace
    }

    fn local(&self, service: usize) -> usize {
        service % self.per_namespace
    }

    pub fn namespace_name(ns: usize) -> String {
        format!("ns-{ns:03}")
    }

    pub fn service_name(&self, service: usize) -> String {
        format!("svc-{:03}", self.local(service))
    }

    pub fn service_key(&self, service: usize) -> ObjKey {
        ObjKey::new(
            &Self::namespace_name(self.namespace_of(service)),
            &self.service_name(service),
        )
    }

    /// The ports of a Service: 80, and 9090 for odd ones.
    pub fn ports(&self, service: usize) -> &'static [u16] {
        if self.local(service) % 2 == 1 {
            &[HTTP_PORT, GRPC_PORT]
        } else {
            &[HTTP_PORT]
        }
    }

    /// The backends of the split rooted at `service`, if it is a root.
    pub fn split_backends(&self, service: usize) -> Option<[usize; 2]> {
        let local = self.local(service);
        let is_root = local.is_multiple_of(SPLIT_EVERY)
            && local + 2 < self.per_namespace
            && service + 2 < self.services;
        is_root.then_some([service + 1, service + 2])
    }

    fn has_policy(&self, service: usize) -> bool {
        self.local(service) % POLICY_EVERY == 5
    }

    pub fn counts(&self) -> Counts {
        let services = 0..self.services;
        Counts {
            namespaces: self.namespaces(),
            services: self.services,
            service_ports: services.clone().map(|s| self.ports(s).len()).sum(),
            workloads: self.workloads(),
            traffic_splits: services
                .clone()
                .filter(|s| self.split_backends(*s).is_some())
                .count(),
            traffic_targets: self.services,
            http_route_groups: self.namespaces(),
            traffic_policies: services.filter(|s| self.has_policy(*s)).count(),
        }
    }

    /// Everything a manifest source would hold: Namespaces, Services, SMI and Trellis
    /// resources (the workloads register separately).
    pub fn manifests(&self) -> Vec<SourceObject> {
        let mut objects = Vec::new();
        for ns in 0..self.namespaces() {
            objects.push(SourceObject::Namespace(Namespace {
                name: Self::namespace_name(ns),
                ..Namespace::default()
            }));
            objects.push(resource(route_group(&Self::namespace_name(ns))));
        }
        for s in 0..self.services {
            objects.push(SourceObject::Service(self.service(s)));
            objects.push(resource(self.traffic_target(s)));
            if let Some(backends) = self.split_backends(s) {
                objects.push(resource(self.traffic_split(s, backends, 90)));
            }
            if self.has_policy(s) {
                objects.push(resource(self.traffic_policy(s)));
            }
        }
        objects
    }

    pub fn service(&self, s: usize) -> Service {
        let name = self.service_name(s);
        Service {
            key: self.service_key(s),
            ports: self
                .ports(s)
                .iter()
                .map(|port| ServicePort {
                    name: if *port == HTTP_PORT { "http" } else { "grpc" }.into(),
                    port: *port,
                    target_port: TargetPort::Number(if *port == HTTP_PORT { 8080 } else { 9090 }),
                    protocol: if *port == HTTP_PORT {
                        ProtocolHint::Http1
                    } else {
                        ProtocolHint::Grpc
                    },
                    udp: false,
                })
                .collect(),
            selector: Some(BTreeMap::from([("app".to_owned(), name)])),
            cluster_ips: vec![IpAddr::V4(Ipv4Addr::from(0xAC10_0000 + s as u32 + 1))],
        }
    }

    /// The TrafficSplit rooted at `root`, `weight` % to its first backend.
    pub fn traffic_split(
        &self,
        root: usize,
        backends: [usize; 2],
        weight: u32,
    ) -> serde_json::Value {
        json!({
            "apiVersion": "split.smi-spec.io/v1alpha4",
            "kind": "TrafficSplit",
            "metadata": {
                "name": format!("{}-rollout", self.service_name(root)),
                "namespace": Self::namespace_name(self.namespace_of(root)),
            },
            "spec": {
                "service": self.service_name(root),
                "backends": [
                    {"service": self.service_name(backends[0]), "weight": weight},
                    {"service": self.service_name(backends[1]), "weight": 100 - weight},
                ],
            },
        })
    }

    fn traffic_target(&self, s: usize) -> serde_json::Value {
        let ns = Self::namespace_name(self.namespace_of(s));
        let base = s - self.local(s);
        let sources: Vec<_> = (1..=3)
            .map(|d| {
                let source = base + (self.local(s) + d) % self.per_namespace;
                json!({"kind": "ServiceAccount", "name": self.service_name(source), "namespace": ns})
            })
            .collect();
        json!({
            "apiVersion": "access.smi-spec.io/v1alpha3",
            "kind": "TrafficTarget",
            "metadata": {"name": format!("to-{}", self.service_name(s)), "namespace": ns},
            "spec": {
                "destination": {"kind": "ServiceAccount", "name": self.service_name(s), "namespace": ns},
                "rules": [{"kind": "HTTPRouteGroup", "name": "routes", "matches": ["get", "post"]}],
                "sources": sources,
            },
        })
    }

    fn traffic_policy(&self, s: usize) -> serde_json::Value {
        json!({
            "apiVersion": "trellis.dev/v1alpha1",
            "kind": "TrafficPolicy",
            "metadata": {
                "name": self.service_name(s),
                "namespace": Self::namespace_name(self.namespace_of(s)),
            },
            "spec": {
                "service": self.service_name(s),
                "timeout": "5s",
                "retries": {"attempts": 2, "perTryTimeout": "1s", "retryOn": ["5xx", "connect-failure"]},
                "circuitBreaker": {"consecutiveFailures": 5},
            },
        })
    }

    /// Workload `k` of Service `s` (`k >= endpoints_per_service`: one added later).
    pub fn workload(&self, s: usize, k: usize) -> Workload {
        let name = self.service_name(s);
        // Unique addresses: base workloads first, then the ones added by changes.
        let n = if k < self.endpoints_per_service {
            s * self.endpoints_per_service + k
        } else {
            self.workloads() + s * 1_000 + (k - self.endpoints_per_service)
        };
        Workload {
            key: ObjKey::new(
                &Self::namespace_name(self.namespace_of(s)),
                &format!("{name}-{k}"),
            ),
            service_account: name.clone(),
            labels: std::sync::Arc::new(BTreeMap::from([
                ("app".to_owned(), name),
                ("version".to_owned(), "v1".to_owned()),
            ])),
            addresses: vec![IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + n as u32 + 1))],
            ports: vec![
                WorkloadPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: ProtocolHint::Http1,
                },
                WorkloadPort {
                    name: "grpc".into(),
                    port: 9090,
                    protocol: ProtocolHint::Grpc,
                },
            ],
            ready: true,
            meshed: true,
            inbound_port: None,
            admin_port: None,
        }
    }
}

fn route_group(ns: &str) -> serde_json::Value {
    json!({
        "apiVersion": "specs.smi-spec.io/v1alpha4",
        "kind": "HTTPRouteGroup",
        "metadata": {"name": "routes", "namespace": ns},
        "spec": {"matches": [
            {"name": "get", "pathRegex": "/.*", "methods": ["GET"]},
            {"name": "post", "pathRegex": "/api/.*", "methods": ["POST"]},
        ]},
    })
}

/// A resource as a source holds it.
pub fn resource(value: serde_json::Value) -> SourceObject {
    let resource = smi_crds::dynamic::parse(value)
        .expect("the generated resources are valid")
        .expect("the generated resources are of served kinds");
    SourceObject::Resource(Box::new(resource), Origin::source("bench"))
}
