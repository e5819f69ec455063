//! The end-to-end harness: locating the built binaries and the external tools tests need.
//!
//! Tests that need an external tool (kubernetes-validate, prometheus, ip netns, helm) call
//! [`require_tool`]: on a developer machine without the tool the test says so and passes
//! without checking; with `TRELLIS_STRICT=1` (set by `.ci/run`) a missing tool fails the
//! test, so CI can never pass by skipping.

use std::env;
use std::path::{Path, PathBuf};

/// Environment variable that turns a missing external tool into a test failure.
pub const STRICT_ENV: &str = "TRELLIS_STRICT";

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ sits in the workspace root")
        .to_owned()
}

/// Whether missing tools must fail tests.
pub fn strict() -> bool {
    env::var(STRICT_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// The path of an external tool on `PATH`, or `None` (and a note on stderr) when it is
/// missing and the run is not strict.
///
/// # Panics
/// When the tool is missing and [`strict`] is set.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        let hint = format!("{name} is not installed; `bash .ci/run` installs it");
        assert!(
            !strict(),
            "{hint} ({STRICT_ENV} is set, so this test cannot be skipped)"
        );
        eprintln!("SKIPPED: {hint}");
    }
    found
}

/// A binary of this workspace, next to the test binaries. `cargo test --workspace` builds
/// the binaries of every package that has integration tests (`trellis`, `trellis-proxy`).
///
/// # Panics
/// When the binary has not been built.
pub fn binary(name: &str) -> PathBuf {
    let exe = env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binaries live in <target>/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` (or `cargo test --workspace`)",
        path.display()
    );
    path
}

pub mod backend;
pub mod canary;
pub mod child;
pub mod client;
pub mod config;
pub mod control_plane;
pub mod demo_app;
pub mod git;
pub mod git_http;
pub mod grpc;
pub mod identity;
pub mod inbound_config;
pub mod mesh;
pub mod metrics;
pub mod netns;
pub mod operator;
pub mod prometheus;
pub mod proxy;
pub mod serve;
pub mod sidecar;
pub mod sshd;
