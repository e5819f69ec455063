//! The operator's admin endpoint: `/metrics`, `/ready`, `/live`, `/status` (JSON: every
//! resource with its conditions, sources, workloads, canary runs and proxy watches; what
//! `trellis status` shows) and `POST /hooks/git` (the Git source's sync trigger).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::canary::controller::SharedViews;
use crate::compile::conditions::conditions;
use crate::discovery::Subscriptions;
use crate::index::Index;
use crate::metrics::Metrics;
use crate::source::SharedStatus;
use crate::source::git::webhook;

#[derive(Clone)]
pub struct Admin {
    pub index: Index,
    pub metrics: Arc<Metrics>,
    pub subscriptions: Arc<Subscriptions>,
    pub sources: Vec<SharedStatus>,
    /// The Git source's trigger, when there is one.
    pub git_hook: Option<GitHook>,
    /// The canary controller's view of every Canary.
    pub canaries: SharedViews,
}

/// `POST /hooks/git`: wakes the Git source when the caller proves the shared secret.
#[derive(Clone)]
pub struct GitHook {
    /// Re-read at every call (a rotated secret needs no restart); `None`: hooks refused.
    pub secret_file: Option<PathBuf>,
    pub trigger: Arc<Notify>,
}

/// The largest webhook body read (GitHub's push payloads stay well under this).
const MAX_HOOK_BODY: usize = 1 << 20;

impl Admin {
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.uri().path() == "/hooks/git" {
            return self.hook(req).await;
        }
        match req.uri().path() {
            "/metrics" => {
                self.refresh_gauges();
                text(StatusCode::OK, self.metrics.render())
            }
            "/live" => text(StatusCode::OK, "live\n".into()),
            "/ready" => match self.not_ready() {
                None => text(StatusCode::OK, "ready\n".into()),
                Some(why) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {why}\n"),
                ),
            },
            "/status" => {
                let body =
                    serde_json::to_vec_pretty(&self.status()).expect("JSON values serialize");
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .expect("a valid response")
            }
            path => text(
                StatusCode::NOT_FOUND,
                format!("no page {path}; try /status, /metrics, /ready or /live\n"),
            ),
        }
    }

    async fn hook(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(hook) = &self.git_hook else {
            return text(
                StatusCode::NOT_FOUND,
                "no Git source: start the operator with --git to use /hooks/git\n".into(),
            );
        };
        if req.method() != Method::POST {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST a push event to /hooks/git\n".into(),
            );
        }
        let Some(secret_file) = &hook.secret_file else {
            return text(
                StatusCode::FORBIDDEN,
                "webhooks are off: start the operator with --git-webhook-secret-file\n".into(),
            );
        };
        let secret = match std::fs::read_to_string(secret_file) {
            Ok(s) => s.trim().to_owned(),
            Err(e) => {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "cannot read the webhook secret {}: {e}\n",
                        secret_file.display()
                    ),
                );
            }
        };
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, MAX_HOOK_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
        };
        if let Err(refused) = webhook::verify(secret.as_bytes(), &parts.headers, &body) {
            return text(StatusCode::UNAUTHORIZED, format!("{refused}\n"));
        }
        if webhook::is_ping(&parts.headers) {
            return text(StatusCode::OK, "pong\n".into());
        }
        hook.trigger.notify_one();
        text(StatusCode::ACCEPTED, "sync triggered\n".into())
    }

    /// Why the operator should not get traffic yet: a source never synced.
    fn not_ready(&self) -> Option<String> {
        let waiting: Vec<String> = self
            .sources
            .iter()
            .filter_map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                (!s.synced).then(|| match s.errors.first() {
                    Some(e) => format!("source {} ({}) not synced yet: {e}", s.name, s.location),
                    None => format!("source {} ({}) not synced yet", s.name, s.location),
                })
            })
            .collect();
        (!waiting.is_empty()).then(|| waiting.join("; "))
    }

    fn refresh_gauges(&self) {
        let snapshot = self.index.snapshot();
        self.metrics.index_revision.set(snapshot.revision as i64);
        self.metrics.workloads.set(snapshot.workload_count() as i64);
        self.metrics.resources.reset();
        for (r, status) in snapshot.statuses() {
            self.metrics
                .resources
                .with_label_values(&[r.kind, if status.accepted { "true" } else { "false" }])
                .inc();
        }
    }

    /// The JSON `trellis status` reads.
    pub fn status(&self) -> Value {
        let snapshot = self.index.snapshot();
        let sources: Vec<Value> = self
            .sources
            .iter()
            .map(|s| {
                serde_json::to_value(&*s.lock().unwrap_or_else(|e| e.into_inner()))
                    .unwrap_or_default()
            })
            .collect();
        let resources: Vec<Value> = conditions(&snapshot)
            .into_iter()
            .map(|r| {
                json!({
                    "kind": r.resource.kind,
                    "namespace": r.resource.namespace.as_deref(),
                    "name": &*r.resource.name,
                    "origin": r.origin,
                    "conditions": r.conditions,
                })
            })
            .collect();
        let workloads: Vec<Value> = snapshot
            .workloads()
            .into_iter()
            .map(|w| {
                json!({
                    "namespace": &*w.key.namespace,
                    "name": &*w.key.name,
                    "serviceAccount": w.service_account,
                    "labels": &*w.labels,
                    "addresses": w.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "inboundPort": w.inbound_port,
                    "ready": w.ready,
                })
            })
            .collect();
        json!({
            "revision": snapshot.revision,
            "ready": self.not_ready().is_none(),
            "sources": sources,
            "counts": {
                "services": snapshot.service_count(),
                "endpoints": snapshot.endpoint_count(),
                "workloads": snapshot.workload_count(),
                "subscriptions": self.subscriptions.len(),
            },
            "resources": resources,
            "workloads": workloads,
            "canaries": &*self.canaries.lock().unwrap_or_else(|e| e.into_inner()),
            "subscriptions": self.subscriptions.list(),
        })
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
