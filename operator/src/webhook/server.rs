//! The webhook HTTP server: POST routes by path, each a pure function from the request's
//! JSON (an `AdmissionReview` or `ConversionReview`) to the response's JSON, and
//! `GET /healthz`. The transport is a [`Handshake`]: TLS in the cluster
//! ([`super::tls`]), plain TCP in tests. HTTP/1.1 and HTTP/2 are both served.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Body;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::{convert, validate};

/// A webhook: the request body's JSON to the response body's JSON.
pub type Handler = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// The largest request read: an AdmissionReview carries the object and the old object
/// (each up to etcd's 1.5 MiB), plus room.
pub const MAX_BODY: usize = 8 << 20;

/// POST handlers by path (`/validate`).
#[derive(Clone, Default)]
pub struct Routes {
    handlers: BTreeMap<String, Handler>,
}

impl Routes {
    /// `/convert` and `/validate` (add `/inject` with [`Routes::with`]).
    pub fn webhooks() -> Self {
        Self::default()
            .with("/convert", convert::review)
            .with("/validate", validate::review)
    }

    /// Serves `handler` at `POST path` (replacing a handler at the same path).
    pub fn with(
        mut self,
        path: &str,
        handler: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(path.to_owned(), Arc::new(handler));
        self
    }

    /// The paths served, sorted.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Answers one request.
    pub async fn answer<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = req.uri().path().to_owned();
        if path == "/healthz" {
            return text(StatusCode::OK, "ok\n".to_owned());
        }
        let Some(handler) = self.handlers.get(&path).cloned() else {
            let served: Vec<&str> = self.paths().chain(["/healthz"]).collect();
            return text(
                StatusCode::NOT_FOUND,
                format!("no webhook at {path}; served: {}\n", served.join(", ")),
            );
        };
        if req.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("POST a review to {path}\n"),
            );
        }
        let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
        };
        let json: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("{path}: the body is not JSON: {e}\n"),
                );
            }
        };
        let answer = serde_json::to_vec(&handler(json)).expect("JSON values serialize");
        Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(answer)))
            .expect("a valid response")
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// How an accepted connection becomes a byte stream (a TLS handshake, or nothing).
pub trait Handshake: Clone + Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No TLS: tests, or behind a proxy that terminates TLS.
#[derive(Clone, Copy, Debug)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;

    async fn handshake(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `routes` on every connection of `listener`, forever. A failed handshake ends
/// its connection only (the API server retries).
pub async fn serve_with<H: Handshake>(listener: TcpListener, handshake: H, routes: Routes) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (handshake, routes) = (handshake.clone(), routes.clone());
        tokio::spawn(async move {
            let Ok(io) = handshake.handshake(tcp).await else {
                return;
            };
            let service = service_fn(move |req| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(routes.answer(req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(io), service)
                .await;
        });
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
pub(super) mod tests;
