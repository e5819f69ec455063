//! The demo app's HTTP/1.1 server: each request goes to one handler by its path (the
//! folder's diagram). The behaviour in force sits in a `watch` channel: `POST
//! /_demo/config` is its one writer, every request reads a copy.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::call::{self, Call};
use super::{Behaviour, Settings, headers, paths, query};

/// The `error` of an injected 500.
pub const INJECTED_ERROR: &str = "injected by --error-rate";

pub struct App {
    name: String,
    version: String,
    proxy: Option<SocketAddr>,
    behaviour: watch::Sender<Behaviour>,
    stats: Stats,
}

/// What `/_demo/stats` shows: answers of the catch-all handler, and how many were 500s.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: AtomicU64,
}

/// The catch-all handler's JSON answer.
#[derive(Serialize)]
struct Echo<'a> {
    name: &'a str,
    version: &'a str,
    method: &'a str,
    path: &'a str,
    /// The `Host` header as received: what a proxy in between routed by.
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl App {
    pub fn new(settings: Settings) -> Arc<App> {
        Arc::new(App {
            name: settings.name,
            version: settings.version,
            proxy: settings.proxy,
            behaviour: watch::Sender::new(settings.behaviour),
            stats: Stats::default(),
        })
    }

    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let app = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(app.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            paths::HEALTHZ => text(StatusCode::OK, "ok\n".into()),
            paths::CALL => self.call(&req).await,
            paths::CONFIG => self.config(&req),
            paths::STATS => self.stats(&req),
            _ => self.echo(&req).await,
        }
    }

    /// Any other path: wait the latency, then 200, or 500 at the error rate.
    async fn echo(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let behaviour = *self.behaviour.borrow();
        if !behaviour.latency.is_zero() {
            tokio::time::sleep(behaviour.latency).await;
        }
        let fails = behaviour.fails(fastrand::f64());
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if fails {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
        }
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .or_else(|| req.uri().authority().map(ToString::to_string))
            .unwrap_or_default();
        let echo = Echo {
            name: &self.name,
            version: &self.version,
            method: req.method().as_str(),
            path: req.uri().path(),
            host: &host,
            error: fails.then_some(INJECTED_ERROR),
        };
        let status = if fails {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        };
        let mut rsp = json(status, &echo);
        for (name, value) in [
            (headers::NAME, &self.name),
            (headers::VERSION, &self.version),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                rsp.headers_mut().insert(name, value);
            }
        }
        rsp
    }

    /// `/call`: the upstream's status and body, or 502 saying what failed.
    async fn call(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let call = match Call::from_query(&query::parse(req.uri().query())) {
            Ok(call) => call,
            Err(bad) => return text(StatusCode::BAD_REQUEST, format!("{bad}\n")),
        };
        match call::send(&call, self.proxy).await {
            Ok(upstream) => {
                let mut rsp = Response::builder()
                    .status(upstream.status)
                    .header(headers::UPSTREAM_STATUS, upstream.status.as_u16());
                for name in [
                    header::CONTENT_TYPE.as_str(),
                    headers::NAME,
                    headers::VERSION,
                    headers::PROXY_ERROR,
                ] {
                    if let Some(value) = upstream.headers.get(name) {
                        rsp = rsp.header(name, value);
                    }
                }
                rsp.body(Full::new(upstream.body))
                    .expect("a response from a received one")
            }
            Err(e) => {
                let message = format!("/call {} {} failed: {e}", call.method, call.url());
                eprintln!("trellis demo-app: {message}");
                text(StatusCode::BAD_GATEWAY, format!("{message}\n"))
            }
        }
    }

    /// `GET /_demo/config` shows the behaviour; `POST ?error-rate=..&latency=..` changes it.
    fn config(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        match *req.method() {
            Method::GET => {}
            Method::POST => {
                let pairs = query::parse(req.uri().query());
                let changes = pairs.iter().map(|(n, v)| (n.as_str(), v.as_str()));
                let mut outcome = Ok(());
                self.behaviour
                    .send_if_modified(|b| match b.updated(changes) {
                        Ok(next) => {
                            *b = next;
                            true
                        }
                        Err(bad) => {
                            outcome = Err(bad);
                            false
                        }
                    });
                if let Err(bad) = outcome {
                    return text(StatusCode::BAD_REQUEST, format!("{bad}\n"));
                }
                eprintln!(
                    "trellis demo-app: config is now {}",
                    self.behaviour.borrow().to_json()
                );
            }
            _ => {
                return method_not_allowed(
                    "GET, POST",
                    "GET /_demo/config shows the config; \
                     POST /_demo/config?error-rate=0.5&latency=100ms changes it",
                );
            }
        }
        let shown = self.behaviour.borrow().to_json();
        json_text(StatusCode::OK, shown)
    }

    /// `GET /_demo/stats`: `{"requests":N,"errors":M}`.
    fn stats(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET {
            return method_not_allowed("GET", "GET /_demo/stats shows the counts");
        }
        #[derive(Serialize)]
        struct Shown {
            requests: u64,
            errors: u64,
        }
        let shown = Shown {
            requests: self.stats.requests.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
        };
        json(StatusCode::OK, &shown)
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// `value` as JSON and a newline.
fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    json_text(
        status,
        serde_json::to_string(value).expect("strings and numbers serialize"),
    )
}

fn json_text(status: StatusCode, mut body: String) -> Response<Full<Bytes>> {
    body.push('\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

fn method_not_allowed(allow: &'static str, hint: &str) -> Response<Full<Bytes>> {
    let mut rsp = text(StatusCode::METHOD_NOT_ALLOWED, format!("{hint}\n"));
    rsp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    rsp
}
