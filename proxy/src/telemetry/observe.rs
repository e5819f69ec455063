//! A response body that reports the exchange once it ends: at the last frame, with the
//! gRPC status from the trailers, or when the client goes away (dropped).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;
use http_body::{Body as _, Frame, SizeHint};

use super::{BackendLabel, ClientAddr, Direction, Metrics, RouteLabel, trace};
use crate::body::{Body, BoxError, Req};

/// What the access log needs from the request.
pub struct LogFields {
    method: String,
    authority: String,
    path: String,
    client: Option<String>,
    trace_id: Option<String>,
}

impl LogFields {
    pub fn of(req: &Req) -> Self {
        Self {
            method: req.method().to_string(),
            authority: crate::outbound::authority_of(req).unwrap_or_default(),
            path: req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned(),
            client: req
                .extensions()
                .get::<ClientAddr>()
                .map(|c| c.0.to_string()),
            trace_id: trace::trace_id(req.headers()),
        }
    }
}

/// One request/response exchange, finished when the response body ends.
pub struct Exchange {
    pub direction: Direction,
    pub metrics: Arc<Metrics>,
    pub start: Instant,
    pub status: StatusCode,
    pub grpc_status: Option<u32>,
    pub route: Option<RouteLabel>,
    pub backend: Option<BackendLabel>,
    /// Inbound: the authorization that allowed the request.
    pub authorization: Option<Arc<str>>,
    pub proxy_error: bool,
    /// The other end's SPIFFE id on the meshed hop (mTLS); `None`: plaintext.
    pub peer: Option<Arc<str>>,
    pub log: Option<LogFields>,
}

impl Exchange {
    fn finish(self, trailer_grpc: Option<u32>) {
        let grpc = trailer_grpc.or(self.grpc_status);
        let failure =
            self.status.is_server_error() || grpc.is_some_and(|c| c != 0) || self.proxy_error;
        let classification = if failure { "failure" } else { "success" };
        let authority = self.route.as_ref().map_or("", |r| &r.authority);
        let route = self.route.as_ref().map_or("", |r| &r.route);
        let backend = self.backend.as_ref().map_or("", |b| &b.backend);
        let grpc_label = grpc.map(|c| c.to_string()).unwrap_or_default();
        let direction = self.direction.as_str();
        let elapsed = self.start.elapsed();
        self.metrics
            .requests
            .with_label_values(&[
                direction,
                authority,
                route,
                backend,
                self.status.as_str(),
                &grpc_label,
                classification,
                if self.peer.is_some() { "true" } else { "false" },
                self.peer.as_deref().unwrap_or(""),
            ])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[direction, authority, route, backend, classification])
            .observe(elapsed.as_secs_f64());
        if let Some(log) = self.log {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let line = serde_json::json!({
                "ts": ts,
                "direction": direction,
                "client": log.client,
                "method": log.method,
                "authority": log.authority,
                "path": log.path,
                "route": route,
                "backend": backend,
                "endpoint": self.backend.as_ref().and_then(|b| b.endpoint).map(|e| e.to_string()),
                "status": self.status.as_u16(),
                "grpc_status": grpc,
                "classification": classification,
                "duration_ms": elapsed.as_secs_f64() * 1000.0,
                "trace_id": log.trace_id,
                "authorization": self.authorization.as_deref(),
                "peer_identity": self.peer.as_deref(),
            });
            crate::telemetry::observe::print_line(&line.to_string());
        }
    }
}

pub fn print_line(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The response body, reporting the exchange when it ends.
pub struct Observe {
    inner: Body,
    exchange: Option<Exchange>,
    trailer_grpc: Option<u32>,
}

impl Observe {
    pub fn new(inner: Body, exchange: Exchange) -> Self {
        let mut this = Self {
            inner,
            exchange: Some(exchange),
            trailer_grpc: None,
        };
        if this.inner.is_end_stream() {
            this.finish();
        }
        this
    }

    fn finish(&mut self) {
        if let Some(exchange) = self.exchange.take() {
            exchange.finish(self.trailer_grpc);
        }
    }
}

impl http_body::Body for Observe {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    self.trailer_grpc = crate::answer::grpc_status_in_headers(trailers);
                }
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Observe {
    fn drop(&mut self) {
        self.finish();
    }
}
