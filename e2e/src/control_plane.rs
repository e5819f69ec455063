//! A real `trellis.proxy.v1.Discovery` gRPC server the test controls, standing in for the
//! operator.
//!
//! The test sets an [`OutboundConfig`] per authority ([`ControlPlane::set`]); every proxy
//! watching that authority receives it on its open `WatchOutbound` stream, and every later
//! [`ControlPlane::set`] pushes the new version on the same stream. Acks and NACKs the proxy
//! sends back are recorded, and so is every subscription. [`ControlPlane::kill`] stops it
//! mid-test, dropping the streams.
//!
//! `WatchInbound` answers with one permissive [`InboundConfig`] and then stays open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use trellis_proxy_api::v1::discovery_server::{Discovery, DiscoveryServer};
use trellis_proxy_api::v1::{
    Ack, DefaultPolicy, InboundConfig, InboundRequest, OutboundConfig, OutboundRequest, Workload,
    ack, outbound_request,
};

use crate::serve::GrpcServer;

type ConfigStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// An ack or NACK a proxy sent for a destination.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceivedAck {
    /// The authority the stream watches, as the proxy named it.
    pub authority: String,
    pub ack: Ack,
}

impl ReceivedAck {
    /// The version applied, if this is an ack.
    pub fn applied(&self) -> Option<&str> {
        match &self.ack.result {
            Some(ack::Result::Applied(v)) => Some(v),
            _ => None,
        }
    }

    /// `(version, reason)`, if this is a NACK.
    pub fn rejected(&self) -> Option<(&str, &str)> {
        match &self.ack.result {
            Some(ack::Result::Rejected(n)) => Some((&n.version, &n.reason)),
            _ => None,
        }
    }
}

/// A `WatchOutbound` stream a proxy opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The authority watched, as the proxy named it.
    pub authority: String,
    /// Who asked (`--workload`).
    pub workload: Option<Workload>,
}

#[derive(Default)]
struct Shared {
    configs: Mutex<HashMap<String, watch::Sender<Option<OutboundConfig>>>>,
    acks: Mutex<Vec<ReceivedAck>>,
    subscriptions: Mutex<Vec<Subscription>>,
    open: AtomicUsize,
}

impl Shared {
    /// The channel for `authority`; a watch naming `host:port` follows the config set for
    /// `host` when there is none for `host:port`.
    fn channel(&self, authority: &str) -> watch::Sender<Option<OutboundConfig>> {
        let mut configs = self.configs.lock().unwrap();
        if let Some(tx) = configs.get(authority) {
            return tx.clone();
        }
        if let Some((host, _port)) = authority.rsplit_once(':')
            && let Some(tx) = configs.get(host)
        {
            return tx.clone();
        }
        configs
            .entry(authority.to_owned())
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }
}

#[derive(Clone)]
struct Service(Arc<Shared>);

#[tonic::async_trait]
impl Discovery for Service {
    type WatchInboundStream = ConfigStream<InboundConfig>;
    type WatchOutboundStream = ConfigStream<OutboundConfig>;

    async fn watch_inbound(
        &self,
        _: Request<Streaming<InboundRequest>>,
    ) -> Result<Response<Self::WatchInboundStream>, Status> {
        let allow = InboundConfig {
            version: "inbound-1".into(),
            ports: vec![],
            default_policy: DefaultPolicy::Allow as i32,
        };
        Ok(Response::new(Box::pin(
            tokio_stream::iter([Ok(allow)]).chain(tokio_stream::pending()),
        )))
    }

    async fn watch_outbound(
        &self,
        request: Request<Streaming<OutboundRequest>>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty watch"))?;
        let authority = match &first.target {
            Some(outbound_request::Target::Authority(a)) => a.clone(),
            Some(outbound_request::Target::OriginalDestination(d)) => {
                format!("{}:{}", d.ip, d.port)
            }
            None => return Err(Status::invalid_argument("name an authority")),
        };
        self.0.subscriptions.lock().unwrap().push(Subscription {
            authority: authority.clone(),
            workload: first.workload.clone(),
        });
        self.0.open.fetch_add(1, Ordering::SeqCst);
        let shared = self.0.clone();
        if let Some(ack) = first.ack {
            shared.acks.lock().unwrap().push(ReceivedAck {
                authority: authority.clone(),
                ack,
            });
        }
        let acks_for = authority.clone();
        tokio::spawn(async move {
            while let Some(Ok(req)) = requests.next().await {
                if let Some(ack) = req.ack {
                    shared.acks.lock().unwrap().push(ReceivedAck {
                        authority: acks_for.clone(),
                        ack,
                    });
                }
            }
            // The proxy ended its side of the watch (unsubscribed, or the connection died).
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });

        let mut configs = self.0.channel(&authority).subscribe();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let current = configs.borrow_and_update().clone();
                if let Some(config) = current
                    && tx.send(Ok(config)).await.is_err()
                {
                    return;
                }
                tokio::select! {
                    changed = configs.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The Discovery server. Stops when dropped.
pub struct ControlPlane {
    shared: Arc<Shared>,
    server: GrpcServer,
}

impl ControlPlane {
    /// Starts serving on `127.0.0.1:0`, with no destinations yet.
    pub async fn start() -> ControlPlane {
        let shared = Arc::new(Shared::default());
        let server = GrpcServer::start(DiscoveryServer::new(Service(shared.clone()))).await;
        ControlPlane { shared, server }
    }

    /// Starts a fresh control plane (no destinations, no history) on `addr`: a restart of
    /// one that was killed there.
    pub async fn start_on(addr: SocketAddr) -> ControlPlane {
        let shared = Arc::new(Shared::default());
        let server =
            GrpcServer::start_on(addr, DiscoveryServer::new(Service(shared.clone()))).await;
        ControlPlane { shared, server }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `http://127.0.0.1:PORT`, for `--control-plane`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Serves `config` for its authority (`config.authority`); proxies already watching it
    /// get the new version at once.
    pub fn set(&self, config: OutboundConfig) {
        let tx = self.shared.channel(&config.authority);
        tx.send_replace(Some(config));
    }

    /// Serves `config` to proxies watching `watched`, whatever authority the config itself
    /// names: how a control plane answers an alias (`web`) with the canonical destination
    /// (`web.shop.svc.cluster.local`).
    pub fn set_for(&self, watched: &str, config: OutboundConfig) {
        let tx = self.shared.channel(watched);
        tx.send_replace(Some(config));
    }

    /// Every ack and NACK received, in order.
    pub fn acks(&self) -> Vec<ReceivedAck> {
        self.shared.acks.lock().unwrap().clone()
    }

    /// The authorities proxies subscribed to, one entry per `WatchOutbound` stream opened.
    pub fn subscriptions(&self) -> Vec<String> {
        self.watches().into_iter().map(|s| s.authority).collect()
    }

    /// Every `WatchOutbound` stream opened, with who opened it.
    pub fn watches(&self) -> Vec<Subscription> {
        self.shared.subscriptions.lock().unwrap().clone()
    }

    /// `WatchOutbound` streams open right now.
    pub fn open_watches(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for this control plane; false after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&ControlPlane) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        while !pred(self) {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Waits for an ack or NACK that `pred` accepts; `None` after `timeout`.
    pub async fn wait_for_ack(
        &self,
        timeout: Duration,
        pred: impl Fn(&ReceivedAck) -> bool,
    ) -> Option<ReceivedAck> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.acks().into_iter().find(|a| pred(a)) {
                return Some(found);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the proxy acked `version` as applied.
    pub async fn wait_for_applied(&self, version: &str, timeout: Duration) -> Option<ReceivedAck> {
        self.wait_for_ack(timeout, |a| a.applied() == Some(version))
            .await
    }

    /// Waits until the proxy NACKed `version`.
    pub async fn wait_for_rejected(&self, version: &str, timeout: Duration) -> Option<ReceivedAck> {
        self.wait_for_ack(timeout, |a| a.rejected().is_some_and(|(v, _)| v == version))
            .await
    }

    /// Stops the control plane as a crash would: the listener closes and every open stream
    /// is dropped.
    pub fn kill(&self) {
        self.server.kill();
    }
}
