//! What the index holds: Services, endpoints, workloads and namespaces in a mesh-neutral
//! form (from Kubernetes objects or from manifests plus registered workloads), and the
//! keys that name every piece a compiled config can depend on.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use trellis_proxy_api::v1::ProtocolHint;

/// A namespaced name (`shop/web`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service: the name clients call, its ports and how its endpoints are chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub key: ObjKey,
    pub ports: Vec<ServicePort>,
    /// Pods (or registered workloads) carrying all these labels are its endpoints. `None`:
    /// endpoints are managed by someone else (EndpointSlices without a selector).
    pub selector: Option<BTreeMap<String, String>>,
    /// Virtual addresses (`clusterIP`s); an intercepted connection to one of them is a call
    /// to this Service.
    pub cluster_ips: Vec<IpAddr>,
}

impl Service {
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.port == port)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServicePort {
    /// Empty for the single unnamed port of a Service.
    pub name: String,
    pub port: u16,
    pub target_port: TargetPort,
    /// From `appProtocol` (`http`, `kubernetes.io/h2c`, `grpc`, `tcp`) or the port name
    /// prefix (`http-`, `grpc-`, `tcp-`), as Istio reads it.
    pub protocol: ProtocolHint,
    /// `UDP` ports are not proxied.
    pub udp: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    /// A named container (workload) port.
    Name(String),
}

/// A workload: a Pod in Kubernetes, a registered proxy in local mode.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub key: ObjKey,
    pub service_account: String,
    /// Shared with the workload's endpoints.
    pub labels: Arc<BTreeMap<String, String>>,
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<WorkloadPort>,
    pub ready: bool,
    /// Has a Trellis proxy (mTLS identity); unmeshed workloads are plaintext endpoints.
    pub meshed: bool,
    /// Local mode without interception: every port of the workload is reached through its
    /// proxy's inbound listener at this port, which forwards to the app.
    pub inbound_port: Option<u16>,
    /// Where the workload's proxy serves its admin endpoint (`/metrics`), at the workload's
    /// addresses: the port a proxy registered with (local mode), the default
    /// [`ports::ADMIN`](trellis_proxy_api::ports::ADMIN) for meshed Pods; `None` without a
    /// proxy or when the proxy did not say. The embedded canary metrics provider scrapes it.
    pub admin_port: Option<u16>,
}

impl Workload {
    /// Whether every label of `selector` is on the workload (an empty selector selects
    /// nothing, as for Services).
    pub fn selected_by(&self, selector: &BTreeMap<String, String>) -> bool {
        !selector.is_empty()
            && selector
                .iter()
                .all(|(k, v)| self.labels.get(k).is_some_and(|l| l == v))
    }

    pub fn named_port(&self, name: &str) -> Option<&WorkloadPort> {
        self.ports.iter().find(|p| p.name == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadPort {
    pub name: String,
    pub port: u16,
    pub protocol: ProtocolHint,
}

/// The endpoints of one Service, as an EndpointSlice holds them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointSet {
    /// Sorted by address.
    pub endpoints: Vec<Endpoint>,
}

impl EndpointSet {
    pub fn ready(&self) -> impl Iterator<Item = &Endpoint> {
        self.endpoints.iter().filter(|e| e.ready)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// Service port name (empty for an unnamed port) -> the port the endpoint listens on.
    /// Shared between endpoints that resolve alike (most of a Service's).
    pub ports: Arc<BTreeMap<String, u16>>,
    pub ready: bool,
    /// The ServiceAccount of a meshed endpoint; `None`: unmeshed (plaintext).
    pub service_account: Option<String>,
    /// Name of the workload (Pod) behind the endpoint.
    pub workload: Option<String>,
    pub labels: Arc<BTreeMap<String, String>>,
}

/// A namespace's labels and annotations (`trellis.dev/permissive`, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Namespace {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// Namespace annotations Trellis reads.
pub mod annotations {
    /// `"true"`: every meshed request to workloads of the namespace is allowed
    /// (SMI-SEMANTICS Access 4).
    pub const PERMISSIVE: &str = "trellis.dev/permissive";
    /// `"true"`: workloads of the namespace accept plaintext clients outside the mesh
    /// (SMI-SEMANTICS Access 5).
    pub const ALLOW_UNMESHED: &str = "trellis.dev/allow-unmeshed";
}

/// A piece of the index a compiled config can depend on. The index names the keys each
/// change touches; a subscription is recompiled when one of the keys it read changed.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// A Service (present or not).
    Service(ObjKey),
    /// The endpoints of a Service.
    Endpoints(ObjKey),
    /// The set of Services of a namespace or any of their ports or selectors.
    ServicesIn(Arc<str>),
    /// The TrafficSplits whose root is this Service.
    SplitsOf(ObjKey),
    RouteGroup(ObjKey),
    TcpRoute(ObjKey),
    UdpRoute(ObjKey),
    /// The TrafficPolicies of this Service.
    PoliciesOf(ObjKey),
    /// A Canary (added, changed or removed).
    Canary(ObjKey),
    /// The TrafficTargets whose destination is this ServiceAccount (`namespace/name`).
    TargetsOf(ObjKey),
    Workload(ObjKey),
    Namespace(Arc<str>),
    MeshConfig,
    /// Whatever is reachable at this address (a Service's cluster IP, a workload).
    Ip(IpAddr),
}

/// A resource Trellis reports status for (`TrafficSplit shop/web-rollout`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    pub kind: &'static str,
    /// `None` for cluster-scoped resources (MeshConfig).
    pub namespace: Option<Arc<str>>,
    pub name: Arc<str>,
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where a resource came from, for messages a user can act on (`apps/web.yaml:12`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    /// `git`, `dir`, `kube`, ...
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `metadata.generation` (Kubernetes) or the Git revision the object was read at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

impl Origin {
    pub fn source(source: &str) -> Self {
        Self {
            source: source.to_owned(),
            ..Self::default()
        }
    }
}

/// The Service a host names, as clients write it: `web` (in `default_namespace`),
/// `web.shop`, `web.shop.svc`, `web.shop.svc.cluster.local` (any cluster domain), in any
/// case, with or without a trailing dot. `None` for names that cannot be a Service
/// (`example.com` has no `.svc.` and more than two labels; IP addresses).
pub fn service_of_host(default_namespace: &str, host: &str) -> Option<ObjKey> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').collect();
    match labels.as_slice() {
        [name] => Some(ObjKey::new(default_namespace, name)),
        [name, ns] | [name, ns, "svc"] => Some(ObjKey::new(ns, name)),
        [name, ns, "svc", _domain @ ..] => Some(ObjKey::new(ns, name)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_services_in_every_form_clients_write() {
        let shop_web = Some(ObjKey::new("shop", "web"));
        for (host, want) in [
            ("web", shop_web.clone()),
            ("WEB", shop_web.clone()),
            ("web.shop", shop_web.clone()),
            ("web.shop.", shop_web.clone()),
            ("web.shop.svc", shop_web.clone()),
            ("web.shop.svc.cluster.local", shop_web.clone()),
            ("Web.Shop.SVC.cluster.local.", shop_web.clone()),
            ("web.shop.svc.corp.example", shop_web.clone()),
            ("api.other", Some(ObjKey::new("other", "api"))),
            ("example.com.au", None),
            ("10.0.0.1", None),
            ("", None),
        ] {
            assert_eq!(service_of_host("shop", host), want, "{host}");
        }
    }

    #[test]
    fn an_empty_selector_selects_nothing() {
        let w = Workload {
            key: ObjKey::new("shop", "web-1"),
            service_account: "web".into(),
            labels: Arc::new([("app".to_owned(), "web".to_owned())].into()),
            addresses: vec![],
            ports: vec![],
            ready: true,
            meshed: true,
            inbound_port: None,
            admin_port: None,
        };
        assert!(!w.selected_by(&BTreeMap::new()));
        assert!(w.selected_by(&[("app".to_owned(), "web".to_owned())].into()));
        assert!(!w.selected_by(&[("app".to_owned(), "api".to_owned())].into()));
    }
}
