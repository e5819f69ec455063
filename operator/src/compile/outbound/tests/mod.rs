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
//!
//! - [`resolve`]: rules 1-3 and 9 (targets, 503 reasons, protocol, hosts)
//! - [`split`]: rules 4-7 (backends, TrafficSplits, eligibility, no hierarchy)
//! - [`policy`]: rule 8 (TrafficPolicy)
//! - [`smi`]: SMI-SEMANTICS "Routing (TrafficSplit)" 1-7
//! - [`deps`]: the keys a config depends on

mod deps;
mod policy;
mod resolve;
mod smi;
mod split;

use std::collections::HashSet;

use trellis_proxy_api::v1 as api;

use super::*;
use crate::compile::fixtures::{mesh, mesh_config, object, service, workload};
use crate::index::{Key, SourceObject, Workload};

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
