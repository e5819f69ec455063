//! Sources: where the index's Services and SMI/Trellis resources come from.
//!
//! - [`manifests`]: a tree of YAML files -> index objects, each with its file and line.
//! - [`dir`]: a directory watched for changes (local development: a bad resource keeps
//!   its own last good version, as `kubectl apply` of one file would).
//! - [`git`]: a Git repository followed with git2 (the local mode's source of truth: a
//!   commit is applied whole or refused whole by [`gate`], as Flux applies revisions).
//!
//! A source replaces everything it held at each sync ([`crate::index::Update::Source`]).
//! A file that is not valid YAML stops the whole sync: the last good set stays in force
//! and the source's status says which file and line to fix.

pub mod dir;
pub mod gate;
pub mod git;
pub mod manifests;

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// What the status API shows about a source.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
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
    /// The commit `errors` are about (Git: a refused commit; the applied `revision` stays
    /// in force).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejected_revision: Option<String>,
    /// The commit the followed reference points at (Git), and its summary line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_summary: Option<String>,
    /// Whether the last look at the remote succeeded (Git).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reachable: bool,
    /// Why the remote could not be read (network, credentials, missing branch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
    /// Times the followed branch was rewritten (a force-push), each followed.
    #[serde(skip_serializing_if = "is_zero")]
    pub force_pushes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Shared, updated by the source task, read by the admin endpoint.
pub type SharedStatus = Arc<Mutex<SourceStatus>>;
