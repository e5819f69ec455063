//! The operator's own memory with every proxy subscribed: the same proxies, run for a
//! moment in a child process (this benchmark binary again, with `--proxies-only ADDR`),
//! so that this process's RSS is the operator's alone.
//!
//! ```text
//! parent (index + server) <--2,000 HTTP/2 connections-- child (the proxies of the plan)
//! child: every watch has its first config -> prints one JSON line -> waits for stdin EOF
//! parent: reads the line, reads its own VmRSS, closes stdin, waits for the watches to end
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use trellis_operator::discovery::Subscriptions;

use crate::proxies::{self, Plan};
use crate::sys::{self, Memory};

/// What the child reports once every watch has its first config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChildReport {
    pub watches: usize,
    pub initial_s: f64,
    pub rss_mib: f64,
    pub peak_mib: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// This process (index + server + every watch) while the child's proxies are subscribed.
    pub operator: Memory,
    /// Watches the server held then.
    pub server_watches: usize,
    pub child: ChildReport,
}

/// The child side: subscribe, report, hold the subscriptions until stdin closes.
pub fn child(
    server: SocketAddr,
    plan: &Plan,
    concurrency: usize,
    threads: usize,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("proxies")
        .enable_all()
        .build()?;
    let (tx, mut events) = mpsc::unbounded_channel();
    let started = Instant::now();
    let _proxies = rt.block_on(proxies::start(server, plan, concurrency, tx));
    let mut seen = vec![false; plan.watches.len()];
    let mut received = 0;
    rt.block_on(async {
        while received < seen.len() {
            let Some(event) = events.recv().await else {
                break;
            };
            if !std::mem::replace(&mut seen[event.watch as usize], true) {
                received += 1;
            }
        }
    });
    let memory = sys::memory();
    let report = ChildReport {
        watches: received,
        initial_s: started.elapsed().as_secs_f64(),
        rss_mib: memory.rss_mib,
        peak_mib: memory.peak_mib,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&report)?)?;
    out.flush()?;
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    rt.shutdown_background();
    Ok(())
}

/// The parent side: runs the child with `args` (the plan's flags) against `server`.
pub fn run(
    server: SocketAddr,
    args: &[String],
    subscriptions: &Subscriptions,
) -> anyhow::Result<Probe> {
    let exe = std::env::current_exe().context("finding the benchmark binary")?;
    let mut child = Command::new(exe)
        .arg("--proxies-only")
        .arg(server.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the proxies' child process")?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().context("child stdout")?)
        .read_line(&mut line)
        .context("reading the child's report")?;
    let report: ChildReport = serde_json::from_str(line.trim())
        .with_context(|| format!("the child's report {line:?}"))?;
    let probe = Probe {
        operator: sys::memory(),
        server_watches: subscriptions.len(),
        child: report,
    };
    drop(child.stdin.take());
    child.wait().context("waiting for the child")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !subscriptions.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(probe)
}
