//! From manifests read from files to index objects: Services, Namespaces and every SMI and
//! Trellis kind; other kinds are skipped. An object of a served kind that cannot be read
//! becomes [`SourceObject::Invalid`] (its last good version stays in force), with the file,
//! line and field of the problem.

use k8s_openapi::api::core::v1 as core;
use smi_crds::validate::{DEFAULT_NAMESPACE, Problem};

use crate::index::{Origin, ResourceRef, SourceObject, from_k8s};
use crate::manifest::{FileError, Manifests, Object};

/// What a sync read.
#[derive(Debug, Default)]
pub struct Read {
    pub objects: Vec<SourceObject>,
    /// Files that are not valid YAML (`file:line: message`): the sync must not be applied.
    pub file_errors: Vec<String>,
    /// Objects of kinds Trellis does not read.
    pub skipped: usize,
}

/// Index objects from manifests read by [`crate::manifest::load`]. `base` is removed
/// from file names so they read as in the repository (`apps/web.yaml`).
pub fn read(
    manifests: &Manifests,
    source: &str,
    base: &std::path::Path,
    revision: Option<&str>,
) -> Read {
    let mut read = Read {
        file_errors: manifests
            .errors
            .iter()
            .map(|e| file_error(e, base))
            .collect(),
        ..Read::default()
    };
    for object in &manifests.objects {
        let origin = Origin {
            source: source.to_owned(),
            file: Some(relative(&object.file, base)),
            line: Some(object.doc.line),
            generation: object.doc.value["metadata"]["generation"].as_i64(),
            revision: revision.map(str::to_owned),
        };
        match convert(object, origin) {
            Some(o) => read.objects.push(o),
            None => read.skipped += 1,
        }
    }
    read
}

fn convert(object: &Object, origin: Origin) -> Option<SourceObject> {
    from_value(&object.doc.value, origin, &|field| {
        Some(object.doc.line_of(field))
    })
}

/// The index object one Kubernetes object (as JSON) is: Services, Namespaces and every
/// SMI and Trellis kind; `None` for other kinds. `line_of` gives the line of a field when
/// the object was read from a file, so that `origin` points at the first bad one.
pub fn from_value(
    value: &serde_json::Value,
    origin: Origin,
    line_of: &dyn Fn(&str) -> Option<usize>,
) -> Option<SourceObject> {
    let at = |p: &Problem| Origin {
        line: line_of(&p.field).or(origin.line),
        ..origin.clone()
    };
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    let name = value["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = value["metadata"]["namespace"].as_str();
    match (api_version, kind) {
        ("v1", "Service") => Some(
            match serde_json::from_value::<core::Service>(value.clone()) {
                Ok(s) => match from_k8s::service(&s) {
                    Ok(s) => SourceObject::Service(s),
                    Err(p) => invalid_service(namespace, name, at(&p), p),
                },
                Err(e) => {
                    let p = Problem::error("spec", e.to_string());
                    invalid_service(namespace, name, origin, p)
                }
            },
        ),
        ("v1", "Namespace") => serde_json::from_value::<core::Namespace>(value.clone())
            .ok()
            .and_then(|n| from_k8s::namespace(&n))
            .map(SourceObject::Namespace),
        (api_version, kind) if smi_crds::dynamic::is_served_kind(api_version, kind) => {
            match smi_crds::dynamic::parse(value.clone()) {
                Ok(Some(resource)) => {
                    // The index validates again; here only to point at the first bad field.
                    let problems = smi_crds::validate::validate(&resource);
                    let origin = match problems
                        .iter()
                        .find(|p| p.severity == smi_crds::validate::Severity::Error)
                    {
                        Some(p) => at(p),
                        None => origin,
                    };
                    Some(SourceObject::Resource(Box::new(resource), origin))
                }
                Ok(None) => None,
                Err(e) => {
                    let problem = Problem::error(e.field(), e.message());
                    Some(SourceObject::Invalid {
                        resource: ResourceRef {
                            kind: served_kind(kind),
                            namespace: (kind != "MeshConfig")
                                .then(|| namespace.unwrap_or(DEFAULT_NAMESPACE).into()),
                            name: name.into(),
                        },
                        origin: at(&problem),
                        problems: vec![problem],
                    })
                }
            }
        }
        _ => None,
    }
}

/// A Service that cannot be read is reported like a resource; the index keeps no Service
/// for it (Services carry no "last good" version: they are plain Kubernetes objects).
fn invalid_service(
    namespace: Option<&str>,
    name: &str,
    origin: Origin,
    problem: Problem,
) -> SourceObject {
    SourceObject::Invalid {
        resource: ResourceRef {
            kind: "Service",
            namespace: Some(namespace.unwrap_or(DEFAULT_NAMESPACE).into()),
            name: name.into(),
        },
        origin,
        problems: vec![problem],
    }
}

/// The `'static` kind name of a served kind.
fn served_kind(kind: &str) -> &'static str {
    smi_crds::dynamic::SERVED
        .iter()
        .find(|(_, k, _)| *k == kind)
        .map_or("Unknown", |(_, k, _)| k)
}

fn relative(file: &std::path::Path, base: &std::path::Path) -> String {
    file.strip_prefix(base)
        .unwrap_or(file)
        .to_string_lossy()
        .into_owned()
}

fn file_error(e: &FileError, base: &std::path::Path) -> String {
    format!("{}:{}: {}", relative(&e.file, base), e.line, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_yaml(yaml: &str) -> Read {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mesh.yaml"), yaml).unwrap();
        let manifests = crate::manifest::load(&[dir.path().to_owned()]).unwrap();
        read(&manifests, "dir", dir.path(), None)
    }

    #[test]
    fn services_and_smi_resources_are_read_with_their_file_and_line_and_others_skipped() {
        let read = read_yaml(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n\
             ---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n\
             ---\napiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\n\
             spec: {service: web, backends: [{service: web-v1, weight: 1}]}\n",
        );
        assert_eq!(read.skipped, 1);
        assert!(read.file_errors.is_empty());
        assert!(
            matches!(&read.objects[0], SourceObject::Service(s) if s.key.to_string() == "shop/web")
        );
        match &read.objects[1] {
            SourceObject::Resource(r, origin) => {
                assert_eq!(r.kind(), "TrafficSplit");
                assert_eq!(origin.file.as_deref(), Some("mesh.yaml"));
                assert_eq!(origin.line, Some(10));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unreadable_resource_is_invalid_with_the_line_of_its_field() {
        let read = read_yaml(
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: s, namespace: shop}\n\
             spec:\n  service: web\n  backends: 7\n",
        );
        match &read.objects[0] {
            SourceObject::Invalid {
                resource,
                origin,
                problems,
            } => {
                assert_eq!(resource.to_string(), "TrafficSplit shop/s");
                assert_eq!(problems[0].field, "spec.backends");
                assert_eq!(origin.line, Some(6));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_file_that_is_not_yaml_is_a_file_error() {
        let read = read_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: web\n");
        assert_eq!(read.file_errors.len(), 1);
        assert!(
            read.file_errors[0].starts_with("mesh.yaml:"),
            "{:?}",
            read.file_errors
        );
    }
}
