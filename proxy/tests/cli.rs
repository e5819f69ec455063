//! `trellis-proxy` as a user starts it.

use std::process::Command;

fn proxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trellis-proxy"))
}

#[test]
fn without_a_config_source_it_says_which_flags_to_use() {
    let out = proxy().output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--config <FILE>"), "{stderr}");
}

#[test]
fn help_shows_examples_and_where_the_format_is_documented() {
    let out = proxy().arg("--help").output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("trellis-proxy --config proxy.yaml"),
        "{stdout}"
    );
    assert!(stdout.contains("docs/proxy.md"), "{stdout}");
}

#[test]
fn a_duration_without_unit_is_refused_with_an_example() {
    let out = proxy()
        .args(["--config", "x.yaml", "--drain-timeout", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("write e.g. 10s, 500ms or 2m"), "{stderr}");
}

#[test]
fn a_busy_port_is_reported_with_the_flag_to_change() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, "outbound: []\n").unwrap();
    let out = proxy()
        .arg("--config")
        .arg(&config)
        .args([
            "--outbound",
            &addr,
            "--inbound",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot listen on {addr} (outbound); pick another address with --outbound"
        )),
        "{stderr}"
    );
}

#[test]
fn the_proxy_reports_its_version() {
    let out = proxy().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("trellis-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}
