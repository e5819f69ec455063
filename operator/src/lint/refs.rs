//! Checks across the objects of one tree of manifests: references to Services and route
//! resources (from TrafficSplits, TrafficTargets, TrafficPolicies and Canaries),
//! TrafficSplits that claim the same root, TrafficPolicies that claim the same Service,
//! and TrafficSplits committed under the name a Canary generates.

use std::collections::{BTreeMap, BTreeSet};

use smi_crds::access::rule_kinds;
use smi_crds::dynamic::Resource;
use smi_crds::trellis::canary::Canary;
use smi_crds::trellis::traffic_policy::{Mirror, TrafficPolicySpec};
use smi_crds::validate::Problem;

use super::Parsed;
use crate::manifest::Object;

/// `(namespace, name)` of an object.
type Key = (String, String);

/// Problems per object, from references that do not resolve inside the tree.
pub(super) fn check<'a>(
    parsed: &[Parsed<'a>],
    services: &[Key],
) -> Vec<(&'a Object, Vec<Problem>)> {
    let services: BTreeSet<&Key> = services.iter().collect();
    let mut route_groups: BTreeMap<Key, Vec<&str>> = BTreeMap::new();
    let mut routes: BTreeSet<(&str, Key)> = BTreeSet::new();
    let mut splits: BTreeSet<Key> = BTreeSet::new();
    for p in parsed {
        let key = (
            p.namespace.clone(),
            p.resource.metadata().name.clone().unwrap_or_default(),
        );
        match &p.resource {
            Resource::HTTPRouteGroup(g) => {
                route_groups.insert(
                    key,
                    g.spec.matches.iter().map(|m| m.name.as_str()).collect(),
                );
            }
            Resource::TCPRoute(_) => {
                routes.insert((rule_kinds::TCP_ROUTE, key));
            }
            Resource::UDPRoute(_) => {
                routes.insert((rule_kinds::UDP_ROUTE, key));
            }
            Resource::TrafficSplit(_) => {
                splits.insert(key);
            }
            _ => {}
        }
    }
    let refs = Refs {
        services,
        route_groups,
        routes,
        splits,
    };
    let mut out: Vec<(&Object, Vec<Problem>)> = parsed
        .iter()
        .map(|p| (p.object, refs.problems(p)))
        .collect();
    for (index, problem) in conflicting_splits(parsed)
        .into_iter()
        .chain(conflicting_policies(parsed))
    {
        out[index].1.push(problem);
    }
    out.retain(|(_, problems)| !problems.is_empty());
    out
}

struct Refs<'a> {
    services: BTreeSet<&'a Key>,
    route_groups: BTreeMap<Key, Vec<&'a str>>,
    routes: BTreeSet<(&'a str, Key)>,
    splits: BTreeSet<Key>,
}

impl Refs<'_> {
    fn problems(&self, p: &Parsed<'_>) -> Vec<Problem> {
        let ns = &p.namespace;
        let key = |name: &str| (ns.clone(), name.to_owned());
        let mut problems = Vec::new();
        match &p.resource {
            Resource::TrafficSplit(ts) => {
                let root = root_name(&ts.spec.service);
                if !root.is_empty() && !self.services.contains(&key(&root)) {
                    problems.push(Problem::warning(
                        "spec.service",
                        format!("no Service {root:?} in namespace {ns:?} in these manifests; the split applies once it exists"),
                    ));
                }
                for (i, b) in ts.spec.backends.iter().enumerate() {
                    if !b.service.is_empty() && !self.services.contains(&key(&b.service)) {
                        problems.push(Problem::warning(
                            format!("spec.backends[{i}].service"),
                            format!(
                                "no Service {:?} in namespace {ns:?} in these manifests; this backend gets no traffic until it exists",
                                b.service
                            ),
                        ));
                    }
                }
                for (i, m) in ts.spec.matches.iter().enumerate() {
                    if !m.name.is_empty() && !self.route_groups.contains_key(&key(&m.name)) {
                        problems.push(Problem::error(
                            format!("spec.matches[{i}].name"),
                            format!("no HTTPRouteGroup {:?} in namespace {ns:?}; create it or fix the name", m.name),
                        ));
                    }
                }
            }
            Resource::TrafficTarget(tt) => {
                for (i, rule) in tt.spec.rules.iter().enumerate() {
                    if rule.name.is_empty() {
                        continue;
                    }
                    let field = format!("spec.rules[{i}].name");
                    let missing = || {
                        Problem::error(
                            field.clone(),
                            format!(
                                "no {} {:?} in namespace {ns:?}; create it or fix the name",
                                rule.kind, rule.name
                            ),
                        )
                    };
                    if rule.kind == rule_kinds::HTTP_ROUTE_GROUP {
                        let Some(names) = self.route_groups.get(&key(&rule.name)) else {
                            problems.push(missing());
                            continue;
                        };
                        for (k, m) in rule.matches.iter().enumerate() {
                            if !names.contains(&m.as_str()) {
                                problems.push(Problem::error(
                                    format!("spec.rules[{i}].matches[{k}]"),
                                    format!(
                                        "HTTPRouteGroup {:?} has no match {m:?}; its matches are: {}",
                                        rule.name,
                                        names.join(", ")
                                    ),
                                ));
                            }
                        }
                    } else if (rule.kind == rule_kinds::TCP_ROUTE
                        || rule.kind == rule_kinds::UDP_ROUTE)
                        && !self.routes.contains(&(rule.kind.as_str(), key(&rule.name)))
                    {
                        problems.push(missing());
                    }
                }
            }
            Resource::TrafficPolicy(tp) => problems.extend(self.policy_problems(&tp.spec, ns)),
            Resource::Canary(c) => problems.extend(self.canary_problems(c, ns)),
            _ => {}
        }
        problems
    }

    /// The Canary's Services (warnings, as a split's: the Canary works once they exist)
    /// and a TrafficSplit under the name the Canary generates (an error: the Canary owns
    /// that split and does not publish its own while another one holds the name).
    fn canary_problems(&self, c: &Canary, ns: &str) -> Vec<Problem> {
        let key = |name: &str| (ns.to_owned(), name.to_owned());
        let spec = &c.spec;
        let mut problems: Vec<Problem> = [
            (
                "spec.service",
                &spec.service,
                "the Canary routes nothing until it exists",
            ),
            (
                "spec.stable",
                &spec.stable,
                "this backend gets no traffic until it exists",
            ),
            (
                "spec.canary",
                &spec.canary,
                "this backend gets no traffic and has no version to analyse until it exists",
            ),
        ]
        .into_iter()
        .filter(|(_, name, _)| !name.is_empty() && !self.services.contains(&key(name)))
        .map(|(field, name, meanwhile)| {
            Problem::warning(
                field,
                format!("no Service {name:?} in namespace {ns:?} in these manifests; {meanwhile}"),
            )
        })
        .collect();
        let (split, why) = match (&spec.traffic_split, &c.metadata.name) {
            (Some(split), _) => (split, ""),
            (None, Some(name)) => (
                name,
                " (the Canary's own name, as spec.trafficSplit is omitted)",
            ),
            (None, None) => return problems,
        };
        if self.splits.contains(&key(split)) {
            problems.push(Problem::error(
                "spec.trafficSplit",
                format!(
                    "TrafficSplit {split:?} is in these manifests, but the Canary generates and owns \
                     the split of that name{why}: delete that TrafficSplit or set spec.trafficSplit \
                     to another name"
                ),
            ));
        }
        problems
    }

    /// The policy's Service and mirror Service (warnings: the policy applies once they
    /// exist), its routes' HTTPRouteGroups and match names (errors).
    fn policy_problems(&self, spec: &TrafficPolicySpec, ns: &str) -> Vec<Problem> {
        let key = |name: &str| (ns.to_owned(), name.to_owned());
        let mut problems = Vec::new();
        if !spec.service.is_empty() && !self.services.contains(&key(&spec.service)) {
            problems.push(Problem::warning(
                "spec.service",
                format!(
                    "no Service {:?} in namespace {ns:?} in these manifests; the policy applies once it exists",
                    spec.service
                ),
            ));
        }
        let mirror = |field: String, mirror: Option<&Mirror>| {
            let m = mirror.filter(|m| !m.service.is_empty())?;
            (!self.services.contains(&key(&m.service))).then(|| {
                Problem::warning(
                    field,
                    format!(
                        "no Service {:?} in namespace {ns:?} in these manifests; nothing is mirrored until it exists",
                        m.service
                    ),
                )
            })
        };
        problems.extend(mirror("spec.mirror.service".into(), spec.mirror.as_ref()));
        for (i, route) in spec.routes.iter().enumerate() {
            if !route.http_route_group.is_empty() {
                match self.route_groups.get(&key(&route.http_route_group)) {
                    None => problems.push(Problem::error(
                        format!("spec.routes[{i}].httpRouteGroup"),
                        format!(
                            "no HTTPRouteGroup {:?} in namespace {ns:?}; create it or fix the name",
                            route.http_route_group
                        ),
                    )),
                    Some(names) => {
                        for (k, m) in route.matches.iter().enumerate() {
                            if !names.contains(&m.as_str()) {
                                problems.push(Problem::error(
                                    format!("spec.routes[{i}].matches[{k}]"),
                                    format!(
                                        "HTTPRouteGroup {:?} has no match {m:?}; its matches are: {}",
                                        route.http_route_group,
                                        names.join(", ")
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            problems.extend(mirror(
                format!("spec.routes[{i}].mirror.service"),
                route.mirror.as_ref(),
            ));
        }
        problems
    }
}

/// The Service name of a root: `web`, `Web.ns.svc.cluster.local.` -> `web` (hosts
/// compare case-insensitively).
fn root_name(service: &str) -> String {
    service
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Splits without `matches` that share a root: at most one may apply.
fn conflicting_splits(parsed: &[Parsed<'_>]) -> Vec<(usize, Problem)> {
    let mut by_root: BTreeMap<(String, String), Vec<(usize, String)>> = BTreeMap::new();
    for (index, p) in parsed.iter().enumerate() {
        if let Resource::TrafficSplit(ts) = &p.resource
            && ts.spec.matches.is_empty()
            && !ts.spec.service.is_empty()
        {
            let root = root_name(&ts.spec.service);
            let name = ts.metadata.name.clone().unwrap_or_default();
            by_root
                .entry((p.namespace.clone(), root))
                .or_default()
                .push((index, name));
        }
    }
    let mut out = Vec::new();
    for ((_, root), splits) in by_root.into_iter().filter(|(_, s)| s.len() > 1) {
        for (index, name) in &splits {
            let others: Vec<&str> = splits
                .iter()
                .filter(|(i, _)| i != index)
                .map(|(_, n)| n.as_str())
                .collect();
            out.push((
                *index,
                Problem::error(
                    "spec.service",
                    format!(
                        "TrafficSplit {} also splits {root:?} without matches; only one split without \
                         matches applies to a root Service (the oldest): merge them or give {name:?} matches",
                        others.iter().map(|o| format!("{o:?}")).collect::<Vec<_>>().join(", ")
                    ),
                ),
            ));
        }
    }
    out
}

/// TrafficPolicies that name the same Service: only the first by name applies.
fn conflicting_policies(parsed: &[Parsed<'_>]) -> Vec<(usize, Problem)> {
    let mut by_service: BTreeMap<(&str, &str), Vec<(&str, usize)>> = BTreeMap::new();
    for (index, p) in parsed.iter().enumerate() {
        if let Resource::TrafficPolicy(tp) = &p.resource
            && !tp.spec.service.is_empty()
        {
            let name = tp.metadata.name.as_deref().unwrap_or_default();
            by_service
                .entry((p.namespace.as_str(), tp.spec.service.as_str()))
                .or_default()
                .push((name, index));
        }
    }
    let mut out = Vec::new();
    for ((_, service), mut policies) in by_service {
        policies.sort();
        let Some(((first, _), rest)) = policies.split_first() else {
            continue;
        };
        for (_, index) in rest {
            out.push((
                *index,
                Problem::error(
                    "spec.service",
                    format!(
                        "TrafficPolicy {first:?} also applies to Service {service:?}; only the first \
                         by name applies to a Service: merge this policy into {first:?}"
                    ),
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::lint::lint;
    use crate::manifest::{Manifests, Object, yaml::parse_stream};

    /// `field: message` of every finding for the objects of one YAML stream.
    fn findings(text: &str) -> Vec<String> {
        let manifests = Manifests {
            objects: parse_stream(text)
                .documents
                .into_iter()
                .map(|doc| Object {
                    file: "policies.yaml".into(),
                    doc,
                })
                .collect(),
            ..Default::default()
        };
        lint(&manifests, "shop")
            .findings
            .iter()
            .map(|f| format!("{}: {}: {}", f.resource, f.field, f.message))
            .collect()
    }

    const OBJECTS: &str = "apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: web-routes}
spec: {matches: [{name: search, pathRegex: /search}, {name: health, pathRegex: /healthz}]}
";

    fn mk_policy(name: &str, spec: &str) -> String {
        format!(
            "{OBJECTS}---\napiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        )
    }

    #[test]
    fn a_policy_whose_references_resolve_has_no_findings() {
        let text = mk_policy(
            "web",
            "  service: web\n  routes: [{httpRouteGroup: web-routes, matches: [search, health], timeout: 1s}]\n",
        );
        assert_eq!(findings(&text), Vec::<String>::new());
    }

    #[test]
    fn policy_references_are_checked() {
        let text = mk_policy(
            "api",
            "  service: api\n  mirror: {service: api-shadow}\n  routes:\n  - {httpRouteGroup: web-routes, matches: [search, serch], timeout: 1s}\n  - {httpRouteGroup: api-routes, matches: [a], mirror: {service: web}}\n",
        );
        assert_eq!(
            findings(&text),
            [
                "TrafficPolicy/shop/api: spec.service: no Service \"api\" in namespace \"shop\" in these manifests; the policy applies once it exists",
                "TrafficPolicy/shop/api: spec.mirror.service: no Service \"api-shadow\" in namespace \"shop\" in these manifests; nothing is mirrored until it exists",
                "TrafficPolicy/shop/api: spec.routes[0].matches[1]: HTTPRouteGroup \"web-routes\" has no match \"serch\"; its matches are: search, health",
                "TrafficPolicy/shop/api: spec.routes[1].httpRouteGroup: no HTTPRouteGroup \"api-routes\" in namespace \"shop\"; create it or fix the name",
            ]
        );
    }

    fn mk_canary(spec: &str) -> String {
        format!(
            "{OBJECTS}---\napiVersion: trellis.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web}}\n\
             spec: {{{spec}, analysis: {{interval: 1m, stepWeight: 10, metrics: [{{name: request-success-rate, thresholdRange: {{min: 99}}}}]}}}}\n"
        )
    }

    #[test]
    fn canary_services_missing_from_the_manifests_are_warnings() {
        let text = mk_canary("service: web, stable: web-v1, canary: web-v2");
        assert_eq!(
            findings(&text),
            [
                "Canary/shop/web: spec.stable: no Service \"web-v1\" in namespace \"shop\" in these manifests; this backend gets no traffic until it exists",
                "Canary/shop/web: spec.canary: no Service \"web-v2\" in namespace \"shop\" in these manifests; this backend gets no traffic and has no version to analyse until it exists",
            ]
        );
        let text = mk_canary("service: api, stable: web, canary: web-v2");
        assert_eq!(
            findings(&text)[0],
            "Canary/shop/web: spec.service: no Service \"api\" in namespace \"shop\" in these manifests; the Canary routes nothing until it exists"
        );
    }

    #[test]
    fn a_committed_split_under_the_name_a_canary_generates_is_an_error() {
        let split = |name: &str| {
            format!(
                "---\napiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {{name: {name}}}\n\
                 spec: {{service: web, backends: [{{service: web, weight: 100}}]}}\n"
            )
        };
        let both = |canary: &str, split_name: &str| {
            findings(&format!("{}{}", mk_canary(canary), split(split_name)))
                .into_iter()
                .filter(|f| f.contains("spec.trafficSplit"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            both("service: web, stable: web, canary: web", "web"),
            [
                "Canary/shop/web: spec.trafficSplit: TrafficSplit \"web\" is in these manifests, but the Canary generates and owns the split of that name (the Canary's own name, as spec.trafficSplit is omitted): delete that TrafficSplit or set spec.trafficSplit to another name"
            ]
        );
        assert_eq!(
            both(
                "service: web, stable: web, canary: web, trafficSplit: web-canary",
                "web-canary"
            ),
            [
                "Canary/shop/web: spec.trafficSplit: TrafficSplit \"web-canary\" is in these manifests, but the Canary generates and owns the split of that name: delete that TrafficSplit or set spec.trafficSplit to another name"
            ]
        );
        assert_eq!(
            both(
                "service: web, stable: web, canary: web, trafficSplit: web-canary",
                "web"
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn only_the_first_policy_by_name_applies_to_a_service() {
        let text = format!(
            "{}---\napiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: a-web}}\nspec: {{service: web, timeout: 2s}}\n",
            mk_policy("web", "  service: web\n  timeout: 1s\n")
        );
        assert_eq!(
            findings(&text),
            [
                "TrafficPolicy/shop/web: spec.service: TrafficPolicy \"a-web\" also applies to Service \"web\"; only the first by name applies to a Service: merge this policy into \"a-web\""
            ]
        );
    }
}
