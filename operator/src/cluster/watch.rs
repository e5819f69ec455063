//! The watchers: one kube-runtime watcher per kind, its events turned into index updates by
//! the [`follow`](super::follow) followers. A watcher re-lists and reconnects with
//! backoff on its own (kube-runtime); errors are logged and counted, never fatal.

use std::fmt::Debug;

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

/// Starts every watcher: Namespaces, Services, Pods, EndpointSlices, and each installed
/// SMI/Trellis kind. `errors` counts watch errors by kind.
pub fn spawn_all(
    client: &Client,
    installed: &[Installed],
    observed: &ObservedObjects,
    index: &Index,
    errors: &IntCounterVec,
    tasks: &mut tokio::task::JoinSet<()>,
) {
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
    errors: IntCounterVec,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    F: Follower<K> + Send + 'static,
{
    let mut relist = Relist::new(follower);
    let mut events = Box::pin(watcher(api, watcher::Config::default()).default_backoff());
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for update in relist.event(event) {
                    index.update(update);
                }
            }
            Err(e) => {
                errors.with_label_values(&[kind]).inc();
                eprintln!("trellis operator: watching {kind}s: {e} (retrying with backoff)");
            }
        }
    }
}
