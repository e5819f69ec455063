//! A consistent view of the index at one revision. Cheap to clone: every table is an
//! `Arc`, and the writer copies a table only when a reader still holds the old one.
//!
//! Compile reads a snapshot through a [`Reader`], which records every [`Key`] it looked
//! at: that set is what the compiled config depends on.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;

use smi_crds::access::TrafficTarget;
use smi_crds::specs::{HTTPRouteGroup, TCPRoute, UDPRoute};
use smi_crds::split::TrafficSplit;
use smi_crds::trellis::canary::Canary;
use smi_crds::trellis::mesh_config::{MeshConfig, MeshConfigSpec};
use smi_crds::trellis::traffic_policy::TrafficPolicy;
use smi_crds::validate::Problem;

use super::model::{EndpointSet, Key, Namespace, ObjKey, Origin, ResourceRef, Service, Workload};

pub type Table<K, V> = Arc<HashMap<K, Arc<V>>>;
/// Names (within one namespace) grouped under a key.
pub type Names<K> = Arc<HashMap<K, Arc<BTreeSet<Arc<str>>>>>;

/// What Trellis knows about one resource it read: whether a version is in force and what
/// is wrong with the latest one.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceStatus {
    pub origin: Origin,
    /// The latest version was accepted (no errors) and is in force.
    pub accepted: bool,
    /// An earlier good version is in force while the latest one is rejected.
    pub previous_in_force: bool,
    /// Errors and warnings of the latest version.
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Increments with every batch of changes the writer applies.
    pub revision: u64,
    pub(super) services: Table<ObjKey, Service>,
    pub(super) services_by_ns: Names<Arc<str>>,
    pub(super) services_by_ip: Table<IpAddr, ObjKey>,
    pub(super) endpoints: Table<ObjKey, EndpointSet>,
    pub(super) workloads: Table<ObjKey, Workload>,
    pub(super) workloads_by_ns: Names<Arc<str>>,
    pub(super) workloads_by_ip: Table<IpAddr, ObjKey>,
    pub(super) namespaces: Table<Arc<str>, Namespace>,
    pub(super) splits: Table<ObjKey, TrafficSplit>,
    pub(super) splits_by_root: Names<ObjKey>,
    pub(super) targets: Table<ObjKey, TrafficTarget>,
    pub(super) targets_by_destination: Names<ObjKey>,
    pub(super) route_groups: Table<ObjKey, HTTPRouteGroup>,
    pub(super) tcp_routes: Table<ObjKey, TCPRoute>,
    pub(super) udp_routes: Table<ObjKey, UDPRoute>,
    pub(super) policies: Table<ObjKey, TrafficPolicy>,
    pub(super) policies_by_service: Names<ObjKey>,
    pub(super) canaries: Table<ObjKey, Canary>,
    pub(super) mesh_config: Option<Arc<MeshConfig>>,
    pub(super) statuses: Table<ResourceRef, ResourceStatus>,
}

impl Snapshot {
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            snapshot: self,
            deps: RefCell::default(),
        }
    }

    /// Every resource Trellis read, with its status, sorted.
    pub fn statuses(&self) -> Vec<(&ResourceRef, &ResourceStatus)> {
        let mut all: Vec<_> = self.statuses.iter().map(|(k, v)| (k, &**v)).collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.values().map(|e| e.endpoints.len()).sum()
    }

    /// Every Service key, sorted (for full compiles and status listings).
    pub fn service_keys(&self) -> Vec<ObjKey> {
        let mut keys: Vec<_> = self.services.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// Every workload, sorted by key.
    pub fn workloads(&self) -> Vec<&Workload> {
        let mut all: Vec<_> = self.workloads.values().map(|w| &**w).collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The TrafficSplit in force under `key` (status: checks across resources). Records
    /// no dependency: compile reads splits through [`Reader::splits_of`].
    pub fn traffic_split(&self, key: &ObjKey) -> Option<&TrafficSplit> {
        self.splits.get(key).map(|s| &**s)
    }

    /// The TrafficTarget in force under `key` (status). Records no dependency.
    pub fn traffic_target(&self, key: &ObjKey) -> Option<&TrafficTarget> {
        self.targets.get(key).map(|t| &**t)
    }

    /// The TrafficPolicy in force under `key` (status). Records no dependency.
    pub fn traffic_policy(&self, key: &ObjKey) -> Option<&TrafficPolicy> {
        self.policies.get(key).map(|p| &**p)
    }

    /// The Canary in force under `key` (status). Records no dependency.
    pub fn canary(&self, key: &ObjKey) -> Option<&Canary> {
        self.canaries.get(key).map(|c| &**c)
    }
}

/// Reads a snapshot and remembers what it read.
pub struct Reader<'a> {
    snapshot: &'a Snapshot,
    deps: RefCell<HashSet<Key>>,
}

impl<'a> Reader<'a> {
    /// The keys read so far.
    pub fn into_deps(self) -> HashSet<Key> {
        self.deps.into_inner()
    }

    fn dep(&self, key: Key) {
        self.deps.borrow_mut().insert(key);
    }

    pub fn revision(&self) -> u64 {
        self.snapshot.revision
    }

    pub fn service(&self, key: &ObjKey) -> Option<&'a Service> {
        self.dep(Key::Service(key.clone()));
        self.snapshot.services.get(key).map(|s| &**s)
    }

    /// Every Service of a namespace, sorted by name.
    pub fn services_in(&self, namespace: &str) -> Vec<&'a Service> {
        self.dep(Key::ServicesIn(namespace.into()));
        names_under(&self.snapshot.services_by_ns, namespace)
            .filter_map(|name| {
                self.snapshot
                    .services
                    .get(&ObjKey::new(namespace, name))
                    .map(|s| &**s)
            })
            .collect()
    }

    pub fn endpoints(&self, service: &ObjKey) -> Option<&'a EndpointSet> {
        self.dep(Key::Endpoints(service.clone()));
        self.snapshot.endpoints.get(service).map(|e| &**e)
    }

    pub fn workload(&self, key: &ObjKey) -> Option<&'a Workload> {
        self.dep(Key::Workload(key.clone()));
        self.snapshot.workloads.get(key).map(|w| &**w)
    }

    /// The Service whose cluster IP is `ip`, else the workload at `ip`.
    pub fn at_ip(&self, ip: IpAddr) -> AtIp<'a> {
        self.dep(Key::Ip(ip));
        if let Some(service) = self
            .snapshot
            .services_by_ip
            .get(&ip)
            .and_then(|key| self.service(key))
        {
            return AtIp::Service(service);
        }
        match self.snapshot.workloads_by_ip.get(&ip) {
            Some(key) => self.workload(key).map_or(AtIp::Nothing, AtIp::Workload),
            None => AtIp::Nothing,
        }
    }

    pub fn namespace(&self, name: &str) -> Option<&'a Namespace> {
        self.dep(Key::Namespace(name.into()));
        self.snapshot.namespaces.get(name).map(|n| &**n)
    }

    /// The MeshConfig spec in force, or the defaults.
    pub fn mesh_config(&self) -> MeshConfigSpec {
        self.dep(Key::MeshConfig);
        match &self.snapshot.mesh_config {
            Some(m) => m.spec.clone(),
            None => default_mesh_config(),
        }
    }

    /// Splits whose root is `service`, sorted by name.
    pub fn splits_of(&self, service: &ObjKey) -> Vec<(&'a str, &'a TrafficSplit)> {
        self.dep(Key::SplitsOf(service.clone()));
        grouped(
            &self.snapshot.splits_by_root,
            &self.snapshot.splits,
            service,
        )
    }

    /// TrafficTargets whose destination is the ServiceAccount `sa`, sorted by name.
    pub fn targets_of(&self, sa: &ObjKey) -> Vec<(&'a str, &'a TrafficTarget)> {
        self.dep(Key::TargetsOf(sa.clone()));
        grouped(
            &self.snapshot.targets_by_destination,
            &self.snapshot.targets,
            sa,
        )
    }

    /// TrafficPolicies of a Service, sorted by name.
    pub fn policies_of(&self, service: &ObjKey) -> Vec<(&'a str, &'a TrafficPolicy)> {
        self.dep(Key::PoliciesOf(service.clone()));
        grouped(
            &self.snapshot.policies_by_service,
            &self.snapshot.policies,
            service,
        )
    }

    /// The Canary in force under `key`.
    pub fn canary(&self, key: &ObjKey) -> Option<&'a Canary> {
        self.dep(Key::Canary(key.clone()));
        self.snapshot.canaries.get(key).map(|c| &**c)
    }

    /// Every Canary in force, in every namespace, sorted by key. Depends on each one
    /// listed; a Canary added later is announced by its own [`Key::Canary`] in the keys a
    /// batch changed (see [`Index::on_change`](super::Index::on_change)).
    pub fn canaries(&self) -> Vec<(&'a ObjKey, &'a Canary)> {
        let mut all: Vec<(&'a ObjKey, &'a Canary)> = self
            .snapshot
            .canaries
            .iter()
            .map(|(k, c)| (k, &**c))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (key, _) in &all {
            self.dep(Key::Canary((*key).clone()));
        }
        all
    }

    pub fn route_group(&self, key: &ObjKey) -> Option<&'a HTTPRouteGroup> {
        self.dep(Key::RouteGroup(key.clone()));
        self.snapshot.route_groups.get(key).map(|g| &**g)
    }

    pub fn tcp_route(&self, key: &ObjKey) -> Option<&'a TCPRoute> {
        self.dep(Key::TcpRoute(key.clone()));
        self.snapshot.tcp_routes.get(key).map(|r| &**r)
    }

    pub fn udp_route(&self, key: &ObjKey) -> Option<&'a UDPRoute> {
        self.dep(Key::UdpRoute(key.clone()));
        self.snapshot.udp_routes.get(key).map(|r| &**r)
    }
}

/// The MeshConfig spec without a MeshConfig: the serde defaults (`cluster.local`, ...),
/// which `Default` (all fields empty) is not.
pub fn default_mesh_config() -> MeshConfigSpec {
    serde_json::from_value(serde_json::json!({})).expect("every MeshConfig field has a default")
}

/// What an address is in the mesh.
#[derive(Clone, Copy, Debug)]
pub enum AtIp<'a> {
    Service(&'a Service),
    Workload(&'a Workload),
    Nothing,
}

fn names_under<'a, K: Eq + Hash + ?Sized>(
    names: &'a HashMap<Arc<K>, Arc<BTreeSet<Arc<str>>>>,
    key: &K,
) -> impl Iterator<Item = &'a str> {
    names
        .get(key)
        .into_iter()
        .flat_map(|set| set.iter().map(|n| &**n))
}

fn grouped<'a, T>(
    index: &'a HashMap<ObjKey, Arc<BTreeSet<Arc<str>>>>,
    table: &'a HashMap<ObjKey, Arc<T>>,
    key: &ObjKey,
) -> Vec<(&'a str, &'a T)> {
    let Some(names) = index.get(key) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|name| {
            let item = table.get(&ObjKey {
                namespace: key.namespace.clone(),
                name: name.clone(),
            })?;
            Some((&**name, &**item))
        })
        .collect()
}
