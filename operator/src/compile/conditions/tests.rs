//! Conditions as a specification: one table per check, each case asserting every
//! condition of every resource in the mesh, one line each:
//! `<Kind> <ns>/<name> | <type> <True|False> <reason> | <message>`.

use crate::compile::fixtures::{mesh, mesh_config, object, port_route, service, traffic_target};
use crate::index::{Origin, ResourceRef, SourceObject};
use smi_crds::validate::Problem;

use super::{ResourceConditions, conditions};

fn render(all: &[ResourceConditions]) -> Vec<String> {
    all.iter()
        .flat_map(|rc| {
            rc.conditions.iter().map(move |c| {
                let status = if c.status { "True" } else { "False" };
                format!(
                    "{} | {} {status} {} | {}",
                    rc.resource, c.type_, c.reason, c.message
                )
            })
        })
        .collect()
}

type Case = (&'static str, Vec<SourceObject>, &'static [&'static str]);

fn check(cases: Vec<Case>) {
    for (case, objects, want) in cases {
        let got = conditions(&mesh(objects, vec![]));
        assert_eq!(render(&got), want, "{case}");
    }
}

/// A TrafficSplit `shop/<name>` of `root` to `backends` (weight 50 each), selecting
/// `matches` (HTTPRouteGroup names), created at `created` (RFC 3339) when given.
fn split(
    name: &str,
    created: Option<&str>,
    root: &str,
    backends: &[&str],
    matches: &[&str],
) -> SourceObject {
    let created = created
        .map(|t| format!(", creationTimestamp: \"{t}\""))
        .unwrap_or_default();
    let backends: Vec<String> = backends
        .iter()
        .map(|b| format!("{{service: {b}, weight: 50}}"))
        .collect();
    let matches: Vec<String> = matches
        .iter()
        .map(|m| format!("{{kind: HTTPRouteGroup, name: {m}}}"))
        .collect();
    object(&format!(
        "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\n\
         metadata: {{name: {name}, namespace: shop{created}}}\n\
         spec: {{service: {root}, backends: [{}], matches: [{}]}}\n",
        backends.join(", "),
        matches.join(", ")
    ))
}

fn svc(name: &str) -> SourceObject {
    service("shop", name, &[("http", 80, 8080)])
}

/// `shop/beta-users` (`firefox`) and `shop/api-routes` (`get-api`, `health`).
fn group(name: &str) -> SourceObject {
    let matches = match name {
        "beta-users" => "[{name: firefox, headers: [{user-agent: .*Firefox.*}]}]",
        _ => "[{name: get-api, pathRegex: /api}, {name: health, pathRegex: /health}]",
    };
    object(&format!(
        "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
         metadata: {{name: {name}, namespace: shop}}\nspec: {{matches: {matches}}}\n"
    ))
}

fn policy(name: &str, spec: &str) -> SourceObject {
    object(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\n\
         metadata: {{name: {name}, namespace: shop}}\nspec: {{{spec}}}\n"
    ))
}

#[test]
fn ingestion_rejected_versions_are_not_accepted_and_say_what_stays_in_force() {
    let bad_group = || {
        object(
            "apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\n\
             metadata: {name: api-routes, namespace: shop}\n\
             spec: {matches: [{name: get-api, pathRegex: '/api(', methods: [FETCH]}]}\n",
        )
    };
    let unreadable = SourceObject::Invalid {
        resource: ResourceRef {
            kind: "TrafficSplit",
            namespace: Some("shop".into()),
            name: "web".into(),
        },
        origin: Origin::source("test"),
        problems: vec![Problem::error(
            "apiVersion",
            "split.smi-spec.io/v1beta1 is not served; use v1alpha4",
        )],
    };
    #[rustfmt::skip]
    check(vec![
        ("every problem, nothing in force", vec![bad_group()], &[
            "HTTPRouteGroup shop/api-routes | Accepted False Invalid | spec.matches[0].pathRegex: invalid regex \"/api(\": unclosed group (RE2 syntax); spec.matches[0].methods[0]: \"FETCH\" is not an HTTP method; use one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH; no version of it is in force",
        ]),
        ("the previous good version stays in force", vec![group("api-routes"), bad_group()], &[
            "HTTPRouteGroup shop/api-routes | Accepted False Invalid | spec.matches[0].pathRegex: invalid regex \"/api(\": unclosed group (RE2 syntax); spec.matches[0].methods[0]: \"FETCH\" is not an HTTP method; use one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH; the previous version stays in force",
        ]),
        ("an unreadable resource", vec![unreadable], &[
            "TrafficSplit shop/web | Accepted False Invalid | apiVersion: split.smi-spec.io/v1beta1 is not served; use v1alpha4; no version of it is in force",
        ]),
        ("accepted, with its warnings", vec![traffic_target("shop", "nobody", "api", &[], &[])], &[
            "TrafficTarget shop/nobody | Accepted True Accepted | accepted and in force; spec.sources: warning: no sources: this TrafficTarget allows no traffic",
            "TrafficTarget shop/nobody | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("kinds without references: Accepted only",
         vec![group("api-routes"), port_route("TCPRoute", "shop", "db", &[5432]), mesh_config("permissive: true")], &[
            "HTTPRouteGroup shop/api-routes | Accepted True Accepted | accepted and in force",
            "MeshConfig default | Accepted True Accepted | accepted and in force",
            "TCPRoute shop/db | Accepted True Accepted | accepted and in force",
        ]),
    ]);
}

#[test]
fn traffic_split_references_resolve_or_say_what_is_missing() {
    #[rustfmt::skip]
    check(vec![
        ("everything exists", vec![svc("web"), svc("web-v1"), svc("web-v2"), group("beta-users"),
              split("web-beta", None, "web", &["web-v1", "web-v2"], &["beta-users"])], &[
            "HTTPRouteGroup shop/beta-users | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-beta | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-beta | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("a backend not created yet: still accepted (SMI Routing 2)",
         vec![svc("web"), svc("web-v1"), split("web-rollout", None, "web", &["web-v1", "web-v2"], &[])], &[
            "TrafficSplit shop/web-rollout | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-rollout | ResolvedRefs False BackendNotFound | spec.backends[1].service: no Service \"web-v2\" in namespace \"shop\": create it or fix the name; until then this backend gets no traffic",
        ]),
        ("the root Service, in any form clients write it",
         vec![svc("web-v1"), split("web-rollout", None, "web.shop.svc.cluster.local", &["web-v1"], &[])], &[
            "TrafficSplit shop/web-rollout | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-rollout | ResolvedRefs False BackendNotFound | spec.service: no Service \"web\" in namespace \"shop\": create it or fix the name; until then the split routes nothing (clients call the root Service)",
        ]),
        ("an HTTPRouteGroup; every missing reference listed, the first gives the reason",
         vec![svc("web"), svc("web-v1"), split("web-beta", None, "web", &["web-v1", "web-v2"], &["beta-users"])], &[
            "TrafficSplit shop/web-beta | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-beta | ResolvedRefs False BackendNotFound | spec.backends[1].service: no Service \"web-v2\" in namespace \"shop\": create it or fix the name; until then this backend gets no traffic; spec.matches[0].name: no HTTPRouteGroup \"beta-users\" in namespace \"shop\": create it or fix the name; until then the split applies to no request (they go to the root Service)",
        ]),
        ("an HTTPRouteGroup alone", vec![svc("web"), svc("web-v1"), split("web-beta", None, "web", &["web-v1"], &["beta-users"])], &[
            "TrafficSplit shop/web-beta | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-beta | ResolvedRefs False RouteNotFound | spec.matches[0].name: no HTTPRouteGroup \"beta-users\" in namespace \"shop\": create it or fix the name; until then the split applies to no request (they go to the root Service)",
        ]),
    ]);
}

#[test]
fn only_the_oldest_split_without_matches_applies_to_a_root_the_others_conflict() {
    let services = || {
        vec![
            svc("web"),
            svc("web-v1"),
            svc("web-v2"),
            group("beta-users"),
        ]
    };
    let with = |more: Vec<SourceObject>| services().into_iter().chain(more).collect();
    #[rustfmt::skip]
    check(vec![
        ("the oldest by creationTimestamp; splits with matches do not conflict", with(vec![
            split("a-new", Some("2026-03-02T00:00:00Z"), "web", &["web-v2"], &[]),
            split("b-old", Some("2026-03-01T00:00:00Z"), "web", &["web-v1"], &[]),
            split("c-beta", None, "web", &["web-v2"], &["beta-users"]),
        ]), &[
            "HTTPRouteGroup shop/beta-users | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/a-new | Accepted False Conflicted | TrafficSplit shop/b-old also splits Service shop/web without matches and applies (only one split without matches applies to a root Service: the oldest by creationTimestamp, then by name); this one is ignored: merge it into \"b-old\", delete it, or give it matches",
            "TrafficSplit shop/a-new | ResolvedRefs True ResolvedRefs | every referenced resource exists",
            "TrafficSplit shop/b-old | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/b-old | ResolvedRefs True ResolvedRefs | every referenced resource exists",
            "TrafficSplit shop/c-beta | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/c-beta | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("without timestamps (Git), by name; the same root in another form", with(vec![
            split("web-b", None, "web", &["web-v2"], &[]),
            split("web-a", None, "web.shop.svc.cluster.local", &["web-v1"], &[]),
        ]), &[
            "HTTPRouteGroup shop/beta-users | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-a | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-a | ResolvedRefs True ResolvedRefs | every referenced resource exists",
            "TrafficSplit shop/web-b | Accepted False Conflicted | TrafficSplit shop/web-a also splits Service shop/web without matches and applies (only one split without matches applies to a root Service: the oldest by creationTimestamp, then by name); this one is ignored: merge it into \"web-a\", delete it, or give it matches",
            "TrafficSplit shop/web-b | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("different roots do not conflict", with(vec![
            split("web-a", None, "web", &["web-v1"], &[]),
            split("web-v1-a", None, "web-v1", &["web-v2"], &[]),
        ]), &[
            "HTTPRouteGroup shop/beta-users | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-a | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-a | ResolvedRefs True ResolvedRefs | every referenced resource exists",
            "TrafficSplit shop/web-v1-a | Accepted True Accepted | accepted and in force",
            "TrafficSplit shop/web-v1-a | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
    ]);
}

#[test]
fn traffic_target_rules_resolve_or_allow_nothing() {
    let tt = |rules: &[&str]| traffic_target("shop", "web-to-api", "api", &["web"], rules);
    #[rustfmt::skip]
    check(vec![
        ("every rule resolves", vec![group("api-routes"), port_route("TCPRoute", "shop", "p8080", &[8080]),
              port_route("UDPRoute", "shop", "dns", &[53]),
              tt(&["HTTPRouteGroup api-routes get-api", "TCPRoute p8080", "UDPRoute dns"])], &[
            "HTTPRouteGroup shop/api-routes | Accepted True Accepted | accepted and in force",
            "TCPRoute shop/p8080 | Accepted True Accepted | accepted and in force",
            "TrafficTarget shop/web-to-api | Accepted True Accepted | accepted and in force",
            "TrafficTarget shop/web-to-api | ResolvedRefs True ResolvedRefs | every referenced resource exists",
            "UDPRoute shop/dns | Accepted True Accepted | accepted and in force",
        ]),
        ("missing group, match names, TCPRoute, UDPRoute",
         vec![group("api-routes"),
              tt(&["HTTPRouteGroup api-routes get-api post-orders put-orders", "HTTPRouteGroup admin-routes",
                   "TCPRoute p8080", "UDPRoute dns"])], &[
            "HTTPRouteGroup shop/api-routes | Accepted True Accepted | accepted and in force",
            "TrafficTarget shop/web-to-api | Accepted True Accepted | accepted and in force",
            "TrafficTarget shop/web-to-api | ResolvedRefs False RouteNotFound | spec.rules[0].matches[1]: HTTPRouteGroup \"api-routes\" has no match \"post-orders\" (its matches: get-api, health): fix the name or add the match; until then this rule allows nothing; spec.rules[0].matches[2]: HTTPRouteGroup \"api-routes\" has no match \"put-orders\" (its matches: get-api, health): fix the name or add the match; until then this rule allows nothing; spec.rules[1].name: no HTTPRouteGroup \"admin-routes\" in namespace \"shop\": create it or fix the name; until then this rule allows nothing; spec.rules[2].name: no TCPRoute \"p8080\" in namespace \"shop\": create it or fix the name; until then this rule allows nothing; spec.rules[3].name: no UDPRoute \"dns\" in namespace \"shop\": create it or fix the name; until then this rule allows nothing",
        ]),
    ]);
}

#[test]
fn traffic_policy_references_resolve_or_say_what_is_missing() {
    #[rustfmt::skip]
    check(vec![
        ("everything exists", vec![svc("web"), svc("shadow"), group("api-routes"),
              policy("web", "service: web, mirror: {service: shadow}, routes: [{httpRouteGroup: api-routes, matches: [get-api], timeout: 1s}]")], &[
            "HTTPRouteGroup shop/api-routes | Accepted True Accepted | accepted and in force",
            "TrafficPolicy shop/web | Accepted True Accepted | accepted and in force",
            "TrafficPolicy shop/web | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("the Service", vec![policy("web", "service: web, timeout: 5s")], &[
            "TrafficPolicy shop/web | Accepted True Accepted | accepted and in force",
            "TrafficPolicy shop/web | ResolvedRefs False BackendNotFound | spec.service: no Service \"web\" in namespace \"shop\": create it or fix the name; until then the policy applies to nothing",
        ]),
        ("mirror Services, route groups and matches, in field order",
         vec![svc("web"), group("api-routes"),
              policy("web", "service: web, mirror: {service: shadow}, routes: [\
                 {httpRouteGroup: api-routes, matches: [get-api, post-orders], timeout: 1s}, \
                 {httpRouteGroup: admin-routes, matches: [all], mirror: {service: shadow-admin}}]")], &[
            "HTTPRouteGroup shop/api-routes | Accepted True Accepted | accepted and in force",
            "TrafficPolicy shop/web | Accepted True Accepted | accepted and in force",
            "TrafficPolicy shop/web | ResolvedRefs False BackendNotFound | spec.mirror.service: no Service \"shadow\" in namespace \"shop\": create it or fix the name; until then nothing is mirrored; spec.routes[0].matches[1]: HTTPRouteGroup \"api-routes\" has no match \"post-orders\" (its matches: get-api, health): fix the name or add the match; until then this route's settings apply to no request; spec.routes[1].httpRouteGroup: no HTTPRouteGroup \"admin-routes\" in namespace \"shop\": create it or fix the name; until then this route's settings apply to no request; spec.routes[1].mirror.service: no Service \"shadow-admin\" in namespace \"shop\": create it or fix the name; until then nothing is mirrored",
        ]),
    ]);
}

/// A Canary `shop/web` of `service` from `stable` to `canary`.
fn canary(service: &str, stable: &str, canary: &str) -> SourceObject {
    object(&format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Canary\n\
         metadata: {{name: web, namespace: shop}}\n\
         spec: {{service: {service}, stable: {stable}, canary: {canary}, analysis: {{interval: 1m, stepWeight: 20, \
         metrics: [{{name: request-success-rate, thresholdRange: {{min: 99}}}}]}}}}\n"
    ))
}

#[test]
fn canary_services_resolve_or_each_missing_one_is_named() {
    #[rustfmt::skip]
    check(vec![
        ("every Service exists", vec![svc("web"), svc("web-v1"), svc("web-v2"), canary("web", "web-v1", "web-v2")], &[
            "Canary shop/web | Accepted True Accepted | accepted and in force",
            "Canary shop/web | ResolvedRefs True ResolvedRefs | every referenced resource exists",
        ]),
        ("the canary backend not created yet", vec![svc("web"), svc("web-v1"), canary("web", "web-v1", "web-v2")], &[
            "Canary shop/web | Accepted True Accepted | accepted and in force",
            "Canary shop/web | ResolvedRefs False BackendNotFound | spec.canary: no Service \"web-v2\" in namespace \"shop\": create it or fix the name; until then this backend gets no traffic and has no version to analyse",
        ]),
        ("none of them", vec![canary("web", "web-v1", "web-v2")], &[
            "Canary shop/web | Accepted True Accepted | accepted and in force",
            "Canary shop/web | ResolvedRefs False BackendNotFound | spec.service: no Service \"web\" in namespace \"shop\": create it or fix the name; until then the Canary routes nothing (clients call the root Service); spec.stable: no Service \"web-v1\" in namespace \"shop\": create it or fix the name; until then this backend gets no traffic; spec.canary: no Service \"web-v2\" in namespace \"shop\": create it or fix the name; until then this backend gets no traffic and has no version to analyse",
        ]),
        ("an invalid Canary: Accepted False, no ResolvedRefs", vec![svc("web"), canary("web", "web-v1", "web-v1")], &[
            "Canary shop/web | Accepted False Invalid | spec.canary: \"web-v1\" is also the stable backend: the canary backend must be another Service, the one running the new version; no version of it is in force",
        ]),
    ]);
}

#[test]
fn conditions_carry_the_origin_and_serialize_as_kubernetes_writes_them() {
    let got = conditions(&mesh(vec![policy("web", "service: web")], vec![]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].origin, Origin::source("test"));
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::json!([{
            "resource": {"kind": "TrafficPolicy", "namespace": "shop", "name": "web"},
            "origin": {"source": "test"},
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted",
                 "message": "accepted and in force"},
                {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
                 "message": "spec.service: no Service \"web\" in namespace \"shop\": create it \
                             or fix the name; until then the policy applies to nothing"},
            ],
        }])
    );
    let cluster_scoped = conditions(&mesh(vec![mesh_config("")], vec![]));
    assert_eq!(
        serde_json::to_value(&cluster_scoped[0]).unwrap()["resource"],
        serde_json::json!({"kind": "MeshConfig", "name": "default"}),
    );
}
