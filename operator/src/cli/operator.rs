//! `trellis operator`: runs the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::exit;
use crate::local;

/// Run the Trellis control plane.
///
/// Local mode (`--local`, no Kubernetes): Services and SMI/Trellis resources come from a
/// directory of manifests (re-read when a file changes); proxies register their workloads
/// (`trellis-proxy --register`); the Discovery, Identity and Registry APIs are served on
/// `--listen`, and `/status`, `/metrics`, `/ready`, `/live` on `--admin`.
///
/// Example:
///   trellis operator --local --manifests ./mesh --data-dir ./.trellis
///   trellis join-token --data-dir ./.trellis --namespace shop --service-account web > web.token
///   trellis-proxy --control-plane http://127.0.0.1:8090 --workload shop/web-1 --register \
///       --label app=web --identity spiffe://cluster.local/ns/shop/sa/web --identity-token-file web.token
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Run without Kubernetes (the only mode so far).
    #[arg(long, required = true)]
    local: bool,
    /// Directory of manifests: Services (with selectors), TrafficSplits, TrafficTargets,
    /// HTTPRouteGroups, TCPRoutes, TrafficPolicies, MeshConfig.
    #[arg(long, value_name = "DIR")]
    manifests: PathBuf,
    /// Where the CA and the join token key are kept (created if absent).
    #[arg(long, value_name = "DIR", default_value = ".trellis")]
    data_dir: PathBuf,
    /// gRPC address for proxies (Discovery, Identity, Registry).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Admin address (/status /metrics /ready /live).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9990")]
    admin: SocketAddr,
    /// How long a workload stays after its proxy disconnected (e.g. 10s).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    registration_grace: Duration,
    /// How often the manifests directory is checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    poll: Duration,
}

fn duration(text: &str) -> Result<Duration, String> {
    smi_crds::validate::parse_duration(text)
}

pub fn run(args: Args) -> u8 {
    let _ = args.local;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let settings = local::Settings {
            manifests: args.manifests,
            data_dir: args.data_dir,
            grpc: args.listen,
            admin: args.admin,
            registration_grace: args.registration_grace,
            poll: args.poll,
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
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("trellis operator: stopping");
        exit::OK
    })
}
