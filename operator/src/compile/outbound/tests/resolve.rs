//! Rules 1-3 and 9: what a target resolves to, 503 reasons, protocol hints, host forms.

use super::*;

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
