//! The canary state machine: pure, one call per analysis interval.
//!
//! ```text
//! adapter: plan(spec, state, now) -> which webhooks and metrics to run this tick
//!          run them, read the target revision and the canary's readiness
//!          advance(spec, state, observations) -> new state + decisions (weights, events)
//! ```
//!
//! The order of checks within a tick follows Flagger: abort and suspend first, then a
//! changed canary target (restart from weight 0), readiness against the progress deadline,
//! the rollback webhook, the failed-check threshold, then (at weight 0) the pre-rollout
//! webhooks, then the rollout webhooks and metrics, and only when all held a step forward
//! or, at the last step, the confirm-promotion webhooks and promotion.
//! Weights: with `stepWeight`, canary += step while canary < maxWeight; with
//! `stepWeights`, the next listed weight, maxWeight being the last one; promotion sends
//! everything to the canary backend; once the stable backend runs the promoted target (the
//! new stable committed to Git), traffic goes back to it (`Finalized`).

use std::time::Duration;

/// What the Canary's `analysis` says (already validated).
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Failed checks (cumulative over a run) before rolling back.
    pub threshold: u32,
    pub steps: Steps,
    /// How long the canary may make no progress (not ready) before the run fails.
    pub progress_deadline: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Steps {
    /// `stepWeight` up to `maxWeight`.
    Linear { step: u32, max: u32 },
    /// `stepWeights`: each weight in turn; the last is the max.
    Listed(Vec<u32>),
    /// `iterations` (blue/green): checks at weight 0, then promotion.
    Iterations(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    /// No run yet: waiting for a canary target.
    Initializing,
    Progressing,
    /// Checks passed at the last step; waiting for confirm-promotion webhooks.
    WaitingPromotion,
    Succeeded,
    Failed,
}

/// Where a run is. Starts as `State::default()`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct State {
    pub phase: Phase,
    /// Weight on the canary backend (the stable backend has `100 - canary_weight`).
    pub canary_weight: u32,
    pub failed_checks: u32,
    /// Ticks with all checks passed in this run (blue/green iterations).
    pub iterations: u32,
    /// The canary target the run is about (a revision or digest of the canary backend).
    pub target: Option<String>,
    /// Whether the pre-rollout webhooks passed for this run.
    pub pre_rollout_done: bool,
    /// When the run last made progress (the adapter's clock; not kept over a restart).
    #[serde(skip)]
    pub last_progress: Duration,
    /// Why the last run failed, for status.
    pub message: String,
}

impl Default for State {
    fn default() -> Self {
        State {
            phase: Phase::Initializing,
            canary_weight: 0,
            failed_checks: 0,
            iterations: 0,
            target: None,
            pre_rollout_done: false,
            last_progress: Duration::ZERO,
            message: String::new(),
        }
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Initializing => "Initializing",
            Phase::Progressing => "Progressing",
            Phase::WaitingPromotion => "WaitingPromotion",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

impl State {
    pub fn stable_weight(&self) -> u32 {
        100 - self.canary_weight
    }
}

/// The webhooks a Canary may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    PreRollout,
    Rollout,
    ConfirmPromotion,
    PostRollout,
    Rollback,
}

/// What to run this tick, decided by [`plan`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub hooks: Vec<Hook>,
    pub metrics: bool,
}

/// A metric's outcome this tick.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass,
    Fail(String),
    /// No data, under the metric's no-data policy.
    NoData(NoData),
}

/// What a metric without data counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoData {
    Fail,
    Pass,
    Skip,
}

/// Everything the adapter observed this tick.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observations {
    pub now: Duration,
    /// The current canary target (`None`: the canary backend is gone).
    pub target: Option<String>,
    /// What the stable backend runs (the same label); after a promotion, the stable
    /// backend running the promoted target sends the traffic back to it.
    pub stable_target: Option<String>,
    /// The canary backend has ready endpoints.
    pub canary_ready: bool,
    pub suspended: bool,
    pub abort: bool,
    /// Results of the hooks [`plan`] asked for: `Ok` passed, `Err` failed (error or timeout).
    pub hooks: Vec<(Hook, Result<(), String>)>,
    /// Results of the metrics, by name.
    pub metrics: Vec<(String, Verdict)>,
}

/// What the adapter must do after a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Set the generated TrafficSplit's weights (stable, canary).
    Weights { stable: u32, canary: u32 },
    /// Call the post-rollout webhooks (the run ended).
    PostRollout,
    /// An event for the Canary (reason, message).
    Event {
        reason: &'static str,
        message: String,
    },
}

/// Which hooks and metrics the next tick needs.
pub fn plan(spec: &Spec, state: &State) -> Plan {
    match state.phase {
        Phase::Progressing => {
            let mut hooks = vec![Hook::Rollback];
            if state.pre_rollout_done {
                hooks.push(Hook::Rollout);
            } else {
                hooks.push(Hook::PreRollout);
            }
            if at_last_step(spec, state) {
                hooks.push(Hook::ConfirmPromotion);
            }
            Plan {
                hooks,
                metrics: state.pre_rollout_done,
            }
        }
        Phase::WaitingPromotion => Plan {
            hooks: vec![Hook::Rollback, Hook::ConfirmPromotion],
            metrics: false,
        },
        Phase::Initializing | Phase::Succeeded | Phase::Failed => Plan::default(),
    }
}

/// Whether checks passing now lead to promotion rather than another step.
fn at_last_step(spec: &Spec, state: &State) -> bool {
    match &spec.steps {
        Steps::Linear { max, .. } => state.canary_weight >= *max,
        Steps::Listed(list) => list.last().is_none_or(|last| state.canary_weight >= *last),
        Steps::Iterations(n) => state.iterations + 1 >= *n,
    }
}

/// One tick: the new state and what to do.
pub fn advance(spec: &Spec, state: &State, seen: &Observations) -> (State, Vec<Decision>) {
    let mut next = state.clone();
    let mut out = Vec::new();
    let hook = |h: Hook| seen.hooks.iter().find(|(k, _)| *k == h).map(|(_, r)| r);

    if seen.suspended {
        return (next, out);
    }
    // Abort rolls a run back, and starts none while it stays set.
    if seen.abort {
        if matches!(state.phase, Phase::Progressing | Phase::WaitingPromotion) {
            return fail(next, out, "aborted (spec.abort)".into());
        }
        return (next, out);
    }
    // A new canary target starts a run; a change mid-run restarts it from weight 0.
    if seen.target.is_some() && seen.target != state.target {
        let restarted = matches!(state.phase, Phase::Progressing | Phase::WaitingPromotion);
        next = State {
            phase: Phase::Progressing,
            target: seen.target.clone(),
            last_progress: seen.now,
            ..State::default()
        };
        out.push(Decision::Weights {
            stable: 100,
            canary: 0,
        });
        out.push(Decision::Event {
            reason: if restarted { "Restarted" } else { "Started" },
            message: format!(
                "{} canary target {}: analysis starts at weight 0",
                if restarted { "new" } else { "" },
                seen.target.as_deref().unwrap_or_default()
            )
            .trim_start()
            .to_owned(),
        });
        return (next, out);
    }
    if state.phase == Phase::Succeeded
        && state.canary_weight == 100
        && seen.stable_target.is_some()
        && seen.stable_target == state.target
    {
        next.canary_weight = 0;
        out.push(weights(&next));
        out.push(Decision::Event {
            reason: "Finalized",
            message: format!(
                "the stable backend runs {}: traffic back on it, the canary backend is free for the next version",
                state.target.as_deref().unwrap_or_default()
            ),
        });
        return (next, out);
    }
    if !matches!(state.phase, Phase::Progressing | Phase::WaitingPromotion) {
        return (next, out);
    }
    if let Some(Ok(())) = hook(Hook::Rollback) {
        return fail(
            next,
            out,
            "the rollback webhook asked for a rollback".into(),
        );
    }
    if !seen.canary_ready {
        if seen.now.saturating_sub(state.last_progress) > spec.progress_deadline {
            return fail(
                next,
                out,
                format!(
                    "no progress within the progress deadline ({:?}): the canary has no ready endpoints",
                    spec.progress_deadline
                ),
            );
        }
        return (next, out);
    }
    next.last_progress = seen.now;

    if state.phase == Phase::WaitingPromotion {
        match hook(Hook::ConfirmPromotion) {
            Some(Err(why)) => {
                out.push(Decision::Event {
                    reason: "WaitingPromotion",
                    message: format!("confirm-promotion webhook: {why}"),
                });
                return (next, out);
            }
            _ => return promote(next, out),
        }
    }

    // Checks: at the start of a run the pre-rollout hooks (no traffic on the canary yet,
    // so no metrics), later the rollout hooks and every metric.
    let at_start = !state.pre_rollout_done;
    let mut failures = Vec::new();
    if at_start {
        if let Some(Err(why)) = hook(Hook::PreRollout) {
            failures.push(format!("pre-rollout webhook: {why}"));
        }
    } else {
        if let Some(Err(why)) = hook(Hook::Rollout) {
            failures.push(format!("rollout webhook: {why}"));
        }
        for (name, verdict) in &seen.metrics {
            match verdict {
                Verdict::Fail(why) => failures.push(format!("{name}: {why}")),
                Verdict::NoData(NoData::Fail) => {
                    failures.push(format!("{name}: no data (noData: fail)"));
                }
                Verdict::Pass | Verdict::NoData(NoData::Pass | NoData::Skip) => {}
            }
        }
    }
    if !failures.is_empty() {
        next.failed_checks += 1;
        let message = failures.join("; ");
        if next.failed_checks >= spec.threshold {
            let message = format!("{} failed checks: {message}", next.failed_checks);
            return fail(next, out, message);
        }
        out.push(Decision::Event {
            reason: "CheckFailed",
            message: format!(
                "check failed ({} of {} allowed): {message}",
                next.failed_checks, spec.threshold
            ),
        });
        return (next, out);
    }
    next.pre_rollout_done = true;

    // All checks held: promotion at the last step, else a step forward.
    if !at_start && at_last_step(spec, state) {
        if let Some(Err(why)) = hook(Hook::ConfirmPromotion) {
            next.phase = Phase::WaitingPromotion;
            out.push(Decision::Event {
                reason: "WaitingPromotion",
                message: format!("confirm-promotion webhook: {why}"),
            });
            return (next, out);
        }
        return promote(next, out);
    }
    match &spec.steps {
        Steps::Linear { step, .. } => {
            next.canary_weight = (state.canary_weight + step).min(100);
            out.push(weights(&next));
        }
        Steps::Listed(list) => {
            if let Some(w) = list.iter().find(|w| **w > state.canary_weight) {
                next.canary_weight = (*w).min(100);
                out.push(weights(&next));
            }
        }
        Steps::Iterations(n) => {
            if !at_start {
                next.iterations += 1;
                out.push(Decision::Event {
                    reason: "Advanced",
                    message: format!("checks passed: iteration {} of {n}", next.iterations),
                });
            }
        }
    }
    if next.canary_weight != state.canary_weight {
        out.push(Decision::Event {
            reason: "Advanced",
            message: format!("checks passed: canary weight {} %", next.canary_weight),
        });
    }
    (next, out)
}

fn weights(state: &State) -> Decision {
    Decision::Weights {
        stable: state.stable_weight(),
        canary: state.canary_weight,
    }
}

fn promote(mut next: State, mut out: Vec<Decision>) -> (State, Vec<Decision>) {
    next.phase = Phase::Succeeded;
    next.canary_weight = 100;
    out.push(weights(&next));
    out.push(Decision::Event {
        reason: "Succeeded",
        message: "promotion: all traffic on the canary backend; commit it as the new stable".into(),
    });
    out.push(Decision::PostRollout);
    (next, out)
}

fn fail(mut next: State, mut out: Vec<Decision>, message: String) -> (State, Vec<Decision>) {
    next.phase = Phase::Failed;
    next.canary_weight = 0;
    next.message = message.clone();
    out.push(weights(&next));
    out.push(Decision::Event {
        reason: "RolledBack",
        message,
    });
    out.push(Decision::PostRollout);
    (next, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(steps: Steps) -> Spec {
        Spec {
            threshold: 3,
            steps,
            progress_deadline: Duration::from_secs(60),
        }
    }

    /// The adapter's side of a tick: every planned hook passes unless `hooks` says
    /// otherwise, every metric gets `metric`.
    struct Run {
        spec: Spec,
        state: State,
        now: Duration,
        target: String,
        ready: bool,
        /// Stable weight after each tick.
        stable: Vec<u32>,
        events: Vec<String>,
    }

    impl Run {
        fn new(steps: Steps) -> Run {
            Run {
                spec: spec(steps),
                state: State::default(),
                now: Duration::ZERO,
                target: "web-v2@1".into(),
                ready: true,
                stable: Vec::new(),
                events: Vec::new(),
            }
        }

        fn tick_with(&mut self, hooks: &[(Hook, Result<(), String>)], metric: Verdict) {
            self.now += Duration::from_secs(10);
            let plan = plan(&self.spec, &self.state);
            let seen = Observations {
                now: self.now,
                target: Some(self.target.clone()),
                canary_ready: self.ready,
                hooks: plan
                    .hooks
                    .iter()
                    .map(|h| {
                        hooks.iter().find(|(k, _)| k == h).cloned().unwrap_or((
                            *h,
                            if *h == Hook::Rollback {
                                Err("no".into())
                            } else {
                                Ok(())
                            },
                        ))
                    })
                    .collect(),
                metrics: if plan.metrics {
                    vec![("request-success-rate".into(), metric)]
                } else {
                    Vec::new()
                },
                ..Observations::default()
            };
            let (state, decisions) = advance(&self.spec, &self.state, &seen);
            for d in decisions {
                if let Decision::Event { reason, message } = d {
                    self.events.push(format!("{reason}: {message}"));
                }
            }
            self.state = state;
            self.stable.push(self.state.stable_weight());
        }

        fn tick(&mut self) {
            self.tick_with(&[], Verdict::Pass);
        }

        fn until_done(&mut self) {
            for _ in 0..20 {
                self.tick();
                if matches!(self.state.phase, Phase::Succeeded | Phase::Failed) {
                    return;
                }
            }
            panic!("the run never ended: {:?}", self.stable);
        }
    }

    #[test]
    fn step_weight_20_up_to_50_then_promotion() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 50 });
        run.until_done();
        assert_eq!(run.stable, vec![100, 80, 60, 40, 0]);
        assert_eq!(run.state.phase, Phase::Succeeded);
    }

    #[test]
    fn step_weight_50_up_to_100() {
        let mut run = Run::new(Steps::Linear { step: 50, max: 100 });
        run.until_done();
        assert_eq!(run.stable, vec![100, 50, 0, 0]);
        assert_eq!(run.state.phase, Phase::Succeeded);
    }

    #[test]
    fn listed_step_weights_in_turn() {
        let mut run = Run::new(Steps::Listed(vec![1, 2, 10, 80]));
        run.until_done();
        assert_eq!(run.stable, vec![100, 99, 98, 90, 20, 0]);
        assert_eq!(run.state.phase, Phase::Succeeded);
    }

    #[test]
    fn a_failing_metric_rolls_back_after_the_third_failed_check() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 50 });
        run.tick(); // started
        run.tick(); // pre-rollout passed: 20 % on the canary
        for _ in 0..3 {
            run.tick_with(&[], Verdict::Fail("99.1 % < 99.5 %".into()));
        }
        assert_eq!(run.stable, vec![100, 80, 80, 80, 100]);
        assert_eq!(run.state.phase, Phase::Failed);
        assert_eq!(run.state.failed_checks, 3);
        assert!(
            run.state
                .message
                .contains("request-success-rate: 99.1 % < 99.5 %"),
            "{}",
            run.state.message
        );
    }

    #[test]
    fn failed_checks_count_over_the_whole_run() {
        let mut run = Run::new(Steps::Linear { step: 10, max: 90 });
        run.tick();
        run.tick();
        run.tick_with(&[], Verdict::Fail("slow".into()));
        run.tick();
        run.tick_with(&[], Verdict::Fail("slow".into()));
        run.tick();
        assert_eq!(run.state.phase, Phase::Progressing);
        run.tick_with(&[], Verdict::Fail("slow".into()));
        assert_eq!(run.state.phase, Phase::Failed, "3 failures, not in a row");
    }

    #[test]
    fn a_new_canary_target_mid_run_restarts_from_weight_0() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 80 });
        run.tick();
        run.tick();
        run.tick();
        assert_eq!(run.state.canary_weight, 40);
        run.target = "web-v2@2".into();
        run.tick();
        assert_eq!(run.state.canary_weight, 0);
        assert_eq!(run.state.failed_checks, 0);
        assert!(
            run.events
                .last()
                .unwrap()
                .starts_with("Restarted: new canary target web-v2@2")
        );
    }

    #[test]
    fn no_data_counts_as_its_policy_says() {
        for (policy, failed) in [(NoData::Fail, 1), (NoData::Pass, 0), (NoData::Skip, 0)] {
            let mut run = Run::new(Steps::Linear { step: 20, max: 80 });
            run.tick();
            run.tick();
            run.tick_with(&[], Verdict::NoData(policy));
            assert_eq!(run.state.failed_checks, failed, "{policy:?}");
            let advanced = run.state.canary_weight == 40;
            assert_eq!(advanced, failed == 0, "{policy:?}: {:?}", run.stable);
        }
    }

    #[test]
    fn a_failing_or_timed_out_webhook_is_a_failed_check() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 80 });
        run.tick();
        run.tick_with(
            &[(Hook::PreRollout, Err("timed out after 5s".into()))],
            Verdict::Pass,
        );
        assert_eq!(run.state.failed_checks, 1);
        assert_eq!(
            run.state.canary_weight, 0,
            "no traffic before pre-rollout passes"
        );
        run.tick();
        assert_eq!(run.state.canary_weight, 20);
        run.tick_with(&[(Hook::Rollout, Err("500".into()))], Verdict::Pass);
        assert_eq!(run.state.failed_checks, 2);
        assert_eq!(run.state.canary_weight, 20);
    }

    #[test]
    fn promotion_waits_for_the_confirm_promotion_webhook() {
        let mut run = Run::new(Steps::Linear { step: 50, max: 50 });
        run.tick();
        run.tick();
        let no = [(Hook::ConfirmPromotion, Err("not yet".into()))];
        run.tick_with(&no, Verdict::Pass);
        assert_eq!(run.state.phase, Phase::WaitingPromotion);
        run.tick_with(&no, Verdict::Pass);
        assert_eq!(run.state.phase, Phase::WaitingPromotion);
        assert_eq!(run.state.failed_checks, 0, "waiting is not failing");
        run.tick();
        assert_eq!(run.state.phase, Phase::Succeeded);
        assert_eq!(run.stable, vec![100, 50, 50, 50, 0]);
    }

    #[test]
    fn no_progress_past_the_deadline_fails_the_run() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 80 });
        run.tick();
        run.tick();
        run.ready = false;
        for _ in 0..6 {
            run.tick();
        }
        assert_eq!(
            run.state.phase,
            Phase::Progressing,
            "60 s is not past the deadline"
        );
        run.tick();
        assert_eq!(run.state.phase, Phase::Failed);
        assert_eq!(run.state.stable_weight(), 100);
        assert!(run.state.message.contains("progress deadline"));
    }

    #[test]
    fn abort_rolls_back_at_once_and_suspend_freezes() {
        let mut run = Run::new(Steps::Linear { step: 20, max: 80 });
        run.tick();
        run.tick();
        let seen = Observations {
            now: Duration::from_secs(100),
            target: Some(run.target.clone()),
            canary_ready: true,
            suspended: true,
            ..Observations::default()
        };
        let (frozen, decisions) = advance(&run.spec, &run.state, &seen);
        assert_eq!(frozen, run.state);
        assert!(decisions.is_empty());
        let seen = Observations {
            suspended: false,
            abort: true,
            ..seen
        };
        let (aborted, _) = advance(&run.spec, &run.state, &seen);
        assert_eq!(aborted.phase, Phase::Failed);
        assert_eq!(aborted.stable_weight(), 100);
    }

    #[test]
    fn abort_starts_no_run_until_it_is_cleared() {
        let spec = spec(Steps::Linear { step: 20, max: 80 });
        let seen = Observations {
            now: Duration::from_secs(10),
            target: Some("v3".into()),
            canary_ready: true,
            abort: true,
            ..Observations::default()
        };
        let (state, decisions) = advance(&spec, &State::default(), &seen);
        assert_eq!(state.phase, Phase::Initializing);
        assert!(decisions.is_empty());
        let cleared = Observations {
            abort: false,
            ..seen
        };
        let (state, _) = advance(&spec, &state, &cleared);
        assert_eq!(state.phase, Phase::Progressing);
    }

    #[test]
    fn after_promotion_the_stable_backend_running_the_target_takes_the_traffic_back() {
        let mut run = Run::new(Steps::Linear { step: 50, max: 50 });
        run.until_done();
        assert_eq!(run.state.canary_weight, 100);
        let seen = |stable: &str| Observations {
            now: Duration::from_secs(100),
            target: Some(run.target.clone()),
            stable_target: Some(stable.into()),
            canary_ready: true,
            ..Observations::default()
        };
        let (state, decisions) = advance(&run.spec, &run.state, &seen("web-v1"));
        assert_eq!(
            state.canary_weight, 100,
            "the stable still runs the old version"
        );
        assert!(decisions.is_empty());
        let (state, decisions) = advance(&run.spec, &run.state, &seen("web-v2@1"));
        assert_eq!(state.phase, Phase::Succeeded);
        assert_eq!(state.stable_weight(), 100);
        assert_eq!(
            decisions[0],
            Decision::Weights {
                stable: 100,
                canary: 0
            }
        );
    }

    #[test]
    fn blue_green_iterations_check_at_weight_0_then_switch() {
        let mut run = Run::new(Steps::Iterations(3));
        run.until_done();
        assert_eq!(run.stable, vec![100, 100, 100, 100, 0]);
    }
}
