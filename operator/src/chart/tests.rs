//! The committed chart files agree with the Rust types.

use std::path::PathBuf;
use std::process::Command;

use smi_crds::trellis::mesh_config::{MeshConfigSpec, MetricsProvider};

use super::schema::{self, values_schema};
use super::values::{Values, default_mesh_config_spec};

fn repo_file(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

#[test]
fn values_yaml_is_the_default_values() {
    let text = std::fs::read_to_string(repo_file("charts/trellis/values.yaml")).unwrap();
    let values: Values = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(values, Values::default());
}

#[test]
fn committed_values_schema_is_the_generated_one() {
    let committed = std::fs::read_to_string(repo_file(schema::PATH)).unwrap();
    assert!(
        committed == values_schema(),
        "{} is out of date: run `cargo run -p trellis-operator -- values-schema --out {}`",
        schema::PATH,
        schema::PATH
    );
}

/// The MeshConfig `helm template` renders with these `--set` values, read as the operator
/// reads it (`MeshConfigSpec` rejects unknown fields).
fn rendered_mesh_config(sets: &[&str]) -> Option<MeshConfigSpec> {
    let helm = trellis_e2e::require_tool("helm")?;
    let mut command = Command::new(helm);
    command
        .args(["template", "trellis"])
        .arg(repo_file("charts/trellis"))
        .args(["--namespace", "trellis-system"])
        .args(["--show-only", "templates/meshconfig.yaml"]);
    for set in sets {
        command.args(["--set", set]);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object: serde_json::Value =
        serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(object["kind"], "MeshConfig");
    assert_eq!(object["metadata"]["name"], "default");
    Some(serde_json::from_value(object["spec"].clone()).expect("the operator reads the spec"))
}

#[test]
fn default_mesh_config_is_the_crd_defaults() {
    if let Some(spec) = rendered_mesh_config(&[]) {
        assert_eq!(spec, default_mesh_config_spec());
    }
}

#[test]
fn mesh_config_values_reach_the_mesh_config() {
    let Some(spec) = rendered_mesh_config(&[
        "meshConfig.trustDomain=example.org",
        "meshConfig.permissive=true",
        "meshConfig.metrics.provider=Prometheus",
        "meshConfig.metrics.prometheusUrl=http://prometheus.monitoring:9090",
        "meshConfig.tracing.otlpEndpoint=http://otel.observability:4317",
    ]) else {
        return;
    };
    assert_eq!(spec.trust_domain, "example.org");
    assert!(spec.permissive);
    assert_eq!(spec.metrics.provider, MetricsProvider::Prometheus);
    assert_eq!(
        spec.metrics.prometheus_url.as_deref(),
        Some("http://prometheus.monitoring:9090")
    );
    let tracing = spec.tracing.expect("tracing set");
    assert_eq!(tracing.otlp_endpoint, "http://otel.observability:4317");
    assert_eq!(tracing.sampling_percent, 1.0);
}
