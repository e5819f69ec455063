//! Route: Host/`:authority` -> the destination's config -> the first route whose matches hold.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tower::layer::layer_fn;

use super::{Target, authority_of};
use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::listen::OriginalDst;
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
        // An intercepted request without Host/:authority is routed by the address it was
        // sent to (`ip:port`), so a config `authority: "10.0.0.2:8080"` matches it.
        let original = || {
            req.extensions()
                .get::<OriginalDst>()
                .map(|o| o.0.to_string())
        };
        let Some(authority) = authority_of(&req).or_else(original) else {
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

#[cfg(test)]
mod tests {
    use tower::Layer as _;
    use trellis_proxy_api::v1 as api;

    use super::*;
    use crate::body;

    /// Answers 200 with the authority the route layer chose in `x-authority`.
    fn echo_authority() -> impl Http {
        tower::service_fn(|req: Req| -> svc::BoxFut {
            let authority = req
                .extensions()
                .get::<Target>()
                .map(|t| t.authority.to_string())
                .unwrap_or_default();
            Box::pin(async move {
                let mut rsp = Rsp::new(body::empty());
                rsp.headers_mut()
                    .insert("x-authority", authority.parse().unwrap());
                Ok(rsp)
            })
        })
    }

    fn store_with(authority: &str) -> Store {
        let store = Store::new("test");
        let config = api::OutboundConfig {
            routes: vec![api::Route {
                name: "default".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        store.apply(authority, config).unwrap();
        store
    }

    #[tokio::test]
    async fn a_request_without_host_is_routed_by_its_original_destination() {
        let route = layer(store_with("10.0.0.2:8080"), Duration::ZERO).layer(echo_authority());
        let mut req = Req::new(body::empty());
        req.extensions_mut()
            .insert(OriginalDst("10.0.0.2:8080".parse().unwrap()));
        let rsp = svc::call(&route, req).await;
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.headers()["x-authority"], "10.0.0.2:8080");
    }

    #[tokio::test]
    async fn the_host_header_wins_over_the_original_destination() {
        let route = layer(store_with("web.shop"), Duration::ZERO).layer(echo_authority());
        let mut req = Req::new(body::empty());
        req.headers_mut()
            .insert(http::header::HOST, "web.shop".parse().unwrap());
        req.extensions_mut()
            .insert(OriginalDst("10.0.0.2:8080".parse().unwrap()));
        let rsp = svc::call(&route, req).await;
        assert_eq!(rsp.headers()["x-authority"], "web.shop");
    }

    #[tokio::test]
    async fn a_request_naming_no_destination_at_all_is_refused() {
        let route = layer(store_with("web.shop"), Duration::ZERO).layer(echo_authority());
        let rsp = svc::call(&route, Req::new(body::empty())).await;
        assert_eq!(rsp.status(), StatusCode::BAD_REQUEST);
    }
}
