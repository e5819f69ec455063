//! A directory of manifests as a source: read at start, then again whenever a YAML file
//! under it changes (polled: path, size and modification time of every file).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{SharedStatus, manifests};
use crate::index::{Index, Update};
use crate::metrics::Metrics;

/// Reads `path` now and after every change, until the task is dropped.
pub async fn run(
    path: PathBuf,
    interval: Duration,
    index: Index,
    status: SharedStatus,
    metrics: Arc<Metrics>,
) {
    let mut last = None;
    loop {
        let fingerprint = fingerprint(&path);
        if last != Some(fingerprint) {
            sync(
                &path,
                &format!("{fingerprint:016x}"),
                &index,
                &status,
                &metrics,
            )
            .await;
            last = Some(fingerprint);
        }
        tokio::time::sleep(interval).await;
    }
}

/// Reads the directory once and applies it unless a file is not valid YAML.
pub async fn sync(
    path: &Path,
    revision: &str,
    index: &Index,
    status: &SharedStatus,
    metrics: &Metrics,
) {
    let errors = match crate::manifest::load(&[path.to_owned()]) {
        Err(e) => vec![e.to_string()],
        Ok(loaded) => {
            let read = manifests::read(&loaded, "dir", path, Some(revision));
            if read.file_errors.is_empty() {
                let count = read.objects.len();
                index.update(Update::Source {
                    name: "dir".into(),
                    objects: read.objects,
                });
                index.flush().await;
                let mut s = status.lock().unwrap_or_else(|e| e.into_inner());
                s.synced = true;
                s.revision = Some(revision.to_owned());
                s.objects = count;
                s.errors.clear();
                return;
            }
            read.file_errors
        }
    };
    metrics.source_errors.with_label_values(&["dir"]).inc();
    for e in &errors {
        eprintln!(
            "trellis operator: {}: {e}; the last good manifests stay in force",
            path.display()
        );
    }
    status.lock().unwrap_or_else(|e| e.into_inner()).errors = errors;
}

/// A digest of the YAML files under `path`: names, sizes and modification times.
fn fingerprint(path: &Path) -> u64 {
    let mut files = Vec::new();
    walk(path, &mut files);
    files.sort();
    let mut hasher = DefaultHasher::new();
    for (file, len, modified) in files {
        file.hash(&mut hasher);
        len.hash(&mut hasher);
        modified.hash(&mut hasher);
    }
    hasher.finish()
}

fn walk(dir: &Path, files: &mut Vec<(PathBuf, u64, Option<std::time::SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            if !hidden {
                walk(&path, files);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push((path, meta.len(), meta.modified().ok()));
        }
    }
}
