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

#[test]
fn init_dry_run_prints_the_rules_and_changes_nothing() {
    let out = proxy()
        .args([
            "init",
            "--dry-run",
            "--skip-outbound-ports",
            "25,3306-3307",
            "--skip-inbound-ports",
            "22",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for rule in [
        "-A TRELLIS_OUTPUT -m owner --uid-owner 2102 -j RETURN",
        "-A TRELLIS_OUTPUT -p tcp --dport 3306:3307 -j RETURN",
        "-A TRELLIS_PREROUTING -p tcp --dport 22 -j RETURN",
        "-A TRELLIS_OUTBOUND -p tcp -j REDIRECT --to-ports 4140",
    ] {
        assert!(stdout.contains(rule), "{rule} missing from:\n{stdout}");
    }
}

#[test]
fn init_refuses_a_bad_port_and_run_flags() {
    let out = proxy()
        .args(["init", "--skip-inbound-ports", "ssh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a port"));
    let out = proxy()
        .args(["--config", "x.yaml", "init", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "run flags and init do not mix");
}
