//! The builtin provider's memory: what every proxy had counted at each scrape, so that a
//! metric with window W counts from the scrape taken at or just before `now - W` to the
//! latest one, proxy by proxy.
//!
//! ```text
//! scrape at t1         t2         t3 (now)        window W: now - W lies between t1 and t2
//!  proxy a  120 ------ 150 ------ 190             a: 190 - 120 = 70    (start: t1 <= now-W)
//!  proxy b    - ------  40 ------  45             b:  45 -  40 =  5    (first seen after now-W)
//!  proxy c  300 ------  10 ------  30             c:  30            (went down: restarted,
//!                                                                      counted from 0)
//!  proxy d   80 ------  95 ------   -             d:  95 -  80 = 15    (gone: its last sample)
//! ```
//!
//! As Prometheus' `rate` works per series, the deltas are taken per proxy (keyed by its
//! admin address) and only then summed: a proxy that disappears or restarts does not look
//! like a counter reset of the sum.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// What one proxy counted for the requests it sent to one backend Service (all its ports)
/// since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    pub success: f64,
    pub failure: f64,
    /// Cumulative counts of `trellis_request_duration_seconds` by upper bound (`le`, in
    /// seconds), ascending, `+Inf` last.
    pub buckets: Vec<(f64, f64)>,
}

impl Totals {
    pub fn requests(&self) -> f64 {
        self.success + self.failure
    }

    /// Adds `other`'s counts (bucket by bucket).
    pub fn add(&mut self, other: &Totals) {
        self.success += other.success;
        self.failure += other.failure;
        for &(le, count) in &other.buckets {
            self.add_bucket(le, count);
        }
    }

    pub fn add_bucket(&mut self, le: f64, count: f64) {
        match self.buckets.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += count,
            None => {
                self.buckets.push((le, count));
                self.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
        }
    }

    /// The counts between `earlier` and `self`; a count that went down means the proxy
    /// restarted in between, and then everything is counted from 0.
    pub fn since(&self, earlier: &Totals) -> Totals {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c)
        };
        let restarted = self.success < earlier.success
            || self.failure < earlier.failure
            || self.buckets.iter().any(|&(le, c)| c < before(le));
        if restarted {
            return self.clone();
        }
        Totals {
            success: self.success - earlier.success,
            failure: self.failure - earlier.failure,
            buckets: self
                .buckets
                .iter()
                .map(|&(le, c)| (le, c - before(le)))
                .collect(),
        }
    }
}

/// One scrape: every proxy that answered, with its totals by backend Service
/// (`namespace/name`). A proxy that answered without counting anything for a backend has
/// zero for it (its series are created at the first request).
pub type Scraped = BTreeMap<SocketAddr, BTreeMap<String, Totals>>;

/// The scrapes of the last `retention` (and the one just before it).
#[derive(Clone, Debug)]
pub struct History {
    scrapes: VecDeque<(Duration, Scraped)>,
    retention: Duration,
}

impl History {
    /// Keeps what windows up to `retention` need.
    pub fn new(retention: Duration) -> Self {
        Self {
            scrapes: VecDeque::new(),
            retention,
        }
    }

    /// Keeps enough for windows up to `window` from now on.
    pub fn retain_at_least(&mut self, window: Duration) {
        self.retention = self.retention.max(window);
    }

    /// When the latest scrape was taken.
    pub fn latest(&self) -> Option<Duration> {
        self.scrapes.back().map(|(at, _)| *at)
    }

    /// Records a scrape taken at `at` (later than the previous ones) and forgets the
    /// scrapes no window needs any more.
    pub fn record(&mut self, at: Duration, scraped: Scraped) {
        self.scrapes.push_back((at, scraped));
        let cutoff = at.saturating_sub(self.retention);
        while self.scrapes.get(1).is_some_and(|(t, _)| *t <= cutoff) {
            self.scrapes.pop_front();
        }
    }

    /// What every proxy counted for `backend` (`namespace/name`) over the `window` up to
    /// the latest scrape, summed; `None` before the first scrape.
    pub fn over(&self, backend: &str, window: Duration) -> Option<Totals> {
        let now = self.latest()?;
        let from = now.saturating_sub(window);
        // Per proxy: its last sample so far, and what it counted since `from`, scrape to
        // scrape (a restart between two scrapes loses only what the old process counted
        // after the earlier one, as with Prometheus' `rate`).
        let mut proxies: BTreeMap<SocketAddr, (Totals, Totals)> = BTreeMap::new();
        for (at, scraped) in &self.scrapes {
            for (proxy, backends) in scraped {
                let totals = backends.get(backend).cloned().unwrap_or_default();
                match proxies.get_mut(proxy) {
                    Some((last, counted)) => {
                        if *at > from {
                            counted.add(&totals.since(last));
                        }
                        *last = totals;
                    }
                    None => {
                        proxies.insert(*proxy, (totals, Totals::default()));
                    }
                }
            }
        }
        let mut sum = Totals::default();
        for (_, counted) in proxies.values() {
            sum.add(counted);
        }
        Some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKEND: &str = "shop/api-v3";

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn proxy(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 4191))
    }

    fn counted(success: f64, failure: f64) -> Totals {
        Totals {
            success,
            failure,
            buckets: vec![(0.1, success), (f64::INFINITY, success + failure)],
        }
    }

    /// A scrape where each proxy counted `(success, failure)` for [`BACKEND`].
    fn scrape(proxies: &[(u8, f64, f64)]) -> Scraped {
        proxies
            .iter()
            .map(|&(n, s, f)| {
                (
                    proxy(n),
                    BTreeMap::from([(BACKEND.to_owned(), counted(s, f))]),
                )
            })
            .collect()
    }

    fn history(scrapes: &[(u64, Scraped)]) -> History {
        let mut history = History::new(secs(600));
        for (at, scraped) in scrapes {
            history.record(secs(*at), scraped.clone());
        }
        history
    }

    #[test]
    fn the_window_starts_at_the_scrape_at_or_just_before_now_minus_the_window() {
        let h = history(&[
            (0, scrape(&[(1, 100.0, 0.0)])),
            (10, scrape(&[(1, 120.0, 1.0)])),
            (20, scrape(&[(1, 150.0, 1.0)])),
            (30, scrape(&[(1, 190.0, 3.0)])),
        ]);
        assert_eq!(
            h.over(BACKEND, secs(10)),
            Some(counted(40.0, 2.0)),
            "from t=20"
        );
        assert_eq!(
            h.over(BACKEND, secs(20)),
            Some(counted(70.0, 2.0)),
            "from t=10"
        );
        assert_eq!(
            h.over(BACKEND, secs(15)),
            Some(counted(70.0, 2.0)),
            "t=15: from t=10"
        );
        assert_eq!(
            h.over(BACKEND, secs(25)),
            Some(counted(90.0, 3.0)),
            "from t=0"
        );
    }

    #[test]
    fn proxies_seen_late_gone_early_or_restarted_count_per_proxy() {
        let h = history(&[
            (
                0,
                scrape(&[(1, 120.0, 0.0), (3, 300.0, 0.0), (4, 80.0, 0.0)]),
            ),
            (
                10,
                scrape(&[
                    (1, 150.0, 0.0),
                    (2, 40.0, 0.0),
                    (3, 10.0, 0.0),
                    (4, 95.0, 0.0),
                ]),
            ),
            (
                20,
                scrape(&[(1, 190.0, 0.0), (2, 45.0, 0.0), (3, 30.0, 0.0)]),
            ),
        ]);
        // a: 190 - 120; b (first seen at t=10): 45 - 40; c (restarted before t=10, counted
        // from 0 there): 10 + 20; d (gone): 95 - 80.
        assert_eq!(
            h.over(BACKEND, secs(20)).unwrap().success,
            70.0 + 5.0 + 30.0 + 15.0
        );
    }

    #[test]
    fn what_a_proxy_counted_before_it_restarted_in_the_window_is_kept() {
        let h = history(&[
            (0, scrape(&[(1, 300.0, 0.0)])),
            (10, scrape(&[(1, 350.0, 0.0)])),
            (20, scrape(&[(1, 10.0, 0.0)])),
            (30, scrape(&[(1, 30.0, 0.0)])),
        ]);
        assert_eq!(
            h.over(BACKEND, secs(30)).unwrap().success,
            50.0 + 10.0 + 20.0
        );
    }

    #[test]
    fn a_proxy_without_series_for_the_backend_counted_zero() {
        let mut h = history(&[(0, BTreeMap::from([(proxy(1), BTreeMap::new())]))]);
        h.record(secs(10), scrape(&[(1, 3.0, 1.0)]));
        assert_eq!(h.over(BACKEND, secs(10)), Some(counted(3.0, 1.0)));
    }

    #[test]
    fn nothing_before_the_first_scrape_and_nothing_counted_with_one_scrape() {
        assert_eq!(History::new(secs(60)).over(BACKEND, secs(30)), None);
        let h = history(&[(0, scrape(&[(1, 100.0, 5.0)]))]);
        assert_eq!(h.over(BACKEND, secs(30)).unwrap().requests(), 0.0);
    }

    #[test]
    fn a_window_longer_than_the_history_counts_from_the_oldest_scrape() {
        let h = history(&[
            (0, scrape(&[(1, 10.0, 0.0)])),
            (5, scrape(&[(1, 30.0, 0.0)])),
        ]);
        assert_eq!(h.over(BACKEND, secs(60)).unwrap().success, 20.0);
    }

    #[test]
    fn scrapes_older_than_the_retention_are_forgotten_but_the_window_start_is_kept() {
        let mut h = History::new(secs(30));
        for t in (0..=100).step_by(10) {
            h.record(secs(t), scrape(&[(1, t as f64, 0.0)]));
        }
        assert_eq!(h.scrapes.len(), 4, "70 (at now - 30), 80, 90, 100");
        assert_eq!(h.over(BACKEND, secs(30)).unwrap().success, 30.0);
        h.retain_at_least(secs(60));
        h.record(secs(110), scrape(&[(1, 110.0, 0.0)]));
        assert_eq!(h.scrapes.len(), 5);
    }

    #[test]
    fn deltas_are_taken_bucket_by_bucket() {
        let earlier = Totals {
            success: 5.0,
            failure: 0.0,
            buckets: vec![(0.1, 4.0), (f64::INFINITY, 5.0)],
        };
        let later = Totals {
            success: 9.0,
            failure: 1.0,
            buckets: vec![(0.05, 1.0), (0.1, 7.0), (f64::INFINITY, 10.0)],
        };
        assert_eq!(
            later.since(&earlier),
            Totals {
                success: 4.0,
                failure: 1.0,
                buckets: vec![(0.05, 1.0), (0.1, 3.0), (f64::INFINITY, 5.0)],
            }
        );
    }
}
