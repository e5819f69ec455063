//! `trellis operator`: runs the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::exit;
use crate::local::{self, Source};
use crate::source::git::{self, auth::CredentialFiles, repo::Reference};

/// Run the Trellis control plane.
///
/// Kubernetes mode (`--kube`, as the Helm chart runs it): Services, EndpointSlices, Pods,
/// Namespaces and the SMI/Trellis resources come from the API server (in a Pod: its
/// ServiceAccount; elsewhere: KUBECONFIG or ~/.kube/config); status conditions and Events
/// are written by the replica holding the Lease `trellis-operator`; proxies prove their
/// identity with projected ServiceAccount tokens (TokenReview); the admission webhooks
/// (CRD conversion, validation, sidecar injection) are served on `--webhook`.
///
///   trellis operator --kube --namespace trellis-system --webhook 0.0.0.0:9443 \
///       --inject-config /etc/trellis/inject.yaml --data-dir /var/run/trellis
///
/// Local mode (`--local`, no Kubernetes): Services and SMI/Trellis resources come from a
/// Git repository (`--git`, the source of truth: each commit is applied whole or refused
/// whole, and the last good commit stays in force) or from a plain directory
/// (`--manifests`, for quick experiments); proxies register their workloads
/// (`trellis-proxy --register`); the Discovery, Identity and Registry APIs are served on
/// `--listen`, and `/status`, `/metrics`, `/ready`, `/live`, `POST /hooks/git` on `--admin`.
///
/// Examples:
///   trellis operator --local --git https://github.com/acme/mesh-config --branch main --path shop
///   trellis operator --local --git ./mesh-repo --interval 5s
///   trellis operator --local --git git@github.com:acme/mesh.git --git-ssh-key-file ~/.ssh/deploy \
///       --git-known-hosts-file ./known_hosts --git-webhook-secret-file ./hook.secret
///   trellis operator --local --manifests ./mesh
///
/// Then, for each workload:
///   trellis join-token --data-dir ./.trellis --namespace shop --service-account web > web.token
///   trellis-proxy --control-plane http://127.0.0.1:8090 --workload shop/web-1 --register \
///       --label app=web --identity spiffe://cluster.local/ns/shop/sa/web --identity-token-file web.token
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run without Kubernetes: manifests from Git or a directory, proxies register.
    #[arg(long, conflicts_with = "kube", required_unless_present = "kube")]
    local: bool,
    /// Run against the Kubernetes API server (as the Helm chart does).
    #[arg(long, conflicts_with_all = ["git", "manifests"])]
    kube: bool,
    /// Kubernetes mode: the operator's namespace (its Secrets, Lease and Service).
    #[arg(
        long,
        value_name = "NS",
        env = "POD_NAMESPACE",
        default_value = "trellis-system",
        requires = "kube"
    )]
    namespace: String,
    /// Kubernetes mode: this replica's name in the Lease and on Events.
    #[arg(
        long,
        value_name = "NAME",
        env = "POD_NAME",
        default_value = "trellis-operator",
        requires = "kube"
    )]
    instance: String,
    /// Kubernetes mode: HTTPS address of the admission webhooks (/convert, /validate, /inject).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "0.0.0.0:9443",
        requires = "kube"
    )]
    webhook: SocketAddr,
    /// Kubernetes mode: the injection settings (the chart's ConfigMap trellis-inject);
    /// defaults without it.
    #[arg(long, value_name = "FILE", requires = "kube")]
    inject_config: Option<PathBuf>,
    /// Git repository holding the manifests: https://, ssh://, user@host:path, file:// or
    /// a local path.
    #[arg(long, value_name = "URL|PATH", required_unless_present_any = ["manifests", "kube"])]
    git: Option<String>,
    /// Branch to follow (default: main).
    #[arg(long, value_name = "BRANCH", conflicts_with_all = ["tag", "commit"], requires = "git")]
    branch: Option<String>,
    /// Tag to follow instead of a branch (moved tags are followed).
    #[arg(long, value_name = "TAG", conflicts_with = "commit", requires = "git")]
    tag: Option<String>,
    /// Commit to pin instead of a branch.
    #[arg(long, value_name = "SHA", requires = "git")]
    commit: Option<String>,
    /// Directory inside the repository holding the manifests (default: the whole tree).
    #[arg(long, value_name = "DIR", default_value = "", requires = "git")]
    path: String,
    /// How often the remote's head is checked (a cheap ls-remote; a fetch only when it moved).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    interval: Duration,
    /// File holding the HTTPS username (default: the URL's, else `git`).
    #[arg(long, value_name = "FILE", requires = "git")]
    git_username_file: Option<PathBuf>,
    /// File holding the HTTPS password or access token.
    #[arg(long, value_name = "FILE", requires = "git")]
    git_password_file: Option<PathBuf>,
    /// SSH private key for ssh:// and user@host:path remotes (no passphrase).
    #[arg(long, value_name = "FILE", requires = "git")]
    git_ssh_key_file: Option<PathBuf>,
    /// known_hosts the SSH server's key must be in (default: ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE", requires = "git")]
    git_known_hosts_file: Option<PathBuf>,
    /// File holding the shared secret of `POST /hooks/git` (GitHub: the webhook secret;
    /// GitLab: the secret token). Without it the hook is refused.
    #[arg(long, value_name = "FILE", requires = "git")]
    git_webhook_secret_file: Option<PathBuf>,
    /// Apply a commit that removes every Service and resource (refused by default: an
    /// emptied directory or a wrong --path would otherwise wipe the mesh's config).
    #[arg(long, requires = "git")]
    allow_delete_all: bool,
    /// Directory of manifests instead of Git: Services (with selectors), TrafficSplits,
    /// TrafficTargets, HTTPRouteGroups, TCPRoutes, TrafficPolicies, MeshConfig.
    #[arg(long, value_name = "DIR", conflicts_with = "git")]
    manifests: Option<PathBuf>,
    /// How often --manifests is checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    poll: Duration,
    /// Where the CA, the join token key and the Git mirror are kept (created if absent).
    #[arg(long, value_name = "DIR", default_value = ".trellis")]
    data_dir: PathBuf,
    /// gRPC address for proxies (Discovery, Identity, Registry).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Admin address (/status /metrics /ready /live, POST /hooks/git).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9990")]
    admin: SocketAddr,
    /// How long a workload stays after its proxy disconnected (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    registration_grace: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    smi_crds::validate::parse_duration(text)
}

impl Args {
    fn source(&self) -> Source {
        match (&self.git, &self.manifests) {
            (Some(url), _) => {
                let reference = match (&self.branch, &self.tag, &self.commit) {
                    (_, Some(tag), _) => Reference::Tag(tag.clone()),
                    (_, _, Some(commit)) => Reference::Commit(commit.clone()),
                    (branch, _, _) => {
                        Reference::Branch(branch.clone().unwrap_or_else(|| "main".into()))
                    }
                };
                Source::Git {
                    settings: Box::new(git::Settings {
                        url: git::normalize_url(url),
                        reference,
                        path: self.path.trim_matches('/').to_owned(),
                        interval: self.interval,
                        credentials: CredentialFiles {
                            username: self.git_username_file.clone(),
                            password: self.git_password_file.clone(),
                            ssh_key: self.git_ssh_key_file.clone(),
                            known_hosts: self.git_known_hosts_file.clone(),
                        },
                        allow_delete_all: self.allow_delete_all,
                        dir: self.data_dir.join("git"),
                    }),
                    webhook_secret: self.git_webhook_secret_file.clone(),
                }
            }
            (None, manifests) => Source::Dir {
                path: manifests
                    .clone()
                    .expect("clap requires --git or --manifests"),
                poll: self.poll,
            },
        }
    }
}

pub fn run(args: Args) -> u8 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if args.kube {
        return runtime.block_on(run_kube(args));
    }
    runtime.block_on(async {
        let settings = local::Settings {
            source: args.source(),
            data_dir: args.data_dir,
            grpc: args.listen,
            admin: args.admin,
            registration_grace: args.registration_grace,
        };
        let running = match local::start(settings).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("trellis operator: {e:#}");
                return exit::USAGE;
            }
        };
        println!(
            "trellis operator listening grpc={} admin={}",
            running.grpc, running.admin
        );
        until_stopped().await;
        exit::OK
    })
}

async fn run_kube(args: Args) -> u8 {
    let settings = crate::cluster::run::Settings {
        namespace: args.namespace,
        instance: args.instance,
        data_dir: args.data_dir,
        grpc: args.listen,
        admin: args.admin,
        webhook: args.webhook,
        inject_config: args.inject_config,
    };
    let running = match crate::cluster::run::start(settings).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("trellis operator: {e:#}");
            return exit::USAGE;
        }
    };
    println!(
        "trellis operator (kubernetes) listening grpc={} admin={} webhook={}",
        running.grpc, running.admin, running.webhook
    );
    until_stopped().await;
    exit::OK
}

async fn until_stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("trellis operator: stopping");
}
