//! Fault injection: delay a share of requests, abort a share with an HTTP status or a gRPC
//! code. Both draws are independent, as in Istio.

use http::StatusCode;
use tower::layer::layer_fn;

use super::Target;
use crate::answer::{Failure, answer, answer_for};
use crate::body::{Req, Rsp};
use crate::config::Abort;
use crate::svc::{self, Http};

pub fn layer<S>() -> impl tower::Layer<S, Service = FaultService<S>> + Clone {
    layer_fn(|inner| FaultService { inner })
}

#[derive(Clone)]
pub struct FaultService<S> {
    inner: S,
}

crate::http_service!(FaultService);

impl<S: Http> FaultService<S> {
    async fn handle(self, req: Req) -> Rsp {
        let fault = req
            .extensions()
            .get::<Target>()
            .and_then(|t| t.route.fault.clone());
        let Some(fault) = fault else {
            return svc::call(&self.inner, req).await;
        };
        if let Some((ratio, delay)) = fault.delay
            && fastrand::f64() < ratio
        {
            tokio::time::sleep(delay).await;
        }
        if let Some((ratio, abort)) = fault.abort
            && fastrand::f64() < ratio
        {
            return match abort {
                Abort::Http(status) => answer(
                    &req,
                    Failure::Fault,
                    status,
                    crate::answer::grpc::UNAVAILABLE,
                    "fault injected",
                ),
                Abort::Grpc(code) => {
                    answer_for(true, Failure::Fault, StatusCode::OK, code, "fault injected")
                }
            };
        }
        svc::call(&self.inner, req).await
    }
}
