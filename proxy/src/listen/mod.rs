//! Listeners: accept, detect the protocol on the first bytes, then serve HTTP/1.1 (with
//! upgrades) or HTTP/2 through the direction's HTTP stack, or forward opaque TCP.
//!
//! ```text
//! accept -> count -> detect -> HTTP/1.1 | HTTP/2 -> stack (outbound::stack | inbound::stack)
//!                           -> opaque -> forward to the opaque target (inbound: the app;
//!                                        outbound: the original destination, if intercepted)
//! ```
//!
//! A connection redirected by iptables (`trellis-proxy init`) carries its original
//! destination ([`original_dst`]), put on each of its requests as [`OriginalDst`].
//!
//! On shutdown the accept loop stops at once; connections in flight are told to finish
//! (HTTP/1 closes after the current response, HTTP/2 sends GOAWAY), and [`Drain`] tells
//! when the last one has.

mod detect;
mod io;
mod original_dst;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::Service;

pub use detect::{Protocol, detect};
use io::{Counted, Prefixed};
pub use original_dst::{OriginalDst, original_dst};

use crate::body;
use crate::inbound::enforce::Policy;
use crate::outbound::HttpStack;
use crate::telemetry::{ClientAddr, Direction, LocalPort, Metrics};

/// How long a connection may stay silent before detection gives up on it.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Shutdown for connections: a signal to finish, and a token each connection holds until
/// it has; [`Drain::finished`] resolves when every token is gone.
#[derive(Clone)]
pub struct Drain {
    signal: watch::Receiver<bool>,
    _token: mpsc::Sender<()>,
}

/// The side that starts a drain and waits for it.
pub struct DrainControl {
    signal: watch::Sender<bool>,
    done: mpsc::Receiver<()>,
}

impl Drain {
    pub fn new() -> (Drain, DrainControl) {
        let (signal_tx, signal) = watch::channel(false);
        let (token, done) = mpsc::channel(1);
        (
            Drain {
                signal,
                _token: token,
            },
            DrainControl {
                signal: signal_tx,
                done,
            },
        )
    }

    async fn signalled(&mut self) {
        let _ = self.signal.wait_for(|s| *s).await;
    }
}

impl DrainControl {
    /// Signals every listener and connection, then waits until all connections closed.
    /// Drop every [`Drain`] handed out before awaiting this.
    pub async fn drain(mut self) {
        let _ = self.signal.send(true);
        let _ = self.done.recv().await;
    }
}

/// What a listener serves.
#[derive(Clone)]
pub struct Listener {
    pub direction: Direction,
    pub stack: HttpStack,
    /// Where opaque TCP goes; `None`: opaque connections are closed (explicit outbound
    /// mode has no destination for them).
    pub opaque_target: Option<SocketAddr>,
    /// Inbound: the policy opaque TCP connections are checked against (HTTP requests are
    /// checked by the stack's authorize layer).
    pub inbound_policy: Option<Policy>,
    pub metrics: Arc<Metrics>,
}

impl Listener {
    /// Accepts until `stop` turns true.
    pub async fn run(self, listener: TcpListener, drain: Drain) {
        let mut stop = drain.clone();
        loop {
            tokio::select! {
                _ = stop.signalled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let this = self.clone();
                        let drain = drain.clone();
                        tokio::spawn(async move { this.serve(stream, peer, drain).await });
                    }
                    Err(e) => {
                        eprintln!("trellis-proxy: {} accept failed: {e}", self.direction.as_str());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
    }

    async fn serve(self, stream: TcpStream, peer: SocketAddr, mut drain: Drain) {
        let direction = self.direction.as_str();
        let _ = stream.set_nodelay(true);
        let original = stream
            .local_addr()
            .ok()
            .and_then(|local| original_dst(&stream, local));
        // Opaque TCP goes to the original destination when outbound traffic was
        // intercepted (passthrough for now; later resolved through Discovery by address).
        let opaque_target = match self.direction {
            Direction::Outbound => original.or(self.opaque_target),
            Direction::Inbound => self.opaque_target,
        };
        // Inbound: the port the client called, which the policy is keyed by: the original
        // destination's when intercepted, else the app's (where the proxy forwards).
        let local_port = match self.direction {
            Direction::Outbound => None,
            Direction::Inbound => original.or(self.opaque_target).map(|a| a.port()),
        };
        let open = self.metrics.tcp_open.with_label_values(&[direction]);
        open.inc();
        let _open = scopeguard(move || open.dec());
        let mut stream = Counted::new(
            stream,
            self.metrics.tcp_read_bytes.with_label_values(&[direction]),
            self.metrics.tcp_write_bytes.with_label_values(&[direction]),
        );
        let mut buf = BytesMut::with_capacity(1024);
        let protocol = loop {
            match tokio::time::timeout(DETECT_TIMEOUT, stream.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {
                    if let Some(p) = detect(&buf) {
                        break p;
                    }
                }
                Err(_) if buf.is_empty() && opaque_target.is_some() => {
                    break Protocol::Opaque;
                }
                Err(_) => return,
            }
        };
        self.metrics
            .tcp_connections
            .with_label_values(&[direction, protocol.as_str()])
            .inc();
        let io = Prefixed::new(buf.freeze(), stream);
        let stack = self.stack.clone();
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let mut req = req.map(body::boxed);
            req.extensions_mut().insert(ClientAddr(peer));
            if let Some(port) = local_port {
                req.extensions_mut().insert(LocalPort(port));
            }
            if let Some(original) = original {
                req.extensions_mut().insert(OriginalDst(original));
            }
            stack.clone().call(req)
        });
        match protocol {
            Protocol::Http1 => {
                let conn = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades();
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = drain.signalled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            }
            Protocol::Http2 => {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(io), service);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    _ = drain.signalled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            }
            Protocol::Opaque => {
                let Some(target) = opaque_target else {
                    eprintln!(
                        "trellis-proxy: {direction} connection from {peer} is not HTTP and has no destination; closed (opaque TCP needs the original destination)"
                    );
                    return;
                };
                if let Some(policy) = &self.inbound_policy
                    && !policy.allows_connection(local_port.unwrap_or(0), None, peer)
                {
                    return; // Closed after accept; counted and logged by the policy.
                }
                forward_opaque(io, target).await;
            }
        }
    }
}

/// Copies bytes both ways between the client and `target` until either side closes.
async fn forward_opaque(mut client: Prefixed<Counted<TcpStream>>, target: SocketAddr) {
    match TcpStream::connect(target).await {
        Ok(mut server) => {
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Err(e) => eprintln!("trellis-proxy: opaque connection to {target} failed: {e}"),
    }
}

/// Runs `f` when dropped.
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
