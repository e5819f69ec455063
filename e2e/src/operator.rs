//! `trellis operator --local` as a child process: manifests in a directory the test
//! writes or a Git repository it commits to, CA material and the Git mirror in a data
//! directory, gRPC and admin on free loopback ports (kept across [`Operator::restart`]).
//!
//! ```text
//! let operator = Operator::start(manifests_dir).await?;
//! let operator = Operator::start_git(&repo.url(), &[]).await?;
//! let token = operator.join_token("shop", "web")?;     // a file for --identity-token-file
//! let status = operator.status().await?;               // GET /status, parsed
//! ```

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client;

/// The line the operator prints once its listeners are bound.
pub const LISTENING_PREFIX: &str = "trellis operator listening ";

pub struct Operator {
    child: Child,
    /// The gRPC API (Discovery, Identity, Registry).
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    data_dir: tempfile::TempDir,
    stderr: Arc<Mutex<Vec<String>>>,
    /// The source flags and environment, for a restart.
    source: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl Operator {
    /// Starts the operator reading `manifests` (polled every 100 ms).
    pub async fn start(manifests: &Path) -> anyhow::Result<Operator> {
        let source = vec![
            "--manifests".into(),
            manifests.into(),
            "--poll".into(),
            "100ms".into(),
        ];
        Operator::spawn(source, Vec::new(), tempfile::tempdir()?, None).await
    }

    /// [`Operator::start_git`] with environment variables (`SSL_CERT_FILE`).
    pub async fn start_git_env(
        url: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Operator> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Operator::spawn(
            Operator::git_flags(url, extra),
            env,
            tempfile::tempdir()?,
            None,
        )
        .await
    }

    /// Starts the operator following `url` (`--git`; the remote is checked every 100 ms),
    /// with `extra` flags (`--path shop`, `--branch ...`).
    pub async fn start_git(url: &str, extra: &[&str]) -> anyhow::Result<Operator> {
        Operator::spawn(
            Operator::git_flags(url, extra),
            Vec::new(),
            tempfile::tempdir()?,
            None,
        )
        .await
    }

    fn git_flags(url: &str, extra: &[&str]) -> Vec<OsString> {
        let mut source: Vec<OsString> = vec!["--git".into(), url.into()];
        if !extra.contains(&"--interval") {
            source.extend(["--interval".into(), "100ms".into()]);
        }
        source.extend(extra.iter().map(OsString::from));
        source
    }

    /// Stops the operator (SIGKILL: nothing is saved on the way out) and starts it again
    /// with the same flags, data directory and addresses.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = std::mem::replace(&mut self.data_dir, tempfile::tempdir()?);
        let next = Operator::spawn(
            self.source.clone(),
            self.env.clone(),
            data_dir,
            Some((self.grpc, self.admin)),
        )
        .await?;
        // The old value holds the dead child and the placeholder directory.
        drop(std::mem::replace(self, next));
        Ok(())
    }

    async fn spawn(
        source: Vec<OsString>,
        env: Vec<(String, String)>,
        data_dir: tempfile::TempDir,
        addresses: Option<(SocketAddr, SocketAddr)>,
    ) -> anyhow::Result<Operator> {
        let (grpc, admin) = addresses
            .map(|(g, a)| (g.to_string(), a.to_string()))
            .unwrap_or(("127.0.0.1:0".into(), "127.0.0.1:0".into()));
        let mut command = Command::new(crate::binary("trellis"));
        command
            .arg("operator")
            .arg("--local")
            .args(&source)
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(["--listen", &grpc, "--admin", &admin])
            .args(["--registration-grace", "2s"])
            .envs(env.iter().map(|(k, v)| (k, v)));
        let started =
            crate::child::spawn_listening(command, LISTENING_PREFIX, Duration::from_secs(15))
                .await?;
        let address = |key: &str| -> anyhow::Result<SocketAddr> {
            crate::child::field(&started.line, key)
                .with_context(|| format!("no {key}= in {:?}", started.line))?
                .parse()
                .with_context(|| format!("{key} in {:?}", started.line))
        };
        let operator = Operator {
            grpc: address("grpc")?,
            admin: address("admin")?,
            child: started.child,
            data_dir,
            stderr: started.stderr,
            source,
            env,
        };
        Ok(operator)
    }

    /// `http://<admin>` for `trellis status --admin`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// The Git source's entry in `/status`.
    pub async fn git_source(&self) -> anyhow::Result<serde_json::Value> {
        let status = self.status().await?;
        Ok(status["sources"][0].clone())
    }

    /// Waits (15 s at most) until the Git source's entry satisfies `ok`, and returns it.
    ///
    /// # Panics
    /// When it never does, with the last entry and the operator's stderr.
    pub async fn wait_git_source(
        &self,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.git_source().await.expect("GET /status");
            if ok(&source) {
                return source;
            }
            assert!(
                Instant::now() < deadline,
                "the Git source never showed {what}: {source:#}\nstderr:\n{}",
                self.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `http://<grpc>` for `--control-plane`.
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// A join token for `namespace/service_account`, written to a file in the data dir.
    pub fn join_token(&self, namespace: &str, service_account: &str) -> anyhow::Result<PathBuf> {
        let out = Command::new(crate::binary("trellis"))
            .arg("join-token")
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args([
                "--namespace",
                namespace,
                "--service-account",
                service_account,
            ])
            .output()?;
        if !out.status.success() {
            bail!(
                "trellis join-token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let path = self
            .data_dir
            .path()
            .join(format!("{namespace}-{service_account}.token"));
        std::fs::write(&path, String::from_utf8(out.stdout)?.trim())?;
        Ok(path)
    }

    /// `GET /status`, parsed.
    pub async fn status(&self) -> anyhow::Result<serde_json::Value> {
        let reply = client::get(self.admin, "/status").await?;
        serde_json::from_slice(&reply.body).with_context(|| format!("/status: {reply}"))
    }

    /// Waits until `/status` satisfies `ok`.
    pub async fn wait_status(
        &self,
        what: &str,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = self.status().await?;
            if ok(&status) {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("/status never showed {what}: {status:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `content` to `dir/file` atomically (a poll never reads half a file).
pub fn write_manifest(dir: &Path, file: &str, content: &str) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, content).expect("writing a manifest");
    std::fs::rename(&tmp, dir.join(file)).expect("renaming a manifest");
}
