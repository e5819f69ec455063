//! The subscribed proxies: which watches each opens, and the in-process clients that open
//! them over real gRPC (one tonic `Channel`, so one HTTP/2 connection, per proxy).
//!
//! ```text
//! proxy P = workload svc-III-0 of an evenly spaced Service
//!   WatchInbound(itself)
//!   WatchOutbound(authority:port) x N: one split root of its namespace, the others
//!     70 % in its namespace, 30 % anywhere
//! every config received -> Event {watch, when, what it says} -> the measuring task
//!                       -> an ack (Applied(version)) back on the stream, as a proxy does
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use trellis_proxy_api::v1 as api;
use trellis_proxy_api::v1::discovery_client::DiscoveryClient;

use crate::mesh::{HTTP_PORT, Mesh};

pub type WatchId = u32;

#[derive(Clone, Debug)]
pub enum Watched {
    Inbound,
    Outbound {
        service: usize,
        port: u16,
        authority: String,
    },
}

#[derive(Clone, Debug)]
pub struct Watch {
    pub watched: Watched,
}

#[derive(Clone, Debug)]
pub struct Proxy {
    pub namespace: String,
    pub name: String,
    pub watches: std::ops::Range<usize>,
}

/// Every proxy and watch, and which watches each change should reach.
pub struct Plan {
    pub proxies: Vec<Proxy>,
    pub watches: Vec<Watch>,
    /// Service -> outbound watches whose config holds its endpoints (the Service itself
    /// when it is not a split root; the split's backends when it is).
    pub by_endpoints: HashMap<usize, Vec<WatchId>>,
    /// Split root -> outbound watches of that root.
    pub by_split_root: HashMap<usize, Vec<WatchId>>,
}

impl Plan {
    pub fn new(mesh: &Mesh, proxies: usize, outbound_per_proxy: usize, seed: u64) -> Plan {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut plan = Plan {
            proxies: Vec::new(),
            watches: Vec::new(),
            by_endpoints: HashMap::new(),
            by_split_root: HashMap::new(),
        };
        for p in 0..proxies {
            let service = p * mesh.services / proxies;
            let ns = mesh.namespace_of(service);
            let ns_first = ns * mesh.per_namespace;
            let ns_end = (ns_first + mesh.per_namespace).min(mesh.services);
            let workload = mesh.workload(service, 0);
            let first = plan.watches.len();
            plan.watches.push(Watch {
                watched: Watched::Inbound,
            });
            let roots: Vec<usize> = (ns_first..ns_end)
                .filter(|s| mesh.split_backends(*s).is_some())
                .collect();
            let mut destinations: Vec<usize> = Vec::new();
            if !roots.is_empty() && outbound_per_proxy > 0 {
                destinations.push(roots[rng.usize(..roots.len())]);
            }
            let mut tries = 0;
            while destinations.len() < outbound_per_proxy.min(mesh.services - 1) && tries < 1000 {
                tries += 1;
                let d = if rng.f32() < 0.7 {
                    rng.usize(ns_first..ns_end)
                } else {
                    rng.usize(..mesh.services)
                };
                if d != service && !destinations.contains(&d) {
                    destinations.push(d);
                }
            }
            for d in destinations {
                let ports = mesh.ports(d);
                let port = ports[rng.usize(..ports.len())];
                let key = mesh.service_key(d);
                let authority = if mesh.namespace_of(d) == ns {
                    format!("{}:{port}", key.name)
                } else {
                    format!("{}.{}:{port}", key.name, key.namespace)
                };
                let id = plan.watches.len() as WatchId;
                match mesh.split_backends(d) {
                    Some(backends) if port == HTTP_PORT => {
                        plan.by_split_root.entry(d).or_default().push(id);
                        for b in backends {
                            plan.by_endpoints.entry(b).or_default().push(id);
                        }
                    }
                    _ => plan.by_endpoints.entry(d).or_default().push(id),
                }
                plan.watches.push(Watch {
                    watched: Watched::Outbound {
                        service: d,
                        port,
                        authority,
                    },
                });
            }
            plan.proxies.push(Proxy {
                namespace: workload.key.namespace.to_string(),
                name: workload.key.name.to_string(),
                watches: first..plan.watches.len(),
            });
        }
        plan
    }

    pub fn outbound_watches(&self) -> usize {
        self.watches
            .iter()
            .filter(|w| matches!(w.watched, Watched::Outbound { .. }))
            .count()
    }
}

/// What a received config says, enough to tell whether it carries a given change.
#[derive(Clone, Debug)]
pub enum Seen {
    Outbound {
        /// `(backend, weight)` of the default route (the last one).
        weights: Vec<(String, u32)>,
        /// `(backend, endpoints)`.
        endpoints: Vec<(String, usize)>,
        unavailable: bool,
    },
    Inbound {
        authorizations: usize,
    },
}

#[derive(Debug)]
pub struct Event {
    pub watch: WatchId,
    pub at: Instant,
    pub seen: Seen,
}

fn seen_outbound(config: &api::OutboundConfig) -> Seen {
    let default = config.routes.last();
    Seen::Outbound {
        weights: default
            .map(|r| {
                r.backends
                    .iter()
                    .map(|b| (b.backend.clone(), b.weight))
                    .collect()
            })
            .unwrap_or_default(),
        endpoints: config
            .backends
            .iter()
            .map(|b| (b.name.clone(), b.endpoints.len()))
            .collect(),
        unavailable: config
            .routes
            .iter()
            .any(|r| !r.unavailable_reason.is_empty()),
    }
}

fn seen_inbound(config: &api::InboundConfig) -> Seen {
    Seen::Inbound {
        authorizations: config.ports.iter().map(|p| p.authorizations.len()).sum(),
    }
}

/// Starts every proxy on the current runtime, at most `concurrency` connecting at once.
/// Configs arrive on `events`; the returned handles keep the proxies alive.
pub async fn start(
    server: SocketAddr,
    plan: &Plan,
    concurrency: usize,
    events: mpsc::UnboundedSender<Event>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let url = format!("http://{server}");
    let mut handles = Vec::with_capacity(plan.proxies.len());
    for proxy in &plan.proxies {
        let watches: Vec<(WatchId, Watched)> = proxy
            .watches
            .clone()
            .map(|i| (i as WatchId, plan.watches[i].watched.clone()))
            .collect();
        let workload = api::Workload {
            namespace: proxy.namespace.clone(),
            name: proxy.name.clone(),
        };
        let (url, events, permits) = (url.clone(), events.clone(), permits.clone());
        handles.push(tokio::spawn(async move {
            let permit = permits.acquire_owned().await.expect("never closed");
            let channel = connect(&url).await;
            let mut opened = Vec::new();
            let mut firsts = Vec::new();
            for (id, watched) in watches {
                let client =
                    DiscoveryClient::new(channel.clone()).max_decoding_message_size(64 << 20);
                let (first_tx, first_rx) = oneshot::channel();
                firsts.push(first_rx);
                opened.push(tokio::spawn(run_watch(
                    client,
                    workload.clone(),
                    id,
                    watched,
                    events.clone(),
                    first_tx,
                )));
            }
            // The permit is held until every watch of this proxy has its first config.
            for first in firsts {
                let _ = first.await;
            }
            drop(permit);
            for w in opened {
                let _ = w.await;
            }
        }));
    }
    handles
}

async fn connect(url: &str) -> Channel {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .expect("a valid URL")
        .tcp_nodelay(true);
    let mut delay = std::time::Duration::from_millis(10);
    loop {
        match endpoint.connect().await {
            Ok(channel) => return channel,
            Err(e) => {
                eprintln!("connect {url}: {e}; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(1));
            }
        }
    }
}

/// One watch: open it, then report every config and ack it, until the stream ends.
async fn run_watch(
    mut client: DiscoveryClient<Channel>,
    workload: api::Workload,
    id: WatchId,
    watched: Watched,
    events: mpsc::UnboundedSender<Event>,
    first: oneshot::Sender<()>,
) {
    let mut first = Some(first);
    match watched {
        Watched::Inbound => {
            let (tx, rx) = mpsc::channel(4);
            let open = api::InboundRequest {
                workload: Some(workload),
                ack: None,
            };
            tx.send(open).await.expect("open");
            let Ok(response) = client.watch_inbound(ReceiverStream::new(rx)).await else {
                eprintln!("watch {id}: WatchInbound refused");
                return;
            };
            let mut configs = response.into_inner();
            while let Ok(Some(config)) = configs.message().await {
                let at = Instant::now();
                let _ = events.send(Event {
                    watch: id,
                    at,
                    seen: seen_inbound(&config),
                });
                if let Some(first) = first.take() {
                    let _ = first.send(());
                }
                let ack = api::InboundRequest {
                    workload: None,
                    ack: Some(applied(config.version)),
                };
                if tx.send(ack).await.is_err() {
                    break;
                }
            }
        }
        Watched::Outbound { authority, .. } => {
            let (tx, rx) = mpsc::channel(4);
            let open = api::OutboundRequest {
                workload: Some(workload),
                target: Some(api::outbound_request::Target::Authority(authority)),
                ack: None,
            };
            tx.send(open).await.expect("open");
            let Ok(response) = client.watch_outbound(ReceiverStream::new(rx)).await else {
                eprintln!("watch {id}: WatchOutbound refused");
                return;
            };
            let mut configs = response.into_inner();
            while let Ok(Some(config)) = configs.message().await {
                let at = Instant::now();
                let _ = events.send(Event {
                    watch: id,
                    at,
                    seen: seen_outbound(&config),
                });
                if let Some(first) = first.take() {
                    let _ = first.send(());
                }
                let ack = api::OutboundRequest {
                    ack: Some(applied(config.version)),
                    ..Default::default()
                };
                if tx.send(ack).await.is_err() {
                    break;
                }
            }
        }
    }
}

fn applied(version: String) -> api::Ack {
    api::Ack {
        result: Some(api::ack::Result::Applied(version)),
    }
}
