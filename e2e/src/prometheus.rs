//! A real Prometheus server scraping proxies' admin listeners, for tests of what a metrics
//! provider sees (canary analysis): the Debian package's `prometheus` binary started with
//! a config of our own, its storage in a temporary directory, its HTTP API on a free
//! loopback port.
//!
//! ```text
//! let Some(prom) = Prometheus::start(&[client.proxy.admin]).await else { return };  // skipped
//! prom.wait_targets_up(1, TARGETS_TIMEOUT).await;
//! let total = prom.query_value("sum(trellis_requests_total)").await;              // Some(20.0)
//! prom.set_targets(&[client.proxy.admin, web.proxy.admin]).await;                 // + /-/reload
//! ```
//!
//! Prometheus 2.x applies a target list at most every 5 s twice over (service discovery
//! sends updates on a 5 s tick and the scrape manager applies them on another 5 s tick;
//! neither can be shortened in 2.42), so a target is first scraped 5-10 s after
//! [`Prometheus::start`] or [`Prometheus::set_targets`]: wait with [`TARGETS_TIMEOUT`].
//!
//! Every method panics when Prometheus fails (with its answer and its log): a broken
//! metrics server is a failed test, not a result. The process is killed and its storage
//! deleted when dropped; its log is printed when the test is failing.
//!
//! The binary is `$TRELLIS_PROMETHEUS`, else `prometheus` on `PATH`, else
//! `/usr/bin/prometheus`. Without one the test says so and passes, or fails under
//! `TRELLIS_STRICT=1` (see [`crate::require_tool`]).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::Value;

use crate::client;

/// Environment variable naming the Prometheus binary to use.
pub const BINARY_ENV: &str = "TRELLIS_PROMETHEUS";

/// Where the Debian package puts the server.
pub const DEBIAN_BINARY: &str = "/usr/bin/prometheus";

/// The scrape job every target belongs to (the `job` label).
pub const JOB: &str = "trellis-proxies";

/// How long Prometheus may take to answer `/-/ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a new target list may take to be scraped (two 5 s ticks and a scrape).
pub const TARGETS_TIMEOUT: Duration = Duration::from_secs(20);

/// The Prometheus binary; `None` (and a note on stderr) when there is none and the run is
/// not strict.
///
/// # Panics
/// When there is none and [`crate::strict`] is set, or when `$TRELLIS_PROMETHEUS` names
/// no file.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(BINARY_ENV) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{BINARY_ENV}={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|candidate| candidate.is_file())
    });
    let found = on_path.or_else(|| Some(PathBuf::from(DEBIAN_BINARY)).filter(|p| p.is_file()));
    if found.is_none() {
        let hint = "prometheus is not installed: install the Debian package prometheus \
                    (.ci/run does), or set TRELLIS_PROMETHEUS";
        assert!(
            !crate::strict(),
            "{hint} ({} is set, so this test cannot be skipped)",
            crate::STRICT_ENV
        );
        eprintln!("SKIPPED: {hint}");
    }
    found
}

/// Intervals of a Prometheus to start: [`Prometheus::builder`].
#[derive(Clone, Debug)]
pub struct PrometheusBuilder {
    scrape_interval: Duration,
    evaluation_interval: Duration,
}

impl PrometheusBuilder {
    /// `global.scrape_interval` (default 1 s).
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// `global.evaluation_interval` (default 1 s).
    pub fn evaluation_interval(mut self, interval: Duration) -> Self {
        self.evaluation_interval = interval;
        self
    }

    /// Starts Prometheus scraping `targets` (admin listeners, at `/metrics`) and waits
    /// until it is ready; `None` when there is no binary (see [`binary`]).
    ///
    /// # Panics
    /// When Prometheus exits or is not ready within [`START_TIMEOUT`].
    pub async fn start(self, targets: &[SocketAddr]) -> Option<Prometheus> {
        let binary = binary()?;
        let dir = tempfile::tempdir().expect("a temporary directory for Prometheus");
        let config = dir.path().join("prometheus.yml");
        write_config(&config, &self, targets);
        let mut child = Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            // Port 0: the port Prometheus got is read from its "Listening on" log line.
            .arg("--web.listen-address=127.0.0.1:0")
            // For POST /-/reload.
            .arg("--web.enable-lifecycle")
            // The upstream binary's console paths are relative; nothing here uses them.
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
        let mut process = Process { child, log };
        let addr = process.wait_listening().await;
        let prometheus = Prometheus {
            process,
            addr,
            config,
            settings: self,
            targets: Mutex::new(targets.to_vec()),
            _dir: dir,
        };
        prometheus.wait_ready().await;
        Some(prometheus)
    }
}

/// A running Prometheus with one scrape job, [`JOB`].
pub struct Prometheus {
    process: Process,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    config: PathBuf,
    settings: PrometheusBuilder,
    targets: Mutex<Vec<SocketAddr>>,
    /// Holds the config and the TSDB; removed after the process is killed.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Scrape and evaluation every second.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder {
            scrape_interval: Duration::from_secs(1),
            evaluation_interval: Duration::from_secs(1),
        }
    }

    /// [`PrometheusBuilder::start`] with the default intervals.
    pub async fn start(targets: &[SocketAddr]) -> Option<Prometheus> {
        Prometheus::builder().start(targets).await
    }

    /// The base URL of the HTTP API: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An instant query at the present time; returns the `data` object
    /// (`{"resultType": "vector", "result": [{"metric": {..}, "value": [t, "3"]}]}`).
    ///
    /// # Panics
    /// With Prometheus' error (`bad_data: 1:5: parse error: ...`) when the query fails.
    pub async fn query(&self, promql: &str) -> Value {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let answer = self.api(Method::GET, &path).await;
        if answer["status"] != "success" {
            panic!(
                "Prometheus refused {promql:?}: {}: {}",
                answer["errorType"].as_str().unwrap_or("?"),
                answer["error"].as_str().unwrap_or("?")
            );
        }
        answer["data"].clone()
    }

    /// The value of a query with one sample or a scalar result; `None` for an empty vector
    /// (nothing scraped yet, or no series matches).
    ///
    /// # Panics
    /// As [`Prometheus::query`], and when the result has several series or is not a number.
    pub async fn query_value(&self, promql: &str) -> Option<f64> {
        let data = self.query(promql).await;
        let result = &data["result"];
        let sample = match data["resultType"].as_str() {
            Some("scalar") => result,
            Some("vector") => match result.as_array().map(Vec::as_slice) {
                Some([]) => return None,
                Some([one]) => &one["value"],
                _ => panic!("{promql:?} has several series; aggregate them: {result}"),
            },
            _ => panic!("{promql:?} is neither a scalar nor a vector: {data}"),
        };
        Some(sample_value(sample).unwrap_or_else(|| panic!("{promql:?}: no number in {data}")))
    }

    /// Repeats [`Prometheus::query_value`] until `ok` holds for its value; returns it.
    ///
    /// # Panics
    /// After `timeout`, with the last value, the targets and Prometheus' log.
    pub async fn wait_value(
        &self,
        promql: &str,
        timeout: Duration,
        ok: impl Fn(Option<f64>) -> bool,
    ) -> Option<f64> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.query_value(promql).await;
            if ok(value) {
                return value;
            }
            if Instant::now() > deadline {
                let targets = self.api(Method::GET, "/api/v1/targets").await;
                panic!(
                    "{promql:?} never gave the expected value within {timeout:?}: last {value:?}\n\
                     targets: {}\nPrometheus log:\n{}",
                    targets["data"]["activeTargets"],
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `n` of the configured targets were scraped successfully (their
    /// `health` is `up`); returns every active target as `/api/v1/targets` lists it.
    ///
    /// # Panics
    /// After `timeout`, with each target's state and last error.
    pub async fn wait_targets_up(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.api(Method::GET, "/api/v1/targets?state=active").await;
            let active = answer["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let configured: Vec<String> = self
                .targets
                .lock()
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect();
            let up = active
                .iter()
                .filter(|t| t["health"] == "up")
                .filter(|t| configured.iter().any(|c| t["labels"]["instance"] == **c))
                .count();
            if up >= n {
                return active;
            }
            if Instant::now() > deadline {
                let states: Vec<String> = active
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {} {}",
                            t["scrapeUrl"].as_str().unwrap_or("?"),
                            t["health"].as_str().unwrap_or("?"),
                            t["lastError"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                panic!(
                    "{up} of {n} targets up within {timeout:?} (configured {configured:?}): \
                     {states:#?}\nPrometheus log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Scrapes `targets` from now on: rewrites the config and POSTs `/-/reload` (the new
    /// list is scraped within [`TARGETS_TIMEOUT`]; see the module's notes).
    ///
    /// # Panics
    /// When Prometheus does not accept the reload.
    pub async fn set_targets(&self, targets: &[SocketAddr]) {
        write_config(&self.config, &self.settings, targets);
        *self.targets.lock().unwrap() = targets.to_vec();
        let request = client::request(Method::POST, &self.addr.to_string(), "/-/reload")
            .body(client::empty())
            .expect("a valid request");
        let reply = client::send_once(self.addr, request)
            .await
            .unwrap_or_else(|e| panic!("POST /-/reload: {e:#}\nPrometheus log:\n{}", self.log()));
        assert!(
            reply.status.is_success(),
            "POST /-/reload answered {reply}\nPrometheus log:\n{}",
            self.log()
        );
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// A call of the HTTP API, its JSON answer (error answers included).
    async fn api(&self, method: Method, path: &str) -> Value {
        let request = client::request(method, &self.addr.to_string(), path)
            .body(client::empty())
            .expect("a valid request");
        let reply = client::send_once(self.addr, request)
            .await
            .unwrap_or_else(|e| {
                panic!("Prometheus {path}: {e:#}\nPrometheus log:\n{}", self.log())
            });
        serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("Prometheus {path} answered no JSON ({e}): {reply}"))
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let last = client::get(self.addr, "/-/ready").await;
            if matches!(&last, Ok(r) if r.status.is_success()) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "Prometheus was not ready within {START_TIMEOUT:?}: {:?}\nPrometheus log:\n{}",
                    last.map(|r| r.to_string()),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The process and the lines it wrote on stderr (Prometheus logs there and nothing on
/// stdout). Killed when dropped; the log is printed when the test is failing.
struct Process {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The address of the `msg="Listening on" address=127.0.0.1:PORT` log line.
    async fn wait_listening(&mut self) -> SocketAddr {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = self.log.lock().unwrap().iter().find_map(|l| listening(l)) {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Prometheus exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus logged no listening address within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- prometheus log (pid {}) ---\n{}\n--- end ---",
                self.child.id(),
                self.log()
            );
        }
    }
}

/// The address on a `msg="Listening on" address=...` log line (2.x logfmt and 3.x slog).
fn listening(line: &str) -> Option<SocketAddr> {
    if !line.contains("msg=\"Listening on\"") {
        return None;
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .and_then(|a| a.trim_matches('"').parse().ok())
}

/// One static job scraping `targets` at `/metrics`.
fn write_config(path: &Path, settings: &PrometheusBuilder, targets: &[SocketAddr]) {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let yaml = format!(
        "global:\n  scrape_interval: {scrape}ms\n  evaluation_interval: {eval}ms\n\
         scrape_configs:\n- job_name: {JOB}\n  metrics_path: /metrics\n  \
         static_configs:\n  - targets: [{targets}]\n",
        scrape = settings.scrape_interval.as_millis(),
        eval = settings.evaluation_interval.as_millis(),
        targets = targets.join(", ")
    );
    let tmp = path.with_extension("yml.tmp");
    std::fs::write(&tmp, yaml).expect("writing prometheus.yml");
    std::fs::rename(&tmp, path).expect("renaming prometheus.yml");
}

/// The number in a `[<time>, "<value>"]` sample.
fn sample_value(sample: &Value) -> Option<f64> {
    sample.get(1)?.as_str()?.parse().ok()
}

/// Percent-encodes every byte but unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_address_is_read_from_the_2_x_and_3_x_log_lines() {
        let v2 = "ts=2026-11-22T16:47:00.283Z caller=tls_config.go:232 level=info \
                  component=web msg=\"Listening on\" address=127.0.0.1:43515";
        let v3 = "time=2025-01-01T00:00:00Z level=INFO source=tls_config.go:347 \
                  msg=\"Listening on\" address=127.0.0.1:9090";
        let other = "ts=x msg=\"Start listening for connections\" address=127.0.0.1:0";
        assert_eq!(listening(v2), Some("127.0.0.1:43515".parse().unwrap()));
        assert_eq!(listening(v3), Some("127.0.0.1:9090".parse().unwrap()));
        assert_eq!(listening(other), None);
    }

    #[test]
    fn promql_is_percent_encoded() {
        assert_eq!(
            encode("sum(x{a=\"b c\"})"),
            "sum%28x%7Ba%3D%22b%20c%22%7D%29"
        );
    }
}
