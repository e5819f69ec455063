//! The chart's CRDs are valid `apiextensions.k8s.io/v1` objects for the Kubernetes
//! versions Trellis supports, checked by the `kubernetes-validate` tool in strict mode.

use std::process::Command;

use trellis_e2e::{require_tool, workspace_root};

/// Oldest and newest Kubernetes minor versions the CRDs are checked against.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.30.0", "1.34.0"];

#[test]
fn chart_crds_pass_kubernetes_validate_strict() {
    let Some(tool) = require_tool("kubernetes-validate") else {
        return;
    };
    let dir = workspace_root().join("charts/trellis/crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 8, "one file per CRD in {}", dir.display());
    for version in KUBERNETES_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "kubernetes {version}:\n{text}");
        assert_eq!(text.matches("passed").count(), files.len(), "{text}");
    }
}
