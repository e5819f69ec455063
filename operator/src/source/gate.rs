//! Whether a Git commit may be applied: all or nothing, as Flux applies a revision.
//! A commit is refused when a file is not YAML, when a resource cannot be read or has a
//! validation error, or when it would delete every object the source holds (an emptied
//! or moved directory, a bad `--path`) unless that is explicitly allowed. The refusal
//! lists every problem as `file:line: Kind namespace/name: field: message`.

use smi_crds::validate::{Severity, validate};

use super::manifests::Read;
use crate::index::{Origin, SourceObject, resource_ref};

/// Checks what a commit read. `held` is how many objects the source holds now.
pub fn check(read: &Read, held: usize, allow_delete_all: bool) -> Result<(), Vec<String>> {
    let mut problems = read.file_errors.clone();
    for object in &read.objects {
        match object {
            SourceObject::Invalid {
                resource,
                origin,
                problems: found,
            } => problems.extend(
                found
                    .iter()
                    .map(|p| format!("{}: {resource}: {p}", at(origin))),
            ),
            SourceObject::Resource(r, origin) => problems.extend(
                validate(r)
                    .iter()
                    .filter(|p| p.severity == Severity::Error)
                    .map(|p| format!("{}: {}: {p}", at(origin), resource_ref(r))),
            ),
            SourceObject::Service(_) | SourceObject::Namespace(_) => {}
        }
    }
    if problems.is_empty() && read.objects.is_empty() && held > 0 && !allow_delete_all {
        problems.push(format!(
            "the commit holds no Services or SMI/Trellis resources and would delete all {held} objects in force; \
             if that is meant, restart the operator with --allow-delete-all"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// `file:line` (the first bad field's line, as the source pinned it).
fn at(origin: &Origin) -> String {
    match (&origin.file, origin.line) {
        (Some(file), Some(line)) => format!("{file}:{line}"),
        (Some(file), None) => file.clone(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_yaml(yaml: &str) -> Read {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shop")).unwrap();
        std::fs::write(dir.path().join("shop/mesh.yaml"), yaml).unwrap();
        let manifests = crate::manifest::load(&[dir.path().to_owned()]).unwrap();
        super::super::manifests::read(&manifests, "git", dir.path(), Some("abc"))
    }

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n";

    #[test]
    fn a_valid_commit_passes() {
        assert_eq!(check(&read_yaml(SERVICE), 3, false), Ok(()));
    }

    #[test]
    fn a_validation_error_refuses_the_commit_naming_file_line_resource_and_field() {
        let read = read_yaml(&format!(
            "{SERVICE}---\napiVersion: split.smi-spec.io/v1alpha2\nkind: TrafficSplit\n\
             metadata: {{name: s, namespace: shop}}\nspec:\n  service: web\n  backends:\n  - service: web\n    weight: -5\n"
        ));
        let problems = check(&read, 0, false).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .starts_with("shop/mesh.yaml:13: TrafficSplit shop/s: spec.backends[0].weight"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_file_that_is_not_yaml_refuses_the_commit() {
        let problems = check(&read_yaml("kind: [\n"), 0, false).unwrap_err();
        assert!(problems[0].starts_with("shop/mesh.yaml:"), "{problems:?}");
    }

    #[test]
    fn deleting_everything_needs_an_explicit_allowance() {
        let empty = read_yaml("# nothing left\n");
        let problems = check(&empty, 7, false).unwrap_err();
        assert!(
            problems[0].contains("would delete all 7 objects"),
            "{problems:?}"
        );
        assert!(problems[0].contains("--allow-delete-all"), "{problems:?}");
        assert_eq!(check(&empty, 7, true), Ok(()));
        assert_eq!(
            check(&empty, 0, false),
            Ok(()),
            "nothing held, nothing lost"
        );
    }
}
