//! Who watches what: every open watch, the index keys its last config was compiled from,
//! and a wake-up for each. The index's listener calls [`Subscriptions::changed`] with the
//! keys of a batch; exactly the watches that read one of them are woken to recompile.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::Notify;

use crate::index::Key;

pub type SubId = u64;

/// What the status API shows about one watch.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SubscriptionInfo {
    pub id: SubId,
    /// `inbound` or `outbound`.
    pub kind: &'static str,
    /// The proxy's workload (`namespace/name`).
    pub workload: String,
    /// What is watched: the workload (inbound), an authority or an address (outbound).
    pub target: String,
    /// Versions sent on this watch.
    pub pushes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied_version: Option<String>,
    /// The last NACK: `(version, reason)`, cleared by the next ack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected: Option<(String, String)>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<Key, HashSet<SubId>>,
    deps: HashMap<SubId, HashSet<Key>>,
    wake: HashMap<SubId, Arc<Notify>>,
    info: HashMap<SubId, SubscriptionInfo>,
}

#[derive(Default)]
pub struct Subscriptions {
    next: AtomicU64,
    inner: Mutex<Inner>,
}

impl Subscriptions {
    /// Registers a watch; the returned guard removes it when dropped.
    pub fn add(self: &Arc<Self>, info: SubscriptionInfo) -> (SubGuard, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let wake = Arc::new(Notify::new());
        let mut inner = self.lock();
        inner.wake.insert(id, wake.clone());
        inner.info.insert(id, SubscriptionInfo { id, ..info });
        (
            SubGuard {
                subs: self.clone(),
                id,
            },
            wake,
        )
    }

    /// Records the keys the watch's latest config was compiled from.
    pub fn set_deps(&self, id: SubId, deps: HashSet<Key>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let old = inner.deps.remove(&id).unwrap_or_default();
        for key in old.difference(&deps) {
            if let Some(subs) = inner.by_key.get_mut(key) {
                subs.remove(&id);
                if subs.is_empty() {
                    inner.by_key.remove(key);
                }
            }
        }
        for key in deps.difference(&old) {
            inner.by_key.entry(key.clone()).or_default().insert(id);
        }
        inner.deps.insert(id, deps);
    }

    /// Wakes every watch that read one of `keys`; how many were woken.
    pub fn changed(&self, keys: &[Key]) -> usize {
        let inner = self.lock();
        let mut woken = HashSet::new();
        for key in keys {
            for id in inner.by_key.get(key).into_iter().flatten() {
                if let Some(wake) = inner.wake.get(id).filter(|_| woken.insert(*id)) {
                    wake.notify_one();
                }
            }
        }
        woken.len()
    }

    /// Updates the status of a watch.
    pub fn update(&self, id: SubId, f: impl FnOnce(&mut SubscriptionInfo)) {
        if let Some(info) = self.lock().info.get_mut(&id) {
            f(info);
        }
    }

    /// Every open watch, by id.
    pub fn list(&self) -> Vec<SubscriptionInfo> {
        let mut all: Vec<_> = self.lock().info.values().cloned().collect();
        all.sort_by_key(|i| i.id);
        all
    }

    pub fn len(&self) -> usize {
        self.lock().info.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn remove(&self, id: SubId) {
        let mut inner = self.lock();
        inner.wake.remove(&id);
        inner.info.remove(&id);
        for key in inner.deps.remove(&id).unwrap_or_default() {
            if let Some(subs) = inner.by_key.get_mut(&key) {
                subs.remove(&id);
                if subs.is_empty() {
                    inner.by_key.remove(&key);
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Removes its watch when dropped (the stream ended, the proxy went away).
pub struct SubGuard {
    subs: Arc<Subscriptions>,
    pub id: SubId,
}

impl Drop for SubGuard {
    fn drop(&mut self) {
        self.subs.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ObjKey;

    #[tokio::test]
    async fn only_watches_that_read_a_changed_key_are_woken() {
        let subs = Arc::new(Subscriptions::default());
        let web = Key::Endpoints(ObjKey::new("shop", "web"));
        let api = Key::Endpoints(ObjKey::new("shop", "api"));
        let (a, wake_a) = subs.add(SubscriptionInfo::default());
        let (b, _wake_b) = subs.add(SubscriptionInfo::default());
        subs.set_deps(a.id, [web.clone()].into());
        subs.set_deps(b.id, [api.clone()].into());
        assert_eq!(subs.changed(std::slice::from_ref(&web)), 1);
        // The permit is stored: the watch wakes even though it was not waiting yet.
        tokio::time::timeout(std::time::Duration::from_secs(1), wake_a.notified())
            .await
            .expect("watch a woken");
        subs.set_deps(a.id, [api.clone()].into());
        assert_eq!(subs.changed(&[web]), 0, "a no longer reads web");
        assert_eq!(subs.changed(std::slice::from_ref(&api)), 2);
        drop(b);
        assert_eq!(subs.changed(&[api]), 1, "a dropped watch is never woken");
        assert_eq!(subs.len(), 1);
    }
}
