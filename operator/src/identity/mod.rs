//! The identity CA: workload certificates for proxies through `trellis.proxy.v1.Identity`.
//!
//! ```text
//! proxy --Certify(spiffe id, token, CSR)--> IdentityServer
//!                                             |- spiffe: parse the id, check the trust domain
//!                                             |- tokens: TokenValidator (JoinTokens locally,
//!                                             |          TokenReview in Kubernetes, later)
//!                                             `- ca: sign a leaf with the issuer in force
//!        <--leaf, [issuer], every root--------    ^
//!                                                 | watch (polls the files every 2 s)
//! <data-dir>/identity/{roots.pem, issuer.pem, issuer.key.pem, join-token.key}  (store)
//! ```
//!
//! - [`spiffe`]: identities, `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.
//! - [`ca`]: the CA material in memory: generating, checking, signing.
//! - [`store`]: the files, reloading them when they change, root rotation.
//! - [`tokens`]: [`TokenValidator`] and local-mode [`JoinTokens`].
//! - [`server`]: [`IdentityServer`], the gRPC service, and its metric.
//! - [`x509`]: PEM, CSRs, fingerprints.
//!
//! The operator's main (local mode) starts it with [`start`] and serves the result:
//!
//! ```text
//! let (settings_tx, settings_rx) = watch::channel(IdentitySettings { trust_domain, workload_lifetime });
//! let (server, join_tokens) = identity::start(&data_dir, root_lifetime, settings_rx, &registry)?;
//! tonic_router.add_service(server.into_service());   // settings_tx.send(..) on MeshConfig changes
//! ```
//!
//! In Kubernetes mode the pieces are put together by hand: [`CaStore::load_or_create`] (or
//! material from a Secret), [`CaStore::watch`], and [`IdentityServer::new`] with a
//! TokenReview validator as `Arc<dyn TokenValidator>`.

pub mod ca;
mod error;
pub mod server;
pub mod spiffe;
pub mod store;
pub mod tokens;
pub mod x509;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::Registry;
use tokio::sync::watch;

pub use ca::{CaMaterial, CaPem, Root};
pub use error::IdentityError;
pub use server::{IdentityServer, IdentitySettings};
pub use spiffe::{SpiffeError, SpiffeId};
pub use store::{CaStore, Layout, Rotation, drop_old_roots, drop_root, read_roots, rotate_root};
pub use tokens::{JoinTokens, TokenValidator};

/// The root lifetime MeshConfig defaults to (`87600h`, 10 years).
pub const DEFAULT_ROOT_LIFETIME: Duration = Duration::from_secs(87_600 * 3600);

/// Local mode: loads (or on first start generates) the CA and the join token key in
/// `<data_dir>/identity`, keeps the CA in step with its files, and returns the Identity
/// server checking join tokens, with the join tokens themselves (to hand tokens out).
///
/// A new root is valid for `root_lifetime` and named after the trust domain in
/// `settings` at the time. Must be called inside a tokio runtime (the file watch is a
/// task). Fails, naming the file, when a file exists but does not check out.
pub fn start(
    data_dir: &Path,
    root_lifetime: Duration,
    settings: watch::Receiver<IdentitySettings>,
    registry: &Registry,
) -> Result<(IdentityServer, Arc<JoinTokens>), IdentityError> {
    let trust_domain = settings.borrow().trust_domain.clone();
    let store = CaStore::load_or_create(data_dir, &trust_domain, root_lifetime)?;
    let root = store.material().issuer_root().clone();
    if store.created() {
        eprintln!(
            "trellis operator: generated a new CA in {}: {} (sha256 {})",
            store.layout().dir.display(),
            root.subject,
            root.fingerprint
        );
    }
    let (tokens, created) = JoinTokens::load_or_create(data_dir)?;
    if created {
        eprintln!(
            "trellis operator: made a new join token key {}; hand out tokens with `trellis join-token --data-dir {}`",
            store.layout().join_token_key.display(),
            data_dir.display()
        );
    }
    let tokens = Arc::new(tokens);
    let ca = store.watch(store::POLL);
    let validator: Arc<dyn TokenValidator> = tokens.clone();
    let server = IdentityServer::new(ca, validator, settings, registry)?;
    Ok((server, tokens))
}
