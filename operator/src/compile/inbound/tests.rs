//! Inbound policy as a specification: one table per rule of SMI-SEMANTICS "Access" (and
//! the port, default, unmeshed and rate-limit rules of `mod.rs`), each case asserting the
//! whole config in a compact rendering.
//!
//! The workload is always `shop/api-1` (ServiceAccount `api`), with ports `http` 8080
//! (no hint) and `tcp-metrics` 9100 (opaque). `api_svc()` is the Service `shop/api`
//! (`http` 80 -> 8080, hence HTTP/1).

use std::collections::HashSet;

use trellis_proxy_api::v1::{self as api, DefaultPolicy, ProtocolHint};

use crate::compile::fixtures::{
    mesh, mesh_config, namespace, object, port_route, service, traffic_target, workload,
};
use crate::index::{Key, ObjKey, SourceObject, Workload, WorkloadPort};

fn api_1() -> Workload {
    let mut w = workload("shop", "api-1", "api", "10.0.1.1");
    w.ports.push(WorkloadPort {
        name: "tcp-metrics".into(),
        port: 9100,
        protocol: ProtocolHint::Opaque,
    });
    w
}

fn ns() -> SourceObject {
    namespace("shop", &[])
}

fn api_svc() -> SourceObject {
    service("shop", "api", &[("http", 80, 8080)])
}

/// `shop/api-admin`, selecting the workload too: `admin` 81 -> 8081 (no hint).
fn admin_svc() -> SourceObject {
    object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api-admin, namespace: shop}\n\
         spec:\n  selector: {app: api}\n  ports: [{name: admin, port: 81, targetPort: 8081}]\n",
    )
}

fn tt(name: &str, sources: &[&str], rules: &[&str]) -> SourceObject {
    traffic_target("shop", name, "api", sources, rules)
}

fn tcp(name: &str, ports: &[u16]) -> SourceObject {
    port_route("TCPRoute", "shop", name, ports)
}

fn udp(name: &str, ports: &[u16]) -> SourceObject {
    port_route("UDPRoute", "shop", name, ports)
}

/// `api-routes`: `get-api` (GET /api), `post-orders` (POST /orders with an `x-user`),
/// `health` (any method, /health); `admin-routes`: `admin` (/admin).
fn route_groups() -> Vec<SourceObject> {
    vec![
        object(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
             metadata: {name: api-routes, namespace: shop}\nspec:\n  matches:\n\
             \x20 - {name: get-api, pathRegex: /api, methods: [GET]}\n\
             \x20 - {name: post-orders, pathRegex: /orders, methods: [POST], headers: [{X-User: .+}]}\n\
             \x20 - {name: health, pathRegex: /health, methods: ['*']}\n",
        ),
        object(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
             metadata: {name: admin-routes, namespace: shop}\nspec:\n  matches:\n\
             \x20 - {name: admin, pathRegex: /admin}\n",
        ),
    ]
}

fn rate_limit_policy(name: &str, service: &str, limit: &str) -> SourceObject {
    object(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\n\
         metadata: {{name: {name}, namespace: shop}}\nspec: {{service: {service}{limit}}}\n"
    ))
}

/// The config as lines: `default <policy>`, then per port `port <n> <protocol>
/// [unmeshed] [rate <rps>/<burst>]` and its authorizations `  <name>: <identities> ->
/// <routes>` (identities of trust domain cluster.local as `ns/sa`; routes as `<methods>
/// <path> [header=~regex]`, `*` for any, `all` for no routes).
fn render(config: &api::InboundConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if !config.version.is_empty() {
        lines.push(format!("version {}", config.version));
    }
    let default = match DefaultPolicy::try_from(config.default_policy) {
        Ok(DefaultPolicy::Deny) => "deny",
        Ok(DefaultPolicy::Allow) => "allow",
        Ok(DefaultPolicy::AllowAuthenticated) => "allow-authenticated",
        Err(_) => "unknown",
    };
    lines.push(format!("default {default}"));
    for p in &config.ports {
        let protocol = match ProtocolHint::try_from(p.protocol) {
            Ok(ProtocolHint::Unspecified) => "detect",
            Ok(ProtocolHint::Http1) => "http1",
            Ok(ProtocolHint::Http2) => "http2",
            Ok(ProtocolHint::Grpc) => "grpc",
            Ok(ProtocolHint::Opaque) => "opaque",
            Err(_) => "unknown",
        };
        let mut line = format!("port {} {protocol}", p.port);
        if p.allow_unmeshed {
            line.push_str(" unmeshed");
        }
        if let Some(r) = &p.rate_limit {
            line.push_str(&format!(" rate {}/{}", r.requests_per_second, r.burst));
        }
        lines.push(line);
        for a in &p.authorizations {
            let ids: Vec<String> = a
                .identities
                .iter()
                .map(|i| match i.strip_prefix("spiffe://cluster.local/ns/") {
                    Some(rest) => rest.replacen("/sa/", "/", 1),
                    None => i.clone(),
                })
                .collect();
            let ids = if ids.is_empty() {
                "nobody".to_owned()
            } else {
                ids.join(", ")
            };
            let routes = if a.routes.is_empty() {
                "all".to_owned()
            } else {
                a.routes.iter().map(route).collect::<Vec<_>>().join(" | ")
            };
            lines.push(format!("  {}: {ids} -> {routes}", a.name));
        }
    }
    lines
}

fn route(m: &api::HttpMatch) -> String {
    let or_any = |s: String| if s.is_empty() { "*".to_owned() } else { s };
    let mut out = format!(
        "{} {}",
        or_any(m.methods.join(",")),
        or_any(m.path_regex.clone())
    );
    if !m.headers.is_empty() {
        let headers: Vec<String> = m
            .headers
            .iter()
            .map(|h| format!("{}=~{}", h.name, h.value_regex))
            .collect();
        out.push_str(&format!(" [{}]", headers.join(", ")));
    }
    out
}

type Case = (&'static str, Vec<SourceObject>, &'static [&'static str]);

/// Compiles `shop/api-1` in a mesh of each case's objects and compares the rendering.
fn check(cases: Vec<Case>) {
    for (case, objects, want) in cases {
        let snapshot = mesh(objects, vec![api_1()]);
        let got = super::inbound(&snapshot, &ObjKey::new("shop", "api-1"));
        assert_eq!(render(&got.config), want, "{case}");
    }
}

fn with(mut objects: Vec<SourceObject>, more: Vec<SourceObject>) -> Vec<SourceObject> {
    objects.extend(more);
    objects
}

#[test]
fn rule_1_an_unknown_workload_is_denied_everything_until_it_registers() {
    let snapshot = mesh(
        vec![ns(), api_svc(), tt("web-to-api", &["web"], &[])],
        vec![api_1()],
    );
    let got = super::inbound(&snapshot, &ObjKey::new("shop", "api-2"));
    assert_eq!(render(&got.config), ["default deny"]);
    assert_eq!(
        got.deps,
        HashSet::from([Key::Workload(ObjKey::new("shop", "api-2"))])
    );
}

#[test]
fn rule_2_ports_are_the_workloads_and_the_target_ports_of_services_selecting_it() {
    let api = object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: shop}\n\
         spec:\n  selector: {app: api}\n  ports:\n\
         \x20 - {name: http, port: 80, targetPort: http}\n\
         \x20 - {name: grpc-api, port: 9090, targetPort: 9091}\n\
         \x20 - {name: metrics, port: 9100}\n\
         \x20 - {name: dns, port: 53, protocol: UDP}\n\
         \x20 - {name: admin, port: 81, targetPort: no-such-port}\n",
    );
    // Sorted after `api`: its hint for 8080 (HTTP/2) loses to `api`'s (HTTP/1).
    let api_raw = object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api-raw, namespace: shop}\n\
         spec:\n  selector: {app: api}\n  ports:\n\
         \x20 - {name: tcp-raw, port: 7000}\n\
         \x20 - {name: h2c, port: 8082, targetPort: 8080}\n",
    );
    let not_selecting = vec![
        service("shop", "web", &[("http", 80, 6000)]),
        object(
            "apiVersion: v1\nkind: Service\nmetadata: {name: external, namespace: shop}\n\
             spec: {ports: [{port: 5000}]}\n",
        ),
        service("other", "api", &[("http", 80, 6001)]),
    ];
    #[rustfmt::skip]
    check(vec![
        ("the workload's own ports, with their hints", vec![ns()],
         &["default deny", "port 8080 detect", "port 9100 opaque"]),
        ("a Service's target port takes the Service port's hint", vec![ns(), api_svc()],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
        ("named target ports resolved, hints by Service name, UDP and unknown names left out",
         with(vec![ns(), api, api_raw], not_selecting),
         &["default deny", "port 7000 opaque", "port 8080 http1", "port 9091 grpc", "port 9100 opaque"]),
    ]);
}

#[test]
fn rule_3_traffic_targets_without_rules_allow_their_sources_on_every_port() {
    #[rustfmt::skip]
    check(vec![
        ("sources default to the TrafficTarget's namespace",
         vec![ns(), api_svc(), tt("web-to-api", &["web", "other/batch"], &[])],
         &["default deny",
           "port 8080 http1", "  shop/web-to-api: shop/web, other/batch -> all",
           "port 9100 opaque", "  shop/web-to-api: shop/web, other/batch -> all"]),
        ("separate TrafficTargets are OR-ed, in name order",
         vec![ns(), api_svc(), tt("b", &["batch"], &[]), tt("a", &["web"], &[])],
         &["default deny",
           "port 8080 http1", "  shop/a: shop/web -> all", "  shop/b: shop/batch -> all",
           "port 9100 opaque", "  shop/a: shop/web -> all", "  shop/b: shop/batch -> all"]),
        ("no sources, or another destination: nothing",
         vec![ns(), api_svc(), tt("nobody", &[], &[]),
              traffic_target("shop", "to-web", "web", &["batch"], &[])],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
        ("identities in MeshConfig's trust domain",
         vec![ns(), api_svc(), mesh_config("trustDomain: example.org"), tt("web-to-api", &["web"], &[])],
         &["default deny",
           "port 8080 http1", "  shop/web-to-api: spiffe://example.org/ns/shop/sa/web -> all",
           "port 9100 opaque", "  shop/web-to-api: spiffe://example.org/ns/shop/sa/web -> all"]),
    ]);
}

#[test]
fn rule_3_tcp_and_udp_routes_limit_a_traffic_target_to_the_union_of_their_ports() {
    #[rustfmt::skip]
    check(vec![
        ("union of TCPRoute and UDPRoute ports; [] is every port",
         vec![ns(), api_svc(), tcp("p8080", &[8080]), udp("u9100", &[9100]), tcp("every", &[]),
              tt("a-tcp", &["web"], &["TCPRoute p8080"]),
              tt("b-tcp-udp", &["batch"], &["TCPRoute p8080", "UDPRoute u9100"]),
              tt("c-all", &["ops"], &["TCPRoute p8080", "TCPRoute every"])],
         &["default deny",
           "port 8080 http1", "  shop/a-tcp: shop/web -> all", "  shop/b-tcp-udp: shop/batch -> all",
           "  shop/c-all: shop/ops -> all",
           "port 9100 opaque", "  shop/b-tcp-udp: shop/batch -> all", "  shop/c-all: shop/ops -> all"]),
        ("ports are the workload's, not the Service's (80 is the Service port of 8080)",
         vec![ns(), api_svc(), tcp("p80", &[80]), tt("web-to-api", &["web"], &["TCPRoute p80"])],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
    ]);
}

#[test]
fn rule_3_http_route_groups_limit_a_traffic_target_to_the_union_of_the_selected_matches() {
    let admin_svc = admin_svc();
    #[rustfmt::skip]
    check(vec![
        ("selected matches, whole groups, unions; HTTP ports and undetected ports only",
         with(vec![ns(), api_svc(), admin_svc,
              tt("a-get", &["web"], &["HTTPRouteGroup api-routes get-api"]),
              tt("b-union", &["batch"], &["HTTPRouteGroup api-routes get-api post-orders",
                                          "HTTPRouteGroup admin-routes"]),
              tt("c-whole-group", &["ops"], &["HTTPRouteGroup api-routes"])], route_groups()),
         &["default deny",
           "port 8080 http1",
           "  shop/a-get: shop/web -> GET /api",
           "  shop/b-union: shop/batch -> GET /api | POST /orders [x-user=~.+] | * /admin",
           "  shop/c-whole-group: shop/ops -> GET /api | POST /orders [x-user=~.+] | * /health",
           "port 8081 detect",
           "  shop/a-get: shop/web -> GET /api",
           "  shop/b-union: shop/batch -> GET /api | POST /orders [x-user=~.+] | * /admin",
           "  shop/c-whole-group: shop/ops -> GET /api | POST /orders [x-user=~.+] | * /health",
           "port 9100 opaque"]),
        ("route AND port: an HTTPRouteGroup rule with a TCPRoute rule",
         with(vec![ns(), api_svc(), tcp("p8080", &[8080]), tcp("p9100", &[9100]),
              tt("a-and", &["web"], &["HTTPRouteGroup api-routes health", "TCPRoute p8080"]),
              tt("b-port", &["batch"], &["TCPRoute p9100"])], route_groups()),
         &["default deny",
           "port 8080 http1", "  shop/a-and: shop/web -> * /health",
           "port 9100 opaque", "  shop/b-port: shop/batch -> all"]),
    ]);
}

#[test]
fn rule_3_a_rule_naming_a_missing_route_or_match_allows_nothing() {
    #[rustfmt::skip]
    check(vec![
        ("missing group, match, TCPRoute, UDPRoute: fail closed, rule by rule",
         with(vec![ns(), api_svc(),
              tt("a-no-group", &["web"], &["HTTPRouteGroup no-such-group"]),
              tt("b-one-bad-rule", &["batch"], &["HTTPRouteGroup api-routes get-api no-such-match",
                                                 "HTTPRouteGroup admin-routes"]),
              tt("c-no-match", &["ci"], &["HTTPRouteGroup api-routes no-such-match"]),
              tt("d-no-tcp-route", &["ops"], &["TCPRoute no-such-route"]),
              tt("e-no-udp-route", &["dev"], &["UDPRoute no-such-route"])], route_groups()),
         &["default deny",
           "port 8080 http1", "  shop/b-one-bad-rule: shop/batch -> * /admin",
           "port 9100 opaque"]),
    ]);
}

#[test]
fn rule_4_the_default_denies_unless_permissive() {
    #[rustfmt::skip]
    check(vec![
        ("SMI: deny, also without any TrafficTarget", vec![ns(), api_svc()],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
        ("MeshConfig permissive: meshed clients allowed, authorizations kept for their names",
         with(vec![ns(), api_svc(), mesh_config("permissive: true"),
              tt("a-get", &["web"], &["HTTPRouteGroup api-routes get-api"])], route_groups()),
         &["default allow-authenticated", "port 8080 http1", "  shop/a-get: shop/web -> GET /api",
           "port 9100 opaque"]),
        ("namespace annotation", vec![namespace("shop", &[("trellis.dev/permissive", "true")]), api_svc()],
         &["default allow-authenticated", "port 8080 http1", "port 9100 opaque"]),
        ("annotation \"false\"", vec![namespace("shop", &[("trellis.dev/permissive", "false")]), api_svc()],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
        ("another namespace's annotation",
         vec![ns(), namespace("other", &[("trellis.dev/permissive", "true")]), api_svc()],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
    ]);
}

#[test]
fn rule_5_unmeshed_clients_are_allowed_per_mesh_namespace_or_port() {
    #[rustfmt::skip]
    check(vec![
        ("MeshConfig policy Allow", vec![ns(), api_svc(), mesh_config("unmeshedClients: {policy: Allow}")],
         &["default deny", "port 8080 http1 unmeshed", "port 9100 opaque unmeshed"]),
        ("allowedNamespaces", vec![ns(), api_svc(), mesh_config("unmeshedClients: {allowedNamespaces: [legacy, shop]}")],
         &["default deny", "port 8080 http1 unmeshed", "port 9100 opaque unmeshed"]),
        ("allowedNamespaces without ours", vec![ns(), api_svc(), mesh_config("unmeshedClients: {allowedNamespaces: [legacy]}")],
         &["default deny", "port 8080 http1", "port 9100 opaque"]),
        ("namespace annotation", vec![namespace("shop", &[("trellis.dev/allow-unmeshed", "true")]), api_svc()],
         &["default deny", "port 8080 http1 unmeshed", "port 9100 opaque unmeshed"]),
        ("allowedPorts, also a port the workload does not declare",
         vec![ns(), api_svc(), mesh_config("unmeshedClients: {allowedPorts: [9100, 15000]}")],
         &["default deny", "port 8080 http1", "port 9100 opaque unmeshed", "port 15000 detect unmeshed"]),
        ("deny mode: plaintext clients keep the routes TrafficTargets allow on the port",
         with(vec![ns(), api_svc(), mesh_config("unmeshedClients: {policy: Allow}"),
              tt("a-get", &["web"], &["HTTPRouteGroup api-routes get-api"])], route_groups()),
         &["default deny", "port 8080 http1 unmeshed", "  shop/a-get: shop/web -> GET /api",
           "port 9100 opaque unmeshed"]),
        ("permissive mode: TrafficTargets do not bind plaintext clients either",
         with(vec![ns(), api_svc(), mesh_config("permissive: true, unmeshedClients: {policy: Allow}"),
              tt("a-get", &["web"], &["HTTPRouteGroup api-routes get-api"])], route_groups()),
         &["default allow-authenticated", "port 8080 http1 unmeshed",
           "  shop/a-get: shop/web -> GET /api", "  unmeshed: nobody -> all",
           "port 9100 opaque unmeshed"]),
    ]);
}

#[test]
fn rule_6_a_traffic_policy_rate_limit_applies_on_its_services_target_ports() {
    let admin_svc = admin_svc();
    #[rustfmt::skip]
    check(vec![
        ("rate and burst", vec![ns(), api_svc(),
              rate_limit_policy("api", "api", ", rateLimit: {requestsPerSecond: 5, burst: 10}")],
         &["default deny", "port 8080 http1 rate 5/10", "port 9100 opaque"]),
        ("burst defaults to the rate", vec![ns(), api_svc(),
              rate_limit_policy("api", "api", ", rateLimit: {requestsPerSecond: 5}")],
         &["default deny", "port 8080 http1 rate 5/5", "port 9100 opaque"]),
        ("the first policy of the Service with a rate limit, by name", vec![ns(), api_svc(),
              rate_limit_policy("a-timeout", "api", ", timeout: 5s"),
              rate_limit_policy("b-limit", "api", ", rateLimit: {requestsPerSecond: 7}"),
              rate_limit_policy("c-limit", "api", ", rateLimit: {requestsPerSecond: 9}")],
         &["default deny", "port 8080 http1 rate 7/7", "port 9100 opaque"]),
        ("each Service's policy on its own target ports; other Services' policies do not count",
         vec![ns(), api_svc(), admin_svc, service("shop", "web", &[("http", 80, 8080)]),
              rate_limit_policy("admin", "api-admin", ", rateLimit: {requestsPerSecond: 3}"),
              rate_limit_policy("web", "web", ", rateLimit: {requestsPerSecond: 1}")],
         &["default deny", "port 8080 http1", "port 8081 detect rate 3/3", "port 9100 opaque"]),
    ]);
}

#[test]
fn the_config_depends_on_every_key_it_read() {
    let snapshot = mesh(
        with(
            vec![
                ns(),
                api_svc(),
                tcp("p8080", &[8080]),
                tt(
                    "web-to-api",
                    &["web"],
                    &["HTTPRouteGroup api-routes get-api", "TCPRoute p8080"],
                ),
                rate_limit_policy("api", "api", ", rateLimit: {requestsPerSecond: 5}"),
            ],
            route_groups(),
        ),
        vec![api_1()],
    );
    let got = super::inbound(&snapshot, &ObjKey::new("shop", "api-1"));
    let shop = |name: &str| ObjKey::new("shop", name);
    assert_eq!(
        got.deps,
        HashSet::from([
            Key::Workload(shop("api-1")),
            Key::MeshConfig,
            Key::Namespace("shop".into()),
            Key::ServicesIn("shop".into()),
            Key::TargetsOf(shop("api")),
            Key::PoliciesOf(shop("api")),
            Key::RouteGroup(shop("api-routes")),
            Key::TcpRoute(shop("p8080")),
        ])
    );
    assert_eq!(
        got.config.version, "",
        "the discovery server versions configs"
    );
}
