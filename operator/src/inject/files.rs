//! `trellis inject` on a YAML stream (pure): every document is read; the pod templates of
//! Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs,
//! CronJobs (and of `kind: List` items) are injected; every other document is written
//! back exactly as it was, comments included. An injected document is written anew.

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::config::Config;
use super::pod::{Skip, inject};
use crate::manifest::yaml;

/// What was done to one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Line (1-based) where the object starts.
    pub line: usize,
    /// `Deployment/shop/web` (`Kind/name` without a namespace).
    pub object: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The proxy was added.
    Injected { native: bool, notes: Vec<String> },
    /// A workload that is not injected, and why.
    Skipped(Skip),
    /// Not a workload: written back unchanged.
    NotAWorkload,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Injected { native, notes } => {
                let mode = if *native {
                    "native sidecar"
                } else {
                    "proxy container"
                };
                write!(f, "injected ({mode}")?;
                for note in notes {
                    write!(f, "; {note}")?;
                }
                write!(f, ")")
            }
            Outcome::Skipped(skip) => write!(f, "skipped: {skip}"),
            Outcome::NotAWorkload => write!(f, "unchanged (not a workload)"),
        }
    }
}

/// Why a document cannot be injected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("document {document} (line {line}){}: {message}", object.as_ref().map(|o| format!(": {o}")).unwrap_or_default())]
pub struct DocumentError {
    /// 1-based position of the document in the stream.
    pub document: usize,
    pub line: usize,
    pub object: Option<String>,
    pub message: String,
}

/// A stream with its workloads injected.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Injected {
    pub text: String,
    pub reports: Vec<Report>,
    /// Whether any document changed.
    pub changed: bool,
}

/// Injects the workloads of the YAML stream `text`. Errors (YAML syntax, a pod template
/// that is not one, a bad annotation) are all collected; with any, nothing is written.
pub fn inject_stream(
    text: &str,
    config: &Config,
    native_sidecars: bool,
) -> Result<Injected, Vec<DocumentError>> {
    let mut out = Injected::default();
    let mut errors = Vec::new();
    let mut document = 0;
    for chunk in split_documents(text) {
        let stream = yaml::parse_stream(chunk.text);
        if let Some(e) = &stream.error {
            errors.push(DocumentError {
                document: document + 1,
                line: chunk.first_line + e.line.saturating_sub(1),
                object: None,
                message: format!("invalid YAML: {}", e.message),
            });
            continue;
        }
        let mut written = Vec::new();
        let mut changed = false;
        let single = stream.documents.len() == 1;
        for doc in stream.documents {
            document += 1;
            let line = if single {
                chunk.content_line()
            } else {
                chunk.first_line + doc.line - 1
            };
            let mut value = doc.value;
            let mut at = Place {
                document,
                line,
                reports: &mut out.reports,
                errors: &mut errors,
            };
            changed |= object(&mut value, "", config, native_sidecars, &mut at);
            written.push(value);
        }
        if !changed {
            out.text.push_str(chunk.text);
            continue;
        }
        out.changed = true;
        let head = chunk.head();
        if chunk.text.starts_with("---") && !head.starts_with("---") {
            out.text.push_str("---\n");
        }
        out.text.push_str(head);
        for (i, value) in written.iter().enumerate() {
            if i > 0 {
                out.text.push_str("---\n");
            }
            out.text
                .push_str(&serde_saphyr::to_string(value).expect("JSON values serialize to YAML"));
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Where reports and errors of one document go.
struct Place<'a> {
    document: usize,
    line: usize,
    reports: &'a mut Vec<Report>,
    errors: &'a mut Vec<DocumentError>,
}

/// Injects one object (a `List`'s items too); true when it changed. `prefix` names a List
/// item in reports (`items[2]: `).
fn object(value: &mut Value, prefix: &str, config: &Config, native: bool, at: &mut Place) -> bool {
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    let id = format!("{prefix}{}", object_id(value));
    if kind == "List" {
        let mut changed = false;
        if let Some(items) = value["items"].as_array_mut() {
            for (i, item) in items.iter_mut().enumerate() {
                changed |= object(item, &format!("{id} items[{i}]: "), config, native, at);
            }
        }
        return changed;
    }
    let Some(pointer) = template_pointer(&kind) else {
        at.reports.push(Report {
            line: at.line,
            object: id,
            outcome: Outcome::NotAWorkload,
        });
        return false;
    };
    let field = pointer.trim_start_matches('/').replace('/', ".");
    let fail = |at: &mut Place, message: String| {
        at.errors.push(DocumentError {
            document: at.document,
            line: at.line,
            object: Some(id.clone()),
            message,
        })
    };
    let Some(template) = value.pointer_mut(pointer).filter(|t| t.is_object()) else {
        fail(
            at,
            format!("{field}: missing; a {kind} has a pod template there"),
        );
        return false;
    };
    let metadata: ObjectMeta = match read(&template["metadata"]) {
        Ok(m) => m,
        Err(e) => {
            fail(at, format!("{}metadata: {e}", dotted(&field)));
            return false;
        }
    };
    let spec: PodSpec = match serde_json::from_value(template["spec"].clone()) {
        Ok(s) => s,
        Err(e) => {
            fail(at, format!("{}spec: {e}", dotted(&field)));
            return false;
        }
    };
    if spec.containers.is_empty() {
        fail(
            at,
            format!(
                "{}spec.containers: a pod needs at least one container",
                dotted(&field)
            ),
        );
        return false;
    }
    match inject(&metadata, &spec, None, config, native) {
        Ok(injection) => {
            injection.apply(template);
            at.reports.push(Report {
                line: at.line,
                object: id,
                outcome: Outcome::Injected {
                    native: injection.native,
                    notes: injection.notes,
                },
            });
            true
        }
        Err(skip) if skip.is_error() => {
            fail(
                at,
                format!("{}metadata.annotations: {skip}", dotted(&field)),
            );
            false
        }
        Err(skip) => {
            at.reports.push(Report {
                line: at.line,
                object: id,
                outcome: Outcome::Skipped(skip),
            });
            false
        }
    }
}

/// Where a kind keeps its pod template (`""`: it is a pod).
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some(""),
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// `spec.template.` (or nothing for a Pod).
fn dotted(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}.")
    }
}

/// A missing or null `metadata` is empty metadata.
fn read(value: &Value) -> Result<ObjectMeta, serde_json::Error> {
    if value.is_null() {
        return Ok(ObjectMeta::default());
    }
    serde_json::from_value(value.clone())
}

/// `Kind/namespace/name`, `Kind/name`, or `Kind` alone.
fn object_id(value: &Value) -> String {
    let kind = value["kind"].as_str().unwrap_or("(no kind)");
    let name = value["metadata"]["name"].as_str();
    match (value["metadata"]["namespace"].as_str(), name) {
        (Some(ns), Some(name)) => format!("{kind}/{ns}/{name}"),
        (None, Some(name)) => format!("{kind}/{name}"),
        _ => kind.to_owned(),
    }
}

/// A piece of the stream: a `---` line and what follows up to the next one.
struct Chunk<'a> {
    first_line: usize,
    text: &'a str,
}

impl Chunk<'_> {
    /// The line where the content starts (after the marker, blank lines and comments).
    fn content_line(&self) -> usize {
        self.first_line + self.head().matches('\n').count()
    }

    /// The marker line, blank lines and comments before the content: kept when the
    /// document is written anew.
    fn head(&self) -> &str {
        let mut len = 0;
        for (i, line) in self.text.split_inclusive('\n').enumerate() {
            let t = line.trim();
            if !line.ends_with('\n')
                || !((i == 0 && t == "---") || t.is_empty() || t.starts_with('#'))
            {
                break;
            }
            len += line.len();
        }
        &self.text[..len]
    }
}

/// The stream cut before every document start marker (a line `---`, alone or followed by
/// a space and content), so untouched documents are written back byte for byte.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 1, 0);
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let marker = line.strip_prefix("---").is_some_and(|rest| {
            rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace())
        });
        if marker && offset > start {
            chunks.push(Chunk {
                first_line: start_line,
                text: &text[start..offset],
            });
            (start, start_line) = (offset, i + 1);
        }
        offset += line.len();
    }
    if offset > start {
        chunks.push(Chunk {
            first_line: start_line,
            text: &text[start..],
        });
    }
    chunks
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
