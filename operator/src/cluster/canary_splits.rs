//! The TrafficSplits the canary controller generates, applied to the API server (leader
//! only) so that `kubectl get ts` shows the weights in force. Proxies get them from the
//! index directly; the API server's copy is for users, and is owned by its Canary
//! (deleting the Canary deletes it).
//!
//! The watchers skip these splits (labelled and owned by a Canary: see `follow`), so the
//! copy never feeds back into the index.

use std::collections::HashMap;

use kube::api::{DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use smi_crds::Resource;
use tokio::sync::watch;

use super::kinds::Installed;
use super::status::FIELD_MANAGER;
use crate::canary::split::SOURCE;
use crate::index::{Index, ObjKey, Snapshot};

pub struct SplitPublisher {
    client: Client,
    /// The TrafficSplit kind as installed (the version to write).
    split: Installed,
    leader: watch::Receiver<bool>,
    applied: HashMap<ObjKey, Value>,
}

/// The generated splits in `snapshot`, each as the API server should hold it.
pub fn generated(snapshot: &Snapshot, version: &str) -> Vec<(ObjKey, Value)> {
    snapshot
        .statuses()
        .into_iter()
        .filter(|(r, s)| r.kind == smi_crds::split::KIND && s.origin.source == SOURCE)
        .filter_map(|(r, _)| {
            let key = ObjKey {
                namespace: r.namespace.clone()?,
                name: r.name.clone(),
            };
            let split = snapshot.traffic_split(&key)?.clone();
            let mut body =
                smi_crds::dynamic::to_version(&Resource::TrafficSplit(split), version).ok()?;
            // The API server sets these.
            if let Some(meta) = body["metadata"].as_object_mut() {
                meta.remove("creationTimestamp");
            }
            Some((key, body))
        })
        .collect()
}

impl SplitPublisher {
    pub fn new(client: Client, split: Installed, leader: watch::Receiver<bool>) -> Self {
        Self {
            client,
            split,
            leader,
            applied: HashMap::new(),
        }
    }

    /// Applies the splits that changed since the last pass; how many were written.
    pub async fn pass(&mut self, snapshot: &Snapshot) -> usize {
        if !*self.leader.borrow() {
            self.applied.clear();
            return 0;
        }
        let mut written = 0;
        for (key, body) in generated(snapshot, self.split.version) {
            if self.applied.get(&key) == Some(&body) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(
                self.client.clone(),
                &key.namespace,
                &self.split.api_resource(),
            );
            let params = PatchParams::apply(FIELD_MANAGER).force();
            match api.patch(&key.name, &params, &Patch::Apply(&body)).await {
                Ok(_) => {
                    written += 1;
                    self.applied.insert(key, body);
                }
                Err(e) => {
                    eprintln!("trellis operator: applying the canary's TrafficSplit {key}: {e}")
                }
            }
        }
        written
    }

    pub async fn run(mut self, index: Index) {
        let mut snapshots = index.watch();
        let mut leader = self.leader.clone();
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            self.pass(&snapshot).await;
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                changed = leader.changed() => if changed.is_err() { return },
            }
        }
    }
}
