//! `trellis demo-app`: parses the flags, starts [`crate::demo_app`], prints the listening
//! line and runs until SIGTERM or Ctrl-C.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::exit;
use crate::demo_app::{self, Behaviour, Settings, behaviour};

/// What `trellis demo-app --help` shows after the flags (the subcommand's one-line summary
/// is its doc comment in `cli/mod.rs`).
const AFTER_HELP: &str = "\
Every request answers, after --latency, 200 with JSON naming the app and what it received,
  {\"name\":\"api-v1\",\"version\":\"v1\",\"method\":\"GET\",\"path\":\"/items\",\"host\":\"api.shop\"}
with the headers x-demo-name and x-demo-version; a share --error-rate of them answers 500
instead (same headers, and \"error\":\"injected by --error-rate\"). Some paths differ:

  /healthz        200 ok, at once, never an error
  /call?service=api.shop&path=/items&method=GET
                  calls http://api.shop/items through --proxy (Host: api.shop) and answers
                  with the upstream's status and body, x-demo-upstream-status and the
                  upstream's x-demo-name and x-demo-version; 502 saying why when it fails
  /_demo/config   GET: {\"latency\":\"20ms\",\"errorRate\":0.1}
                  POST ?error-rate=0.5&latency=100ms: changes them while running
  /_demo/stats    {\"requests\":N,\"errors\":M}, counting the requests answered with JSON

Once listening it prints one line on stdout, and it stops on SIGTERM or Ctrl-C:
  trellis demo-app listening addr=127.0.0.1:8082 name=api-v2 version=v2

Example:
  trellis demo-app --name api-v2 --version v2 --listen 127.0.0.1:8082 \\
      --latency 20ms --error-rate 0.1 --proxy 127.0.0.1:4140
  curl 127.0.0.1:8082/items
  curl '127.0.0.1:8082/call?service=api.shop&path=/items'
  curl -X POST '127.0.0.1:8082/_demo/config?error-rate=0.5'";

/// `trellis demo-app`'s flags.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The app's name, in every answer (JSON "name", header x-demo-name), e.g. api-v1.
    #[arg(long)]
    name: String,
    /// The app's version, in every answer (JSON "version", header x-demo-version), e.g. v1.
    #[arg(long)]
    version: String,
    /// Address to listen on; port 0 picks a free port (the listening line shows it).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Wait this long before every answer (not /healthz), e.g. 20ms or 1.5s.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = behaviour::parse_latency)]
    latency: Duration,
    /// Share of answers that are 500s, from 0.0 (none) to 1.0 (all), e.g. 0.1.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = behaviour::parse_error_rate)]
    error_rate: f64,
    /// The local mesh proxy /call sends its requests to (e.g. trellis-proxy's outbound
    /// listener, 127.0.0.1:4140). Without it, /call connects to the service directly.
    #[arg(long, value_name = "ADDR")]
    proxy: Option<SocketAddr>,
}

pub fn run(args: Args) -> u8 {
    let settings = Settings {
        name: args.name,
        version: args.version,
        listen: args.listen,
        behaviour: Behaviour {
            latency: args.latency,
            error_rate: args.error_rate,
        },
        proxy: args.proxy,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let running = match demo_app::start(settings.clone()).await {
            Ok(running) => running,
            Err(e) => {
                eprintln!(
                    "trellis demo-app: cannot listen on {}: {e}; pick another --listen address",
                    settings.listen
                );
                return exit::USAGE;
            }
        };
        println!(
            "trellis demo-app listening addr={} name={} version={}",
            running.addr, settings.name, settings.version
        );
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("trellis demo-app: stopping");
        exit::OK
    })
}
