//! `trellis inject` on YAML streams: what is written back and what is reported.

use serde_json::Value;

use super::*;

const DEPLOYMENT: &str = "\
# web, as the team wrote it
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/example/web:1.0
          ports: [{containerPort: 8080}]
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:   {name: web,   namespace: shop}   # odd spacing stays
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
";

fn run(text: &str) -> Injected {
    inject_stream(text, &Config::default(), false).expect("no errors")
}

fn errors(text: &str) -> Vec<String> {
    inject_stream(text, &Config::default(), false)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn documents(text: &str) -> Vec<Value> {
    yaml::parse_stream(text)
        .documents
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn outcomes(injected: &Injected) -> Vec<String> {
    injected
        .reports
        .iter()
        .map(|r| format!("{}: {}: {}", r.line, r.object, r.outcome))
        .collect()
}

fn container_names(template: &Value) -> Vec<&str> {
    template["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

#[test]
fn the_deployment_is_injected_and_the_service_is_written_back_byte_for_byte() {
    let input = format!("{DEPLOYMENT}---\n{SERVICE}");
    let out = run(&input);
    assert!(out.changed);
    assert!(
        out.text.starts_with("# web, as the team wrote it\n"),
        "comments before a document stay"
    );
    assert!(
        out.text.ends_with(&format!("---\n{SERVICE}")),
        "{}",
        out.text
    );
    let docs = documents(&out.text);
    assert_eq!(docs.len(), 2);
    let template = &docs[0]["spec"]["template"];
    assert_eq!(container_names(template), ["trellis-proxy", "web"]);
    assert_eq!(
        template["metadata"]["annotations"]["trellis.dev/injected"],
        "0.1.0"
    );
    assert_eq!(template["metadata"]["labels"]["app"], "web");
    assert_eq!(
        outcomes(&out),
        [
            "2: Deployment/shop/web: injected (proxy container; inbound traffic goes to port 8080)",
            "19: Service/shop/web: unchanged (not a workload)",
        ]
    );
}

#[test]
fn every_workload_kind_has_its_pod_template_injected() {
    let spec = "{containers: [{name: app, image: app}]}";
    let input = format!(
        "\
kind: Pod
metadata: {{name: p}}
spec: {spec}
---
kind: StatefulSet
metadata: {{name: s}}
spec: {{template: {{spec: {spec}}}}}
---
kind: DaemonSet
metadata: {{name: d}}
spec: {{template: {{metadata: {{}}, spec: {spec}}}}}
---
kind: ReplicaSet
metadata: {{name: r}}
spec: {{template: {{metadata: null, spec: {spec}}}}}
---
kind: Job
metadata: {{name: j}}
spec: {{template: {{spec: {spec}}}}}
---
kind: CronJob
metadata: {{name: c}}
spec: {{jobTemplate: {{spec: {{template: {{spec: {spec}}}}}}}}}
---
kind: List
items:
  - {{kind: Deployment, metadata: {{name: l}}, spec: {{template: {{spec: {spec}}}}}}}
  - {{kind: ConfigMap, metadata: {{name: m}}}}
"
    );
    let out = run(&input);
    let docs = documents(&out.text);
    let templates = [
        &docs[0],
        &docs[1]["spec"]["template"],
        &docs[2]["spec"]["template"],
        &docs[3]["spec"]["template"],
        &docs[4]["spec"]["template"],
        &docs[5]["spec"]["jobTemplate"]["spec"]["template"],
        &docs[6]["items"][0]["spec"]["template"],
    ];
    for template in templates {
        assert_eq!(
            container_names(template),
            ["trellis-proxy", "app"],
            "{template}"
        );
        assert_eq!(
            template["metadata"]["annotations"]["trellis.dev/injected"],
            "0.1.0"
        );
    }
    assert_eq!(
        docs[6]["items"][1],
        serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "m"}})
    );
    assert_eq!(out.reports.len(), 8);
    assert_eq!(
        outcomes(&out)[6..],
        [
            "25: List items[0]: Deployment/l: injected (proxy container; no containerPort declared: inbound traffic goes to port 8080)",
            "25: List items[1]: ConfigMap/m: unchanged (not a workload)",
        ]
    );
}

#[test]
fn native_sidecars_put_the_proxy_among_the_init_containers() {
    let out = inject_stream(DEPLOYMENT, &Config::default(), true).unwrap();
    let template = &documents(&out.text)[0]["spec"]["template"];
    assert_eq!(container_names(template), ["web"]);
    let init: Vec<&str> = template["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(init, ["trellis-init", "trellis-proxy"]);
    assert!(outcomes(&out)[0].contains("injected (native sidecar;"));
}

#[test]
fn skipped_workloads_are_reported_and_left_as_written() {
    let opted_out = DEPLOYMENT.replace(
        "labels: {app: web}",
        "labels: {app: web, trellis.dev/inject: disabled}",
    );
    let out = run(&opted_out);
    assert!(!out.changed);
    assert_eq!(out.text, opted_out);
    assert_eq!(
        outcomes(&out),
        ["2: Deployment/shop/web: skipped: opted out (label trellis.dev/inject=disabled)"]
    );
}

#[test]
fn injecting_the_output_again_changes_nothing() {
    let once = run(&format!("{DEPLOYMENT}---\n{SERVICE}"));
    let twice = run(&once.text);
    assert!(!twice.changed);
    assert_eq!(twice.text, once.text);
    assert!(outcomes(&twice)[0].ends_with(
        "skipped: already injected (annotation trellis.dev/injected or container trellis-proxy)"
    ));
}

#[test]
fn errors_name_the_document_its_line_and_the_field() {
    let no_containers =
        "kind: Deployment\nmetadata: {name: api}\nspec:\n  template:\n    spec: {}\n";
    let no_template = "kind: Job\nmetadata: {name: once}\nspec: {}\n";
    let bad_annotation = DEPLOYMENT.replace(
        "labels: {app: web}",
        "labels: {app: web}\n      annotations: {trellis.dev/proxy-cpu-limit: lots}",
    );
    let input = format!(
        "{SERVICE}---\n{no_containers}---\n{no_template}---\n{bad_annotation}---\nkey: [\n"
    );
    assert_eq!(
        errors(&input),
        [
            "document 2 (line 8): Deployment/api: spec.template.spec.containers: a pod needs at least one container",
            "document 3 (line 14): Job/once: spec.template: missing; a Job has a pod template there",
            r#"document 4 (line 19): Deployment/shop/web: spec.template.metadata.annotations: annotation trellis.dev/proxy-cpu-limit: "lots" is not a quantity: expected a number with an optional suffix (m, k, M, G, Ki, Mi, e3, ...), e.g. "500m" or "1""#,
            "document 5 (line 37): invalid YAML: unclosed bracket '['",
        ]
    );
}

#[test]
fn an_empty_stream_and_comment_only_documents_pass_through() {
    for text in ["", "# nothing here\n", "---\n# only a comment\n---\n"] {
        let out = run(text);
        assert_eq!((out.text.as_str(), out.changed), (text, false));
    }
}
