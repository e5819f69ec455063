//! `trellis demo-app`: a small HTTP service for demos and end-to-end tests.
//!
//! ```text
//!   request ──> server ──┬─ /healthz        "ok"
//!                        ├─ /_demo/config   read or change the Behaviour (latency, error rate)
//!                        ├─ /_demo/stats    requests served and errors injected
//!                        ├─ /call           call ──> --proxy (or the service) ──> upstream
//!                        └─ anything else   wait `latency`, then 200 JSON (who, what, Host)
//!                                           or, with probability `error rate`, 500
//! ```
//!
//! - [`behaviour`]: the latency and error rate, how they are parsed, shown and changed (pure).
//! - [`query`]: query string parsing.
//! - [`call`]: `/call`, an HTTP/1.1 client that goes through the mesh proxy.
//! - [`server`]: the hyper server routing requests to the above.

pub mod behaviour;
pub mod call;
pub mod query;
pub mod server;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use behaviour::{BadParameter, Behaviour};

/// Response headers naming the app that answered.
pub mod headers {
    /// The app's `--name`, on every answer of the catch-all handler (200 and 500).
    pub const NAME: &str = "x-demo-name";
    /// The app's `--version`, on every answer of the catch-all handler (200 and 500).
    pub const VERSION: &str = "x-demo-version";
    /// On `/call` answers: the status the upstream answered with.
    pub const UPSTREAM_STATUS: &str = "x-demo-upstream-status";
    /// Set by trellis-proxy on answers it makes itself; `/call` relays it.
    pub const PROXY_ERROR: &str = "trellis-proxy-error";
}

/// The paths the app answers itself; every other path is served by the catch-all handler.
pub mod paths {
    pub const HEALTHZ: &str = "/healthz";
    pub const CALL: &str = "/call";
    pub const CONFIG: &str = "/_demo/config";
    pub const STATS: &str = "/_demo/stats";
}

/// What the app says it is and how it behaves at start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Shown in every answer (`name`, `x-demo-name`), e.g. `api-v1`.
    pub name: String,
    /// Shown in every answer (`version`, `x-demo-version`), e.g. `v1`.
    pub version: String,
    pub listen: SocketAddr,
    pub behaviour: Behaviour,
    /// Where `/call` sends its requests: the local mesh proxy. `None`: straight to the service.
    pub proxy: Option<SocketAddr>,
}

/// A demo app serving on [`Running::addr`] until dropped.
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `settings.listen` and serves in a background task.
pub async fn start(settings: Settings) -> std::io::Result<Running> {
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let app = server::App::new(settings);
    let task = tokio::spawn(app.serve(listener));
    Ok(Running { addr, task })
}
