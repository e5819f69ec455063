//! A Git repository as the source of truth (local mode; in-cluster option later).
//!
//! ```text
//! every --interval, or at once on POST /hooks/git:
//!   ls-remote (cheap) --same commit--> nothing to do
//!        |new commit
//!   fetch (forced: force-pushes are followed) -> export <path> -> read -> gate
//!        |passes                                                   |refused
//!   index <- Update::Source, refs/trellis/applied = commit       status: revision, file:line, message
//!                                                               (the last good commit stays in force)
//! ```
//!
//! The mirror lives in `<data-dir>/git/<hash of url, reference, path>`; at start the last
//! applied commit is served from it before the remote is asked, so a restart comes back
//! with the same state even when the remote is down or its head is a refused commit.

pub mod auth;
pub mod known_hosts;
pub mod repo;
pub mod webhook;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use git2::Oid;
use tokio::sync::Notify;

use self::auth::CredentialFiles;
use self::repo::{Mirror, Reference};
use super::{SharedStatus, gate, manifests};
use crate::index::{Index, Update};
use crate::metrics::Metrics;

/// Where the manifests are and how to follow them.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `https://`, `ssh://`, `user@host:path`, `file://` or a local path.
    pub url: String,
    pub reference: Reference,
    /// Directory inside the repository holding the manifests (empty: the whole tree).
    pub path: String,
    /// How often the remote's head is checked.
    pub interval: Duration,
    pub credentials: CredentialFiles,
    /// Allow a commit that deletes every object (refused by default).
    pub allow_delete_all: bool,
    /// `<data-dir>/git`.
    pub dir: PathBuf,
}

impl Settings {
    /// Where this remote/reference/path is mirrored.
    fn mirror_dir(&self) -> PathBuf {
        let mut hasher = DefaultHasher::new();
        (&self.url, self.reference.to_string(), &self.path).hash(&mut hasher);
        self.dir.join(format!("{:016x}", hasher.finish()))
    }

    /// `url (branch main, path shop)`.
    pub fn location(&self) -> String {
        if self.path.is_empty() {
            format!("{} ({})", self.url, self.reference)
        } else {
            format!("{} ({}, path {})", self.url, self.reference, self.path)
        }
    }
}

/// A local path becomes an absolute one (the operator may change directory; libgit2
/// reads local repositories directly).
pub fn normalize_url(url: &str) -> String {
    let path = std::path::Path::new(url);
    if !url.contains("://") && !url.contains('@') && path.exists() {
        std::fs::canonicalize(path)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| url.to_owned())
    } else {
        url.to_owned()
    }
}

/// The Git source: syncs until dropped. [`GitSource::trigger`] wakes it at once.
pub struct GitSource {
    settings: Settings,
    index: Index,
    status: SharedStatus,
    metrics: Arc<Metrics>,
    trigger: Arc<Notify>,
    /// The commit last looked at (applied or refused): not read again until it changes.
    seen: Option<Oid>,
    /// Objects held (the index's view of this source).
    held: usize,
}

/// What one look at the remote found.
enum Found {
    Unchanged,
    Commit {
        commit: Oid,
        summary: Option<String>,
        forced_from: Option<Oid>,
        read: Option<manifests::Read>,
    },
}

impl GitSource {
    pub fn new(
        settings: Settings,
        index: Index,
        status: SharedStatus,
        metrics: Arc<Metrics>,
    ) -> GitSource {
        GitSource {
            settings,
            index,
            status,
            metrics,
            trigger: Arc::new(Notify::new()),
            seen: None,
            held: 0,
        }
    }

    /// Wakes the source for a sync now (the webhook).
    pub fn trigger(&self) -> Arc<Notify> {
        self.trigger.clone()
    }

    /// Serves the last applied commit from the mirror, if any, then syncs with the remote
    /// once. Returns after both, so the operator starts with the best state it can have.
    pub async fn start(&mut self) {
        let settings = self.settings.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let mirror = Mirror::open(&settings.mirror_dir(), &settings.url).ok()?;
            let commit = mirror.applied()?;
            let read = export_and_read(&mirror, &settings, commit).ok()??;
            Some((commit, read))
        })
        .await
        .ok()
        .flatten();
        if let Some((commit, read)) = restored
            && gate::check(&read, 0, true).is_ok()
        {
            eprintln!(
                "trellis operator: git: serving {} from the local mirror until the remote answers",
                short(commit)
            );
            self.apply(commit, read).await;
            self.seen = Some(commit);
        }
        self.sync().await;
    }

    /// Syncs every interval and on every trigger, forever.
    pub async fn run(mut self) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = self.trigger.notified() => {}
            }
            self.sync().await;
        }
    }

    /// One look at the remote; applies a new commit that passes the gate.
    pub async fn sync(&mut self) {
        let settings = self.settings.clone();
        let seen = self.seen;
        let found = tokio::task::spawn_blocking(move || look(&settings, seen))
            .await
            .unwrap_or_else(|e| Err(format!("the sync task failed: {e}")));
        match found {
            Ok(Found::Unchanged) => {
                let mut s = self.lock();
                s.reachable = true;
                s.fetch_error = None;
            }
            Ok(Found::Commit {
                commit,
                summary,
                forced_from,
                read,
            }) => {
                self.seen = Some(commit);
                if let Some(old) = forced_from {
                    eprintln!(
                        "trellis operator: git: {} was force-pushed: {} is not in the history of {}; following it",
                        self.settings.reference,
                        short(old),
                        short(commit)
                    );
                    self.lock().force_pushes += 1;
                }
                {
                    let mut s = self.lock();
                    s.reachable = true;
                    s.fetch_error = None;
                    s.head = Some(commit.to_string());
                    s.head_summary = summary;
                }
                let read = match read {
                    Some(read) => read,
                    None if self.settings.allow_delete_all => manifests::Read::default(),
                    None => {
                        let path = &self.settings.path;
                        let problem = format!(
                            "the commit has no directory {path}: check --path, or restart with --allow-delete-all if it was removed on purpose"
                        );
                        return self.refuse(commit, vec![problem]);
                    }
                };
                match gate::check(&read, self.held, self.settings.allow_delete_all) {
                    Ok(()) => {
                        self.apply(commit, read).await;
                        let settings = self.settings.clone();
                        let _ = tokio::task::spawn_blocking(move || {
                            Mirror::open(&settings.mirror_dir(), &settings.url)
                                .and_then(|m| m.set_applied(commit))
                        })
                        .await;
                    }
                    Err(problems) => self.refuse(commit, problems),
                }
            }
            Err(error) => {
                self.metrics.source_errors.with_label_values(&["git"]).inc();
                let mut s = self.lock();
                if s.fetch_error.as_deref() != Some(&error) {
                    eprintln!(
                        "trellis operator: git: {}: {error}; the last good commit stays in force, retrying every {:?}",
                        self.settings.url, self.settings.interval
                    );
                }
                s.reachable = false;
                s.fetch_error = Some(error);
            }
        }
    }

    async fn apply(&mut self, commit: Oid, read: manifests::Read) {
        let count = read.objects.len();
        self.index.update(Update::Source {
            name: "git".into(),
            objects: read.objects,
        });
        self.index.flush().await;
        self.held = count;
        eprintln!(
            "trellis operator: git: applied {} ({count} objects)",
            short(commit)
        );
        let mut s = self.lock();
        s.synced = true;
        s.revision = Some(commit.to_string());
        s.objects = count;
        s.errors.clear();
        s.rejected_revision = None;
    }

    fn refuse(&mut self, commit: Oid, problems: Vec<String>) {
        self.metrics.source_errors.with_label_values(&["git"]).inc();
        eprintln!(
            "trellis operator: git: refused {}; {} stays in force:",
            short(commit),
            self.lock()
                .revision
                .as_deref()
                .map_or("nothing".to_owned(), |r| r[..12.min(r.len())].to_owned())
        );
        for p in &problems {
            eprintln!("  {p}");
        }
        let mut s = self.lock();
        s.errors = problems;
        s.rejected_revision = Some(commit.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, super::SourceStatus> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Asks the remote for its head and, when it moved past `seen`, fetches and reads it.
fn look(settings: &Settings, seen: Option<Oid>) -> Result<Found, String> {
    let credentials = settings.credentials.read()?;
    let mirror = Mirror::open(&settings.mirror_dir(), &settings.url).map_err(message)?;
    let head = mirror
        .remote_head(&settings.reference, &credentials)
        .map_err(message)?;
    if head.is_some() && head == seen {
        return Ok(Found::Unchanged);
    }
    let commit = mirror
        .fetch(&settings.reference, &credentials)
        .map_err(message)?;
    if Some(commit) == seen {
        return Ok(Found::Unchanged);
    }
    let forced_from = mirror
        .applied()
        .filter(|&applied| !mirror.follows(commit, applied));
    let read = export_and_read(&mirror, settings, commit)?;
    Ok(Found::Commit {
        commit,
        summary: mirror.summary(commit),
        forced_from,
        read,
    })
}

/// The commit's manifests under the path, read as the dir source reads them; `None`
/// when the commit has no such path (nothing to apply: the gate decides).
fn export_and_read(
    mirror: &Mirror,
    settings: &Settings,
    commit: Oid,
) -> Result<Option<manifests::Read>, String> {
    let checkout = settings.dir.join("checkout");
    let Some(root) = mirror
        .export(commit, &settings.path, &checkout)
        .map_err(message)?
    else {
        return Ok(None);
    };
    let loaded = crate::manifest::load(&[root]).map_err(|e| e.to_string())?;
    Ok(Some(manifests::read(
        &loaded,
        "git",
        &checkout,
        Some(&commit.to_string()),
    )))
}

fn message(e: git2::Error) -> String {
    e.message().to_owned()
}

fn short(commit: Oid) -> String {
    commit.to_string()[..12].to_owned()
}
