//! The watchers: one kube-runtime watcher per kind, its events turned into index updates by
//! the [`follow`](super::follow) followers. A watcher re-lists and reconnects with
//! backoff on its own (kube-runtime); errors are logged and counted, never fatal.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource};
use prometheus::IntCounterVec;
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt as _;

use super::follow::{
    Follower, Namespaces, ObservedObjects, Pods, Relist, Resources, Services, Slices,
};
use super::kinds::Installed;
use crate::index::Index;
use crate::source::SharedStatus;

/// Marks the source synced once every watcher has listed its kind once.
#[derive(Clone)]
pub struct Synced {
    pending: Arc<AtomicUsize>,
    status: SharedStatus,
}

impl Synced {
    fn listed(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.synced = true;
        }
    }
}

/// Starts every watcher: Namespaces, Services, Pods, EndpointSlices, and each installed
/// SMI/Trellis kind. `errors` counts watch errors by kind.
pub fn spawn_all(
    client: &Client,
    installed: &[Installed],
    observed: &ObservedObjects,
    index: &Index,
    errors: &IntCounterVec,
    status: &SharedStatus,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let synced = Synced {
        pending: Arc::new(AtomicUsize::new(4 + installed.len())),
        status: status.clone(),
    };
    let errors = (errors.clone(), synced);
    tasks.spawn(follow(
        Api::<core::Namespace>::all(client.clone()),
        "Namespace",
        Namespaces,
        index.clone(),
        errors.clone(),
    ));
    tasks.spawn(follow(
        Api::<core::Service>::all(client.clone()),
        "Service",
        Services,
        index.clone(),
        errors.clone(),
    ));
    tasks.spawn(follow(
        Api::<core::Pod>::all(client.clone()),
        "Pod",
        Pods,
        index.clone(),
        errors.clone(),
    ));
    tasks.spawn(follow(
        Api::<EndpointSlice>::all(client.clone()),
        "EndpointSlice",
        Slices::default(),
        index.clone(),
        errors.clone(),
    ));
    for kind in installed {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let follower = Resources {
            installed: kind.clone(),
            observed: observed.clone(),
        };
        tasks.spawn(follow(
            api,
            kind.kind.kind,
            follower,
            index.clone(),
            errors.clone(),
        ));
    }
}

/// Follows one kind for as long as the operator runs.
async fn follow<K, F>(
    api: Api<K>,
    kind: &'static str,
    follower: F,
    index: Index,
    (errors, synced): (IntCounterVec, Synced),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Follower<K> + Send + 'static,
{
    let mut relist = Relist::new(follower);
    let mut first_list = true;
    let mut events = Box::pin(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                let done = matches!(event, watcher::Event::InitDone);
                for update in relist.event(event) {
                    index.update(update);
                }
                if done && std::mem::take(&mut first_list) {
                    index.flush().await;
                    synced.listed();
                }
            }
            Err(e) => {
                errors.with_label_values(&[kind]).inc();
                eprintln!("trellis operator: watching {kind}s: {e} (retrying with backoff)");
            }
        }
    }
}
