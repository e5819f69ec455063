//! The demo's child processes: the operator, each app and each app's `trellis-proxy`.
//! Each prints a `... listening k=v ...` line once bound; everything else it writes goes
//! to `<dir>/logs/<name>.log`. Children are killed when the [`Processes`] are dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long a process may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The addresses a process printed (`grpc=`, `admin=`, `outbound=`, `addr=`, ...).
#[derive(Clone, Debug, Default)]
pub struct Listening(Vec<(String, SocketAddr)>);

impl Listening {
    pub fn get(&self, key: &str) -> anyhow::Result<SocketAddr> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, a)| *a)
            .with_context(|| format!("no {key}= in the listening line"))
    }
}

/// A started process, for the summary.
#[derive(Clone, Debug)]
pub struct Started {
    pub name: String,
    pub listening: Listening,
    pub log: PathBuf,
}

pub struct Processes {
    logs: PathBuf,
    children: Vec<(String, Child)>,
    pub started: Vec<Started>,
}

impl Processes {
    pub fn new(dir: &Path) -> anyhow::Result<Processes> {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        Ok(Processes {
            logs,
            children: Vec::new(),
            started: Vec::new(),
        })
    }

    /// Starts `program args`, waits for the line starting with `prefix` and returns the
    /// addresses on it.
    pub async fn start(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        prefix: &str,
    ) -> anyhow::Result<Listening> {
        let log = self.logs.join(format!("{name}.log"));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if line.starts_with(prefix) {
                    return Ok(Some(line));
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        let line = match tokio::time::timeout(START_TIMEOUT, wait).await {
            Ok(Ok(Some(line))) => line,
            outcome => {
                let _ = child.kill().await;
                let why = match outcome {
                    Err(_) => format!("printed nothing within {START_TIMEOUT:?}"),
                    _ => "stopped before it was listening".into(),
                };
                bail!(
                    "{name} {why}; its log {} says:\n{}",
                    log.display(),
                    tail(&log)
                );
            }
        };
        // The rest of stdout (access logs and the like) goes to the log too.
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .await?;
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        let listening = Listening(
            line.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect(),
        );
        self.children.push((name.to_owned(), child));
        self.started.push(Started {
            name: name.to_owned(),
            listening: listening.clone(),
            log,
        });
        Ok(listening)
    }

    /// The name of a process that has exited, if any.
    pub fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|(n, c)| matches!(c.try_wait(), Ok(Some(_))).then(|| n.clone()))
    }

    /// Stops every process (SIGKILL; the demo keeps no state worth a graceful stop).
    pub async fn stop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill().await;
        }
        self.children.clear();
    }
}

/// The last lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// A free loopback port (bound and released: the app binds it a moment later).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
