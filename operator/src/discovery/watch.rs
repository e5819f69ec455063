//! One watch: compile, version by content, send when the version changed, then sleep until
//! a key the config was compiled from changes (or an ack arrives).
//!
//! ```text
//! loop: snapshot -> compile (keys read) -> set_deps -> revision moved meanwhile? again
//!       version = hash(encoded config); new version -> send (waits for this proxy only)
//!       wait: woken by the index listener | ack/NACK from the proxy | stream closed
//! ```
//!
//! Back-pressure: the response channel holds one message; a slow proxy blocks only its own
//! watch, and changes made meanwhile collapse into one recompile with the newest snapshot.

use std::hash::{DefaultHasher, Hasher};
use std::sync::Arc;
use std::time::Instant;

use prost::Message;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};
use trellis_proxy_api::v1 as api;

use super::Shared;
use super::subscriptions::SubscriptionInfo;
use crate::compile::Compiled;
use crate::index::Snapshot;

/// What differs between the inbound and the outbound watch.
pub(super) trait Watched: Send + 'static {
    type Config: Message + Send + 'static;
    type Request: Send + 'static;
    const KIND: &'static str;
    fn compile(&self, snapshot: &Snapshot) -> Compiled<Self::Config>;
    fn set_version(config: &mut Self::Config, version: String);
    fn ack(request: &Self::Request) -> Option<&api::Ack>;
}

/// The version of a config: a hash of its encoding (maps are ordered, so equal configs
/// encode equally), the same across operator restarts.
pub fn version_of<M: Message>(config: &M) -> String {
    let mut hasher = DefaultHasher::new();
    hasher.write(&config.encode_to_vec());
    format!("{:016x}", hasher.finish())
}

pub(super) async fn run<W: Watched>(
    shared: Arc<Shared>,
    watched: W,
    info: SubscriptionInfo,
    mut requests: Streaming<W::Request>,
    tx: mpsc::Sender<Result<W::Config, Status>>,
) {
    let kind = W::KIND;
    let (guard, wake) = shared.subscriptions.add(SubscriptionInfo { kind, ..info });
    let id = guard.id;
    let gauge = shared.metrics.subscriptions.with_label_values(&[kind]);
    gauge.inc();
    let mut sent: Option<String> = None;
    'watch: loop {
        let snapshot = shared.index.snapshot();
        let started = Instant::now();
        let compiled = watched.compile(&snapshot);
        shared
            .metrics
            .compile_seconds
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        shared.subscriptions.set_deps(id, compiled.deps);
        if shared.index.snapshot().revision != snapshot.revision {
            // A change landed while compiling: its keys may not have reached this watch.
            continue;
        }
        // Waiting must not keep this revision's tables alive (they are copied on write).
        drop(snapshot);
        let mut config = compiled.config;
        let version = version_of(&config);
        let pushed = sent.as_deref() != Some(version.as_str());
        shared
            .metrics
            .compiles
            .with_label_values(&[kind, if pushed { "pushed" } else { "unchanged" }])
            .inc();
        if pushed {
            W::set_version(&mut config, version.clone());
            if tx.send(Ok(config)).await.is_err() {
                break;
            }
            shared.metrics.pushes.with_label_values(&[kind]).inc();
            shared.subscriptions.update(id, |i| {
                i.pushes += 1;
                i.sent_version = Some(version.clone());
            });
            sent = Some(version);
        }
        loop {
            tokio::select! {
                _ = wake.notified() => continue 'watch,
                message = requests.message() => match message {
                    Ok(Some(request)) => {
                        if let Some(ack) = W::ack(&request) {
                            record_ack(&shared, id, kind, ack);
                        }
                    }
                    Ok(None) | Err(_) => break 'watch,
                },
            }
        }
    }
    gauge.dec();
}

fn record_ack(shared: &Shared, id: u64, kind: &'static str, ack: &api::Ack) {
    match &ack.result {
        Some(api::ack::Result::Applied(version)) => {
            shared
                .metrics
                .acks
                .with_label_values(&[kind, "applied"])
                .inc();
            shared.subscriptions.update(id, |i| {
                i.applied_version = Some(version.clone());
                i.rejected = None;
            });
        }
        Some(api::ack::Result::Rejected(nack)) => {
            shared
                .metrics
                .acks
                .with_label_values(&[kind, "rejected"])
                .inc();
            shared.subscriptions.update(id, |i| {
                eprintln!(
                    "trellis operator: proxy {} refused {kind} config {} for {}: {}",
                    i.workload, nack.version, i.target, nack.reason
                );
                i.rejected = Some((nack.version.clone(), nack.reason.clone()));
            });
        }
        None => {}
    }
}
