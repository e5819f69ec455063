//! The harness finds the workspace's binaries the way later end-to-end tests will.

use std::process::Command;

use trellis_e2e::{binary, workspace_root};

#[test]
fn trellis_validates_the_example_repo_from_the_workspace_root() {
    let out = Command::new(binary("trellis"))
        .args(["validate", "gitops-examples"])
        .current_dir(workspace_root())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("0 errors, 0 warnings"));
}
