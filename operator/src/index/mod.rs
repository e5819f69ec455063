//! The index: the one in-memory model of the mesh.
//!
//! ```text
//! sources (manifests, Git, Kubernetes watches, registered proxies)
//!     --Update--> [one writer task] --Arc<Snapshot>--> readers (compile, status API)
//!                        |
//!                        +--keys changed--> listeners (discovery: recompile only the
//!                                           subscriptions that read one of those keys)
//! ```
//!
//! Updates queued while the writer works are applied together: one new snapshot and one
//! set of changed keys per batch.

mod apply;
mod endpoints;
pub mod from_k8s;
pub mod model;
mod snapshot;

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

pub use apply::{
    ObjectId, Options, SourceObject, Update, resource_ref, split_root, target_destination,
};
pub use model::{
    Endpoint, EndpointSet, Key, Namespace, ObjKey, Origin, ResourceRef, Service, ServicePort,
    TargetPort, Workload, WorkloadPort, service_of_host,
};
pub use snapshot::{AtIp, Reader, ResourceStatus, Snapshot};

/// Called by the writer after each batch with the new snapshot and the keys it changed.
pub type Listener = Box<dyn Fn(&Arc<Snapshot>, &[Key]) + Send + Sync>;

enum Message {
    Update(Update),
    /// Answered with the revision once every earlier update is applied.
    Flush(oneshot::Sender<u64>),
}

/// The handle sources and readers use. Cheap to clone.
#[derive(Clone)]
pub struct Index {
    tx: mpsc::UnboundedSender<Message>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
}

impl Index {
    /// Starts the writer task.
    pub fn spawn(options: Options) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let listeners: Arc<Mutex<Vec<Listener>>> = Arc::default();
        tokio::spawn(run(
            apply::Writer::new(options),
            rx,
            snapshot_tx,
            listeners.clone(),
        ));
        Self {
            tx,
            snapshots,
            listeners,
        }
    }

    /// Queues an update. Returns at once; [`Index::flush`] waits until it is applied.
    pub fn update(&self, update: Update) {
        // The writer only stops when every handle is gone.
        let _ = self.tx.send(Message::Update(update));
    }

    /// Waits until every update queued before is applied; the revision then in force.
    pub async fn flush(&self) -> u64 {
        let (tx, rx) = oneshot::channel();
        let _ = self.tx.send(Message::Flush(tx));
        rx.await.unwrap_or_default()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// Registers a listener called after every batch that changed something.
    pub fn on_change(&self, listener: Listener) {
        self.listeners
            .lock()
            .expect("a listener panicked")
            .push(listener);
    }
}

impl Snapshot {
    /// The snapshot the writer makes from `updates` (tests, benchmarks, offline tools).
    pub fn build(options: Options, updates: impl IntoIterator<Item = Update>) -> Snapshot {
        let mut writer = apply::Writer::new(options);
        for update in updates {
            writer.apply(update);
        }
        writer.finish();
        writer.snapshot
    }
}

async fn run(
    mut writer: apply::Writer,
    mut rx: mpsc::UnboundedReceiver<Message>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
) {
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Update(update) => writer.apply(update),
                Message::Flush(done) => flushes.push(done),
            }
            next = rx.try_recv().ok();
        }
        let revision = writer.snapshot.revision;
        let changed = writer.finish();
        if writer.snapshot.revision != revision {
            let snapshot = Arc::new(writer.snapshot.clone());
            snapshots.send_replace(snapshot.clone());
            if !changed.is_empty() {
                for listener in listeners.lock().expect("a listener panicked").iter() {
                    listener(&snapshot, &changed);
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(writer.snapshot.revision);
        }
    }
}

#[cfg(test)]
mod canary_tests;
#[cfg(test)]
mod tests;
