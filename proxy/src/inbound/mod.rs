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

/// Sends every request to the app.
#[derive(Clone)]
pub struct Forward {
    app: SocketAddr,
    connect: Connect,
}

impl Forward {
    async fn handle(self, mut req: Req) -> Rsp {
        req.extensions_mut().insert(EndpointAddr(self.app));
        let mut rsp = self.connect.send(req).await;
        rsp.extensions_mut().insert(BackendLabel {
            backend: "app".into(),
            endpoint: Some(self.app),
        });
        rsp
    }
}

crate::http_service!(plain Forward);
