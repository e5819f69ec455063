//! Local rate limit: a token bucket per destination and per route; past it, 429
//! (gRPC `RESOURCE_EXHAUSTED`). Buckets outlive config versions: a new version with the same
//! limit keeps the tokens already spent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::StatusCode;
use tower::layer::layer_fn;

use super::Target;
use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::config::RateLimit;
use crate::svc::{self, Http};

pub fn layer<S>() -> impl tower::Layer<S, Service = RateLimitService<S>> + Clone {
    let buckets = Buckets::default();
    layer_fn(move |inner| RateLimitService {
        inner,
        buckets: buckets.clone(),
    })
}

type Key = (Arc<str>, Option<Arc<str>>);

#[derive(Clone, Default)]
struct Buckets(Arc<Mutex<HashMap<Key, TokenBucket>>>);

impl Buckets {
    fn take(&self, key: Key, limit: RateLimit) -> bool {
        let now = Instant::now();
        let mut map = self.0.lock().expect("rate limit lock");
        map.entry(key)
            .and_modify(|b| b.reconfigure(limit, now))
            .or_insert_with(|| TokenBucket::new(limit, now))
            .try_take(now)
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    buckets: Buckets,
}

crate::http_service!(RateLimitService);

impl<S: Http> RateLimitService<S> {
    async fn handle(self, req: Req) -> Rsp {
        if let Some(target) = req.extensions().get::<Target>() {
            let limits = [
                (None, target.outbound.rate_limit),
                (Some(&*target.route.name), target.route.rate_limit),
            ];
            for (route, limit) in limits {
                let Some(limit) = limit else { continue };
                let key = (target.authority.clone(), route.map(Arc::from));
                if !self.buckets.take(key, limit) {
                    let scope = match route {
                        Some(r) => format!("route {r} of {}", target.authority),
                        None => target.authority.to_string(),
                    };
                    let reason = format!(
                        "rate limit of {scope} exceeded ({} requests/s, burst {})",
                        limit.per_second, limit.burst
                    );
                    return answer(
                        &req,
                        Failure::RateLimited,
                        StatusCode::TOO_MANY_REQUESTS,
                        grpc::RESOURCE_EXHAUSTED,
                        &reason,
                    );
                }
            }
        }
        svc::call(&self.inner, req).await
    }
}

/// Refills `per_second` tokens a second, holds at most `burst`.
#[derive(Debug)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            updated: now,
        }
    }

    fn reconfigure(&mut self, limit: RateLimit, now: Instant) {
        if self.limit != limit {
            self.refill(now);
            self.limit = limit;
            self.tokens = self.tokens.min(f64::from(limit.burst));
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(self.limit.per_second))
            .min(f64::from(self.limit.burst));
        self.updated = now;
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_passes_then_the_refill_rate_holds() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 10,
                burst: 5,
            },
            t0,
        );
        let burst = (0..20).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(burst, 5, "the burst, then nothing");
        let later = t0 + Duration::from_millis(500);
        let refilled = (0..20).filter(|_| bucket.try_take(later)).count();
        assert_eq!(refilled, 5, "half a second at 10/s");
    }
}
