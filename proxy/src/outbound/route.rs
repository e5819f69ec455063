//! Route: Host/`:authority` -> the destination's config -> the first route whose matches hold.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower::layer::layer_fn;

use super::{Target, authority_of};
use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::store::Store;
use crate::svc::{self, Http};
use crate::telemetry::RouteLabel;

pub fn layer<S>(
    store: Store,
    wait: Duration,
) -> impl tower::Layer<S, Service = RouteService<S>> + Clone {
    layer_fn(move |inner| RouteService {
        inner,
        store: store.clone(),
        wait,
    })
}

#[derive(Clone)]
pub struct RouteService<S> {
    inner: S,
    store: Store,
    wait: Duration,
}

crate::http_service!(RouteService);

impl<S: Http> RouteService<S> {
    async fn handle(self, mut req: Req) -> Rsp {
        let Some(authority) = authority_of(&req) else {
            return answer(
                &req,
                Failure::NoRoute,
                StatusCode::BAD_REQUEST,
                grpc::UNAVAILABLE,
                "the request names no destination (no Host header or :authority)",
            );
        };
        let Some(dest) = self.store.resolve(&authority, self.wait).await else {
            let snapshot = self.store.snapshot();
            let reason = match snapshot.rejected.get(&*crate::store::normalize(&authority)) {
                Some(r) => format!(
                    "no usable config for {authority}: version {} was refused: {}",
                    r.version, r.reason
                ),
                None => format!("no config for {authority} ({})", snapshot.source),
            };
            return answer(
                &req,
                Failure::NoRoute,
                StatusCode::SERVICE_UNAVAILABLE,
                grpc::UNAVAILABLE,
                &reason,
            );
        };
        let outbound = dest.config.clone();
        let path = req.uri().path();
        let Some(route) = outbound
            .routes
            .iter()
            .find(|r| {
                r.matches.is_empty()
                    || r.matches
                        .iter()
                        .any(|m| m.matches(req.method(), path, req.headers()))
            })
            .cloned()
        else {
            let reason = format!("no route of {authority} matches {} {path}", req.method());
            return answer(
                &req,
                Failure::NoRoute,
                StatusCode::NOT_FOUND,
                grpc::UNAVAILABLE,
                &reason,
            );
        };
        let label: Arc<str> = if outbound.authority.is_empty() {
            authority.as_str().into()
        } else {
            outbound.authority.clone()
        };
        let route_label = RouteLabel {
            authority: label.clone(),
            route: route.name.clone(),
        };
        req.extensions_mut().insert(Target {
            authority: label,
            outbound,
            route,
        });
        let mut rsp = svc::call(&self.inner, req).await;
        rsp.extensions_mut().insert(route_label);
        rsp
    }
}
