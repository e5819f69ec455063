//! The Discovery server over real gRPC: configs follow the manifests and the registered
//! workloads, and a change is pushed only to the watches that depend on it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use trellis_operator::index::ObjKey;
use trellis_operator::local::{self, Running};
use trellis_proxy_api::v1 as api;
use trellis_proxy_api::v1::discovery_client::DiscoveryClient;
use trellis_proxy_api::v1::registry_client::RegistryClient;

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{name: http, port: 80, targetPort: 8080}]}
";

struct Mesh {
    running: Running,
    manifests: tempfile::TempDir,
    _data: tempfile::TempDir,
    /// Registration streams kept open (dropping one unregisters after the grace period).
    registrations: Vec<mpsc::Sender<api::Registration>>,
}

impl Mesh {
    async fn start() -> Mesh {
        let manifests = tempfile::tempdir().unwrap();
        std::fs::write(manifests.path().join("services.yaml"), SERVICES).unwrap();
        let data = tempfile::tempdir().unwrap();
        let running = local::start(local::Settings {
            source: local::Source::Dir {
                path: manifests.path().to_owned(),
                poll: Duration::from_millis(50),
            },
            data_dir: data.path().to_owned(),
            grpc: "127.0.0.1:0".parse().unwrap(),
            admin: "127.0.0.1:0".parse().unwrap(),
            registration_grace: Duration::from_millis(300),
        })
        .await
        .expect("the operator starts");
        Mesh {
            running,
            manifests,
            _data: data,
            registrations: Vec::new(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.running.grpc)
    }

    /// Registers `shop/<name>` reached through its proxy at `inbound_port`, the proxy's
    /// admin listener being at `inbound_port + 100`.
    async fn register(&mut self, name: &str, app: &str, inbound_port: u32) {
        let (tx, rx) = mpsc::channel(4);
        tx.send(api::Registration {
            namespace: "shop".into(),
            name: name.into(),
            service_account: app.into(),
            labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            addresses: vec!["127.0.0.1".into()],
            ports: vec![],
            ready: true,
            inbound_port,
            admin_port: inbound_port + 100,
        })
        .await
        .unwrap();
        let mut client = RegistryClient::connect(self.url()).await.unwrap();
        let mut statuses = client
            .register(ReceiverStream::new(rx))
            .await
            .expect("registered")
            .into_inner();
        let status = statuses.message().await.unwrap().unwrap();
        assert_eq!(
            status.identity,
            format!("spiffe://cluster.local/ns/shop/sa/{app}")
        );
        tokio::spawn(async move { while let Some(Ok(_)) = statuses.next().await {} });
        self.registrations.push(tx);
    }

    fn write(&self, file: &str, yaml: &str) {
        write_file(self.manifests.path(), file, yaml);
    }
}

fn write_file(dir: &Path, file: &str, yaml: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(tmp, dir.join(file)).unwrap();
}

/// An outbound watch as a proxy opens it.
struct Watch<T> {
    acks: mpsc::Sender<api::OutboundRequest>,
    configs: Streaming<T>,
}

async fn watch_outbound(url: &str, authority: &str) -> Watch<api::OutboundConfig> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(api::OutboundRequest {
        workload: Some(api::Workload {
            namespace: "shop".into(),
            name: "client-1".into(),
        }),
        target: Some(api::outbound_request::Target::Authority(authority.into())),
        ack: None,
    })
    .await
    .unwrap();
    let mut client = DiscoveryClient::connect(url.to_owned()).await.unwrap();
    let configs = client
        .watch_outbound(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    Watch { acks: tx, configs }
}

async fn watch_inbound(url: &str, workload: &str) -> Streaming<api::InboundConfig> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(api::InboundRequest {
        workload: Some(api::Workload {
            namespace: "shop".into(),
            name: workload.into(),
        }),
        ack: None,
    })
    .await
    .unwrap();
    let mut client = DiscoveryClient::connect(url.to_owned()).await.unwrap();
    let configs = client
        .watch_inbound(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    std::mem::forget(tx);
    configs
}

async fn next<T>(configs: &mut Streaming<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), configs.message())
        .await
        .expect("a config within 5 s")
        .expect("the stream is open")
        .expect("a config")
}

/// Nothing arrives on the stream for a while.
async fn quiet<T: std::fmt::Debug>(configs: &mut Streaming<T>, what: &str) {
    if let Ok(message) = tokio::time::timeout(Duration::from_millis(400), configs.message()).await {
        panic!("{what}: expected no push, got {message:?}");
    }
}

fn endpoints(config: &api::OutboundConfig) -> Vec<String> {
    config
        .backends
        .iter()
        .flat_map(|b| b.endpoints.iter())
        .map(|e| {
            let a = e.address.as_ref().unwrap();
            format!("{}:{} {}", a.ip, a.port, e.identity)
        })
        .collect()
}

fn weights(config: &api::OutboundConfig) -> Vec<(String, u32)> {
    let default = config.routes.last().unwrap();
    default
        .backends
        .iter()
        .map(|b| (b.backend.clone(), b.weight))
        .collect()
}

#[tokio::test]
async fn one_endpoint_change_is_pushed_only_to_the_watches_that_depend_on_it() {
    let mut mesh = Mesh::start().await;
    mesh.register("web-1", "web", 5001).await;
    mesh.register("api-1", "api", 5002).await;
    let snapshot = mesh.running.index.snapshot();
    let web_1 = snapshot
        .reader()
        .workload(&ObjKey::new("shop", "web-1"))
        .cloned()
        .expect("web-1 is in the index");
    assert_eq!(
        (web_1.inbound_port, web_1.admin_port),
        (Some(5001), Some(5101)),
        "the index knows where to reach web-1's app and its proxy's /metrics"
    );
    let url = mesh.url();
    let mut web = watch_outbound(&url, "web.shop:80").await;
    let mut api = watch_outbound(&url, "api").await;
    let mut inbound = watch_inbound(&url, "api-1").await;

    let first = next(&mut web.configs).await;
    assert_eq!(first.authority, "web.shop.svc.cluster.local");
    assert_eq!(
        endpoints(&first),
        ["127.0.0.1:5001 spiffe://cluster.local/ns/shop/sa/web"]
    );
    assert!(!first.version.is_empty());
    let first_api = next(&mut api.configs).await;
    assert_eq!(
        endpoints(&first_api),
        ["127.0.0.1:5002 spiffe://cluster.local/ns/shop/sa/api"]
    );
    next(&mut inbound).await;

    let pushes_before = pushes(&mesh).await;
    mesh.register("web-2", "web", 5003).await;
    let second = next(&mut web.configs).await;
    assert_eq!(
        endpoints(&second),
        [
            "127.0.0.1:5001 spiffe://cluster.local/ns/shop/sa/web",
            "127.0.0.1:5003 spiffe://cluster.local/ns/shop/sa/web"
        ]
    );
    assert_ne!(second.version, first.version);
    quiet(&mut api.configs, "api does not depend on web's endpoints").await;
    quiet(
        &mut inbound,
        "api-1's inbound policy does not depend on web",
    )
    .await;
    assert_eq!(pushes(&mesh).await - pushes_before, 1, "exactly one push");

    // A proxy that disappears is removed after the grace period: web-2's endpoint goes.
    let web2 = mesh.registrations.pop().unwrap();
    drop(web2);
    let third = next(&mut web.configs).await;
    assert_eq!(
        endpoints(&third),
        ["127.0.0.1:5001 spiffe://cluster.local/ns/shop/sa/web"]
    );
    assert_eq!(third.version, first.version, "same config, same version");
}

#[tokio::test]
async fn a_split_committed_later_is_pushed_to_its_root_only_and_acks_are_recorded() {
    let mut mesh = Mesh::start().await;
    mesh.register("web-1", "web", 5001).await;
    mesh.write(
        "more.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web-v2, namespace: shop}\n\
         spec: {selector: {app: web-v2}, ports: [{name: http, port: 80, targetPort: 8080}]}\n",
    );
    mesh.register("web-v2-1", "web-v2", 5004).await;
    let url = mesh.url();
    let mut web = watch_outbound(&url, "web.shop").await;
    let mut api = watch_outbound(&url, "api.shop").await;
    let first = next(&mut web.configs).await;
    next(&mut api.configs).await;
    assert_eq!(weights(&first), [("shop/web:80".to_owned(), 1)]);

    mesh.write(
        "split.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata: {name: web-rollout, namespace: shop}\n\
         spec:\n  service: web\n  backends:\n  - {service: web, weight: 75}\n  - {service: web-v2, weight: 25}\n",
    );
    let split = next(&mut web.configs).await;
    assert_eq!(
        weights(&split),
        [
            ("shop/web:80".to_owned(), 75),
            ("shop/web-v2:80".to_owned(), 25)
        ]
    );
    quiet(&mut api.configs, "api has no split").await;

    // The proxy NACKs it: the operator shows the refusal in /status.
    web.acks
        .send(api::OutboundRequest {
            ack: Some(api::Ack {
                result: Some(api::ack::Result::Rejected(api::Nack {
                    version: split.version.clone(),
                    reason: "routes[0]: test refusal".into(),
                })),
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = wait_for_status(&mesh, |s| {
        s["subscriptions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["rejected"][1] == "routes[0]: test refusal")
    })
    .await;
    assert!(status["counts"]["subscriptions"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn a_proxy_that_does_not_read_its_stream_does_not_hold_up_the_others() {
    let mut mesh = Mesh::start().await;
    mesh.register("web-1", "web", 5001).await;
    let url = mesh.url();
    // Opened and never read again after the first config.
    let mut stalled = watch_outbound(&url, "web.shop").await;
    next(&mut stalled.configs).await;
    let mut web = watch_outbound(&url, "web.shop").await;
    next(&mut web.configs).await;
    for i in 0..40 {
        mesh.register(&format!("web-x{i}"), "web", 6000 + i).await;
    }
    // The reading proxy sees the final state although the other one reads nothing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let config = tokio::time::timeout_at(deadline, web.configs.message())
            .await
            .expect("the final state within 10 s")
            .unwrap()
            .unwrap();
        if endpoints(&config).len() == 41 {
            break;
        }
    }
}

async fn admin_get(mesh: &Mesh, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(mesh.running.admin)
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

async fn pushes(mesh: &Mesh) -> u64 {
    let metrics = admin_get(mesh, "/metrics").await;
    metrics
        .lines()
        .filter(|l| l.starts_with("trellis_operator_pushes_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn wait_for_status(
    mesh: &Mesh,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..100 {
        let body = admin_get(mesh, "/status").await;
        if let Ok(status) = serde_json::from_str::<serde_json::Value>(&body)
            && ok(&status)
        {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "/status never showed the expected state: {}",
        admin_get(mesh, "/status").await
    );
}
