//! `trellis-proxy` as a user runs it.

use std::process::Command;

#[test]
fn the_proxy_refuses_to_start_until_the_data_plane_exists() {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "it must not exit 0 while proxying nothing"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the data plane is not built yet, so nothing listens on 4140/4143/4191"),
        "{stderr}"
    );
}

#[test]
fn the_proxy_reports_its_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("trellis-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}
