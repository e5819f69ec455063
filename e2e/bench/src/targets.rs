//! The three ways load reaches the backend: directly, through one `trellis-proxy`, through
//! one HAProxy. Each proxy is started fresh for every measurement (so its peak RSS belongs to
//! that measurement), pinned to its own CPU, and killed afterwards.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::load::Conn;

/// Authority the proxies route to the backend.
pub const AUTHORITY: &str = "backend.bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Direct,
    TrellisProxy,
    Haproxy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::TrellisProxy => "trellis-proxy",
            Kind::Haproxy => "haproxy",
        }
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
    /// Scratch directory for config files and logs.
    pub tmp: PathBuf,
    pub proxy_bin: PathBuf,
    pub haproxy_bin: PathBuf,
    /// CPU the proxy is pinned to (`taskset -c`), if pinning.
    pub proxy_cpu: Option<usize>,
    /// `TOKIO_WORKER_THREADS` for trellis-proxy.
    pub proxy_workers: usize,
}

/// A target ready for load.
pub struct Running {
    pub kind: Kind,
    /// Where the load generator connects.
    pub addr: SocketAddr,
    /// The proxy process (none for `direct`).
    pub pid: Option<u32>,
    child: Option<Child>,
}

impl Running {
    /// Stops the proxy (SIGKILL: nothing it does on the way out is measured).
    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill().await;
        }
    }
}

pub async fn start(kind: Kind, env: &Env) -> Result<Running> {
    let running = match kind {
        Kind::Direct => Running {
            kind,
            addr: env.backend,
            pid: None,
            child: None,
        },
        Kind::TrellisProxy => start_trellis(env).await?,
        Kind::Haproxy => start_haproxy(env).await?,
    };
    wait_serving(&running, env).await?;
    Ok(running)
}

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

/// The static config of docs/proxy.md: one authority, one route, one backend.
pub fn trellis_config(backend: SocketAddr) -> String {
    format!(
        "# written by trellis-bench\n\
         outbound:\n\
         \x20 - authority: {AUTHORITY}\n\
         \x20   routes:\n\
         \x20     - name: default\n\
         \x20       backends: [{{backend: bench, weight: 1}}]\n\
         \x20   backends:\n\
         \x20     - name: bench\n\
         \x20       endpoints: [{{address: {{ip: {ip}, port: {port}}}}}]\n\
         \x20       balancer: {{round_robin: {{}}}}\n",
        ip = backend.ip(),
        port = backend.port()
    )
}

async fn start_trellis(env: &Env) -> Result<Running> {
    if !env.proxy_bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p trellis-proxy` or pass --proxy-bin",
            env.proxy_bin.display()
        );
    }
    let config = env.tmp.join("trellis-proxy.yaml");
    std::fs::write(&config, trellis_config(env.backend))?;
    let log_path = env.tmp.join("trellis-proxy.stderr");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = command(env, &env.proxy_bin);
    cmd.arg("--config")
        .arg(&config)
        .args(["--outbound", "127.0.0.1:0"])
        .args(["--inbound", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0"])
        // Older builds size their runtime from the environment only; newer ones take --threads.
        .env("TOKIO_WORKER_THREADS", env.proxy_workers.to_string())
        .stdout(Stdio::piped())
        .stderr(log);
    if takes_threads_flag(&env.proxy_bin) {
        cmd.arg("--threads").arg(env.proxy_workers.to_string());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", env.proxy_bin.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();

    let listening = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("trellis-proxy listening ") {
                return Ok(Some(rest.to_owned()));
            }
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let rest = match listening {
        Ok(Ok(Some(rest))) => rest,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "still running".to_owned(),
            };
            bail!(
                "trellis-proxy closed stdout without printing its listening line ({status}); stderr: {}",
                tail(&log_path)
            );
        }
        Err(_) => {
            let _ = child.kill().await;
            bail!(
                "trellis-proxy printed no listening line within 20 s; stderr: {}",
                tail(&log_path)
            );
        }
    };
    let outbound: SocketAddr = rest
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("outbound="))
        .context("listening line has no outbound=")?
        .parse()
        .context("outbound= is not an address")?;
    // Keep reading stdout (an access log, if any) so the proxy never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Running {
        kind: Kind::TrellisProxy,
        addr: outbound,
        pid,
        child: Some(child),
    })
}

/// Whether this trellis-proxy build has the `--threads` flag.
fn takes_threads_flag(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--threads"))
}

/// HAProxy doing the same single hop: HTTP mode, one frontend, one server, server-side
/// connections kept alive and shared, one thread, no logging.
pub fn haproxy_config(listen: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "# written by trellis-bench\n\
         global\n\
         \x20   nbthread 1\n\
         \x20   maxconn 2000\n\
         defaults\n\
         \x20   mode http\n\
         \x20   option http-keep-alive\n\
         \x20   http-reuse always\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 60s\n\
         frontend bench\n\
         \x20   bind {listen}\n\
         \x20   default_backend backend_bench\n\
         backend backend_bench\n\
         \x20   server b1 {backend}\n"
    )
}

async fn start_haproxy(env: &Env) -> Result<Running> {
    // HAProxy does not report a port it picked, so pick a free one here.
    let listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let config = env.tmp.join("haproxy.cfg");
    std::fs::write(&config, haproxy_config(listen, env.backend))?;
    let log_path = env.tmp.join("haproxy.stderr");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = command(env, &env.haproxy_bin);
    cmd.arg("-f")
        .arg(&config)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", env.haproxy_bin.display()))?;
    let pid = child.id();
    // Ready once it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("haproxy exited ({status}); stderr: {}", tail(&log_path));
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            bail!(
                "haproxy did not listen on {listen} within 10 s; stderr: {}",
                tail(&log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Running {
        kind: Kind::Haproxy,
        addr: listen,
        pid,
        child: Some(child),
    })
}

/// Waits until a `GET /` through the target is answered `200` with the 1 KiB body.
async fn wait_serving(target: &Running, _env: &Env) -> Result<()> {
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

/// `haproxy -v`'s first line.
pub fn haproxy_version(bin: &Path) -> Option<String> {
    let out = std::process::Command::new(bin).arg("-v").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_point_at_the_backend() {
        let backend: SocketAddr = "127.0.0.1:8123".parse().unwrap();
        let yaml = trellis_config(backend);
        assert!(yaml.contains("authority: backend.bench"));
        assert!(yaml.contains("endpoints: [{address: {ip: 127.0.0.1, port: 8123}}]"));
        let cfg = haproxy_config("127.0.0.1:9000".parse().unwrap(), backend);
        assert!(cfg.contains("bind 127.0.0.1:9000"));
        assert!(cfg.contains("server b1 127.0.0.1:8123"));
        assert!(cfg.contains("nbthread 1"));
        assert!(cfg.contains("http-reuse always"));
    }
}
