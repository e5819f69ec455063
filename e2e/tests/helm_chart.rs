//! The Helm chart `charts/trellis` as a user meets it: `helm lint --strict` passes,
//! `helm template` renders valid Kubernetes objects (checked by `kubernetes-validate`
//! against the oldest and a recent supported Kubernetes) with defaults and with every
//! optional part on, the objects keep the promises of docs/install.md (non-root,
//! read-only root filesystem, webhooks on the operator's Service, least-privilege RBAC),
//! and values that break the schema fail with Helm's schema message.
//!
//! Needs `helm` (`bash .ci/install-helm.sh`) and `kubernetes-validate` on PATH; skipped
//! without them unless TRELLIS_STRICT=1.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use trellis_e2e::{require_tool, workspace_root};

const NAMESPACE: &str = "trellis-system";
/// The chart's `kubeVersion` floor and a recent release.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.27.0", "1.34.0"];
/// Every optional part on.
const ALL_ON: &[&str] = &[
    "serviceMonitor.enabled=true",
    "podMonitor.enabled=true",
    "podDisruptionBudget.enabled=true",
    "replicas=2",
];
/// Kinds `kubernetes-validate` has no schema for: the chart's own CRD (checked in the
/// operator's chart tests against the Rust type) and the Prometheus Operator's.
const NOT_BUILT_IN: [&str; 3] = ["MeshConfig", "ServiceMonitor", "PodMonitor"];

fn chart() -> PathBuf {
    workspace_root().join("charts/trellis")
}

fn helm(helm: &PathBuf, args: &[&str]) -> Output {
    Command::new(helm).args(args).output().expect("helm runs")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `helm template` with `--set` values: the command's output.
fn template_output(helm_path: &PathBuf, sets: &[&str]) -> Output {
    let chart = chart();
    let mut args = vec![
        "template",
        "trellis",
        chart.to_str().unwrap(),
        "--namespace",
        NAMESPACE,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(helm_path, &args)
}

/// The rendered objects, or `None` when helm is missing (and the run is not strict).
fn render(sets: &[&str]) -> Option<Vec<Value>> {
    let helm_path = require_tool("helm")?;
    let out = template_output(&helm_path, sets);
    assert!(
        out.status.success(),
        "helm template {sets:?}:\n{}",
        text(&out)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    Some(docs.into_iter().filter(|d| !d.is_null()).collect())
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} rendered"))
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn strs(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every rendered object passes `kubernetes-validate --strict` (unknown fields are
/// errors), except the kinds it has no schema for, which must be exactly `expected_unknown`.
fn assert_valid_kubernetes(objects: &[Value], expected_unknown: &[&str]) {
    let Some(tool) = require_tool("kubernetes-validate") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = objects
        .iter()
        .enumerate()
        .map(|(i, object)| {
            let path = dir.path().join(format!(
                "{i:02}-{}-{}.json",
                object["kind"].as_str().unwrap(),
                object["metadata"]["name"].as_str().unwrap()
            ));
            std::fs::write(&path, serde_json::to_vec_pretty(object).unwrap()).unwrap();
            path
        })
        .collect();
    for version in KUBERNETES_VERSIONS {
        let out = Command::new(&tool)
            .args(["--strict", "--kubernetes-version", version])
            .args(&files)
            .output()
            .unwrap();
        let report = text(&out);
        assert!(out.status.success(), "kubernetes {version}:\n{report}");
        let unknown: BTreeSet<&str> = report
            .lines()
            .filter(|l| l.contains("Couldn't find schema for kind"))
            .map(|l| {
                l.split("for kind ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap()
            })
            .collect();
        assert_eq!(
            unknown,
            expected_unknown.iter().copied().collect(),
            "kinds kubernetes-validate could not check (kubernetes {version}):\n{report}"
        );
        assert_eq!(
            report.matches("passed").count(),
            files.len() - expected_unknown.len(),
            "every built-in object passes (kubernetes {version}):\n{report}"
        );
    }
}

#[test]
fn helm_lint_strict_passes_with_defaults_and_every_option() {
    let Some(helm_path) = require_tool("helm") else {
        return;
    };
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let out = helm(&helm_path, &["lint", "--strict", chart]);
    assert!(out.status.success(), "{}", text(&out));
    let mut args = vec!["lint", "--strict", chart];
    for set in ALL_ON {
        args.extend(["--set", set]);
    }
    let out = helm(&helm_path, &args);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn default_render_is_valid_kubernetes() {
    let Some(objects) = render(&[]) else {
        return;
    };
    let expected: BTreeSet<String> = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "MeshConfig",
        "MutatingWebhookConfiguration",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ValidatingWebhookConfiguration",
    ]
    .map(String::from)
    .into();
    assert_eq!(kinds(&objects), expected);
    assert_valid_kubernetes(&objects, &["MeshConfig"]);
}

#[test]
fn every_option_on_renders_valid_kubernetes() {
    let Some(objects) = render(ALL_ON) else {
        return;
    };
    let kinds = kinds(&objects);
    for kind in ["ServiceMonitor", "PodMonitor", "PodDisruptionBudget"] {
        assert!(kinds.contains(kind), "{kind} rendered: {kinds:?}");
    }
    assert_valid_kubernetes(&objects, &NOT_BUILT_IN);

    let deployment = find(&objects, "Deployment", "trellis-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let anti_affinity = &deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"];
    assert_eq!(
        anti_affinity["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"],
        "kubernetes.io/hostname",
        "two replicas prefer two nodes"
    );
    let pdb = find(&objects, "PodDisruptionBudget", "trellis-operator");
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    let monitor = find(&objects, "ServiceMonitor", "trellis-operator");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
}

#[test]
fn operator_runs_non_root_on_a_read_only_root_filesystem() {
    let Some(objects) = render(&[]) else {
        return;
    };
    let deployment = find(&objects, "Deployment", "trellis-operator");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "trellis-operator");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert!(pod["affinity"].is_null(), "one replica: no anti-affinity");
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    let operator = &containers[0];
    assert_eq!(operator["image"], "ghcr.io/trellis-mesh/operator:0.1.0");
    let security = &operator["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strs(&security["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(
        strs(&operator["args"]),
        [
            "operator",
            "--kube",
            "--namespace=$(POD_NAMESPACE)",
            "--listen=0.0.0.0:8090",
            "--admin=0.0.0.0:9990",
            "--webhook=0.0.0.0:9443",
            "--inject-config=/etc/trellis/inject.yaml",
            "--data-dir=/var/run/trellis",
        ]
    );
    assert_eq!(operator["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(operator["livenessProbe"]["httpGet"]["path"], "/live");
    // Writable places are volumes: the data dir (emptyDir) and the injection config.
    let mounts: Vec<(&str, &str)> = operator["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap(),
                m["mountPath"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        [
            ("data", "/var/run/trellis"),
            ("inject-config", "/etc/trellis")
        ]
    );
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(volumes[0]["emptyDir"].is_object());
    assert_eq!(volumes[1]["configMap"]["name"], "trellis-inject");

    let config = find(&objects, "ConfigMap", "trellis-inject");
    let inject: Value = serde_saphyr::from_str(config["data"]["inject.yaml"].as_str().unwrap())
        .expect("inject.yaml is YAML");
    assert_eq!(inject["image"], "ghcr.io/trellis-mesh/proxy:0.1.0");
    assert_eq!(
        inject["controlPlane"],
        "http://trellis-operator.trellis-system.svc:8090"
    );
    assert_eq!(inject["trustDomain"], "cluster.local");
    assert_eq!(inject["sidecarMode"], "auto");
    assert_eq!(inject["proxyUid"], 2102);
}

#[test]
fn webhooks_call_the_operator_service_without_a_ca_bundle() {
    let Some(objects) = render(&[]) else {
        return;
    };
    let service = find(&objects, "Service", "trellis-operator");
    let webhook_port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhook")
        .expect("a webhook port");
    assert_eq!(webhook_port["port"], 443);
    assert_eq!(webhook_port["targetPort"], "webhook");

    let expect = |kind: &str, name: &str, paths: &[(&str, &str, &str)]| {
        let config = find(&objects, kind, name);
        let webhooks = config["webhooks"].as_array().unwrap();
        let seen: Vec<(&str, &str, &str)> = webhooks
            .iter()
            .map(|w| {
                let client = &w["clientConfig"];
                assert!(
                    client["caBundle"].is_null(),
                    "{name}: the operator injects the caBundle"
                );
                assert_eq!(client["service"]["name"], "trellis-operator");
                assert_eq!(client["service"]["namespace"], NAMESPACE);
                assert_eq!(client["service"]["port"], 443);
                assert_eq!(w["sideEffects"], "None");
                assert_eq!(strs(&w["admissionReviewVersions"]), ["v1"]);
                (
                    w["name"].as_str().unwrap(),
                    client["service"]["path"].as_str().unwrap(),
                    w["failurePolicy"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(seen, paths, "{kind} {name}");
    };
    expect(
        "ValidatingWebhookConfiguration",
        "trellis-validation",
        &[("validate.trellis.dev", "/validate", "Fail")],
    );
    expect(
        "MutatingWebhookConfiguration",
        "trellis-injection",
        &[
            ("inject.trellis.dev", "/inject", "Ignore"),
            ("inject-pod.trellis.dev", "/inject", "Ignore"),
        ],
    );
    let validation = find(
        &objects,
        "ValidatingWebhookConfiguration",
        "trellis-validation",
    );
    let rule = &validation["webhooks"][0]["rules"][0];
    assert_eq!(
        strs(&rule["apiGroups"]),
        [
            "split.smi-spec.io",
            "access.smi-spec.io",
            "specs.smi-spec.io",
            "trellis.dev"
        ]
    );
    assert_eq!(strs(&rule["operations"]), ["CREATE", "UPDATE"]);

    // Opt-in by namespace label, or by pod label; `disabled` opts out.
    let injection = find(
        &objects,
        "MutatingWebhookConfiguration",
        "trellis-injection",
    );
    let by_namespace = &injection["webhooks"][0];
    assert_eq!(
        by_namespace["namespaceSelector"]["matchLabels"]["trellis.dev/inject"],
        "enabled"
    );
    assert_eq!(
        by_namespace["objectSelector"]["matchExpressions"][0]["values"][0],
        "disabled"
    );
    let by_pod = &injection["webhooks"][1];
    assert_eq!(
        by_pod["objectSelector"]["matchLabels"]["trellis.dev/inject"],
        "enabled"
    );
    assert_eq!(by_namespace["reinvocationPolicy"], "Never");
}

#[test]
fn webhook_values_change_the_webhook_configurations() {
    let Some(objects) = render(&[
        "webhook.failurePolicy=Ignore",
        "webhook.timeoutSeconds=5",
        "webhook.injection.enabled=false",
    ]) else {
        return;
    };
    let validation = find(
        &objects,
        "ValidatingWebhookConfiguration",
        "trellis-validation",
    );
    assert_eq!(validation["webhooks"][0]["failurePolicy"], "Ignore");
    assert_eq!(validation["webhooks"][0]["timeoutSeconds"], 5);
    assert!(
        !kinds(&objects).contains("MutatingWebhookConfiguration"),
        "injection off: no mutating webhook"
    );
}

#[test]
fn cluster_role_grants_no_wildcards_and_no_secrets() {
    let Some(objects) = render(&[]) else {
        return;
    };
    let cluster_role = find(&objects, "ClusterRole", "trellis-operator");
    for rule in cluster_role["rules"].as_array().unwrap() {
        for field in ["verbs", "resources", "apiGroups"] {
            assert!(!strs(&rule[field]).contains(&"*"), "{field} '*' in {rule}");
        }
        assert!(
            !strs(&rule["resources"]).contains(&"secrets"),
            "secrets cluster-wide in {rule}"
        );
        let verbs = strs(&rule["verbs"]);
        let writes = verbs.iter().any(|v| !["get", "list", "watch"].contains(v));
        let resources = strs(&rule["resources"]);
        if writes {
            let allowed = resources.iter().all(|r| {
                r.ends_with("/status")
                    || ["events", "tokenreviews"].contains(r)
                    // The TrafficSplits canaries drive (applied, never deleted).
                    || (*r == "trafficsplits" && verbs == ["patch"])
                    || !strs(&rule["resourceNames"]).is_empty()
            });
            assert!(
                allowed,
                "writes only status, events, tokenreviews, canary splits and named objects: {rule}"
            );
            assert!(
                !verbs.contains(&"delete") && !verbs.contains(&"deletecollection"),
                "{rule}"
            );
        }
    }
    // Secrets: only the operator's own, in its namespace.
    let role = find(&objects, "Role", "trellis-operator");
    assert_eq!(role["metadata"]["namespace"], NAMESPACE);
    for rule in role["rules"].as_array().unwrap() {
        assert!(!strs(&rule["verbs"]).contains(&"*"), "{rule}");
        if strs(&rule["resources"]) == ["secrets"] && strs(&rule["verbs"]) != ["create"] {
            assert_eq!(
                strs(&rule["resourceNames"]),
                ["trellis-webhook-tls", "trellis-identity"]
            );
            assert!(!strs(&rule["verbs"]).contains(&"list"), "{rule}");
        }
    }
}

#[test]
fn values_against_the_schema_fail_with_helms_message() {
    let Some(helm_path) = require_tool("helm") else {
        return;
    };
    for (set, complaint) in [
        (
            "webhook.failurePolicy=Sometimes",
            "value must be one of 'Fail', 'Ignore'",
        ),
        (
            "webhook.failurPolicy=Fail",
            "additional properties 'failurPolicy' not allowed",
        ),
        (
            "meshConfig.trustDomian=example.org",
            "additional properties 'trustDomian' not allowed",
        ),
        ("replicas=0", "minimum"),
        (
            "proxy.sidecarMode=sidecar",
            "value must be one of 'auto', 'native', 'init-container'",
        ),
    ] {
        let out = template_output(&helm_path, &[set]);
        let report = text(&out);
        assert!(!out.status.success(), "{set} rendered");
        assert!(
            report.contains("values don't meet the specifications of the schema"),
            "{set}: {report}"
        );
        assert!(report.contains(complaint), "{set}: {report}");
    }
}
