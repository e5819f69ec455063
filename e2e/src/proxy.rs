//! `trellis-proxy` as a child process: started on free loopback ports, its config file
//! rewritten while it runs, its admin endpoints and stdout (the access log) read, stopped
//! with SIGTERM or killed when the test ends.
//!
//! ```text
//! let proxy = Proxy::start(&config::yaml(&[dest])).await?;
//! let mut conn = Http1Conn::connect(proxy.outbound).await?;
//! ```

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use tokio::sync::oneshot;

use crate::client::{self, Reply};
use crate::config;

/// How long the proxy may take to print its `listening` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a config change may take to show on `/config`.
pub const RELOAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The line the proxy prints once every listener is bound.
pub const LISTENING_PREFIX: &str = "trellis-proxy listening ";

/// What to start the proxy with. Listeners always bind `127.0.0.1:0`.
#[derive(Debug, Default)]
pub struct ProxyBuilder {
    config: Option<String>,
    args: Vec<OsString>,
    wait_ready: Option<bool>,
}

impl ProxyBuilder {
    /// The static config file's content (YAML or JSON); written to a temporary directory and
    /// passed as `--config`.
    pub fn config(mut self, yaml: &str) -> Self {
        self.config = Some(yaml.to_owned());
        self
    }

    /// An extra argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// `--control-plane URL`.
    pub fn control_plane(self, url: &str) -> Self {
        self.arg("--control-plane").arg(url)
    }

    /// `--access-log`.
    pub fn access_log(self) -> Self {
        self.arg("--access-log")
    }

    /// `--inbound-target ADDR`.
    pub fn inbound_target(self, addr: SocketAddr) -> Self {
        self.arg("--inbound-target").arg(addr.to_string())
    }

    /// Waits for `/ready` to answer 200 before returning from [`ProxyBuilder::start`] (the
    /// default with a config file).
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = Some(wait);
        self
    }

    /// Spawns the proxy and waits for its `listening` line (and readiness, see
    /// [`ProxyBuilder::wait_ready`]).
    pub async fn start(self) -> anyhow::Result<Proxy> {
        let dir = tempfile::tempdir().context("a temporary directory for the config")?;
        let config_path = dir.path().join("proxy.yaml");
        let mut command = Command::new(crate::binary("trellis-proxy"));
        if let Some(config) = &self.config {
            std::fs::write(&config_path, config)?;
            command.arg("--config").arg(&config_path);
        }
        command
            .args(["--outbound", "127.0.0.1:0"])
            .args(["--inbound", "127.0.0.1:0"])
            .args(["--admin", "127.0.0.1:0"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("spawning trellis-proxy")?;

        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let stderr_lines = Arc::new(Mutex::new(Vec::new()));
        let (listening_tx, listening_rx) = oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = stdout_lines.clone();
        std::thread::spawn(move || {
            let mut listening = Some(listening_tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if listening.is_some() && line.starts_with(LISTENING_PREFIX) {
                    let _ = listening.take().expect("checked").send(line);
                } else {
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = stderr_lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });

        let mut proxy = Proxy {
            child,
            outbound: "0.0.0.0:0".parse().expect("an address"),
            inbound: "0.0.0.0:0".parse().expect("an address"),
            admin: "0.0.0.0:0".parse().expect("an address"),
            config_path,
            _dir: dir,
            stdout: stdout_lines,
            stderr: stderr_lines,
        };
        let line = match tokio::time::timeout(START_TIMEOUT, listening_rx).await {
            Ok(Ok(line)) => line,
            Ok(Err(_)) => {
                // stdout closed without the line: the process is gone or going.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let status = proxy.child.try_wait().ok().flatten();
                bail!(
                    "trellis-proxy ended without printing its listening line (exit: {status:?})\n\
                     stderr:\n{}",
                    proxy.stderr_text()
                );
            }
            Err(_) => bail!(
                "trellis-proxy printed no listening line within {START_TIMEOUT:?}\nstderr:\n{}",
                proxy.stderr_text()
            ),
        };
        let (outbound, inbound, admin) = parse_listening(&line)?;
        proxy.outbound = outbound;
        proxy.inbound = inbound;
        proxy.admin = admin;
        if self.wait_ready.unwrap_or(self.config.is_some()) {
            proxy.wait_ready().await?;
        }
        Ok(proxy)
    }
}

/// Parses `trellis-proxy listening outbound=A inbound=B admin=C`.
pub fn parse_listening(line: &str) -> anyhow::Result<(SocketAddr, SocketAddr, SocketAddr)> {
    let mut outbound = None;
    let mut inbound = None;
    let mut admin = None;
    for word in line.split_whitespace() {
        if let Some((key, value)) = word.split_once('=') {
            let addr: SocketAddr = value
                .parse()
                .with_context(|| format!("{value:?} in {line:?} is not an address"))?;
            match key {
                "outbound" => outbound = Some(addr),
                "inbound" => inbound = Some(addr),
                "admin" => admin = Some(addr),
                _ => {}
            }
        }
    }
    match (outbound, inbound, admin) {
        (Some(o), Some(i), Some(a)) => Ok((o, i, a)),
        _ => bail!("the listening line {line:?} does not name outbound, inbound and admin"),
    }
}

/// A running `trellis-proxy`. Killed when dropped; its stderr is printed if the test is
/// failing.
pub struct Proxy {
    child: Child,
    /// The outbound listener (the app's outgoing traffic).
    pub outbound: SocketAddr,
    /// The inbound listener.
    pub inbound: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// What to start a proxy with.
    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::default()
    }

    /// Starts a proxy with this static config and waits until it is ready.
    pub async fn start(config_yaml: &str) -> anyhow::Result<Proxy> {
        Proxy::builder().config(config_yaml).start().await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The config file the proxy was started with.
    pub fn config_path(&self) -> &std::path::Path {
        &self.config_path
    }

    /// `GET path` on the admin listener.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        client::get(self.admin, path).await
    }

    /// The `/metrics` text.
    pub async fn metrics(&self) -> anyhow::Result<String> {
        let reply = self.get("/metrics").await?;
        if !reply.status.is_success() {
            bail!("/metrics answered {reply}");
        }
        Ok(reply.text())
    }

    /// `/config`, parsed.
    pub async fn config_dump(&self) -> anyhow::Result<serde_json::Value> {
        let reply = self.get("/config").await?;
        if !reply.status.is_success() {
            bail!("/config answered {reply}");
        }
        serde_json::from_slice(&reply.body)
            .with_context(|| format!("/config is not JSON: {}", reply.text()))
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = self.get("/ready").await;
            if matches!(&last, Ok(r) if r.status.is_success()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "/ready did not answer 200 within {START_TIMEOUT:?}: {:?}\nstderr:\n{}",
                    last.map(|r| r.to_string()),
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the config file atomically (write a temporary file, then rename it over the
    /// old one), without waiting for the proxy to notice.
    pub fn replace_config_file(&self, content: &str) -> anyhow::Result<()> {
        let tmp = self.config_path.with_extension("yaml.tmp");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, &self.config_path)?;
        Ok(())
    }

    /// Replaces the config file and waits until `/config` shows every version it names.
    pub async fn rewrite_config(&self, yaml: &str) -> anyhow::Result<()> {
        let versions = config::versions_in(yaml);
        if versions.is_empty() {
            bail!("rewrite_config needs a config naming its versions; use replace_config_file");
        }
        self.replace_config_file(yaml)?;
        self.wait_for_versions(&versions).await
    }

    /// Waits until `/config` shows all these versions.
    pub async fn wait_for_versions(&self, versions: &[String]) -> anyhow::Result<()> {
        let deadline = Instant::now() + RELOAD_TIMEOUT;
        loop {
            let dump = self.config_dump().await;
            if let Ok(doc) = &dump
                && versions.iter().all(|v| config::mentions_version(doc, v))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "/config did not show versions {versions:?} within {RELOAD_TIMEOUT:?}: \
                     {dump:?}\nstderr:\n{}",
                    self.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Lines the proxy printed on stdout after its `listening` line (the access log).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until some stdout line satisfies `pred`.
    pub async fn wait_for_stdout(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stdout_lines().into_iter().find(|l| pred(l)) {
                return Some(line);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lines the proxy printed on stderr.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    fn stderr_text(&self) -> String {
        self.stderr_lines().join("\n")
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn send_sigterm(&self) -> anyhow::Result<()> {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.child.id()))
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed: {status}", self.child.id());
        }
        Ok(())
    }

    /// Waits for the process to exit; an error after `timeout`.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(anyhow!("trellis-proxy still runs after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- trellis-proxy stderr (pid {}) ---\n{}\n--- end ---",
                self.child.id(),
                self.stderr_text()
            );
        }
    }
}
