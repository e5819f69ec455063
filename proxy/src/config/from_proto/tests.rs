use super::*;

fn mk_endpoint(ip: &str, port: u32) -> api::Endpoint {
    api::Endpoint {
        address: Some(api::SocketAddress {
            ip: ip.into(),
            port,
        }),
        ..Default::default()
    }
}

fn mk_backend(name: &str) -> api::Backend {
    api::Backend {
        name: name.into(),
        endpoints: vec![mk_endpoint("127.0.0.1", 8080)],
        ..Default::default()
    }
}

fn mk_route(backends: &[(&str, u32)]) -> api::Route {
    api::Route {
        name: "default".into(),
        backends: backends
            .iter()
            .map(|(b, w)| api::WeightedBackend {
                backend: (*b).into(),
                weight: *w,
            })
            .collect(),
        ..Default::default()
    }
}

fn mk_config(routes: Vec<api::Route>) -> api::OutboundConfig {
    api::OutboundConfig {
        version: "1".into(),
        authority: "web.shop.svc.cluster.local".into(),
        routes,
        backends: vec![mk_backend("web-v1"), mk_backend("web-v2")],
        ..Default::default()
    }
}

fn nack(config: api::OutboundConfig) -> String {
    Outbound::try_from(config).unwrap_err().to_string()
}

#[test]
fn a_split_keeps_its_weights_and_drops_zero_weight_backends() {
    let out =
        Outbound::try_from(mk_config(vec![mk_route(&[("web-v1", 90), ("web-v2", 0)])])).unwrap();
    let route = &out.routes[0];
    assert_eq!(route.backends.len(), 1);
    assert_eq!(&*route.backends[0].0.name, "web-v1");
    assert_eq!(route.backends[0].1, 90);
    assert_eq!(
        route.backends[0].0.balancer,
        Balancer::PeakEwma {
            decay: Duration::from_secs(10)
        }
    );
}

#[test]
fn retry_defaults_are_filled_in() {
    let mut route = mk_route(&[("web-v1", 1)]);
    route.retry = Some(api::Retry {
        attempts: 3,
        retry_on: vec!["gateway-error".into()],
        ..Default::default()
    });
    let out = Outbound::try_from(mk_config(vec![route])).unwrap();
    let retry = out.routes[0].retry.as_ref().unwrap();
    assert_eq!(retry.attempts, 3);
    assert_eq!(retry.on, [RetryOn::GatewayError]);
    assert_eq!(retry.budget.ratio, 0.2);
    assert_eq!(retry.max_replay_body_bytes, 64 * 1024);
}

#[test]
fn nacks_name_the_field_and_the_problem() {
    let unknown_backend = mk_config(vec![mk_route(&[("web-v3", 1)])]);
    assert_eq!(
        nack(unknown_backend),
        "routes[0].backends[0].backend: no backend named \"web-v3\""
    );

    let mut bad_regex = mk_route(&[("web-v1", 1)]);
    bad_regex.matches = vec![api::HttpMatch {
        path_regex: "/items/(".into(),
        ..Default::default()
    }];
    assert_eq!(
        nack(mk_config(vec![bad_regex])),
        "routes[0].matches[0].path_regex: invalid regex \"/items/(\": unclosed group"
    );

    let mut bad_endpoint = mk_config(vec![mk_route(&[("web-v1", 1)])]);
    bad_endpoint.backends[1].endpoints = vec![mk_endpoint("web-1", 8080)];
    assert_eq!(
        nack(bad_endpoint),
        "backends[1].endpoints[0].address.ip: \"web-1\" is not an IP address"
    );

    let mut no_attempts = mk_route(&[("web-v1", 1)]);
    no_attempts.retry = Some(api::Retry::default());
    assert_eq!(
        nack(mk_config(vec![no_attempts])),
        "routes[0].retry.attempts: must be at least 1 (the first attempt counts)"
    );

    let mut bad_fault = mk_route(&[("web-v1", 1)]);
    bad_fault.fault = Some(api::Fault {
        abort: Some(api::FaultAbort {
            percent: 150.0,
            error: Some(api::fault_abort::Error::HttpStatus(503)),
        }),
        ..Default::default()
    });
    assert_eq!(
        nack(mk_config(vec![bad_fault])),
        "routes[0].fault.abort.percent: must be between 0 and 100, got 150"
    );

    let mut duplicate = mk_config(vec![]);
    duplicate.backends.push(mk_backend("web-v1"));
    assert_eq!(
        nack(duplicate),
        "backends[2].name: duplicate backend \"web-v1\""
    );
}

fn compiled_match(m: api::HttpMatch) -> HttpMatch {
    http_match(m, "m").unwrap()
}

#[test]
fn paths_match_from_their_start() {
    let m = compiled_match(api::HttpMatch {
        path_regex: "/api".into(),
        ..Default::default()
    });
    let headers = http::HeaderMap::new();
    assert!(m.matches(&http::Method::GET, "/api/items", &headers));
    assert!(!m.matches(&http::Method::GET, "/v1/api", &headers));
}

#[test]
fn methods_and_whole_header_values_must_hold() {
    let m = compiled_match(api::HttpMatch {
        methods: vec!["POST".into()],
        headers: vec![api::HeaderMatch {
            name: "x-canary".into(),
            value_regex: "true".into(),
        }],
        ..Default::default()
    });
    let mut headers = http::HeaderMap::new();
    headers.insert("x-canary", "true".parse().unwrap());
    assert!(m.matches(&http::Method::POST, "/", &headers));
    assert!(
        !m.matches(&http::Method::GET, "/", &headers),
        "method differs"
    );
    headers.insert("x-canary", "untrue".parse().unwrap());
    assert!(
        !m.matches(&http::Method::POST, "/", &headers),
        "the regex covers the whole value"
    );
}
