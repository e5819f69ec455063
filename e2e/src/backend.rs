//! Scripted test servers on `127.0.0.1:0`, standing in for the services the proxy sends to.
//!
//! [`Backend`] speaks HTTP/1.1 and HTTP/2 (hyper-util's auto server), answers with its own
//! name as the body (`backend-a`) and an `x-backend` header, records every request it
//! receives, and can be scripted while the test runs: a fixed delay, a sequence of statuses
//! for the next requests, a status for every request, holding requests until released.
//! The status [`RESET`] (0) means no answer at all: the connection is dropped (a crashed
//! process, a reset).
//!
//! Some paths behave differently:
//! - `/echo...`: the response body is the request body.
//! - `/stream...`: the response body is streamed: `chunk-1\n` at once, then `chunk-2\n` and
//!   `chunk-3\n` only after [`Backend::release_streams`].
//! - any request with `Upgrade: websocket` gets `101 Switching Protocols` and the connection
//!   then echoes bytes.
//!
//! [`TcpEcho`] is a raw TCP echo server (opaque traffic).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// The scripted "status" that drops the connection instead of answering.
pub const RESET: u16 = 0;

/// A request as the backend received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When the request head arrived.
    pub at: Instant,
    /// The peer (the proxy's connection to this backend).
    pub peer: SocketAddr,
}

impl Recorded {
    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

#[derive(Debug)]
struct Script {
    status: u16,
    delay: Duration,
    next_statuses: VecDeque<u16>,
    next_delays: VecDeque<Duration>,
}

struct State {
    name: String,
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    arrived: AtomicUsize,
    in_flight: AtomicUsize,
    connections: AtomicUsize,
    held: watch::Sender<bool>,
    streams_released: watch::Sender<bool>,
}

type ResponseBody = BoxBody<Bytes, Infallible>;

fn full_body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A scripted HTTP/1.1 + HTTP/2 server. Stops when dropped.
pub struct Backend {
    addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Backend {
    /// Starts a backend that answers `200 <name>` to everything.
    pub async fn start(name: &str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a backend on loopback");
        Self::serve(name, listener)
    }

    /// Starts a backend on `addr`, e.g. where another one was just dropped (a restart);
    /// retries binding for up to 2 s while the old socket closes.
    pub async fn start_on(name: &str, addr: SocketAddr) -> Backend {
        let deadline = Instant::now() + Duration::from_secs(2);
        let listener = loop {
            match TcpListener::bind(addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() > deadline => panic!("binding {addr} again: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        Self::serve(name, listener)
    }

    fn serve(name: &str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().expect("a bound address");
        let state = Arc::new(State {
            name: name.to_owned(),
            script: Mutex::new(Script {
                status: 200,
                delay: Duration::ZERO,
                next_statuses: VecDeque::new(),
                next_delays: VecDeque::new(),
            }),
            requests: Mutex::new(Vec::new()),
            arrived: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            held: watch::channel(false).0,
            streams_released: watch::channel(false).0,
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Backend { addr, state, task }
    }

    /// Starts a backend that takes `delay` to answer every request.
    pub async fn slow(name: &str, delay: Duration) -> Backend {
        let b = Backend::start(name).await;
        b.set_delay(delay);
        b
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name (the response body).
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Every request from now on waits `delay` before its answer.
    pub fn set_delay(&self, delay: Duration) {
        self.state.script.lock().unwrap().delay = delay;
    }

    /// Every request from now on (after any [`Backend::push_statuses`]) gets `status`.
    /// `set_status(503)` makes the backend fail always; `set_status(200)` heals it.
    pub fn set_status(&self, status: u16) {
        self.state.script.lock().unwrap().status = status;
    }

    /// The next requests get these statuses, one each, in order; then the usual status.
    pub fn push_statuses(&self, statuses: impl IntoIterator<Item = u16>) {
        self.state
            .script
            .lock()
            .unwrap()
            .next_statuses
            .extend(statuses);
    }

    /// The next requests wait these delays, one each, in order; then the usual delay.
    pub fn push_delays(&self, delays: impl IntoIterator<Item = Duration>) {
        self.state.script.lock().unwrap().next_delays.extend(delays);
    }

    /// Requests arriving from now on are held (not answered) until [`Backend::release`].
    pub fn hold(&self) {
        self.state.held.send_replace(true);
    }

    /// Answers every held request and stops holding.
    pub fn release(&self) {
        self.state.held.send_replace(false);
    }

    /// Lets `/stream` responses send the rest of their body.
    pub fn release_streams(&self) {
        self.state.streams_released.send_replace(true);
    }

    /// How many requests arrived (counted when the head arrives).
    pub fn count(&self) -> usize {
        self.state.arrived.load(Ordering::SeqCst)
    }

    /// Requests being handled right now (held or delayed).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Every request whose body was read completely, in order of arrival.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Forgets the requests received so far (counts restart at 0).
    pub fn reset(&self) {
        self.state.requests.lock().unwrap().clear();
        self.state.arrived.store(0, Ordering::SeqCst);
    }

    /// Waits until at least `n` requests arrived; false after `timeout`.
    pub async fn wait_for_count(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Waits until `n` requests are in flight (e.g. held); false after `timeout`.
    pub async fn wait_for_in_flight(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.in_flight() < n {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    // Connections live in the set: dropping it (when the task is aborted) closes them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), peer, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Box<dyn std::error::Error + Send + Sync>> {
    let at = Instant::now();
    state.arrived.fetch_add(1, Ordering::SeqCst);
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&state.in_flight);
    let (status, delay) = {
        let mut script = state.script.lock().unwrap();
        let status = script.next_statuses.pop_front().unwrap_or(script.status);
        let delay = script.next_delays.pop_front().unwrap_or(script.delay);
        (status, delay)
    };

    let is_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let on_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut req));

    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::from_static(b"<body error>"),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.to_string(), |p| p.to_string());
    state.requests.lock().unwrap().push(Recorded {
        method: parts.method,
        path: path.clone(),
        version: parts.version,
        headers: parts.headers,
        body: body.clone(),
        at,
        peer,
    });

    if let Some(on_upgrade) = on_upgrade {
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let mut io = TokioIo::new(upgraded);
                let mut buf = [0u8; 4096];
                loop {
                    match io.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        });
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "upgrade")
            .header("x-backend", state.name.as_str())
            .body(full_body(Bytes::new()))
            .expect("a valid response");
        return Ok(response);
    }

    let mut held = state.held.subscribe();
    let _ = held.wait_for(|h| !*h).await;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if status == RESET {
        // An error from the service makes hyper drop the connection without an answer.
        return Err("scripted reset".into());
    }
    let response_body = if path.starts_with("/echo") {
        full_body(body)
    } else if path.starts_with("/stream") {
        streamed(state.streams_released.subscribe())
    } else {
        full_body(state.name.clone())
    };
    let response = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("x-backend", state.name.as_str())
        .header(header::CONTENT_TYPE, "text/plain")
        .body(response_body)
        .expect("a valid response");
    Ok(response)
}

/// `chunk-1\n` now, the rest once `released` turns true.
fn streamed(mut released: watch::Receiver<bool>) -> ResponseBody {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data("chunk-1\n".into()))).await.is_err() {
            return;
        }
        let _ = released.wait_for(|r| *r).await;
        for chunk in ["chunk-2\n", "chunk-3\n"] {
            if tx.send(Ok(Frame::data(chunk.into()))).await.is_err() {
                return;
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}

/// A loopback address where nothing listens (connections are refused): a port that was
/// bound a moment ago and released.
pub fn refusing_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("a bound address")
}

/// A raw TCP echo server: every byte received is sent back. Stops when dropped.
pub struct TcpEcho {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl TcpEcho {
    /// Starts the server on `127.0.0.1:0`.
    pub async fn start() -> TcpEcho {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an echo server");
        let addr = listener.local_addr().expect("a bound address");
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            let mut set = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut stream, _)) = accepted else { continue };
                        count.fetch_add(1, Ordering::SeqCst);
                        set.spawn(async move {
                            let (mut r, mut w) = stream.split();
                            let _ = tokio::io::copy(&mut r, &mut w).await;
                        });
                    }
                    Some(_) = set.join_next() => {}
                }
            }
        });
        TcpEcho {
            addr,
            connections,
            task,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
