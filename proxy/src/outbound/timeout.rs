//! Timeout: the whole request, retries included, must get its response headers in time;
//! otherwise 504 (gRPC `DEADLINE_EXCEEDED`).

use std::time::Duration;

use http::StatusCode;
use tower::layer::layer_fn;

use super::Target;
use crate::answer::{Failure, answer_for, grpc, is_grpc};
use crate::body::{Req, Rsp};
use crate::svc::{self, Http};

pub fn layer<S>() -> impl tower::Layer<S, Service = TimeoutService<S>> + Clone {
    layer_fn(|inner| TimeoutService { inner })
}

#[derive(Clone)]
pub struct TimeoutService<S> {
    inner: S,
}

crate::http_service!(TimeoutService);

impl<S: Http> TimeoutService<S> {
    async fn handle(self, req: Req) -> Rsp {
        let timeout = req
            .extensions()
            .get::<Target>()
            .and_then(|t| t.route.timeout);
        let Some(timeout) = timeout else {
            return svc::call(&self.inner, req).await;
        };
        within(timeout, "request", &self.inner, req).await
    }
}

/// `inner`'s answer to `req` if it comes within `limit`, else a 504 (gRPC
/// `DEADLINE_EXCEEDED`) saying that `what` (`request`, `attempt`) timed out.
pub async fn within<S: Http>(limit: Duration, what: &str, inner: &S, req: Req) -> Rsp {
    let grpc_req = is_grpc(&req);
    match tokio::time::timeout(limit, svc::call(inner, req)).await {
        Ok(rsp) => rsp,
        Err(_) => answer_for(
            grpc_req,
            Failure::Timeout,
            StatusCode::GATEWAY_TIMEOUT,
            grpc::DEADLINE_EXCEEDED,
            &format!("{what} timed out after {limit:?}"),
        ),
    }
}
