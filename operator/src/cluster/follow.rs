//! Watch events into index updates (pure): one [`Follower`] per kind, and [`Relist`]
//! deleting what a re-list no longer holds.
//!
//! ```text
//! watcher event --Apply/InitApply--> Follower::applied -> [Update]
//!               --Delete-----------> Follower::deleted -> [Update]
//!               --Init .. InitDone-> Relist: objects known before and not listed again
//!                                    are deleted (the watch missed their deletion)
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::Value;
use smi_crds::validate::DEFAULT_NAMESPACE;

use super::kinds::Installed;
use super::{pods, slices};
use crate::index::{ObjKey, ObjectId, Origin, ResourceRef, SourceObject, Update, from_k8s};
use crate::source::manifests;

/// The index source name of objects read from the API server.
pub const SOURCE: &str = "kube";

/// Turns one kind's objects into index updates.
pub trait Follower<K> {
    /// `namespace/name` (or `name`): what a re-list is compared by.
    fn key(&self, object: &K) -> String;
    fn applied(&mut self, object: &K) -> Vec<Update>;
    fn deleted(&mut self, key: &str) -> Vec<Update>;
}

/// Feeds watch events to a follower, deleting after a re-list what it no longer holds.
pub struct Relist<F> {
    pub follower: F,
    known: HashSet<String>,
    listing: Option<HashSet<String>>,
}

impl<F> Relist<F> {
    pub fn new(follower: F) -> Self {
        Self {
            follower,
            known: HashSet::new(),
            listing: None,
        }
    }

    pub fn event<K>(&mut self, event: Event<K>) -> Vec<Update>
    where
        F: Follower<K>,
    {
        match event {
            Event::Apply(o) => {
                self.known.insert(self.follower.key(&o));
                self.follower.applied(&o)
            }
            Event::InitApply(o) => {
                let key = self.follower.key(&o);
                self.listing.get_or_insert_default().insert(key.clone());
                self.known.insert(key);
                self.follower.applied(&o)
            }
            Event::Delete(o) => {
                let key = self.follower.key(&o);
                self.known.remove(&key);
                self.follower.deleted(&key)
            }
            Event::Init => {
                self.listing = Some(HashSet::new());
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let gone: Vec<String> = self.known.difference(&listed).cloned().collect();
                let mut updates = Vec::new();
                for key in gone {
                    self.known.remove(&key);
                    updates.extend(self.follower.deleted(&key));
                }
                updates
            }
        }
    }
}

fn ns_name(meta: &kube::core::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

fn obj_key(key: &str) -> ObjKey {
    let (ns, name) = key.split_once('/').unwrap_or(("", key));
    ObjKey::new(ns, name)
}

fn origin(generation: Option<i64>) -> Origin {
    Origin {
        generation,
        ..Origin::source(SOURCE)
    }
}

pub struct Services;

impl Follower<core::Service> for Services {
    fn key(&self, s: &core::Service) -> String {
        ns_name(&s.metadata)
    }

    fn applied(&mut self, s: &core::Service) -> Vec<Update> {
        // k8s-openapi writes `apiVersion` and `kind` itself.
        let value = serde_json::to_value(s).unwrap_or_default();
        manifests::from_value(&value, origin(s.metadata.generation), &|_| None)
            .map(Update::Apply)
            .into_iter()
            .collect()
    }

    fn deleted(&mut self, key: &str) -> Vec<Update> {
        vec![Update::Delete(ObjectId::Service(obj_key(key)))]
    }
}

pub struct Namespaces;

impl Follower<core::Namespace> for Namespaces {
    fn key(&self, n: &core::Namespace) -> String {
        n.metadata.name.clone().unwrap_or_default()
    }

    fn applied(&mut self, n: &core::Namespace) -> Vec<Update> {
        from_k8s::namespace(n)
            .map(|n| Update::Apply(SourceObject::Namespace(n)))
            .into_iter()
            .collect()
    }

    fn deleted(&mut self, key: &str) -> Vec<Update> {
        vec![Update::Delete(ObjectId::Namespace(key.into()))]
    }
}

pub struct Pods;

impl Follower<core::Pod> for Pods {
    fn key(&self, p: &core::Pod) -> String {
        ns_name(&p.metadata)
    }

    fn applied(&mut self, p: &core::Pod) -> Vec<Update> {
        vec![match pods::workload(p) {
            Some(w) => Update::Workload(w),
            None => Update::RemoveWorkload(obj_key(&self.key(p))),
        }]
    }

    fn deleted(&mut self, key: &str) -> Vec<Update> {
        vec![Update::RemoveWorkload(obj_key(key))]
    }
}

/// Keeps every slice, to give each Service the union of its slices.
#[derive(Default)]
pub struct Slices {
    by_service: HashMap<ObjKey, HashMap<String, EndpointSlice>>,
    service_of: HashMap<String, ObjKey>,
}

impl Slices {
    fn endpoints(&self, service: &ObjKey) -> Update {
        let set = self
            .by_service
            .get(service)
            .filter(|s| !s.is_empty())
            .map(|s| slices::endpoint_set(s.values()));
        Update::Endpoints(service.clone(), set)
    }
}

impl Follower<EndpointSlice> for Slices {
    fn key(&self, s: &EndpointSlice) -> String {
        ns_name(&s.metadata)
    }

    fn applied(&mut self, s: &EndpointSlice) -> Vec<Update> {
        let key = self.key(s);
        let mut updates = self.deleted(&key);
        let Some(service) = slices::service_of(s) else {
            return updates;
        };
        self.by_service
            .entry(service.clone())
            .or_default()
            .insert(key.clone(), s.clone());
        self.service_of.insert(key, service.clone());
        updates.retain(|u| !matches!(u, Update::Endpoints(k, _) if *k == service));
        updates.push(self.endpoints(&service));
        updates
    }

    fn deleted(&mut self, key: &str) -> Vec<Update> {
        let Some(service) = self.service_of.remove(key) else {
            return Vec::new();
        };
        if let Some(slices) = self.by_service.get_mut(&service) {
            slices.remove(key);
            if slices.is_empty() {
                self.by_service.remove(&service);
            }
        }
        vec![self.endpoints(&service)]
    }
}

/// What the API server holds of one SMI/Trellis resource: what the status writer compares
/// its status with.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub api_version: String,
    pub generation: Option<i64>,
    pub uid: Option<String>,
    /// `status` as the API server has it (`Null` when none).
    pub status: Value,
}

/// Every SMI/Trellis resource read, by reference. Shared with the status writer.
pub type ObservedObjects = Arc<Mutex<HashMap<ResourceRef, Observed>>>;

/// One SMI or Trellis kind, read as untyped objects so that one bad object never stops the
/// watch: it becomes an invalid resource whose status says why.
pub struct Resources {
    pub installed: Installed,
    pub observed: ObservedObjects,
}

impl Resources {
    fn reference(&self, key: &str) -> ResourceRef {
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        ResourceRef {
            kind: self.installed.kind.kind,
            namespace: self
                .installed
                .kind
                .namespaced
                .then(|| if ns.is_empty() { DEFAULT_NAMESPACE } else { ns }.into()),
            name: name.into(),
        }
    }
}

/// A TrafficSplit the canary controller generated (its label, owned by a Canary): the
/// index has it from the controller itself (source `canary`), not from the API server.
fn generated(o: &DynamicObject) -> bool {
    let (label, value) = crate::canary::split::MANAGED_BY;
    let labelled = o
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label))
        .is_some_and(|v| v == value);
    let owned = o
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.kind == smi_crds::trellis::canary::KIND);
    labelled && owned
}

impl Follower<DynamicObject> for Resources {
    fn key(&self, o: &DynamicObject) -> String {
        match &o.metadata.namespace {
            Some(ns) => format!("{ns}/{}", o.metadata.name.as_deref().unwrap_or_default()),
            None => o.metadata.name.clone().unwrap_or_default(),
        }
    }

    fn applied(&mut self, o: &DynamicObject) -> Vec<Update> {
        if generated(o) {
            return Vec::new();
        }
        let mut value = serde_json::to_value(o).unwrap_or_default();
        // List items may come without them.
        value["apiVersion"] = self.installed.api_version().into();
        value["kind"] = self.installed.kind.kind.into();
        let observed = Observed {
            api_version: self.installed.api_version(),
            generation: o.metadata.generation,
            uid: o.metadata.uid.clone(),
            status: value.get("status").cloned().unwrap_or(Value::Null),
        };
        let reference = self.reference(&self.key(o));
        self.observed
            .lock()
            .expect("observed objects")
            .insert(reference, observed);
        manifests::from_value(&value, origin(o.metadata.generation), &|_| None)
            .map(Update::Apply)
            .into_iter()
            .collect()
    }

    fn deleted(&mut self, key: &str) -> Vec<Update> {
        let reference = self.reference(key);
        let held = self
            .observed
            .lock()
            .expect("observed objects")
            .remove(&reference)
            .is_some();
        // A generated split was never read here: the canary controller owns it.
        held.then_some(Update::Delete(ObjectId::Resource(reference)))
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests;
