//! Telemetry: the first layer of every HTTP stack. It sees each request arrive and its
//! response end (trailers included, for gRPC status), and records both into
//! [`metrics::Metrics`] and, when enabled, a JSON access log line.
//!
//! Lower layers say what they chose through response extensions ([`RouteLabel`],
//! [`BackendLabel`]); telemetry never recomputes routing.

pub mod metrics;
mod observe;
pub use observe::print_line;
pub mod trace;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};

use crate::answer::grpc_status_in_headers;
use crate::body::{Req, Rsp};
pub use metrics::Metrics;
use observe::{Exchange, Observe};

/// Which way traffic flows through the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Outbound,
    Inbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// The destination and route that took a request (set by the route layer).
#[derive(Clone, Debug)]
pub struct RouteLabel {
    pub authority: Arc<str>,
    pub route: Arc<str>,
}

/// The backend and endpoint that served a request (set by split and balance).
#[derive(Clone, Debug)]
pub struct BackendLabel {
    pub backend: Arc<str>,
    pub endpoint: Option<SocketAddr>,
}

/// The client's address, put on every request by the listener.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub SocketAddr);

/// The client's SPIFFE id, proven by its mTLS certificate; `None` (or no extension at all):
/// a plaintext client. Put on requests by the listener.
#[derive(Clone, Debug, Default)]
pub struct PeerIdentity(pub Option<Arc<str>>);

/// The port the client called (inbound: the app's port, or the original destination's
/// with interception). Put on requests by the inbound listener.
#[derive(Clone, Copy, Debug)]
pub struct LocalPort(pub u16);

/// The authorization that allowed an inbound request (set by the authorize layer).
#[derive(Clone, Debug)]
pub struct AuthorizationLabel(pub Arc<str>);

/// Records every exchange.
#[derive(Clone)]
pub struct TelemetryLayer {
    direction: Direction,
    metrics: Arc<Metrics>,
    access_log: bool,
}

impl TelemetryLayer {
    pub fn new(direction: Direction, metrics: Arc<Metrics>, access_log: bool) -> Self {
        Self {
            direction,
            metrics,
            access_log,
        }
    }
}

impl<S> Layer<S> for TelemetryLayer {
    type Service = Telemetry<S>;
    fn layer(&self, inner: S) -> Telemetry<S> {
        Telemetry {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Telemetry<S> {
    inner: S,
    layer: TelemetryLayer,
}

impl<S: crate::svc::Http> Service<Req> for Telemetry<S> {
    type Response = Rsp;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Rsp, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let start = Instant::now();
        let layer = self.layer.clone();
        let log = layer.access_log.then(|| observe::LogFields::of(&req));
        let client = req.extensions().get::<PeerIdentity>().cloned();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let rsp = fut.await?;
            let (parts, body) = rsp.into_parts();
            let exchange = Exchange {
                direction: layer.direction,
                metrics: layer.metrics,
                start,
                status: parts.status,
                grpc_status: grpc_status_in_headers(&parts.headers),
                route: parts.extensions.get::<RouteLabel>().cloned(),
                backend: parts.extensions.get::<BackendLabel>().cloned(),
                authorization: parts
                    .extensions
                    .get::<AuthorizationLabel>()
                    .map(|a| a.0.clone()),
                proxy_error: parts.headers.contains_key(crate::answer::PROXY_ERROR),
                // Inbound: the client's identity; outbound: the endpoint's, once proven.
                peer: parts
                    .extensions
                    .get::<PeerIdentity>()
                    .cloned()
                    .or(client)
                    .and_then(|p| p.0),
                log,
            };
            Ok(Rsp::from_parts(
                parts,
                crate::body::boxed(Observe::new(body, exchange)),
            ))
        })
    }
}
