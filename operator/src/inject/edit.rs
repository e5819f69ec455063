//! An [`Injection`] put into a pod's JSON: as JSONPatch operations (RFC 6902, for the
//! webhook) or applied in place (for `trellis inject`), one from the other so they agree.
//! Only `add` operations: what the pod has is never replaced or removed.

use serde_json::{Map, Value, json};

use super::pod::Injection;

impl Injection {
    /// The JSONPatch that adds this injection to `pod` (a Pod or a pod template: an object
    /// with `metadata` and `spec`), found at the JSON pointer `base` of the document the
    /// patch applies to (`""` for a Pod, `/spec/template` for a Deployment).
    pub fn patch(&self, pod: &Value, base: &str) -> Vec<Value> {
        let mut ops = Vec::new();
        let spec = &pod["spec"];
        let add = |ops: &mut Vec<Value>, path: String, value: Value| {
            ops.push(json!({"op": "add", "path": path, "value": value}));
        };

        // metadata.annotations
        let annotations: Map<String, Value> = self
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        if !pod["metadata"].is_object() {
            add(
                &mut ops,
                format!("{base}/metadata"),
                json!({"annotations": annotations}),
            );
        } else if !pod["metadata"]["annotations"].is_object() {
            add(
                &mut ops,
                format!("{base}/metadata/annotations"),
                Value::Object(annotations),
            );
        } else {
            for (key, value) in annotations {
                add(
                    &mut ops,
                    format!("{base}/metadata/annotations/{}", escape(&key)),
                    value,
                );
            }
        }

        // spec.initContainers: ours before, theirs, ours after.
        let before = to_json(&self.init_containers_before);
        let after = to_json(&self.init_containers_after);
        if !spec["initContainers"].is_array() {
            if !before.is_empty() || !after.is_empty() {
                let all = [before, after].concat();
                add(
                    &mut ops,
                    format!("{base}/spec/initContainers"),
                    Value::Array(all),
                );
            }
        } else {
            for (i, c) in before.into_iter().enumerate() {
                add(&mut ops, format!("{base}/spec/initContainers/{i}"), c);
            }
            for c in after {
                add(&mut ops, format!("{base}/spec/initContainers/-"), c);
            }
        }

        // spec.containers: ours first (a pod always has containers).
        let containers = to_json(&self.containers_before);
        if !spec["containers"].is_array() {
            if !containers.is_empty() {
                add(
                    &mut ops,
                    format!("{base}/spec/containers"),
                    Value::Array(containers),
                );
            }
        } else {
            for (i, c) in containers.into_iter().enumerate() {
                add(&mut ops, format!("{base}/spec/containers/{i}"), c);
            }
        }

        // spec.volumes: ours last.
        let volumes = to_json(&self.volumes);
        if !spec["volumes"].is_array() {
            if !volumes.is_empty() {
                add(
                    &mut ops,
                    format!("{base}/spec/volumes"),
                    Value::Array(volumes),
                );
            }
        } else {
            for v in volumes {
                add(&mut ops, format!("{base}/spec/volumes/-"), v);
            }
        }
        ops
    }

    /// Adds this injection to `pod` (an object with `metadata` and `spec`).
    pub fn apply(&self, pod: &mut Value) {
        for op in self.patch(pod, "") {
            let path = op["path"].as_str().expect("our ops have a path");
            add(pod, path, op["value"].clone());
        }
    }
}

fn to_json<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|item| serde_json::to_value(item).expect("Kubernetes types serialize to JSON"))
        .collect()
}

/// A JSON pointer token (RFC 6901): `~` and `/` escaped.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// RFC 6902 `add`, for the pointers [`Injection::patch`] makes (whose parents exist).
fn add(doc: &mut Value, path: &str, value: Value) {
    let (parent, last) = path.rsplit_once('/').expect("a pointer below the root");
    let parent = doc
        .pointer_mut(parent)
        .expect("the patch adds below existing fields");
    match parent {
        Value::Object(map) => {
            map.insert(unescape(last), value);
        }
        Value::Array(items) if last == "-" => items.push(value),
        Value::Array(items) => {
            let i: usize = last.parse().expect("an array index");
            items.insert(i, value);
        }
        _ => panic!("{path}: the parent is neither an object nor an array"),
    }
}
