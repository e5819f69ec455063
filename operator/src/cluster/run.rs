//! `trellis operator --kube`: every part of the control plane, fed by the API server.
//!
//! ```text
//! kube client (in-cluster, else ~/.kube/config)
//!   -> CRDs installed? (kinds.rs) -> watchers (watch.rs) -> index -> discovery gRPC
//!   -> CA from the Secret trellis-identity (ca_secret.rs) -> Identity gRPC (TokenReview)
//!   -> canary controller (as in local mode)
//!   -> Lease (lease.rs) -> leader only: status + Events (status/)
//!   -> webhooks (HTTPS): /convert /validate /inject, certificate in trellis-webhook-tls
//!   -> admin: /metrics /ready (every kind listed once) /live /status
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::canary_splits::SplitPublisher;
use super::follow::ObservedObjects;
use super::lease::Elector;
use super::status::StatusWriter;
use super::token_review::TokenReviewer;
use super::{ca_secret, kinds, watch as watchers};
use crate::admin::Admin;
use crate::discovery::DiscoveryServer;
use crate::identity::{self, CaStore, IdentityServer, TokenValidator};
use crate::index::{Index, Options};
use crate::local::identity_settings;
use crate::metrics::Metrics;
use crate::source::SourceStatus;

/// What `trellis operator --kube` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The namespace the operator runs in (its Secrets, Lease and Service).
    pub namespace: String,
    /// This replica's name (the Pod name): its identity in the Lease and on Events.
    pub instance: String,
    pub data_dir: PathBuf,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub webhook: SocketAddr,
    /// The injection settings file (`inject.yaml`); defaults without it.
    pub inject_config: Option<PathBuf>,
}

/// The Lease leader election uses.
pub const LEASE: &str = "trellis-operator";

/// A running control plane. Dropping it stops every task.
pub struct Running {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub webhook: SocketAddr,
    _tasks: JoinSet<()>,
}

pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let client = kube::Client::try_default().await.context(
        "connecting to the Kubernetes API server (in a Pod: its ServiceAccount; elsewhere: KUBECONFIG or ~/.kube/config)",
    )?;
    let metrics = Arc::new(Metrics::new());
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let mut tasks = JoinSet::new();

    let (installed, skipped) = kinds::discover(&client).await.context(
        "reading the installed CRDs (is the operator allowed to get customresourcedefinitions?)",
    )?;
    for why in &skipped {
        eprintln!("trellis operator: {why}");
    }
    let watch_errors = IntCounterVec::new(
        Opts::new(
            "trellis_operator_kube_watch_errors_total",
            "Errors watching the Kubernetes API, by kind (each watch retries with backoff)",
        ),
        &["kind"],
    )?;
    metrics.registry.register(Box::new(watch_errors.clone()))?;
    let source = Arc::new(Mutex::new(SourceStatus {
        name: "kube".into(),
        location: format!("Kubernetes API ({} kinds watched)", installed.len() + 4),
        ..SourceStatus::default()
    }));
    let observed = ObservedObjects::default();
    watchers::spawn_all(
        &client,
        &installed,
        &observed,
        &index,
        &watch_errors,
        &source,
        &mut tasks,
    );

    // Identity: the CA every replica shares, tokens checked by the API server.
    let (identity_tx, identity_rx) = watch::channel(identity_settings(&index.snapshot()));
    let created = ca_secret::sync_to_dir(
        &client,
        &settings.namespace,
        &settings.data_dir,
        &identity_rx.borrow().trust_domain,
        identity::DEFAULT_ROOT_LIFETIME,
    )
    .await?;
    if created {
        eprintln!(
            "trellis operator: generated a new identity CA in Secret {}/{}",
            settings.namespace,
            ca_secret::NAME
        );
    }
    let ca = CaStore::load(&settings.data_dir)?.watch(identity::store::POLL);
    let validator: Arc<dyn TokenValidator> = Arc::new(TokenReviewer::new(client.clone()));
    let identity_server = IdentityServer::new(ca, validator, identity_rx, &metrics.registry)?;
    tasks.spawn(crate::local::follow_identity_settings(
        index.clone(),
        identity_tx,
    ));

    let (mut canaries, _) =
        crate::canary::controller::Controller::new(index.clone(), metrics.clone())
            .persist(settings.data_dir.join("canaries.json"));
    canaries.publish_restored();
    let canary_views = canaries.views();
    tasks.spawn(canaries.run());

    let leader = Elector::new(
        client.clone(),
        &settings.namespace,
        LEASE,
        &settings.instance,
    )
    .spawn();
    if let Some(split) = installed
        .iter()
        .find(|i| i.kind.kind == smi_crds::split::KIND)
    {
        let publisher = SplitPublisher::new(client.clone(), split.clone(), leader.clone());
        tasks.spawn(publisher.run(index.clone()));
    }
    let writer = StatusWriter::new(
        client.clone(),
        &installed,
        observed,
        leader,
        &settings.instance,
    )
    .with_canaries(canary_views.clone());
    tasks.spawn(writer.run(index.clone()));

    let webhook = super::webhooks::start(&client, &settings, &mut tasks).await?;

    let discovery = DiscoveryServer::new(index.clone(), metrics.clone());
    let routes = crate::grpc::Routes::default()
        .with(discovery.clone().service())
        .with(identity_server.into_service());
    let grpc = crate::grpc::bind(settings.grpc, "the gRPC API (--listen)").await?;
    let grpc_addr = grpc.local_addr()?;
    tasks.spawn(crate::grpc::serve(grpc, routes));

    let admin = crate::grpc::bind(settings.admin, "the admin endpoint (--admin)").await?;
    let admin_addr = admin.local_addr()?;
    tasks.spawn(
        Admin {
            index,
            metrics,
            subscriptions: discovery.subscriptions().clone(),
            sources: vec![source],
            git_hook: None,
            canaries: canary_views,
        }
        .serve(admin),
    );
    Ok(Running {
        grpc: grpc_addr,
        admin: admin_addr,
        webhook,
        _tasks: tasks,
    })
}
