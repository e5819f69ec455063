//! Every served version converts to its hub and back without losing anything, and a
//! field the target version cannot hold is a clear error.

use serde_json::{Value, json};
use smi_crds::dynamic::{self, Resource};

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test manifest is valid YAML")
}

fn hub(manifest: &Value) -> Resource {
    dynamic::parse(manifest.clone())
        .expect("parses")
        .expect("is a served kind")
}

/// Parse at the manifest's version, convert to the hub, write back at that version.
fn assert_round_trip(text: &str) {
    let original = yaml(text);
    let version = original["apiVersion"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap();
    let back = dynamic::to_version(&hub(&original), version).expect("converts back");
    assert_eq!(back, original, "round trip of {version} changed the object");
}

#[test]
fn traffic_split_every_version_round_trips() {
    for (version, weight_a, weight_b) in [
        ("v1alpha1", "\"500m\"", "\"1\""),
        ("v1alpha1", "\"90\"", "\"10\""),
        ("v1alpha2", "90", "10"),
        ("v1alpha3", "90", "10"),
        ("v1alpha4", "90", "10"),
    ] {
        assert_round_trip(&format!(
            "apiVersion: split.smi-spec.io/{version}
kind: TrafficSplit
metadata: {{name: web, namespace: shop, labels: {{team: web}}}}
spec:
  service: web
  backends:
  - {{service: web-v1, weight: {weight_a}}}
  - {{service: web-v2, weight: {weight_b}}}
"
        ));
    }
}

#[test]
fn traffic_split_matches_round_trip_through_v1alpha3() {
    assert_round_trip(
        "apiVersion: split.smi-spec.io/v1alpha3
kind: TrafficSplit
metadata: {name: ab, namespace: shop}
spec:
  service: web
  matches:
  - {kind: HTTPRouteGroup, name: firefox-users}
  backends:
  - {service: web-v2, weight: 100}
status:
  conditions:
  - {type: Accepted, status: 'True', reason: Accepted, message: '', lastTransitionTime: '2026-11-01T00:00:00Z'}
",
    );
}

#[test]
fn v1alpha1_quantity_weights_keep_their_ratio_in_the_hub() {
    let Resource::TrafficSplit(ts) = hub(&yaml(
        "apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web}
spec:
  service: web
  backends:
  - {service: web-v1, weight: 500m}
  - {service: web-v2, weight: 1}
",
    )) else {
        panic!("not a TrafficSplit")
    };
    let weights: Vec<u32> = ts
        .spec
        .backends
        .iter()
        .map(|b| b.weight.whole().unwrap())
        .collect();
    assert_eq!(
        weights,
        vec![5, 10],
        "500m : 1 must stay 1 : 2 in whole numbers"
    );
}

#[test]
fn v1alpha1_integer_weights_are_kept_as_they_are() {
    let Resource::TrafficSplit(ts) = hub(&yaml(
        "apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web}
spec: {service: web, backends: [{service: a, weight: 90}, {service: b, weight: 10}]}
",
    )) else {
        panic!("not a TrafficSplit")
    };
    let weights: Vec<u32> = ts
        .spec
        .backends
        .iter()
        .map(|b| b.weight.whole().unwrap())
        .collect();
    assert_eq!(weights, vec![90, 10]);
    assert_eq!(
        ts.metadata.annotations, None,
        "no annotation when nothing was rescaled"
    );
}

#[test]
fn v1alpha1_weights_changed_in_the_hub_are_written_as_whole_numbers() {
    let mut resource = hub(&yaml(
        "apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web}
spec: {service: web, backends: [{service: a, weight: 500m}, {service: b, weight: '1'}]}
",
    ));
    let Resource::TrafficSplit(ts) = &mut resource else {
        panic!("not a TrafficSplit")
    };
    // A controller shifts the weights in the hub version.
    ts.spec.backends[0].weight = 0u32.into();
    ts.spec.backends[1].weight = 100u32.into();
    let v1alpha1 = dynamic::to_version(&resource, "v1alpha1").unwrap();
    assert_eq!(
        v1alpha1["spec"]["backends"],
        json!([{"service": "a", "weight": "0"}, {"service": "b", "weight": "100"}])
    );
    assert_eq!(v1alpha1["metadata"].get("annotations"), None);
}

#[test]
fn v1alpha1_weight_that_is_not_a_quantity_is_an_error_at_its_field() {
    let err = dynamic::parse(yaml(
        "apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web}
spec: {service: web, backends: [{service: a, weight: half}]}
",
    ))
    .unwrap_err();
    assert_eq!(err.field(), "spec.backends[0].weight");
    assert_eq!(
        err.message(),
        "\"half\" is not a quantity: expected a number with an optional suffix (m, k, M, G, Ki, Mi, e3, ...), e.g. \"500m\" or \"1\""
    );
}

#[test]
fn a_split_with_matches_cannot_be_written_as_v1alpha2() {
    let resource = hub(&yaml(
        "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: ab}
spec: {service: web, matches: [{kind: HTTPRouteGroup, name: ff}], backends: [{service: b, weight: 1}]}
",
    ));
    for version in ["v1alpha2", "v1alpha1"] {
        let err = dynamic::to_version(&resource, version).unwrap_err();
        assert_eq!(err.field(), "spec.matches");
        assert_eq!(
            err.message(),
            format!(
                "{version} has no `matches`; this split applies only to matching requests, which only v1alpha3 and v1alpha4 can express"
            )
        );
    }
}

#[test]
fn traffic_target_v1alpha2_round_trips() {
    assert_round_trip(
        "apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api, namespace: shop}
  rules:
  - {kind: HTTPRouteGroup, name: api-routes, matches: [metrics]}
  - {kind: TCPRoute, name: api-tcp}
  sources:
  - {kind: ServiceAccount, name: web, namespace: shop}
",
    );
}

#[test]
fn traffic_target_v1alpha3_round_trips() {
    assert_round_trip(
        "apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: api, namespace: shop}
spec:
  destination: {kind: ServiceAccount, name: api}
  rules:
  - {kind: UDPRoute, name: dns}
  sources:
  - {kind: ServiceAccount, name: web}
",
    );
}

#[test]
fn a_v1alpha2_destination_port_is_refused_not_dropped() {
    let err = dynamic::parse(yaml(
        "apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: {name: api}
spec:
  destination: {kind: ServiceAccount, name: api, port: 8080}
  sources: [{kind: ServiceAccount, name: web}]
",
    ))
    .unwrap_err();
    assert_eq!(err.field(), "spec.destination.port");
    assert_eq!(
        err.message(),
        "v1alpha3 has no destination port (got 8080); remove the port and allow it with a TCPRoute rule (specs.smi-spec.io TCPRoute with matches.ports)"
    );
}

#[test]
fn a_udp_rule_cannot_be_written_as_v1alpha2() {
    let resource = hub(&yaml(
        "apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: dns}
spec:
  destination: {kind: ServiceAccount, name: dns}
  rules: [{kind: TCPRoute, name: t}, {kind: UDPRoute, name: dns}]
  sources: [{kind: ServiceAccount, name: web}]
",
    ));
    let err = dynamic::to_version(&resource, "v1alpha2").unwrap_err();
    assert_eq!(err.field(), "spec.rules[1].kind");
    assert_eq!(
        err.message(),
        "v1alpha2 has no UDPRoute rules; read this TrafficTarget as v1alpha3"
    );
}

#[test]
fn http_route_group_versions_round_trip() {
    for version in ["v1alpha3", "v1alpha4"] {
        assert_round_trip(&format!(
            "apiVersion: specs.smi-spec.io/{version}
kind: HTTPRouteGroup
metadata: {{name: api-routes, namespace: shop}}
spec:
  matches:
  - name: metrics
    pathRegex: /metrics
    methods: [GET]
  - name: firefox
    headers:
    - user-agent: .*Firefox.*
"
        ));
    }
}

#[test]
fn http_route_group_map_headers_are_written_as_a_list() {
    let resource = hub(&yaml(
        "apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: ff}
spec:
  matches:
  - name: firefox
    headers: {user-agent: .*Firefox.*, x-canary: 'true'}
",
    ));
    let written = dynamic::to_version(&resource, "v1alpha4").unwrap();
    assert_eq!(
        written["spec"]["matches"][0]["headers"],
        json!([{"user-agent": ".*Firefox.*"}, {"x-canary": "true"}])
    );
}

#[test]
fn tcp_route_versions_round_trip() {
    assert_round_trip(
        "apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec:
  matches: {ports: [5432, 6432]}
",
    );
    assert_round_trip(
        "apiVersion: specs.smi-spec.io/v1alpha3
kind: TCPRoute
metadata: {name: db, namespace: shop}
spec: {}
",
    );
}

#[test]
fn tcp_route_v1alpha3_means_every_port() {
    let Resource::TCPRoute(route) = hub(&yaml(
        "apiVersion: specs.smi-spec.io/v1alpha3
kind: TCPRoute
metadata: {name: db}
",
    )) else {
        panic!("not a TCPRoute")
    };
    assert!(route.spec.matches.ports.is_empty());
}

#[test]
fn tcp_route_with_ports_cannot_be_written_as_v1alpha3() {
    let resource = hub(&yaml(
        "apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: db}
spec: {matches: {ports: [5432]}}
",
    ));
    let err = dynamic::to_version(&resource, "v1alpha3").unwrap_err();
    assert_eq!(err.field(), "spec.matches.ports");
}

#[test]
fn udp_route_and_mesh_config_round_trip() {
    assert_round_trip(
        "apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: {name: dns, namespace: kube-system}
spec: {matches: {ports: [53]}}
",
    );
    assert_round_trip(
        "apiVersion: trellis.dev/v1alpha1
kind: MeshConfig
metadata: {name: default}
spec:
  trustDomain: example.org
  permissive: true
  unmeshedClients: {policy: Deny, allowedNamespaces: [legacy], allowedPorts: [8080]}
  certificates: {workloadLifetime: 12h, rootLifetime: 8760h}
  proxy: {outboundPort: 4140, inboundPort: 4143, adminPort: 4191, logLevel: debug, skipOutboundPorts: [5432]}
  metrics: {provider: Prometheus, prometheusUrl: 'http://prometheus.monitoring:9090'}
  tracing: {otlpEndpoint: 'http://otel:4317', samplingPercent: 12.5}
",
    );
}

#[test]
fn an_unserved_version_names_the_served_ones() {
    let err = dynamic::parse(yaml(
        "apiVersion: access.smi-spec.io/v1alpha1
kind: TrafficTarget
metadata: {name: old}
",
    ))
    .unwrap_err();
    assert_eq!(err.field(), "apiVersion");
    assert_eq!(
        err.message(),
        "access.smi-spec.io/v1alpha1 does not serve TrafficTarget; served versions: access.smi-spec.io/v1alpha3, access.smi-spec.io/v1alpha2"
    );
}

#[test]
fn other_kinds_are_not_ours() {
    let parsed = dynamic::parse(json!({"apiVersion": "apps/v1", "kind": "Deployment"})).unwrap();
    assert_eq!(parsed, None);
}

#[test]
fn v1alpha1_weights_of_very_different_scales_are_refused_at_the_written_weight() {
    let err = dynamic::parse(yaml(
        "apiVersion: split.smi-spec.io/v1alpha1
kind: TrafficSplit
metadata: {name: web}
spec: {service: web, backends: [{service: a, weight: 1n}, {service: b, weight: 10}]}
",
    ))
    .unwrap_err();
    assert_eq!(err.field(), "spec.backends[1].weight");
    assert_eq!(
        err.message(),
        "10 cannot be scaled to a whole number up to 4294967295 together with the other weights; use weights of similar scale (for example 0-100 or 0-1000)"
    );
}
