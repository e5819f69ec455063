//! Balance: the chosen backend's concurrency limit, then the endpoint pick, then the
//! outcome fed back into latency estimates and outlier ejection.
//!
//! ```text
//! BackendChoice -> concurrency limit (503 at once) -> eligible endpoints (not ejected)
//!   -> pick (P2C peak-EWMA | round robin | least request | ring hash) -> connect
//!   -> latency sample, consecutive-failure count, ejection (capped share, growing time)
//! ```

mod endpoint;
mod pick;
mod ring;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use http::StatusCode;

use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::config::{Backend, Balancer};
use crate::connect::{Connect, EndpointAddr, EndpointIdentity};
use crate::outbound::{BackendChoice, Target};
use crate::telemetry::{BackendLabel, Metrics};
pub use endpoint::EndpointStats;
use ring::Ring;

/// (authority, backend name)
type BackendKey = (Arc<str>, String);

/// Per-backend and per-endpoint state, kept across config versions.
pub struct BalanceState {
    metrics: Arc<Metrics>,
    endpoints: RwLock<HashMap<SocketAddr, Arc<EndpointStats>>>,
    backends: RwLock<HashMap<BackendKey, Arc<BackendState>>>,
}

#[derive(Default)]
struct BackendState {
    in_flight: AtomicUsize,
    next: AtomicUsize,
    ring: Mutex<Option<(Vec<SocketAddr>, Arc<Ring>)>>,
}

impl BackendState {
    fn ring(&self, addrs: &[SocketAddr]) -> Arc<Ring> {
        let mut cached = self.ring.lock().expect("ring lock");
        match &*cached {
            Some((a, ring)) if a == addrs => ring.clone(),
            _ => {
                let ring = Arc::new(Ring::new(addrs));
                *cached = Some((addrs.to_vec(), ring.clone()));
                ring
            }
        }
    }
}

impl BalanceState {
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            metrics,
            endpoints: RwLock::default(),
            backends: RwLock::default(),
        })
    }

    fn endpoint(&self, addr: SocketAddr, now: Instant) -> Arc<EndpointStats> {
        if let Some(e) = self.endpoints.read().expect("endpoints lock").get(&addr) {
            return e.clone();
        }
        self.endpoints
            .write()
            .expect("endpoints lock")
            .entry(addr)
            .or_insert_with(|| Arc::new(EndpointStats::new(now)))
            .clone()
    }

    fn backend(&self, authority: &Arc<str>, name: &str) -> Arc<BackendState> {
        let key = (authority.clone(), name.to_owned());
        if let Some(b) = self.backends.read().expect("backends lock").get(&key) {
            return b.clone();
        }
        self.backends
            .write()
            .expect("backends lock")
            .entry(key)
            .or_default()
            .clone()
    }
}

/// Decrements a counter when the request ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Balance {
    connect: Connect,
    state: Arc<BalanceState>,
}

impl Balance {
    pub fn new(connect: Connect, state: Arc<BalanceState>) -> Self {
        Self { connect, state }
    }

    async fn handle(self, mut req: Req) -> Rsp {
        let Some(BackendChoice(backend)) = req.extensions().get::<BackendChoice>().cloned() else {
            return answer(
                &req,
                Failure::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                "no backend was chosen for the request",
            );
        };
        let authority: Arc<str> = req
            .extensions()
            .get::<Target>()
            .map_or_else(|| Arc::from(""), |t| t.authority.clone());
        let label = |endpoint| BackendLabel {
            backend: backend.name.clone(),
            endpoint,
        };
        let state = self.state.backend(&authority, &backend.name);
        let breaker = backend.circuit_breaker;
        let in_flight = state.in_flight.fetch_add(1, Ordering::Relaxed);
        let _backend_guard = InFlight(&state.in_flight);
        if let Some(max) = breaker.and_then(|b| b.max_concurrent_requests)
            && in_flight >= max as usize
        {
            let reason = format!(
                "backend {} of {authority} is at its limit of {max} concurrent requests",
                backend.name
            );
            let mut rsp = answer(
                &req,
                Failure::Overloaded,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                &reason,
            );
            rsp.extensions_mut().insert(label(None));
            return rsp;
        }
        let now = Instant::now();
        let stats: Vec<_> = backend
            .endpoints
            .iter()
            .map(|e| self.state.endpoint(e.address, now))
            .collect();
        let eligible: Vec<usize> = (0..stats.len())
            .filter(|i| !stats[*i].is_ejected(now))
            .collect();
        let Some(i) = self.pick(&backend, &state, &stats, &eligible, &req, now) else {
            let reason = if stats.is_empty() {
                format!("backend {} of {authority} has no endpoints", backend.name)
            } else {
                format!(
                    "all {} endpoints of backend {} of {authority} are ejected after failures",
                    stats.len(),
                    backend.name
                )
            };
            let mut rsp = answer(
                &req,
                Failure::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                &reason,
            );
            rsp.extensions_mut().insert(label(None));
            return rsp;
        };
        let addr = backend.endpoints[i].address;
        let endpoint = &stats[i];
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight(&endpoint.in_flight);
        req.extensions_mut().insert(EndpointAddr(addr));
        if let Some(id) = &backend.endpoints[i].identity {
            req.extensions_mut().insert(EndpointIdentity(id.clone()));
        }
        let start = Instant::now();
        let mut rsp = self.connect.send(req).await;
        drop(guard);
        let done = Instant::now();
        let failure = rsp.extensions().get::<Failure>().copied();
        if let Balancer::PeakEwma { decay } = backend.balancer {
            endpoint.observe_latency(done, done - start, decay);
        }
        if let Some(cb) = breaker {
            let failed = rsp.status().is_server_error()
                || matches!(failure, Some(Failure::Connect | Failure::Reset));
            let may_eject = || {
                let ejected = (0..stats.len())
                    .filter(|j| *j != i && stats[*j].is_ejected(done))
                    .count();
                may_eject(ejected, stats.len(), cb.max_ejection_ratio)
            };
            if let Some(time) = endpoint.record_outcome(done, failed, &cb, may_eject) {
                self.state
                    .metrics
                    .ejections
                    .with_label_values(&[&*authority, &*backend.name, &addr.to_string()])
                    .inc();
                eprintln!(
                    "trellis-proxy: ejected endpoint {addr} of backend {} of {authority} for {time:?} after {} consecutive failures",
                    backend.name, cb.consecutive_failures
                );
            }
        }
        rsp.extensions_mut().insert(label(Some(addr)));
        rsp
    }

    fn pick(
        &self,
        backend: &Backend,
        state: &BackendState,
        stats: &[Arc<EndpointStats>],
        eligible: &[usize],
        req: &Req,
        now: Instant,
    ) -> Option<usize> {
        match &backend.balancer {
            Balancer::PeakEwma { decay } => {
                pick::p2c(eligible, |i| stats[i].ewma_load(now, *decay))
            }
            Balancer::LeastRequest => pick::p2c(eligible, |i| {
                stats[i].in_flight.load(Ordering::Relaxed) as f64
            }),
            Balancer::RoundRobin => {
                pick::round_robin(eligible, state.next.fetch_add(1, Ordering::Relaxed))
            }
            Balancer::RingHash(key) => match pick::hash_key(key, req) {
                Some(key) => {
                    let addrs: Vec<_> = backend.endpoints.iter().map(|e| e.address).collect();
                    state.ring(&addrs).walk(&key).find(|i| eligible.contains(i))
                }
                None => pick::round_robin(eligible, fastrand::usize(..)),
            },
        }
    }
}

/// Whether one more endpoint may be ejected: at most `ratio` of them, but one of two or
/// more may always go (the last endpoint is never ejected unless the ratio is 100 %).
fn may_eject(already: usize, total: usize, ratio: f64) -> bool {
    let cap = ((total as f64) * ratio).floor() as usize;
    let cap = if total >= 2 { cap.max(1) } else { cap };
    already < cap
}

crate::http_service!(plain Balance);

#[cfg(test)]
mod tests {
    use super::may_eject;

    #[test]
    fn the_ejection_cap_keeps_endpoints_in_service() {
        assert!(may_eject(0, 2, 0.5));
        assert!(!may_eject(1, 2, 0.5));
        assert!(may_eject(0, 2, 0.1), "one of two may always go");
        assert!(!may_eject(0, 1, 0.5), "the only endpoint stays");
        assert!(may_eject(0, 1, 1.0));
        assert!(may_eject(4, 10, 0.5) && !may_eject(5, 10, 0.5));
    }
}
