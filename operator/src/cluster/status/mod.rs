//! Status: the conditions of every SMI/Trellis resource read from the API server, written
//! back by the leader ([`writer`]) as the pure [`desired`] says.

pub mod desired;
pub mod writer;

pub use writer::{FIELD_MANAGER, Pass, StatusWriter};
