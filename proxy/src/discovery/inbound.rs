//! The workload's inbound policy from `WatchInbound`: one watch for the life of the process.
//!
//! ```text
//! start -> connect, send {workload}
//!       -> for each InboundConfig: Store::apply_inbound -> ack {applied} | NACK {version, reason}
//!          (the inbound authorize layer and listener see the new policy on their watch)
//!       -> stream broken / control plane away: the last good policy stays in force;
//!          reconnect with jittered backoff, and the control plane sends the policy again
//! ```
//!
//! Until a first policy arrives, inbound traffic meets `--inbound-policy` (deny:
//! `no_inbound_policy`).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use trellis_proxy_api::v1 as api;

use super::{Backoff, acknowledge};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Keeps the store's inbound policy current from the control plane.
pub struct InboundWatch {
    pub endpoint: Endpoint,
    pub workload: api::Workload,
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl InboundWatch {
    /// Watches until the process ends.
    pub async fn run(self) {
        let mut backoff = Backoff::default();
        loop {
            if let Err(e) = self.stream(&mut backoff).await
                && backoff.is_first_failure()
            {
                eprintln!(
                    "trellis-proxy: inbound policy of {}: {e}; keeping the last good policy and reconnecting",
                    workload_name(&self.workload)
                );
            }
            backoff.wait().await;
        }
    }

    async fn stream(&self, backoff: &mut Backoff) -> Result<(), tonic::Status> {
        let mut client = super::connect(&self.endpoint).await?;
        let (tx, rx) = mpsc::channel(4);
        let request = |ack| api::InboundRequest {
            workload: Some(self.workload.clone()),
            ack,
        };
        let _ = tx.send(request(None)).await;
        let mut configs = client
            .watch_inbound(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(config) = configs.message().await? {
            backoff.reset();
            let version = config.version.clone();
            let what = format!("inbound policy {version}");
            let applied = self.store.apply_inbound(config);
            if applied.is_ok() {
                eprintln!("trellis-proxy: applied {what} from the control plane");
            }
            let ack = acknowledge(&self.metrics, &what, version, applied);
            if tx.send(request(Some(ack))).await.is_err() {
                break;
            }
        }
        Err(tonic::Status::unavailable(
            "the control plane ended the stream",
        ))
    }
}

/// `shop/web`, as `--workload` writes it.
fn workload_name(workload: &api::Workload) -> String {
    format!("{}/{}", workload.namespace, workload.name)
}
