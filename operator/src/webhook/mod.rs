//! Admission webhooks served by the operator in Kubernetes mode.

pub mod convert;
pub mod validate;
