//! The service shape every layer of the HTTP stacks shares: a request in, a response out,
//! never an error (failures are answers, see [`crate::answer`]).

use std::convert::Infallible;
use std::pin::Pin;

use tower::Service;

use crate::body::{Req, Rsp};

/// The future every layer returns.
pub type BoxFut = Pin<Box<dyn Future<Output = Result<Rsp, Infallible>> + Send>>;

/// A layer's inner service.
pub trait Http:
    Service<Req, Response = Rsp, Error = Infallible, Future = BoxFut> + Clone + Send + Sync + 'static
{
}

impl<T> Http for T where
    T: Service<Req, Response = Rsp, Error = Infallible, Future = BoxFut>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Implements `tower::Service<Req>` for a service type from its
/// `async fn handle(self, req) -> Rsp` method (called on an owned clone):
/// `http_service!(Layer)` for `Layer<S>`, `http_service!(Layer<S, M>)` for two inner
/// services, `http_service!(plain Type)` for a service with no inner one.
#[macro_export]
macro_rules! http_service {
    (plain $name:ident) => {
        $crate::http_service!(@impl [] $name);
    };
    ($name:ident<S, M>) => {
        $crate::http_service!(@impl [S: $crate::svc::Http, M: $crate::svc::Http] $name<S, M>);
    };
    ($name:ident) => {
        $crate::http_service!(@impl [S: $crate::svc::Http] $name<S>);
    };
    (@impl [$($bounds:tt)*] $ty:ty) => {
        impl<$($bounds)*> tower::Service<$crate::body::Req> for $ty {
            type Response = $crate::body::Rsp;
            type Error = std::convert::Infallible;
            type Future = $crate::svc::BoxFut;

            fn poll_ready(
                &mut self,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: $crate::body::Req) -> Self::Future {
                let this = self.clone();
                Box::pin(async move { Ok(this.handle(req).await) })
            }
        }
    };
}

/// Calls an inner service that is always ready.
pub async fn call<S: Http>(inner: &S, req: Req) -> Rsp {
    match inner.clone().call(req).await {
        Ok(rsp) => rsp,
        Err(never) => match never {},
    }
}
