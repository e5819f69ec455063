//! Retry budget: retries may add at most a share of the request rate (plus a floor per
//! second), counted over a sliding window, so a failing backend cannot be hit by a retry
//! storm (Linkerd's and Finagle's budget).

use std::time::{Duration, Instant};

use crate::config::RetryBudget;

const SLOTS: usize = 10;

/// Requests and retries over the last `window`, in `SLOTS` slots.
#[derive(Debug)]
pub struct Budget {
    settings: RetryBudget,
    started: Instant,
    /// (slot number, requests, retries)
    slots: [(u64, u64, u64); SLOTS],
}

impl Budget {
    pub fn new(settings: RetryBudget, now: Instant) -> Self {
        Self {
            settings,
            started: now,
            slots: [(0, 0, 0); SLOTS],
        }
    }

    pub fn settings(&self) -> RetryBudget {
        self.settings
    }

    fn slot_len(&self) -> Duration {
        (self.settings.window / SLOTS as u32).max(Duration::from_millis(1))
    }

    fn slot(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let n = (now.saturating_duration_since(self.started).as_nanos()
            / self.slot_len().as_nanos()) as u64;
        let slot = &mut self.slots[(n % SLOTS as u64) as usize];
        if slot.0 != n {
            *slot = (n, 0, 0);
        }
        slot
    }

    fn totals(&self, now: Instant) -> (u64, u64) {
        let n = (now.saturating_duration_since(self.started).as_nanos()
            / self.slot_len().as_nanos()) as u64;
        self.slots
            .iter()
            .filter(|s| s.0 + (SLOTS as u64) > n && s.0 <= n)
            .fold((0, 0), |(req, ret), s| (req + s.1, ret + s.2))
    }

    /// Counts a request (a first attempt).
    pub fn deposit(&mut self, now: Instant) {
        self.slot(now).1 += 1;
    }

    /// Takes permission for one retry, if the budget has room.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.totals(now);
        let floor = f64::from(self.settings.min_per_second) * self.settings.window.as_secs_f64();
        let allowed = floor + self.settings.ratio * requests as f64;
        if (retries as f64) < allowed {
            self.slot(now).2 += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(ratio: f64, min_per_second: u32) -> (Budget, Instant) {
        let now = Instant::now();
        let settings = RetryBudget {
            ratio,
            min_per_second,
            window: Duration::from_secs(10),
        };
        (Budget::new(settings, now), now)
    }

    #[test]
    fn retries_are_capped_at_a_share_of_requests() {
        let (mut b, now) = budget(0.2, 0);
        for _ in 0..100 {
            b.deposit(now);
        }
        let granted = (0..100).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_floor_allows_retries_at_low_traffic() {
        let (mut b, now) = budget(0.0, 1);
        b.deposit(now);
        let granted = (0..100).filter(|_| b.try_withdraw(now)).count();
        assert_eq!(granted, 10, "1 per second over a 10 s window");
    }

    #[test]
    fn old_requests_leave_the_window() {
        let (mut b, now) = budget(0.5, 0);
        for _ in 0..100 {
            b.deposit(now);
        }
        let later = now + Duration::from_secs(11);
        assert!(!b.try_withdraw(later), "requests 11 s ago no longer count");
    }
}
