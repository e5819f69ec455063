//! Change propagation: one change at a time through `Index::update`, and the time until
//! every watch it affects has received a config that carries it.
//!
//! ```text
//! t0 = update(change) ... flush returns (index applied, watches woken)   -> index_ms
//!                     ... first affected watch has the new config         -> first_ms
//!                     ... last affected watch has the new config          -> latency_ms
//! then `pause`: any push to a watch outside the affected set is counted (expected 0)
//! ```
//!
//! The affected set comes from the plan (what each watch asked for), not from the
//! server: an endpoint change reaches the watches of its Service and of the split roots
//! it is a backend of; a split's weights reach the watches of its root.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::mpsc;
use trellis_operator::index::{Index, Snapshot, SourceObject, Update};
use trellis_operator::metrics::Metrics;

use crate::mesh::{HTTP_PORT, Mesh, resource};
use crate::proxies::{Event, Plan, Seen, WatchId, Watched};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A workload registered, removed, or its readiness flipped.
    Endpoint,
    /// A TrafficSplit's weights changed.
    SplitWeights,
}

/// One measured change.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub kind: Kind,
    pub what: String,
    pub affected: usize,
    /// Update call -> the last affected watch received the new config.
    pub latency_ms: f64,
    /// Update call -> the first affected watch received it.
    pub first_ms: f64,
    /// Update call -> `Index::flush` returned (batch applied, listeners called).
    pub index_ms: f64,
    /// Affected watches that had not received it after the timeout.
    pub missed: usize,
    /// Pushes to watches outside the affected set.
    pub unaffected_pushes: usize,
    /// Further pushes to affected watches after the one carrying the change.
    pub extra_pushes: usize,
    /// Server-side recompiles (watches woken), pushed or not.
    pub recompiles: u64,
    /// This process's RSS after the change (and the pause).
    pub rss_mib: f64,
}

/// What each Service's endpoints are now (changes move them away from the generated mesh).
#[derive(Default)]
struct ServiceState {
    /// Ready endpoints.
    ready: usize,
    /// Added workloads still registered (all ready).
    extras: Vec<usize>,
    next_extra: usize,
    not_ready: HashSet<usize>,
    removed: HashSet<usize>,
}

pub struct Driver<'a> {
    pub mesh: &'a Mesh,
    pub plan: &'a Plan,
    pub index: Index,
    pub metrics: Arc<Metrics>,
    pub events: &'a mut mpsc::UnboundedReceiver<Event>,
    pub timeout: Duration,
    pub pause: Duration,
    rng: fastrand::Rng,
    services: HashMap<usize, ServiceState>,
    weights: HashMap<usize, u32>,
    endpoint_services: Vec<usize>,
    roots: Vec<usize>,
    endpoint_changes: usize,
    /// Pushes that arrived between two changes (none expected).
    pub stray_pushes: usize,
    /// The snapshot of every revision the changes made: alive at the end means someone
    /// still holds it (and the tables it alone has copied).
    pub revisions: Vec<Weak<Snapshot>>,
}

/// What an affected watch must see.
enum Expect {
    /// The backend of Service `service` holds `count` endpoints.
    Endpoints { service: usize, count: usize },
    /// The default route's weights.
    Weights(Vec<(String, u32)>),
}

impl<'a> Driver<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mesh: &'a Mesh,
        plan: &'a Plan,
        index: Index,
        metrics: Arc<Metrics>,
        events: &'a mut mpsc::UnboundedReceiver<Event>,
        timeout: Duration,
        pause: Duration,
        seed: u64,
    ) -> Self {
        let mut endpoint_services: Vec<usize> = plan.by_endpoints.keys().copied().collect();
        endpoint_services.sort_unstable();
        let mut roots: Vec<usize> = plan.by_split_root.keys().copied().collect();
        roots.sort_unstable();
        Driver {
            mesh,
            plan,
            index,
            metrics,
            events,
            timeout,
            pause,
            rng: fastrand::Rng::with_seed(seed ^ 0x5eed),
            services: HashMap::new(),
            weights: HashMap::new(),
            endpoint_services,
            roots,
            endpoint_changes: 0,
            stray_pushes: 0,
            revisions: Vec::new(),
        }
    }

    /// Whether the plan has watches that a change of `kind` can reach.
    pub fn can(&self, kind: Kind) -> bool {
        match kind {
            Kind::Endpoint => !self.endpoint_services.is_empty(),
            Kind::SplitWeights => !self.roots.is_empty(),
        }
    }

    /// Makes one change of `kind` and measures it.
    pub async fn run(&mut self, kind: Kind) -> Sample {
        while self.events.try_recv().is_ok() {
            self.stray_pushes += 1;
        }
        let (update, affected, expect, what) = match kind {
            Kind::Endpoint => self.endpoint_change(),
            Kind::SplitWeights => self.split_change(),
        };
        let affected_set: HashSet<WatchId> = affected.iter().copied().collect();
        let recompiles_before = recompiles(&self.metrics);
        let index = self.index.clone();

        let t0 = Instant::now();
        index.update(update);
        let flushed = tokio::spawn(async move {
            index.flush().await;
            Instant::now()
        });
        let mut got: HashMap<WatchId, Instant> = HashMap::new();
        let mut sample = Sample {
            kind,
            what,
            affected: affected.len(),
            latency_ms: 0.0,
            first_ms: 0.0,
            index_ms: 0.0,
            missed: 0,
            unaffected_pushes: 0,
            extra_pushes: 0,
            recompiles: 0,
            rss_mib: 0.0,
        };
        let deadline = tokio::time::Instant::from_std(t0 + self.timeout);
        while got.len() < affected.len() {
            let Ok(Some(event)) = tokio::time::timeout_at(deadline, self.events.recv()).await
            else {
                break;
            };
            if !affected_set.contains(&event.watch) {
                sample.unaffected_pushes += 1;
                continue;
            }
            match got.entry(event.watch) {
                Entry::Occupied(_) => sample.extra_pushes += 1,
                Entry::Vacant(slot) => {
                    if carries(self.mesh, self.plan, event.watch, &event.seen, &expect) {
                        slot.insert(event.at);
                    }
                }
            }
        }
        sample.missed = affected.len() - got.len();
        let ms = |at: Instant| at.duration_since(t0).as_secs_f64() * 1e3;
        sample.latency_ms = got.values().max().map_or(0.0, |at| ms(*at));
        sample.first_ms = got.values().min().map_or(0.0, |at| ms(*at));

        // The pause: whatever arrives now is a push nobody should have had.
        let settle = tokio::time::Instant::now() + self.pause;
        while let Ok(Some(event)) = tokio::time::timeout_at(settle, self.events.recv()).await {
            if affected_set.contains(&event.watch) {
                sample.extra_pushes += 1;
            } else {
                sample.unaffected_pushes += 1;
            }
        }
        sample.index_ms = flushed.await.map_or(0.0, ms);
        sample.recompiles = recompiles(&self.metrics) - recompiles_before;
        self.revisions.push(Arc::downgrade(&self.index.snapshot()));
        sample.rss_mib = crate::sys::memory().rss_mib;
        sample
    }

    /// Registers a workload, removes one, or flips one's readiness, in turn.
    fn endpoint_change(&mut self) -> (Update, Vec<WatchId>, Expect, String) {
        let s = self.endpoint_services[self.rng.usize(..self.endpoint_services.len())];
        let eps = self.mesh.endpoints_per_service;
        let turn = self.endpoint_changes % 3;
        self.endpoint_changes += 1;
        let state = self.services.entry(s).or_insert_with(|| ServiceState {
            ready: eps,
            ..ServiceState::default()
        });
        // Base workload 0 may be a proxy: leave it alone. Keep two endpoints at least.
        let removable: Vec<usize> = (1..eps)
            .filter(|k| !state.removed.contains(k) && !state.not_ready.contains(k))
            .collect();
        let flippable: Vec<usize> = (1..eps).filter(|k| !state.removed.contains(k)).collect();
        let mesh = self.mesh;
        let (update, what) = match turn {
            1 if state.ready > 2 && (!state.extras.is_empty() || !removable.is_empty()) => {
                let k = match state.extras.pop() {
                    Some(k) => k,
                    None => {
                        let k = removable[self.rng.usize(..removable.len())];
                        state.removed.insert(k);
                        k
                    }
                };
                state.ready -= 1;
                let key = mesh.workload(s, k).key;
                (
                    Update::RemoveWorkload(key.clone()),
                    format!("remove workload {key}"),
                )
            }
            2 if !flippable.is_empty() => {
                let k = flippable[self.rng.usize(..flippable.len())];
                let mut w = mesh.workload(s, k);
                if state.not_ready.remove(&k) {
                    state.ready += 1;
                } else if state.ready > 2 {
                    state.not_ready.insert(k);
                    state.ready -= 1;
                    w.ready = false;
                } else {
                    // Too few left to take one away: nothing else to flip back.
                    return self.add(s);
                }
                let what = format!("workload {} ready={}", w.key, w.ready);
                (Update::Workload(w), what)
            }
            _ => return self.add(s),
        };
        let count = self.services[&s].ready;
        (
            update,
            self.plan.by_endpoints[&s].clone(),
            Expect::Endpoints { service: s, count },
            what,
        )
    }

    fn add(&mut self, s: usize) -> (Update, Vec<WatchId>, Expect, String) {
        let state = self.services.get_mut(&s).expect("made by endpoint_change");
        let k = self.mesh.endpoints_per_service + state.next_extra;
        state.next_extra += 1;
        state.extras.push(k);
        state.ready += 1;
        let w = self.mesh.workload(s, k);
        let what = format!("register workload {}", w.key);
        (
            Update::Workload(w),
            self.plan.by_endpoints[&s].clone(),
            Expect::Endpoints {
                service: s,
                count: state.ready,
            },
            what,
        )
    }

    fn split_change(&mut self) -> (Update, Vec<WatchId>, Expect, String) {
        let root = self.roots[self.rng.usize(..self.roots.len())];
        let backends = self.mesh.split_backends(root).expect("a root");
        let current = *self.weights.get(&root).unwrap_or(&90);
        let mut weight = current;
        while weight == current {
            weight = self.rng.u32(1..100);
        }
        self.weights.insert(root, weight);
        let split = self.mesh.traffic_split(root, backends, weight);
        let name = |b: usize| format!("{}:{HTTP_PORT}", self.mesh.service_key(b));
        let expect = Expect::Weights(vec![
            (name(backends[0]), weight),
            (name(backends[1]), 100 - weight),
        ]);
        let what = format!(
            "TrafficSplit {}-rollout {}/{}",
            self.mesh.service_key(root),
            weight,
            100 - weight
        );
        let update: Update = Update::Apply(match resource(split) {
            o @ SourceObject::Resource(..) => o,
            _ => unreachable!("resource() makes resources"),
        });
        (update, self.plan.by_split_root[&root].clone(), expect, what)
    }
}

/// Whether a config received on `watch` carries the change.
fn carries(mesh: &Mesh, plan: &Plan, watch: WatchId, seen: &Seen, expect: &Expect) -> bool {
    let Seen::Outbound {
        weights, endpoints, ..
    } = seen
    else {
        return false;
    };
    match expect {
        Expect::Weights(want) => weights == want,
        Expect::Endpoints { service, count } => {
            let port = match &plan.watches[watch as usize].watched {
                Watched::Outbound {
                    service: s, port, ..
                } if s == service => *port,
                _ => HTTP_PORT,
            };
            let name = format!("{}:{port}", mesh.service_key(*service));
            endpoints.iter().any(|(n, c)| *n == name && c == count)
        }
    }
}

fn recompiles(metrics: &Metrics) -> u64 {
    let mut total = 0;
    for kind in ["inbound", "outbound"] {
        for result in ["pushed", "unchanged"] {
            total += metrics.compiles.with_label_values(&[kind, result]).get();
        }
    }
    total
}

/// p50, p99 and max of a list (nearest rank).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Quantiles {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Quantiles {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return Quantiles::default();
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Quantiles {
            p50: at(0.5),
            p99: at(0.99),
            max: v[v.len() - 1],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// Every change of one kind, summed up.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub kind: Kind,
    pub changes: usize,
    pub latency_ms: Quantiles,
    pub first_ms: Quantiles,
    pub index_ms: Quantiles,
    pub affected: Quantiles,
    pub affected_total: usize,
    pub missed: usize,
    pub unaffected_pushes: usize,
    pub extra_pushes: usize,
    pub recompiles_per_change: f64,
}

impl Summary {
    pub fn of(kind: Kind, samples: &[Sample]) -> Summary {
        let mine: Vec<&Sample> = samples.iter().filter(|s| s.kind == kind).collect();
        Summary {
            kind,
            changes: mine.len(),
            latency_ms: Quantiles::of(mine.iter().map(|s| s.latency_ms)),
            first_ms: Quantiles::of(mine.iter().map(|s| s.first_ms)),
            index_ms: Quantiles::of(mine.iter().map(|s| s.index_ms)),
            affected: Quantiles::of(mine.iter().map(|s| s.affected as f64)),
            affected_total: mine.iter().map(|s| s.affected).sum(),
            missed: mine.iter().map(|s| s.missed).sum(),
            unaffected_pushes: mine.iter().map(|s| s.unaffected_pushes).sum(),
            extra_pushes: mine.iter().map(|s| s.extra_pushes).sum(),
            recompiles_per_change: mine.iter().map(|s| s.recompiles as f64).sum::<f64>()
                / mine.len().max(1) as f64,
        }
    }
}
