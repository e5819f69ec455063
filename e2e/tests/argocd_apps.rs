//! The ArgoCD Applications of gitops-examples/argocd/ and the demo apps they sync, checked
//! without a cluster: every Application and the ApplicationSet parse and name paths that
//! exist, the sync waves put the chart before the mesh config before the apps, the chart's
//! `ignoreDifferences` name what the operator writes, and each demo app is a meshed
//! namespace whose Canary's TrafficSplit is not in Git (docs/argocd.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use trellis_e2e::workspace_root;

// ---------------------------------------------------------------------------------------
// Applications and the ApplicationSet

#[test]
fn every_application_parses_and_points_at_paths_in_the_repo() {
    let apps = argocd_objects();
    assert!(
        apps.iter()
            .any(|(_, o)| o["metadata"]["name"] == "trellis-root"),
        "root.yaml is read"
    );
    let mut urls = BTreeSet::new();
    for (file, app) in &apps {
        let what = format!("{}: {}", file.display(), app["metadata"]["name"]);
        assert_eq!(app["apiVersion"], "argoproj.io/v1alpha1", "{what}");
        assert_eq!(app["metadata"]["namespace"], "argocd", "{what}");
        let spec = match app["kind"].as_str() {
            Some("Application") => &app["spec"],
            Some("ApplicationSet") => &app["spec"]["template"]["spec"],
            other => panic!("{what}: unexpected kind {other:?}"),
        };
        assert_eq!(spec["project"], "default", "{what}");
        let source = &spec["source"];
        urls.insert(source["repoURL"].as_str().unwrap_or_default().to_owned());
        let path = source["path"].as_str().expect("source.path");
        if app["kind"] == "ApplicationSet" {
            assert_eq!(
                path, "{{.path.path}}",
                "{what}: one app per generated directory"
            );
            for generator in app["spec"]["generators"].as_array().unwrap() {
                urls.insert(generator["git"]["repoURL"].as_str().unwrap().to_owned());
            }
            continue;
        }
        assert!(
            repo(path).is_dir(),
            "{what}: source.path {path} is not a directory"
        );
        if let Some(include) = source["directory"]["include"].as_str() {
            assert!(
                repo(path).join(include).is_file(),
                "{what}: directory.include {include} is not a file in {path}"
            );
        }
        if source["helm"].is_object() {
            assert!(
                path.starts_with("charts/"),
                "{what}: helm values on a non-chart"
            );
        }
    }
    assert_eq!(
        urls,
        BTreeSet::from(["https://example.invalid/trellis.git".to_owned()]),
        "every Application reads the same repository (the placeholder users replace)"
    );
}

#[test]
fn the_application_set_makes_one_application_per_demo_app_directory() {
    let apps = argocd_objects();
    let (_, set) = apps
        .iter()
        .find(|(_, o)| o["kind"] == "ApplicationSet")
        .expect("an ApplicationSet");
    let directories = set["spec"]["generators"][0]["git"]["directories"]
        .as_array()
        .unwrap();
    let mut generated = Vec::new();
    for d in directories {
        let pattern = d["path"].as_str().unwrap();
        let parent = pattern
            .strip_suffix("/*")
            .expect("a directory glob such as gitops-examples/apps/*");
        for entry in fs::read_dir(repo(parent)).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_dir() {
                generated.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
    }
    assert!(generated.contains(&"podinfo".to_owned()), "{generated:?}");
    assert_eq!(
        set["spec"]["template"]["metadata"]["name"],
        "{{.path.basename}}"
    );
    assert_eq!(
        set["spec"]["template"]["spec"]["destination"]["namespace"],
        "{{.path.basename}}"
    );
    let policy = &set["spec"]["template"]["spec"]["syncPolicy"];
    assert_eq!(policy["automated"]["prune"], true);
    assert_eq!(policy["automated"]["selfHeal"], true);
    let options = sync_options(policy);
    for option in [
        "ServerSideApply=true",
        "SkipDryRunOnMissingResource=true",
        "RespectIgnoreDifferences=true",
    ] {
        assert!(options.contains(option), "{option} in {options:?}");
    }
    assert!(policy["retry"]["limit"].as_i64().unwrap_or_default() > 0);
    assert!(policy["retry"]["backoff"]["duration"].is_string());
}

#[test]
fn sync_waves_put_the_chart_before_the_mesh_config_before_the_demo_apps() {
    let waves: BTreeMap<String, i64> = argocd_objects()
        .iter()
        .filter(|(_, o)| o["metadata"]["name"] != "trellis-root")
        .map(|(_, o)| {
            let wave = o["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]
                .as_str()
                .unwrap_or("0")
                .parse()
                .unwrap();
            (o["metadata"]["name"].as_str().unwrap().to_owned(), wave)
        })
        .collect();
    assert_eq!(
        waves,
        BTreeMap::from([
            ("trellis".to_owned(), -1),
            ("trellis-mesh-config".to_owned(), 0),
            ("trellis-demo-apps".to_owned(), 1),
        ])
    );
}

#[test]
fn the_chart_app_ignores_what_the_operator_writes_and_keeps_it_on_sync() {
    let apps = argocd_objects();
    let (_, chart) = apps
        .iter()
        .find(|(_, o)| o["spec"]["source"]["path"] == "charts/trellis")
        .expect("an Application for charts/trellis");
    let spec = &chart["spec"];
    assert_eq!(spec["destination"]["namespace"], "trellis-system");
    assert_eq!(
        spec["source"]["helm"]["valuesObject"]["meshConfig"]["create"], false,
        "the MeshConfig comes from Git, not from the chart"
    );
    let options = sync_options(&spec["syncPolicy"]);
    for option in [
        "CreateNamespace=true",
        "ServerSideApply=true",
        "RespectIgnoreDifferences=true",
    ] {
        assert!(options.contains(option), "{option} in {options:?}");
    }
    let ignored = spec["ignoreDifferences"].as_array().unwrap();
    // The SMI CRDs with older versions: the operator sets their conversion webhook.
    let conversions: BTreeSet<&str> = ignored
        .iter()
        .filter(|i| i["kind"] == "CustomResourceDefinition")
        .map(|i| {
            assert_eq!(i["jsonPointers"], serde_json::json!(["/spec/conversion"]));
            i["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        conversions,
        BTreeSet::from([
            "httproutegroups.specs.smi-spec.io",
            "tcproutes.specs.smi-spec.io",
            "trafficsplits.split.smi-spec.io",
            "traffictargets.access.smi-spec.io",
        ])
    );
    for crd in &conversions {
        assert!(
            repo("charts/trellis/crds")
                .join(format!("{crd}.yaml"))
                .is_file(),
            "{crd} is a CRD of the chart"
        );
    }
    // The webhook configurations: the operator patches its CA into them.
    let webhooks: BTreeMap<&str, &str> = ignored
        .iter()
        .filter(|i| i["group"] == "admissionregistration.k8s.io")
        .map(|i| {
            assert_eq!(
                i["jqPathExpressions"],
                serde_json::json!([".webhooks[]?.clientConfig.caBundle"])
            );
            (i["kind"].as_str().unwrap(), i["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        webhooks,
        BTreeMap::from([
            ("MutatingWebhookConfiguration", "trellis-injection"),
            ("ValidatingWebhookConfiguration", "trellis-validation"),
        ])
    );
}

// ---------------------------------------------------------------------------------------
// The demo apps

#[test]
fn each_demo_app_is_a_meshed_namespace_whose_canary_split_is_not_in_git() {
    let apps_dir = repo("gitops-examples/apps");
    for entry in fs::read_dir(&apps_dir).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let objects: Vec<Value> = yaml_files(&dir)
            .iter()
            .flat_map(|f| read_yaml_documents(f))
            .collect();
        let find = |kind: &str, object: &str| {
            objects
                .iter()
                .any(|o| o["kind"] == kind && o["metadata"]["name"] == object)
        };
        let namespace = objects
            .iter()
            .find(|o| o["kind"] == "Namespace")
            .unwrap_or_else(|| panic!("{name}: no Namespace"));
        assert_eq!(namespace["metadata"]["name"], name.as_str());
        assert_eq!(
            namespace["metadata"]["labels"]["trellis.dev/inject"], "enabled",
            "{name}: the namespace opts in to sidecar injection"
        );
        for canary in objects.iter().filter(|o| o["kind"] == "Canary") {
            let spec = &canary["spec"];
            for backend in ["service", "stable", "canary"] {
                let service = spec[backend].as_str().unwrap();
                assert!(find("Service", service), "{name}: no Service {service}");
            }
            let split = spec["trafficSplit"]
                .as_str()
                .or(canary["metadata"]["name"].as_str())
                .unwrap();
            assert!(
                !find("TrafficSplit", split),
                "{name}: the Canary's TrafficSplit {split} is generated by the operator; it must not be in Git"
            );
        }
        for kind in ["HTTPRouteGroup", "TrafficTarget", "Canary", "Deployment"] {
            assert!(
                objects.iter().any(|o| o["kind"] == kind),
                "{name}: no {kind}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files

fn repo(path: &str) -> PathBuf {
    workspace_root().join(path)
}

fn read_yaml_documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

/// root.yaml and every object in argocd/apps/, with their files.
fn argocd_objects() -> Vec<(PathBuf, Value)> {
    let mut files = vec![repo("gitops-examples/argocd/root.yaml")];
    files.extend(yaml_files(&repo("gitops-examples/argocd/apps")));
    files
        .into_iter()
        .flat_map(|f| {
            read_yaml_documents(&f)
                .into_iter()
                .map(move |o| (f.clone(), o))
        })
        .collect()
}

fn sync_options(policy: &Value) -> BTreeSet<String> {
    policy["syncOptions"]
        .as_array()
        .map(|o| {
            o.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
