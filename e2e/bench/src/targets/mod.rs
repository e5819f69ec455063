//! The ways load reaches the backend:
//!
//! ```text
//! direct         load -> backend
//! trellis-proxy  load -> trellis-proxy (outbound) -> backend
//! haproxy        load -> HAProxy -> backend
//! trellis-mtls   load -> trellis-proxy (outbound) ==mTLS==> trellis-proxy (inbound) -> backend
//! haproxy-tls    load -> HAProxy ==mTLS==> HAProxy -> backend
//! ```
//!
//! Every proxy is started fresh for every measurement (so its peak RSS belongs to that
//! measurement), pinned to the proxy CPU, and killed afterwards. The two-proxy targets pin
//! both proxies to that one CPU; their CPU and memory are reported as the pair's sums.
//!
//! - [`trellis`]: trellis-proxy's config files, start-up and the check that a path is mTLS.
//! - [`haproxy`]: HAProxy's config files and start-up.
//! - [`identity`]: the bench's certificate authority and the files both proxies read.

mod haproxy;
mod identity;
mod trellis;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::process::{Child, Command};

use crate::load::Conn;

pub use haproxy::haproxy_version;

/// Authority the proxies route to the backend.
pub const AUTHORITY: &str = "backend.bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Direct,
    TrellisProxy,
    Haproxy,
    /// Client trellis-proxy, mTLS, server trellis-proxy: the sidecar-to-sidecar path.
    TrellisMtls,
    /// HAProxy originating TLS, HAProxy terminating it: the same hop done by HAProxy.
    HaproxyTls,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::TrellisProxy => "trellis-proxy",
            Kind::Haproxy => "haproxy",
            Kind::TrellisMtls => "trellis-mtls",
            Kind::HaproxyTls => "haproxy-tls",
        }
    }

    /// Proxy processes on the path; their CPU and memory are summed.
    pub fn proxies(self) -> usize {
        match self {
            Kind::Direct => 0,
            Kind::TrellisProxy | Kind::Haproxy => 1,
            Kind::TrellisMtls | Kind::HaproxyTls => 2,
        }
    }

    /// The HAProxy target doing the same hops, which a trellis target's added latency is
    /// judged against.
    pub fn baseline(self) -> Option<Kind> {
        match self {
            Kind::TrellisProxy => Some(Kind::Haproxy),
            Kind::TrellisMtls => Some(Kind::HaproxyTls),
            Kind::Direct | Kind::Haproxy | Kind::HaproxyTls => None,
        }
    }

    pub fn uses_haproxy(self) -> bool {
        matches!(self, Kind::Haproxy | Kind::HaproxyTls)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What starting a target needs.
#[derive(Clone, Debug)]
pub struct Env {
    pub backend: SocketAddr,
    /// Scratch directory for config files, certificates and logs.
    pub tmp: PathBuf,
    pub proxy_bin: PathBuf,
    pub haproxy_bin: PathBuf,
    /// CPU the proxies are pinned to (`taskset -c`), if pinning.
    pub proxy_cpu: Option<usize>,
    /// `TOKIO_WORKER_THREADS` for trellis-proxy.
    pub proxy_workers: usize,
}

/// A target ready for load.
pub struct Running {
    pub kind: Kind,
    /// Where the load generator connects.
    pub addr: SocketAddr,
    /// The proxy processes (none for `direct`), the one the load generator talks to first.
    pub pids: Vec<u32>,
    /// Admin address of a trellis-proxy whose `/metrics` must show the hop was mTLS.
    mtls_server_admin: Option<SocketAddr>,
    children: Vec<Child>,
}

impl Running {
    fn of(kind: Kind, addr: SocketAddr, proxies: Vec<Proxy>) -> Self {
        let pids = proxies.iter().filter_map(|p| p.pid).collect();
        Running {
            kind,
            addr,
            pids,
            mtls_server_admin: None,
            children: proxies.into_iter().map(|p| p.child).collect(),
        }
    }

    /// Stops the proxies (SIGKILL: nothing they do on the way out is measured).
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
        }
    }
}

/// One started proxy process.
struct Proxy {
    child: Child,
    pid: Option<u32>,
}

pub async fn start(kind: Kind, env: &Env) -> Result<Running> {
    let running = match kind {
        Kind::Direct => Running::of(kind, env.backend, vec![]),
        Kind::TrellisProxy => trellis::start_single(env).await?,
        Kind::Haproxy => haproxy::start_single(env).await?,
        Kind::TrellisMtls => trellis::start_mtls_pair(env).await?,
        Kind::HaproxyTls => haproxy::start_tls_pair(env).await?,
    };
    wait_serving(&running).await?;
    if let Some(admin) = running.mtls_server_admin {
        trellis::require_mtls(admin).await?;
    }
    Ok(running)
}

/// `bin`, pinned to the proxy CPU when pinning; killed when dropped.
fn command(env: &Env, bin: &Path) -> Command {
    let mut cmd = match env.proxy_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Waits until a `GET /` through the target is answered `200` with the 1 KiB body.
async fn wait_serving(target: &Running) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        match probe(target.addr).await {
            Ok(resp) if resp.status() == hyper::StatusCode::OK => {
                if resp.body().len() != crate::backend::BODY_LEN {
                    bail!(
                        "{} answered a {}-byte body, expected {}",
                        target.kind,
                        resp.body().len(),
                        crate::backend::BODY_LEN
                    );
                }
                return Ok(());
            }
            Ok(resp) => {
                let why = resp
                    .headers()
                    .get("trellis-proxy-error")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                last = format!(
                    "HTTP {} {why} {}",
                    resp.status(),
                    String::from_utf8_lossy(&resp.body()[..resp.body().len().min(200)]).trim()
                );
            }
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{} at {} never answered 200: {last}",
        target.kind,
        target.addr
    )
}

async fn probe(addr: SocketAddr) -> Result<hyper::Response<bytes::Bytes>> {
    let mut conn = Conn::open(addr).await?;
    tokio::time::timeout(Duration::from_secs(2), conn.get(AUTHORITY))
        .await
        .context("no answer within 2 s")?
}

/// The last lines of a log file, on one line.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(5);
    let joined = lines[start..].join(" | ");
    if joined.is_empty() {
        "(empty)".into()
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trellis_targets_are_judged_against_haproxy_doing_the_same_hops() {
        assert_eq!(Kind::TrellisProxy.baseline(), Some(Kind::Haproxy));
        assert_eq!(Kind::TrellisMtls.baseline(), Some(Kind::HaproxyTls));
        assert_eq!(Kind::HaproxyTls.baseline(), None);
        assert_eq!(Kind::TrellisMtls.proxies(), 2);
        assert_eq!(Kind::HaproxyTls.proxies(), 2);
        assert_eq!(Kind::Haproxy.proxies(), 1);
    }
}
