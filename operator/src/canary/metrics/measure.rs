//! A measured value against a metric's `thresholdRange` and `noData` policy: the verdict
//! the state machine counts and the `status.metrics[]` entry users read.
//!
//! ```text
//! Value(v)  in range (inclusive)  -> Pass                     status Pass
//! Value(v)  out of range          -> Fail("99.1 < min 99")    status Fail   + message
//! NoData(why)                     -> NoData(policy)           status NoData + why
//! Error(why)                      -> NoData(policy)           status Error  + why
//! ```
//!
//! An error (Prometheus unreachable, a query returning several series) counts as no data
//! under the metric's policy: with the default `fail` it fails the check; it passes only
//! where the policy says `pass`.

use smi_crds::trellis::canary::{Metric, MetricStatus, NoDataPolicy};

use crate::canary::machine::{NoData, Verdict};

/// `status.metrics[].verdict` values.
pub mod verdicts {
    pub const PASS: &str = "Pass";
    pub const FAIL: &str = "Fail";
    /// No data; counted as the metric's `noData` policy says.
    pub const NO_DATA: &str = "NoData";
    /// The measurement failed (query error, provider unreachable); counted as no data.
    pub const ERROR: &str = "Error";
}

/// What a provider measured for one metric.
#[derive(Clone, Debug, PartialEq)]
pub enum Measurement {
    /// The metric's value (percent, milliseconds or whatever the query returns).
    Value(f64),
    /// Nothing to measure, and why (`no requests to shop/api-v3 in the last 30s`).
    NoData(String),
    /// The measurement itself failed, and why (names the provider or the query).
    Error(String),
}

/// The verdict for the state machine and the status entry of `metric` measured as `m`.
pub fn judge(metric: &Metric, m: &Measurement) -> (Verdict, MetricStatus) {
    let status = |verdict: &str, value: Option<f64>, message: Option<String>| MetricStatus {
        name: metric.name.clone(),
        value,
        threshold_range: metric.threshold_range.clone(),
        verdict: verdict.to_owned(),
        message,
    };
    let policy = no_data(metric.no_data);
    let counted = |why: &str| format!("{why} (noData: {})", policy_name(metric.no_data));
    match m {
        Measurement::Value(v) if v.is_finite() => match out_of_range(metric, *v) {
            None => (Verdict::Pass, status(verdicts::PASS, Some(*v), None)),
            Some(why) => (
                Verdict::Fail(why.clone()),
                status(verdicts::FAIL, Some(*v), Some(why)),
            ),
        },
        Measurement::Value(v) => (
            Verdict::NoData(policy),
            status(
                verdicts::NO_DATA,
                None,
                Some(counted(&format!("the value is {v}"))),
            ),
        ),
        Measurement::NoData(why) => (
            Verdict::NoData(policy),
            status(verdicts::NO_DATA, None, Some(counted(why))),
        ),
        Measurement::Error(why) => (
            Verdict::NoData(policy),
            status(verdicts::ERROR, None, Some(counted(why))),
        ),
    }
}

/// Why `v` is outside the metric's inclusive range, if it is.
fn out_of_range(metric: &Metric, v: f64) -> Option<String> {
    let range = &metric.threshold_range;
    if let Some(min) = range.min.filter(|min| v < *min) {
        return Some(format!("{} < min {}", beside(v, min), show(min)));
    }
    if let Some(max) = range.max.filter(|max| v > *max) {
        return Some(format!("{} > max {}", beside(v, max), show(max)));
    }
    None
}

/// A value as messages show it: rounded to at most 3 decimals (`66.667`, `99`, `0.001`).
pub fn show(v: f64) -> String {
    let rounded = format!("{v:.3}");
    rounded
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
}

/// `v` shown next to `bound`: in full where rounding would make them look equal
/// (`98.9999 < min 99`, not `99 < min 99`).
fn beside(v: f64, bound: f64) -> String {
    if show(v) == show(bound) {
        v.to_string()
    } else {
        show(v)
    }
}

fn no_data(policy: NoDataPolicy) -> NoData {
    match policy {
        NoDataPolicy::Fail => NoData::Fail,
        NoDataPolicy::Pass => NoData::Pass,
        NoDataPolicy::Skip => NoData::Skip,
    }
}

fn policy_name(policy: NoDataPolicy) -> &'static str {
    match policy {
        NoDataPolicy::Fail => "fail",
        NoDataPolicy::Pass => "pass",
        NoDataPolicy::Skip => "skip",
    }
}

#[cfg(test)]
mod tests {
    use smi_crds::trellis::canary::{REQUEST_SUCCESS_RATE, ThresholdRange};

    use super::*;

    fn success_rate(min: Option<f64>, max: Option<f64>, no_data: NoDataPolicy) -> Metric {
        Metric {
            name: REQUEST_SUCCESS_RATE.into(),
            threshold_range: ThresholdRange { min, max },
            no_data,
            ..Metric::default()
        }
    }

    fn status(verdict: &str, value: Option<f64>, message: Option<&str>) -> MetricStatus {
        MetricStatus {
            name: REQUEST_SUCCESS_RATE.into(),
            value,
            threshold_range: ThresholdRange {
                min: Some(99.0),
                max: None,
            },
            verdict: verdict.into(),
            message: message.map(Into::into),
        }
    }

    #[test]
    fn a_value_within_the_inclusive_range_passes() {
        let metric = success_rate(Some(99.0), None, NoDataPolicy::Fail);
        for v in [99.0, 99.5, 100.0] {
            assert_eq!(
                judge(&metric, &Measurement::Value(v)),
                (Verdict::Pass, status("Pass", Some(v), None))
            );
        }
        let both = success_rate(Some(1.0), Some(2.0), NoDataPolicy::Fail);
        assert_eq!(judge(&both, &Measurement::Value(2.0)).0, Verdict::Pass);
    }

    #[test]
    fn a_value_out_of_range_fails_naming_the_bound() {
        let metric = success_rate(Some(99.0), None, NoDataPolicy::Pass);
        assert_eq!(
            judge(&metric, &Measurement::Value(99.1 - 0.2)),
            (
                Verdict::Fail("98.9 < min 99".into()),
                status("Fail", Some(99.1 - 0.2), Some("98.9 < min 99"))
            )
        );
        let latency = success_rate(None, Some(500.0), NoDataPolicy::Fail);
        assert_eq!(
            judge(&latency, &Measurement::Value(512.25)).0,
            Verdict::Fail("512.25 > max 500".into())
        );
    }

    #[test]
    fn no_data_counts_as_the_policy_says_and_the_status_says_why() {
        for (policy, counted, name) in [
            (NoDataPolicy::Fail, NoData::Fail, "fail"),
            (NoDataPolicy::Pass, NoData::Pass, "pass"),
            (NoDataPolicy::Skip, NoData::Skip, "skip"),
        ] {
            let metric = success_rate(Some(99.0), None, policy);
            let why = "no requests to shop/api-v3 in the last 30s";
            assert_eq!(
                judge(&metric, &Measurement::NoData(why.into())),
                (
                    Verdict::NoData(counted),
                    status("NoData", None, Some(&format!("{why} (noData: {name})")))
                )
            );
        }
    }

    #[test]
    fn an_error_is_shown_as_such_and_counts_as_no_data_never_as_a_silent_pass() {
        let why = "Prometheus at http://prometheus:9090: cannot connect: connection refused";
        for (policy, counted, name) in [
            (NoDataPolicy::Fail, NoData::Fail, "fail"),
            (NoDataPolicy::Pass, NoData::Pass, "pass"),
            (NoDataPolicy::Skip, NoData::Skip, "skip"),
        ] {
            let metric = success_rate(Some(99.0), None, policy);
            assert_eq!(
                judge(&metric, &Measurement::Error(why.into())),
                (
                    Verdict::NoData(counted),
                    status("Error", None, Some(&format!("{why} (noData: {name})")))
                )
            );
        }
    }

    #[test]
    fn a_value_that_is_not_a_number_is_no_data() {
        let metric = success_rate(Some(99.0), None, NoDataPolicy::Fail);
        assert_eq!(
            judge(&metric, &Measurement::Value(f64::NAN)),
            (
                Verdict::NoData(NoData::Fail),
                status("NoData", None, Some("the value is NaN (noData: fail)"))
            )
        );
    }

    #[test]
    fn values_are_shown_short_but_not_rounded_onto_a_bound() {
        assert_eq!(show(99.0), "99");
        assert_eq!(show(200.0 / 3.0), "66.667");
        assert_eq!(show(0.001), "0.001");
        let metric = success_rate(Some(99.0), None, NoDataPolicy::Fail);
        assert_eq!(
            judge(&metric, &Measurement::Value(98.9999)).0,
            Verdict::Fail("98.9999 < min 99".into())
        );
    }
}
