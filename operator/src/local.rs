//! Local mode: the whole control plane on one machine, no Kubernetes.
//!
//! ```text
//! Git repo --source::git--> index <--Registry.Register-- proxies (workloads)
//! (or a manifests dir, source::dir)
//!                                  |  \--MeshConfig--> identity settings
//!                                  |  <--> canary controller (generated TrafficSplits)
//!                                  v
//!          gRPC listener: Discovery (watches) + Identity (CA, join tokens) + Registry
//!          admin listener: /metrics /ready /live /status
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{Admin, GitHook};
use crate::discovery::DiscoveryServer;
use crate::identity::{self, IdentitySettings, JoinTokens};
use crate::index::{Index, Options, Snapshot};
use crate::metrics::Metrics;
use crate::registry::RegistryServer;
use crate::source::git::GitSource;
use crate::source::{SourceStatus, dir, git};

/// Where Services and SMI/Trellis resources come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A directory of manifests, re-read when a file changes (every `poll`).
    Dir { path: PathBuf, poll: Duration },
    /// A Git repository followed with git2.
    Git {
        settings: Box<git::Settings>,
        /// File holding the shared secret of `POST /hooks/git`.
        webhook_secret: Option<PathBuf>,
    },
}

/// What `trellis operator --local` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub source: Source,
    /// CA material and join token key (`<data_dir>/identity`).
    pub data_dir: PathBuf,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    /// How long a workload stays after its proxy's registration stream ended.
    pub registration_grace: Duration,
}

/// A running local control plane. Dropping it stops every task.
pub struct Running {
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub index: Index,
    pub join_tokens: Arc<JoinTokens>,
    pub discovery: DiscoveryServer,
    _tasks: JoinSet<()>,
}

/// Starts every part and returns once the listeners are bound.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    let metrics = Arc::new(Metrics::new());
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let mut tasks = JoinSet::new();

    let mut git_hook = None;
    let source = match settings.source.clone() {
        Source::Dir { path, poll } => {
            if !path.is_dir() {
                anyhow::bail!(
                    "--manifests {}: not a directory; give the directory holding your Services and SMI resources",
                    path.display()
                );
            }
            let status = Arc::new(Mutex::new(SourceStatus {
                name: "dir".into(),
                location: path.display().to_string(),
                ..SourceStatus::default()
            }));
            dir::sync(&path, "initial", &index, &status, &metrics).await;
            tasks.spawn(dir::run(
                path,
                poll,
                index.clone(),
                status.clone(),
                metrics.clone(),
            ));
            status
        }
        Source::Git {
            settings: git,
            webhook_secret,
        } => {
            let status = Arc::new(Mutex::new(SourceStatus {
                name: "git".into(),
                location: git.location(),
                ..SourceStatus::default()
            }));
            let mut source = GitSource::new(*git, index.clone(), status.clone(), metrics.clone());
            source.start().await;
            git_hook = Some(GitHook {
                secret_file: webhook_secret,
                trigger: source.trigger(),
            });
            tasks.spawn(source.run());
            status
        }
    };

    let (identity_tx, identity_rx) = watch::channel(identity_settings(&index.snapshot()));
    let root_lifetime = index
        .snapshot()
        .reader()
        .mesh_config()
        .certificates
        .root_lifetime;
    let root_lifetime = smi_crds::validate::parse_duration(&root_lifetime)
        .unwrap_or(identity::DEFAULT_ROOT_LIFETIME);
    let (identity_server, join_tokens) = identity::start(
        &settings.data_dir,
        root_lifetime,
        identity_rx,
        &metrics.registry,
    )
    .with_context(|| {
        format!(
            "starting the identity CA in {}",
            settings.data_dir.display()
        )
    })?;
    tasks.spawn(follow_identity_settings(index.clone(), identity_tx));

    // Workloads registered before a restart are back before any proxy asks for a config.
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating {}", settings.data_dir.display()))?;
    let (registry, restored) = RegistryServer::new(index.clone(), settings.registration_grace)
        .persist(settings.data_dir.join("registrations.json"));
    if restored > 0 {
        eprintln!(
            "trellis operator: restored {restored} workload registrations; each stays until its proxy registers again or {:?} pass",
            settings.registration_grace
        );
    }
    // Canary runs resume where they were: their splits are back before any proxy asks.
    let (mut canaries, resumed) =
        crate::canary::controller::Controller::new(index.clone(), metrics.clone())
            .persist(settings.data_dir.join("canaries.json"));
    if resumed > 0 {
        eprintln!("trellis operator: resumed {resumed} canary runs");
    }
    index.flush().await;
    canaries.publish_restored();
    let canary_views = canaries.views();
    index.flush().await;
    tasks.spawn(canaries.run());

    let discovery = DiscoveryServer::new(index.clone(), metrics.clone());
    let routes = crate::grpc::Routes::default()
        .with(discovery.clone().service())
        .with(identity_server.into_service())
        .with(registry.service());
    let grpc = crate::grpc::bind(settings.grpc, "the gRPC API (--listen)").await?;
    let grpc_addr = grpc.local_addr()?;
    tasks.spawn(crate::grpc::serve(grpc, routes));

    let admin = crate::grpc::bind(settings.admin, "the admin endpoint (--admin)").await?;
    let admin_addr = admin.local_addr()?;
    tasks.spawn(
        Admin {
            index: index.clone(),
            metrics,
            subscriptions: discovery.subscriptions().clone(),
            sources: vec![source],
            git_hook,
            canaries: canary_views,
        }
        .serve(admin),
    );
    Ok(Running {
        grpc: grpc_addr,
        admin: admin_addr,
        index,
        join_tokens,
        discovery,
        _tasks: tasks,
    })
}

/// Keeps the Identity server's settings in step with the MeshConfig in force.
pub(crate) async fn follow_identity_settings(
    index: Index,
    identity_tx: watch::Sender<IdentitySettings>,
) {
    let mut snapshots = index.watch();
    while snapshots.changed().await.is_ok() {
        let settings = identity_settings(&snapshots.borrow_and_update());
        identity_tx.send_if_modified(|s| {
            let changed = *s != settings;
            *s = settings;
            changed
        });
    }
}

/// Trust domain and workload certificate lifetime from the MeshConfig in force.
pub(crate) fn identity_settings(snapshot: &Snapshot) -> IdentitySettings {
    let mesh = snapshot.reader().mesh_config();
    let defaults = IdentitySettings::default();
    IdentitySettings {
        workload_lifetime: smi_crds::validate::parse_duration(&mesh.certificates.workload_lifetime)
            .unwrap_or(defaults.workload_lifetime),
        trust_domain: mesh.trust_domain,
    }
}
