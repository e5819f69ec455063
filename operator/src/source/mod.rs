//! Sources: where the index's Services and SMI/Trellis resources come from.
//!
//! - [`manifests`]: a tree of YAML files -> index objects, each with its file and line.
//! - [`dir`]: a directory watched for changes (local mode; Git builds on it).
//!
//! A source replaces everything it held at each sync ([`crate::index::Update::Source`]).
//! A file that is not valid YAML stops the whole sync: the last good set stays in force
//! and the source's status says which file and line to fix.

pub mod dir;
pub mod manifests;

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What the status API shows about a source.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceStatus {
    /// `dir`, `git`, ...
    pub name: String,
    /// Where it reads from (a path, a URL).
    pub location: String,
    /// Whether a sync has been applied since start.
    pub synced: bool,
    /// What the last applied sync read (a Git revision; a digest of the files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Objects held.
    pub objects: usize,
    /// Why the last sync was not applied (the previous one stays in force).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Shared, updated by the source task, read by the admin endpoint.
pub type SharedStatus = Arc<Mutex<SourceStatus>>;
