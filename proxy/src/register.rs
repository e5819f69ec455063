//! Local mode (no Kubernetes): the proxy registers the workload it serves at the control
//! plane (`Registry.Register`), as a Pod appears in Kubernetes; the operator matches Service
//! selectors against the registration to make endpoints.
//!
//! ```text
//! start    -> connect, send Registration {namespace, name, service_account, labels,
//!             addresses, ports, ready, inbound_port, admin_port}
//!          <- RegistrationStatus {identity, Services selecting it}: the first one is logged
//! every 1 s (and on every store change): ready = the proxy is ready (what /ready says)
//!             && the app accepts a TCP connection on its first port;
//!             a change -> the Registration again, on the same stream
//! stream broken / control plane away -> reconnect with the Discovery watches' jittered
//!             backoff; the new stream registers the workload again
//! SIGTERM  -> Registration {ready: false}, wait (bounded) for its status, close the stream
//! ```
//!
//! The stream stays open for the life of the process: the operator keeps the workload while
//! it is open and for its grace period after it ends.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;
use trellis_proxy_api::v1 as api;

use crate::discovery::Backoff;
use crate::store::{Snapshot, Store};

/// How often the app is checked (a TCP connect to its first port, then close).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How long the app may take to accept the check's connection.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Keep-alive pings on the registration's connection, so a control plane that vanished
/// without closing it is noticed and registered at again.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `--register` and the flags beside it say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub workload: api::Workload,
    pub service_account: String,
    /// Matched by Service selectors.
    pub labels: BTreeMap<String, String>,
    /// Where peers reach the workload.
    pub addresses: Vec<IpAddr>,
    /// The app's ports; the first one is checked for readiness.
    pub ports: Vec<AppPort>,
    /// iptables send inbound connections to the proxy (`trellis-proxy init`): peers connect
    /// to the app's ports. Otherwise they connect to the proxy's inbound listener.
    pub intercepted: bool,
}

/// One port of the app (`--app-port [NAME=]PORT`); a named one resolves a Service's named
/// `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppPort {
    /// `""`: unnamed.
    pub name: String,
    pub port: u16,
}

impl Settings {
    /// The registration message, the inbound and admin listeners being bound at `inbound`
    /// and `admin`.
    pub fn registration(
        &self,
        inbound: SocketAddr,
        admin: SocketAddr,
        ready: bool,
    ) -> api::Registration {
        api::Registration {
            namespace: self.workload.namespace.clone(),
            name: self.workload.name.clone(),
            service_account: self.service_account.clone(),
            labels: self.labels.clone(),
            addresses: self.addresses.iter().map(ToString::to_string).collect(),
            ports: self
                .ports
                .iter()
                .map(|p| api::WorkloadPort {
                    name: p.name.clone(),
                    port: p.port.into(),
                    protocol: api::ProtocolHint::Unspecified.into(),
                })
                .collect(),
            ready,
            inbound_port: if self.intercepted {
                0
            } else {
                inbound.port().into()
            },
            admin_port: admin.port().into(),
        }
    }
}

/// The address registered when no `--address` is given: the inbound listener's IP, or
/// `127.0.0.1` when it listens on every address (`0.0.0.0`, `::`).
pub fn default_address(inbound: SocketAddr) -> IpAddr {
    if inbound.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        inbound.ip()
    }
}

/// Whether the workload takes traffic, or why not: the proxy is ready (what `/ready`
/// reports: listeners bound, a config source answered, a certificate held when there is an
/// identity) and the app accepts connections (`app`, the last check).
pub fn readiness(listening: bool, proxy: &Snapshot, app: Result<(), String>) -> Result<(), String> {
    if !listening {
        return Err("the proxy's listeners are not bound yet".into());
    }
    if let Some(reason) = proxy
        .not_ready
        .as_ref()
        .or(proxy.identity.not_ready.as_ref())
    {
        return Err(format!("the proxy is not ready: {reason}"));
    }
    app
}

/// The registration as `/config` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// A stream is open and the control plane answered on it.
    pub registered: bool,
    /// The readiness last sent; `not_ready` says why it is false.
    pub ready: bool,
    pub not_ready: Option<String>,
    /// From the last `RegistrationStatus`: the SPIFFE id the workload's certificates carry.
    pub identity: Option<String>,
    /// From the last `RegistrationStatus`: the Services (`namespace/name`) selecting it.
    pub services: Vec<String>,
    /// Why the last stream ended or could not be opened.
    pub last_error: Option<String>,
}

impl State {
    /// The `registration` object of `/config`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "registered": self.registered,
            "ready": self.ready,
            "not_ready": self.not_ready,
            "identity": self.identity,
            "services": self.services,
            "last_error": self.last_error,
        })
    }
}

/// Registers the workload until [`Handle::deregister`].
pub struct Registrar {
    /// The control plane.
    pub endpoint: Endpoint,
    pub settings: Settings,
    /// The inbound listener as bound (its port is `inbound_port` without interception).
    pub inbound: SocketAddr,
    /// The admin listener as bound (its port is `admin_port`: where the operator scrapes
    /// `/metrics`).
    pub admin: SocketAddr,
    /// `--inbound-target`: the app is checked at its IP and the first app port.
    pub inbound_target: SocketAddr,
    pub store: Store,
    /// Set once every listener is bound (as for `/ready`).
    pub listening: Arc<AtomicBool>,
}

/// The running registration.
pub struct Handle {
    stop: watch::Sender<bool>,
    state: watch::Receiver<State>,
    task: JoinHandle<()>,
}

impl Handle {
    /// The registration's state, for `/config`.
    pub fn state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// Sends a last registration with `ready: false` on the open stream, waits up to
    /// `within` for the control plane's answer, and closes the stream.
    pub async fn deregister(self, within: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            task.abort();
        }
    }
}

impl Registrar {
    /// Starts the readiness checks and the registration stream.
    pub fn start(self) -> Handle {
        let (stop, stop_rx) = watch::channel(false);
        let (state_tx, state) = watch::channel(State::default());
        let probe = self
            .settings
            .ports
            .first()
            .map(|p| SocketAddr::new(self.inbound_target.ip(), p.port));
        let name = workload_name(&self.settings.workload);
        let (ready_tx, ready) = watch::channel(Err("not checked yet".to_owned()));
        tokio::spawn(check_readiness(
            name.clone(),
            probe,
            self.store.clone(),
            self.listening.clone(),
            ready_tx,
        ));
        let endpoint = self
            .endpoint
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let stream = Stream {
            endpoint,
            name,
            message: self.settings.registration(self.inbound, self.admin, false),
            ready,
            stop: stop_rx,
            state: state_tx,
        };
        Handle {
            stop,
            state,
            task: tokio::spawn(stream.run()),
        }
    }
}

/// Checks the app every [`PROBE_INTERVAL`] and the proxy then and whenever the store
/// changes; publishes the readiness on `ready` and logs each change.
async fn check_readiness(
    name: String,
    probe: Option<SocketAddr>,
    store: Store,
    listening: Arc<AtomicBool>,
    ready: watch::Sender<Result<(), String>>,
) {
    let mut store_changes = store.watch();
    let start = tokio::time::Instant::now() + PROBE_INTERVAL;
    let mut tick = tokio::time::interval_at(start, PROBE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut app = Ok(());
    let mut check_app = true;
    let mut was_ready = None;
    loop {
        if check_app && let Some(addr) = probe {
            app = app_accepts(addr).await;
        }
        let now = readiness(
            listening.load(Ordering::Relaxed),
            &store.snapshot(),
            app.clone(),
        );
        if was_ready != Some(now.is_ok()) {
            match &now {
                Ok(()) => eprintln!("trellis-proxy: {name} is ready"),
                Err(reason) => eprintln!("trellis-proxy: {name} is not ready: {reason}"),
            }
            was_ready = Some(now.is_ok());
        }
        ready.send_if_modified(|last| {
            let changed = *last != now;
            *last = now;
            changed
        });
        tokio::select! {
            _ = tick.tick() => check_app = true,
            changed = store_changes.changed() => {
                if changed.is_err() {
                    return;
                }
                check_app = false;
            }
            _ = ready.closed() => return,
        }
    }
}

/// Whether the app accepts a TCP connection at `addr` (closed at once).
async fn app_accepts(addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_connection)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "the app does not accept connections on {addr}: {e}"
        )),
        Err(_) => Err(format!(
            "the app did not accept a connection on {addr} within {PROBE_TIMEOUT:?}"
        )),
    }
}

/// The registration stream, opened again whenever it breaks.
struct Stream {
    endpoint: Endpoint,
    /// `shop/web-1`.
    name: String,
    /// The registration with the readiness last sent.
    message: api::Registration,
    ready: watch::Receiver<Result<(), String>>,
    stop: watch::Receiver<bool>,
    state: watch::Sender<State>,
}

impl Stream {
    async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            match self.stream(&mut backoff).await {
                Ok(()) => return,
                Err(e) => {
                    if backoff.is_first_failure() {
                        eprintln!(
                            "trellis-proxy: registration of {}: {}; registering again",
                            self.name,
                            e.message()
                        );
                    }
                    self.state.send_modify(|s| {
                        s.registered = false;
                        s.last_error = Some(e.message().to_owned());
                    });
                }
            }
            tokio::select! {
                _ = backoff.wait() => {}
                _ = stopped(&mut self.stop) => return,
            }
        }
    }

    /// One stream, until it breaks or (`Ok`) the proxy shuts down: then `ready: false` has
    /// been sent, and answered if the control plane did in time.
    async fn stream(&mut self, backoff: &mut Backoff) -> Result<(), tonic::Status> {
        if *self.stop.borrow() {
            return Ok(());
        }
        let channel = tokio::select! {
            connected = self.endpoint.connect() => connected
                .map_err(|e| tonic::Status::unavailable(format!("cannot connect: {e}")))?,
            _ = stopped(&mut self.stop) => return Ok(()),
        };
        let mut client = api::registry_client::RegistryClient::new(channel);
        let (tx, rx) = mpsc::channel(4);
        self.message.ready = self.ready.borrow_and_update().is_ok();
        self.publish_readiness();
        let _ = tx.send(self.message.clone()).await;
        // Registrations sent whose status has not arrived yet.
        let mut unanswered = 1usize;
        let mut statuses = client.register(ReceiverStream::new(rx)).await?.into_inner();
        let mut first = true;
        // Readiness checks run (their task ended only if the process is ending).
        let mut checking = true;
        loop {
            tokio::select! {
                status = statuses.next() => {
                    let status = status.ok_or_else(|| {
                        tonic::Status::unavailable("the control plane ended the stream")
                    })??;
                    backoff.reset();
                    unanswered = unanswered.saturating_sub(1);
                    self.answered(status, std::mem::take(&mut first));
                }
                changed = self.ready.changed(), if checking => {
                    if changed.is_err() {
                        checking = false;
                        continue;
                    }
                    let ready = self.ready.borrow_and_update().is_ok();
                    self.publish_readiness();
                    if ready != self.message.ready {
                        self.message.ready = ready;
                        send(&tx, &self.message).await?;
                        unanswered += 1;
                    }
                }
                _ = stopped(&mut self.stop) => {
                    self.message.ready = false;
                    self.state.send_modify(|s| {
                        s.ready = false;
                        s.not_ready = Some("shutting down".into());
                    });
                    send(&tx, &self.message).await?;
                    unanswered += 1;
                    while unanswered > 0 {
                        match statuses.next().await {
                            Some(Ok(_)) => unanswered -= 1,
                            _ => break,
                        }
                    }
                    eprintln!(
                        "trellis-proxy: told the control plane {} is not ready (shutting down)",
                        self.name
                    );
                    return Ok(());
                }
            }
        }
    }

    /// Logs the first status of a stream, and later ones that say something new.
    fn answered(&self, status: api::RegistrationStatus, first: bool) {
        let identity = (!status.identity.is_empty()).then_some(status.identity);
        let changed = self.state.send_if_modified(|s| {
            let changed = s.identity != identity || s.services != status.services;
            s.registered = true;
            s.last_error = None;
            s.identity = identity.clone();
            s.services = status.services.clone();
            changed || first
        });
        if first || changed {
            eprintln!(
                "trellis-proxy: registered {} as {}; selected by {}",
                self.name,
                identity.as_deref().unwrap_or("(no identity)"),
                services_text(&status.services)
            );
        }
    }

    fn publish_readiness(&self) {
        let not_ready = self.ready.borrow().clone().err();
        self.state.send_modify(|s| {
            s.ready = not_ready.is_none();
            s.not_ready = not_ready;
        });
    }
}

/// Resolves once the proxy shuts down (or the [`Handle`] is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn send(
    tx: &mpsc::Sender<api::Registration>,
    message: &api::Registration,
) -> Result<(), tonic::Status> {
    tx.send(message.clone())
        .await
        .map_err(|_| tonic::Status::unavailable("the registration stream closed"))
}

/// `Services shop/web, shop/all` or `no Service`.
fn services_text(services: &[String]) -> String {
    if services.is_empty() {
        "no Service".into()
    } else {
        format!("Services {}", services.join(", "))
    }
}

/// `shop/web-1`, as `--workload` writes it.
fn workload_name(workload: &api::Workload) -> String {
    format!("{}/{}", workload.namespace, workload.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IdentityStatus;

    fn settings() -> Settings {
        Settings {
            workload: api::Workload {
                namespace: "shop".into(),
                name: "web-1".into(),
            },
            service_account: "web".into(),
            labels: [("app".into(), "web".into())].into(),
            addresses: vec!["10.0.0.5".parse().unwrap()],
            ports: vec![
                AppPort {
                    name: "http".into(),
                    port: 8080,
                },
                AppPort {
                    name: String::new(),
                    port: 9090,
                },
            ],
            intercepted: false,
        }
    }

    fn ready_proxy() -> Snapshot {
        Snapshot::default()
    }

    fn inbound() -> SocketAddr {
        "0.0.0.0:4143".parse().unwrap()
    }

    fn admin() -> SocketAddr {
        "0.0.0.0:4191".parse().unwrap()
    }

    #[test]
    fn the_registration_carries_the_workload_and_the_inbound_and_admin_listener_ports() {
        let port = |name: &str, port| api::WorkloadPort {
            name: name.into(),
            port,
            protocol: api::ProtocolHint::Unspecified.into(),
        };
        assert_eq!(
            settings().registration(inbound(), admin(), true),
            api::Registration {
                namespace: "shop".into(),
                name: "web-1".into(),
                service_account: "web".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                addresses: vec!["10.0.0.5".into()],
                ports: vec![port("http", 8080), port("", 9090)],
                ready: true,
                inbound_port: 4143,
                admin_port: 4191,
            }
        );
    }

    #[test]
    fn an_intercepted_workload_is_reached_at_its_app_ports() {
        let intercepted = Settings {
            intercepted: true,
            ..settings()
        };
        let registration = intercepted.registration(inbound(), admin(), false);
        assert_eq!(registration.inbound_port, 0);
        assert_eq!(
            registration.admin_port, 4191,
            "metrics are scraped at the proxy"
        );
    }

    #[test]
    fn the_default_address_is_the_inbound_listener_ip_unless_it_listens_everywhere() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(default_address(addr("10.0.0.5:4143")), ip("10.0.0.5"));
        assert_eq!(default_address(addr("[fd00::5]:4143")), ip("fd00::5"));
        assert_eq!(default_address(addr("0.0.0.0:4143")), ip("127.0.0.1"));
        assert_eq!(default_address(addr("[::]:4143")), ip("127.0.0.1"));
    }

    #[test]
    fn a_ready_proxy_in_front_of_an_accepting_app_is_ready() {
        assert_eq!(readiness(true, &ready_proxy(), Ok(())), Ok(()));
    }

    #[test]
    fn the_app_not_accepting_connections_makes_the_workload_not_ready() {
        let refused = Err("the app does not accept connections on 127.0.0.1:8080".into());
        assert_eq!(readiness(true, &ready_proxy(), refused.clone()), refused);
    }

    #[test]
    fn an_unready_proxy_makes_the_workload_not_ready_whatever_the_app_does() {
        assert_eq!(
            readiness(false, &ready_proxy(), Ok(())),
            Err("the proxy's listeners are not bound yet".into())
        );
        let no_source = Snapshot {
            not_ready: Some("connecting to the control plane at http://cp".into()),
            ..Snapshot::default()
        };
        assert_eq!(
            readiness(true, &no_source, Ok(())),
            Err("the proxy is not ready: connecting to the control plane at http://cp".into())
        );
        let no_certificate = Snapshot {
            identity: IdentityStatus {
                not_ready: Some("no certificate yet".into()),
                ..IdentityStatus::default()
            },
            ..Snapshot::default()
        };
        assert_eq!(
            readiness(true, &no_certificate, Err("app down".into())),
            Err("the proxy is not ready: no certificate yet".into())
        );
    }

    #[test]
    fn services_are_listed_or_none_is_said() {
        assert_eq!(services_text(&[]), "no Service");
        assert_eq!(
            services_text(&["shop/web".into(), "shop/all".into()]),
            "Services shop/web, shop/all"
        );
    }

    #[test]
    fn config_shows_the_registration_state() {
        let state = State {
            registered: true,
            ready: false,
            not_ready: Some("app down".into()),
            identity: Some("spiffe://cluster.local/ns/shop/sa/web".into()),
            services: vec!["shop/web".into()],
            last_error: None,
        };
        assert_eq!(
            state.json(),
            serde_json::json!({
                "registered": true,
                "ready": false,
                "not_ready": "app down",
                "identity": "spiffe://cluster.local/ns/shop/sa/web",
                "services": ["shop/web"],
                "last_error": null,
            })
        );
    }
}
