//! Listeners: accept, detect the protocol on the first bytes, then serve HTTP/1.1 (with
//! upgrades) or HTTP/2 through the direction's HTTP stack, or forward opaque TCP.
//!
//! ```text
//! accept -> count -> detect -> HTTP/1.1 | HTTP/2 -> stack (outbound::stack | inbound::stack)
//!                           -> opaque -> forward to the opaque target (inbound: the app;
//!                                        outbound: the original destination, if intercepted)
//! ```
//!
//! Inbound, a meshed peer's mTLS (a ClientHello offering the mesh ALPN) is terminated
//! first and detection starts again inside; the client's SPIFFE id goes on every request
//! ([`PeerIdentity`]) and into the opaque TCP check.
//!
//! A connection redirected by iptables (`trellis-proxy init`) carries its original
//! destination ([`original_dst`]), put on each of its requests as [`OriginalDst`].
//!
//! On shutdown the accept loop stops at once; connections in flight are told to finish
//! (HTTP/1 closes after the current response, HTTP/2 sends GOAWAY), and [`Drain`] tells
//! when the last one has.

mod bind;
mod detect;
mod io;
mod original_dst;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::Service;

pub use bind::{bind_dual, ipv6_twin};
pub use detect::{Protocol, detect};
use io::{Counted, Prefixed};
pub use original_dst::{OriginalDst, original_dst};

use crate::body;
use crate::connect::mesh::connect_tls;
use crate::inbound::enforce::Policy;
use crate::outbound::{HttpStack, opaque};
use crate::store::Store;
use crate::telemetry::{ClientAddr, Direction, LocalPort, Metrics, PeerIdentity};
use crate::tls::Tls;

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
    /// This proxy's identity: inbound, terminates meshed peers' mTLS; outbound, originates
    /// it to meshed endpoints of opaque TCP. `None`: mTLS from peers is refused.
    pub tls: Option<Arc<Tls>>,
    /// Outbound: resolves the original destination of intercepted opaque TCP.
    pub resolve: Option<Resolve>,
    pub connect_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// How an outbound listener resolves an intercepted connection's original destination.
#[derive(Clone)]
pub struct Resolve {
    pub store: Store,
    pub wait: Duration,
}

/// What is known about an accepted connection.
#[derive(Clone)]
struct Conn {
    peer: SocketAddr,
    original: Option<SocketAddr>,
    /// Inbound: the port the client called (the policy is keyed by it).
    local_port: Option<u16>,
    /// Inbound: the client's SPIFFE id, proven by mTLS; `None`: a plaintext client.
    identity: Option<Arc<str>>,
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

    async fn serve(self, stream: TcpStream, peer: SocketAddr, drain: Drain) {
        let direction = self.direction.as_str();
        let _ = stream.set_nodelay(true);
        let original = stream
            .local_addr()
            .ok()
            .and_then(|local| original_dst(&stream, local));
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
        let mut conn = Conn {
            peer,
            original,
            local_port,
            identity: None,
        };
        let may_be_silent = self.has_opaque_destination(&conn);
        let Some((protocol, buf)) = read_protocol(&mut stream, may_be_silent).await else {
            return;
        };
        let io = Prefixed::new(buf, stream);
        if protocol != Protocol::MeshTls {
            return self.serve_protocol(io, protocol, conn, drain).await;
        }
        // A meshed peer: terminate its mTLS, then detect again inside.
        let (Direction::Inbound, Some(tls)) = (self.direction, &self.tls) else {
            eprintln!(
                "trellis-proxy: {direction} connection from {peer} is mTLS from another proxy, but this proxy {}; closed",
                if self.tls.is_none() {
                    "has no identity (--identity-dir or the control plane's Identity API)"
                } else {
                    "accepts mTLS on its inbound listener only"
                }
            );
            return;
        };
        let Some(server_config) = tls.server_config() else {
            eprintln!(
                "trellis-proxy: {direction} mTLS from {peer} refused: this proxy has no certificate yet"
            );
            return;
        };
        let accepting = tokio_rustls::TlsAcceptor::from(server_config).accept(io);
        let mut stream = match tokio::time::timeout(DETECT_TIMEOUT, accepting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.metrics
                    .tls_handshake_failures
                    .with_label_values(&[direction])
                    .inc();
                eprintln!("trellis-proxy: {direction} mTLS handshake from {peer} failed: {e}");
                return;
            }
            Err(_) => return,
        };
        conn.identity = crate::tls::peer_identity(stream.get_ref().1)
            .map(|id| Arc::from(id.to_string().as_str()));
        let Some((protocol, buf)) = read_protocol(&mut stream, may_be_silent).await else {
            return;
        };
        // Inside the tunnel only the app's protocol counts; TLS in TLS is opaque.
        let protocol = match protocol {
            Protocol::MeshTls => Protocol::Opaque,
            p => p,
        };
        self.serve_protocol(Prefixed::new(buf, stream), protocol, conn, drain)
            .await
    }

    /// Whether a connection that sends nothing can still go somewhere (opaque TCP with a
    /// server-first protocol).
    fn has_opaque_destination(&self, conn: &Conn) -> bool {
        match self.direction {
            Direction::Outbound => conn.original.is_some() || self.opaque_target.is_some(),
            Direction::Inbound => self.opaque_target.is_some(),
        }
    }

    fn count_connection(&self, protocol: Protocol, identity: Option<&str>) {
        self.metrics
            .tcp_connections
            .with_label_values(&[
                self.direction.as_str(),
                protocol.as_str(),
                if identity.is_some() { "true" } else { "false" },
                identity.unwrap_or(""),
            ])
            .inc();
    }

    async fn serve_protocol<I>(self, io: I, protocol: Protocol, conn: Conn, mut drain: Drain)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if protocol == Protocol::Opaque {
            return self.serve_opaque(io, conn).await;
        }
        self.count_connection(protocol, conn.identity.as_deref());
        let stack = self.stack.clone();
        let inbound = self.direction == Direction::Inbound;
        let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let mut req = req.map(body::boxed);
            let ext = req.extensions_mut();
            ext.insert(ClientAddr(conn.peer));
            if let Some(port) = conn.local_port {
                ext.insert(LocalPort(port));
            }
            if let Some(original) = conn.original {
                ext.insert(OriginalDst(original));
            }
            if inbound {
                ext.insert(PeerIdentity(conn.identity.clone()));
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
            Protocol::Opaque | Protocol::MeshTls => unreachable!("handled above"),
        }
    }

    async fn serve_opaque<I>(self, io: I, conn: Conn)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let direction = self.direction.as_str();
        let peer = conn.peer;
        match self.direction {
            Direction::Inbound => {
                self.count_connection(Protocol::Opaque, conn.identity.as_deref());
                let Some(app) = self.opaque_target else {
                    return;
                };
                if let Some(policy) = &self.inbound_policy
                    && !policy.allows_connection(
                        conn.local_port.unwrap_or(0),
                        conn.identity.as_deref(),
                        peer,
                    )
                {
                    return; // Closed after accept; counted and logged by the policy.
                }
                // Intercepted: to the port the client called; else to the app.
                let target = conn.original.unwrap_or(app);
                forward_plain(io, target).await;
            }
            Direction::Outbound => {
                let Some(original) = conn.original.or(self.opaque_target) else {
                    self.count_connection(Protocol::Opaque, None);
                    eprintln!(
                        "trellis-proxy: {direction} connection from {peer} is not HTTP and has no destination; closed (opaque TCP needs the original destination)"
                    );
                    return;
                };
                let config = match &self.resolve {
                    Some(r) => r.store.resolve(&original.to_string(), r.wait).await,
                    None => None,
                };
                let target = opaque::choose(config.as_ref().map(|d| &*d.config), original, || {
                    fastrand::u64(..)
                });
                let identity = target.identity.as_ref().map(|id| id.to_string());
                self.count_connection(Protocol::Opaque, identity.as_deref());
                match &target.identity {
                    None => forward_plain(io, target.addr).await,
                    Some(expected) => {
                        match connect_tls(
                            self.tls.as_deref(),
                            target.addr,
                            expected,
                            self.connect_timeout,
                        )
                        .await
                        {
                            Ok(server) => forward(io, server).await,
                            Err(e) => {
                                self.metrics
                                    .tls_handshake_failures
                                    .with_label_values(&[direction])
                                    .inc();
                                eprintln!(
                                    "trellis-proxy: opaque connection to {} ({expected}) failed: {e}",
                                    target.addr
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Reads until the protocol is known; `None`: the client went away or stayed silent with
/// nowhere to go. A silent client that `may_be_silent` is opaque TCP.
async fn read_protocol<I: AsyncRead + Unpin>(
    io: &mut I,
    may_be_silent: bool,
) -> Option<(Protocol, Bytes)> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        match tokio::time::timeout(DETECT_TIMEOUT, io.read_buf(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(_)) => {
                if let Some(p) = detect(&buf) {
                    return Some((p, buf.freeze()));
                }
            }
            Err(_) if buf.is_empty() && may_be_silent => {
                return Some((Protocol::Opaque, buf.freeze()));
            }
            Err(_) => return None,
        }
    }
}

/// Copies bytes both ways between the client and a plaintext `target`.
async fn forward_plain<I: AsyncRead + AsyncWrite + Unpin>(client: I, target: SocketAddr) {
    match TcpStream::connect(target).await {
        Ok(server) => {
            let _ = server.set_nodelay(true);
            forward(client, server).await;
        }
        Err(e) => eprintln!("trellis-proxy: opaque connection to {target} failed: {e}"),
    }
}

/// Copies bytes both ways until either side closes.
async fn forward<A, B>(mut client: A, mut server: B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
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
