//! Mirror: a share of requests is copied to another backend. The copy is sent on its own
//! task and its response is discarded, so the original never waits for it. The copy's body
//! is fed frame by frame as the original's is sent (never holding the original back); a
//! copy whose body passes 64 KiB is abandoned.

use std::sync::Arc;

use http_body_util::BodyExt;
use tower::layer::layer_fn;

use super::{BackendChoice, Target, is_upgrade};
use crate::body::{Copying, Req, Rsp};
use crate::svc::{self, Http};
use crate::telemetry::Metrics;

/// Largest request body copied to a mirror.
const MAX_MIRRORED_BODY: usize = 64 * 1024;

/// `send` is the stack below the backend choice (balance), used for the copies.
pub fn layer<S, M: Http>(
    send: M,
    metrics: Arc<Metrics>,
) -> impl tower::Layer<S, Service = MirrorService<S, M>> + Clone {
    layer_fn(move |inner| MirrorService {
        inner,
        send: send.clone(),
        metrics: metrics.clone(),
    })
}

#[derive(Clone)]
pub struct MirrorService<S, M> {
    inner: S,
    send: M,
    metrics: Arc<Metrics>,
}

crate::http_service!(MirrorService<S, M>);

impl<S: Http, M: Http> MirrorService<S, M> {
    async fn handle(self, req: Req) -> Rsp {
        let mirror = req.extensions().get::<Target>().and_then(|t| {
            t.route
                .mirror
                .as_ref()
                .map(|m| (t.clone(), m.backend.clone(), m.ratio))
        });
        let Some((target, backend, ratio)) = mirror else {
            return svc::call(&self.inner, req).await;
        };
        if is_upgrade(&req) || fastrand::f64() >= ratio {
            return svc::call(&self.inner, req).await;
        }
        let (parts, body) = req.into_parts();
        let (body, copy_body) = Copying::split(body, MAX_MIRRORED_BODY);
        let mut copy = Req::from_parts(parts.clone(), copy_body);
        copy.extensions_mut().insert(BackendChoice(backend.clone()));
        self.metrics
            .mirrored
            .with_label_values(&[&*target.authority, &*target.route.name, &*backend.name])
            .inc();
        let send = self.send.clone();
        tokio::spawn(async move {
            let rsp = svc::call(&send, copy).await;
            let _ = rsp.into_body().collect().await;
        });
        svc::call(&self.inner, Req::from_parts(parts, body)).await
    }
}
