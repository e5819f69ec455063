//! `trellis-proxy`: the Trellis sidecar proxy. See docs/proxy.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use trellis_proxy::app::{self, Settings, Source};
use trellis_proxy_api::{ports, v1 as api};

/// Trellis sidecar proxy (data plane): routes, splits, balances and retries the app's
/// traffic, from a static config file or the control plane's Discovery API.
#[derive(Debug, Parser)]
#[command(name = "trellis-proxy", version, about, after_help = EXAMPLES)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Static config file (YAML or JSON of the trellis.proxy.v1 model); re-read on change.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "control_plane",
        conflicts_with = "control_plane"
    )]
    config: Option<PathBuf>,
    /// gRPC Discovery endpoint of the control plane (http://host:port).
    #[arg(long, value_name = "URL")]
    control_plane: Option<String>,
    /// Workload this proxy serves, as NAMESPACE/NAME (sent to the control plane).
    #[arg(long, value_name = "NS/NAME", default_value = "default/unknown")]
    workload: String,
    /// Outbound listener (the app's outgoing requests).
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([127, 0, 0, 1], ports::OUTBOUND)))]
    outbound: SocketAddr,
    /// Inbound listener (requests to the app).
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], ports::INBOUND)))]
    inbound: SocketAddr,
    /// Admin listener (/metrics /ready /live /config).
    #[arg(long, value_name = "ADDR", default_value_t = SocketAddr::from(([0, 0, 0, 0], ports::ADMIN)))]
    admin: SocketAddr,
    /// Where inbound traffic goes: the app's address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    inbound_target: SocketAddr,
    /// Write one JSON line per request on stdout.
    #[arg(long)]
    access_log: bool,
    /// On SIGTERM/SIGINT, how long requests in flight may take to finish (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    drain_timeout: Duration,
    /// How long a request to a destination never seen waits for its first config.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration)]
    discovery_timeout: Duration,
    /// Destinations not called for this long are unsubscribed.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = duration)]
    discovery_idle: Duration,
    /// How often the config file is checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = duration)]
    config_poll: Duration,
    /// Threads serving traffic. 1 (the default, as a sidecar beside one app) runs everything
    /// on one thread, which costs the least CPU per request; more spread load over cores.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// How long connecting to an endpoint may take.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    connect_timeout: Duration,
    /// What inbound traffic meets before an inbound policy arrives from the control plane:
    /// deny (SMI's default) or permissive (allow everything). A config file without an
    /// `inbound:` section allows everything.
    #[arg(long, value_name = "POLICY", value_enum, default_value_t = app::InboundBeforePolicy::Deny)]
    inbound_policy: app::InboundBeforePolicy,
    /// mTLS identity from files: a directory holding cert.pem (leaf, then intermediates),
    /// key.pem and roots.pem; re-read when they change. Without an identity the proxy
    /// speaks plaintext only and refuses mTLS from peers.
    #[arg(long, value_name = "DIR", conflicts_with = "identity")]
    identity_dir: Option<PathBuf>,
    /// mTLS identity from the control plane's Identity API: the SPIFFE id to ask for
    /// (spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT). Needs --identity-token-file.
    #[arg(long, value_name = "SPIFFE_ID", requires = "identity_token_file")]
    identity: Option<String>,
    /// File holding the token that proves --identity (a projected ServiceAccount token or
    /// a join token); re-read at every renewal.
    #[arg(long, value_name = "FILE", requires = "identity")]
    identity_token_file: Option<PathBuf>,
    /// The Identity API's address; default: --control-plane.
    #[arg(long, value_name = "URL", requires = "identity")]
    identity_url: Option<String>,
}

/// Subcommands; without one the proxy runs.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Install iptables rules in this network namespace that send TCP through the proxy.
    Init(trellis_proxy::init::InitArgs),
}

const EXAMPLES: &str = "\
Examples:
  trellis-proxy --config proxy.yaml
  trellis-proxy --control-plane http://127.0.0.1:8090 --workload shop/web
  trellis-proxy --control-plane http://127.0.0.1:8090 --workload shop/web \
      --identity spiffe://cluster.local/ns/shop/sa/web --identity-token-file /var/run/secrets/trellis/token
  trellis-proxy --config proxy.yaml --identity-dir ./certs    # cert.pem key.pem roots.pem
  trellis-proxy --config proxy.yaml --outbound 127.0.0.1:0 --admin 127.0.0.1:0   # free ports
  trellis-proxy init && setpriv --reuid 2102 --regid 2102 --clear-groups trellis-proxy --config proxy.yaml

Once listening it prints: trellis-proxy listening outbound=ADDR inbound=ADDR admin=ADDR
The config file format, answers and metrics are described in docs/proxy.md.";

/// `10s`, `500ms`, `2m`, `1h`, `1.5s`.
fn duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 10s, 500ms or 2m"))?;
    let (number, unit) = text.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

fn workload(text: &str) -> Result<api::Workload, String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Ok(api::Workload {
            namespace: ns.into(),
            name: name.into(),
        }),
        _ => Err(format!("--workload {text:?} must be NAMESPACE/NAME")),
    }
}

fn identity(args: &Args) -> Result<Option<app::IdentitySource>, String> {
    if let Some(dir) = &args.identity_dir {
        return Ok(Some(app::IdentitySource::Dir(dir.clone())));
    }
    let Some(id) = &args.identity else {
        return Ok(None);
    };
    let identity = id.parse().map_err(|e| format!("--identity: {e}"))?;
    let url = args
        .identity_url
        .clone()
        .or_else(|| args.control_plane.clone())
        .ok_or("--identity needs the Identity API's address: --identity-url or --control-plane")?;
    Ok(Some(app::IdentitySource::Certify(
        trellis_proxy::identity::CertifySettings {
            url,
            identity,
            token_file: args
                .identity_token_file
                .clone()
                .expect("clap requires --identity-token-file with --identity"),
        },
    )))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Init(init)) = &args.command {
        return trellis_proxy::init::main(init);
    }
    let source = match (&args.config, &args.control_plane) {
        (Some(path), _) => Source::File {
            path: path.clone(),
            poll: args.config_poll,
        },
        (None, Some(url)) => match workload(&args.workload) {
            Ok(workload) => Source::ControlPlane {
                url: url.clone(),
                workload,
            },
            Err(e) => {
                eprintln!("trellis-proxy: {e}");
                return ExitCode::from(2);
            }
        },
        (None, None) => unreachable!("clap requires --config or --control-plane"),
    };
    let identity = match identity(&args) {
        Ok(identity) => identity,
        Err(e) => {
            eprintln!("trellis-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = Settings {
        source,
        outbound: args.outbound,
        inbound: args.inbound,
        admin: args.admin,
        inbound_target: args.inbound_target,
        access_log: args.access_log,
        drain_timeout: args.drain_timeout,
        discovery_timeout: args.discovery_timeout,
        discovery_idle: args.discovery_idle,
        connect_timeout: args.connect_timeout,
        inbound_policy: args.inbound_policy,
        identity,
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.threads))
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trellis-proxy: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(app::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis-proxy: {e:#}");
            ExitCode::from(1)
        }
    }
}
