//! Admission webhooks served by the operator in Kubernetes mode.

pub mod certs;
pub mod convert;
pub mod secret;
pub mod validate;

#[cfg(test)]
pub(crate) mod mock_api;
