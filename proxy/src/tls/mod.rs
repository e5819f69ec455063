//! mTLS between proxies: SPIFFE identities, a certificate authority, and the rustls configs
//! both ends use.
//!
//! ```text
//! client proxy --TLS 1.3, ALPN "trellis.dev/mtls/1", client cert--> server proxy
//!   verifies: chain -> trusted roots        verifies: chain -> trusted roots
//!             leaf SPIFFE id == expected              reads the client's SPIFFE id
//! ```
//!
//! [`Tls`] holds the credentials in force; [`Tls::update`] swaps in renewed certificates or
//! rotated roots for new handshakes while connections already open keep theirs.

mod ca;
mod credentials;
mod hello;
mod spiffe;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};

pub use ca::{Ca, IssuedPem};
pub use credentials::{Credentials, leaf_identity};
pub use hello::{Hello, classify};
pub use spiffe::{NotSpiffe, SpiffeId};
pub use verify::{IdentityMismatch, SpiffeServerVerifier};

/// The ALPN protocol meshed peers offer: it tells a proxy's mTLS apart from an app's own
/// TLS arriving at the same port.
pub const ALPN: &[u8] = b"trellis.dev/mtls/1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {message}")]
    Pem { what: &'static str, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error(
        "the certificate carries no SPIFFE id (URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>)"
    )]
    NoIdentity,
    #[error("this proxy has no certificate yet (waiting for the Identity API)")]
    NoCertificate,
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

impl TlsError {
    fn pem(what: &'static str, message: impl std::fmt::Display) -> Self {
        TlsError::Pem {
            what,
            message: message.to_string(),
        }
    }
}

/// The credentials in force and the configs built from them; empty until the first
/// certificate arrives ([`Tls::pending`]).
pub struct Tls {
    state: RwLock<Option<State>>,
}

struct State {
    credentials: Arc<Credentials>,
    server: Arc<ServerConfig>,
    clients: HashMap<SpiffeId, Arc<ClientConfig>>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    pub fn new(credentials: Credentials) -> Result<Self, TlsError> {
        Ok(Self {
            state: RwLock::new(Some(State::new(credentials)?)),
        })
    }

    /// No certificate yet: handshakes fail until [`Tls::update`].
    pub fn pending() -> Self {
        Self {
            state: RwLock::new(None),
        }
    }

    /// Puts renewed credentials (or rotated roots) in force for new handshakes; connections
    /// already open keep theirs.
    pub fn update(&self, credentials: Credentials) -> Result<(), TlsError> {
        let state = State::new(credentials)?;
        *self.state.write().expect("tls lock") = Some(state);
        Ok(())
    }

    pub fn identity(&self) -> Option<SpiffeId> {
        self.credentials().map(|c| c.identity.clone())
    }

    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        let state = self.state.read().expect("tls lock");
        state.as_ref().map(|s| s.credentials.clone())
    }

    /// The server side: requires a client certificate from the trusted roots.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        let state = self.state.read().expect("tls lock");
        state.as_ref().map(|s| s.server.clone())
    }

    /// The client side towards an endpoint that must prove `expected`.
    pub fn client_config(&self, expected: &SpiffeId) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(state) = &*self.state.read().expect("tls lock")
            && let Some(c) = state.clients.get(expected)
        {
            return Ok(c.clone());
        }
        let mut state = self.state.write().expect("tls lock");
        let state = state.as_mut().ok_or(TlsError::NoCertificate)?;
        let config = Arc::new(client_config(&state.credentials, expected)?);
        state.clients.insert(expected.clone(), config.clone());
        Ok(config)
    }
}

impl State {
    fn new(credentials: Credentials) -> Result<Self, TlsError> {
        let server = Arc::new(server_config(&credentials)?);
        Ok(Self {
            credentials: Arc::new(credentials),
            server,
            clients: HashMap::new(),
        })
    }
}

fn server_config(c: &Credentials) -> Result<ServerConfig, TlsError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(c.roots.clone(), provider()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(c.chain.clone(), c.key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

fn client_config(c: &Credentials, expected: &SpiffeId) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(SpiffeServerVerifier::new(c.roots.clone(), expected.clone()));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(c.chain.clone(), c.key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The SPIFFE id of the peer of an established connection, from its certificate.
pub fn peer_identity(conn: &rustls::CommonState) -> Option<SpiffeId> {
    let leaf = conn.peer_certificates()?.first()?;
    leaf_identity(leaf).ok().map(|(id, _)| id)
}

#[cfg(test)]
mod tests;
