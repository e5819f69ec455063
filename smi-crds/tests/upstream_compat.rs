//! Trellis' CRDs accept every manifest the upstream SMI CRDs accept (`upstream/`), with the
//! same names, and are structural `apiextensions.k8s.io/v1` schemas.

use serde_json::Value;
use smi_crds::{crdgen, dynamic};

const UPSTREAM: [&str; 5] = [
    include_str!("upstream/split.yaml"),
    include_str!("upstream/access.yaml"),
    include_str!("upstream/httproutegroup.yaml"),
    include_str!("upstream/tcproute.yaml"),
    include_str!("upstream/udproute.yaml"),
];

fn upstream_crds() -> Vec<Value> {
    UPSTREAM
        .iter()
        .flat_map(|text| serde_saphyr::from_multiple::<Value>(text).expect("upstream CRD YAML"))
        .collect()
}

fn ours() -> Vec<Value> {
    crdgen::all()
        .iter()
        .map(|crd| serde_json::to_value(crd).unwrap())
        .collect()
}

fn find<'a>(crds: &'a [Value], name: &str) -> &'a Value {
    crds.iter()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no CRD {name}"))
}

fn version<'a>(crd: &'a Value, name: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == name)
}

/// Where `ours` would reject or prune something `theirs` accepts.
fn not_accepted(ours: &Value, theirs: &Value, path: &str) -> Vec<String> {
    if ours["x-kubernetes-preserve-unknown-fields"] == true && ours.get("type").is_none() {
        return Vec::new();
    }
    let mut gaps = Vec::new();
    let their_type = theirs["type"].as_str();
    let type_ok = if ours["x-kubernetes-int-or-string"] == true {
        matches!(their_type, Some("integer" | "string"))
            || theirs["x-kubernetes-int-or-string"] == true
    } else {
        ours["type"].as_str() == their_type
            || (ours["type"] == "number" && their_type == Some("integer"))
    };
    if !type_ok {
        gaps.push(format!(
            "{path}: type {} does not accept {}",
            ours["type"], theirs["type"]
        ));
    }
    if let Some(our_enum) = ours["enum"].as_array() {
        let theirs_enum = theirs["enum"].as_array();
        if theirs_enum.is_none_or(|e| e.iter().any(|v| !our_enum.contains(v))) {
            gaps.push(format!(
                "{path}: enum {our_enum:?} is narrower than {:?}",
                theirs["enum"]
            ));
        }
    }
    let their_required: Vec<&Value> = theirs["required"]
        .as_array()
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    for r in ours["required"].as_array().into_iter().flatten() {
        if !their_required.contains(&r) {
            gaps.push(format!("{path}: requires {r}, upstream does not"));
        }
    }
    for (name, their_prop) in theirs["properties"].as_object().into_iter().flatten() {
        match ours["properties"].get(name) {
            Some(our_prop) => gaps.extend(not_accepted(
                our_prop,
                their_prop,
                &format!("{path}.{name}"),
            )),
            None => gaps.push(format!(
                "{path}.{name}: missing (the API server would prune it)"
            )),
        }
    }
    if theirs.get("items").is_some() {
        gaps.extend(not_accepted(
            &ours["items"],
            &theirs["items"],
            &format!("{path}[]"),
        ));
    }
    if let Some(their_extra) = theirs.get("additionalProperties") {
        gaps.extend(not_accepted(
            &ours["additionalProperties"],
            their_extra,
            &format!("{path}.*"),
        ));
    }
    gaps
}

#[test]
fn names_short_names_and_scope_match_upstream() {
    let ours = ours();
    for theirs in upstream_crds() {
        let name = theirs["metadata"]["name"].as_str().unwrap();
        let ours = find(&ours, name);
        for field in ["group", "scope"] {
            assert_eq!(
                ours["spec"][field], theirs["spec"][field],
                "{name}: spec.{field}"
            );
        }
        for field in ["kind", "plural", "singular", "shortNames"] {
            assert_eq!(
                ours["spec"]["names"][field], theirs["spec"]["names"][field],
                "{name}: names.{field}"
            );
        }
    }
}

#[test]
fn every_upstream_version_we_serve_accepts_what_upstream_accepts() {
    let ours = ours();
    let mut checked = 0;
    for theirs in upstream_crds() {
        let name = theirs["metadata"]["name"].as_str().unwrap();
        let our_crd = find(&ours, name);
        for their_version in theirs["spec"]["versions"].as_array().unwrap() {
            let v = their_version["name"].as_str().unwrap();
            let Some(our_version) = version(our_crd, v) else {
                // Upstream lists some versions as not served (TrafficTarget v1alpha1,
                // HTTPRouteGroup v1alpha1/v1alpha2); Trellis does not serve them either.
                assert_eq!(
                    their_version["served"], false,
                    "{name} {v} is served upstream but not by Trellis"
                );
                continue;
            };
            let gaps = not_accepted(
                &our_version["schema"]["openAPIV3Schema"],
                &their_version["schema"]["openAPIV3Schema"],
                v,
            );
            assert!(gaps.is_empty(), "{name}: {gaps:#?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 9, "every served upstream version was compared");
}

#[test]
fn the_hub_is_the_storage_version_and_every_version_is_served() {
    for crd in ours() {
        let versions = crd["spec"]["versions"].as_array().unwrap();
        let storage: Vec<&Value> = versions
            .iter()
            .filter(|v| v["storage"] == true)
            .map(|v| &v["name"])
            .collect();
        assert_eq!(
            storage,
            [&versions[0]["name"]],
            "{}: newest version stores",
            crd["metadata"]["name"]
        );
        assert!(versions.iter().all(|v| v["served"] == true));
        assert!(
            versions
                .iter()
                .all(|v| v["subresources"]["status"].is_object()),
            "status subresource"
        );
    }
}

#[test]
fn printer_columns_make_kubectl_get_useful() {
    let ours = ours();
    let columns = |name: &str| -> Vec<String> {
        version(find(&ours, name), "v1alpha4")
            .or_else(|| version(find(&ours, name), "v1alpha3"))
            .unwrap()["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        columns("trafficsplits.split.smi-spec.io"),
        ["Service", "Backends", "Weights", "Accepted", "Age"]
    );
    assert_eq!(
        columns("traffictargets.access.smi-spec.io"),
        ["Destination", "Sources", "Rules", "Accepted", "Age"]
    );
    assert_eq!(
        columns("httproutegroups.specs.smi-spec.io"),
        ["Matches", "Accepted", "Age"]
    );
}

/// Structural schema rules the API server enforces for `apiextensions.k8s.io/v1`.
fn structural_violations(schema: &Value, path: &str, in_junctor: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Some(object) = schema.as_object() else {
        return vec![format!("{path}: not an object")];
    };
    for forbidden in ["$ref", "definitions", "$schema", "$defs"] {
        if object.contains_key(forbidden) {
            out.push(format!("{path}: {forbidden} is not allowed"));
        }
    }
    let free = schema["x-kubernetes-preserve-unknown-fields"] == true
        || schema["x-kubernetes-int-or-string"] == true;
    if in_junctor {
        for key in [
            "type",
            "description",
            "default",
            "additionalProperties",
            "nullable",
        ] {
            if object.contains_key(key) {
                out.push(format!("{path}: {key} inside anyOf/allOf/oneOf/not"));
            }
        }
    } else if !free && schema["type"].as_str().is_none_or(str::is_empty) {
        out.push(format!("{path}: no type"));
    }
    if schema["additionalProperties"] == false {
        out.push(format!("{path}: additionalProperties: false"));
    }
    if object.contains_key("additionalProperties") && object.contains_key("properties") {
        out.push(format!("{path}: additionalProperties with properties"));
    }
    for (name, child) in schema["properties"].as_object().into_iter().flatten() {
        out.extend(structural_violations(
            child,
            &format!("{path}.{name}"),
            in_junctor,
        ));
    }
    if let Some(items) = schema.get("items") {
        out.extend(structural_violations(
            items,
            &format!("{path}[]"),
            in_junctor,
        ));
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        out.extend(structural_violations(
            extra,
            &format!("{path}.*"),
            in_junctor,
        ));
    }
    for junctor in ["anyOf", "allOf", "oneOf"] {
        for (i, branch) in schema[junctor].as_array().into_iter().flatten().enumerate() {
            out.extend(structural_violations(
                branch,
                &format!("{path}.{junctor}[{i}]"),
                true,
            ));
        }
    }
    out
}

#[test]
fn generated_schemas_are_structural() {
    for crd in ours() {
        for v in crd["spec"]["versions"].as_array().unwrap() {
            let schema = &v["schema"]["openAPIV3Schema"];
            let mut violations = structural_violations(schema, "", false);
            if let Some(meta) = schema["properties"].get("metadata") {
                violations.push(format!("metadata must not be specified: {meta}"));
            }
            assert!(
                violations.is_empty(),
                "{} {}: {violations:#?}",
                crd["metadata"]["name"],
                v["name"]
            );
        }
    }
}

/// Manifests of every shape the upstream schemas allow, as tools write them.
const UPSTREAM_SHAPES: &str = "
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: canary}
spec:
  service: web
  backends: [{service: web-v1, weight: 0.0}, {service: web-v2, weight: 100}]
---
apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab}
spec:
  service: web
  matches: [{kind: HTTPRouteGroup, name: firefox}]
  backends: [{service: web-v2, weight: 50}]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: osm}
spec: {service: web.shop.svc.cluster.local, backends: [{service: web-v1, weight: 50}]}
---
apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: flagger}
spec: {service: web, backends: [{service: web-primary, weight: 900m}, {service: web-canary, weight: 100m}]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: tt}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: default}
  rules:
  - {kind: HTTPRouteGroup, name: routes, matches: [metrics]}
  - {kind: TCPRoute, name: tcp}
  - {kind: UDPRoute, name: udp}
  sources: [{kind: ServiceAccount, name: web, namespace: other}]
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: tt2}
spec:
  destination: {kind: ServiceAccount, name: api}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: routes}
spec:
  matches:
  - {name: any}
  - name: all
    pathRegex: '/api/.*'
    methods: ['*', GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH]
    headers: [{user-agent: '.*Firefox.*', accept: 'text/html'}, {cookie: 'canary=1'}]
---
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: routes3}
spec: {matches: []}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: tcp}
spec: {matches: {ports: []}}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: udp}
spec: {matches: {ports: [53]}}
";

#[test]
fn manifests_upstream_accepts_parse_with_trellis_types() {
    let docs: Vec<Value> = serde_saphyr::from_multiple(UPSTREAM_SHAPES).unwrap();
    assert_eq!(docs.len(), 10);
    for doc in docs {
        let name = doc["metadata"]["name"].clone();
        let parsed = dynamic::parse(doc);
        assert!(matches!(parsed, Ok(Some(_))), "{name}: {parsed:?}");
    }
}
