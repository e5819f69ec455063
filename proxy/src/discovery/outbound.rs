//! On-demand `WatchOutbound` subscriptions: one watch task per destination the proxy's own
//! traffic needs.
//!
//! ```text
//! route layer: destination never seen --subscribe--> Discovery (one task)
//!    -> one watch task per destination: connect, send {workload, target}, then for each
//!       OutboundConfig: Store::apply -> ack {applied} | NACK {version, reason}
//!    -> stream broken / control plane away: keep the last good config, reconnect
//!    -> not used for `idle` -> unsubscribed and dropped
//! ```
//!
//! A destination is named by its authority (`web.shop:80`), or, when the key is a socket
//! address (`10.0.0.5:8080`, `[fd00::1]:80`: an intercepted connection, or a request
//! without a Host), by its `original_destination`, so the control plane resolves it by
//! address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use trellis_proxy_api::v1 as api;

use super::{Backoff, acknowledge};
use crate::store::Store;
use crate::telemetry::Metrics;

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

    /// Keeps one destination's config current for as long as the task lives.
    async fn watch(self, authority: String) {
        let mut backoff = Backoff::default();
        loop {
            if let Err(e) = self.stream(&authority, &mut backoff).await
                && backoff.is_first_failure()
            {
                eprintln!(
                    "trellis-proxy: discovery of {authority}: {e}; keeping the last good config and reconnecting"
                );
            }
            backoff.wait().await;
        }
    }

    async fn stream(&self, authority: &str, backoff: &mut Backoff) -> Result<(), tonic::Status> {
        let mut client = super::connect(&self.endpoint).await?;
        let (tx, rx) = mpsc::channel(4);
        let request = |ack| api::OutboundRequest {
            workload: Some(self.workload.clone()),
            target: Some(target(authority)),
            ack,
        };
        let _ = tx.send(request(None)).await;
        let mut configs = client
            .watch_outbound(ReceiverStream::new(rx))
            .await?
            .into_inner();
        while let Some(config) = configs.message().await? {
            backoff.reset();
            let version = config.version.clone();
            let what = format!("config {version} for {authority}");
            let applied = self.store.apply(authority, config);
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

/// How a watch names its destination: a key that is a socket address (`10.0.0.5:8080`,
/// `[fd00::1]:80`) as the original destination, resolved by address; anything else as the
/// authority.
fn target(key: &str) -> api::outbound_request::Target {
    match key.parse::<SocketAddr>() {
        Ok(addr) => api::outbound_request::Target::OriginalDestination(api::SocketAddress {
            ip: addr.ip().to_string(),
            port: u32::from(addr.port()),
        }),
        Err(_) => api::outbound_request::Target::Authority(key.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::outbound_request::Target;

    fn by_address(ip: &str, port: u32) -> Target {
        Target::OriginalDestination(api::SocketAddress {
            ip: ip.into(),
            port,
        })
    }

    #[test]
    fn a_socket_address_is_watched_as_the_original_destination() {
        assert_eq!(target("10.0.0.5:8080"), by_address("10.0.0.5", 8080));
        assert_eq!(target("[fd00::1]:80"), by_address("fd00::1", 80));
    }

    #[test]
    fn a_name_is_watched_as_the_authority() {
        for key in [
            "web.shop",
            "web.shop.svc.cluster.local:8080",
            "10.0.0.5",
            "fd00::1",
        ] {
            assert_eq!(target(key), Target::Authority(key.into()), "{key}");
        }
    }
}
