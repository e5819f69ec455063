//! Retry: a failed attempt is sent again, up to the route's attempt limit, when its outcome
//! matches a retry condition, the retry budget has room and the request body could be kept
//! for replay: the first attempt streams the body while a copy of up to
//! `max_replay_body_bytes` is kept, so streaming requests are never held back, and only a
//! body sent in full within the bound is sent again. Each attempt may have its own
//! timeout; attempts are spaced by a jittered exponential backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use tower::layer::layer_fn;

use super::budget::Budget;
use super::{Target, is_upgrade};
use crate::answer::{Failure, grpc_status_in_headers};
use crate::body::{Recording, Replay, Req, Rsp};
use crate::config::{Backoff, Retry, RetryOn};
use crate::svc::{self, Http};
use crate::telemetry::Metrics;

pub fn layer<S>(metrics: Arc<Metrics>) -> impl tower::Layer<S, Service = RetryService<S>> + Clone {
    let budgets = Budgets::default();
    layer_fn(move |inner| RetryService {
        inner,
        budgets: budgets.clone(),
        metrics: metrics.clone(),
    })
}

/// (authority, route name)
type RouteKey = (Arc<str>, Arc<str>);

#[derive(Clone, Default)]
struct Budgets(Arc<Mutex<HashMap<RouteKey, Budget>>>);

impl Budgets {
    fn with<T>(&self, target: &Target, retry: &Retry, f: impl FnOnce(&mut Budget) -> T) -> T {
        let key = (target.authority.clone(), target.route.name.clone());
        let now = Instant::now();
        let mut map = self.0.lock().expect("budget lock");
        let budget = map
            .entry(key)
            .or_insert_with(|| Budget::new(retry.budget, now));
        if budget.settings() != retry.budget {
            *budget = Budget::new(retry.budget, now);
        }
        f(budget)
    }
}

#[derive(Clone)]
pub struct RetryService<S> {
    inner: S,
    budgets: Budgets,
    metrics: Arc<Metrics>,
}

crate::http_service!(RetryService);

impl<S: Http> RetryService<S> {
    async fn handle(self, req: Req) -> Rsp {
        let target = req.extensions().get::<Target>().cloned();
        let (Some(target), false) = (target, is_upgrade(&req)) else {
            return svc::call(&self.inner, req).await;
        };
        let Some(retry) = target.route.retry.clone().filter(|r| r.attempts > 1) else {
            return svc::call(&self.inner, req).await;
        };
        let skipped = |reason: &str| {
            self.metrics
                .retries_skipped
                .with_label_values(&[&*target.authority, &*target.route.name, reason])
                .inc();
        };
        self.budgets
            .with(&target, &retry, |b| b.deposit(Instant::now()));
        let (parts, body) = req.into_parts();
        let (body, capture) = Recording::start(body, retry.max_replay_body_bytes);
        let mut rsp = self
            .attempt(Req::from_parts(parts.clone(), body), &retry)
            .await;
        let mut attempt = 1;
        while attempt < retry.attempts && should_retry(&retry, &rsp) {
            let replay = match capture.lock().expect("capture lock").replay() {
                Ok(replay) => replay,
                Err(why) => {
                    skipped(why.as_str());
                    return rsp;
                }
            };
            if !self
                .budgets
                .with(&target, &retry, |b| b.try_withdraw(Instant::now()))
            {
                skipped("budget");
                return rsp;
            }
            drop(rsp);
            tokio::time::sleep(backoff(retry.backoff, attempt)).await;
            self.metrics
                .retries
                .with_label_values(&[&*target.authority, &*target.route.name])
                .inc();
            attempt += 1;
            rsp = self.attempt(rebuild(&parts, &replay), &retry).await;
        }
        rsp
    }

    async fn attempt(&self, req: Req, retry: &Retry) -> Rsp {
        let Some(per_try) = retry.per_try_timeout else {
            return svc::call(&self.inner, req).await;
        };
        super::timeout::within(per_try, "attempt", &self.inner, req).await
    }
}

fn rebuild(parts: &http::request::Parts, replay: &Replay) -> Req {
    let mut req = Req::new(replay.body());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    *req.extensions_mut() = parts.extensions.clone();
    req
}

/// Whether an attempt's outcome is one the route retries.
pub fn should_retry(retry: &Retry, rsp: &Rsp) -> bool {
    let status = rsp.status();
    if retry.statuses.contains(&status) {
        return true;
    }
    if let Some(code) = grpc_status_in_headers(rsp.headers())
        && retry.grpc_codes.contains(&code)
    {
        return true;
    }
    let failure = rsp.extensions().get::<Failure>().copied();
    retry.on.iter().any(|on| match on {
        RetryOn::ServerError => {
            status.is_server_error() && failure != Some(Failure::Overloaded)
                || failure == Some(Failure::Connect)
                || failure == Some(Failure::Reset)
        }
        RetryOn::GatewayError => {
            matches!(status.as_u16(), 502..=504) && failure != Some(Failure::Overloaded)
        }
        RetryOn::Reset => failure == Some(Failure::Reset) || failure == Some(Failure::Timeout),
        RetryOn::ConnectFailure => failure == Some(Failure::Connect),
        RetryOn::Retriable4xx => status == StatusCode::CONFLICT,
    })
}

/// Full-jitter exponential backoff: a random wait up to `base * 2^(attempt-1)`, capped.
fn backoff(backoff: Backoff, attempt: u32) -> Duration {
    let ceiling = backoff
        .base
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(backoff.max);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use crate::config::RetryBudget;

    fn mk_retry(on: Vec<RetryOn>) -> Retry {
        Retry {
            attempts: 3,
            per_try_timeout: None,
            on,
            statuses: vec![],
            grpc_codes: vec![14],
            backoff: Backoff {
                base: Duration::from_millis(10),
                max: Duration::from_millis(100),
            },
            budget: RetryBudget {
                ratio: 0.2,
                min_per_second: 10,
                window: Duration::from_secs(10),
            },
            max_replay_body_bytes: 1024,
        }
    }

    fn mk_rsp(status: u16) -> Rsp {
        let mut rsp = Rsp::new(body::empty());
        *rsp.status_mut() = StatusCode::from_u16(status).unwrap();
        rsp
    }

    #[test]
    fn gateway_errors_are_retried_but_not_500() {
        let retry = mk_retry(vec![RetryOn::GatewayError]);
        assert!(should_retry(&retry, &mk_rsp(503)));
        assert!(!should_retry(&retry, &mk_rsp(500)));
        assert!(!should_retry(&retry, &mk_rsp(200)));
    }

    #[test]
    fn a_grpc_code_in_a_trailers_only_answer_is_retried() {
        let retry = mk_retry(vec![]);
        let mut rsp = mk_rsp(200);
        rsp.headers_mut()
            .insert("grpc-status", "14".parse().unwrap());
        assert!(should_retry(&retry, &rsp));
        rsp.headers_mut()
            .insert("grpc-status", "5".parse().unwrap());
        assert!(!should_retry(&retry, &rsp));
    }

    #[test]
    fn a_concurrency_limit_answer_is_not_retried() {
        let retry = mk_retry(vec![RetryOn::ServerError]);
        let mut rsp = mk_rsp(503);
        rsp.extensions_mut().insert(Failure::Overloaded);
        assert!(!should_retry(&retry, &rsp));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(50),
        };
        for _ in 0..100 {
            assert!(backoff(b, 1) <= Duration::from_millis(10));
            assert!(backoff(b, 10) <= Duration::from_millis(50));
        }
    }
}
