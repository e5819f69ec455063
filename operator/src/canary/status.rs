//! A Canary's status from its run (pure): phase, weights, the last value of every metric,
//! a message and the `Ready` condition (`Accepted` and `ResolvedRefs` come from
//! [`crate::compile::conditions`], as for every resource).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use smi_crds::trellis::canary::{Canary, CanaryStatus, MetricStatus};

use super::machine::{Phase, State};
use super::split;

/// What the controller knows of a run.
pub struct RunView<'a> {
    pub state: &'a State,
    pub metrics: &'a [MetricStatus],
    pub last_transition: &'a Time,
    pub last_event: Option<&'a str>,
    /// Why the canary backend is not ready.
    pub waiting: Option<&'a str>,
}

/// The status of `canary`; `run` is `None` before its first tick; `conflict` says why its
/// split cannot be published.
pub fn of(canary: &Canary, run: Option<RunView<'_>>, conflict: Option<String>) -> CanaryStatus {
    let generation = canary.metadata.generation;
    let Some(run) = run else {
        return CanaryStatus {
            phase: Some(Phase::Initializing.as_str().into()),
            traffic_split: Some(split::split_name(canary)),
            observed_generation: generation,
            ..CanaryStatus::default()
        };
    };
    let state = run.state;
    let message = conflict.clone().or_else(|| match state.phase {
        Phase::Failed if !state.message.is_empty() => Some(state.message.clone()),
        Phase::Initializing | Phase::Progressing => run
            .waiting
            .map(str::to_owned)
            .or_else(|| run.last_event.map(str::to_owned)),
        _ => run.last_event.map(str::to_owned),
    });
    let (ready, reason) = match (&conflict, state.phase) {
        (Some(_), _) => (false, "Conflicted"),
        (None, Phase::Succeeded) => (true, "Succeeded"),
        (None, phase) => (false, phase.as_str()),
    };
    CanaryStatus {
        phase: Some(state.phase.as_str().into()),
        canary_weight: state.canary_weight,
        failed_checks: state.failed_checks,
        iterations: state.iterations,
        target: state.target.clone(),
        traffic_split: Some(split::split_name(canary)),
        metrics: run.metrics.to_vec(),
        message: message.clone(),
        last_transition_time: Some(run.last_transition.clone()),
        observed_generation: generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.unwrap_or_else(|| reason.to_owned()),
            observed_generation: generation,
            last_transition_time: run.last_transition.clone(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use smi_crds::trellis::canary::CanarySpec;

    use super::*;

    fn canary() -> Canary {
        Canary::new(
            "api",
            CanarySpec {
                service: "api".into(),
                stable: "api-v2".into(),
                canary: "api-v3".into(),
                ..CanarySpec::default()
            },
        )
    }

    fn time() -> Time {
        Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn a_failed_run_says_why_and_is_not_ready() {
        let state = State {
            phase: Phase::Failed,
            failed_checks: 3,
            target: Some("v3".into()),
            message: "3 failed checks: request-success-rate: 90 < min 99".into(),
            ..State::default()
        };
        let status = of(
            &canary(),
            Some(RunView {
                state: &state,
                metrics: &[],
                last_transition: &time(),
                last_event: Some("RolledBack"),
                waiting: None,
            }),
            None,
        );
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.failed_checks, 3);
        assert_eq!(status.target.as_deref(), Some("v3"));
        assert_eq!(
            status.message.as_deref(),
            Some("3 failed checks: request-success-rate: 90 < min 99")
        );
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].reason, "Failed");
    }

    #[test]
    fn a_progressing_run_waiting_for_its_backend_says_what_it_waits_for() {
        let state = State {
            phase: Phase::Progressing,
            canary_weight: 20,
            ..State::default()
        };
        let status = of(
            &canary(),
            Some(RunView {
                state: &state,
                metrics: &[],
                last_transition: &time(),
                last_event: Some("Started"),
                waiting: Some("Service shop/api-v3 has no ready workloads"),
            }),
            None,
        );
        assert_eq!(status.canary_weight, 20);
        assert_eq!(
            status.message.as_deref(),
            Some("Service shop/api-v3 has no ready workloads")
        );
    }

    #[test]
    fn a_conflicting_split_in_git_is_reported() {
        let state = State::default();
        let status = of(
            &canary(),
            Some(RunView {
                state: &state,
                metrics: &[],
                last_transition: &time(),
                last_event: None,
                waiting: None,
            }),
            Some("TrafficSplit shop/api comes from git".into()),
        );
        assert_eq!(status.conditions[0].reason, "Conflicted");
        assert_eq!(
            status.message.as_deref(),
            Some("TrafficSplit shop/api comes from git")
        );
    }
}
