//! Rule 8: TrafficPolicy settings, mirror, per-route routes, backend settings.

use super::*;

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
