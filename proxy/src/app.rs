//! Wires the proxy together: config source, stacks, listeners, admin, local-mode
//! registration, shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use trellis_proxy_api::v1 as api;

use crate::admin::Admin;
use crate::config::Inbound;
use crate::connect::Connect;
use crate::discovery::Discovery;
use crate::listen::{Drain, Listener, Resolve};
use crate::source_file::FileSource;
use crate::store::Store;
use crate::telemetry::{Direction, Metrics};
use crate::{inbound, outbound};

/// Where configs come from.
#[derive(Clone, Debug)]
pub enum Source {
    File {
        path: PathBuf,
        poll: Duration,
    },
    ControlPlane {
        url: String,
        workload: api::Workload,
    },
}

/// Everything the proxy is started with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub source: Source,
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
    pub inbound_target: SocketAddr,
    pub access_log: bool,
    pub drain_timeout: Duration,
    pub discovery_timeout: Duration,
    pub discovery_idle: Duration,
    pub connect_timeout: Duration,
    /// What inbound traffic meets before an inbound policy arrives.
    pub inbound_policy: InboundBeforePolicy,
    /// Where this proxy's mTLS identity comes from; `None`: no mTLS (plaintext only).
    pub identity: Option<IdentitySource>,
    /// Local mode: the workload to register at the control plane (needs
    /// [`Source::ControlPlane`]); `None`: the control plane knows it otherwise (Kubernetes).
    pub register: Option<crate::register::Settings>,
}

/// Where the proxy's certificate comes from.
#[derive(Clone, Debug)]
pub enum IdentitySource {
    /// `cert.pem`, `key.pem` and `roots.pem` in a directory, re-read when they change.
    Dir(PathBuf),
    /// `Identity.Certify` at the control plane: a key made in memory, a CSR and a token.
    Certify(crate::identity::CertifySettings),
}

/// What inbound traffic meets before an inbound policy arrives (a static config file
/// always brings one: without an `inbound:` section, allow everything).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum InboundBeforePolicy {
    /// Deny (`no_inbound_policy`), as SMI denies what no TrafficTarget allows.
    #[default]
    Deny,
    /// Allow everything until a policy arrives.
    Permissive,
}

/// Runs the proxy until SIGTERM/SIGINT, then drains.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let register_endpoint = match (&settings.register, &settings.source) {
        (None, _) => None,
        (Some(_), Source::ControlPlane { url, .. }) => Some(control_plane_endpoint(url)?),
        (Some(_), Source::File { .. }) => {
            anyhow::bail!("--register needs the control plane: --control-plane URL")
        }
    };
    let store = match &settings.source {
        Source::File { path, .. } => Store::new(format!("file:{}", path.display())),
        Source::ControlPlane { url, .. } => Store::new(format!("grpc:{url}")),
    };
    start_source(&settings, &store, &metrics)?;
    let tls = match &settings.identity {
        None => None,
        Some(source) => Some(crate::identity::start(source, &store, &metrics).await?),
    };

    let bind = |addr: SocketAddr, what: &str| {
        let what = what.to_owned();
        async move {
            TcpListener::bind(addr).await.with_context(|| {
                format!("cannot listen on {addr} ({what}); pick another address with --{what}")
            })
        }
    };
    // Traffic listeners also take the IPv6 twin of their address (interception of IPv6).
    let bind_dual = |addr: SocketAddr, what: &str| {
        let what = what.to_owned();
        async move {
            crate::listen::bind_dual(addr).await.with_context(|| {
                format!("cannot listen on {addr} ({what}); pick another address with --{what}")
            })
        }
    };
    let outbound_listeners = bind_dual(settings.outbound, "outbound").await?;
    let inbound_listeners = bind_dual(settings.inbound, "inbound").await?;
    let admin_listener = bind(settings.admin, "admin").await?;
    let inbound_addr = inbound_listeners[0].local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    let line = format!(
        "trellis-proxy listening outbound={} inbound={inbound_addr} admin={admin_addr}",
        outbound_listeners[0].local_addr()?,
    );

    let connect = Connect::new(settings.connect_timeout, tls.clone());
    let outbound_stack = outbound::stack(
        outbound::Settings {
            store: store.clone(),
            metrics: metrics.clone(),
            access_log: settings.access_log,
            discovery_wait: settings.discovery_timeout,
        },
        connect.clone(),
    );
    let inbound_policy = inbound::enforce::Policy::new(
        store.inbound_watch(),
        (settings.inbound_policy == InboundBeforePolicy::Permissive)
            .then(|| Arc::new(Inbound::permissive("--inbound-policy permissive"))),
        metrics.clone(),
    );
    let inbound_stack = inbound::stack(
        settings.inbound_target,
        connect,
        metrics.clone(),
        settings.access_log,
        inbound_policy.clone(),
    );

    let listening = Arc::new(AtomicBool::new(false));
    let registration_state = Arc::new(std::sync::OnceLock::new());
    tokio::spawn(
        Admin {
            store: store.clone(),
            metrics: metrics.clone(),
            listening: listening.clone(),
            registration: registration_state.clone(),
        }
        .run(admin_listener),
    );

    let (drain, drain_control) = Drain::new();
    let outbound = Listener {
        direction: Direction::Outbound,
        stack: outbound_stack,
        opaque_target: None,
        inbound_policy: None,
        tls: tls.clone(),
        resolve: Some(Resolve {
            store: store.clone(),
            wait: settings.discovery_timeout,
        }),
        connect_timeout: settings.connect_timeout,
        metrics: metrics.clone(),
    };
    let inbound = Listener {
        direction: Direction::Inbound,
        stack: inbound_stack,
        opaque_target: Some(settings.inbound_target),
        inbound_policy: Some(inbound_policy),
        tls,
        resolve: None,
        connect_timeout: settings.connect_timeout,
        metrics: metrics.clone(),
    };
    for (listener, socket) in std::iter::repeat(outbound)
        .zip(outbound_listeners)
        .chain(std::iter::repeat(inbound).zip(inbound_listeners))
    {
        tokio::spawn(listener.run(socket, drain.clone()));
    }
    drop(drain);
    listening.store(true, Ordering::Relaxed);
    let registration = match (settings.register, register_endpoint) {
        (Some(register), Some(endpoint)) => Some(
            crate::register::Registrar {
                endpoint,
                settings: register,
                inbound: inbound_addr,
                admin: admin_addr,
                inbound_target: settings.inbound_target,
                store: store.clone(),
                listening: listening.clone(),
            }
            .start(),
        ),
        _ => None,
    };
    if let Some(registration) = &registration {
        let _ = registration_state.set(registration.state());
    }
    crate::telemetry::print_line(&line);

    shutdown_signal().await;
    eprintln!(
        "trellis-proxy: shutting down: no new connections; draining requests in flight (up to {:?})",
        settings.drain_timeout
    );
    // Peers stop being sent traffic at once: the registration says not ready while the
    // requests in flight finish.
    let deregister = async {
        if let Some(registration) = registration {
            registration
                .deregister(settings.drain_timeout.min(DEREGISTER_TIMEOUT))
                .await;
        }
    };
    // The accept loops stop on the signal and drop their tokens; connections finish theirs.
    let drain = async {
        match tokio::time::timeout(settings.drain_timeout, drain_control.drain()).await {
            Ok(()) => eprintln!("trellis-proxy: drained"),
            Err(_) => eprintln!(
                "trellis-proxy: drain timeout reached; closing the connections still open"
            ),
        }
    };
    tokio::join!(deregister, drain);
    Ok(())
}

/// How long shutdown waits at most for the control plane to take the last registration
/// (`ready: false`).
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(2);

/// The control plane's gRPC endpoint.
fn control_plane_endpoint(url: &str) -> anyhow::Result<tonic::transport::Endpoint> {
    Ok(tonic::transport::Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("--control-plane {url:?} is not a URL (http://host:port)"))?
        .connect_timeout(Duration::from_secs(2)))
}

fn start_source(settings: &Settings, store: &Store, metrics: &Arc<Metrics>) -> anyhow::Result<()> {
    match &settings.source {
        Source::File { path, poll } => {
            let source = FileSource {
                path: path.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                poll: *poll,
            };
            let mut last = None;
            if let Err(e) = source.load(&mut last) {
                eprintln!("trellis-proxy: {e}; not ready until the file is fixed");
                store.set_not_ready(Some(e.to_string()));
            }
            tokio::spawn(source.watch(last));
        }
        Source::ControlPlane { url, workload } => {
            let endpoint = control_plane_endpoint(url)?;
            let (tx, rx) = mpsc::unbounded_channel();
            store.subscribe_on_demand(tx);
            tokio::spawn(
                Discovery {
                    endpoint: endpoint.clone(),
                    workload: workload.clone(),
                    store: store.clone(),
                    metrics: metrics.clone(),
                    idle: settings.discovery_idle,
                }
                .run(rx),
            );
            tokio::spawn(
                crate::discovery::InboundWatch {
                    endpoint: endpoint.clone(),
                    workload: workload.clone(),
                    store: store.clone(),
                    metrics: metrics.clone(),
                }
                .run(),
            );
            tokio::spawn(probe_control_plane(endpoint, url.clone(), store.clone()));
        }
    }
    Ok(())
}

/// Ready once the control plane has answered a connection.
async fn probe_control_plane(endpoint: tonic::transport::Endpoint, url: String, store: Store) {
    store.set_not_ready(Some(format!("connecting to the control plane at {url}")));
    let mut wait = Duration::from_millis(100);
    loop {
        match endpoint.connect().await {
            Ok(_) => {
                store.set_not_ready(None);
                return;
            }
            Err(e) => {
                store.set_not_ready(Some(format!(
                    "the control plane at {url} is unreachable: {e}"
                )));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
