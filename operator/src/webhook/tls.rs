//! TLS for the webhook server: rustls (ring provider) with the serving certificate of
//! the Secret `trellis-webhook-tls`, ALPN `h2` and `http/1.1`. [`Tls::reload`] swaps
//! the certificate for new connections (after a renewal) without a restart.

use std::io;
use std::sync::{Arc, RwLock};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

use super::certs::ServingCert;
use super::server::{Handshake, Routes, serve_with};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.crt: {0}")]
    Certificate(String),
    #[error("tls.key: {0}")]
    Key(String),
    #[error("the webhook TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server side of TLS, shared by every connection.
#[derive(Clone)]
pub struct Tls {
    acceptor: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    pub fn new(cert: &ServingCert) -> Result<Self, TlsError> {
        let acceptor = TlsAcceptor::from(server_config(cert)?);
        Ok(Self {
            acceptor: Arc::new(RwLock::new(acceptor)),
        })
    }

    /// Serves `cert` to the connections accepted from now on.
    pub fn reload(&self, cert: &ServingCert) -> Result<(), TlsError> {
        let acceptor = TlsAcceptor::from(server_config(cert)?);
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        Ok(())
    }
}

impl Handshake for Tls {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream) -> io::Result<Self::Io> {
        let acceptor = self
            .acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        acceptor.accept(tcp).await
    }
}

/// Serves `routes` over TLS on every connection of `listener`, forever.
pub async fn serve(listener: TcpListener, tls: Tls, routes: Routes) {
    serve_with(listener, tls, routes).await;
}

/// rustls' server configuration for `cert` (the chain is `tls.crt` as stored).
pub fn server_config(cert: &ServingCert) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Certificate("no certificate".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| TlsError::Key(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
