//! Trellis' ArgoCD health checks, run without a cluster (docs/argocd.md):
//!
//! ```text
//! gitops-examples/argocd/health/<group>_<Kind>/health.lua --run like ArgoCD--> {status, message}
//!      |                                  == e2e/tests/argocd_health/<Kind>/health_test.yaml
//!      +--> gitops-examples/argocd/argocd-cm-health.yaml (the same text, one key per kind)
//! ```
//!
//! The Applications that install them are checked in `argocd_apps.rs`.
//!
//! Health checks run as ArgoCD runs them: Lua 5.1 (ArgoCD embeds gopher-lua, a Lua 5.1; here
//! PUC Lua 5.1 through mlua), only the base, table, string and math libraries, the object as
//! the global `obj` converted from its JSON the way ArgoCD converts it (objects and arrays
//! become tables, arrays 1-based, nulls absent, numbers floats), and the returned table read
//! as `{status, message}`. The fixtures mirror ArgoCD's own
//! `resource_customizations/<group>/<Kind>/health_test.yaml` and `testdata/`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_e2e::workspace_root;

/// Health statuses ArgoCD accepts from a health check.
const STATUSES: [&str; 6] = [
    "Healthy",
    "Progressing",
    "Degraded",
    "Suspended",
    "Missing",
    "Unknown",
];

/// Set to regenerate `gitops-examples/argocd/argocd-cm-health.yaml` from the Lua files.
const REGENERATE: &str = "TRELLIS_REGENERATE";

const HEALTH_DIR: &str = "gitops-examples/argocd/health";
const CM_SNIPPET: &str = "gitops-examples/argocd/argocd-cm-health.yaml";
const FIXTURES: &str = "e2e/tests/argocd_health";

// ---------------------------------------------------------------------------------------
// Health checks against their fixtures

#[test]
fn every_health_check_gives_the_status_and_message_its_health_test_yaml_expects() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for check in health_checks() {
        for case in cases(&check.kind) {
            ran += 1;
            let object = read_yaml(&case.input);
            assert_eq!(
                object["kind"].as_str(),
                Some(check.kind.as_str()),
                "{}: the fixture is not a {}",
                case.input.display(),
                check.kind
            );
            let group = object["apiVersion"]
                .as_str()
                .and_then(|v| v.split_once('/'))
                .map(|(g, _)| g);
            assert_eq!(
                group,
                Some(check.group.as_str()),
                "{}: the fixture's group is not the check's",
                case.input.display()
            );
            match run_health_check(&check.script, &object) {
                Ok(got) if got == case.expected => {}
                Ok(got) => failures.push(format!(
                    "{}:\n  expected {} {:?}\n  got      {} {:?}",
                    case.input.display(),
                    case.expected.status,
                    case.expected.message,
                    got.status,
                    got.message
                )),
                Err(e) => failures.push(format!("{}: {e}", case.input.display())),
            }
        }
    }
    assert!(ran > 0, "no fixtures under {FIXTURES}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn canary_and_the_smi_kinds_are_tested_healthy_progressing_and_degraded_and_canary_suspended() {
    let checks = health_checks();
    let kinds: BTreeSet<String> = checks.iter().map(|c| c.kind.clone()).collect();
    let fixture_kinds: BTreeSet<String> = fs::read_dir(repo(FIXTURES))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        kinds, fixture_kinds,
        "every health check has a fixture directory and every fixture directory a check"
    );
    let wanted = [
        ("TrafficSplit", &["Healthy", "Progressing", "Degraded"][..]),
        ("TrafficTarget", &["Healthy", "Progressing", "Degraded"]),
        ("HTTPRouteGroup", &["Healthy", "Progressing", "Degraded"]),
        ("TCPRoute", &["Healthy", "Progressing", "Degraded"]),
        ("UDPRoute", &["Healthy", "Progressing", "Degraded"]),
        ("TrafficPolicy", &["Healthy", "Progressing", "Degraded"]),
        ("MeshConfig", &["Healthy", "Progressing", "Degraded"]),
        (
            "Canary",
            &["Healthy", "Progressing", "Degraded", "Suspended"],
        ),
        ("Application", &["Healthy", "Progressing", "Degraded"]),
    ];
    for (kind, statuses) in wanted {
        assert!(kinds.contains(kind), "no health check for {kind}");
        let covered: BTreeSet<String> =
            cases(kind).into_iter().map(|c| c.expected.status).collect();
        for status in statuses {
            assert!(
                covered.contains(*status),
                "{kind}: no fixture expects {status} (covered: {covered:?})"
            );
        }
    }
}

#[test]
fn only_the_canary_is_ever_suspended_whatever_the_others_spec_says() {
    // SMI resources, TrafficPolicy and MeshConfig have no way to pause: a `suspend` field
    // is not theirs to read.
    for check in health_checks().iter().filter(|c| c.kind != "Canary") {
        for case in cases(&check.kind) {
            let mut object = read_yaml(&case.input);
            object["spec"]["suspend"] = Value::Bool(true);
            let got = run_health_check(&check.script, &object).unwrap();
            assert_eq!(got, case.expected, "{}", case.input.display());
        }
    }
}

#[test]
fn a_health_check_sees_arrays_one_based_and_no_nulls_as_under_argocd() {
    let object = serde_json::json!({
        "status": {"conditions": [{"type": "First"}, {"type": "Second"}], "gone": null},
        "metadata": {"generation": 3}
    });
    let script = r#"
        local hs = {}
        hs.status = "Healthy"
        hs.message = obj.status.conditions[1].type .. "," .. obj.status.conditions[2].type
            .. "," .. #obj.status.conditions .. "," .. tostring(obj.status.gone)
            .. "," .. obj.metadata.generation .. "," .. type(obj.metadata.generation)
        return hs
    "#;
    let got = run_health_check(script, &object).unwrap();
    assert_eq!(got.message, "First,Second,2,nil,3,number");
}

#[test]
fn a_health_check_has_only_the_libraries_argocd_opens() {
    let script = r#"
        local hs = {}
        hs.status = "Healthy"
        hs.message = type(string.find) .. "," .. type(table.concat) .. "," .. type(math.floor)
            .. "," .. type(io) .. "," .. type(require)
        return hs
    "#;
    let got = run_health_check(script, &serde_json::json!({})).unwrap();
    assert_eq!(got.message, "function,function,function,nil,nil");
}

#[test]
fn a_health_check_that_returns_no_valid_status_is_an_error() {
    let err = run_health_check(
        "local hs = {}\nhs.status = \"Fine\"\nreturn hs",
        &serde_json::json!({}),
    )
    .unwrap_err();
    assert!(
        err.contains("\"Fine\" is not an ArgoCD health status"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------
// The argocd-cm snippet

#[test]
fn the_argocd_cm_snippet_holds_exactly_the_lua_files() {
    let checks = health_checks();
    let expected = argocd_cm_snippet(&checks);
    let path = repo(CM_SNIPPET);
    if std::env::var_os(REGENERATE).is_some() {
        fs::write(&path, &expected).unwrap();
    }
    let actual = fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{CM_SNIPPET} is not what the Lua files make; regenerate it with \
         `{REGENERATE}=1 cargo test -p trellis-e2e --test argocd_health`"
    );
    // What ArgoCD reads: each key's value, as YAML parses it, is the Lua file's text.
    let cm = read_yaml(&path);
    let data = cm["data"].as_object().expect("argocd-cm has data");
    let keys: BTreeSet<&String> = data.keys().collect();
    let wanted: BTreeSet<String> = checks.iter().map(HealthCheck::argocd_cm_key).collect();
    assert_eq!(keys, wanted.iter().collect());
    for check in &checks {
        assert_eq!(
            data[&check.argocd_cm_key()].as_str(),
            Some(check.script.as_str()),
            "{}",
            check.argocd_cm_key()
        );
    }
}

/// `argocd-cm` with one `resource.customizations.health.<group>_<Kind>` key per check.
fn argocd_cm_snippet(checks: &[HealthCheck]) -> String {
    let mut out = String::from(
        "# Generated from gitops-examples/argocd/health/*/health.lua; do not edit: change the\n\
         # Lua files and run `TRELLIS_REGENERATE=1 cargo test -p trellis-e2e --test argocd_health`.\n\
         # Merge into ArgoCD's argocd-cm (docs/argocd.md):\n\
         #   kubectl -n argocd patch configmap argocd-cm --patch-file gitops-examples/argocd/argocd-cm-health.yaml\n\
         apiVersion: v1\n\
         kind: ConfigMap\n\
         metadata:\n\
         \x20 name: argocd-cm\n\
         \x20 namespace: argocd\n\
         \x20 labels:\n\
         \x20   app.kubernetes.io/name: argocd-cm\n\
         \x20   app.kubernetes.io/part-of: argocd\n\
         data:\n",
    );
    for check in checks {
        out += &format!("  {}: |\n", check.argocd_cm_key());
        for line in check.script.lines() {
            if line.is_empty() {
                out += "\n";
            } else {
                out += &format!("    {line}\n");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Running a health check as ArgoCD does

/// One `health.lua` under gitops-examples/argocd/health/<group>_<Kind>/.
struct HealthCheck {
    group: String,
    kind: String,
    script: String,
}

impl HealthCheck {
    fn argocd_cm_key(&self) -> String {
        format!(
            "resource.customizations.health.{}_{}",
            self.group, self.kind
        )
    }
}

#[derive(Debug, PartialEq)]
struct Health {
    status: String,
    message: String,
}

struct Case {
    input: PathBuf,
    expected: Health,
}

/// Every health check, in directory order (the order of the argocd-cm snippet).
fn health_checks() -> Vec<HealthCheck> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(repo(HEALTH_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let (group, kind) = name
                .rsplit_once('_')
                .unwrap_or_else(|| panic!("{name}: health directories are <group>_<Kind>"));
            HealthCheck {
                group: group.to_owned(),
                kind: kind.to_owned(),
                script: fs::read_to_string(dir.join("health.lua")).unwrap(),
            }
        })
        .collect()
}

/// The cases of `<FIXTURES>/<kind>/health_test.yaml`.
fn cases(kind: &str) -> Vec<Case> {
    let dir = repo(FIXTURES).join(kind);
    let tests = read_yaml(&dir.join("health_test.yaml"));
    tests["tests"]
        .as_array()
        .unwrap_or_else(|| panic!("{kind}/health_test.yaml has no tests"))
        .iter()
        .map(|t| Case {
            input: dir.join(t["inputPath"].as_str().expect("inputPath")),
            expected: Health {
                status: t["healthStatus"]["status"].as_str().unwrap().to_owned(),
                message: t["healthStatus"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            },
        })
        .collect()
}

/// Runs `script` with `obj` set to `object`, as ArgoCD's Lua VM does.
fn run_health_check(script: &str, object: &Value) -> Result<Health, String> {
    use mlua::{Lua, LuaOptions, StdLib};
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::STRING | StdLib::MATH,
        LuaOptions::default(),
    )
    .map_err(|e| e.to_string())?;
    let obj = to_lua(&lua, object).map_err(|e| e.to_string())?;
    lua.globals().set("obj", obj).map_err(|e| e.to_string())?;
    let hs: mlua::Table = lua
        .load(script)
        .set_name("health.lua")
        .eval()
        .map_err(|e| format!("the script failed: {e}"))?;
    let status: Option<String> = hs.get("status").map_err(|e| e.to_string())?;
    let message: Option<String> = hs.get("message").map_err(|e| e.to_string())?;
    let status = status.unwrap_or_default();
    if !STATUSES.contains(&status.as_str()) {
        return Err(format!(
            "{status:?} is not an ArgoCD health status (one of {STATUSES:?})"
        ));
    }
    Ok(Health {
        status,
        message: message.unwrap_or_default(),
    })
}

/// JSON to Lua as ArgoCD converts an object: arrays are 1-based sequences, nulls are left
/// out (gopher-lua's `Append` and `RawSetString` drop nil), numbers are floats.
fn to_lua(lua: &mlua::Lua, value: &Value) -> mlua::Result<mlua::Value> {
    Ok(match value {
        Value::Null => mlua::Value::Nil,
        Value::Bool(b) => mlua::Value::Boolean(*b),
        Value::Number(n) => mlua::Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => mlua::Value::String(lua.create_string(s)?),
        Value::Array(items) => {
            let table = lua.create_table()?;
            for item in items.iter().filter(|i| !i.is_null()) {
                table.push(to_lua(lua, item)?)?;
            }
            mlua::Value::Table(table)
        }
        Value::Object(fields) => {
            let table = lua.create_table()?;
            for (key, field) in fields {
                table.set(key.as_str(), to_lua(lua, field)?)?;
            }
            mlua::Value::Table(table)
        }
    })
}

// ---------------------------------------------------------------------------------------
// Files

fn repo(path: &str) -> PathBuf {
    workspace_root().join(path)
}

fn read_yaml(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
