//! The connector under the pooled clients: plain TCP to an endpoint outside the mesh, mTLS
//! to a meshed one, verified against the identity the control plane gave for it.
//!
//! The pools are keyed by scheme and address: `http://ADDR` is plaintext, `https://ADDR` is
//! mTLS, so the two never share a connection. The identity expected at an address is
//! recorded by [`Connect::send`](super::Connect::send) before each request and read here
//! when a new connection is made.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::body::BoxError;
use crate::tls::{IdentityMismatch, SpiffeId, Tls};

/// Identities expected at meshed addresses, with their text (for metrics labels, made once).
pub type Expected = Arc<RwLock<HashMap<SocketAddr, (Arc<SpiffeId>, Arc<str>)>>>;

#[derive(Clone)]
pub struct MeshConnector {
    pub tcp: HttpConnector,
    pub tls: Option<Arc<Tls>>,
    pub expected: Expected,
    pub handshake_timeout: Duration,
}

impl tower::Service<Uri> for MeshConnector {
    type Response = MeshIo;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<MeshIo, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower::Service::<Uri>::poll_ready(&mut self.tcp, cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let meshed = uri.scheme_str() == Some("https");
        let connecting = tower::Service::call(&mut self.tcp, uri.clone());
        let this = self.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            if !meshed {
                return Ok(MeshIo::Plain(tcp));
            }
            let addr: SocketAddr = uri
                .authority()
                .and_then(|a| a.as_str().parse().ok())
                .ok_or("a meshed endpoint must be addressed as ip:port")?;
            let expected = this
                .expected
                .read()
                .expect("expected identities lock")
                .get(&addr)
                .map(|(id, _)| id.clone())
                .ok_or_else(|| format!("no identity is known for the meshed endpoint {addr}"))?;
            let tls = this.tls.as_ref().ok_or_else(|| no_identity(&expected))?;
            let stream = handshake(
                tls,
                tcp.into_inner(),
                addr,
                &expected,
                this.handshake_timeout,
            )
            .await?;
            Ok(MeshIo::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

fn no_identity(expected: &SpiffeId) -> String {
    format!(
        "the endpoint is meshed ({expected}) but this proxy has no identity to connect with mTLS; start it with --identity-dir or an identity from the control plane"
    )
}

/// Connects to `addr` and proves both sides: ours from our certificate, theirs must be
/// `expected`.
pub async fn connect_tls(
    tls: Option<&Tls>,
    addr: SocketAddr,
    expected: &SpiffeId,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let tls = tls.ok_or_else(|| no_identity(expected))?;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting took longer than {timeout:?}"))??;
    let _ = tcp.set_nodelay(true);
    handshake(tls, tcp, addr, expected, timeout).await
}

async fn handshake(
    tls: &Tls,
    tcp: TcpStream,
    addr: SocketAddr,
    expected: &SpiffeId,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, BoxError> {
    let config = tls.client_config(expected)?;
    let connecting =
        TlsConnector::from(config).connect(ServerName::IpAddress(addr.ip().into()), tcp);
    let stream = tokio::time::timeout(timeout, connecting)
        .await
        .map_err(|_| format!("the mTLS handshake took longer than {timeout:?}"))?
        .map_err(|e| format!("mTLS handshake: {}", describe(&e)))?;
    Ok(stream)
}

/// A handshake error in words: an identity mismatch says who answered and who was
/// expected, rather than rustls' debug form.
fn describe(e: &io::Error) -> String {
    use rustls::{CertificateError, Error};
    let rustls_error = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>());
    if let Some(Error::InvalidCertificate(CertificateError::Other(other))) = rustls_error
        && let Some(mismatch) = other.0.downcast_ref::<IdentityMismatch>()
    {
        return mismatch.to_string();
    }
    match rustls_error {
        Some(Error::InvalidCertificate(c)) => format!("the peer's certificate is refused: {c:?}"),
        Some(other) => other.to_string(),
        None => e.to_string(),
    }
}

/// A connection to an endpoint: plain TCP or mTLS.
pub enum MeshIo {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<TlsStream<TcpStream>>>),
}

impl Connection for MeshIo {
    fn connected(&self) -> Connected {
        match self {
            MeshIo::Plain(io) => io.connected(),
            MeshIo::Tls(_) => Connected::new(),
        }
    }
}

impl Read for MeshIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            MeshIo::Tls(io) => Pin::new(io.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Write for MeshIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MeshIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            MeshIo::Tls(io) => Pin::new(io.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MeshIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            MeshIo::Tls(io) => Pin::new(io.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MeshIo::Plain(io) => io.is_write_vectored(),
            MeshIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(io) => Pin::new(io).poll_flush(cx),
            MeshIo::Tls(io) => Pin::new(io.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MeshIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            MeshIo::Tls(io) => Pin::new(io.as_mut()).poll_shutdown(cx),
        }
    }
}
