//! Each semantic rule, with the exact message a user sees (`field: message`).

use serde_json::Value;
use smi_crds::dynamic;
use smi_crds::validate::validate;

/// The problems of one manifest, as `field: message` lines.
fn problems(manifest: &str) -> Vec<String> {
    let value: Value = serde_saphyr::from_str(manifest).expect("valid YAML");
    let resource = dynamic::parse(value).expect("parses").expect("served kind");
    validate(&resource)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn mk_split(spec: &str) -> String {
    format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: web, namespace: shop}}\nspec:\n{spec}"
    )
}

fn mk_target(spec: &str) -> String {
    format!(
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: api, namespace: shop}}\nspec:\n{spec}"
    )
}

fn mk_route_group(spec: &str) -> String {
    format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {{name: routes, namespace: shop}}\nspec:\n{spec}"
    )
}

fn mk_mesh_config(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: MeshConfig\nmetadata: {{name: {name}}}\nspec:\n{spec}"
    )
}

const OK_TARGET: &str = "  destination: {kind: ServiceAccount, name: api}\n  rules: []\n  sources: [{kind: ServiceAccount, name: web}]\n";

#[test]
fn a_valid_split_has_no_problems() {
    let split = mk_split(
        "  service: web\n  backends: [{service: web-v1, weight: 90}, {service: web-v2, weight: 10}]\n",
    );
    assert_eq!(problems(&split), Vec::<String>::new());
}

#[test]
fn weights_must_be_whole_and_not_negative() {
    let split = mk_split(
        "  service: web\n  backends: [{service: a, weight: 0.5}, {service: b, weight: -1}]\n",
    );
    assert_eq!(
        problems(&split),
        [
            "spec.backends[0].weight: must be a whole number between 0 and 4294967295, got 0.5",
            "spec.backends[1].weight: must be a whole number between 0 and 4294967295, got -1",
        ]
    );
}

#[test]
fn duplicate_backends_are_an_error() {
    let split = mk_split(
        "  service: web\n  backends: [{service: a, weight: 1}, {service: a, weight: 2}]\n",
    );
    assert_eq!(
        problems(&split),
        [
            "spec.backends[1].service: duplicate backend \"a\" (also spec.backends[0].service); list each once"
        ]
    );
}

#[test]
fn all_zero_weights_warn_about_503s() {
    let split = mk_split("  service: web\n  backends: [{service: a, weight: 0}]\n");
    assert_eq!(
        problems(&split),
        [
            "spec.backends: warning: every backend has weight 0: requests to \"web\" get 503 until a weight is raised"
        ]
    );
}

#[test]
fn a_split_needs_backends_and_valid_service_names() {
    let split = mk_split("  service: Web_1\n  backends: []\n");
    assert_eq!(
        problems(&split),
        [
            "spec.service: \"Web_1\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit (or <name>.<namespace>.svc.<cluster domain>)",
            "spec.backends: at least one backend is required: list the Services that receive the traffic",
        ]
    );
}

#[test]
fn the_root_may_be_an_fqdn_of_its_own_namespace_only() {
    let own =
        mk_split("  service: Web.Shop.svc.cluster.local.\n  backends: [{service: a, weight: 1}]\n");
    assert_eq!(problems(&own), Vec::<String>::new());
    let other = mk_split(
        "  service: web.billing.svc.cluster.local\n  backends: [{service: a, weight: 1}]\n",
    );
    assert_eq!(
        problems(&other),
        [
            "spec.service: \"web.billing.svc.cluster.local\" is in namespace \"billing\"; a TrafficSplit splits a Service of its own namespace (\"shop\"): create the TrafficSplit in \"billing\""
        ]
    );
}

#[test]
fn split_matches_must_name_http_route_groups_once() {
    let split = mk_split(
        "  service: web\n  matches: [{kind: TCPRoute, name: x}, {kind: HTTPRouteGroup, name: x}]\n  backends: [{service: a, weight: 1}]\n",
    );
    assert_eq!(
        problems(&split),
        [
            "spec.matches[0].kind: must be HTTPRouteGroup, got \"TCPRoute\"",
            "spec.matches[1].name: duplicate match \"x\" (also spec.matches[0].name); list each once",
        ]
    );
}

#[test]
fn regexes_must_compile() {
    let group = mk_route_group(
        "  matches:\n  - name: bad\n    pathRegex: /api/(v1\n    headers:\n    - x-user: '[a-'\n",
    );
    assert_eq!(
        problems(&group),
        [
            "spec.matches[0].pathRegex: invalid regex \"/api/(v1\": unclosed group (RE2 syntax)",
            "spec.matches[0].headers[0]: header \"x-user\": invalid regex \"[a-\": unclosed character class (RE2 syntax)",
        ]
    );
}

#[test]
fn methods_must_be_http_methods() {
    let group = mk_route_group("  matches:\n  - name: m\n    methods: [GET, get, FETCH]\n");
    assert_eq!(
        problems(&group),
        [
            "spec.matches[0].methods[1]: \"get\" is not an HTTP method; use one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
            "spec.matches[0].methods[2]: \"FETCH\" is not an HTTP method; use one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
        ]
    );
}

#[test]
fn match_names_are_unique_and_headers_are_valid() {
    let group = mk_route_group(
        "  matches:\n  - name: a\n    headers: {'bad header': x}\n  - name: a\n    headers: [{X-Canary: 'true'}, {x-canary: 'false'}]\n",
    );
    assert_eq!(
        problems(&group),
        [
            "spec.matches[0].headers[0]: \"bad header\" is not a valid header name: use letters, digits and - (e.g. x-canary)",
            "spec.matches[1].headers[1]: duplicate header \"x-canary\" (also spec.matches[1].headers[0]); list each once",
            "spec.matches[1].name: duplicate match name \"a\" (also spec.matches[0].name); list each once",
        ]
    );
}

#[test]
fn ports_must_be_in_range() {
    let route = "apiVersion: specs.smi-spec.io/v1alpha4\nkind: TCPRoute\nmetadata: {name: db}\nspec: {matches: {ports: [0, 5432, 70000, 5432]}}\n";
    assert_eq!(
        problems(route),
        [
            "spec.matches.ports[0]: must be a port number between 1 and 65535, got 0",
            "spec.matches.ports[2]: must be a port number between 1 and 65535, got 70000",
            "spec.matches.ports[3]: duplicate port \"5432\" (also spec.matches.ports[1]); list each once",
        ]
    );
}

#[test]
fn a_valid_target_has_no_problems() {
    assert_eq!(problems(&mk_target(OK_TARGET)), Vec::<String>::new());
}

#[test]
fn the_destination_must_be_in_the_targets_namespace() {
    let target = mk_target(
        "  destination: {kind: ServiceAccount, name: api, namespace: billing}\n  rules: []\n  sources: [{kind: ServiceAccount, name: web}]\n",
    );
    assert_eq!(
        problems(&target),
        [
            "spec.destination.namespace: \"billing\" differs from the TrafficTarget's namespace \"shop\"; a TrafficTarget only grants access to its own namespace: create it in \"billing\""
        ]
    );
}

#[test]
fn identities_are_service_accounts() {
    let target = mk_target(
        "  destination: {kind: User, name: api}\n  rules: []\n  sources: [{kind: ServiceAccount, name: Web}, {kind: ServiceAccount, name: web}, {kind: ServiceAccount, name: web, namespace: shop}]\n",
    );
    assert_eq!(
        problems(&target),
        [
            "spec.destination.kind: must be ServiceAccount, got \"User\"",
            "spec.sources[0].name: \"Web\" is not a valid ServiceAccount name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            "spec.sources[2]: duplicate source \"shop/web\" (also spec.sources[1]); list each once",
        ]
    );
}

#[test]
fn no_sources_warns() {
    let target =
        mk_target("  destination: {kind: ServiceAccount, name: api}\n  rules: []\n  sources: []\n");
    assert_eq!(
        problems(&target),
        ["spec.sources: warning: no sources: this TrafficTarget allows no traffic"]
    );
}

#[test]
fn rules_have_a_known_kind_and_matches_only_for_http() {
    let target = mk_target(
        "  destination: {kind: ServiceAccount, name: api}\n  rules:\n  - {kind: Ingress, name: x}\n  - {kind: TCPRoute, name: db, matches: [a]}\n  - {kind: HTTPRouteGroup, name: r, matches: [m, m]}\n  - {kind: HTTPRouteGroup, name: r}\n  sources: [{kind: ServiceAccount, name: web}]\n",
    );
    assert_eq!(
        problems(&target),
        [
            "spec.rules[0].kind: must be one of HTTPRouteGroup, TCPRoute, UDPRoute, got \"Ingress\"",
            "spec.rules[1].matches: matches name HTTPRouteGroup matches; a TCPRoute rule takes none (remove matches)",
            "spec.rules[2].matches[1]: duplicate match \"m\" (also spec.rules[2].matches[0]); list each once",
            "spec.rules[3]: duplicate rule \"HTTPRouteGroup/r\" (also spec.rules[2]); list each once",
        ]
    );
}

#[test]
fn names_and_namespaces_follow_kubernetes_rules() {
    let target = format!(
        "apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {{name: API, namespace: Shop}}\nspec:\n{OK_TARGET}"
    );
    assert_eq!(
        problems(&target),
        [
            "metadata.name: \"API\" is not a valid name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            "metadata.namespace: \"Shop\" is not a valid namespace: use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit",
        ]
    );
}

#[test]
fn the_default_mesh_config_is_valid() {
    assert_eq!(
        problems(&mk_mesh_config("default", "  {}\n")),
        Vec::<String>::new()
    );
}

#[test]
fn mesh_config_rules() {
    let mc = mk_mesh_config(
        "mesh",
        "  trustDomain: spiffe://Cluster.Local\n  certificates: {workloadLifetime: 5m, rootLifetime: 1d}\n  proxy: {inboundPort: 4140, logLevel: verbose}\n  metrics: {provider: Prometheus}\n  tracing: {otlpEndpoint: otel:4317, samplingPercent: 150}\n",
    );
    assert_eq!(
        problems(&mc),
        [
            "metadata.name: only the MeshConfig named \"default\" is read; rename \"mesh\" to \"default\"",
            "spec.trustDomain: \"spiffe://Cluster.Local\" is not a valid trust domain: use a lowercase DNS name such as cluster.local (no scheme, no port)",
            "spec.certificates.rootLifetime: \"1d\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            "spec.certificates.workloadLifetime: 300s is too short: use at least 10m",
            "spec.proxy.inboundPort: 4140 is already spec.proxy.outboundPort; each listener needs its own port",
            "spec.proxy.logLevel: \"verbose\" is not a log level; use one of error, warn, info, debug, trace",
            "spec.metrics.prometheusUrl: required when provider is Prometheus, e.g. http://prometheus.monitoring:9090",
            "spec.tracing.otlpEndpoint: \"otel:4317\" is not an http(s) URL, e.g. http://otel-collector.observability:4317",
            "spec.tracing.samplingPercent: must be between 0 and 100, got 150",
        ]
    );
}

#[test]
fn the_root_lifetime_outlives_workload_certificates() {
    let mc = mk_mesh_config(
        "default",
        "  certificates: {workloadLifetime: 48h, rootLifetime: 24h}\n",
    );
    assert_eq!(
        problems(&mc),
        ["spec.certificates.rootLifetime: must be longer than workloadLifetime (48h), got 24h"]
    );
}

#[test]
fn the_builtin_metrics_provider_was_called_embedded_and_still_reads() {
    use smi_crds::trellis::mesh_config::MetricsProvider;
    for (provider, want) in [
        ("Embedded", MetricsProvider::Builtin),
        ("Builtin", MetricsProvider::Builtin),
    ] {
        let mc = mk_mesh_config("default", &format!("  metrics: {{provider: {provider}}}\n"));
        let value: Value = serde_saphyr::from_str(&mc).unwrap();
        let Some(dynamic::Resource::MeshConfig(m)) = dynamic::parse(value).unwrap() else {
            panic!("not a MeshConfig");
        };
        assert_eq!(m.spec.metrics.provider, want, "{provider}");
        assert_eq!(serde_json::to_value(want).unwrap(), "Builtin");
    }
}

#[test]
fn parse_errors_name_the_field() {
    let cases = [
        (
            mk_split("  service: web\n  backends: [{service: a, weigth: 1}]\n"),
            "spec.backends[0].weigth",
            "unknown field; expected `service` or `weight`",
        ),
        (
            mk_split("  service: web\n  backends: [{service: a}]\n"),
            "spec.backends[0].weight",
            "required",
        ),
        (
            mk_split("  service: web\n  backends: [{service: a, weight: ten}]\n"),
            "spec.backends[0].weight",
            "invalid type: string \"ten\", expected f64",
        ),
        (
            "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: x}\n"
                .to_owned(),
            "spec",
            "required",
        ),
        (
            mk_mesh_config("default", "  metrics: {provider: Graphite}\n"),
            "spec.metrics.provider",
            "unknown variant `Graphite`, expected one of `Builtin`, `Embedded`, `Prometheus`",
        ),
    ];
    for (manifest, field, message) in cases {
        let value: Value = serde_saphyr::from_str(&manifest).unwrap();
        let err = dynamic::parse(value).unwrap_err();
        assert_eq!(
            (err.field(), err.message().as_str()),
            (field, message),
            "{manifest}"
        );
    }
}
