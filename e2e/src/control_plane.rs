//! A real `trellis.proxy.v1.Discovery` gRPC server the test controls, standing in for the
//! operator.
//!
//! The test sets an [`OutboundConfig`] per authority ([`ControlPlane::set`]); every proxy
//! watching that authority receives it on its open `WatchOutbound` stream, and every later
//! [`ControlPlane::set`] pushes the new version on the same stream. Acks and NACKs the proxy
//! sends back are recorded, and so is every subscription (by authority, or by original
//! destination for a proxy that names an address). [`ControlPlane::kill`] stops it mid-test,
//! dropping the streams.
//!
//! `WatchInbound` serves the [`InboundConfig`] set for the proxy's workload
//! ([`ControlPlane::set_inbound`], pushed on open streams the same way), or else the default
//! policy: permissive (`inbound-1`) unless [`ControlPlane::set_default_inbound`] changed it
//! (`None`: the stream stays silent until a policy is set). Inbound acks and NACKs are
//! recorded apart from outbound ones ([`ControlPlane::inbound_acks`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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
    /// The authority the stream watches, as the proxy named it (`ip:port` for an original
    /// destination).
    pub authority: String,
    pub ack: Ack,
}

impl ReceivedAck {
    /// The version applied, if this is an ack.
    pub fn applied(&self) -> Option<&str> {
        applied(&self.ack)
    }

    /// `(version, reason)`, if this is a NACK.
    pub fn rejected(&self) -> Option<(&str, &str)> {
        rejected(&self.ack)
    }
}

/// An ack or NACK a proxy sent for its inbound policy.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundAck {
    /// The workload the stream watches (`shop/web`).
    pub workload: String,
    pub ack: Ack,
}

impl InboundAck {
    /// The version applied, if this is an ack.
    pub fn applied(&self) -> Option<&str> {
        applied(&self.ack)
    }

    /// `(version, reason)`, if this is a NACK.
    pub fn rejected(&self) -> Option<(&str, &str)> {
        rejected(&self.ack)
    }
}

fn applied(ack: &Ack) -> Option<&str> {
    match &ack.result {
        Some(ack::Result::Applied(v)) => Some(v),
        _ => None,
    }
}

fn rejected(ack: &Ack) -> Option<(&str, &str)> {
    match &ack.result {
        Some(ack::Result::Rejected(n)) => Some((&n.version, &n.reason)),
        _ => None,
    }
}

/// A `WatchOutbound` stream a proxy opened.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    /// The authority watched, as the proxy named it; for an original destination its
    /// address as `ip:port` (`[ip]:port` for IPv6).
    pub authority: String,
    /// The address watched, when the proxy named an original destination rather than an
    /// authority.
    pub original_destination: Option<SocketAddr>,
    /// Who asked (`--workload`).
    pub workload: Option<Workload>,
}

/// The policy a workload gets before the test sets one: allow everything.
fn permissive() -> InboundConfig {
    InboundConfig {
        version: "inbound-1".into(),
        ports: vec![],
        default_policy: DefaultPolicy::Allow as i32,
    }
}

struct Shared {
    configs: Mutex<HashMap<String, watch::Sender<Option<OutboundConfig>>>>,
    acks: Mutex<Vec<ReceivedAck>>,
    subscriptions: Mutex<Vec<Subscription>>,
    open: AtomicUsize,
    /// By workload (`shop/web`).
    inbound: Mutex<HashMap<String, watch::Sender<Option<InboundConfig>>>>,
    default_inbound: Mutex<Option<InboundConfig>>,
    inbound_acks: Mutex<Vec<InboundAck>>,
    inbound_watches: Mutex<Vec<String>>,
    open_inbound: AtomicUsize,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            configs: Mutex::default(),
            acks: Mutex::default(),
            subscriptions: Mutex::default(),
            open: AtomicUsize::new(0),
            inbound: Mutex::default(),
            default_inbound: Mutex::new(Some(permissive())),
            inbound_acks: Mutex::default(),
            inbound_watches: Mutex::default(),
            open_inbound: AtomicUsize::new(0),
        }
    }

    /// The inbound channel of `workload`, made with the default policy the first time.
    fn inbound_channel(&self, workload: &str) -> watch::Sender<Option<InboundConfig>> {
        let default = self.default_inbound.lock().unwrap().clone();
        self.inbound
            .lock()
            .unwrap()
            .entry(workload.to_owned())
            .or_insert_with(|| watch::channel(default).0)
            .clone()
    }

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
        request: Request<Streaming<InboundRequest>>,
    ) -> Result<Response<Self::WatchInboundStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty watch"))?;
        let workload = match &first.workload {
            Some(w) => format!("{}/{}", w.namespace, w.name),
            None => return Err(Status::invalid_argument("name the workload")),
        };
        self.0
            .inbound_watches
            .lock()
            .unwrap()
            .push(workload.clone());
        self.0.open_inbound.fetch_add(1, Ordering::SeqCst);
        let shared = self.0.clone();
        let acks_for = workload.clone();
        tokio::spawn(async move {
            let first = tokio_stream::iter([Ok(first)]);
            let mut requests = first.chain(requests);
            while let Some(Ok(req)) = requests.next().await {
                if let Some(ack) = req.ack {
                    shared.inbound_acks.lock().unwrap().push(InboundAck {
                        workload: acks_for.clone(),
                        ack,
                    });
                }
            }
            shared.open_inbound.fetch_sub(1, Ordering::SeqCst);
        });
        let configs = self.0.inbound_channel(&workload).subscribe();
        Ok(Response::new(forward(configs)))
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
        let (authority, original_destination) = match &first.target {
            Some(outbound_request::Target::Authority(a)) => (a.clone(), None),
            Some(outbound_request::Target::OriginalDestination(d)) => {
                let ip: IpAddr = d.ip.parse().map_err(|_| {
                    Status::invalid_argument(format!("original_destination.ip {:?}", d.ip))
                })?;
                let port = u16::try_from(d.port).map_err(|_| {
                    Status::invalid_argument(format!("original_destination.port {}", d.port))
                })?;
                let addr = SocketAddr::new(ip, port);
                (addr.to_string(), Some(addr))
            }
            None => return Err(Status::invalid_argument("name an authority")),
        };
        self.0.subscriptions.lock().unwrap().push(Subscription {
            authority: authority.clone(),
            original_destination,
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

        let configs = self.0.channel(&authority).subscribe();
        Ok(Response::new(forward(configs)))
    }
}

/// The stream of a watch: the config set now, if any, then every later one.
fn forward<T: Clone + Send + Sync + 'static>(
    mut configs: watch::Receiver<Option<T>>,
) -> ConfigStream<T> {
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
    Box::pin(ReceiverStream::new(rx))
}

/// The Discovery server. Stops when dropped.
pub struct ControlPlane {
    shared: Arc<Shared>,
    server: GrpcServer,
}

impl ControlPlane {
    /// Starts serving on `127.0.0.1:0`, with no destinations yet.
    pub async fn start() -> ControlPlane {
        let shared = Arc::new(Shared::new());
        let server = GrpcServer::start(DiscoveryServer::new(Service(shared.clone()))).await;
        ControlPlane { shared, server }
    }

    /// Starts a fresh control plane (no destinations, no history) on `addr`: a restart of
    /// one that was killed there.
    pub async fn start_on(addr: SocketAddr) -> ControlPlane {
        let shared = Arc::new(Shared::new());
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

    /// Serves `config` as the inbound policy of `workload` (`shop/web`, as `--workload`
    /// names it); a proxy already watching gets the new version at once, on the same
    /// stream.
    pub fn set_inbound(&self, workload: &str, config: InboundConfig) {
        self.shared
            .inbound_channel(workload)
            .send_replace(Some(config));
    }

    /// The inbound policy of workloads the test has set none for, from now on (permissive
    /// `inbound-1` at start); `None`: their `WatchInbound` stays silent until
    /// [`ControlPlane::set_inbound`].
    pub fn set_default_inbound(&self, config: Option<InboundConfig>) {
        *self.shared.default_inbound.lock().unwrap() = config;
    }

    /// Every inbound ack and NACK received, in order.
    pub fn inbound_acks(&self) -> Vec<InboundAck> {
        self.shared.inbound_acks.lock().unwrap().clone()
    }

    /// The workloads that opened `WatchInbound`, one entry per stream.
    pub fn inbound_watches(&self) -> Vec<String> {
        self.shared.inbound_watches.lock().unwrap().clone()
    }

    /// `WatchInbound` streams open right now.
    pub fn open_inbound_watches(&self) -> usize {
        self.shared.open_inbound.load(Ordering::SeqCst)
    }

    /// Waits until a proxy acked inbound policy `version` as applied.
    pub async fn wait_for_inbound_applied(
        &self,
        version: &str,
        timeout: Duration,
    ) -> Option<InboundAck> {
        wait_for(
            timeout,
            || self.inbound_acks(),
            |a| a.applied() == Some(version),
        )
        .await
    }

    /// Waits until a proxy NACKed inbound policy `version`.
    pub async fn wait_for_inbound_rejected(
        &self,
        version: &str,
        timeout: Duration,
    ) -> Option<InboundAck> {
        wait_for(
            timeout,
            || self.inbound_acks(),
            |a| a.rejected().is_some_and(|(v, _)| v == version),
        )
        .await
    }

    /// Every ack and NACK received for destinations, in order.
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

    /// The addresses proxies subscribed to as original destinations, one entry per
    /// `WatchOutbound` stream naming one.
    pub fn original_destinations(&self) -> Vec<SocketAddr> {
        self.watches()
            .into_iter()
            .filter_map(|s| s.original_destination)
            .collect()
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

    /// Waits for a destination's ack or NACK that `pred` accepts; `None` after `timeout`.
    pub async fn wait_for_ack(
        &self,
        timeout: Duration,
        pred: impl Fn(&ReceivedAck) -> bool,
    ) -> Option<ReceivedAck> {
        wait_for(timeout, || self.acks(), pred).await
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

/// Waits until `list` holds an item `pred` accepts; `None` after `timeout`.
async fn wait_for<T>(
    timeout: Duration,
    list: impl Fn() -> Vec<T>,
    pred: impl Fn(&T) -> bool,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = list().into_iter().find(|a| pred(a)) {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
