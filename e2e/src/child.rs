//! Starting a process that prints one `<prefix> key=value ...` line once it listens (the
//! operator, the demo app): stdout is read for that line, stderr is collected for failure
//! messages.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::oneshot;

/// A started process, its listening line and the stderr lines it has written so far.
pub struct Started {
    pub child: Child,
    pub line: String,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

/// Spawns `command` and waits up to `timeout` for a stdout line starting with `prefix`.
/// On failure the process is killed and the error carries its stderr.
pub async fn spawn_listening(
    mut command: Command,
    prefix: &'static str,
    timeout: Duration,
) -> anyhow::Result<Started> {
    let what = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let (tx, rx) = oneshot::channel::<String>();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.starts_with(prefix)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let lines = stderr.clone();
    let err = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            lines.lock().unwrap().push(line);
        }
    });
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(line)) => Ok(Started {
            child,
            line,
            stderr,
        }),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let text = stderr.lock().unwrap().join("\n");
            bail!("{what} printed no {prefix:?} line within {timeout:?}\nstderr:\n{text}")
        }
    }
}

/// The value of `key=` on a listening line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}
