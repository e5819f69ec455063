//! The inbound HTTP stack: requests from other services to the app.
//!
//! ```text
//! telemetry -> authorize (inbound policy) -> forward (to the app's port) -> connect
//! ```
//!
//! - [`authorize`]: the decision, a pure function of policy, port, client and request.
//! - [`enforce`]: the authorize layer, and the check the listener makes for opaque TCP.

pub mod authorize;
pub mod enforce;

use std::net::SocketAddr;
use std::sync::Arc;

use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

use crate::body::{Req, Rsp};
use crate::connect::{Connect, EndpointAddr};
use crate::listen::OriginalDst;
use crate::outbound::HttpStack;
use crate::telemetry::{BackendLabel, Direction, Metrics, TelemetryLayer};

/// Builds the inbound stack forwarding to `app` what `policy` allows.
pub fn stack(
    app: SocketAddr,
    connect: Connect,
    metrics: Arc<Metrics>,
    access_log: bool,
    policy: enforce::Policy,
) -> HttpStack {
    let stack = ServiceBuilder::new()
        .layer(TelemetryLayer::new(Direction::Inbound, metrics, access_log))
        .layer(enforce::layer(policy))
        .service(Forward { app, connect });
    BoxCloneSyncService::new(stack)
}

/// Sends every request to the app: to the address the client called when intercepted
/// (so an app listening on loopback only is not exposed, as with Istio), else to `app`.
#[derive(Clone)]
pub struct Forward {
    app: SocketAddr,
    connect: Connect,
}

impl Forward {
    async fn handle(self, mut req: Req) -> Rsp {
        let target = req
            .extensions()
            .get::<OriginalDst>()
            .map_or(self.app, |o| o.0);
        req.extensions_mut().insert(EndpointAddr(target));
        let mut rsp = self.connect.send(req).await;
        rsp.extensions_mut().insert(BackendLabel {
            backend: "app".into(),
            endpoint: Some(target),
        });
        rsp
    }
}

crate::http_service!(plain Forward);
