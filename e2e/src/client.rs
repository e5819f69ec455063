//! HTTP clients for tests, talking to the proxy the way an application does.
//!
//! - [`Http1Conn`]: ONE keep-alive HTTP/1.1 connection, so a test can send several requests
//!   on the same connection (hot config reload must apply to connections already open).
//! - [`Http2Conn`]: an HTTP/2 prior-knowledge connection (no upgrade, no TLS).
//! - [`load`]: many requests over several keep-alive connections at once, for distributions.
//! - [`get`]: a one-shot request on a fresh connection (admin endpoints).
//!
//! Requests are built with [`request`], which sets the `Host` header (the authority the proxy
//! routes by) and an origin-form URI; [`Http2Conn`] turns that into `:authority`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Error type of request bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body type every client here sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// How long any single request may take before the client gives up (a hung proxy must fail
/// the test, not wedge it).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// The header the proxy puts on every answer it makes itself.
pub const PROXY_ERROR_HEADER: &str = "trellis-proxy-error";

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// A body of known length (sent with `content-length`).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body of unknown length, sent as HTTP/1.1 chunks (one per item, `pause` apart so they
/// leave the client as separate chunks).
pub fn chunked(chunks: Vec<Bytes>, pause: Duration) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
    tokio::spawn(async move {
        for chunk in chunks {
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}

/// A request builder for `method authority path`: origin-form URI and a `Host` header.
pub fn request(method: Method, authority: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, authority)
}

/// `GET authority path` with an empty body.
pub fn get_request(authority: &str, path: &str) -> Request<Body> {
    request(Method::GET, authority, path)
        .body(empty())
        .expect("a valid request")
}

/// A response with its whole body read.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Trailers (gRPC status on HTTP/2), if any.
    pub trailers: Option<HeaderMap>,
    /// From sending the request to the end of the response body.
    pub elapsed: Duration,
}

impl Reply {
    /// The body as text (backends answer with their name).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `trellis-proxy-error` header: set when the proxy answered itself.
    pub fn proxy_error(&self) -> Option<String> {
        self.headers
            .get(PROXY_ERROR_HEADER)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Whether this is an answer the proxy made itself with `status`, as docs/proxy.md
    /// describes them for HTTP: the `trellis-proxy-error` header and the reason as the body.
    pub fn is_proxy_answer(&self, status: u16) -> bool {
        self.status.as_u16() == status
            && self
                .proxy_error()
                .is_some_and(|reason| !reason.is_empty() && self.text().contains(reason.trim()))
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    async fn read(response: Response<Incoming>, started: Instant) -> anyhow::Result<Reply> {
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.context("reading the response body")?;
        let trailers = collected.trailers().cloned();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
            elapsed: started.elapsed(),
        })
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {:?}", self.status, self.headers, self.text())
    }
}

/// One HTTP/1.1 keep-alive connection. Requests are sent one after the other on it.
pub struct Http1Conn {
    sender: hyper::client::conn::http1::SendRequest<Body>,
    local: SocketAddr,
    task: JoinHandle<()>,
}

impl Http1Conn {
    /// Connects to `addr` (the proxy's outbound listener, usually).
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Self::handshake_on(stream).await
    }

    /// Connects to `addr` from a chosen loopback source address (`127.0.0.N`), so one test
    /// can play several clients with different IPs.
    pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> anyhow::Result<Self> {
        let socket = if source.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.bind(SocketAddr::new(source, 0))?;
        let stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connecting to {addr} from {source}"))?;
        Self::handshake_on(stream).await
    }

    /// Connects to a proxy's inbound listener over mTLS as a meshed peer does: `tls`
    /// proves our identity, the server must prove `expected` (a SPIFFE id).
    pub async fn connect_mtls(
        addr: SocketAddr,
        tls: &trellis_proxy::tls::Tls,
        expected: &str,
    ) -> anyhow::Result<Self> {
        let expected = expected.parse()?;
        let stream = trellis_proxy::connect::mesh::connect_tls(
            Some(tls),
            addr,
            &expected,
            Duration::from_secs(5),
        )
        .await
        .map_err(|e| anyhow::anyhow!("mTLS to {addr}: {e}"))?;
        let local = stream.get_ref().0.local_addr()?;
        Self::handshake_io(stream, local).await
    }

    /// Speaks HTTP/1.1 on a connection already made.
    pub async fn handshake_on(stream: TcpStream) -> anyhow::Result<Self> {
        stream.set_nodelay(true)?;
        let local = stream.local_addr()?;
        Self::handshake_io(stream, local).await
    }

    async fn handshake_io<I>(io: I, local: SocketAddr) -> anyhow::Result<Self>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        let task = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(Http1Conn {
            sender,
            local,
            task,
        })
    }

    /// The client side address of the connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether the connection was closed (by either side).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends a request and returns the response head with the body still streaming
    /// (for upgrades).
    pub async fn send_raw(&mut self, req: Request<Body>) -> anyhow::Result<Response<Incoming>> {
        self.sender
            .ready()
            .await
            .context("the connection is no longer usable")?;
        tokio::time::timeout(REQUEST_TIMEOUT, self.sender.send_request(req))
            .await
            .map_err(|_| anyhow!("no response within {REQUEST_TIMEOUT:?}"))?
            .context("sending the request")
    }

    /// Sends a request and reads the whole response.
    pub async fn send(&mut self, req: Request<Body>) -> anyhow::Result<Reply> {
        let started = Instant::now();
        let response = self.send_raw(req).await?;
        tokio::time::timeout(REQUEST_TIMEOUT, Reply::read(response, started))
            .await
            .map_err(|_| anyhow!("response body not finished within {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path` with `Host: authority`.
    pub async fn get(&mut self, authority: &str, path: &str) -> anyhow::Result<Reply> {
        self.send(get_request(authority, path)).await
    }
}

impl Drop for Http1Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One HTTP/2 connection with prior knowledge (the client starts with the h2 preface).
/// Clones share the connection, so requests can run concurrently as streams on it.
#[derive(Clone)]
pub struct Http2Conn {
    sender: hyper::client::conn::http2::SendRequest<Body>,
    _task: Arc<AbortOnDrop>,
}

/// Aborts a task when the last owner lets go.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Http2Conn {
    /// Connects to `addr` and performs the HTTP/2 handshake.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Http2Conn {
            sender,
            _task: Arc::new(AbortOnDrop(task)),
        })
    }

    /// Sends a request built with [`request`]: its `Host` header becomes `:authority`.
    pub async fn send(&mut self, req: Request<Body>) -> anyhow::Result<Reply> {
        let (mut parts, body) = req.into_parts();
        let authority = parts
            .headers
            .remove(header::HOST)
            .context("the request names no Host")?;
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = format!("http://{}{path}", authority.to_str()?).parse()?;
        self.sender
            .ready()
            .await
            .context("the connection is no longer usable")?;
        let started = Instant::now();
        let fut = async {
            let response = self
                .sender
                .send_request(Request::from_parts(parts, body))
                .await?;
            Reply::read(response, started).await
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("no response within {REQUEST_TIMEOUT:?}"))?
    }

    /// `GET path` on `authority`.
    pub async fn get(&mut self, authority: &str, path: &str) -> anyhow::Result<Reply> {
        self.send(get_request(authority, path)).await
    }
}

/// A one-shot request on a fresh HTTP/1.1 connection.
pub async fn send_once(addr: SocketAddr, req: Request<Body>) -> anyhow::Result<Reply> {
    Http1Conn::connect(addr).await?.send(req).await
}

/// `GET path` on a fresh connection to `addr`, with `Host: addr` (admin endpoints).
pub async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<Reply> {
    send_once(addr, get_request(&addr.to_string(), path)).await
}

/// Sends `total` requests to `addr` over `concurrency` keep-alive connections at once;
/// `make(i)` builds request `i`. Returns the outcome of every request, in order of `i`.
/// A connection that fails is replaced for the next request.
pub async fn load<F>(
    addr: SocketAddr,
    total: usize,
    concurrency: usize,
    make: F,
) -> Vec<anyhow::Result<Reply>>
where
    F: Fn(usize) -> Request<Body> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let make = make.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut done = Vec::new();
            let mut conn: Option<Http1Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return done;
                }
                if conn.as_ref().is_none_or(Http1Conn::is_closed) {
                    conn = match Http1Conn::connect(addr).await {
                        Ok(c) => Some(c),
                        Err(e) => {
                            done.push((i, Err(e)));
                            continue;
                        }
                    };
                }
                let c = conn.as_mut().expect("connected above");
                let outcome = c.send(make(i)).await;
                if outcome.is_err() {
                    conn = None;
                }
                done.push((i, outcome));
            }
        }));
    }
    let mut all = Vec::with_capacity(total);
    for w in workers {
        all.extend(w.await.expect("a load worker panicked"));
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, r)| r).collect()
}

/// What a batch of requests came back as: `"200 backend-a"`, `"503"`, `"error"` and how often.
pub fn tally(replies: &[anyhow::Result<Reply>]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        let key = match r {
            Ok(r) if r.status == StatusCode::OK => format!("200 {}", r.text()),
            Ok(r) => r.status.as_str().to_owned(),
            Err(_) => "error".to_owned(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}

/// How many replies are `200` with body `backend` (the backend's name).
pub fn served_by(replies: &[anyhow::Result<Reply>], backend: &str) -> usize {
    replies
        .iter()
        .filter(
            |r| matches!(r, Ok(r) if r.status == StatusCode::OK && r.body == backend.as_bytes()),
        )
        .count()
}

/// How many replies have this status.
pub fn with_status(replies: &[anyhow::Result<Reply>], status: u16) -> usize {
    replies
        .iter()
        .filter(|r| matches!(r, Ok(r) if r.status.as_u16() == status))
        .count()
}
