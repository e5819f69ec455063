//! What the proxy knows about one endpoint: its peak-EWMA latency, requests in flight, and
//! outlier-ejection state. Kept by address, so it survives config versions.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::CircuitBreaker;

/// Latency assumed for an endpoint never measured.
pub const DEFAULT_RTT: Duration = Duration::from_millis(30);

#[derive(Debug)]
pub struct EndpointStats {
    pub in_flight: AtomicUsize,
    health: Mutex<Health>,
}

#[derive(Debug)]
struct Health {
    /// Peak-EWMA round-trip estimate, in nanoseconds.
    rtt_ns: f64,
    updated: Instant,
    consecutive_failures: u32,
    ejected_until: Option<Instant>,
    /// How many times in a row the endpoint has been ejected (ejection time doubles).
    ejections: u32,
}

impl EndpointStats {
    pub fn new(now: Instant) -> Self {
        Self {
            in_flight: AtomicUsize::new(0),
            health: Mutex::new(Health {
                rtt_ns: DEFAULT_RTT.as_nanos() as f64,
                updated: now,
                consecutive_failures: 0,
                ejected_until: None,
                ejections: 0,
            }),
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().expect("endpoint health lock")
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.health().ejected_until.is_some_and(|until| now < until)
    }

    /// The peak-EWMA load: the latency estimate (decayed since the last sample) times the
    /// requests in flight plus one.
    pub fn ewma_load(&self, now: Instant, decay: Duration) -> f64 {
        let h = self.health();
        let elapsed = now.saturating_duration_since(h.updated).as_secs_f64();
        let estimate = h.rtt_ns * (-elapsed / decay.as_secs_f64()).exp();
        estimate * (self.in_flight.load(Ordering::Relaxed) + 1) as f64
    }

    /// Adds a latency sample: a slower sample replaces the estimate at once (peak), a
    /// faster one moves it by the decay since the last sample.
    pub fn observe_latency(&self, now: Instant, rtt: Duration, decay: Duration) {
        let mut h = self.health();
        let sample = rtt.as_nanos() as f64;
        let elapsed = now.saturating_duration_since(h.updated).as_secs_f64();
        if sample > h.rtt_ns {
            h.rtt_ns = sample;
        } else {
            let w = (-elapsed / decay.as_secs_f64()).exp();
            h.rtt_ns = h.rtt_ns * w + sample * (1.0 - w);
        }
        h.updated = now;
    }

    /// Records an outcome for outlier detection. Returns the ejection time when this
    /// failure ejects the endpoint; `may_eject` says whether the backend's cap on ejected
    /// endpoints leaves room.
    pub fn record_outcome(
        &self,
        now: Instant,
        failed: bool,
        breaker: &CircuitBreaker,
        may_eject: impl FnOnce() -> bool,
    ) -> Option<Duration> {
        let mut h = self.health();
        if !failed {
            h.consecutive_failures = 0;
            if let Some(until) = h.ejected_until
                && now >= until + breaker.max_ejection
            {
                // Healthy for a long while after its last ejection: start over.
                h.ejections = 0;
                h.ejected_until = None;
            }
            return None;
        }
        h.consecutive_failures += 1;
        let currently_ejected = h.ejected_until.is_some_and(|until| now < until);
        if breaker.consecutive_failures == 0
            || h.consecutive_failures < breaker.consecutive_failures
            || currently_ejected
            || !may_eject()
        {
            return None;
        }
        let factor = 1u32 << h.ejections.min(16);
        let time = breaker
            .base_ejection
            .saturating_mul(factor)
            .min(breaker.max_ejection);
        h.ejections += 1;
        h.ejected_until = Some(now + time);
        h.consecutive_failures = 0;
        Some(time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(3),
            max_ejection_ratio: 0.5,
            max_concurrent_requests: None,
        }
    }

    #[test]
    fn consecutive_failures_eject_for_a_growing_capped_time() {
        let t = Instant::now();
        let e = EndpointStats::new(t);
        let cb = breaker();
        let fail = |at| e.record_outcome(at, true, &cb, || true);
        assert_eq!(fail(t), None);
        assert_eq!(fail(t), None);
        assert_eq!(fail(t), Some(Duration::from_secs(1)));
        assert!(e.is_ejected(t));
        assert!(!e.is_ejected(t + Duration::from_secs(1)), "readmitted");
        let t2 = t + Duration::from_secs(2);
        for _ in 0..2 {
            fail(t2);
        }
        assert_eq!(fail(t2), Some(Duration::from_secs(2)), "doubled");
        let t3 = t2 + Duration::from_secs(3);
        for _ in 0..2 {
            fail(t3);
        }
        assert_eq!(fail(t3), Some(Duration::from_secs(3)), "capped at max");
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let t = Instant::now();
        let e = EndpointStats::new(t);
        let cb = breaker();
        e.record_outcome(t, true, &cb, || true);
        e.record_outcome(t, true, &cb, || true);
        e.record_outcome(t, false, &cb, || true);
        assert_eq!(e.record_outcome(t, true, &cb, || true), None);
    }

    #[test]
    fn the_cap_on_ejected_endpoints_is_respected() {
        let t = Instant::now();
        let e = EndpointStats::new(t);
        let cb = breaker();
        for _ in 0..10 {
            assert_eq!(e.record_outcome(t, true, &cb, || false), None);
        }
        assert!(!e.is_ejected(t));
    }

    #[test]
    fn a_slow_endpoint_costs_more_and_its_cost_decays_when_idle() {
        let t = Instant::now();
        let decay = Duration::from_secs(10);
        let fast = EndpointStats::new(t);
        let slow = EndpointStats::new(t);
        // A faster sample moves the estimate by the time since the last one...
        let t1 = t + Duration::from_secs(30);
        fast.observe_latency(t1, Duration::from_millis(1), decay);
        // ...a slower one replaces it at once (the peak).
        slow.observe_latency(t1, Duration::from_millis(100), decay);
        assert!(fast.ewma_load(t1, decay) < 3e6, "close to 1 ms");
        assert!(slow.ewma_load(t1, decay) >= 100e6);
        let later = t1 + Duration::from_secs(60);
        assert!(slow.ewma_load(later, decay) < slow.ewma_load(t1, decay) / 100.0);
    }
}
