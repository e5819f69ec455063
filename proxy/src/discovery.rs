//! The gRPC Discovery client: on-demand `WatchOutbound` subscriptions.
//!
//! ```text
//! route layer: authority never seen --subscribe--> Discovery (one task)
//!    -> one watch task per authority: connect, send {workload, authority}, then for each
//!       OutboundConfig: Store::apply -> ack {applied} | NACK {version, reason}
//!    -> stream broken / control plane away: keep the last good config, reconnect with
//!       jittered exponential backoff
//!    -> not used for `idle` -> unsubscribed and dropped
//! ```

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use trellis_proxy_api::v1 as api;

use crate::store::Store;
use crate::telemetry::Metrics;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Discovery {
    pub endpoint: Endpoint,
    pub workload: api::Workload,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Subscriptions not used for this long are dropped.
    pub idle: Duration,
}

impl Discovery {
    /// Runs the subscription manager: new authorities arrive on `requests`.
    pub async fn run(self, mut requests: mpsc::UnboundedReceiver<String>) {
        let mut watches: HashMap<String, (JoinHandle<()>, u64)> = HashMap::new();
        let mut sweep = tokio::time::interval((self.idle / 4).max(Duration::from_millis(100)));
        loop {
            tokio::select! {
                authority = requests.recv() => {
                    let Some(authority) = authority else { return };
                    watches.entry(authority.clone()).or_insert_with(|| {
                        let task = tokio::spawn(self.clone().watch(authority));
                        (task, self.store.elapsed_ms())
                    });
                }
                _ = sweep.tick() => self.drop_idle(&mut watches),
            }
        }
    }

    fn drop_idle(&self, watches: &mut HashMap<String, (JoinHandle<()>, u64)>) {
        let now = self.store.elapsed_ms();
        let idle = self.idle.as_millis() as u64;
        let snapshot = self.store.snapshot();
        watches.retain(|authority, (task, subscribed)| {
            let last_used = snapshot
                .outbound
                .get(authority)
                .map_or(*subscribed, |d| d.last_used_ms().max(*subscribed));
            if now.saturating_sub(last_used) < idle {
                return true;
            }
            task.abort();
            self.store.remove(authority);
            eprintln!("trellis-proxy: unsubscribed from {authority} (idle)");
            false
        });
    }

    /// Keeps one authority's config current for as long as the task lives.
    async fn watch(self, authority: String) {
        let mut failures = 0u32;
        loop {
            match self.stream(&authority, &mut failures).await {
                Ok(()) => {}
                Err(e) if failures == 0 => {
                    eprintln!(
                        "trellis-proxy: discovery of {authority}: {e}; keeping the last good config and reconnecting"
                    );
                }
                Err(_) => {}
            }
            failures = failures.saturating_add(1);
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << failures.min(10))
                .min(BACKOFF_MAX);
            tokio::time::sleep(ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        }
    }

    async fn stream(&self, authority: &str, failures: &mut u32) -> Result<(), tonic::Status> {
        let channel = self
            .endpoint
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?;
        let mut client = api::discovery_client::DiscoveryClient::new(channel);
        let (tx, rx) = mpsc::channel(4);
        let first = api::OutboundRequest {
            workload: Some(self.workload.clone()),
            target: Some(api::outbound_request::Target::Authority(
                authority.to_owned(),
            )),
            ack: None,
        };
        let _ = tx.send(first).await;
        let mut configs = client
            .watch_outbound(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(config) = configs.message().await? {
            *failures = 0;
            let version = config.version.clone();
            let result = match self.store.apply(authority, config) {
                Ok(()) => {
                    self.count("applied");
                    api::ack::Result::Applied(version)
                }
                Err(e) => {
                    self.count("rejected");
                    eprintln!(
                        "trellis-proxy: refused config {version} for {authority}: {e}; the last good config stays in force"
                    );
                    api::ack::Result::Rejected(api::Nack {
                        version,
                        reason: e.to_string(),
                    })
                }
            };
            let ack = api::OutboundRequest {
                workload: Some(self.workload.clone()),
                target: Some(api::outbound_request::Target::Authority(
                    authority.to_owned(),
                )),
                ack: Some(api::Ack {
                    result: Some(result),
                }),
            };
            if tx.send(ack).await.is_err() {
                break;
            }
        }
        Err(tonic::Status::unavailable(
            "the control plane ended the stream",
        ))
    }

    fn count(&self, result: &str) {
        self.metrics
            .config_updates
            .with_label_values(&["grpc", result])
            .inc();
    }
}
