//! Timeout: the whole request, retries included, must get its response headers in time;
//! otherwise 504 (gRPC `DEADLINE_EXCEEDED`).

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
        let grpc_req = is_grpc(&req);
        match tokio::time::timeout(timeout, svc::call(&self.inner, req)).await {
            Ok(rsp) => rsp,
            Err(_) => answer_for(
                grpc_req,
                Failure::Timeout,
                StatusCode::GATEWAY_TIMEOUT,
                grpc::DEADLINE_EXCEEDED,
                &format!("request timed out after {timeout:?}"),
            ),
        }
    }
}
