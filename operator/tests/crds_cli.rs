//! `trellis crds`: the CRDs in the chart are exactly what the Rust types generate.

use std::process::Command;

fn trellis(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trellis"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("trellis runs")
}

#[test]
fn the_chart_crds_are_up_to_date() {
    let out = trellis(&["crds", "--check", "../charts/trellis/crds"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_reports_a_stale_file_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = trellis(&["crds", "--out", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let file = dir.path().join("trafficsplits.split.smi-spec.io.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("shortNames:\n    - ts", "shortNames:\n    - split"),
    )
    .unwrap();
    let out = trellis(&["crds", "--check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("trafficsplits.split.smi-spec.io.yaml: differs from the generated CRD"),
        "{stderr}"
    );
    assert!(stderr.contains("run `just crds`"), "{stderr}");
}

#[test]
fn printed_crds_are_valid_yaml_documents_one_per_kind() {
    let out = trellis(&["crds"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "trafficsplits.split.smi-spec.io",
            "traffictargets.access.smi-spec.io",
            "httproutegroups.specs.smi-spec.io",
            "tcproutes.specs.smi-spec.io",
            "udproutes.specs.smi-spec.io",
            "meshconfigs.trellis.dev",
            "trafficpolicies.trellis.dev",
            "canaries.trellis.dev",
        ]
    );
}
