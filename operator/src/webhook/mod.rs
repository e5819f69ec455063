//! The operator's webhooks in Kubernetes mode (docs/webhooks.md): CRD conversion of the
//! older SMI versions, validation of SMI and Trellis objects, and the serving
//! certificate the API server trusts.
//!
//! ```text
//!  start / every renewal check
//!    secret::load_or_create --(Secret trellis-webhook-tls: tls.crt, tls.key, ca.crt)
//!      |   certs::renewal / certs::renew (pure)
//!      +--> ca_bundle::patch_all: caBundle -> ValidatingWebhookConfiguration trellis-validation
//!      |                                   -> MutatingWebhookConfiguration trellis-injection
//!      |                                   -> spec.conversion of 4 SMI CRDs (strategy Webhook)
//!      +--> tls::Tls (rustls) --> server (Service trellis-operator:443 -> :9443)
//!
//!  API server --HTTPS POST--> server::Routes
//!      /convert   ConversionReview -> convert::review  -> dynamic::parse -> to_version
//!      /validate  AdmissionReview  -> validate::review -> dynamic::parse -> validate
//!      /inject    AdmissionReview  -> (the injector, added with Routes::with)
//!      GET /healthz
//! ```
//!
//! `convert`, `validate` and `certs` are pure; `secret` and `ca_bundle` are the thin
//! kube adapters (tested against a scripted API server); `server` is HTTP only, `tls`
//! the rustls transport.

pub mod ca_bundle;
pub mod certs;
pub mod convert;
pub mod refresh;
pub mod secret;
pub mod server;
pub mod tls;
pub mod validate;

pub use ca_bundle::{Patched, patch_all};
pub use certs::ServingCert;
pub use refresh::keep_fresh;
pub use secret::load_or_create;
pub use server::{Handler, Handshake, Plain, Routes, serve_with};
pub use tls::{Tls, TlsError, serve};

#[cfg(test)]
pub(crate) mod mock_api;
