//! `trellis validate`'s engine: every object read from the manifests is parsed at its own
//! version, converted to the hub, validated on its own (`smi_crds::validate`), then checked
//! against the other objects of the same tree ([`refs`]).
//!
//! ```text
//! manifests -> served kind? --no--> skipped (counted)
//!                  | yes
//!                  v
//!   parse + convert (smi_crds::dynamic) -> validate -> refs (Services, route groups)
//!                  |                           |            |
//!                  +---------- findings (file:line: kind/ns/name: field: message)
//! ```

mod refs;

use std::path::PathBuf;

use serde::Serialize;
use smi_crds::dynamic::{self, Resource};
use smi_crds::validate::{self, Problem, Severity};

use crate::manifest::{Manifests, Object};

/// One problem, located.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub file: PathBuf,
    pub line: usize,
    /// `kind/namespace/name` (`kind/name` for cluster-scoped kinds); empty for a file
    /// that is not valid YAML.
    pub resource: String,
    pub severity: Severity,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: ", self.file.display(), self.line)?;
        if !self.resource.is_empty() {
            write!(f, "{}: ", self.resource)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// What `trellis validate` found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: Summary,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub files: usize,
    /// Objects of kinds Trellis checks (SMI, Trellis, Services).
    pub checked: usize,
    /// Objects of other kinds, left alone.
    pub skipped: usize,
    /// Helm templates left out.
    pub templates_skipped: usize,
    pub errors: usize,
    pub warnings: usize,
}

/// A resource that parsed, with where it came from.
pub(crate) struct Parsed<'a> {
    pub object: &'a Object,
    pub resource: Resource,
    pub namespace: String,
}

/// Checks every object of `manifests`. Objects without a namespace are read in
/// `default_namespace`, as `kubectl apply -n` or an ArgoCD destination would.
pub fn lint(manifests: &Manifests, default_namespace: &str) -> Report {
    let mut report = Report::default();
    for e in &manifests.errors {
        report.findings.push(Finding {
            file: e.file.clone(),
            line: e.line,
            resource: String::new(),
            severity: Severity::Error,
            field: String::new(),
            message: format!("invalid YAML: {}", e.message),
        });
    }
    let mut parsed = Vec::new();
    let mut services = Vec::new();
    for object in &manifests.objects {
        let namespace = object.namespace().unwrap_or(default_namespace).to_owned();
        if is_service(object) {
            report.summary.checked += 1;
            services.push((namespace, object.name().to_owned()));
            continue;
        }
        if !dynamic::is_served_kind(object.api_version(), object.kind()) {
            report.summary.skipped += 1;
            continue;
        }
        match dynamic::parse(object.doc.value.clone()) {
            Ok(Some(mut resource)) => {
                report.summary.checked += 1;
                if resource.is_namespaced() {
                    resource
                        .metadata_mut()
                        .namespace
                        .get_or_insert_with(|| namespace.clone());
                }
                let problems = validate::validate(&resource);
                report.push(object, &resource_id(object, &namespace), problems);
                parsed.push(Parsed {
                    object,
                    resource,
                    namespace,
                });
            }
            Ok(None) => report.summary.skipped += 1,
            Err(e) => {
                report.summary.checked += 1;
                let problem = Problem::error(e.field(), e.message());
                report.push(object, &resource_id(object, &namespace), vec![problem]);
            }
        }
    }
    for (object, problems) in refs::check(&parsed, &services) {
        let id = resource_id(object, object.namespace().unwrap_or(default_namespace));
        report.push(object, &id, problems);
    }
    report
        .findings
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    report.summary.files = manifests.files;
    report.summary.templates_skipped = manifests.templates_skipped;
    report.summary.errors = report.count(Severity::Error);
    report.summary.warnings = report.count(Severity::Warning);
    report
}

impl Report {
    fn push(&mut self, object: &Object, resource: &str, problems: Vec<Problem>) {
        self.findings.extend(problems.into_iter().map(|p| Finding {
            file: object.file.clone(),
            line: object.doc.line_of(&p.field),
            resource: resource.to_owned(),
            severity: p.severity,
            field: p.field,
            message: p.message,
        }));
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

fn is_service(object: &Object) -> bool {
    object.api_version() == "v1" && object.kind() == "Service"
}

fn resource_id(object: &Object, namespace: &str) -> String {
    let name = match object.name() {
        "" => "<no name>",
        n => n,
    };
    if object.kind() == "MeshConfig" {
        format!("{}/{name}", object.kind())
    } else {
        format!("{}/{namespace}/{name}", object.kind())
    }
}
