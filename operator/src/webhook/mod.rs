//! Admission webhooks served by the operator in Kubernetes mode.

pub mod certs;
pub mod convert;
pub mod validate;
