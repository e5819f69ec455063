//! The writer's side: applying updates to the tables and naming the keys each one touched.
//!
//! ```text
//! Update -> Writer::apply -> tables changed (copy-on-write) + keys touched
//!        -> Writer::finish: endpoints of dirty Services re-derived from workloads
//!           (local mode), revision + 1 -> a new Snapshot and the keys that changed
//! ```
//!
//! A resource is validated (`smi_crds::validate`) before it is applied: a version with
//! errors is not applied, the previous good version (if any) stays in force, and the
//! problems go into the resource's status.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use smi_crds::Resource;
use smi_crds::validate::{DEFAULT_NAMESPACE, Severity, validate};

use super::endpoints::derive;
use super::model::{
    EndpointSet, Key, Namespace, ObjKey, Origin, ResourceRef, Service, Workload, service_of_host,
};
use super::snapshot::{Names, ResourceStatus, Snapshot, Table};

/// One change to the index.
#[derive(Debug)]
pub enum Update {
    /// Everything a source (a Git checkout, a manifest directory) holds. Objects the source
    /// held before and no longer holds are deleted.
    Source {
        name: String,
        objects: Vec<SourceObject>,
    },
    /// One object added or changed (a Kubernetes watch event).
    Apply(SourceObject),
    /// One object deleted.
    Delete(ObjectId),
    /// A workload (Pod, registered proxy) added or changed.
    Workload(Workload),
    RemoveWorkload(ObjKey),
    /// A Service's endpoints as its EndpointSlices state them (Kubernetes mode); `None`
    /// removes them. With [`Options::endpoints_from_workloads`] they count only while the
    /// Service has no selector.
    Endpoints(ObjKey, Option<EndpointSet>),
}

/// An object a source holds.
#[derive(Clone, Debug)]
pub enum SourceObject {
    Service(Service),
    Namespace(Namespace),
    Resource(Box<Resource>, Origin),
    /// A resource that could not be read (bad field type, unserved version): its status
    /// says why and its last good version, if any, stays in force.
    Invalid {
        resource: ResourceRef,
        origin: Origin,
        problems: Vec<smi_crds::validate::Problem>,
    },
}

/// Names an object for deletion and for tracking what a source holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectId {
    Service(ObjKey),
    Namespace(Arc<str>),
    Resource(ResourceRef),
}

impl SourceObject {
    pub fn id(&self) -> ObjectId {
        match self {
            SourceObject::Service(s) => ObjectId::Service(s.key.clone()),
            SourceObject::Namespace(n) => ObjectId::Namespace(n.name.as_str().into()),
            SourceObject::Resource(r, _) => ObjectId::Resource(resource_ref(r)),
            SourceObject::Invalid { resource, .. } => ObjectId::Resource(resource.clone()),
        }
    }
}

/// The reference Trellis reports a resource under.
pub fn resource_ref(resource: &Resource) -> ResourceRef {
    let meta = resource.metadata();
    ResourceRef {
        kind: resource.kind(),
        namespace: resource.is_namespaced().then(|| {
            meta.namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE)
                .into()
        }),
        name: meta.name.as_deref().unwrap_or_default().into(),
    }
}

/// Index options.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Derive each Service's endpoints from the workloads its selector matches (local
    /// mode, as the EndpointSlice controller does); otherwise endpoints come from
    /// [`Update::Endpoints`]. Kubernetes mode derives them too (Pods are the workloads)
    /// and takes [`Update::Endpoints`] for Services without a selector only.
    pub endpoints_from_workloads: bool,
}

pub(super) struct Writer {
    pub snapshot: Snapshot,
    options: Options,
    /// What each source holds.
    sources: HashMap<String, HashSet<ObjectId>>,
    changed: HashSet<Key>,
    dirty_services: HashSet<ObjKey>,
    /// Endpoints from EndpointSlices ([`Update::Endpoints`]) when endpoints are derived
    /// from workloads: in force for Services without a selector.
    sliced: HashMap<ObjKey, EndpointSet>,
    /// A status changed (nothing compiled reads statuses, so no key names it).
    statuses_changed: bool,
}

impl Writer {
    pub fn new(options: Options) -> Self {
        Self {
            snapshot: Snapshot::default(),
            options,
            sources: HashMap::new(),
            changed: HashSet::new(),
            dirty_services: HashSet::new(),
            sliced: HashMap::new(),
            statuses_changed: false,
        }
    }

    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Source { name, objects } => {
                let ids: HashSet<ObjectId> = objects.iter().map(SourceObject::id).collect();
                let before = self
                    .sources
                    .insert(name.clone(), ids.clone())
                    .unwrap_or_default();
                for gone in before.difference(&ids) {
                    // An object another source holds now (a split committed to Git under
                    // the name a Canary generated) stays: it is that source's now.
                    let held_elsewhere = self
                        .sources
                        .iter()
                        .any(|(other, held)| *other != name && held.contains(gone));
                    if !held_elsewhere {
                        self.delete(gone.clone());
                    }
                }
                for object in objects {
                    self.put(object);
                }
            }
            Update::Apply(object) => self.put(object),
            Update::Delete(id) => self.delete(id),
            Update::Workload(w) => self.put_workload(w),
            Update::RemoveWorkload(key) => self.remove_workload(&key),
            Update::Endpoints(key, set) if self.options.endpoints_from_workloads => {
                // Kept aside: they are the Service's endpoints only while it has no
                // selector (a selector's endpoints are derived from the workloads).
                match set {
                    Some(set) => self.sliced.insert(key.clone(), set),
                    None => self.sliced.remove(&key),
                };
                self.dirty_services.insert(key);
            }
            Update::Endpoints(key, set) => {
                let changed = match set {
                    Some(set) => put(&mut self.snapshot.endpoints, key.clone(), set),
                    None => take(&mut self.snapshot.endpoints, &key).is_some(),
                };
                if changed {
                    self.changed.insert(Key::Endpoints(key));
                }
            }
        }
    }

    /// Re-derives the endpoints of dirty Services and closes the batch: the keys changed
    /// since the last call. The revision moves when anything changed, statuses included.
    pub fn finish(&mut self) -> Vec<Key> {
        for key in std::mem::take(&mut self.dirty_services) {
            let derived = match self.snapshot.services.get(&key).cloned() {
                Some(service) if service.selector.is_some() => {
                    let workloads = names(&self.snapshot.workloads_by_ns, &key.namespace)
                        .filter_map(|n| {
                            self.snapshot.workloads.get(&ObjKey::new(&key.namespace, n))
                        });
                    Some(derive(&service, workloads.map(|w| &**w)))
                }
                // Without a selector, endpoints are what its EndpointSlices say.
                Some(_) => self.sliced.get(&key).cloned(),
                None => None,
            };
            let changed = match derived {
                Some(set) => put(&mut self.snapshot.endpoints, key.clone(), set),
                None => take(&mut self.snapshot.endpoints, &key).is_some(),
            };
            if changed {
                self.changed.insert(Key::Endpoints(key));
            }
        }
        let mut changed: Vec<Key> = self.changed.drain().collect();
        changed.sort();
        if !changed.is_empty() || std::mem::take(&mut self.statuses_changed) {
            self.snapshot.revision += 1;
        }
        changed
    }

    fn put(&mut self, object: SourceObject) {
        match object {
            SourceObject::Service(s) => self.put_service(s),
            SourceObject::Namespace(n) => {
                let name: Arc<str> = n.name.as_str().into();
                if put(&mut self.snapshot.namespaces, name.clone(), n) {
                    self.changed.insert(Key::Namespace(name));
                }
            }
            SourceObject::Resource(r, origin) => self.put_resource(*r, origin),
            SourceObject::Invalid {
                resource,
                origin,
                problems,
            } => {
                let status = ResourceStatus {
                    origin,
                    accepted: false,
                    previous_in_force: self.in_force(&resource),
                    problems,
                };
                self.statuses_changed |= put(&mut self.snapshot.statuses, resource, status);
            }
        }
    }

    fn delete(&mut self, id: ObjectId) {
        match id {
            ObjectId::Service(key) => self.remove_service(&key),
            ObjectId::Namespace(name) => {
                if take(&mut self.snapshot.namespaces, &name).is_some() {
                    self.changed.insert(Key::Namespace(name));
                }
            }
            ObjectId::Resource(r) => {
                self.statuses_changed |= take(&mut self.snapshot.statuses, &r).is_some();
                self.remove_resource(&r);
            }
        }
    }

    fn put_service(&mut self, service: Service) {
        let key = service.key.clone();
        let new_ips = service.cluster_ips.clone();
        let old = self.snapshot.services.get(&key).cloned();
        if !put(&mut self.snapshot.services, key.clone(), service) {
            return;
        }
        if let Some(old) = &old {
            self.unindex_ips_of_service(old);
        }
        add_name(
            &mut self.snapshot.services_by_ns,
            key.namespace.clone(),
            &key.name,
        );
        for ip in new_ips {
            Arc::make_mut(&mut self.snapshot.services_by_ip).insert(ip, Arc::new(key.clone()));
            self.changed.insert(Key::Ip(ip));
        }
        self.service_changed(key);
    }

    fn remove_service(&mut self, key: &ObjKey) {
        let Some(old) = take(&mut self.snapshot.services, key) else {
            return;
        };
        self.unindex_ips_of_service(&old);
        remove_name(&mut self.snapshot.services_by_ns, &key.namespace, &key.name);
        self.service_changed(key.clone());
    }

    fn unindex_ips_of_service(&mut self, service: &Service) {
        for ip in &service.cluster_ips {
            let ours = self
                .snapshot
                .services_by_ip
                .get(ip)
                .is_some_and(|k| **k == service.key);
            if ours {
                Arc::make_mut(&mut self.snapshot.services_by_ip).remove(ip);
            }
            self.changed.insert(Key::Ip(*ip));
        }
    }

    fn service_changed(&mut self, key: ObjKey) {
        self.changed.insert(Key::ServicesIn(key.namespace.clone()));
        self.changed.insert(Key::Service(key.clone()));
        if self.options.endpoints_from_workloads {
            self.dirty_services.insert(key);
        }
    }

    fn put_workload(&mut self, workload: Workload) {
        let key = workload.key.clone();
        let old = self.snapshot.workloads.get(&key).cloned();
        let new = Arc::new(workload);
        if old.as_deref() == Some(&*new) {
            return;
        }
        Arc::make_mut(&mut self.snapshot.workloads).insert(key.clone(), new.clone());
        add_name(
            &mut self.snapshot.workloads_by_ns,
            key.namespace.clone(),
            &key.name,
        );
        if let Some(old) = &old {
            self.unindex_ips_of_workload(old);
        }
        for ip in &new.addresses {
            Arc::make_mut(&mut self.snapshot.workloads_by_ip).insert(*ip, Arc::new(key.clone()));
            self.changed.insert(Key::Ip(*ip));
        }
        self.workload_changed(old.as_deref(), Some(&new));
    }

    fn remove_workload(&mut self, key: &ObjKey) {
        let Some(old) = take(&mut self.snapshot.workloads, key) else {
            return;
        };
        remove_name(
            &mut self.snapshot.workloads_by_ns,
            &key.namespace,
            &key.name,
        );
        self.unindex_ips_of_workload(&old);
        self.workload_changed(Some(&old), None);
    }

    fn unindex_ips_of_workload(&mut self, workload: &Workload) {
        for ip in &workload.addresses {
            let ours = self
                .snapshot
                .workloads_by_ip
                .get(ip)
                .is_some_and(|k| **k == workload.key);
            if ours {
                Arc::make_mut(&mut self.snapshot.workloads_by_ip).remove(ip);
            }
            self.changed.insert(Key::Ip(*ip));
        }
    }

    /// Marks the Services that selected the workload before or select it now.
    fn workload_changed(&mut self, old: Option<&Workload>, new: Option<&Workload>) {
        let key = old.or(new).expect("a workload").key.clone();
        self.changed.insert(Key::Workload(key.clone()));
        if !self.options.endpoints_from_workloads {
            return;
        }
        for name in names(&self.snapshot.services_by_ns, &key.namespace) {
            let service_key = ObjKey::new(&key.namespace, name);
            let Some(service) = self.snapshot.services.get(&service_key) else {
                continue;
            };
            let Some(selector) = &service.selector else {
                continue;
            };
            let selects = |w: Option<&Workload>| w.is_some_and(|w| w.selected_by(selector));
            if selects(old) || selects(new) {
                self.dirty_services.insert(service_key);
            }
        }
    }

    fn put_resource(&mut self, resource: Resource, origin: Origin) {
        let r = resource_ref(&resource);
        let problems = validate(&resource);
        let accepted = !problems.iter().any(|p| p.severity == Severity::Error);
        let in_force = self.in_force(&r);
        let status = ResourceStatus {
            origin,
            accepted,
            previous_in_force: !accepted && in_force,
            problems,
        };
        self.statuses_changed |= put(&mut self.snapshot.statuses, r.clone(), status);
        if !accepted {
            return;
        }
        let key = ObjKey {
            namespace: r
                .namespace
                .clone()
                .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
            name: r.name.clone(),
        };
        let namespace: &str = &key.namespace.clone();
        let snap = &mut self.snapshot;
        match resource {
            Resource::TrafficSplit(ts) => {
                let root = split_root(namespace, &ts.spec.service);
                let old = snap.splits.get(&key).cloned();
                if put(&mut snap.splits, key.clone(), ts) {
                    if let Some(old) = old {
                        let old_root = split_root(namespace, &old.spec.service);
                        remove_name(&mut snap.splits_by_root, &old_root, &key.name);
                        self.changed.insert(Key::SplitsOf(old_root));
                    }
                    add_name(&mut snap.splits_by_root, root.clone(), &key.name);
                    self.changed.insert(Key::SplitsOf(root));
                }
            }
            Resource::TrafficTarget(tt) => {
                let dest = target_destination(namespace, &tt);
                let old = snap.targets.get(&key).cloned();
                if put(&mut snap.targets, key.clone(), tt) {
                    if let Some(old) = old {
                        let old_dest = target_destination(namespace, &old);
                        remove_name(&mut snap.targets_by_destination, &old_dest, &key.name);
                        self.changed.insert(Key::TargetsOf(old_dest));
                    }
                    add_name(&mut snap.targets_by_destination, dest.clone(), &key.name);
                    self.changed.insert(Key::TargetsOf(dest));
                }
            }
            Resource::TrafficPolicy(tp) => {
                let service = ObjKey::new(namespace, &tp.spec.service);
                let old = snap.policies.get(&key).cloned();
                if put(&mut snap.policies, key.clone(), tp) {
                    if let Some(old) = old {
                        let old_service = ObjKey::new(namespace, &old.spec.service);
                        remove_name(&mut snap.policies_by_service, &old_service, &key.name);
                        self.changed.insert(Key::PoliciesOf(old_service));
                    }
                    add_name(&mut snap.policies_by_service, service.clone(), &key.name);
                    self.changed.insert(Key::PoliciesOf(service));
                }
            }
            Resource::Canary(c) => {
                if put(&mut snap.canaries, key.clone(), c) {
                    self.changed.insert(Key::Canary(key));
                }
            }
            Resource::HTTPRouteGroup(g) => {
                if put(&mut snap.route_groups, key.clone(), g) {
                    self.changed.insert(Key::RouteGroup(key));
                }
            }
            Resource::TCPRoute(r) => {
                if put(&mut snap.tcp_routes, key.clone(), r) {
                    self.changed.insert(Key::TcpRoute(key));
                }
            }
            Resource::UDPRoute(r) => {
                if put(&mut snap.udp_routes, key.clone(), r) {
                    self.changed.insert(Key::UdpRoute(key));
                }
            }
            Resource::MeshConfig(m) => {
                let name = m.metadata.name.as_deref().unwrap_or_default();
                if name == smi_crds::trellis::mesh_config::DEFAULT_NAME
                    && snap.mesh_config.as_deref() != Some(&m)
                {
                    snap.mesh_config = Some(Arc::new(m));
                    self.changed.insert(Key::MeshConfig);
                }
            }
        }
    }

    fn in_force(&self, r: &ResourceRef) -> bool {
        let key = || ObjKey::new(r.namespace.as_deref().unwrap_or_default(), &r.name);
        let snap = &self.snapshot;
        match r.kind {
            "TrafficSplit" => snap.splits.contains_key(&key()),
            "TrafficTarget" => snap.targets.contains_key(&key()),
            "TrafficPolicy" => snap.policies.contains_key(&key()),
            "Canary" => snap.canaries.contains_key(&key()),
            "HTTPRouteGroup" => snap.route_groups.contains_key(&key()),
            "TCPRoute" => snap.tcp_routes.contains_key(&key()),
            "UDPRoute" => snap.udp_routes.contains_key(&key()),
            "MeshConfig" => {
                &*r.name == smi_crds::trellis::mesh_config::DEFAULT_NAME
                    && snap.mesh_config.is_some()
            }
            _ => false,
        }
    }

    fn remove_resource(&mut self, r: &ResourceRef) {
        let namespace = r.namespace.clone().unwrap_or_else(|| "".into());
        let key = ObjKey {
            namespace: namespace.clone(),
            name: r.name.clone(),
        };
        let snap = &mut self.snapshot;
        match r.kind {
            "TrafficSplit" => {
                if let Some(old) = take(&mut snap.splits, &key) {
                    let root = split_root(&namespace, &old.spec.service);
                    remove_name(&mut snap.splits_by_root, &root, &key.name);
                    self.changed.insert(Key::SplitsOf(root));
                }
            }
            "TrafficTarget" => {
                if let Some(old) = take(&mut snap.targets, &key) {
                    let dest = target_destination(&namespace, &old);
                    remove_name(&mut snap.targets_by_destination, &dest, &key.name);
                    self.changed.insert(Key::TargetsOf(dest));
                }
            }
            "TrafficPolicy" => {
                if let Some(old) = take(&mut snap.policies, &key) {
                    let service = ObjKey::new(&namespace, &old.spec.service);
                    remove_name(&mut snap.policies_by_service, &service, &key.name);
                    self.changed.insert(Key::PoliciesOf(service));
                }
            }
            "Canary" if take(&mut snap.canaries, &key).is_some() => {
                self.changed.insert(Key::Canary(key));
            }
            "HTTPRouteGroup" if take(&mut snap.route_groups, &key).is_some() => {
                self.changed.insert(Key::RouteGroup(key));
            }
            "TCPRoute" if take(&mut snap.tcp_routes, &key).is_some() => {
                self.changed.insert(Key::TcpRoute(key));
            }
            "UDPRoute" if take(&mut snap.udp_routes, &key).is_some() => {
                self.changed.insert(Key::UdpRoute(key));
            }
            "MeshConfig"
                if &*r.name == smi_crds::trellis::mesh_config::DEFAULT_NAME
                    && snap.mesh_config.take().is_some() =>
            {
                self.changed.insert(Key::MeshConfig);
            }
            _ => {}
        }
    }
}

/// The root Service of a split (SMI-SEMANTICS Routing 6: a short name or an FQDN).
pub fn split_root(namespace: &str, service: &str) -> ObjKey {
    service_of_host(namespace, service).unwrap_or_else(|| ObjKey::new(namespace, service))
}

/// The ServiceAccount a TrafficTarget grants access to.
pub fn target_destination(namespace: &str, tt: &smi_crds::access::TrafficTarget) -> ObjKey {
    let d = &tt.spec.destination;
    ObjKey::new(d.namespace.as_deref().unwrap_or(namespace), &d.name)
}

/// Inserts `value`; whether it differs from what was there.
fn put<K: Eq + Hash + Clone, V: PartialEq>(table: &mut Table<K, V>, key: K, value: V) -> bool {
    if table.get(&key).is_some_and(|old| **old == value) {
        return false;
    }
    Arc::make_mut(table).insert(key, Arc::new(value));
    true
}

fn take<K: Eq + Hash + Clone, V>(table: &mut Table<K, V>, key: &K) -> Option<Arc<V>> {
    if !table.contains_key(key) {
        return None;
    }
    Arc::make_mut(table).remove(key)
}

fn add_name<K: Eq + Hash + Clone>(names: &mut Names<K>, key: K, name: &Arc<str>) {
    let set = Arc::make_mut(names).entry(key).or_default();
    if !set.contains(name) {
        Arc::make_mut(set).insert(name.clone());
    }
}

fn remove_name<K: Eq + Hash + Clone + std::borrow::Borrow<Q>, Q: Eq + Hash + ?Sized>(
    names: &mut Names<K>,
    key: &Q,
    name: &str,
) {
    let Some(set) = names.get(key) else { return };
    if !set.contains(name) {
        return;
    }
    let map = Arc::make_mut(names);
    let set = map.get_mut(key).expect("checked above");
    Arc::make_mut(set).remove(name);
    if set.is_empty() {
        map.remove(key);
    }
}

fn names<'a, K: Eq + Hash + std::borrow::Borrow<str>>(
    names: &'a Names<K>,
    key: &str,
) -> impl Iterator<Item = &'a str> + use<'a, K> {
    names
        .get(key)
        .map(|set| set.iter().map(|n| &**n).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
}
