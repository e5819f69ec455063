//! Pods for the injection tests, written as users write them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::Value;

use super::config::Config;
use super::pod::{Injection, Skip, inject};

/// A web app: one container serving 8080, one init container, a ConfigMap volume.
pub const WEB: &str = "
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  serviceAccountName: web
  initContainers:
    - name: migrate
      image: ghcr.io/example/web:1.0
      args: [migrate]
  containers:
    - name: web
      image: ghcr.io/example/web:1.0
      ports:
        - {name: http, containerPort: 8080}
  volumes:
    - name: config
      configMap: {name: web}
";

/// The JSON of a pod written in YAML.
pub fn pod(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).expect("test YAML parses")
}

/// `WEB` with `edit` applied to its JSON.
pub fn web(edit: impl FnOnce(&mut Value)) -> Value {
    let mut p = pod(WEB);
    edit(&mut p);
    p
}

pub fn typed(pod: &Value) -> Pod {
    serde_json::from_value(pod.clone()).expect("a valid Pod")
}

/// `inject` on a pod's JSON, no namespace labels to check.
pub fn injection(pod: &Value, config: &Config, native: bool) -> Result<Injection, Skip> {
    let p = typed(pod);
    inject(&p.metadata, p.spec.as_ref().unwrap(), None, config, native)
}

/// The pod with the injection applied, typed.
pub fn injected(pod: &Value, config: &Config, native: bool) -> Pod {
    let mut json = pod.clone();
    injection(pod, config, native)
        .expect("the pod is injected")
        .apply(&mut json);
    typed(&json)
}

pub fn names(containers: &Option<Vec<Container>>) -> Vec<&str> {
    containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect()
}

pub fn container<'p>(pod: &'p Pod, name: &str) -> &'p Container {
    let spec = pod.spec.as_ref().unwrap();
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
