//! Reading a tree of manifests: every YAML file under the given paths, every document in
//! each file, `kind: List` items expanded, each object with the file and line it came from.

pub mod yaml;

use std::fs;
use std::path::{Path, PathBuf};

pub use yaml::Document;

/// One Kubernetes object as written in a file.
#[derive(Clone, Debug)]
pub struct Object {
    pub file: PathBuf,
    pub doc: Document,
}

impl Object {
    pub fn api_version(&self) -> &str {
        self.doc.value["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.doc.value["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.doc.value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.doc.value["metadata"]["namespace"].as_str()
    }
}

/// A file that could not be read as YAML, or only partly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
}

/// Everything read from the paths.
#[derive(Debug, Default)]
pub struct Manifests {
    pub objects: Vec<Object>,
    pub errors: Vec<FileError>,
    /// YAML files read.
    pub files: usize,
    /// Helm chart templates (`<chart>/templates/*.yaml`) left out: they are not YAML
    /// until rendered.
    pub templates_skipped: usize,
}

/// Why the paths cannot be read at all (a usage error, not a finding).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}: no such file or directory")]
    NotFound(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Reads every `.yaml`/`.yml` file under `paths` (files named explicitly are read
/// whatever their extension). Hidden directories such as `.git` are skipped.
pub fn load(paths: &[PathBuf]) -> Result<Manifests, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|_| LoadError::NotFound(path.clone()))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    let mut manifests = Manifests::default();
    for file in files {
        if is_helm_template(&file) {
            manifests.templates_skipped += 1;
            continue;
        }
        let bytes = fs::read(&file).map_err(|source| LoadError::Io {
            path: file.clone(),
            source,
        })?;
        manifests.files += 1;
        let Ok(text) = String::from_utf8(bytes) else {
            manifests.errors.push(FileError {
                file: file.clone(),
                line: 1,
                message: "not UTF-8 text; save the file as UTF-8".into(),
            });
            continue;
        };
        let stream = yaml::parse_stream(&text);
        for doc in stream.documents {
            push_object(&mut manifests.objects, &file, doc);
        }
        if let Some(e) = stream.error {
            manifests.errors.push(FileError {
                file: file.clone(),
                line: e.line,
                message: e.message,
            });
        }
    }
    Ok(manifests)
}

fn push_object(objects: &mut Vec<Object>, file: &Path, doc: Document) {
    let is_list = doc.value["kind"]
        .as_str()
        .is_some_and(|k| k.ends_with("List"))
        && doc.value["items"].is_array();
    if !is_list {
        objects.push(Object {
            file: file.to_owned(),
            doc,
        });
        return;
    }
    let count = doc.value["items"].as_array().map_or(0, Vec::len);
    for i in 0..count {
        if let Some(item) = doc.item(i) {
            push_object(objects, file, item);
        }
    }
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if path.is_dir() {
            if !hidden {
                walk(&path, files)?;
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// `<chart>/templates/...` next to a `Chart.yaml`.
fn is_helm_template(file: &Path) -> bool {
    file.ancestors().skip(1).any(|dir| {
        dir.file_name().is_some_and(|n| n == "templates")
            && dir
                .parent()
                .is_some_and(|chart| chart.join("Chart.yaml").is_file())
    })
}
