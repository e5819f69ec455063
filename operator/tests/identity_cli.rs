//! `trellis join-token` and `trellis identity ...` as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

use trellis_operator::identity::{self, CaStore, JoinTokens, Layout};

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .output()
        .expect("trellis runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn join_token(dir: &Path, ns: &str, sa: &str) -> Output {
    let dir = dir.to_str().unwrap();
    trellis(&[
        "join-token",
        "--data-dir",
        dir,
        "--namespace",
        ns,
        "--service-account",
        sa,
    ])
}

#[test]
fn join_token_prints_a_token_the_operator_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let first = join_token(dir.path(), "shop", "web");
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let token = text(&first.stdout).trim().to_owned();
    assert!(token.starts_with("trellis-join-v1."), "{token}");
    assert!(
        text(&first.stderr).contains("note: made a new join token key"),
        "{}",
        text(&first.stderr)
    );

    let again = join_token(dir.path(), "shop", "web");
    assert_eq!(
        text(&again.stdout).trim(),
        token,
        "the same key, the same token"
    );
    assert_eq!(text(&again.stderr), "", "no note once the key exists");

    let (tokens, created) = JoinTokens::load_or_create(dir.path()).unwrap();
    assert!(!created);
    assert_eq!(tokens.check(&token, "shop", "web"), Ok(()));
    assert!(tokens.check(&token, "shop", "api").is_err());
}

#[test]
fn join_token_refuses_names_that_are_no_identity() {
    let dir = tempfile::tempdir().unwrap();
    let out = join_token(dir.path(), "Shop", "web");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "--namespace \"Shop\" is not valid: use a non-empty name of lowercase letters"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!Layout::new(dir.path()).join_token_key.exists());
}

#[test]
fn join_token_help_has_an_example() {
    let out = trellis(&["join-token", "--help"]);
    let help = text(&out.stdout);
    assert!(help.contains("Example:"), "{help}");
    assert!(help.contains("--identity-token-file"), "{help}");
}

/// `roots`' lines, one per root.
fn roots(dir: &str) -> Vec<String> {
    let out = trellis(&["identity", "roots", "--data-dir", dir]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn a_root_rotation_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let old = CaStore::load_or_create(dir.path(), "cluster.local", identity::DEFAULT_ROOT_LIFETIME)
        .unwrap()
        .material()
        .issuer_root()
        .fingerprint
        .clone();
    let listed = roots(path);
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0].starts_with(&format!("sha256:{old}")),
        "{listed:?}"
    );
    assert!(listed[0].ends_with("CN=Trellis root CA cluster.local  (signed the issuer)"));

    let out = trellis(&["identity", "rotate-root", "--data-dir", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("next: once every workload has renewed"),
        "{said}"
    );
    let listed = roots(path);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed[0].starts_with(&format!("sha256:{old}")) && !listed[0].contains("signed the issuer")
    );
    assert!(listed[1].ends_with("(signed the issuer)"), "{listed:?}");

    let out = trellis(&["identity", "drop-old-roots", "--data-dir", path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("dropped root sha256:{old}")));
    let listed = roots(path);
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].contains(&old));
}

#[test]
fn a_damaged_ca_is_named_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let out = trellis(&["identity", "roots", "--data-dir", path]);
    assert_eq!(out.status.code(), Some(1));
    let roots_file = Layout::new(dir.path()).roots;
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: missing: the operator creates the CA",
            roots_file.display()
        )),
        "{}",
        text(&out.stderr)
    );

    CaStore::load_or_create(dir.path(), "cluster.local", identity::DEFAULT_ROOT_LIFETIME).unwrap();
    std::fs::write(&roots_file, "not a certificate").unwrap();
    let out = trellis(&["identity", "rotate-root", "--data-dir", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with(&format!("error: {}: bad PEM", roots_file.display())),
        "{}",
        text(&out.stderr)
    );
}
