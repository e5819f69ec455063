//! The admin listener: `/live`, `/ready`, `/config` (the config in force, outbound and
//! inbound, as JSON) and
//! `/metrics` (Prometheus text).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{self, Body};
use crate::store::Store;
use crate::telemetry::Metrics;

#[derive(Clone)]
pub struct Admin {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Set once every listener is bound.
    pub listening: Arc<AtomicBool>,
    /// Local mode: the workload registration's state, once it started.
    pub registration:
        Arc<std::sync::OnceLock<tokio::sync::watch::Receiver<crate::register::State>>>,
}

impl Admin {
    pub async fn run(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(&req)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    fn handle(&self, req: &Request<Incoming>) -> Response<Body> {
        match req.uri().path() {
            "/live" => text(StatusCode::OK, "live\n".into()),
            "/ready" => match self.not_ready() {
                None => text(StatusCode::OK, "ready\n".into()),
                Some(reason) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {reason}\n"),
                ),
            },
            "/metrics" => {
                let mut rsp = text(StatusCode::OK, self.metrics.render());
                rsp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4".parse().expect("valid header"),
                );
                rsp
            }
            "/config" => {
                let mut rsp = Response::new(body::full(self.config_json()));
                rsp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    "application/json".parse().expect("valid header"),
                );
                rsp
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /ready, /live or /config\n".into(),
            ),
        }
    }

    fn not_ready(&self) -> Option<String> {
        if !self.listening.load(Ordering::Relaxed) {
            return Some("listeners are not bound yet".into());
        }
        let s = self.store.snapshot();
        s.not_ready.clone().or_else(|| s.identity.not_ready.clone())
    }

    fn config_json(&self) -> String {
        let s = self.store.snapshot();
        let outbound: Vec<_> = s
            .outbound
            .iter()
            .map(|(authority, dest)| {
                serde_json::json!({
                    "authority": authority,
                    "version": dest.config.version,
                    "applied_at": unix(dest.applied_at),
                    "config": dest.source,
                })
            })
            .collect();
        let rejected: Vec<_> = s
            .rejected
            .iter()
            .map(|(authority, r)| {
                serde_json::json!({
                    "authority": authority,
                    "version": r.version,
                    "reason": r.reason,
                    "at": unix(r.at),
                })
            })
            .collect();
        let inbound = s.inbound.as_ref().map(|policy| {
            serde_json::json!({
                "version": policy.config.version,
                "applied_at": unix(policy.applied_at),
                "config": policy.source,
            })
        });
        let identity = serde_json::json!({
            "id": s.identity.id,
            "valid_until": s.identity.valid_until.map(unix),
            "renew_at": s.identity.renew_at.map(unix),
            "last_error": s.identity.last_error,
        });
        let doc = serde_json::json!({
            "source": s.source,
            "identity": identity,
            "ready": self.not_ready().is_none(),
            "not_ready": self.not_ready(),
            "outbound": outbound,
            "inbound": inbound,
            "rejected": rejected,
            "registration": self.registration.get().map(|r| r.borrow().json()),
        });
        serde_json::to_string_pretty(&doc).expect("JSON") + "\n"
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut rsp = Response::new(body::full(body));
    *rsp.status_mut() = status;
    rsp
}
