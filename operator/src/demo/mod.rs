//! `trellis demo`: the whole mesh on one machine, driven by Git commits.
//!
//! ```text
//! <dir>/repo (gitops-examples/, git2) <--follows-- trellis operator --local --git
//!                                                    ^ Discovery, Identity, Registry
//!      web (demo-app) -> trellis-proxy ==mTLS==> trellis-proxy -> api-v1 (demo-app)
//!                                       ==mTLS==> trellis-proxy -> api-v2 (demo-app)
//!                                       ==mTLS==> trellis-proxy -> api-v3 (demo-app)
//!                                       ==mTLS==> trellis-proxy -> api-v4 (demo-app, 20 % 500s)
//! the demo: load through web, then commits (weights, a TrafficTarget, a broken
//! manifest, then a Canary promoting v3 and rolling v4 back), each checked by the
//! traffic it changes
//! ```
//!
//! Every step states what should happen and checks it on real traffic; the demo exits
//! non-zero when a check fails, so it doubles as a smoke test (CI runs it).

mod canary;
mod http;
mod processes;
mod repo;
mod steps;
mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use git2::Oid;

use self::processes::{Processes, free_port};
use self::repo::Repo;
use self::traffic::Tally;

pub use self::steps::Check;

/// What `trellis demo` runs with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the repository, the operator's data and the logs go.
    pub dir: PathBuf,
    /// Requests per measurement.
    pub requests: usize,
    pub trellis: PathBuf,
    pub proxy: PathBuf,
}

/// A meshed app: the demo app and its proxy.
#[derive(Clone, Debug)]
pub struct App {
    pub name: &'static str,
    pub version: &'static str,
    pub service_account: &'static str,
    pub labels: &'static [&'static str],
    pub addr: SocketAddr,
    pub proxy_admin: SocketAddr,
}

/// The running demo mesh.
pub struct Mesh {
    pub settings: Settings,
    pub repo: Repo,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    pub apps: Vec<App>,
    pub processes: Processes,
    secret: String,
    started: Instant,
}

/// One app of `gitops-examples/shop` as the demo starts it.
struct AppSpec {
    name: &'static str,
    version: &'static str,
    service_account: &'static str,
    labels: &'static [&'static str],
    /// More `trellis demo-app` arguments (its behaviour).
    args: &'static [&'static str],
}

/// The apps of `gitops-examples/shop`: web, the API versions the Git split moves between
/// (v1, v2), and the ones the Canary runs: v3 healthy, v4 answering 20 % of requests
/// with 500.
const APPS: &[AppSpec] = &[
    AppSpec {
        name: "api-v1",
        version: "v1",
        service_account: "api",
        labels: &["app=api", "version=v1"],
        args: &[],
    },
    AppSpec {
        name: "api-v2",
        version: "v2",
        service_account: "api",
        labels: &["app=api", "version=v2"],
        args: &[],
    },
    AppSpec {
        name: "api-v3",
        version: "v3",
        service_account: "api",
        labels: &["app=api", "version=v3"],
        args: &[],
    },
    AppSpec {
        name: "api-v4",
        version: "v4",
        service_account: "api",
        labels: &["app=api", "version=v4"],
        args: &["--error-rate", "0.2"],
    },
    AppSpec {
        name: "web",
        version: "v1",
        service_account: "web",
        labels: &["app=web"],
        args: &[],
    },
];

/// How long a commit may take to be applied, and its effect to reach the proxies.
const APPLY_TIMEOUT: Duration = Duration::from_secs(20);

impl Mesh {
    /// Creates the repository, starts the operator and every app with its proxy.
    pub async fn start(settings: Settings) -> anyhow::Result<Mesh> {
        let started = Instant::now();
        let dir = &settings.dir;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let (repo, commit) = Repo::create(&dir.join("repo"))?;
        progress(
            started,
            &format!(
                "created a Git repository from gitops-examples/ at {} (commit {})",
                repo.path().display(),
                short(commit)
            ),
        );

        let mut processes = Processes::new(dir)?;
        let secret = format!("{:032x}", fastrand::u128(..));
        let secret_file = dir.join("webhook.secret");
        std::fs::write(&secret_file, &secret)?;
        let data = dir.join("data");
        let args: Vec<String> = vec![
            "operator".into(),
            "--local".into(),
            "--git".into(),
            repo.path().display().to_string(),
            "--interval".into(),
            "2s".into(),
            "--git-webhook-secret-file".into(),
            secret_file.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--admin".into(),
            "127.0.0.1:0".into(),
            "--registration-grace".into(),
            "5s".into(),
        ];
        let listening = processes
            .start(
                "operator",
                &settings.trellis,
                &args,
                "trellis operator listening ",
            )
            .await?;
        let grpc = listening.get("grpc")?;
        let admin = listening.get("admin")?;
        progress(
            started,
            &format!("operator running in local mode: gRPC {grpc}, admin http://{admin}"),
        );

        let (tokens, _) = crate::identity::JoinTokens::load_or_create(&data)?;
        let mut apps = Vec::new();
        for spec in APPS {
            let AppSpec {
                name,
                version,
                service_account: sa,
                labels,
                ..
            } = spec;
            let token = dir.join(format!("{sa}.token"));
            std::fs::write(&token, tokens.token_for("shop", sa))?;
            let port = free_port()?;
            let mut args: Vec<String> = vec![
                "--control-plane".into(),
                format!("http://{grpc}"),
                "--workload".into(),
                format!("shop/{name}"),
                "--register".into(),
                "--service-account".into(),
                (*sa).into(),
                "--identity".into(),
                format!("spiffe://cluster.local/ns/shop/sa/{sa}"),
                "--identity-token-file".into(),
                token.display().to_string(),
                "--inbound-target".into(),
                format!("127.0.0.1:{port}"),
            ];
            for flag in ["--outbound", "--inbound", "--admin"] {
                args.extend([flag.into(), "127.0.0.1:0".into()]);
            }
            for label in *labels {
                args.extend(["--label".into(), (*label).into()]);
            }
            let proxy = processes
                .start(
                    &format!("{name}-proxy"),
                    &settings.proxy,
                    &args,
                    "trellis-proxy listening ",
                )
                .await?;
            let mut args: Vec<String> = vec![
                "demo-app".into(),
                "--name".into(),
                (*name).into(),
                "--version".into(),
                (*version).into(),
                "--listen".into(),
                format!("127.0.0.1:{port}"),
                "--proxy".into(),
                proxy.get("outbound")?.to_string(),
            ];
            args.extend(spec.args.iter().map(|a| (*a).to_owned()));
            let app = processes
                .start(
                    name,
                    &settings.trellis,
                    &args,
                    "trellis demo-app listening ",
                )
                .await?;
            apps.push(App {
                name,
                version,
                service_account: sa,
                labels,
                addr: app.get("addr")?,
                proxy_admin: proxy.get("admin")?,
            });
        }
        let mut mesh = Mesh {
            settings,
            repo,
            grpc,
            admin,
            apps,
            processes,
            secret,
            started,
        };
        mesh.wait_registered().await?;
        progress(
            started,
            "web and api-v1 to api-v4 running (api-v4 answers 20 % of requests with 500), each with its own trellis-proxy (registered, certified by the operator's CA)",
        );
        Ok(mesh)
    }

    /// Waits until every app's workload is registered and ready.
    async fn wait_registered(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + APPLY_TIMEOUT;
        loop {
            let status = http::status(self.admin).await?;
            let ready = status["workloads"]
                .as_array()
                .map_or(0, |w| w.iter().filter(|w| w["ready"] == true).count());
            if ready == self.apps.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "only {ready} of {} workloads registered and ready after {APPLY_TIMEOUT:?}; see the logs in {}",
                    self.apps.len(),
                    self.settings.dir.join("logs").display()
                );
            }
            if let Some(name) = self.processes.exited() {
                bail!("{name} stopped; see {}", self.log(&name).display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.settings.dir.join("logs").join(format!("{name}.log"))
    }

    pub fn web(&self) -> SocketAddr {
        self.apps
            .iter()
            .find(|a| a.name == "web")
            .expect("web is one of the apps")
            .addr
    }

    /// Commits the change, calls the push webhook and waits until the operator applied
    /// the commit (`Ok(None)`) or refused it (`Ok(Some(errors))`).
    pub async fn commit(
        &self,
        message: &str,
        change: impl FnOnce(&Repo) -> anyhow::Result<()>,
    ) -> anyhow::Result<(Oid, Option<Vec<String>>)> {
        change(&self.repo)?;
        let commit = self.repo.commit(message)?;
        http::push_hook(self.admin, &self.secret).await?;
        let deadline = Instant::now() + APPLY_TIMEOUT;
        let id = commit.to_string();
        loop {
            let status = http::status(self.admin).await?;
            let source = &status["sources"][0];
            if source["revision"] == id.as_str() {
                return Ok((commit, None));
            }
            if source["rejectedRevision"] == id.as_str() {
                let errors = source["errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(|e| e.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                return Ok((commit, Some(errors)));
            }
            if Instant::now() > deadline {
                bail!(
                    "the operator did not take commit {} within {APPLY_TIMEOUT:?}; source: {source}",
                    short(commit)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a few requests until `check` holds (the new config reaching the proxies),
    /// then measures with the full number of requests.
    pub async fn measure(
        &self,
        method: &str,
        path: &str,
        check: &dyn Fn(&Tally) -> Result<(), String>,
    ) -> (Tally, Result<(), String>) {
        let deadline = Instant::now() + APPLY_TIMEOUT;
        loop {
            let probe = traffic::drive(self.web(), method, "api.shop:8080", path, 16).await;
            if check(&probe).is_ok() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let tally = traffic::drive(
            self.web(),
            method,
            "api.shop:8080",
            path,
            self.settings.requests,
        )
        .await;
        let verdict = check(&tally);
        (tally, verdict)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn progress(&self, message: &str) {
        progress(self.started, message);
    }

    pub async fn stop(&mut self) {
        self.processes.stop().await;
    }
}

/// `[  12.3s] message`
fn progress(started: Instant, message: &str) {
    println!("[{:>6.1}s] {message}", started.elapsed().as_secs_f64());
}

fn short(commit: Oid) -> String {
    commit.to_string()[..12].to_owned()
}

/// The demo's working directory: `--dir`, else a new one under the system's temp dir.
pub fn working_dir(dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| std::env::temp_dir().join(format!("trellis-demo-{}", std::process::id())))
}

/// `trellis-proxy` next to `trellis`.
pub fn proxy_beside(trellis: &Path) -> PathBuf {
    trellis.with_file_name("trellis-proxy")
}
