//! `trellis-proxy`: the Trellis sidecar proxy.
//!
//! The request path (listeners, routing, balancing, resilience, telemetry) is built in the
//! next milestone; until then this binary refuses to start rather than pretend to proxy.

use std::process::ExitCode;

use clap::Parser;
use trellis_proxy_api::ports;

/// Trellis sidecar proxy (data plane).
#[derive(Debug, Parser)]
#[command(name = "trellis-proxy", version, about)]
struct Args {}

fn main() -> ExitCode {
    let _args = Args::parse();
    eprintln!(
        "trellis-proxy {}: the data plane is not built yet, so nothing listens on {}/{}/{} \
         (outbound/inbound/admin). See docs/README.md for what works today.",
        env!("CARGO_PKG_VERSION"),
        ports::OUTBOUND,
        ports::INBOUND,
        ports::ADMIN
    );
    ExitCode::from(1)
}
