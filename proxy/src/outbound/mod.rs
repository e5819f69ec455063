//! The outbound HTTP stack: requests the app sends to other services.
//!
//! ```text
//! telemetry -> route -> rate_limit -> fault -> timeout -> mirror -> retry -> split
//!           -> balance (concurrency limit, endpoint pick, outlier ejection) -> connect
//! ```
//!
//! Each layer is a module of its own. The route layer finds the destination's config and the
//! route once per request and puts them on the request ([`Target`]); every later layer reads
//! its own part of the route from there, so a new config applies to the next request.

mod budget;
mod fault;
mod mirror;
pub mod opaque;
mod rate_limit;
mod retry;
mod route;
mod split;
mod timeout;

use std::sync::Arc;
use std::time::Duration;

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::balance::{Balance, BalanceState};
use crate::body::{Req, Rsp};
use crate::config::{Backend, Outbound, Route};
use crate::connect::Connect;
use crate::store::Store;
use crate::telemetry::{Direction, Metrics, TelemetryLayer};

/// A boxed HTTP stack, handed to the listener.
pub type HttpStack = BoxCloneSyncService<Req, Rsp, std::convert::Infallible>;

/// What the route layer decided, read by every later layer.
#[derive(Clone, Debug)]
pub struct Target {
    /// The destination as labelled in metrics.
    pub authority: Arc<str>,
    pub outbound: Arc<Outbound>,
    pub route: Arc<Route>,
}

/// The backend a request goes to (set by split, or by mirror for the copy).
#[derive(Clone, Debug)]
pub struct BackendChoice(pub Arc<Backend>);

/// Settings of the outbound stack.
#[derive(Clone)]
pub struct Settings {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub access_log: bool,
    /// How long a request waits for the first config of a destination never seen.
    pub discovery_wait: Duration,
}

/// Builds the outbound stack.
pub fn stack(settings: Settings, connect: Connect) -> HttpStack {
    let balance = Balance::new(connect, BalanceState::new(settings.metrics.clone()));
    let stack = ServiceBuilder::new()
        .layer(TelemetryLayer::new(
            Direction::Outbound,
            settings.metrics.clone(),
            settings.access_log,
        ))
        .layer(route::layer(
            settings.store.clone(),
            settings.discovery_wait,
        ))
        .layer(rate_limit::layer())
        .layer(fault::layer())
        .layer(timeout::layer())
        .layer(mirror::layer(balance.clone(), settings.metrics.clone()))
        .layer(retry::layer(settings.metrics.clone()))
        .layer(split::layer())
        .service(balance);
    BoxCloneSyncService::new(stack)
}

/// The destination a request names: `:authority` (HTTP/2, absolute URIs) or `Host`.
pub fn authority_of<B>(req: &http::Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|a| !a.is_empty())
}

/// Whether a request asks to switch protocols (WebSocket and the like); such requests are
/// never retried or mirrored.
pub fn is_upgrade<B>(req: &http::Request<B>) -> bool {
    req.headers().contains_key(http::header::UPGRADE) || req.method() == http::Method::CONNECT
}
