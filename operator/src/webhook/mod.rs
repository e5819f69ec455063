//! Admission webhooks served by the operator in Kubernetes mode.

pub mod ca_bundle;
pub mod certs;
pub mod convert;
pub mod secret;
pub mod server;
pub mod validate;

#[cfg(test)]
pub(crate) mod mock_api;
