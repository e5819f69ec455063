//! Split: the weighted choice of a backend among the route's backends (TrafficSplit).

use http::StatusCode;
use tower::layer::layer_fn;

use super::{BackendChoice, Target};
use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::svc::{self, Http};

pub fn layer<S>() -> impl tower::Layer<S, Service = Split<S>> + Clone {
    layer_fn(|inner| Split { inner })
}

#[derive(Clone)]
pub struct Split<S> {
    inner: S,
}

crate::http_service!(Split);

impl<S: Http> Split<S> {
    async fn handle(self, mut req: Req) -> Rsp {
        let Some(target) = req.extensions().get::<Target>().cloned() else {
            return svc::call(&self.inner, req).await;
        };
        let weights: Vec<u32> = target.route.backends.iter().map(|(_, w)| *w).collect();
        let Some(i) = pick_weighted(&weights, fastrand::u64(..)) else {
            let reason = if target.route.unavailable_reason.is_empty() {
                format!(
                    "route {} of {} has no backend with a weight above 0",
                    target.route.name, target.authority
                )
            } else {
                target.route.unavailable_reason.clone()
            };
            return answer(
                &req,
                Failure::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                &reason,
            );
        };
        let backend = target.route.backends[i].0.clone();
        req.extensions_mut().insert(BackendChoice(backend));
        svc::call(&self.inner, req).await
    }
}

/// The index chosen by `random` among `weights`, each index with probability
/// weight / total; `None` when every weight is 0.
pub fn pick_weighted(weights: &[u32], random: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut point = random % total;
    for (i, w) in weights.iter().enumerate() {
        let w = u64::from(*w);
        if point < w {
            return Some(i);
        }
        point -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::pick_weighted;

    #[test]
    fn each_backend_gets_its_share_of_the_range() {
        let weights = [90, 10];
        let picks: Vec<_> = (0..100)
            .map(|r| pick_weighted(&weights, r).unwrap())
            .collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 90);
        assert_eq!(picks.iter().filter(|i| **i == 1).count(), 10);
    }

    #[test]
    fn zero_weights_are_never_picked_and_all_zero_picks_nothing() {
        assert_eq!(pick_weighted(&[0, 5, 0], 3), Some(1));
        assert_eq!(pick_weighted(&[0, 0], 3), None);
        assert_eq!(pick_weighted(&[], 3), None);
    }
}
