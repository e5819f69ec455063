//! `trellis demo-app` as a child process on a free loopback port.
//!
//! ```text
//! let v1 = DemoApp::start("api-v1", "v1").await?;
//! let slow = DemoApp::builder("api-v2", "v2").latency(Duration::from_millis(50))
//!     .error_rate(0.1).proxy(proxy_addr).start().await?;
//! let reply = client::get(v1.addr, "/items").await?;   // 200 {"name":"api-v1",...}
//! let stats = v1.stats().await?;                       // GET /_demo/stats, parsed
//! ```

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use http::Method;
use serde::Deserialize;

use crate::client::{self, Reply};

/// The line the demo app prints once it listens.
pub const LISTENING_PREFIX: &str = "trellis demo-app listening ";

/// How long the app may take to print its listening line.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `trellis demo-app`; killed when dropped.
pub struct DemoApp {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    pub name: String,
    pub version: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// What `/_demo/stats` counts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Requests answered by the catch-all handler.
    pub requests: u64,
    /// How many of those were injected 500s.
    pub errors: u64,
}

/// Flags for a demo app: [`DemoApp::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    name: String,
    version: String,
    latency: Option<Duration>,
    error_rate: Option<f64>,
    proxy: Option<SocketAddr>,
}

impl Builder {
    /// `--latency`.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = Some(latency);
        self
    }

    /// `--error-rate` (0.0..=1.0; anything else makes [`Builder::start`] fail).
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = Some(rate);
        self
    }

    /// `--proxy`: where `/call` sends its requests.
    pub fn proxy(mut self, addr: SocketAddr) -> Self {
        self.proxy = Some(addr);
        self
    }

    /// The arguments after `trellis`.
    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "demo-app",
            "--name",
            &self.name,
            "--version",
            &self.version,
            "--listen",
            "127.0.0.1:0",
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(latency) = self.latency {
            args.extend(["--latency".to_owned(), duration_flag(latency)]);
        }
        if let Some(rate) = self.error_rate {
            args.extend(["--error-rate".to_owned(), rate.to_string()]);
        }
        if let Some(proxy) = self.proxy {
            args.extend(["--proxy".to_owned(), proxy.to_string()]);
        }
        args
    }

    /// Spawns the app and waits (up to [`START_TIMEOUT`]) for its listening line.
    pub async fn start(self) -> anyhow::Result<DemoApp> {
        let mut command = Command::new(crate::binary("trellis"));
        command.args(self.args());
        let started =
            crate::child::spawn_listening(command, LISTENING_PREFIX, START_TIMEOUT).await?;
        let addr = crate::child::field(&started.line, "addr")
            .with_context(|| format!("no addr= in {:?}", started.line))?;
        let app = DemoApp {
            child: started.child,
            addr: addr
                .parse()
                .with_context(|| format!("addr in {:?}", started.line))?,
            name: self.name,
            version: self.version,
            stderr: started.stderr,
        };
        Ok(app)
    }
}

impl DemoApp {
    /// The flags of an app named `name` at `version`, to change before [`Builder::start`].
    pub fn builder(name: &str, version: &str) -> Builder {
        Builder {
            name: name.to_owned(),
            version: version.to_owned(),
            latency: None,
            error_rate: None,
            proxy: None,
        }
    }

    /// An app with no latency, no errors and no proxy.
    pub async fn start(name: &str, version: &str) -> anyhow::Result<DemoApp> {
        Self::builder(name, version).start().await
    }

    /// `GET path` (path and query) on a fresh connection.
    pub async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        client::get(self.addr, path).await
    }

    /// `POST path` (path and query) with an empty body.
    pub async fn post(&self, path: &str) -> anyhow::Result<Reply> {
        let req = client::request(Method::POST, &self.addr.to_string(), path)
            .body(client::empty())
            .expect("a valid request");
        client::send_once(self.addr, req).await
    }

    /// `GET /_demo/stats`, parsed.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let reply = self.get("/_demo/stats").await?;
        serde_json::from_slice(&reply.body).with_context(|| format!("/_demo/stats: {reply}"))
    }

    /// Sends SIGTERM.
    pub fn send_sigterm(&self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
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
                return Err(anyhow!("trellis demo-app still runs after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `20ms`, or nanoseconds when the duration is not whole milliseconds.
fn duration_flag(d: Duration) -> String {
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}ns", d.as_nanos())
    }
}
