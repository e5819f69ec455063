//! A local-mode mesh driven by Git: [`GitMesh`] is a repository the test commits to and
//! the `trellis operator --local --git` following it; [`MeshedApp`] is a `trellis demo-app`
//! with its `trellis-proxy` sidecar, which registers the workload at the operator and gets
//! its certificate there.
//!
//! ```text
//! server:  peer proxy ==mTLS==> proxy (inbound) --> demo app            (app started first)
//! client:  demo app /call --> proxy (outbound) ==mTLS==> peer proxy     (proxy started first)
//!
//! let mesh = GitMesh::start(&[("services.yaml", SERVICES)]).await?.unwrap(); // None: no git
//! let web = MeshedApp::builder("shop", "web-v1").service_account("web")
//!     .label("app", "web").label("version", "v1").version("v1").start(&mesh.operator).await?;
//! let client = MeshedApp::builder("shop", "client-1").service_account("client")
//!     .calls_out().start(&mesh.operator).await?;
//! mesh.wait_registered(&[&web, &client]).await?;
//! let reply = client.call(Method::GET, "web.shop", "/items").await?;   // via /call
//! assert_eq!(version_of(&reply), "v1");
//! mesh.commit("split.yaml", SPLIT, "shop: all to v2");                  // mesh/split.yaml
//! ```
//!
//! A sidecar registers the app port as `http=<the app's port>` (the default `--app-port`:
//! the `--inbound-target` port), so Services reach it with `targetPort: http` whatever
//! free port the app got; peers connect to the proxy's inbound listener.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;
use serde_json::Value;

use crate::client::{self, Reply};
use crate::demo_app::DemoApp;
use crate::git::GitRepo;
use crate::operator::Operator;
use crate::proxy::Proxy;

/// The folder of the repository the operator reads (`--path`).
pub const MANIFESTS: &str = "mesh";

/// How long a commit or a registration may take to show.
pub const CONVERGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The response header naming the version of the demo app that answered (`/call` copies it
/// from the upstream's answer).
pub const VERSION_HEADER: &str = "x-demo-version";

/// The demo app's version that answered `reply`, or `"-"` when no demo app did (the proxy
/// answered itself).
pub fn version_of(reply: &Reply) -> String {
    reply.header(VERSION_HEADER).unwrap_or_else(|| "-".into())
}

/// A Git repository and the operator following its `mesh/` folder (checked every 100 ms).
pub struct GitMesh {
    pub repo: GitRepo,
    pub operator: Operator,
}

impl GitMesh {
    /// Commits `files` (names under `mesh/`, contents), starts the operator on the
    /// repository and waits until it applied that commit. `None` when git is not installed
    /// and the run is not strict (see [`crate::require_tool`]).
    pub async fn start(files: &[(&str, &str)]) -> anyhow::Result<Option<GitMesh>> {
        if crate::require_tool("git").is_none() {
            return Ok(None);
        }
        let repo = GitRepo::new()?;
        for (file, content) in files {
            repo.write(&format!("{MANIFESTS}/{file}"), content);
        }
        let first = repo.commit("first")?;
        let operator = Operator::start_git(&repo.url(), &["--path", MANIFESTS]).await?;
        let mesh = GitMesh { repo, operator };
        mesh.applied(&first).await?;
        Ok(Some(mesh))
    }

    /// Writes `mesh/<file>` and commits it; returns the commit.
    pub fn commit(&self, file: &str, content: &str, message: &str) -> String {
        self.repo.write(&format!("{MANIFESTS}/{file}"), content);
        self.repo.commit(message).expect("git commit")
    }

    /// Deletes `mesh/<file>` and commits; returns the commit.
    pub fn delete(&self, file: &str, message: &str) -> String {
        self.repo.remove(&format!("{MANIFESTS}/{file}"));
        self.repo.commit(message).expect("git commit")
    }

    /// Waits until the operator has applied `commit`; returns the Git source's status.
    pub async fn applied(&self, commit: &str) -> anyhow::Result<Value> {
        self.source_shows(&format!("revision {commit}"), |s| s["revision"] == commit)
            .await
    }

    /// Waits until the Git source's entry in `/status` satisfies `ok`.
    pub async fn source_shows(
        &self,
        what: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let source = self.operator.git_source().await?;
            if ok(&source) {
                return Ok(source);
            }
            if Instant::now() > deadline {
                bail!(
                    "the Git source never showed {what}: {source:#}\noperator stderr:\n{}",
                    self.operator.stderr_text()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `/status` lists exactly these workloads, each app that serves ready.
    pub async fn wait_registered(&self, apps: &[&MeshedApp]) -> anyhow::Result<Value> {
        let mut expected: Vec<&str> = apps.iter().map(|a| a.workload.as_str()).collect();
        expected.sort_unstable();
        self.operator
            .wait_status(&format!("the workloads {expected:?} registered"), |s| {
                registered(s) == expected
                    && apps.iter().filter(|a| a.serves).all(|a| {
                        s["workloads"].as_array().is_some_and(|all| {
                            all.iter()
                                .any(|w| workload_name(w) == a.workload && w["ready"] == true)
                        })
                    })
            })
            .await
    }
}

/// The `namespace/name` of every workload in a `/status` document, sorted.
pub fn registered(status: &Value) -> Vec<String> {
    let mut names: Vec<String> = status["workloads"]
        .as_array()
        .map(|all| all.iter().map(workload_name).collect())
        .unwrap_or_default();
    names.sort_unstable();
    names
}

fn workload_name(w: &Value) -> String {
    format!(
        "{}/{}",
        w["namespace"].as_str().unwrap_or_default(),
        w["name"].as_str().unwrap_or_default()
    )
}

/// What to start: [`MeshedApp::builder`].
#[derive(Clone, Debug)]
pub struct MeshedAppBuilder {
    namespace: String,
    name: String,
    service_account: String,
    labels: Vec<(String, String)>,
    version: String,
    calls_out: bool,
    error_rate: Option<f64>,
}

impl MeshedAppBuilder {
    /// `--service-account` (default `default`): the identity peers see and TrafficTargets name.
    pub fn service_account(mut self, sa: &str) -> Self {
        self.service_account = sa.to_owned();
        self
    }

    /// A registered label Service selectors match (repeatable).
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The demo app's `--version` (default `v1`), shown in every answer.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// The demo app's `--error-rate` (0.0-1.0): that share of its answers are 500s.
    pub fn error_rate(mut self, rate: f64) -> Self {
        self.error_rate = Some(rate);
        self
    }

    /// A client: the proxy starts first and the app's `/call` goes through its outbound
    /// listener. Nothing calls this app through the mesh (its proxy's `--inbound-target`
    /// stays at the default, so the workload registers as not ready).
    pub fn calls_out(mut self) -> Self {
        self.calls_out = true;
        self
    }

    /// Starts the app and its proxy; returns once the proxy is ready (it holds a
    /// certificate and the operator answered).
    pub async fn start(self, operator: &Operator) -> anyhow::Result<MeshedApp> {
        let workload = format!("{}/{}", self.namespace, self.name);
        let token = operator
            .join_token(&self.namespace, &self.service_account)
            .with_context(|| format!("a join token for {workload}"))?;
        let mut proxy = Proxy::builder()
            .control_plane(&operator.url())
            .arg("--workload")
            .arg(&workload)
            .arg("--register")
            .arg("--service-account")
            .arg(&self.service_account)
            .arg("--identity")
            .arg(format!(
                "spiffe://cluster.local/ns/{}/sa/{}",
                self.namespace, self.service_account
            ))
            .arg("--identity-token-file")
            .arg(&token)
            .wait_ready(true);
        for (key, value) in &self.labels {
            proxy = proxy.arg("--label").arg(format!("{key}={value}"));
        }
        let mut app = DemoApp::builder(&self.name, &self.version);
        if let Some(rate) = self.error_rate {
            app = app.error_rate(rate);
        }
        let (app, proxy) = if self.calls_out {
            let proxy = proxy.start().await?;
            let app = app.proxy(proxy.outbound).start().await?;
            (app, proxy)
        } else {
            let app = app.start().await?;
            let proxy = proxy.inbound_target(app.addr).start().await?;
            (app, proxy)
        };
        Ok(MeshedApp {
            workload,
            serves: !self.calls_out,
            app,
            proxy,
        })
    }
}

/// A demo app and its registered sidecar; both killed when dropped.
pub struct MeshedApp {
    /// `namespace/name`, as registered.
    pub workload: String,
    /// Whether peers call it (started without [`MeshedAppBuilder::calls_out`]).
    pub serves: bool,
    pub app: DemoApp,
    pub proxy: Proxy,
}

impl MeshedApp {
    /// The app `namespace/name` with ServiceAccount `default`, version `v1`, no labels.
    pub fn builder(namespace: &str, name: &str) -> MeshedAppBuilder {
        MeshedAppBuilder {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            service_account: "default".to_owned(),
            labels: Vec::new(),
            version: "v1".to_owned(),
            calls_out: false,
            error_rate: None,
        }
    }

    /// Where the app listens (`/call` and the echo).
    pub fn addr(&self) -> SocketAddr {
        self.app.addr
    }

    /// Has the app call `service` (`web.shop`) with `method path` through its proxy
    /// (`GET /call?...`); the reply carries the upstream's status, body and version header.
    pub async fn call(&self, method: Method, service: &str, path: &str) -> anyhow::Result<Reply> {
        client::get(self.app.addr, &call_path(method, service, path)).await
    }

    /// Calls until `ok` holds for a reply (a commit takes a moment to reach the proxies);
    /// an error naming `what` and the last reply after [`CONVERGE_TIMEOUT`].
    pub async fn call_until(
        &self,
        method: Method,
        service: &str,
        path: &str,
        what: &str,
        ok: impl Fn(&Reply) -> bool,
    ) -> anyhow::Result<Reply> {
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let reply = self.call(method.clone(), service, path).await?;
            if ok(&reply) {
                return Ok(reply);
            }
            if Instant::now() > deadline {
                bail!("{what}: never within {CONVERGE_TIMEOUT:?}; last reply {reply}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `n` calls of `GET /` on `service`, 4 at a time, counted by the version that
    /// answered (`{"v1": 150, "v2": 50}`); a call that failed counts under its status
    /// (`"503"`) or `"error"`.
    pub async fn versions(&self, service: &str, n: usize) -> BTreeMap<String, usize> {
        let app = self.app.addr;
        let path = call_path(Method::GET, service, "/");
        let replies = client::load(app, n, 4, move |_| {
            client::get_request(&app.to_string(), &path)
        })
        .await;
        let mut counts = BTreeMap::new();
        for reply in replies {
            let key = match reply {
                Ok(r) if r.status == 200 => version_of(&r),
                Ok(r) => r.status.as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }
}

/// `/call?service=..&path=..&method=..`, each value percent-encoded.
pub fn call_path(method: Method, service: &str, path: &str) -> String {
    format!(
        "/call?service={}&path={}&method={}",
        encode(service),
        encode(path),
        encode(method.as_str())
    )
}

/// Percent-encodes every byte but unreserved characters and `/`.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
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
    fn call_paths_encode_what_a_query_cannot_hold() {
        assert_eq!(
            call_path(Method::POST, "web.shop", "/items?page=2&x=a b"),
            "/call?service=web.shop&path=/items%3Fpage%3D2%26x%3Da%20b&method=POST"
        );
    }

    #[test]
    fn workloads_are_named_namespace_slash_name_in_order() {
        let status = serde_json::json!({"workloads": [
            {"namespace": "shop", "name": "web-v2"},
            {"namespace": "shop", "name": "client-1"},
        ]});
        assert_eq!(registered(&status), ["shop/client-1", "shop/web-v2"]);
    }
}
