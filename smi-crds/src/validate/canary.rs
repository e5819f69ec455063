//! Canary rules: the Services it moves traffic between, how traffic moves (exactly one of
//! `stepWeight`, `stepWeights`, `iterations`), and the metrics and webhooks every check
//! runs. Whether the Services exist is checked by whoever holds the set of resources.

use super::names::{LABEL_KEY_RULE, SERVICE_RULE, SUBDOMAIN_RULE, is_label_key};
use super::traffic_policy::Problems;
use super::{Problem, duplicates, is_dns1035_label, is_dns1123_subdomain, is_http_url};
use crate::trellis::canary::{
    Analysis, CanarySpec, Metric, ProviderType, REQUEST_DURATION, REQUEST_SUCCESS_RATE, Webhook,
};

const BUILTIN_METRICS: [&str; 2] = [REQUEST_SUCCESS_RATE, REQUEST_DURATION];
const STEPS: &str = "stepWeight (the canary weight grows by this much per passed check), \
                     stepWeights (the canary weights in order) or iterations (blue/green: \
                     this many passed checks with no traffic moved, then promotion)";

pub(super) fn validate(spec: &CanarySpec) -> Vec<Problem> {
    let mut p = Problems::default();
    p.service(
        "spec.service",
        &spec.service,
        "the root Service clients call",
    );
    p.service(
        "spec.stable",
        &spec.stable,
        "the backend Service running the version in production",
    );
    p.service(
        "spec.canary",
        &spec.canary,
        "the backend Service running the new version",
    );
    if !spec.canary.is_empty() && spec.canary == spec.stable {
        p.error(
            "spec.canary",
            format!(
                "{:?} is also the stable backend: the canary backend must be another Service, the one running the new version",
                spec.canary
            ),
        );
    }
    if let Some(name) = &spec.traffic_split
        && !is_dns1123_subdomain(name)
    {
        p.error(
            "spec.trafficSplit",
            format!(
                "{name:?} is not a valid TrafficSplit name: {SUBDOMAIN_RULE}; omit it to use the Canary's name"
            ),
        );
    }
    if let Some(label) = &spec.target_label
        && !is_label_key(label)
    {
        p.error(
            "spec.targetLabel",
            format!("{label:?} is not a valid label key: {LABEL_KEY_RULE}"),
        );
    }
    if let Some(deadline) = &spec.progress_deadline {
        p.positive_duration("spec.progressDeadline", deadline);
    }
    p.analysis(&spec.analysis);
    p.0
}

impl Problems {
    fn service(&mut self, field: &str, name: &str, what: &str) {
        if name.is_empty() {
            self.error(
                field,
                format!("required: the name of a Service in this namespace, {what}"),
            );
        } else if !is_dns1035_label(name) {
            self.error(
                field,
                format!("{name:?} is not a valid Service name: {SERVICE_RULE}"),
            );
        }
    }

    fn analysis(&mut self, a: &Analysis) {
        const AT: &str = "spec.analysis";
        if a.interval.is_empty() {
            self.error(
                format!("{AT}.interval"),
                "required: the time between two checks, e.g. \"1m\" or \"30s\"",
            );
        } else {
            self.positive_duration(&format!("{AT}.interval"), &a.interval);
        }
        if a.threshold == Some(0) {
            self.error(
                format!("{AT}.threshold"),
                "must be at least 1: the failed checks that roll the canary back; omit it for 5",
            );
        }
        self.steps(a);
        if let Some(provider) = &a.provider
            && let Some(address) = &provider.address
        {
            let field = format!("{AT}.provider.address");
            if !is_http_url(address) {
                self.error(
                    field,
                    format!(
                        "{address:?} is not an http(s) URL, e.g. http://prometheus.monitoring:9090"
                    ),
                );
            } else if provider.type_ == ProviderType::Builtin {
                self.warning(
                    field,
                    "only used with type prometheus (builtin scrapes the proxies itself): remove address or set type: prometheus",
                );
            }
        }
        let builtin = a
            .provider
            .as_ref()
            .is_some_and(|p| p.type_ == ProviderType::Builtin);
        for (i, metric) in a.metrics.iter().enumerate() {
            self.metric(&format!("{AT}.metrics[{i}]"), metric, builtin);
        }
        self.0.extend(duplicates(
            &a.metrics,
            |m| m.name.as_str(),
            |i| format!("{AT}.metrics[{i}].name"),
            "metric",
        ));
        for (i, webhook) in a.webhooks.iter().enumerate() {
            self.webhook(&format!("{AT}.webhooks[{i}]"), webhook);
        }
        self.0.extend(duplicates(
            &a.webhooks,
            |w| w.name.as_str(),
            |i| format!("{AT}.webhooks[{i}].name"),
            "webhook",
        ));
        if a.metrics.is_empty() && a.webhooks.is_empty() {
            self.warning(
                format!("{AT}.metrics"),
                "no metrics and no webhooks: every check passes, so the canary is promoted whatever it does; add request-success-rate, e.g. {name: request-success-rate, thresholdRange: {min: 99}}",
            );
        }
    }

    /// Exactly one way to move traffic, and its numbers.
    fn steps(&mut self, a: &Analysis) {
        const AT: &str = "spec.analysis";
        let set: Vec<&str> = [
            a.step_weight.map(|_| "stepWeight"),
            (!a.step_weights.is_empty()).then_some("stepWeights"),
            a.iterations.map(|_| "iterations"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.as_slice() {
            [] => self.error(AT, format!("set one of {STEPS}")),
            [_] => {}
            [first, second] => self.error(
                AT,
                format!("{first} and {second} are both set: keep one of {STEPS}"),
            ),
            _ => self.error(
                AT,
                format!("stepWeight, stepWeights and iterations are all set: keep one of {STEPS}"),
            ),
        }
        if let Some(step) = a.step_weight {
            self.weight(&format!("{AT}.stepWeight"), step);
        }
        if let Some(max) = a.max_weight {
            let field = format!("{AT}.maxWeight");
            match (a.step_weight, a.step_weights.last()) {
                (None, Some(last)) => self.error(
                    field,
                    format!(
                        "only allowed with stepWeight; with stepWeights the last weight ({last}) is the highest: remove maxWeight"
                    ),
                ),
                (None, None) => self.error(field, "only allowed with stepWeight: remove maxWeight"),
                (Some(step), _) => {
                    if self.weight(&field, max) && (1..=100).contains(&step) && max < step {
                        self.error(
                            field,
                            format!("must be at least stepWeight ({step}), got {max}"),
                        );
                    }
                }
            }
        }
        let mut previous: Option<u32> = None;
        for (i, w) in a.step_weights.iter().enumerate() {
            let field = format!("{AT}.stepWeights[{i}]");
            if !self.weight(&field, *w) {
                continue;
            }
            if let Some(prev) = previous.filter(|prev| w <= prev) {
                self.error(
                    field,
                    format!(
                        "must be greater than the weight before it ({prev}): list the weights in increasing order, e.g. [5, 10, 50, 80]"
                    ),
                );
            }
            previous = Some(*w);
        }
        if a.iterations == Some(0) {
            self.error(
                format!("{AT}.iterations"),
                "must be at least 1: the passed checks before promotion",
            );
        }
    }

    /// A canary weight, 1-100; whether it is one.
    fn weight(&mut self, field: &str, w: u32) -> bool {
        let ok = (1..=100).contains(&w);
        if !ok {
            self.error(field, format!("must be between 1 and 100, got {w}"));
        }
        ok
    }

    /// `builtin`: the provider is set to `builtin` explicitly (queries need Prometheus).
    fn metric(&mut self, at: &str, m: &Metric, builtin: bool) {
        let is_builtin = BUILTIN_METRICS.contains(&m.name.as_str());
        let query = m.query.as_deref().filter(|q| !q.trim().is_empty());
        if m.name.is_empty() {
            self.error(
                format!("{at}.name"),
                format!(
                    "required: {} or a name of your own with a query",
                    BUILTIN_METRICS.join(", ")
                ),
            );
        } else if query.is_none() && !is_builtin {
            self.error(
                format!("{at}.query"),
                format!(
                    "required for metric {:?}: only {} are built in; write a PromQL query returning one number, or use a built-in name",
                    m.name,
                    BUILTIN_METRICS.join(" and ")
                ),
            );
        }
        if query.is_some() && builtin {
            let instead = if is_builtin {
                format!(", or remove the query to use the built-in {}", m.name)
            } else {
                String::new()
            };
            self.error(
                format!("{at}.query"),
                format!(
                    "queries need Prometheus and analysis.provider.type is builtin: set type: prometheus{instead}"
                ),
            );
        }
        let range = &m.threshold_range;
        match (range.min, range.max) {
            (None, None) => self.error(
                format!("{at}.thresholdRange"),
                "set min, max or both: the range the value must be in to pass, e.g. {min: 99} for request-success-rate or {max: 500} for request-duration",
            ),
            (Some(min), Some(max)) if min > max => self.error(
                format!("{at}.thresholdRange.min"),
                format!("must be at most max ({max}), got {min}: no value could pass"),
            ),
            _ => {}
        }
        if let Some(interval) = &m.interval {
            self.positive_duration(&format!("{at}.interval"), interval);
        }
    }

    fn webhook(&mut self, at: &str, w: &Webhook) {
        if w.name.is_empty() {
            self.error(
                format!("{at}.name"),
                "required: a name unique among the webhooks (events and status name the webhook by it)",
            );
        }
        if w.url.is_empty() {
            self.error(
                format!("{at}.url"),
                "required: the http:// or https:// URL the webhook is POSTed to",
            );
        } else if !is_http_url(&w.url) {
            self.error(
                format!("{at}.url"),
                format!(
                    "{:?} is not an http(s) URL, e.g. http://loadtester.test/gate/approve",
                    w.url
                ),
            );
        }
        if let Some(timeout) = &w.timeout {
            self.positive_duration(&format!("{at}.timeout"), timeout);
        }
    }
}
