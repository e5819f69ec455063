//! Outbound compile as a specification: each test builds a small mesh and states the exact
//! config a client gets, rendered one line per route, backend and endpoint:
//!
//! ```text
//! authority web.shop.svc.cluster.local http1          (canonical name, protocol hint)
//! route shop/ab [GET /api x-canary=true | any] -> shop/web-v2:80*1, shop/web:80*9
//!   timeout "5s" | retry {...} | fault {...} | mirror shop/web-shadow:80 10%
//! route default -> 503 web: no ready endpoints         (no backend: the 503 reason)
//! backend shop/web:80 balancer {...} circuit_breaker {...}
//!   10.0.0.1:8080 spiffe://cluster.local/ns/shop/sa/web app=web
//! ```
//!
//! Every compiled config is also checked against what the proxy refuses (last route
//! without matches, every referenced backend present, unique backend names).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use trellis_proxy_api::v1 as api;

use super::*;
use crate::compile::fixtures::{mesh, mesh_config, object, service, workload};
use crate::index::{Index, Key, Options, SourceObject, Update, Workload};

// ---------------------------------------------------------------------------------------
// Builders and the rendering.

fn client() -> Client {
    ObjKey::new("shop", "client")
}

/// Services `web`, `web-v1`, `web-v2` (port 80 `http` -> 8080), one ready meshed
/// workload each, plus `extra`.
fn shop(extra: Vec<SourceObject>) -> Snapshot {
    shop_with(extra, vec![])
}

fn shop_with(extra: Vec<SourceObject>, more_workloads: Vec<Workload>) -> Snapshot {
    let mut objects = vec![
        service("shop", "web", &[("http", 80, 8080)]),
        service("shop", "web-v1", &[("http", 80, 8080)]),
        service("shop", "web-v2", &[("http", 80, 8080)]),
    ];
    objects.extend(extra);
    let mut workloads = vec![
        workload("shop", "web-0", "web", "10.0.0.1"),
        workload("shop", "web-v1-0", "web-v1", "10.0.1.1"),
        workload("shop", "web-v2-0", "web-v2", "10.0.2.1"),
    ];
    workloads.extend(more_workloads);
    mesh(objects, workloads)
}

/// A TrafficSplit in `shop`: `backends` as (service, weight), `groups` HTTPRouteGroups.
fn split(name: &str, root: &str, backends: &[(&str, u32)], groups: &[&str]) -> SourceObject {
    split_created(name, None, root, backends, groups)
}

fn split_created(
    name: &str,
    created: Option<&str>,
    root: &str,
    backends: &[(&str, u32)],
    groups: &[&str],
) -> SourceObject {
    let backends: Vec<String> = backends
        .iter()
        .map(|(service, weight)| format!("{{service: {service}, weight: {weight}}}"))
        .collect();
    let matches: Vec<String> = groups
        .iter()
        .map(|g| format!("{{kind: HTTPRouteGroup, name: {g}}}"))
        .collect();
    let created = created
        .map(|t| format!(", creationTimestamp: \"{t}\""))
        .unwrap_or_default();
    object(&format!(
        "apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {{name: {name}, namespace: shop{created}}}
spec:
  service: {root}
  backends: [{}]
  matches: [{}]
",
        backends.join(", "),
        matches.join(", ")
    ))
}

/// An HTTPRouteGroup in `shop`; `matches` in YAML flow form.
fn route_group(name: &str, matches: &str) -> SourceObject {
    object(&format!(
        "apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {{name: {name}, namespace: shop}}
spec:
  matches: {matches}
"
    ))
}

/// A TrafficPolicy in `shop`; `spec` in YAML (block form, two-space indent).
fn policy(name: &str, spec: &str) -> SourceObject {
    object(&format!(
        "apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {{name: {name}, namespace: shop}}
spec:
{spec}"
    ))
}

fn unready(mut w: Workload) -> Workload {
    w.ready = false;
    w
}

fn unmeshed(mut w: Workload) -> Workload {
    w.meshed = false;
    w
}

fn authority(target: &str) -> Target {
    Target::Authority(target.to_owned())
}

fn address(target: &str) -> Target {
    Target::Address(target.parse().expect("a socket address"))
}

/// Compiles for `shop/client`, checks what the proxy would check, and renders.
fn compile(snapshot: &Snapshot, target: &Target) -> Vec<String> {
    compile_as(&client(), snapshot, target)
}

fn compile_as(client: &Client, snapshot: &Snapshot, target: &Target) -> Vec<String> {
    let compiled = outbound(snapshot, client, target);
    assert_proxy_accepts(&compiled.config);
    let again = outbound(snapshot, client, target);
    assert_eq!(compiled, again, "equal inputs give equal output");
    render(&compiled.config)
}

/// What `proxy/src/config/from_proto.rs` refuses, and the default-route rule.
fn assert_proxy_accepts(config: &api::OutboundConfig) {
    assert!(config.version.is_empty(), "the discovery server versions");
    let names: HashSet<&str> = config.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names.len(),
        config.backends.len(),
        "duplicate backend names"
    );
    let last = config.routes.last().expect("at least the default route");
    assert!(last.matches.is_empty(), "the last route has no matches");
    let mut referenced = HashSet::new();
    for route in &config.routes {
        for wb in &route.backends {
            assert!(
                names.contains(wb.backend.as_str()),
                "{} missing",
                wb.backend
            );
            assert!(wb.weight > 0, "weights are > 0");
            referenced.insert(wb.backend.as_str());
        }
        if let Some(m) = &route.mirror {
            assert!(names.contains(m.backend.as_str()), "{} missing", m.backend);
            referenced.insert(m.backend.as_str());
        }
        assert_eq!(
            route.backends.is_empty(),
            !route.unavailable_reason.is_empty(),
            "a reason exactly when no backend is eligible: {route:?}"
        );
    }
    assert_eq!(referenced, names, "every backend is used by a route");
}

fn render(config: &api::OutboundConfig) -> Vec<String> {
    let protocol = api::ProtocolHint::try_from(config.protocol)
        .expect("a known protocol")
        .as_str_name()
        .trim_start_matches("PROTOCOL_HINT_")
        .to_ascii_lowercase();
    let authority = if config.authority.is_empty() {
        "-"
    } else {
        &config.authority
    };
    let mut out = vec![format!("authority {authority} {protocol}")];
    if let Some(r) = &config.rate_limit {
        out.push(format!("rate_limit {}", json(r)));
    }
    for route in &config.routes {
        let matches = if route.matches.is_empty() {
            String::new()
        } else {
            let each: Vec<String> = route.matches.iter().map(render_match).collect();
            format!(" [{}]", each.join(" | "))
        };
        let to = if route.backends.is_empty() {
            format!("503 {}", route.unavailable_reason)
        } else {
            let each: Vec<String> = route
                .backends
                .iter()
                .map(|wb| format!("{}*{}", wb.backend, wb.weight))
                .collect();
            each.join(", ")
        };
        out.push(format!("route {}{matches} -> {to}", route.name));
        if let Some(t) = &route.timeout {
            out.push(format!("  timeout {}", json(t)));
        }
        if let Some(r) = &route.retry {
            out.push(format!("  retry {}", json(r)));
        }
        if let Some(f) = &route.fault {
            out.push(format!("  fault {}", json(f)));
        }
        if let Some(m) = &route.mirror {
            out.push(format!("  mirror {} {}%", m.backend, m.percent));
        }
        if let Some(r) = &route.rate_limit {
            out.push(format!("  rate_limit {}", json(r)));
        }
    }
    for backend in &config.backends {
        let mut line = format!("backend {}", backend.name);
        if let Some(b) = &backend.balancer {
            line += &format!(" balancer {}", json(b));
        }
        if let Some(cb) = &backend.circuit_breaker {
            line += &format!(" circuit_breaker {}", json(cb));
        }
        out.push(line);
        for e in &backend.endpoints {
            let a = e.address.as_ref().expect("an address");
            let ip: std::net::IpAddr = a.ip.parse().expect("an IP");
            let identity = if e.identity.is_empty() {
                "plaintext"
            } else {
                &e.identity
            };
            let labels: Vec<String> = e.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(
                format!(
                    "  {} {identity} {}",
                    std::net::SocketAddr::new(ip, a.port as u16),
                    labels.join(",")
                )
                .trim_end()
                .to_owned(),
            );
        }
    }
    out
}

/// `GET,POST /api x-canary=true`; a match with no criteria is `any`.
fn render_match(m: &api::HttpMatch) -> String {
    let mut parts = Vec::new();
    if !m.methods.is_empty() {
        parts.push(m.methods.join(","));
    }
    if !m.path_regex.is_empty() {
        parts.push(m.path_regex.clone());
    }
    parts.extend(
        m.headers
            .iter()
            .map(|h| format!("{}={}", h.name, h.value_regex)),
    );
    if parts.is_empty() {
        "any".to_owned()
    } else {
        parts.join(" ")
    }
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("serializable")
}

/// Lines from blocks (a route list, a backend and its endpoints, ...).
fn lines(blocks: &[&[&str]]) -> Vec<String> {
    blocks
        .iter()
        .flat_map(|b| b.iter().map(|l| (*l).to_owned()))
        .collect()
}

const WEB: &[&str] = &[
    "backend shop/web:80",
    "  10.0.0.1:8080 spiffe://cluster.local/ns/shop/sa/web app=web",
];
const V1: &[&str] = &[
    "backend shop/web-v1:80",
    "  10.0.1.1:8080 spiffe://cluster.local/ns/shop/sa/web-v1 app=web-v1",
];
const V2: &[&str] = &[
    "backend shop/web-v2:80",
    "  10.0.2.1:8080 spiffe://cluster.local/ns/shop/sa/web-v2 app=web-v2",
];
const WEB_HTTP: &str = "authority web.shop.svc.cluster.local http1";
const TO_WEB: &str = "route default -> shop/web:80*1";

/// `web` (as [`shop`] has it) with a cluster IP.
fn web_with_ip(ip: &str) -> SourceObject {
    object(&format!(
        "apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{app: web}}
  clusterIP: {ip}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"
    ))
}

// ---------------------------------------------------------------------------------------
// Rules of this module (doc comments in mod.rs, resolve.rs, split.rs, backend.rs).

#[test]
fn rule_1_a_target_is_a_service_port_a_workload_or_a_passthrough_address() {
    let snapshot = shop_with(
        vec![web_with_ip("10.96.0.10")],
        vec![
            unmeshed(workload("shop", "legacy-0", "legacy", "10.0.9.9")),
            Workload {
                inbound_port: Some(4143),
                ..workload("shop", "local-0", "local", "10.0.8.1")
            },
        ],
    );
    let by_name = lines(&[&[WEB_HTTP, TO_WEB], WEB]);
    let v1_0 = lines(&[&[
        "authority - unspecified",
        "route default -> workload:shop/web-v1-0*1",
        "backend workload:shop/web-v1-0",
        "  10.0.1.1:8080 spiffe://cluster.local/ns/shop/sa/web-v1 app=web-v1",
    ]]);
    for (target, want) in [
        (authority("web"), by_name.clone()),
        (authority("web.shop:80"), by_name.clone()),
        (authority("web.shop.svc.cluster.local"), by_name.clone()),
        // A Service's cluster IP: as if called by name at that port.
        (address("10.96.0.10:80"), by_name.clone()),
        // A workload's address: that workload only, with its identity.
        (address("10.0.1.1:8080"), v1_0.clone()),
        // An IP literal as authority is the address it names.
        (authority("10.0.1.1:8080"), v1_0.clone()),
        // An unmeshed workload is called in plaintext.
        (
            address("10.0.9.9:5432"),
            lines(&[&[
                "authority - unspecified",
                "route default -> workload:shop/legacy-0*1",
                "backend workload:shop/legacy-0",
                "  10.0.9.9:5432 plaintext app=legacy",
            ]]),
        ),
        // A workload reached through its proxy's inbound port (local mode).
        (
            address("10.0.8.1:8080"),
            lines(&[&[
                "authority - unspecified",
                "route default -> workload:shop/local-0*1",
                "backend workload:shop/local-0",
                "  10.0.8.1:4143 spiffe://cluster.local/ns/shop/sa/local app=local",
            ]]),
        ),
        // Nothing in the mesh: exactly that address, in plaintext.
        (
            address("192.0.2.7:443"),
            lines(&[&[
                "authority - unspecified",
                "route default -> passthrough:192.0.2.7:443*1",
                "backend passthrough:192.0.2.7:443",
                "  192.0.2.7:443 plaintext",
            ]]),
        ),
        (
            address("[2001:db8::7]:443"),
            lines(&[&[
                "authority - unspecified",
                "route default -> passthrough:[2001:db8::7]:443*1",
                "backend passthrough:[2001:db8::7]:443",
                "  [2001:db8::7]:443 plaintext",
            ]]),
        ),
    ] {
        assert_eq!(compile(&snapshot, &target), want, "{target:?}");
    }
}

#[test]
fn rule_2_an_unknown_service_or_port_gets_503_saying_what_is_missing_and_what_exists() {
    let snapshot = shop(vec![
        web_with_ip("10.96.0.10"),
        service("shop", "multi", &[("http", 80, 8080), ("", 9090, 9090)]),
        service("shop", "portless", &[]),
    ]);
    for (client, target, want) in [
        (
            client(),
            authority("nope"),
            [
                "authority nope.shop.svc.cluster.local unspecified",
                "route default -> 503 no Service shop/nope (authority nope:80)",
            ],
        ),
        (
            // Short names resolve in the client's namespace.
            ObjKey::new("other", "client"),
            authority("web:8080"),
            [
                "authority web.other.svc.cluster.local unspecified",
                "route default -> 503 no Service other/web (authority web:8080)",
            ],
        ),
        (
            client(),
            authority("web:8080"),
            [
                "authority web.shop.svc.cluster.local unspecified",
                "route default -> 503 Service shop/web has no port 8080; its ports: 80 (http)",
            ],
        ),
        (
            client(),
            address("10.96.0.10:8080"),
            [
                "authority web.shop.svc.cluster.local unspecified",
                "route default -> 503 Service shop/web has no port 8080; its ports: 80 (http)",
            ],
        ),
        (
            client(),
            authority("multi.shop.svc.cluster.local:8080"),
            [
                "authority multi.shop.svc.cluster.local unspecified",
                "route default -> 503 Service shop/multi has no port 8080; its ports: 80 (http), 9090",
            ],
        ),
        (
            client(),
            authority("portless"),
            [
                "authority portless.shop.svc.cluster.local unspecified",
                "route default -> 503 Service shop/portless has no port 80; it has no ports",
            ],
        ),
        (
            client(),
            authority("api.example.com.au"),
            [
                "authority api.example.com.au unspecified",
                "route default -> 503 \"api.example.com.au\" does not name a Service \
                 (<name>, <name>.<namespace> or <name>.<namespace>.svc.<cluster domain>)",
            ],
        ),
        (
            client(),
            authority("web:http"),
            [
                "authority web unspecified",
                "route default -> 503 authority \"web:http\": \"http\" is not a port (1-65535)",
            ],
        ),
    ] {
        assert_eq!(
            compile_as(&client, &snapshot, &target),
            want,
            "{client} {target:?}"
        );
    }
}

#[test]
fn rule_3_the_protocol_is_the_port_hint_and_udp_ports_are_not_proxied() {
    let snapshot = mesh(
        vec![
            service(
                "shop",
                "api",
                &[
                    ("grpc", 9090, 9090),
                    ("tcp-db", 5432, 5432),
                    ("", 8080, 8080),
                ],
            ),
            object(
                "apiVersion: v1
kind: Service
metadata: {name: dns, namespace: shop}
spec:
  selector: {app: dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: http, port: 80}]
",
            ),
        ],
        vec![workload("shop", "api-0", "api", "10.0.3.1")],
    );
    let api_at = |port: u16, protocol: &str| {
        vec![
            format!("authority api.shop.svc.cluster.local {protocol}"),
            format!("route default -> shop/api:{port}*1"),
            format!("backend shop/api:{port}"),
            format!("  10.0.3.1:{port} spiffe://cluster.local/ns/shop/sa/api app=api"),
        ]
    };
    for (target, want) in [
        (authority("api:9090"), api_at(9090, "grpc")),
        (authority("api:5432"), api_at(5432, "opaque")),
        (authority("api:8080"), api_at(8080, "unspecified")),
        (
            authority("dns:53"),
            lines(&[&[
                "authority dns.shop.svc.cluster.local unspecified",
                "route default -> 503 Service shop/dns has no TCP port 53 (UDP is not proxied); \
                 its ports: 53 (dns, UDP), 80 (http)",
            ]]),
        ),
    ] {
        assert_eq!(compile(&snapshot, &target), want, "{target:?}");
    }
}

#[test]
fn rule_4_endpoints_are_the_ready_ones_with_a_target_port_sorted_with_their_identity() {
    let named_target = |objects: Vec<SourceObject>| {
        let mut all = vec![object(
            "apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
",
        )];
        all.extend(objects);
        all
    };
    let mut custom_port = workload("shop", "web-4", "web", "10.0.0.2");
    custom_port.ports[0].port = 9000;
    custom_port.labels.insert("version".into(), "v2".into());
    let mut no_port = workload("shop", "web-3", "web", "10.0.0.4");
    no_port.ports.clear();
    let workloads = vec![
        unmeshed(workload("shop", "web-1", "web", "10.0.0.10")),
        workload("shop", "web-0", "web", "10.0.0.1"),
        unready(workload("shop", "web-2", "web", "10.0.0.3")),
        no_port.clone(),
        custom_port,
    ];
    // Sorted by address (10.0.0.2 before 10.0.0.10), identities in the trust domain of
    // the MeshConfig, labels as the endpoint carries them.
    assert_eq!(
        compile(
            &mesh(
                named_target(vec![mesh_config("trustDomain: example.org")]),
                workloads
            ),
            &authority("web")
        ),
        [
            WEB_HTTP,
            TO_WEB,
            "backend shop/web:80",
            "  10.0.0.1:8080 spiffe://example.org/ns/shop/sa/web app=web",
            "  10.0.0.2:9000 spiffe://example.org/ns/shop/sa/web app=web,version=v2",
            "  10.0.0.10:8080 plaintext app=web",
        ]
    );
    // No ready endpoint, or none with a target port: 503 and why.
    for (workloads, reason) in [
        (vec![], "web: no ready endpoints"),
        (
            vec![unready(workload("shop", "web-0", "web", "10.0.0.1"))],
            "web: no ready endpoints",
        ),
        (
            vec![no_port],
            "web: no ready endpoint has a target port for port 80 (http)",
        ),
    ] {
        assert_eq!(
            compile(&mesh(named_target(vec![]), workloads), &authority("web")),
            [
                WEB_HTTP.to_owned(),
                format!("route default -> 503 {reason}")
            ]
        );
    }
}

#[test]
fn rule_5_matched_splits_in_name_order_then_the_oldest_unmatched_split_or_the_root() {
    let groups = || {
        vec![
            route_group(
                "canary-users",
                "[{name: firefox, headers: [{user-agent: '.*Firefox.*'}]}, \
                 {name: beta, pathRegex: /beta, methods: [GET, POST]}]",
            ),
            route_group("internal", "[{name: admin, pathRegex: /admin}]"),
        ]
    };
    let with = |splits: Vec<SourceObject>| {
        let mut objects = groups();
        objects.extend(splits);
        shop(objects)
    };
    for (what, splits, want) in [
        (
            "A/B splits in name order, the oldest unmatched split as default",
            vec![
                split(
                    "b-ab",
                    "web",
                    &[("web-v2", 1)],
                    &["canary-users", "internal"],
                ),
                split("a-ab", "web", &[("web-v1", 1)], &["internal"]),
                split("c-missing-group", "web", &[("web-v2", 1)], &["nope"]),
                split_created(
                    "newer",
                    Some("2024-06-01T00:00:00Z"),
                    "web",
                    &[("web-v2", 1)],
                    &[],
                ),
                split_created(
                    "rollout",
                    Some("2024-01-01T00:00:00Z"),
                    "web",
                    &[("web", 9), ("web-v1", 1)],
                    &[],
                ),
                split("untimed", "web", &[("web-v2", 1)], &[]),
            ],
            lines(&[
                &[
                    WEB_HTTP,
                    "route shop/a-ab [/admin] -> shop/web-v1:80*1",
                    "route shop/b-ab [user-agent=.*Firefox.* | GET,POST /beta | /admin] -> shop/web-v2:80*1",
                    "route shop/rollout -> shop/web:80*9, shop/web-v1:80*1",
                ],
                V1,
                V2,
                WEB,
            ]),
        ),
        (
            "no unmatched split: the rest goes to the root's own endpoints",
            vec![split("ab", "web", &[("web-v2", 1)], &["internal"])],
            lines(&[
                &[
                    WEB_HTTP,
                    "route shop/ab [/admin] -> shop/web-v2:80*1",
                    TO_WEB,
                ],
                V2,
                WEB,
            ]),
        ),
        (
            "equal timestamps: the first by name",
            vec![
                split_created(
                    "b",
                    Some("2024-01-01T00:00:00Z"),
                    "web",
                    &[("web-v2", 1)],
                    &[],
                ),
                split_created(
                    "a",
                    Some("2024-01-01T00:00:00Z"),
                    "web",
                    &[("web-v1", 1)],
                    &[],
                ),
            ],
            lines(&[&[WEB_HTTP, "route shop/a -> shop/web-v1:80*1"], V1]),
        ),
        (
            "no timestamps (manifests from Git): the first by name",
            vec![
                split("b", "web", &[("web-v2", 1)], &[]),
                split("a", "web", &[("web-v1", 1)], &[]),
            ],
            lines(&[&[WEB_HTTP, "route shop/a -> shop/web-v1:80*1"], V1]),
        ),
        (
            "a split whose only group is missing: no route",
            vec![split("ab", "web", &[("web-v2", 1)], &["nope"])],
            lines(&[&[WEB_HTTP, TO_WEB], WEB]),
        ),
    ] {
        assert_eq!(compile(&with(splits), &authority("web")), want, "{what}");
    }
}

/// The function the conditions module uses to report the other unmatched splits.
#[test]
fn rule_5_the_effective_default_split_is_the_oldest_without_matches() {
    let ts = |name: &str, created: Option<&str>, groups: &[&str]| match split_created(
        name,
        created,
        "web",
        &[("web-v1", 1)],
        groups,
    ) {
        SourceObject::Resource(r, _) => match *r {
            smi_crds::Resource::TrafficSplit(ts) => ts,
            other => panic!("not a split: {other:?}"),
        },
        other => panic!("not a resource: {other:?}"),
    };
    let a = ts("a", None, &[]);
    let b = ts("b", Some("2024-02-01T00:00:00Z"), &[]);
    let c = ts("c", Some("2024-01-01T00:00:00Z"), &["g"]);
    let d = ts("d", Some("2024-03-01T00:00:00Z"), &[]);
    for (splits, want) in [
        (vec![("a", &a), ("b", &b), ("c", &c), ("d", &d)], Some(1)),
        (vec![("a", &a), ("d", &d)], Some(1)),
        (vec![("a", &a), ("c", &c)], Some(0)),
        (vec![("c", &c)], None),
        (vec![], None),
    ] {
        let names: Vec<&str> = splits.iter().map(|(n, _)| *n).collect();
        assert_eq!(effective_default_split(&splits), want, "{names:?}");
    }
}

#[test]
fn rule_6_only_eligible_backends_are_weighted_and_otherwise_the_503_says_why() {
    let v1_unready = || vec![unready(workload("shop", "web-v1-1", "web-v1", "10.0.1.2"))];
    let v1_gone = |split: SourceObject| {
        mesh(
            vec![
                service("shop", "web", &[("http", 80, 8080)]),
                service("shop", "web-v1", &[("http", 80, 8080)]),
                service("shop", "web-v2", &[("http", 80, 8080)]),
                split,
            ],
            [
                workload("shop", "web-0", "web", "10.0.0.1"),
                workload("shop", "web-v2-0", "web-v2", "10.0.2.1"),
            ]
            .into_iter()
            .chain(v1_unready())
            .collect(),
        )
    };
    let rollout = |backends: &[(&str, u32)]| split("rollout", "web", backends, &[]);
    for (what, snapshot, want) in [
        (
            "nothing eligible: each backend and why, in the split's order",
            v1_gone(rollout(&[("web-v2", 0), ("web-v3", 5), ("web-v1", 5)])),
            lines(&[&[
                WEB_HTTP,
                "route shop/rollout -> 503 web-v2: weight 0; web-v3: no Service shop/web-v3; \
                 web-v1: no ready endpoints",
            ]]),
        ),
        (
            "the eligible ones only",
            shop(vec![rollout(&[
                ("web-v2", 0),
                ("web-v3", 5),
                ("web-v1", 5),
            ])]),
            lines(&[&[WEB_HTTP, "route shop/rollout -> shop/web-v1:80*5"], V1]),
        ),
        (
            "weights as written",
            shop(vec![rollout(&[("web-v1", 1000), ("web-v2", 500)])]),
            lines(&[
                &[
                    WEB_HTTP,
                    "route shop/rollout -> shop/web-v1:80*1000, shop/web-v2:80*500",
                ],
                V1,
                V2,
            ]),
        ),
    ] {
        assert_eq!(compile(&snapshot, &authority("web")), want, "{what}");
    }
}

#[test]
fn rule_7_a_backend_that_is_itself_a_split_root_is_routed_to_its_own_endpoints() {
    let snapshot = shop(vec![
        split("rollout", "web", &[("web-v2", 1)], &[]),
        split("v2-rollout", "web-v2", &[("web-v1", 1)], &[]),
    ]);
    let compiled = outbound(&snapshot, &client(), &authority("web"));
    assert_eq!(
        render(&compiled.config),
        lines(&[&[WEB_HTTP, "route shop/rollout -> shop/web-v2:80*1"], V2])
    );
    assert!(
        !compiled
            .deps
            .contains(&Key::SplitsOf(ObjKey::new("shop", "web-v2")))
    );
    // Called by its own name, web-v2 is split.
    assert_eq!(
        compile(&snapshot, &authority("web-v2")),
        lines(&[
            &[
                "authority web-v2.shop.svc.cluster.local http1",
                "route shop/v2-rollout -> shop/web-v1:80*1",
            ],
            V1,
        ])
    );
}

#[test]
fn rule_8_traffic_policy_settings_on_every_route_and_per_route_policies_before_the_default() {
    let snapshot = shop_with(
        vec![
            service("shop", "web-shadow", &[("http", 80, 8080)]),
            route_group("canary", "[{name: header, headers: [{x-canary: 'true'}]}]"),
            route_group(
                "web-routes",
                "[{name: search, pathRegex: /search}, {name: upload, pathRegex: /upload, methods: [POST]}]",
            ),
            split("ab", "web", &[("web-v2", 1)], &["canary"]),
            split("rollout", "web", &[("web", 9), ("web-v1", 1)], &[]),
            policy(
                "web-policy",
                "  service: web
  timeout: 5s
  retries: {attempts: 3, retryOn: [5xx]}
  loadBalancer: {type: RoundRobin}
  circuitBreaker: {consecutiveFailures: 5}
  mirror: {service: web-shadow, percent: 10}
  routes:
  - {httpRouteGroup: web-routes, matches: [search], timeout: 30s}
  - {httpRouteGroup: nope, matches: [x], timeout: 1s}
  - {httpRouteGroup: web-routes, matches: [nope], timeout: 1s}
  - {httpRouteGroup: web-routes, matches: [upload], fault: {abort: {percent: 5, httpStatus: 503}}, mirror: {service: nope}}
",
            ),
            // Several policies for one Service: the first by name applies.
            policy("zz-later", "  service: web\n  timeout: 1s\n"),
            // A backend's own policy replaces the root's balancer, not its breaker.
            policy(
                "web-v2-policy",
                "  service: web-v2\n  loadBalancer: {type: LeastRequest}\n",
            ),
        ],
        vec![workload("shop", "web-shadow-0", "web-shadow", "10.0.5.1")],
    );
    let service_level: &[&str] = &[
        "  timeout \"5s\"",
        "  retry {\"attempts\":3,\"retry_on\":[\"5xx\"]}",
        "  mirror shop/web-shadow:80 10%",
    ];
    let rr = "balancer {\"round_robin\":{}} circuit_breaker {\"consecutive_failures\":5}";
    assert_eq!(
        compile(&snapshot, &authority("web")),
        lines(&[
            &[
                WEB_HTTP,
                "route shop/ab [x-canary=true] -> shop/web-v2:80*1"
            ],
            service_level,
            &[
                "route shop/web-policy/0 [/search] -> shop/web:80*9, shop/web-v1:80*1",
                "  timeout \"30s\"",
                "  retry {\"attempts\":3,\"retry_on\":[\"5xx\"]}",
                "  mirror shop/web-shadow:80 10%",
                "route shop/web-policy/3 [POST /upload] -> shop/web:80*9, shop/web-v1:80*1",
                "  timeout \"5s\"",
                "  retry {\"attempts\":3,\"retry_on\":[\"5xx\"]}",
                "  fault {\"abort\":{\"percent\":5.0,\"http_status\":503}}",
                "route shop/rollout -> shop/web:80*9, shop/web-v1:80*1",
            ],
            service_level,
            &[
                &format!("backend shop/web-shadow:80 {rr}"),
                "  10.0.5.1:8080 spiffe://cluster.local/ns/shop/sa/web-shadow app=web-shadow",
                &format!("backend shop/web-v1:80 {rr}"),
                "  10.0.1.1:8080 spiffe://cluster.local/ns/shop/sa/web-v1 app=web-v1",
                "backend shop/web-v2:80 balancer {\"least_request\":{}} circuit_breaker {\"consecutive_failures\":5}",
                "  10.0.2.1:8080 spiffe://cluster.local/ns/shop/sa/web-v2 app=web-v2",
                &format!("backend shop/web:80 {rr}"),
                "  10.0.0.1:8080 spiffe://cluster.local/ns/shop/sa/web app=web",
            ],
        ])
    );
}

#[test]
fn rule_8_per_route_policies_send_to_the_roots_endpoints_without_splits() {
    let snapshot = shop(vec![
        route_group("web-routes", "[{name: search, pathRegex: /search}]"),
        policy(
            "web-policy",
            "  service: web
  mirror: {service: web-v3}
  routes:
  - {httpRouteGroup: web-routes, matches: [search], timeout: 30s}
",
        ),
    ]);
    // The missing mirror Service is left out.
    assert_eq!(
        compile(&snapshot, &authority("web")),
        lines(&[
            &[
                WEB_HTTP,
                "route shop/web-policy/0 [/search] -> shop/web:80*1",
                "  timeout \"30s\"",
                TO_WEB,
            ],
            WEB,
        ])
    );
}

#[test]
fn rule_9_hosts_are_compared_case_insensitively_without_the_trailing_dot() {
    let snapshot = shop(vec![]);
    let want = lines(&[&[WEB_HTTP, TO_WEB], WEB]);
    for host in [
        "WEB",
        "web.",
        "Web.Shop",
        "web.shop.",
        "web.shop.svc",
        "WEB.SHOP.SVC.CLUSTER.LOCAL.",
        "web.shop.svc.cluster.local.:80",
    ] {
        assert_eq!(compile(&snapshot, &authority(host)), want, "{host}");
    }
}

// ---------------------------------------------------------------------------------------
// SMI-SEMANTICS "Routing (TrafficSplit)", rule by rule.

#[test]
fn smi_routing_1_backends_share_the_root_port_number_with_their_own_target_ports() {
    let snapshot = |split: SourceObject| {
        mesh(
            vec![
                service("shop", "web", &[("http", 80, 8080), ("admin", 9090, 9090)]),
                service("shop", "web-v1", &[("http", 80, 9080)]),
                service(
                    "shop",
                    "web-v2",
                    &[("web", 80, 8080), ("admin", 9090, 9091)],
                ),
                split,
            ],
            vec![
                workload("shop", "web-0", "web", "10.0.0.1"),
                workload("shop", "web-v1-0", "web-v1", "10.0.1.1"),
                workload("shop", "web-v2-0", "web-v2", "10.0.2.1"),
            ],
        )
    };
    let both = snapshot(split(
        "rollout",
        "web",
        &[("web-v1", 1), ("web-v2", 1)],
        &[],
    ));
    assert_eq!(
        compile(&both, &authority("web")),
        [
            WEB_HTTP,
            "route shop/rollout -> shop/web-v1:80*1, shop/web-v2:80*1",
            "backend shop/web-v1:80",
            "  10.0.1.1:9080 spiffe://cluster.local/ns/shop/sa/web-v1 app=web-v1",
            "backend shop/web-v2:80",
            "  10.0.2.1:8080 spiffe://cluster.local/ns/shop/sa/web-v2 app=web-v2",
        ]
    );
    assert_eq!(
        compile(&both, &authority("web:9090")),
        [
            "authority web.shop.svc.cluster.local unspecified",
            "route shop/rollout -> shop/web-v2:9090*1",
            "backend shop/web-v2:9090",
            "  10.0.2.1:9091 spiffe://cluster.local/ns/shop/sa/web-v2 app=web-v2",
        ]
    );
    let only_v1 = snapshot(split("rollout", "web", &[("web-v1", 1)], &[]));
    assert_eq!(
        compile(&only_v1, &authority("web:9090")),
        [
            "authority web.shop.svc.cluster.local unspecified",
            "route shop/rollout -> 503 web-v1: Service shop/web-v1 has no port 9090; \
             its ports: 80 (http)",
        ]
    );
}

#[test]
fn smi_routing_2_weighted_among_eligible_backends_a_missing_service_is_allowed() {
    for (backends, want) in [
        (
            vec![("web-v1", 3), ("web-v2", 1)],
            lines(&[
                &[
                    WEB_HTTP,
                    "route shop/rollout -> shop/web-v1:80*3, shop/web-v2:80*1",
                ],
                V1,
                V2,
            ]),
        ),
        (
            vec![("web-v1", 1), ("web-v3", 1)],
            lines(&[&[WEB_HTTP, "route shop/rollout -> shop/web-v1:80*1"], V1]),
        ),
        (
            vec![("web-v1", 0), ("web-v2", 1)],
            lines(&[&[WEB_HTTP, "route shop/rollout -> shop/web-v2:80*1"], V2]),
        ),
    ] {
        let snapshot = shop(vec![split("rollout", "web", &backends, &[])]);
        assert_eq!(compile(&snapshot, &authority("web")), want, "{backends:?}");
    }
}

#[test]
fn smi_routing_3_nothing_eligible_is_a_503_that_says_why() {
    let snapshot = shop(vec![split(
        "rollout",
        "web",
        &[("web-v3", 1), ("web-v1", 0)],
        &[],
    )]);
    assert_eq!(
        compile(&snapshot, &authority("web")),
        [
            WEB_HTTP,
            "route shop/rollout -> 503 web-v3: no Service shop/web-v3; web-v1: weight 0",
        ]
    );
}

#[test]
fn smi_routing_4_an_ab_split_applies_to_its_matches_and_the_rest_goes_to_the_root() {
    let snapshot = shop(vec![
        route_group(
            "ab",
            "[{name: firefox, headers: [{user-agent: '.*Firefox.*'}]}, {name: any-get, methods: ['*'], pathRegex: /}]",
        ),
        split("ab-test", "web", &[("web-v2", 1)], &["ab"]),
    ]);
    assert_eq!(
        compile(&snapshot, &authority("web")),
        lines(&[
            &[
                WEB_HTTP,
                "route shop/ab-test [user-agent=.*Firefox.* | /] -> shop/web-v2:80*1",
                TO_WEB,
            ],
            V2,
            WEB,
        ])
    );
}

#[test]
fn smi_routing_5_matched_splits_first_in_name_order_and_one_unmatched_split() {
    let snapshot = shop(vec![
        route_group("g", "[{name: api, pathRegex: /api}]"),
        split("b-ab", "web", &[("web-v1", 1)], &["g"]),
        split("a-ab", "web", &[("web-v2", 1)], &["g"]),
        split_created(
            "old",
            Some("2023-01-01T00:00:00Z"),
            "web",
            &[("web-v1", 1)],
            &[],
        ),
        split_created(
            "new",
            Some("2025-01-01T00:00:00Z"),
            "web",
            &[("web-v2", 1)],
            &[],
        ),
    ]);
    assert_eq!(
        compile(&snapshot, &authority("web")),
        lines(&[
            &[
                WEB_HTTP,
                "route shop/a-ab [/api] -> shop/web-v2:80*1",
                "route shop/b-ab [/api] -> shop/web-v1:80*1",
                "route shop/old -> shop/web-v1:80*1",
            ],
            V1,
            V2,
        ])
    );
}

#[test]
fn smi_routing_6_a_split_root_and_a_host_in_any_form_name_the_same_service() {
    let snapshot = shop(vec![split(
        "rollout",
        "Web.shop.svc.cluster.local.",
        &[("web-v2", 1)],
        &[],
    )]);
    for host in ["web", "WEB.shop.", "web.shop.svc.cluster.local:80"] {
        assert_eq!(
            compile(&snapshot, &authority(host)),
            lines(&[&[WEB_HTTP, "route shop/rollout -> shop/web-v2:80*1"], V2]),
            "{host}"
        );
    }
}

#[test]
fn smi_routing_7_splits_are_not_hierarchical() {
    let snapshot = shop(vec![
        split("to-v1", "web", &[("web-v1", 1)], &[]),
        split("v1-to-v2", "web-v1", &[("web-v2", 1)], &[]),
    ]);
    assert_eq!(
        compile(&snapshot, &authority("web")),
        lines(&[&[WEB_HTTP, "route shop/to-v1 -> shop/web-v1:80*1"], V1])
    );
}

// ---------------------------------------------------------------------------------------
// Dependencies: what makes incremental push correct.

fn deps_of(snapshot: &Snapshot, target: &Target) -> HashSet<Key> {
    outbound(snapshot, &client(), target).deps
}

fn shop_key(name: &str) -> ObjKey {
    ObjKey::new("shop", name)
}

#[test]
fn deps_name_every_key_the_config_read() {
    let split_deps = deps_of(
        &shop(vec![split(
            "rollout",
            "web",
            &[("web-v1", 0), ("web-v2", 1)],
            &[],
        )]),
        &authority("web"),
    );
    for key in [
        Key::Service(shop_key("web")),
        Key::SplitsOf(shop_key("web")),
        Key::PoliciesOf(shop_key("web")),
        Key::Service(shop_key("web-v2")),
        Key::Endpoints(shop_key("web-v2")),
        Key::PoliciesOf(shop_key("web-v2")),
        Key::MeshConfig,
    ] {
        assert!(split_deps.contains(&key), "{key:?} in {split_deps:?}");
    }
    // Not read: a weight-0 backend, the root's own endpoints (the split replaces them),
    // splits of backends (Routing 7).
    for key in [
        Key::Service(shop_key("web-v1")),
        Key::Endpoints(shop_key("web")),
        Key::SplitsOf(shop_key("web-v2")),
    ] {
        assert!(!split_deps.contains(&key), "{key:?} in {split_deps:?}");
    }

    let plain = deps_of(&shop(vec![]), &authority("web"));
    assert!(
        plain.contains(&Key::SplitsOf(shop_key("web"))),
        "a split created later"
    );
    assert!(plain.contains(&Key::Endpoints(shop_key("web"))));

    let unknown = deps_of(&shop(vec![]), &authority("nope"));
    assert_eq!(unknown, HashSet::from([Key::Service(shop_key("nope"))]));

    let passthrough = deps_of(&shop(vec![]), &address("192.0.2.7:443"));
    assert_eq!(
        passthrough,
        HashSet::from([Key::Ip("192.0.2.7".parse().unwrap())])
    );
}

/// Through the real index: a change triggers a recompile exactly when it touches a key
/// the config read.
#[tokio::test]
async fn a_change_pushes_exactly_when_it_touches_what_the_config_read() {
    let index = Index::spawn(Options {
        endpoints_from_workloads: true,
    });
    let seen: Arc<Mutex<Vec<Key>>> = Arc::default();
    let sink = seen.clone();
    index.on_change(Box::new(move |_, keys| {
        sink.lock().unwrap().extend_from_slice(keys)
    }));
    index.update(Update::Apply(service("shop", "web", &[("http", 80, 8080)])));
    index.update(Update::Workload(workload(
        "shop", "web-0", "web", "10.0.0.1",
    )));
    index.flush().await;

    let target = authority("web");
    let changes: Vec<(&str, Update, bool)> = vec![
        (
            "a split created later",
            Update::Apply(split("rollout", "web", &[("web-v2", 1)], &[])),
            true,
        ),
        (
            "the backend's Service created",
            Update::Apply(service("shop", "web-v2", &[("http", 80, 8080)])),
            true,
        ),
        (
            "the backend's first endpoint",
            Update::Workload(workload("shop", "web-v2-0", "web-v2", "10.0.2.1")),
            true,
        ),
        (
            "a TrafficPolicy of the backend",
            Update::Apply(policy(
                "v2",
                "  service: web-v2\n  loadBalancer: {type: RoundRobin}\n",
            )),
            true,
        ),
        (
            "the trust domain",
            Update::Apply(mesh_config("trustDomain: example.org")),
            true,
        ),
        (
            "a Service of another namespace",
            Update::Apply(service("other", "api", &[("http", 80, 8080)])),
            false,
        ),
        (
            "a workload no Service selects",
            Update::Workload(workload("shop", "batch-0", "batch", "10.0.7.1")),
            false,
        ),
        (
            "an HTTPRouteGroup no split references",
            Update::Apply(route_group("g", "[{name: a, pathRegex: /a}]")),
            false,
        ),
        (
            "an A/B split on that group",
            Update::Apply(split("ab", "web", &[("web", 1)], &["g"])),
            true,
        ),
        (
            "the group it references",
            Update::Apply(route_group("g", "[{name: a, pathRegex: /b}]")),
            true,
        ),
    ];
    for (what, update, push) in changes {
        let deps = outbound(&index.snapshot(), &client(), &target).deps;
        seen.lock().unwrap().clear();
        index.update(update);
        index.flush().await;
        let changed = seen.lock().unwrap().clone();
        assert!(!changed.is_empty(), "{what}: the index changed");
        let pushed = changed.iter().any(|k| deps.contains(k));
        assert_eq!(pushed, push, "{what}: changed {changed:?}, deps {deps:?}");
    }
    assert_eq!(
        render(&outbound(&index.snapshot(), &client(), &target).config),
        [
            WEB_HTTP,
            "route shop/ab [/b] -> shop/web:80*1",
            "route shop/rollout -> shop/web-v2:80*1",
            "backend shop/web-v2:80 balancer {\"round_robin\":{}}",
            "  10.0.2.1:8080 spiffe://example.org/ns/shop/sa/web-v2 app=web-v2",
            "backend shop/web:80",
            "  10.0.0.1:8080 spiffe://example.org/ns/shop/sa/web app=web",
        ]
    );
}
