//! `trellis validate` as a user runs it: real files, the real binary, its output and exit code.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn trellis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("trellis runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const EXPECTED_BROKEN: &str = r#"tests/fixtures/broken/access.yaml:12: TrafficTarget/default/web-to-api: spec.rules[0].matches[1]: HTTPRouteGroup "api-routes" has no match "delete-everything"; its matches are: list-items
tests/fixtures/broken/access.yaml:14: TrafficTarget/default/web-to-api: spec.rules[1].name: no TCPRoute "api-tcp" in namespace "default"; create it or fix the name
tests/fixtures/broken/not-yaml.yml:4: invalid YAML: while parsing a flow mapping, did not find expected ',' or '}'
tests/fixtures/broken/routes.yaml:8: HTTPRouteGroup/default/api-routes: spec.matches[0].pathRegex: invalid regex "/items/(": unclosed group (RE2 syntax)
tests/fixtures/broken/splits.yaml:6: TrafficSplit/default/web-rollout: spec.service: TrafficSplit "web-experiment" also splits "web" without matches; only one split without matches applies to a root Service (the oldest): merge them or give "web-rollout" matches
tests/fixtures/broken/splits.yaml:9: TrafficSplit/default/web-rollout: spec.backends[0].weight: must be a whole number between 0 and 4294967295, got 0.5
tests/fixtures/broken/splits.yaml:10: TrafficSplit/default/web-rollout: spec.backends[1].service: warning: no Service "web-v2" in namespace "default" in these manifests; this backend gets no traffic until it exists
tests/fixtures/broken/splits.yaml:19: TrafficSplit/default/web-experiment: spec.service: TrafficSplit "web-rollout" also splits "web" without matches; only one split without matches applies to a root Service (the oldest): merge them or give "web-experiment" matches
tests/fixtures/broken/splits.yaml:32: TrafficSplit/default/flagger-style: spec.backends[0].weight: "lots" is not a quantity: expected a number with an optional suffix (m, k, M, G, Ki, Mi, e3, ...), e.g. "500m" or "1"
"#;

#[test]
fn a_repo_with_mistakes_gets_one_line_per_problem_and_exit_1() {
    let out = trellis(&["validate", "tests/fixtures/broken"]);
    assert_eq!(stdout(&out), EXPECTED_BROKEN);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "8 errors, 1 warning in 5 files (7 resources checked, 1 of other kinds skipped)"
    );
}

#[test]
fn the_example_repo_is_clean() {
    let out = trellis(&["validate", "../gitops-examples"]);
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("0 errors, 0 warnings in 17 files (14 resources checked"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_output_carries_every_finding_and_the_summary() {
    let out = trellis(&["validate", "--output", "json", "tests/fixtures/broken"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        EXPECTED_BROKEN.lines().count()
    );
    assert_eq!(report["summary"]["errors"], 8);
    assert_eq!(report["summary"]["warnings"], 1);
    assert_eq!(report["summary"]["skipped"], 1);
    let first = &report["findings"][0];
    assert_eq!(first["file"], "tests/fixtures/broken/access.yaml");
    assert_eq!(first["line"], 12);
    assert_eq!(first["resource"], "TrafficTarget/default/web-to-api");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["field"], "spec.rules[0].matches[1]");
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = trellis(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "error: no/such/dir: no such file or directory"
    );
}

#[test]
fn no_paths_is_a_usage_error() {
    let out = trellis(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<PATH>"), "{}", stderr(&out));
}

#[test]
fn a_directory_without_yaml_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "notes.txt", "hello");
    let out = trellis(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no YAML files"), "{}", stderr(&out));
}

const SPLIT_WITHOUT_SERVICES: &str = "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web}
spec: {service: web, backends: [{service: web-v1, weight: 1}]}
";

#[test]
fn warnings_pass_unless_strict() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "split.yaml", SPLIT_WITHOUT_SERVICES);
    let path = dir.path().to_str().unwrap();
    let relaxed = trellis(&["validate", path]);
    assert_eq!(relaxed.status.code(), Some(0));
    assert_eq!(
        stdout(&relaxed).lines().count(),
        2,
        "root and backend Services are missing"
    );
    assert!(stdout(&relaxed).lines().all(|l| l.contains(": warning: ")));
    let strict = trellis(&["validate", "--strict", path]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn namespace_rules_use_the_given_namespace_for_objects_without_one() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "shop.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web}\nspec: {service: web.shop.svc.cluster.local, backends: [{service: web, weight: 1}]}\n---\napiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\nspec: {destination: {kind: ServiceAccount, name: api, namespace: shop}, rules: [], sources: [{kind: ServiceAccount, name: web}]}\n",
    );
    let out = trellis(&[
        "validate",
        "--strict",
        "-n",
        "shop",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_file_that_is_not_utf8_is_a_finding_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
    let out = trellis(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .ends_with("latin1.yaml:1: invalid YAML: not UTF-8 text; save the file as UTF-8\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn objects_without_a_namespace_are_read_in_the_given_one() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "split.yaml", SPLIT_WITHOUT_SERVICES);
    let out = trellis(&["validate", "-n", "shop", dir.path().to_str().unwrap()]);
    assert!(stdout(&out).contains(": TrafficSplit/shop/web: spec.service: warning: no Service \"web\" in namespace \"shop\""), "{}", stdout(&out));
}

#[test]
fn unknown_kinds_and_helm_templates_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop}\n",
    );
    write(
        dir.path(),
        "chart/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    write(
        dir.path(),
        "chart/templates/split.yaml",
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n{{- if .Values.split }}\n",
    );
    write(dir.path(), ".git/config.yaml", "not: [valid");
    let out = trellis(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stderr(&out).trim(),
        "0 errors, 0 warnings in 2 files (0 resources checked, 3 of other kinds skipped, 1 Helm template skipped)"
    );
}

#[test]
fn list_items_are_checked_with_their_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: specs.smi-spec.io/v1alpha4\n  kind: TCPRoute\n  metadata: {name: db}\n  spec:\n    matches:\n      ports: [0]\n",
    );
    let out = trellis(&["validate", dir.path().join("list.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).trim_end().ends_with("list.yaml:9: TCPRoute/default/db: spec.matches.ports[0]: must be a port number between 1 and 65535, got 0"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn help_explains_the_output_and_exit_codes() {
    let out = trellis(&["validate", "--help"]);
    let help = stdout(&out);
    assert!(
        help.contains("file:line: kind/namespace/name: field: message"),
        "{help}"
    );
    assert!(
        help.contains("Exit status: 0 when there is no error"),
        "{help}"
    );
}

#[test]
fn a_root_written_as_an_fqdn_finds_its_service() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "app.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web-v1}\n---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: web}\nspec: {service: Web.default.svc.cluster.local., backends: [{service: web-v1, weight: 1}]}\n",
    );
    let out = trellis(&["validate", "--strict", dir.path().to_str().unwrap()]);
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(0));
}
