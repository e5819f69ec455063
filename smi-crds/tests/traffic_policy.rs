//! TrafficPolicy: every validation rule with the exact message a user sees
//! (`field: message`), parse errors at their field, and the round trip through
//! `dynamic::parse` / `dynamic::to_version`.

use serde_json::Value;
use smi_crds::dynamic::{self, Resource};
use smi_crds::validate::validate;

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test manifest is valid YAML")
}

fn mk_policy(spec: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: web, namespace: shop}}\nspec:\n  service: web\n{spec}"
    )
}

/// The problems of one manifest, as `field: message` lines.
fn problems(manifest: &str) -> Vec<String> {
    let resource = dynamic::parse(yaml(manifest))
        .expect("parses")
        .expect("served kind");
    validate(&resource)
        .iter()
        .map(ToString::to_string)
        .collect()
}

const FULL: &str = "apiVersion: trellis.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  service: web
  timeout: 5s
  retries:
    attempts: 3
    perTryTimeout: 1s
    retryOn: [5xx, gateway-error, reset, connect-failure, retriable-4xx]
    statuses: [503]
    grpcCodes: [14]
    backoff: {base: 25ms, max: 250ms}
    budget: {percent: 20.5, minPerSecond: 10, window: 10s}
    maxReplayBodyBytes: 65536
  circuitBreaker:
    consecutiveFailures: 5
    baseEjectionTime: 30s
    maxEjectionTime: 5m
    maxEjectionPercent: 50
    maxConcurrentRequests: 1000
  loadBalancer: {type: RingHash, hashOn: {header: x-user}}
  fault:
    delay: {percent: 10.5, duration: 2s}
    abort: {percent: 5.5, httpStatus: 503}
  rateLimit: {requestsPerSecond: 100, burst: 200}
  mirror: {service: web-shadow, percent: 10.5}
  routes:
  - httpRouteGroup: web-routes
    matches: [get-items]
    timeout: 1s
    retries: {attempts: 2, retryOn: [5xx]}
    fault: {abort: {percent: 1.5, grpcCode: 14}}
    mirror: {service: web-shadow}
";

#[test]
fn a_full_policy_is_valid() {
    assert_eq!(problems(FULL), Vec::<String>::new());
}

#[test]
fn a_policy_with_only_a_service_is_valid() {
    assert_eq!(problems(&mk_policy("")), Vec::<String>::new());
}

#[test]
fn each_rule_names_its_field_and_what_is_valid() {
    let cases: &[(&str, &[&str])] = &[
        // spec.service
        (
            "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: ''}\n",
            &["spec.service: required: the name of a Service in this namespace"],
        ),
        (
            "apiVersion: trellis.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec: {service: Web.shop}\n",
            &[
                "spec.service: \"Web.shop\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
            ],
        ),
        // timeout
        (
            "  timeout: 5 seconds\n",
            &[
                "spec.timeout: \"5 seconds\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            "  timeout: 0s\n",
            &["spec.timeout: must be longer than 0, e.g. \"1s\" or \"250ms\""],
        ),
        // retries
        (
            "  retries: {attempts: 0, retryOn: [5xx]}\n",
            &[
                "spec.retries.attempts: must be between 1 (no retry) and 10, got 0; attempts count the first one",
            ],
        ),
        (
            "  retries: {attempts: 11, retryOn: [5xx]}\n",
            &[
                "spec.retries.attempts: must be between 1 (no retry) and 10, got 11; attempts count the first one",
            ],
        ),
        (
            "  retries: {attempts: 2, retryOn: [5xx], perTryTimeout: 1d}\n",
            &[
                "spec.retries.perTryTimeout: \"1d\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            "  retries: {attempts: 2, retryOn: [5xx, server-error]}\n",
            &[
                "spec.retries.retryOn[1]: unknown condition \"server-error\"; use one of 5xx, gateway-error, reset, connect-failure, retriable-4xx",
            ],
        ),
        (
            "  retries: {attempts: 2, statuses: [503, 99, 600]}\n",
            &[
                "spec.retries.statuses[1]: 99 is not an HTTP status: use 100-599, e.g. 503",
                "spec.retries.statuses[2]: 600 is not an HTTP status: use 100-599, e.g. 503",
            ],
        ),
        (
            "  retries: {attempts: 2, grpcCodes: [14, 17]}\n",
            &[
                "spec.retries.grpcCodes[1]: 17 is not a gRPC status code: use 0-16, e.g. 14 (UNAVAILABLE)",
            ],
        ),
        (
            "  retries: {attempts: 3}\n",
            &[
                "spec.retries.retryOn: warning: no retry conditions: nothing is retried; list conditions (e.g. [5xx, connect-failure]), statuses or grpcCodes",
            ],
        ),
        (
            "  retries: {attempts: 2, retryOn: [reset], backoff: {base: 1s, max: 500ms}}\n",
            &["spec.retries.backoff.max: must be at least base (1s), got 500ms"],
        ),
        (
            "  retries: {attempts: 2, retryOn: [reset], backoff: {base: 1s}}\n",
            &["spec.retries.backoff.max: must be at least base (1s), got 250ms (the default)"],
        ),
        (
            "  retries: {attempts: 2, retryOn: [reset], budget: {percent: 120, window: 0s}}\n",
            &[
                "spec.retries.budget.percent: must be between 0 and 100, got 120",
                "spec.retries.budget.window: must be longer than 0, e.g. \"1s\" or \"250ms\"",
            ],
        ),
        // circuitBreaker
        (
            "  circuitBreaker: {consecutiveFailures: 5, baseEjectionTime: 1m, maxEjectionTime: 30s}\n",
            &[
                "spec.circuitBreaker.maxEjectionTime: must be at least baseEjectionTime (1m), got 30s",
            ],
        ),
        (
            "  circuitBreaker: {consecutiveFailures: 5, baseEjectionTime: 10m}\n",
            &[
                "spec.circuitBreaker.maxEjectionTime: must be at least baseEjectionTime (10m), got 5m (the default)",
            ],
        ),
        (
            "  circuitBreaker: {consecutiveFailures: 5, maxEjectionPercent: 101}\n",
            &["spec.circuitBreaker.maxEjectionPercent: must be between 0 and 100, got 101"],
        ),
        (
            "  circuitBreaker: {consecutiveFailures: 5, maxEjectionPercent: 0}\n",
            &[
                "spec.circuitBreaker.maxEjectionPercent: warning: 0 means the default, 50 %; to never eject endpoints set consecutiveFailures to 0",
            ],
        ),
        (
            "  circuitBreaker: {consecutiveFailures: 5, maxConcurrentRequests: 0}\n",
            &[
                "spec.circuitBreaker.maxConcurrentRequests: must be at least 1; omit it for no limit",
            ],
        ),
        // loadBalancer
        (
            "  loadBalancer: {type: RoundRobin, decay: 10s}\n",
            &[
                "spec.loadBalancer.decay: only allowed with type PeakEwma, the type is RoundRobin: remove decay",
            ],
        ),
        (
            "  loadBalancer: {decay: soon}\n",
            &[
                "spec.loadBalancer.decay: \"soon\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            "  loadBalancer: {type: RingHash}\n",
            &[
                "spec.loadBalancer.hashOn: required with type RingHash: set one of header, cookie or sourceIp: true",
            ],
        ),
        (
            "  loadBalancer: {type: LeastRequest, hashOn: {cookie: session}}\n",
            &[
                "spec.loadBalancer.hashOn: only allowed with type RingHash, the type is LeastRequest: remove hashOn or use type RingHash",
            ],
        ),
        (
            "  loadBalancer: {hashOn: {sourceIp: true}}\n",
            &[
                "spec.loadBalancer.hashOn: only allowed with type RingHash, the type is PeakEwma: remove hashOn or use type RingHash",
            ],
        ),
        (
            "  loadBalancer: {type: RingHash, hashOn: {header: x-user, sourceIp: true}}\n",
            &[
                "spec.loadBalancer.hashOn: set exactly one of header, cookie or sourceIp: true (got header, sourceIp)",
            ],
        ),
        (
            "  loadBalancer: {type: RingHash, hashOn: {sourceIp: false}}\n",
            &[
                "spec.loadBalancer.hashOn: set exactly one of header, cookie or sourceIp: true (got none)",
            ],
        ),
        (
            "  loadBalancer: {type: RingHash, hashOn: {header: 'x user'}}\n",
            &[
                "spec.loadBalancer.hashOn.header: \"x user\" is not a valid header name: use letters, digits and - (e.g. x-user)",
            ],
        ),
        (
            "  loadBalancer: {type: RingHash, hashOn: {cookie: 'a;b'}}\n",
            &[
                "spec.loadBalancer.hashOn.cookie: \"a;b\" is not a valid cookie name: use letters, digits, - and _ (e.g. session)",
            ],
        ),
        // fault
        (
            "  fault: {}\n",
            &["spec.fault: warning: sets neither delay nor abort: nothing is injected"],
        ),
        (
            "  fault: {delay: {percent: -1, duration: '2'}}\n",
            &[
                "spec.fault.delay.percent: must be between 0 and 100, got -1",
                "spec.fault.delay.duration: \"2\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            "  fault: {abort: {percent: 101, httpStatus: 503}}\n",
            &["spec.fault.abort.percent: must be between 0 and 100, got 101"],
        ),
        (
            "  fault: {abort: {percent: 5, httpStatus: 104}}\n",
            &["spec.fault.abort.httpStatus: 104 is not an error status: use 200-599, e.g. 503"],
        ),
        (
            "  fault: {abort: {percent: 5, grpcCode: 0}}\n",
            &[
                "spec.fault.abort.grpcCode: 0 is not a gRPC error code: use 1-16, e.g. 14 (UNAVAILABLE)",
            ],
        ),
        (
            "  fault: {abort: {percent: 5, httpStatus: 503, grpcCode: 14}}\n",
            &["spec.fault.abort: set exactly one of httpStatus (200-599) or grpcCode (1-16)"],
        ),
        (
            "  fault: {abort: {percent: 5}}\n",
            &["spec.fault.abort: set exactly one of httpStatus (200-599) or grpcCode (1-16)"],
        ),
        // rateLimit
        (
            "  rateLimit: {requestsPerSecond: 0, burst: 0}\n",
            &[
                "spec.rateLimit.requestsPerSecond: must be at least 1; remove rateLimit for no limit",
                "spec.rateLimit.burst: must be at least 1; omit it to allow requestsPerSecond at once",
            ],
        ),
        // mirror
        (
            "  mirror: {service: ''}\n",
            &[
                "spec.mirror.service: required: the name of a Service in this namespace that receives the copies",
            ],
        ),
        (
            "  mirror: {service: web.shop, percent: 150}\n",
            &[
                "spec.mirror.service: \"web.shop\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
                "spec.mirror.percent: must be between 0 and 100, got 150",
            ],
        ),
        (
            "  mirror: {service: web}\n",
            &[
                "spec.mirror.service: \"web\" is the policy's own Service: each request would be sent to it twice; mirror to another Service",
            ],
        ),
        // routes
        (
            "  routes: [{httpRouteGroup: '', matches: [a], timeout: 1s}]\n",
            &[
                "spec.routes[0].httpRouteGroup: required: the name of an HTTPRouteGroup in this namespace",
            ],
        ),
        (
            "  routes: [{httpRouteGroup: Web_Routes, matches: [a], timeout: 1s}]\n",
            &[
                "spec.routes[0].httpRouteGroup: \"Web_Routes\" is not a valid HTTPRouteGroup name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
            ],
        ),
        (
            "  routes: [{httpRouteGroup: r, matches: [], timeout: 1s}]\n",
            &[
                "spec.routes[0].matches: at least one match is required: names of matches of HTTPRouteGroup \"r\"",
            ],
        ),
        (
            "  routes: [{httpRouteGroup: r, matches: [''], timeout: 1s}]\n",
            &["spec.routes[0].matches[0]: required: the name of a match of HTTPRouteGroup \"r\""],
        ),
        (
            "  routes: [{httpRouteGroup: r, matches: [a]}]\n",
            &[
                "spec.routes[0]: warning: sets none of timeout, retries, fault or mirror: its requests get the service-level settings",
            ],
        ),
        (
            "  routes:\n  - {httpRouteGroup: r, matches: [a, b], timeout: 1s}\n  - {httpRouteGroup: s, matches: [a], timeout: 2s}\n  - {httpRouteGroup: r, matches: [b, b], timeout: 3s}\n",
            &[
                "spec.routes[2].matches[0]: duplicate route match \"r/b\" (also spec.routes[0].matches[1]); the first route takes its requests: list each match once",
                "spec.routes[2].matches[1]: duplicate route match \"r/b\" (also spec.routes[0].matches[1]); the first route takes its requests: list each match once",
            ],
        ),
        (
            "  fault: {abort: {percent: 5, httpStatus: 503}}\n  routes: [{httpRouteGroup: r, matches: [health], fault: {}}]\n",
            &[],
        ),
        // the overridable fields are checked at the route's path
        (
            "  routes:\n  - httpRouteGroup: r\n    matches: [a]\n    timeout: 0s\n    retries: {attempts: 2, statuses: [700]}\n    fault: {abort: {percent: 5}}\n    mirror: {service: web}\n",
            &[
                "spec.routes[0].timeout: must be longer than 0, e.g. \"1s\" or \"250ms\"",
                "spec.routes[0].retries.statuses[0]: 700 is not an HTTP status: use 100-599, e.g. 503",
                "spec.routes[0].fault.abort: set exactly one of httpStatus (200-599) or grpcCode (1-16)",
                "spec.routes[0].mirror.service: \"web\" is the policy's own Service: each request would be sent to it twice; mirror to another Service",
            ],
        ),
    ];
    for (spec, expected) in cases {
        let manifest = if spec.starts_with("apiVersion") {
            (*spec).to_owned()
        } else {
            mk_policy(spec)
        };
        assert_eq!(problems(&manifest), *expected, "{spec}");
    }
}

#[test]
fn parse_errors_name_the_field() {
    let cases = [
        (
            mk_policy("  retries: {perTryTimeout: 1s}\n"),
            "spec.retries.attempts",
            "required",
        ),
        (
            mk_policy("  loadBalancer: {type: Random}\n"),
            "spec.loadBalancer.type",
            "unknown variant `Random`, expected one of `PeakEwma`, `RoundRobin`, `LeastRequest`, `RingHash`",
        ),
        (
            mk_policy("  timeouts: 5s\n"),
            "spec.timeouts",
            "unknown field; expected one of `service`, `timeout`, `retries`, `circuitBreaker`, `loadBalancer`, `fault`, `rateLimit`, `mirror`, `routes`",
        ),
        (
            mk_policy("  retries: {attempts: 2, statuses: [-1]}\n"),
            "spec.retries.statuses[0]",
            "invalid value: integer `-1`, expected u32",
        ),
        (
            mk_policy("  routes: [{httpRouteGroup: r, timeout: 1s}]\n"),
            "spec.routes[0].matches",
            "required",
        ),
    ];
    for (manifest, field, message) in cases {
        let err = dynamic::parse(yaml(&manifest)).unwrap_err();
        assert_eq!(
            (err.field(), err.message().as_str()),
            (field, message),
            "{manifest}"
        );
    }
}

#[test]
fn a_policy_round_trips_through_the_hub() {
    let original = yaml(FULL);
    let hub = dynamic::parse(original.clone())
        .expect("parses")
        .expect("served kind");
    let Resource::TrafficPolicy(policy) = &hub else {
        panic!("parsed as {}", hub.kind());
    };
    assert_eq!(policy.spec.routes[0].matches, ["get-items"]);
    assert_eq!(dynamic::to_version(&hub, "v1alpha1").unwrap(), original);
}

#[test]
fn only_v1alpha1_is_served() {
    let hub = dynamic::parse(yaml(FULL)).unwrap().unwrap();
    let err = dynamic::to_version(&hub, "v1beta1").unwrap_err();
    assert_eq!(
        err.message(),
        "trellis.dev/v1beta1 does not serve TrafficPolicy; served versions: trellis.dev/v1alpha1"
    );
}
