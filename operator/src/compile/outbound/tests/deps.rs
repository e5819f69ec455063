//! Dependencies: what makes incremental push correct.

use std::sync::{Arc, Mutex};

use super::*;
use crate::index::{Index, Options, Update};

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
