//! Canary: every validation rule with the exact message a user sees (`field: message`),
//! parse errors at their field, and the round trip through `dynamic::parse` /
//! `dynamic::to_version`.

use serde_json::Value;
use smi_crds::dynamic::{self, Resource};
use smi_crds::trellis::canary::{NoDataPolicy, ProviderType, WebhookType};
use smi_crds::validate::validate;

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("test manifest is valid YAML")
}

/// A Canary `shop/web` of root `web` from `web-v1` to `web-v2`, with `fields` added to
/// the spec (block form, two-space indent) and `analysis` as its analysis (flow form).
fn mk_canary(fields: &str, analysis: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web, namespace: shop}}\n\
         spec:\n  service: web\n  stable: web-v1\n  canary: web-v2\n{fields}  analysis: {analysis}\n"
    )
}

/// A Canary `shop/web` of `service` from `stable` to `canary`, with a valid analysis.
fn mk_services(service: &str, stable: &str, canary: &str) -> String {
    format!(
        "apiVersion: trellis.dev/v1alpha1\nkind: Canary\nmetadata: {{name: web, namespace: shop}}\n\
         spec: {{service: '{service}', stable: '{stable}', canary: '{canary}', analysis: {ANALYSIS}}}\n"
    )
}

/// An analysis that is valid: `stepWeight: 20` and the success rate.
const ANALYSIS: &str = "{interval: 1m, stepWeight: 20, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}";

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
kind: Canary
metadata: {name: web, namespace: shop}
spec:
  service: web
  stable: web-v1
  canary: web-v2
  trafficSplit: web-canary
  targetLabel: app.kubernetes.io/version
  progressDeadline: 10m
  suspend: true
  analysis:
    interval: 30s
    threshold: 3
    stepWeight: 20
    maxWeight: 60
    provider: {type: prometheus, address: 'http://prometheus.monitoring:9090'}
    metrics:
    - name: request-success-rate
      thresholdRange: {min: 99.0}
    - name: request-duration
      thresholdRange: {max: 500.0}
      interval: 1m
    - name: error-budget
      query: sum(rate(errors{service=\"{{ backend }}\"}[{{ interval }}]))
      thresholdRange: {min: 0.0, max: 1.5}
      noData: skip
    webhooks:
    - name: load-test
      type: rollout
      url: http://loadtester.test/
      timeout: 5s
      metadata: {cmd: 'hey -z 1m http://web.shop/'}
    - name: approve
      type: confirm-promotion
      url: https://gate.example/approve
";

#[test]
fn a_full_canary_is_valid() {
    assert_eq!(problems(FULL), Vec::<String>::new());
}

#[test]
fn blue_green_and_listed_weights_are_valid() {
    for analysis in [
        "{interval: 1m, iterations: 10, metrics: [{name: request-duration, thresholdRange: {max: 500}}]}",
        "{interval: 1m, stepWeights: [1, 10, 50, 80], webhooks: [{name: gate, type: confirm-promotion, url: 'http://gate/'}]}",
        "{interval: 1m, stepWeight: 20, provider: {type: builtin}, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}",
    ] {
        assert_eq!(
            problems(&mk_canary("", analysis)),
            Vec::<String>::new(),
            "{analysis}"
        );
    }
}

#[test]
fn each_rule_names_its_field_and_what_is_valid() {
    let cases: Vec<(String, &[&str])> = vec![
        // the Services
        (
            mk_services("", "", ""),
            &[
                "spec.service: required: the name of a Service in this namespace, the root Service clients call",
                "spec.stable: required: the name of a Service in this namespace, the backend Service running the version in production",
                "spec.canary: required: the name of a Service in this namespace, the backend Service running the new version",
            ],
        ),
        (
            mk_services("Web", "web.v1", "2web"),
            &[
                "spec.service: \"Web\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
                "spec.stable: \"web.v1\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
                "spec.canary: \"2web\" is not a valid Service name: use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit",
            ],
        ),
        (
            mk_services("web", "web-v1", "web-v1"),
            &[
                "spec.canary: \"web-v1\" is also the stable backend: the canary backend must be another Service, the one running the new version",
            ],
        ),
        // trafficSplit, targetLabel, progressDeadline
        (
            mk_canary("  trafficSplit: Web_Canary\n", ANALYSIS),
            &[
                "spec.trafficSplit: \"Web_Canary\" is not a valid TrafficSplit name: use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit; omit it to use the Canary's name",
            ],
        ),
        (
            mk_canary("  targetLabel: app.kubernetes.io/-version\n", ANALYSIS),
            &[
                "spec.targetLabel: \"app.kubernetes.io/-version\" is not a valid label key: use a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, optionally after a DNS subdomain prefix and '/' (e.g. version, app.kubernetes.io/version)",
            ],
        ),
        (
            mk_canary("  progressDeadline: 10 minutes\n", ANALYSIS),
            &[
                "spec.progressDeadline: \"10 minutes\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            mk_canary("  progressDeadline: 0s\n", ANALYSIS),
            &["spec.progressDeadline: must be longer than 0, e.g. \"1s\" or \"250ms\""],
        ),
        // interval, threshold
        (
            mk_canary(
                "",
                "{interval: '', stepWeight: 10, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis.interval: required: the time between two checks, e.g. \"1m\" or \"30s\"",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 0s, threshold: 0, stepWeight: 10, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis.interval: must be longer than 0, e.g. \"1s\" or \"250ms\"",
                "spec.analysis.threshold: must be at least 1: the failed checks that roll the canary back; omit it for 5",
            ],
        ),
        // exactly one of stepWeight, stepWeights, iterations
        (
            mk_canary(
                "",
                "{interval: 1m, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis: set one of stepWeight (the canary weight grows by this much per passed check), stepWeights (the canary weights in order) or iterations (blue/green: this many passed checks with no traffic moved, then promotion)",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, iterations: 5, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis: stepWeight and iterations are both set: keep one of stepWeight (the canary weight grows by this much per passed check), stepWeights (the canary weights in order) or iterations (blue/green: this many passed checks with no traffic moved, then promotion)",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, stepWeights: [10, 20], iterations: 5, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis: stepWeight, stepWeights and iterations are all set: keep one of stepWeight (the canary weight grows by this much per passed check), stepWeights (the canary weights in order) or iterations (blue/green: this many passed checks with no traffic moved, then promotion)",
            ],
        ),
        // stepWeight and maxWeight
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 0, maxWeight: 101, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis.stepWeight: must be between 1 and 100, got 0",
                "spec.analysis.maxWeight: must be between 1 and 100, got 101",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 30, maxWeight: 20, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &["spec.analysis.maxWeight: must be at least stepWeight (30), got 20"],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeights: [10, 50], maxWeight: 80, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis.maxWeight: only allowed with stepWeight; with stepWeights the last weight (50) is the highest: remove maxWeight",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, iterations: 3, maxWeight: 80, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &["spec.analysis.maxWeight: only allowed with stepWeight: remove maxWeight"],
        ),
        // stepWeights, iterations
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeights: [10, 0, 50, 50, 20, 120], webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &[
                "spec.analysis.stepWeights[1]: must be between 1 and 100, got 0",
                "spec.analysis.stepWeights[3]: must be greater than the weight before it (50): list the weights in increasing order, e.g. [5, 10, 50, 80]",
                "spec.analysis.stepWeights[4]: must be greater than the weight before it (50): list the weights in increasing order, e.g. [5, 10, 50, 80]",
                "spec.analysis.stepWeights[5]: must be between 1 and 100, got 120",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, iterations: 0, webhooks: [{name: t, type: rollout, url: 'http://t/'}]}",
            ),
            &["spec.analysis.iterations: must be at least 1: the passed checks before promotion"],
        ),
        // provider
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, provider: {type: prometheus, address: 'prometheus:9090'}, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}",
            ),
            &[
                "spec.analysis.provider.address: \"prometheus:9090\" is not an http(s) URL, e.g. http://prometheus.monitoring:9090",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, provider: {type: builtin, address: 'http://prometheus:9090'}, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}]}",
            ),
            &[
                "spec.analysis.provider.address: warning: only used with type prometheus (builtin scrapes the proxies itself): remove address or set type: prometheus",
            ],
        ),
        // metrics
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, metrics: [{name: '', thresholdRange: {min: 1}}, {name: latency-p50, thresholdRange: {max: 100}}]}",
            ),
            &[
                "spec.analysis.metrics[0].name: required: request-success-rate, request-duration or a name of your own with a query",
                "spec.analysis.metrics[1].query: required for metric \"latency-p50\": only request-success-rate and request-duration are built in; write a PromQL query returning one number, or use a built-in name",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, provider: {type: builtin}, metrics: [{name: errors, query: 'sum(errors)', thresholdRange: {max: 1}}, {name: request-duration, query: 'p99', thresholdRange: {max: 500}}]}",
            ),
            &[
                "spec.analysis.metrics[0].query: queries need Prometheus and analysis.provider.type is builtin: set type: prometheus",
                "spec.analysis.metrics[1].query: queries need Prometheus and analysis.provider.type is builtin: set type: prometheus, or remove the query to use the built-in request-duration",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, metrics: [{name: request-success-rate, thresholdRange: {}}, {name: request-duration, thresholdRange: {min: 500, max: 100}, interval: 0s}]}",
            ),
            &[
                "spec.analysis.metrics[0].thresholdRange: set min, max or both: the range the value must be in to pass, e.g. {min: 99} for request-success-rate or {max: 500} for request-duration",
                "spec.analysis.metrics[1].thresholdRange.min: must be at most max (100), got 500: no value could pass",
                "spec.analysis.metrics[1].interval: must be longer than 0, e.g. \"1s\" or \"250ms\"",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, metrics: [{name: request-success-rate, thresholdRange: {min: 99}}, {name: request-success-rate, thresholdRange: {min: 95}}]}",
            ),
            &[
                "spec.analysis.metrics[1].name: duplicate metric \"request-success-rate\" (also spec.analysis.metrics[0].name); list each once",
            ],
        ),
        (
            mk_canary("", "{interval: 1m, stepWeight: 10}"),
            &[
                "spec.analysis.metrics: warning: no metrics and no webhooks: every check passes, so the canary is promoted whatever it does; add request-success-rate, e.g. {name: request-success-rate, thresholdRange: {min: 99}}",
            ],
        ),
        // webhooks
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, webhooks: [{name: '', type: rollout, url: ''}, {name: gate, type: pre-rollout, url: 'ftp://gate/', timeout: soon}]}",
            ),
            &[
                "spec.analysis.webhooks[0].name: required: a name unique among the webhooks (events and status name the webhook by it)",
                "spec.analysis.webhooks[0].url: required: the http:// or https:// URL the webhook is POSTed to",
                "spec.analysis.webhooks[1].url: \"ftp://gate/\" is not an http(s) URL, e.g. http://loadtester.test/gate/approve",
                "spec.analysis.webhooks[1].timeout: \"soon\" is not a duration: use a number with a unit (ns, us, ms, s, m, h), e.g. \"24h\" or \"1h30m\"",
            ],
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, webhooks: [{name: gate, type: pre-rollout, url: 'http://a/'}, {name: gate, type: rollout, url: 'http://b/', timeout: 0s}]}",
            ),
            &[
                "spec.analysis.webhooks[1].timeout: must be longer than 0, e.g. \"1s\" or \"250ms\"",
                "spec.analysis.webhooks[1].name: duplicate webhook \"gate\" (also spec.analysis.webhooks[0].name); list each once",
            ],
        ),
    ];
    for (manifest, expected) in cases {
        assert_eq!(problems(&manifest), expected, "{manifest}");
    }
}

#[test]
fn parse_errors_name_the_field() {
    let cases = [
        (
            mk_canary("", "{stepWeight: 10}"),
            "spec.analysis.interval",
            "required",
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, provider: {type: datadog}}",
            ),
            "spec.analysis.provider.type",
            "unknown variant `datadog`, expected `builtin` or `prometheus`",
        ),
        (
            mk_canary(
                "",
                "{interval: 1m, stepWeight: 10, webhooks: [{name: a, type: pre-promotion, url: 'http://a/'}]}",
            ),
            "spec.analysis.webhooks[0].type",
            "unknown variant `pre-promotion`, expected one of `pre-rollout`, `rollout`, `confirm-promotion`, `post-rollout`, `rollback`",
        ),
        (
            mk_canary("", "{interval: 1m, stepWeight: -5}"),
            "spec.analysis.stepWeight",
            "invalid value: integer `-5`, expected u32",
        ),
        (
            mk_canary("  primary: web-v1\n", ANALYSIS),
            "spec.primary",
            "unknown field; expected one of `service`, `stable`, `canary`, `trafficSplit`, `targetLabel`, `progressDeadline`, `suspend`, `abort`, `analysis`",
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
fn a_canary_round_trips_through_the_hub() {
    let original = yaml(FULL);
    let hub = dynamic::parse(original.clone())
        .expect("parses")
        .expect("served kind");
    assert_eq!(hub.kind(), "Canary");
    assert!(hub.is_namespaced());
    let Resource::Canary(canary) = &hub else {
        panic!("parsed as {}", hub.kind());
    };
    let analysis = &canary.spec.analysis;
    assert_eq!(
        analysis.provider.as_ref().unwrap().type_,
        ProviderType::Prometheus
    );
    assert_eq!(analysis.metrics[2].no_data, NoDataPolicy::Skip);
    assert_eq!(analysis.webhooks[1].type_, WebhookType::ConfirmPromotion);
    // `noData: fail` (the default) is written out; everything else as it was read
    // (bounds are numbers: written `99.0` to compare equal).
    let mut expected = original;
    for m in expected["spec"]["analysis"]["metrics"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .take(2)
    {
        m["noData"] = "fail".into();
    }
    assert_eq!(dynamic::to_version(&hub, "v1alpha1").unwrap(), expected);
}

#[test]
fn only_v1alpha1_is_served() {
    let hub = dynamic::parse(yaml(FULL)).unwrap().unwrap();
    let err = dynamic::to_version(&hub, "v1beta1").unwrap_err();
    assert_eq!(
        err.message(),
        "trellis.dev/v1beta1 does not serve Canary; served versions: trellis.dev/v1alpha1"
    );
    let err = dynamic::parse(yaml(&FULL.replace("v1alpha1", "v1"))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "apiVersion: trellis.dev/v1 does not serve Canary; served versions: trellis.dev/v1alpha1"
    );
}
