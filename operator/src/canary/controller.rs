//! The canary controller: the adapter around the pure [`machine`](super::machine).
//!
//! ```text
//! every 250 ms and at every index change: index snapshot -> Canaries (valid ones, last good version in force)
//!   for each Canary whose analysis interval is due (the first tick at once):
//!     observe: version on the canary and stable backends (observe.rs)
//!     plan -> call the webhooks it names (hooks.rs), measure the metrics (metrics/)
//!     advance -> new state, weights, events
//!   publish the generated TrafficSplits as the index source `canary` (never in Git)
//!   keep each Canary's status (admin /status, `trellis status`) and save the runs
//!   (<data-dir>/canaries.json) so an operator restart resumes them where they were
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use smi_crds::Resource;
use smi_crds::trellis::canary::{Canary, CanaryStatus, MetricStatus};

use super::machine::{self, Decision, Hook, Observations, Phase, State};
use super::{hooks, observe, split, status};
use crate::index::{Index, ObjKey, Origin, Snapshot, SourceObject, Update};
use crate::metrics::Metrics;

/// How often the controller looks for due Canaries.
const GRANULARITY: Duration = Duration::from_millis(250);

/// Events kept per Canary for status.
const EVENTS_KEPT: usize = 20;

/// One Canary's view for the admin endpoint and `trellis status`.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryView {
    pub namespace: String,
    pub name: String,
    pub status: CanaryStatus,
    /// Newest last.
    pub events: Vec<Event>,
}

/// Shared with the admin endpoint.
pub type SharedViews = Arc<Mutex<Vec<CanaryView>>>;

/// A transition, as a Kubernetes Event would record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: Time,
    pub reason: String,
    pub message: String,
}

/// One Canary's run, kept over operator restarts.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    state: State,
    /// When the controller first saw the Canary: its split's creationTimestamp.
    created: Time,
    last_transition: Time,
    metrics: Vec<MetricStatus>,
    events: VecDeque<Event>,
    /// Why the canary backend is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    waiting: Option<String>,
    #[serde(skip)]
    next_due: Option<Instant>,
}

impl Run {
    fn new() -> Self {
        let now = now();
        Run {
            state: State::default(),
            created: now.clone(),
            last_transition: now,
            metrics: Vec::new(),
            events: VecDeque::new(),
            waiting: None,
            next_due: None,
        }
    }
}

pub struct Controller {
    index: Index,
    metrics: Arc<Metrics>,
    providers: super::metrics::Providers,
    runs: BTreeMap<ObjKey, Run>,
    views: SharedViews,
    saved: Option<PathBuf>,
    started: Instant,
    /// What was last published to the index.
    published: Option<Vec<String>>,
}

impl Controller {
    pub fn new(index: Index, metrics: Arc<Metrics>) -> Self {
        Controller {
            index,
            metrics,
            providers: super::metrics::Providers::default(),
            runs: BTreeMap::new(),
            views: SharedViews::default(),
            saved: None,
            started: Instant::now(),
            published: None,
        }
    }

    /// Keeps the runs in `path`, and resumes the runs saved there. Returns how many were
    /// restored. Call [`Controller::publish_restored`] before serving proxies.
    pub fn persist(mut self, path: PathBuf) -> (Self, usize) {
        let restored: BTreeMap<String, Run> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        let count = restored.len();
        for (key, run) in restored {
            if let Some((ns, name)) = key.split_once('/') {
                self.runs.insert(ObjKey::new(ns, name), run);
            }
        }
        self.saved = Some(path);
        (self, count)
    }

    pub fn views(&self) -> SharedViews {
        self.views.clone()
    }

    /// Publishes the restored runs' splits for the Canaries the index holds now, so that
    /// the first configs after a restart carry the weights in force before it.
    pub fn publish_restored(&mut self) {
        let snapshot = self.index.snapshot();
        self.publish(&snapshot);
    }

    /// Ticks every [`GRANULARITY`] and at every index change, so that a Canary committed
    /// to Git gets its split within the same moment (not up to a tick later), for example
    /// when the same commit removes the Git split it replaces.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(GRANULARITY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut changes = self.index.watch();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    changes.borrow_and_update();
                }
            }
            self.tick().await;
        }
    }

    /// Ticks every due Canary, then publishes splits and statuses.
    pub async fn tick(&mut self) {
        let snapshot = self.index.snapshot();
        let canaries = canaries(&snapshot);
        let before = self.runs.len();
        self.runs.retain(|key, _| canaries.contains_key(key));
        let mut changed = before != self.runs.len();

        let now = Instant::now();
        let due: Vec<ObjKey> = canaries
            .keys()
            .filter(|key| {
                self.runs
                    .get(*key)
                    .and_then(|r| r.next_due)
                    .is_none_or(|due| due <= now)
            })
            .cloned()
            .collect();
        if !due.is_empty() {
            let analysed: Vec<&Canary> = due.iter().map(|k| &canaries[k]).collect();
            self.providers
                .prepare(
                    &analysed,
                    &snapshot,
                    &super::metrics::admin_addresses(snapshot.workloads()),
                )
                .await;
            for key in &due {
                let canary = &canaries[key];
                self.tick_one(key, canary, &snapshot).await;
                let run = self.runs.get_mut(key).expect("ticked");
                run.next_due = Some(now + observe::interval(canary));
            }
            changed = true;
        }
        // Publishing is cheap when nothing changed (the index is only updated when the set
        // of splits or a weight differs), and a conflict that went away is noticed at once.
        self.publish(&snapshot);
        if changed {
            self.save();
        }
        self.refresh_views(&canaries);
    }

    async fn tick_one(&mut self, key: &ObjKey, canary: &Canary, snapshot: &Snapshot) {
        let spec = observe::spec(canary);
        let label = observe::target_label(canary);
        let reader = snapshot.reader();
        let backend = |name: &str| ObjKey::new(&key.namespace, name);
        let canary_version = observe::version(&reader, &backend(&canary.spec.canary), label);
        let stable_version = observe::version(&reader, &backend(&canary.spec.stable), label);
        let run = self.runs.entry(key.clone()).or_insert_with(Run::new);
        let state = run.state.clone();
        let plan = machine::plan(&spec, &state);

        let phase = state.phase.as_str();
        let target = canary_version.runs().map(str::to_owned);
        let mut seen = Observations {
            now: self.started.elapsed(),
            // Workloads that disagree keep the run's target: a rollout is not a new run.
            target: match &canary_version {
                observe::Version::Mixed(_) => state.target.clone(),
                _ => target.clone(),
            },
            stable_target: stable_version.runs().map(str::to_owned),
            canary_ready: target.is_some(),
            suspended: canary.spec.suspend,
            abort: canary.spec.abort,
            hooks: Vec::new(),
            metrics: Vec::new(),
        };
        if state.phase == Phase::Progressing && state.last_progress.is_zero() {
            // A run restored after a restart: its deadline counts from now.
            run.state.last_progress = seen.now;
        }
        let skip_checks = seen.suspended || seen.abort || seen.target != state.target;
        if !skip_checks && seen.canary_ready {
            let context = hooks::Context {
                name: &key.name,
                namespace: &key.namespace,
                phase,
                target: state.target.as_deref(),
                canary_weight: state.canary_weight,
            };
            for hook in &plan.hooks {
                let webhooks = &canary.spec.analysis.webhooks;
                if let Some(result) = hooks::run(webhooks, *hook, &context).await {
                    seen.hooks.push((*hook, result));
                }
            }
            if plan.metrics {
                let measured = self
                    .providers
                    .measure_all(canary, snapshot, state.target.as_deref())
                    .await;
                run.metrics = measured.iter().map(|(_, s)| s.clone()).collect();
                seen.metrics = measured
                    .into_iter()
                    .map(|(verdict, s)| (s.name, verdict))
                    .collect();
            }
        }
        run.waiting = canary_version.why_not(&backend(&canary.spec.canary));

        let (next, decisions) = machine::advance(&spec, &run.state, &seen);
        if next.phase != run.state.phase {
            run.last_transition = now();
        }
        if next.target != run.state.target {
            run.metrics.clear();
        }
        run.state = next;
        for decision in decisions {
            match decision {
                Decision::Weights { .. } => {}
                Decision::PostRollout => {
                    let webhooks = canary.spec.analysis.webhooks.clone();
                    let (name, namespace) = (key.name.to_string(), key.namespace.to_string());
                    let (phase, target, weight) = (
                        run.state.phase.as_str(),
                        run.state.target.clone(),
                        run.state.canary_weight,
                    );
                    tokio::spawn(async move {
                        let context = hooks::Context {
                            name: &name,
                            namespace: &namespace,
                            phase,
                            target: target.as_deref(),
                            canary_weight: weight,
                        };
                        if let Some(Err(why)) =
                            hooks::run(&webhooks, Hook::PostRollout, &context).await
                        {
                            eprintln!(
                                "trellis operator: Canary {namespace}/{name}: post-rollout webhook failed: {why}"
                            );
                        }
                    });
                }
                Decision::Event { reason, message } => {
                    eprintln!("trellis operator: Canary {key}: {reason}: {message}");
                    self.metrics
                        .canary_events
                        .with_label_values(&[&key.namespace, &key.name, reason])
                        .inc();
                    run.events.push_back(Event {
                        time: now(),
                        reason: reason.to_owned(),
                        message,
                    });
                    while run.events.len() > EVENTS_KEPT {
                        run.events.pop_front();
                    }
                }
            }
        }
        self.metrics
            .canary_weight
            .with_label_values(&[&key.namespace, &key.name])
            .set(i64::from(run.state.canary_weight));
    }

    /// Replaces the `canary` source in the index with one split per Canary, unless a
    /// split of that name comes from elsewhere (Git): the Canary then reports the conflict.
    fn publish(&mut self, snapshot: &Snapshot) {
        let canaries = canaries(snapshot);
        let mut objects = Vec::new();
        let mut names = Vec::new();
        for (key, canary) in &canaries {
            let Some(run) = self.runs.get(key) else {
                continue;
            };
            if conflict(snapshot, key, canary).is_some() {
                continue;
            }
            let ts = split::generated(canary, run.state.canary_weight, &run.created);
            // Everything the generated split is made of: a changed backend in Git
            // republishes it even when the weight stays.
            names.push(format!(
                "{key}:{}:{}:{}:{}:{}",
                split::split_name(canary),
                canary.spec.service,
                canary.spec.stable,
                canary.spec.canary,
                run.state.canary_weight
            ));
            objects.push(SourceObject::Resource(
                Box::new(Resource::TrafficSplit(ts)),
                Origin {
                    source: split::SOURCE.into(),
                    file: Some(format!("generated by Canary {key}")),
                    ..Origin::default()
                },
            ));
        }
        if self.published.as_ref() == Some(&names) {
            return;
        }
        self.published = Some(names);
        self.index.update(Update::Source {
            name: split::SOURCE.into(),
            objects,
        });
    }

    fn save(&self) {
        let Some(path) = &self.saved else { return };
        let runs: BTreeMap<String, &Run> =
            self.runs.iter().map(|(k, r)| (k.to_string(), r)).collect();
        let bytes = serde_json::to_vec_pretty(&runs).expect("runs serialize");
        let tmp = path.with_extension("json.tmp");
        if let Err(e) = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)) {
            eprintln!(
                "trellis operator: could not save canary runs to {}: {e}",
                path.display()
            );
        }
    }

    fn refresh_views(&self, canaries: &BTreeMap<ObjKey, Canary>) {
        let snapshot = self.index.snapshot();
        let views = canaries
            .iter()
            .map(|(key, canary)| {
                let run = self.runs.get(key);
                let status = status::of(
                    canary,
                    run.map(|r| status::RunView {
                        state: &r.state,
                        metrics: &r.metrics,
                        last_transition: &r.last_transition,
                        last_event: r.events.back().map(|e| e.message.as_str()),
                        waiting: r.waiting.as_deref(),
                    }),
                    conflict(&snapshot, key, canary),
                );
                CanaryView {
                    namespace: key.namespace.to_string(),
                    name: key.name.to_string(),
                    status,
                    events: run
                        .map(|r| r.events.iter().cloned().collect())
                        .unwrap_or_default(),
                }
            })
            .collect();
        *self.views.lock().expect("a views reader panicked") = views;
    }
}

/// The Canaries the index holds, by key (owned: ticks await).
fn canaries(snapshot: &Snapshot) -> BTreeMap<ObjKey, Canary> {
    snapshot
        .reader()
        .canaries()
        .into_iter()
        .map(|(key, canary)| (key.clone(), canary.clone()))
        .collect()
}

/// A TrafficSplit of the Canary's split name that does not come from the controller.
fn conflict(snapshot: &Snapshot, key: &ObjKey, canary: &Canary) -> Option<String> {
    let name = split::split_name(canary);
    snapshot
        .statuses()
        .into_iter()
        .find(|(r, s)| {
            r.kind == "TrafficSplit"
                && r.namespace.as_deref() == Some(&*key.namespace)
                && *r.name == *name
                && s.origin.source != split::SOURCE
        })
        .map(|(r, s)| {
            format!(
                "{r} comes from {}{}: the Canary generates and owns that split; delete it from Git or set spec.trafficSplit to another name",
                s.origin.source,
                s.origin
                    .file
                    .as_deref()
                    .map(|f| format!(" ({f})"))
                    .unwrap_or_default()
            )
        })
}

/// Now, in whole seconds: a `metav1.Time` is saved (canaries.json) and shown at that
/// precision, and a restored run must carry the very times it had (its split's
/// creationTimestamp decides which split without matches is in force).
fn now() -> Time {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    Time(
        k8s_openapi::jiff::Timestamp::from_second(secs as i64)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}
