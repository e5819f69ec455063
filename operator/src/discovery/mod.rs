//! The Discovery gRPC server: one watch per `WatchInbound`/`WatchOutbound` stream.
//!
//! ```text
//! proxy --first request {workload, authority | original_destination}--> watch task
//! index listener --keys changed--> Subscriptions --wake--> only the watches that read them
//! watch task: compile -> version -> push (new versions only) -> acks/NACKs recorded
//! ```

mod subscriptions;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use trellis_proxy_api::v1 as api;

pub use subscriptions::{SubscriptionInfo, Subscriptions};
pub use watch::version_of;

use crate::compile::{self, Client, Compiled, Target};
use crate::index::{Index, ObjKey, Snapshot};
use crate::metrics::Metrics;

/// What every watch shares.
pub struct Shared {
    pub index: Index,
    pub subscriptions: Arc<Subscriptions>,
    pub metrics: Arc<Metrics>,
}

/// The tonic service. Cheap to clone.
#[derive(Clone)]
pub struct DiscoveryServer {
    shared: Arc<Shared>,
}

impl DiscoveryServer {
    /// Serves discovery from `index` and wakes watches on its changes.
    pub fn new(index: Index, metrics: Arc<Metrics>) -> Self {
        let subscriptions = Arc::new(Subscriptions::default());
        let subs = subscriptions.clone();
        index.on_change(Box::new(move |_, keys| {
            subs.changed(keys);
        }));
        Self {
            shared: Arc::new(Shared {
                index,
                subscriptions,
                metrics,
            }),
        }
    }

    pub fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.shared.subscriptions
    }

    pub fn service(self) -> api::discovery_server::DiscoveryServer<Self> {
        api::discovery_server::DiscoveryServer::new(self)
            .max_decoding_message_size(16 << 20)
            .max_encoding_message_size(64 << 20)
    }
}

type ConfigStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct InboundWatch {
    workload: ObjKey,
}

impl watch::Watched for InboundWatch {
    type Config = api::InboundConfig;
    type Request = api::InboundRequest;
    const KIND: &'static str = "inbound";

    fn compile(&self, snapshot: &Snapshot) -> Compiled<api::InboundConfig> {
        compile::inbound::inbound(snapshot, &self.workload)
    }

    fn set_version(config: &mut api::InboundConfig, version: String) {
        config.version = version;
    }

    fn ack(request: &api::InboundRequest) -> Option<&api::Ack> {
        request.ack.as_ref()
    }
}

struct OutboundWatch {
    client: Client,
    target: Target,
}

impl watch::Watched for OutboundWatch {
    type Config = api::OutboundConfig;
    type Request = api::OutboundRequest;
    const KIND: &'static str = "outbound";

    fn compile(&self, snapshot: &Snapshot) -> Compiled<api::OutboundConfig> {
        compile::outbound::outbound(snapshot, &self.client, &self.target)
    }

    fn set_version(config: &mut api::OutboundConfig, version: String) {
        config.version = version;
    }

    fn ack(request: &api::OutboundRequest) -> Option<&api::Ack> {
        request.ack.as_ref()
    }
}

fn workload_key(workload: Option<&api::Workload>) -> Result<ObjKey, Status> {
    let w = workload.ok_or_else(|| {
        Status::invalid_argument("workload: required in the first request (namespace and name)")
    })?;
    if w.namespace.is_empty() || w.name.is_empty() {
        return Err(Status::invalid_argument(format!(
            "workload: namespace and name are required, got {:?}/{:?}",
            w.namespace, w.name
        )));
    }
    Ok(ObjKey::new(&w.namespace, &w.name))
}

fn target_of(target: Option<&api::outbound_request::Target>) -> Result<Target, Status> {
    match target {
        Some(api::outbound_request::Target::Authority(a)) if !a.is_empty() => {
            Ok(Target::Authority(a.clone()))
        }
        Some(api::outbound_request::Target::OriginalDestination(addr)) => {
            let ip: IpAddr = addr.ip.parse().map_err(|_| {
                Status::invalid_argument(format!(
                    "original_destination.ip: {:?} is not an IP address",
                    addr.ip
                ))
            })?;
            let port = u16::try_from(addr.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "original_destination.port: {} is not a port number (1-65535)",
                        addr.port
                    ))
                })?;
            Ok(Target::Address(SocketAddr::new(ip, port)))
        }
        _ => Err(Status::invalid_argument(
            "target: the first request names an authority or an original_destination",
        )),
    }
}

fn spawn_watch<W: watch::Watched>(
    shared: Arc<Shared>,
    watched: W,
    info: SubscriptionInfo,
    requests: Streaming<W::Request>,
) -> ConfigStream<W::Config> {
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(watch::run(shared, watched, info, requests, tx));
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl api::discovery_server::Discovery for DiscoveryServer {
    type WatchInboundStream = ConfigStream<api::InboundConfig>;
    type WatchOutboundStream = ConfigStream<api::OutboundConfig>;

    async fn watch_inbound(
        &self,
        request: Request<Streaming<api::InboundRequest>>,
    ) -> Result<Response<Self::WatchInboundStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before the first request"))?;
        let workload = workload_key(first.workload.as_ref())?;
        let info = SubscriptionInfo {
            workload: workload.to_string(),
            target: workload.to_string(),
            ..SubscriptionInfo::default()
        };
        Ok(Response::new(spawn_watch(
            self.shared.clone(),
            InboundWatch { workload },
            info,
            requests,
        )))
    }

    async fn watch_outbound(
        &self,
        request: Request<Streaming<api::OutboundRequest>>,
    ) -> Result<Response<Self::WatchOutboundStream>, Status> {
        let mut requests = request.into_inner();
        let first = requests
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before the first request"))?;
        let client = workload_key(first.workload.as_ref())?;
        let target = target_of(first.target.as_ref())?;
        let info = SubscriptionInfo {
            workload: client.to_string(),
            target: match &target {
                Target::Authority(a) => a.clone(),
                Target::Address(addr) => addr.to_string(),
            },
            ..SubscriptionInfo::default()
        };
        Ok(Response::new(spawn_watch(
            self.shared.clone(),
            OutboundWatch { client, target },
            info,
            requests,
        )))
    }
}
