//! SMI-SEMANTICS "Routing (TrafficSplit)", rule by rule.

use super::*;

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
