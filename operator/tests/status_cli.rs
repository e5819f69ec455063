//! `trellis status` against a real `trellis operator --local`: what a user sees about the
//! manifests the operator read, as a table, JSON and YAML, and what they see when the
//! operator is not there.

use std::process::{Command, Output};

use serde_json::Value;
use trellis_e2e::operator::{Operator, write_manifest};

const SERVICES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web-v2, namespace: shop}
spec: {selector: {app: web-v2}, ports: [{name: http, port: 80, targetPort: 8080}]}
";

const SPLIT: &str = "\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-rollout, namespace: shop}
spec:
  service: web
  backends:
  - {service: web, weight: 90}
  - {service: web-v2, weight: 10}
";

/// A negative weight on line 7.
const BAD_SPLIT: &str = "\
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: web-broken, namespace: shop}
spec:
  service: web
  backends:
  - {service: web, weight: -5}
";

const WEIGHT_MESSAGE: &str =
    "spec.backends[0].weight: must be a whole number between 0 and 4294967295, got -5";

fn trellis(args: &[&str]) -> Output {
    Command::new(trellis_e2e::binary("trellis"))
        .args(args)
        .env_remove("TRELLIS_ADMIN")
        .output()
        .expect("trellis runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `trellis status --admin http://<admin> ARGS`, which must succeed; its stdout.
fn status(operator: &Operator, args: &[&str]) -> String {
    let admin = format!("http://{}", operator.admin);
    let out = trellis(&[&["status", "--admin", &admin], args].concat());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// An operator that has read the Services and both splits.
async fn operator_with_splits(dir: &std::path::Path) -> Operator {
    write_manifest(dir, "services.yaml", SERVICES);
    write_manifest(dir, "split.yaml", SPLIT);
    write_manifest(dir, "broken.yaml", BAD_SPLIT);
    let operator = Operator::start(dir).await.expect("the operator starts");
    operator
        .wait_status("both splits", |s| {
            s["resources"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await
        .unwrap();
    operator
}

fn resource_names(status: &Value) -> Vec<String> {
    status["resources"]
        .as_array()
        .expect("resources is a list")
        .iter()
        .map(|r| format!("{}/{}", r["kind"], r["name"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_table_shows_each_resource_its_conditions_and_where_it_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_with_splits(dir.path()).await;

    let table = status(&operator, &[]);
    let row = |name: &str| -> Vec<String> {
        let line = table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name} in:\n{table}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(
        row("shop/web-rollout"),
        [
            "TrafficSplit",
            "shop/web-rollout",
            "True",
            "True",
            "split.yaml:1"
        ],
        "{table}"
    );
    let broken = row("shop/web-broken");
    assert_eq!(
        broken[..5],
        [
            "TrafficSplit",
            "shop/web-broken",
            "False",
            "-",
            "broken.yaml:7"
        ],
        "{table}"
    );
    assert!(
        broken[5..]
            .join(" ")
            .starts_with(&format!("Invalid: {WEIGHT_MESSAGE}")),
        "{table}"
    );
    let sources = table.split("RESOURCES").next().unwrap();
    assert!(sources.contains("SOURCES\n  NAME"), "{table}");
    assert!(
        sources
            .lines()
            .any(|l| l.starts_with("  dir ") && l.contains(" yes ")),
        "the dir source is synced:\n{table}"
    );
    assert!(table.contains("WORKLOADS\n  (none)"), "{table}");
    assert!(table.contains("PROXIES\n  (none)"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_shows_as_an_error_under_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_with_splits(dir.path()).await;
    write_manifest(dir.path(), "typo.yaml", "a: [\n");
    operator
        .wait_status("the source error", |s| s["sources"][0]["errors"].is_array())
        .await
        .unwrap();

    let table = status(&operator, &[]);
    assert!(
        table.contains("\n    error: typo.yaml:1: "),
        "the error has its own indented line:\n{table}"
    );
    assert!(
        table.contains("shop/web-rollout"),
        "the last good set stays:\n{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_and_yaml_hold_what_the_operator_serves() {
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_with_splits(dir.path()).await;
    let served = operator.status().await.unwrap();

    let json: Value = serde_json::from_str(&status(&operator, &["-o", "json"])).unwrap();
    assert_eq!(resource_names(&json), resource_names(&served));
    let broken = json["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "web-broken")
        .unwrap();
    assert_eq!(broken["origin"]["file"], "broken.yaml");
    assert_eq!(broken["origin"]["line"], 7);
    assert_eq!(broken["conditions"][0]["status"], "False");

    let yaml = status(&operator, &["--output", "yaml"]);
    let parsed: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(resource_names(&parsed), resource_names(&served), "{yaml}");
    assert_eq!(parsed["resources"], json["resources"], "{yaml}");
}

#[test]
fn an_operator_that_is_not_there_gives_exit_2_and_a_hint() {
    let admin = format!("http://{}", trellis_e2e::backend::refusing_addr());
    let out = trellis(&["status", "--admin", &admin]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "trellis status: cannot reach the operator's admin endpoint at {admin}: "
        )),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("is `trellis operator --local` running? Point --admin at its admin address."),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "");

    // The same from TRELLIS_ADMIN.
    let out = Command::new(trellis_e2e::binary("trellis"))
        .arg("status")
        .env("TRELLIS_ADMIN", &admin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&admin), "{}", text(&out.stderr));
}

#[test]
fn help_explains_the_flags_with_examples() {
    let help = text(&trellis(&["status", "--help"]).stdout);
    for expected in [
        "--admin <URL>",
        "TRELLIS_ADMIN",
        "-o, --output <FORMAT>",
        "table",
        "json",
        "yaml",
        "Examples:",
        "trellis status --admin http://",
    ] {
        assert!(help.contains(expected), "no {expected:?} in:\n{help}");
    }
}
