use serde_json::{Value, json};

use super::{Format, render};

fn mk_condition(type_: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({
        "type": type_,
        "status": if status { "True" } else { "False" },
        "reason": reason,
        "message": message,
    })
}

fn accepted() -> Value {
    mk_condition("Accepted", true, "Accepted", "accepted and in force")
}

fn resolved() -> Value {
    mk_condition(
        "ResolvedRefs",
        true,
        "ResolvedRefs",
        "every referenced resource exists",
    )
}

fn mk_resource(kind: &str, name: &str, file: &str, line: u64, conditions: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "namespace": "shop",
        "name": name,
        "origin": {"source": "dir", "file": file, "line": line, "revision": "07a4f7026f38f1c3"},
        "conditions": conditions,
    })
}

fn mk_workload(name: &str, labels: Value, ready: bool) -> Value {
    json!({
        "namespace": "shop",
        "name": name,
        "serviceAccount": "web",
        "labels": labels,
        "addresses": ["10.0.0.7"],
        "inboundPort": 4143,
        "ready": ready,
    })
}

const WEIGHT_MESSAGE: &str = "spec.backends[0].weight: must be a whole number between 0 and \
     4294967295, got -5; no version of it is in force";

/// What `/status` answers for a Git source with a broken file, three resources (one
/// invalid, one missing a backend), two workloads and a proxy with a NACKed watch.
fn mk_status() -> Value {
    let mut target = mk_resource(
        "TrafficTarget",
        "to-web",
        "access.yaml",
        20,
        vec![accepted(), resolved()],
    );
    target["unknownField"] = json!({"from": "a newer operator"});
    json!({
        "revision": 7,
        "ready": true,
        "sources": [{
            "name": "git",
            "location": "https://example.com/mesh.git",
            "synced": true,
            "revision": "4f2c1e9a0b7d3c5e8f1a2b3c4d5e6f708192a3b4",
            "objects": 5,
            "lastAttempt": "2024-05-01T10:00:00Z",
            "errors": ["broken.yaml:3: unclosed bracket '['"],
        }],
        "counts": {"endpoints": 2, "services": 2, "subscriptions": 2, "workloads": 2},
        "resources": [
            mk_resource("TrafficSplit", "web-bad", "bad.yaml", 7, vec![
                mk_condition("Accepted", false, "Invalid", WEIGHT_MESSAGE),
            ]),
            mk_resource("TrafficSplit", "web-rollout", "split.yaml", 1, vec![
                accepted(),
                mk_condition("ResolvedRefs", false, "BackendNotFound",
                    "spec.backends[1].service: no Service \"web-v3\" in namespace \"shop\""),
            ]),
            mk_resource("HTTPRouteGroup", "web-routes", "access.yaml", 12, vec![accepted()]),
            target,
        ],
        "workloads": [
            mk_workload("web-1", json!({"version": "v1", "app": "web"}), true),
            mk_workload("web-2", json!({}), false),
        ],
        "subscriptions": [
            {"id": 1, "kind": "inbound", "workload": "shop/web-1", "target": "shop/web-1",
             "pushes": 2, "sent_version": "42a0818328f4fb1f", "applied_version": "42a0818328f4fb1f"},
            {"id": 2, "kind": "outbound", "workload": "shop/web-1", "target": "api.shop",
             "pushes": 3, "sent_version": "ba262f0fa38b7dd9", "applied_version": "1d0c9e2a7b3f4e51",
             "rejected": ["ba262f0fa38b7dd9", "route 0: unknown filter"]},
        ],
    })
}

fn table(status: &Value) -> String {
    render(status, Format::Table).unwrap()
}

#[test]
fn the_table_shows_every_section() {
    let expected = format!(
        "\
Index revision 7, ready; endpoints 2, services 2, subscriptions 2, workloads 2

SOURCES
  NAME  LOCATION                      REVISION      SYNCED  OBJECTS
  git   https://example.com/mesh.git  4f2c1e9a0b7d  yes     5
    lastAttempt: 2024-05-01T10:00:00Z
    error: broken.yaml:3: unclosed bracket '['

RESOURCES
  KIND            NAMESPACE/NAME    ACCEPTED  RESOLVEDREFS  FILE:LINE       MESSAGE
  TrafficSplit    shop/web-bad      False     -             bad.yaml:7      Invalid: {WEIGHT_MESSAGE}
  TrafficSplit    shop/web-rollout  True      False         split.yaml:1    BackendNotFound: spec.backends[1].service: no Service \"web-v3\" in namespace \"shop\"
  HTTPRouteGroup  shop/web-routes   True      -             access.yaml:12
  TrafficTarget   shop/to-web       True      True          access.yaml:20

CANARIES
  (none)

WORKLOADS
  NAMESPACE/NAME  SERVICE ACCOUNT  ADDRESSES  INBOUND PORT  READY  LABELS
  shop/web-1      web              10.0.0.7   4143          yes    app=web,version=v1
  shop/web-2      web              10.0.0.7   4143          no     -

PROXIES
  WORKLOAD    KIND      WATCHES     VERSION           ACKED                          PUSHES  LAST NACK
  shop/web-1  inbound   shop/web-1  42a0818328f4fb1f  yes                            2       -
  shop/web-1  outbound  api.shop    ba262f0fa38b7dd9  no (applied 1d0c9e2a7b3f4e51)  3       ba262f0fa38b7dd9: route 0: unknown filter
"
    );
    assert_eq!(table(&mk_status()), expected);
}

#[test]
fn a_resource_row_names_its_file_line_and_what_is_wrong() {
    let text = table(&mk_status());
    let row = text
        .lines()
        .find(|l| l.contains("shop/web-bad"))
        .expect("the invalid split has a row");
    assert!(row.contains("bad.yaml:7"), "{row}");
    assert!(
        row.ends_with(&format!("Invalid: {WEIGHT_MESSAGE}")),
        "{row}"
    );
    let valid = text.lines().find(|l| l.contains("shop/to-web")).unwrap();
    assert!(
        valid.ends_with("access.yaml:20"),
        "no message when all are True: {valid}"
    );
}

#[test]
fn a_canary_shows_its_phase_weight_metrics_and_last_event() {
    let status = json!({
        "canaries": [{
            "namespace": "shop",
            "name": "api",
            "status": {
                "phase": "Progressing",
                "canaryWeight": 40,
                "failedChecks": 1,
                "target": "v3",
                "message": "check failed (1 of 3 allowed): request-success-rate: 97.5 < min 99",
                "metrics": [
                    {"name": "request-success-rate", "value": 97.5,
                     "thresholdRange": {"min": 99.0}, "verdict": "Fail"},
                    {"name": "request-duration", "thresholdRange": {"max": 500.0},
                     "verdict": "NoData", "message": "no requests to shop/api-v3 in the last 1s"},
                ],
            },
            "events": [{"time": "2026-11-22T10:00:00Z", "reason": "CheckFailed",
                        "message": "check failed (1 of 3 allowed)"}],
        }],
    });
    let text = table(&status);
    let section = text.split("CANARIES\n").nth(1).unwrap();
    let section: String = section.split("\n\n").next().unwrap().to_owned();
    assert_eq!(
        section,
        "  NAMESPACE/NAME  PHASE        WEIGHT  FAILED CHECKS  TARGET  MESSAGE
  shop/api        Progressing  40%     1              v3      check failed (1 of 3 allowed): request-success-rate: 97.5 < min 99
    request-success-rate 97.5 (min 99.0): Fail
    request-duration - (max 500.0): NoData - no requests to shop/api-v3 in the last 1s
    last event: CheckFailed: check failed (1 of 3 allowed)"
    );
}

#[test]
fn empty_sections_say_none() {
    let status = json!({
        "revision": 0,
        "ready": false,
        "sources": [{"name": "dir", "location": "mesh", "synced": false, "objects": 0,
                     "errors": ["mesh: no such directory"]}],
        "counts": {},
        "resources": [],
        "workloads": [],
        "subscriptions": [],
    });
    assert_eq!(
        table(&status),
        "\
Index revision 0, NOT READY (a source has not synced yet)

SOURCES
  NAME  LOCATION  REVISION  SYNCED  OBJECTS
  dir   mesh      -         no      0
    error: mesh: no such directory

RESOURCES
  (none)

CANARIES
  (none)

WORKLOADS
  (none)

PROXIES
  (none)
"
    );
}

#[test]
fn missing_or_odd_fields_never_fail() {
    let text = table(&json!({"resources": [{"kind": "MeshConfig", "name": "mesh",
        "origin": {"source": "kube"}, "conditions": "not a list"}], "sources": "?"}));
    assert!(
        text.starts_with("Index revision -, readiness unknown\n"),
        "{text}"
    );
    assert!(
        text.contains("  MeshConfig  mesh            -         -             kube"),
        "{text}"
    );
    assert!(table(&json!(null)).contains("SOURCES\n  (none)"));
}

#[test]
fn only_git_commit_ids_are_shortened() {
    use super::short_revision;
    assert_eq!(
        short_revision("4f2c1e9a0b7d3c5e8f1a2b3c4d5e6f708192a3b4"),
        "4f2c1e9a0b7d"
    );
    assert_eq!(short_revision("07a4f7026f38f1c3"), "07a4f7026f38f1c3");
    assert_eq!(short_revision("main@{yesterday}"), "main@{yesterday}");
}

#[test]
fn json_and_yaml_hold_the_same_data() {
    let status = mk_status();
    let json: Value = serde_json::from_str(&render(&status, Format::Json).unwrap()).unwrap();
    assert_eq!(json, status);
    let yaml = render(&status, Format::Yaml).unwrap();
    let parsed: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(parsed, status, "{yaml}");
}
