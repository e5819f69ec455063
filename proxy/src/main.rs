//! `trellis-proxy`: the Trellis sidecar proxy. See docs/proxy.md.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use trellis_proxy::app::{self, Settings, Source};
use trellis_proxy::register::{self, AppPort};
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
    /// Local mode (no Kubernetes): register the workload (--workload) at the control plane,
    /// which matches Service selectors against its labels to make endpoints. The
    /// registration says the workload is ready while this proxy is ready and the app accepts
    /// connections on its first --app-port, and not ready from SIGTERM on.
    #[arg(
        long,
        help_heading = REGISTRATION,
        requires = "control_plane",
        requires = "workload"
    )]
    register: bool,
    /// The workload's ServiceAccount: its identity is
    /// spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "default",
        help_heading = REGISTRATION,
        requires = "register"
    )]
    service_account: String,
    /// A label of the workload, which Service selectors match. Repeatable.
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        value_parser = label,
        help_heading = REGISTRATION,
        requires = "register"
    )]
    labels: Vec<(String, String)>,
    /// An address peers reach the workload at. Repeatable. Default: the --inbound IP, or
    /// 127.0.0.1 when that is 0.0.0.0 or ::.
    #[arg(
        long = "address",
        value_name = "IP",
        help_heading = REGISTRATION,
        requires = "register"
    )]
    addresses: Vec<IpAddr>,
    /// A port the app listens on, named or not; a named port resolves a Service's named
    /// targetPort. Repeatable. Default: http=the --inbound-target port.
    #[arg(
        long = "app-port",
        value_name = "[NAME=]PORT",
        value_parser = app_port,
        help_heading = REGISTRATION,
        requires = "register"
    )]
    app_ports: Vec<AppPort>,
    /// Inbound connections are intercepted by iptables (trellis-proxy init): peers connect
    /// to the app's ports. Without it peers reach every app port through this proxy's
    /// inbound listener, whose port the registration carries.
    #[arg(long, help_heading = REGISTRATION, requires = "register")]
    intercepted: bool,
}

/// The `--help` section of the local-mode registration flags.
const REGISTRATION: &str = "Local mode: registering the workload";

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
  # local mode: register shop/web-1 (app on 127.0.0.1:8080) for Services selecting app=web
  trellis-proxy --control-plane http://127.0.0.1:8090 --workload shop/web-1 --register \\
      --service-account web --label app=web --app-port http=8080

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

/// `--label KEY=VALUE`.
fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.into(), value.into())),
        _ => Err(format!("{text:?} is not KEY=VALUE (e.g. app=web)")),
    }
}

/// `--app-port [NAME=]PORT`: `8080` or `http=8080`. A name is what Kubernetes allows for a
/// port name: up to 15 lower-case letters, digits and '-', with a letter.
fn app_port(text: &str) -> Result<AppPort, String> {
    let (name, port) = match text.split_once('=') {
        Some((name, port)) => (name, port),
        None => ("", text),
    };
    let valid_name = name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && (name.is_empty() || name.bytes().any(|b| b.is_ascii_lowercase()));
    if !valid_name {
        return Err(format!(
            "port name {name:?} must be up to 15 lower-case letters, digits and '-', with a letter (e.g. http=8080)"
        ));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(AppPort {
            name: name.into(),
            port,
        }),
        _ => Err(format!(
            "{port:?} is not a port number (1-65535); write PORT or NAME=PORT (e.g. http=8080)"
        )),
    }
}

/// What to register (`--register` and the flags beside it), with the defaults filled in.
fn registration(args: &Args) -> Result<Option<register::Settings>, String> {
    if !args.register {
        return Ok(None);
    }
    let mut labels = BTreeMap::new();
    for (key, value) in &args.labels {
        if labels.insert(key.clone(), value.clone()).is_some() {
            return Err(format!("--label {key} is given twice"));
        }
    }
    let addresses = if args.addresses.is_empty() {
        vec![register::default_address(args.inbound)]
    } else {
        args.addresses.clone()
    };
    let ports = if args.app_ports.is_empty() {
        vec![AppPort {
            name: "http".into(),
            port: args.inbound_target.port(),
        }]
    } else {
        args.app_ports.clone()
    };
    for (i, p) in ports.iter().enumerate() {
        let earlier = &ports[..i];
        if earlier.iter().any(|e| e.port == p.port) {
            return Err(format!("--app-port {} is given twice", p.port));
        }
        if !p.name.is_empty() && earlier.iter().any(|e| e.name == p.name) {
            return Err(format!("--app-port name {:?} is given twice", p.name));
        }
    }
    Ok(Some(register::Settings {
        workload: workload(&args.workload)?,
        service_account: args.service_account.clone(),
        labels,
        addresses,
        ports,
        intercepted: args.intercepted,
    }))
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
    let (identity, register) = match identity(&args).and_then(|i| Ok((i, registration(&args)?))) {
        Ok(both) => both,
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
        register,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> Result<Args, clap::Error> {
        let mut argv = vec!["trellis-proxy", "--control-plane", "http://127.0.0.1:8090"];
        argv.extend(flags);
        Args::try_parse_from(argv)
    }

    fn registered(flags: &[&str]) -> register::Settings {
        let mut all = vec!["--workload", "shop/web-1", "--register"];
        all.extend(flags);
        registration(&args(&all).unwrap()).unwrap().unwrap()
    }

    fn port(name: &str, port: u16) -> AppPort {
        AppPort {
            name: name.into(),
            port,
        }
    }

    #[test]
    fn without_register_nothing_is_registered() {
        assert_eq!(registration(&args(&[]).unwrap()), Ok(None));
    }

    #[test]
    fn registration_defaults_serve_one_http_port_through_the_inbound_listener() {
        let r = registered(&["--inbound", "127.0.0.1:4143"]);
        assert_eq!(
            r,
            register::Settings {
                workload: api::Workload {
                    namespace: "shop".into(),
                    name: "web-1".into(),
                },
                service_account: "default".into(),
                labels: BTreeMap::new(),
                addresses: vec!["127.0.0.1".parse().unwrap()],
                ports: vec![port("http", 8080)],
                intercepted: false,
            }
        );
        let message = r.registration(
            "127.0.0.1:4143".parse().unwrap(),
            "127.0.0.1:4191".parse().unwrap(),
            true,
        );
        assert_eq!(message.inbound_port, 4143);
        assert_eq!(message.admin_port, 4191);
    }

    #[test]
    fn the_address_is_the_inbound_listener_ip_unless_it_is_unspecified() {
        let addresses = |flags: &[&str]| registered(flags).addresses;
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(addresses(&[]), [ip("127.0.0.1")], "--inbound 0.0.0.0:4143");
        assert_eq!(addresses(&["--inbound", "[::]:4143"]), [ip("127.0.0.1")]);
        assert_eq!(addresses(&["--inbound", "10.0.0.5:4143"]), [ip("10.0.0.5")]);
        assert_eq!(
            addresses(&[
                "--inbound",
                "10.0.0.5:4143",
                "--address",
                "192.168.1.7",
                "--address",
                "fd00::7"
            ]),
            [ip("192.168.1.7"), ip("fd00::7")]
        );
    }

    #[test]
    fn the_default_app_port_is_the_inbound_target_port_named_http() {
        let r = registered(&["--inbound-target", "127.0.0.1:3000"]);
        assert_eq!(r.ports, [port("http", 3000)]);
        let r = registered(&["--app-port", "web=3000", "--app-port", "9090"]);
        assert_eq!(r.ports, [port("web", 3000), port("", 9090)]);
    }

    #[test]
    fn intercepted_workloads_are_reached_at_the_app_ports() {
        let inbound = "0.0.0.0:4143".parse().unwrap();
        let admin = "0.0.0.0:4191".parse().unwrap();
        let direct = registered(&[]);
        assert!(!direct.intercepted);
        assert_eq!(direct.registration(inbound, admin, true).inbound_port, 4143);
        let intercepted = registered(&["--intercepted"]);
        assert!(intercepted.intercepted);
        assert_eq!(
            intercepted.registration(inbound, admin, true).inbound_port,
            0
        );
    }

    #[test]
    fn labels_and_the_service_account_are_taken_as_given() {
        let r = registered(&[
            "--service-account",
            "web",
            "--label",
            "app=web",
            "--label",
            "version=",
        ]);
        assert_eq!(r.service_account, "web");
        assert_eq!(
            r.labels,
            BTreeMap::from([
                ("app".into(), "web".into()),
                ("version".into(), String::new())
            ])
        );
    }

    #[test]
    fn register_needs_the_control_plane_and_a_workload() {
        let e = Args::try_parse_from(["trellis-proxy", "--config", "p.yaml", "--register"])
            .unwrap_err();
        assert!(e.to_string().contains("--control-plane"), "{e}");
        let e = args(&["--register"]).unwrap_err();
        assert!(e.to_string().contains("--workload"), "{e}");
    }

    #[test]
    fn registration_flags_need_register() {
        let e = args(&["--workload", "shop/web-1", "--label", "app=web"]).unwrap_err();
        assert!(e.to_string().contains("--register"), "{e}");
    }

    #[test]
    fn bad_registration_flags_are_refused_with_an_example() {
        let refused = |flags: &[&str]| {
            let mut all = vec!["--workload", "shop/web-1", "--register"];
            all.extend(flags);
            match args(&all) {
                Err(e) => e.to_string(),
                Ok(a) => registration(&a).unwrap_err(),
            }
        };
        assert!(refused(&["--label", "app"]).contains("KEY=VALUE (e.g. app=web)"));
        assert!(refused(&["--app-port", "http=0"]).contains("not a port number (1-65535)"));
        assert!(refused(&["--app-port", "HTTP=80"]).contains("lower-case letters"));
        assert!(refused(&["--app-port", "80", "--app-port", "a=80"]).contains("given twice"));
        assert!(refused(&["--app-port", "a=80", "--app-port", "a=81"]).contains("given twice"));
        assert!(refused(&["--label", "a=1", "--label", "a=2"]).contains("given twice"));
    }
}
