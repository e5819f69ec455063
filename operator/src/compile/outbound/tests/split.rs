//! Rules 4-7: backends and endpoints, TrafficSplits, eligibility, no hierarchy.

use super::*;

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
    std::sync::Arc::make_mut(&mut custom_port.labels).insert("version".into(), "v2".into());
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
