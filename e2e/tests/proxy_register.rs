//! Local mode: `trellis-proxy --register` registers its workload at the control plane
//! (`Registry.Register`) with the flags it was given, keeps the registration's readiness in
//! step with the app on the same stream, registers again when the control plane comes back,
//! and says "not ready" before it stops.
//!
//! The control plane is a fake `Registry` in the test that records every registration and
//! answers each with a status (identity from the service account, Services `shop/web`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use trellis_e2e::proxy::Proxy;
use trellis_e2e::serve::GrpcServer;
use trellis_proxy_api::v1::registry_server::{Registry, RegistryServer};
use trellis_proxy_api::v1::{ProtocolHint, Registration, RegistrationStatus, WorkloadPort};

/// Reconnection backs off up to 5 s, so a few of its steps fit.
const WAIT: Duration = Duration::from_secs(15);

/// One registration message, with the stream (1, 2, ...) it came on.
#[derive(Clone, Debug)]
struct Received {
    stream: usize,
    registration: Registration,
}

/// A `Registry` recording what it receives; clones share the record, so a server started
/// again on the same address (a control plane restart) adds to it.
#[derive(Clone, Default)]
struct FakeRegistry {
    received: Arc<Mutex<Vec<Received>>>,
    streams: Arc<Mutex<usize>>,
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<RegistrationStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Registry for FakeRegistry {
    type RegisterStream = StatusStream;

    async fn register(
        &self,
        request: Request<Streaming<Registration>>,
    ) -> Result<Response<StatusStream>, Status> {
        let stream = {
            let mut streams = self.streams.lock().unwrap();
            *streams += 1;
            *streams
        };
        let mut registrations = request.into_inner();
        let received = self.received.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(Some(registration)) = registrations.message().await {
                let status = RegistrationStatus {
                    identity: format!(
                        "spiffe://cluster.local/ns/{}/sa/{}",
                        registration.namespace, registration.service_account
                    ),
                    services: vec!["shop/web".into()],
                };
                received.lock().unwrap().push(Received {
                    stream,
                    registration,
                });
                if tx.send(Ok(status)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl FakeRegistry {
    async fn serve(&self) -> GrpcServer {
        GrpcServer::start(RegistryServer::new(self.clone())).await
    }

    async fn serve_on(&self, addr: SocketAddr) -> GrpcServer {
        GrpcServer::start_on(addr, RegistryServer::new(self.clone())).await
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The last registration received, once it satisfies `pred`.
    async fn wait_for_last(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        let deadline = Instant::now() + WAIT;
        loop {
            let received = self.received();
            match received.last() {
                Some(last) if pred(last) => return last.clone(),
                _ if Instant::now() > deadline => {
                    panic!("no registration {what} within {WAIT:?}; received: {received:#?}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

/// The app: a listener that accepts connections (and closes them) until stopped.
struct App {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl App {
    async fn start_on(addr: SocketAddr) -> App {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((connection, _)) = listener.accept().await {
                drop(connection);
            }
        });
        App { addr, task }
    }

    async fn start() -> App {
        App::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Stops listening: connections to its port are refused.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// `trellis-proxy --register` for `shop/web-1` in front of `app`, at `control_plane`.
async fn register(control_plane: &GrpcServer, app: &App, extra: &[&str]) -> Proxy {
    let mut builder = Proxy::builder()
        .control_plane(&control_plane.url())
        .inbound_target(app.addr);
    for arg in [
        "--workload",
        "shop/web-1",
        "--register",
        "--service-account",
        "web",
    ]
    .iter()
    .chain(extra)
    {
        builder = builder.arg(arg);
    }
    builder.start().await.unwrap()
}

/// Waits until the proxy printed `count` stderr lines satisfying `pred`.
async fn wait_for_log(proxy: &Proxy, what: &str, count: usize, pred: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = proxy.stderr_lines();
        if lines.iter().filter(|l| pred(l)).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the proxy did not log {what} within {WAIT:?}: {lines:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ready(r: &Received) -> bool {
    r.registration.ready
}

fn not_ready(r: &Received) -> bool {
    !r.registration.ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_registers_its_workload_and_says_not_ready_on_sigterm() {
    let registry = FakeRegistry::default();
    let control_plane = registry.serve().await;
    let app = App::start().await;
    let app_port = app.addr.port().to_string();
    let mut proxy = register(
        &control_plane,
        &app,
        &[
            "--label",
            "app=web",
            "--label",
            "version=v1",
            "--app-port",
            &format!("http={app_port}"),
            "--app-port",
            "9090",
        ],
    )
    .await;

    let registered = registry.wait_for_last("that is ready", ready).await;
    assert_eq!(
        registered.registration,
        Registration {
            namespace: "shop".into(),
            name: "web-1".into(),
            service_account: "web".into(),
            labels: BTreeMap::from([
                ("app".into(), "web".into()),
                ("version".into(), "v1".into())
            ]),
            // The harness binds --inbound 127.0.0.1:0: its IP, and the port it got.
            addresses: vec!["127.0.0.1".into()],
            ports: vec![
                WorkloadPort {
                    name: "http".into(),
                    port: app.addr.port().into(),
                    protocol: ProtocolHint::Unspecified.into(),
                },
                WorkloadPort {
                    name: String::new(),
                    port: 9090,
                    protocol: ProtocolHint::Unspecified.into(),
                },
            ],
            ready: true,
            inbound_port: proxy.inbound.port().into(),
            // Where the operator scrapes the proxy's /metrics (canary analysis).
            admin_port: proxy.admin.port().into(),
        }
    );
    assert!(
        registry.received().iter().all(|r| r.stream == 1),
        "one stream: {:#?}",
        registry.received()
    );
    let logged = "trellis-proxy: registered shop/web-1 as spiffe://cluster.local/ns/shop/sa/web; \
                  selected by Services shop/web";
    wait_for_log(&proxy, "the registration", 1, |l| l == logged).await;

    proxy.send_sigterm().unwrap();
    let last = registry.wait_for_last("saying not ready", not_ready).await;
    assert_eq!(
        last.registration,
        Registration {
            ready: false,
            ..registered.registration
        },
        "the same registration, not ready"
    );
    assert_eq!(last.stream, 1, "on the same stream");
    assert!(proxy.wait_exit(WAIT).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_is_not_ready_while_the_app_does_not_listen() {
    let registry = FakeRegistry::default();
    let control_plane = registry.serve().await;
    let app = App::start().await;
    let app_addr = app.addr;
    let proxy = register(&control_plane, &app, &[]).await;
    let first = registry.wait_for_last("that is ready", ready).await;
    assert_eq!(
        first.registration.ports,
        [WorkloadPort {
            name: "http".into(),
            port: app_addr.port().into(),
            protocol: ProtocolHint::Unspecified.into(),
        }],
        "by default one port named http: the --inbound-target port"
    );

    app.stop().await;
    let stopped = registry
        .wait_for_last("saying not ready after the app stopped", not_ready)
        .await;
    assert_eq!(stopped.stream, 1, "sent again on the same stream");
    let why = format!(
        "trellis-proxy: shop/web-1 is not ready: the app does not accept connections on {app_addr}"
    );
    wait_for_log(&proxy, "why it is not ready", 1, |l| l.starts_with(&why)).await;

    let _app = App::start_on(app_addr).await;
    let back = registry
        .wait_for_last("ready again after the app came back", ready)
        .await;
    assert_eq!(back.stream, 1, "sent again on the same stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_registers_again_when_the_control_plane_comes_back() {
    let registry = FakeRegistry::default();
    let control_plane = registry.serve().await;
    let addr = control_plane.addr();
    let app = App::start().await;
    let proxy = register(&control_plane, &app, &["--intercepted"]).await;
    let first = registry.wait_for_last("that is ready", ready).await;
    assert_eq!(
        first.registration.inbound_port, 0,
        "--intercepted: peers connect to the app ports"
    );

    control_plane.kill();
    drop(control_plane);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _control_plane = registry.serve_on(addr).await;
    let again = registry
        .wait_for_last("on a second stream", |r| {
            r.stream == 2 && r.registration.ready
        })
        .await;
    assert_eq!(
        again.registration, first.registration,
        "the same registration, ready"
    );
    wait_for_log(&proxy, "each new stream's first status", 2, |l| {
        l.starts_with("trellis-proxy: registered shop/web-1 as")
    })
    .await;
}
