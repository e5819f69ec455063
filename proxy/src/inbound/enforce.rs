//! Enforcing the inbound policy: the authorize layer of the inbound HTTP stack, and the
//! per-connection check the inbound listener makes for opaque TCP. Both read the policy in
//! force from a `watch` (a new policy applies to the next request) and ask
//! [`authorize`](super::authorize::authorize); this file only adapts requests to it and
//! turns denials into answers, a metric and a log line.
//!
//! A denied HTTP request gets 403 (gRPC: `PERMISSION_DENIED`, trailers-only) with
//! `trellis-proxy-error: <reason>`; an allowed one carries the authorization's name to the
//! access log ([`AuthorizationLabel`]).

use std::net::SocketAddr;
use std::sync::Arc;

use http::StatusCode;
use tokio::sync::watch;
use tower::layer::layer_fn;

use super::authorize::{Client, Decision, Reason, Request, authorize};
use crate::answer::{Failure, answer, grpc};
use crate::body::{Req, Rsp};
use crate::config::Inbound;
use crate::svc::{self, Http};
use crate::telemetry::{AuthorizationLabel, ClientAddr, LocalPort, Metrics, PeerIdentity};

/// The inbound policy as the layer and the listener read it. Cheap to clone.
#[derive(Clone)]
pub struct Policy {
    current: watch::Receiver<Option<Arc<Inbound>>>,
    /// In force while no policy has arrived (`--inbound-policy permissive`); `None`: deny
    /// with `no_inbound_policy`.
    fallback: Option<Arc<Inbound>>,
    metrics: Arc<Metrics>,
}

impl Policy {
    pub fn new(
        current: watch::Receiver<Option<Arc<Inbound>>>,
        fallback: Option<Arc<Inbound>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            current,
            fallback,
            metrics,
        }
    }

    /// Decides one request or connection; a denial is counted and logged (`what` names
    /// it in the log line).
    pub fn decide(
        &self,
        port: u16,
        identity: Option<&str>,
        request: Request,
        what: impl FnOnce() -> String,
    ) -> Decision {
        let policy = self
            .current
            .borrow()
            .clone()
            .or_else(|| self.fallback.clone());
        let decision = match policy {
            Some(policy) => authorize(&policy, port, &Client { identity }, request),
            None => Decision::Deny {
                reason: Reason::NoPolicy,
            },
        };
        if let Decision::Deny { reason } = decision {
            self.metrics
                .inbound_denied
                .with_label_values(&[port.to_string().as_str(), reason.as_str()])
                .inc();
            let who = identity.unwrap_or("a plaintext client");
            eprintln!(
                "trellis-proxy: inbound denied: {} from {who} to port {port}: {}",
                what(),
                reason.as_str()
            );
        }
        decision
    }

    /// Whether an opaque TCP connection from `peer` to `port` may be forwarded.
    pub fn allows_connection(&self, port: u16, identity: Option<&str>, peer: SocketAddr) -> bool {
        let decision = self.decide(port, identity, None, || format!("TCP connection {peer}"));
        matches!(decision, Decision::Allow { .. })
    }
}

/// The authorize layer: requests the policy allows go on, others are answered here.
pub fn layer<S>(policy: Policy) -> impl tower::Layer<S, Service = AuthorizeService<S>> + Clone {
    layer_fn(move |inner| AuthorizeService {
        inner,
        policy: policy.clone(),
    })
}

#[derive(Clone)]
pub struct AuthorizeService<S> {
    inner: S,
    policy: Policy,
}

crate::http_service!(AuthorizeService);

impl<S: Http> AuthorizeService<S> {
    async fn handle(self, req: Req) -> Rsp {
        let port = req.extensions().get::<LocalPort>().map_or(0, |p| p.0);
        let identity = req
            .extensions()
            .get::<PeerIdentity>()
            .and_then(|p| p.0.clone());
        let request = Some((req.method(), req.uri().path(), req.headers()));
        let decision = self.policy.decide(port, identity.as_deref(), request, || {
            let client = req
                .extensions()
                .get::<ClientAddr>()
                .map_or_else(String::new, |c| format!(" ({})", c.0));
            format!("{} {}{client}", req.method(), req.uri().path())
        });
        match decision {
            Decision::Allow { authorization } => {
                let mut rsp = svc::call(&self.inner, req).await;
                rsp.extensions_mut()
                    .insert(AuthorizationLabel(authorization));
                rsp
            }
            Decision::Deny { reason } => answer(
                &req,
                Failure::Denied,
                StatusCode::FORBIDDEN,
                grpc::PERMISSION_DENIED,
                reason.as_str(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use crate::config::{DefaultPolicy, InboundPort};

    fn mk_policy(
        inbound: Option<Inbound>,
        fallback: Option<Inbound>,
    ) -> (Policy, Arc<Metrics>, watch::Sender<Option<Arc<Inbound>>>) {
        let metrics = Arc::new(Metrics::new());
        let (tx, rx) = watch::channel(inbound.map(Arc::new));
        (
            Policy::new(rx, fallback.map(Arc::new), metrics.clone()),
            metrics,
            tx,
        )
    }

    /// Port 8080 lets plaintext clients in; nothing else is allowed.
    fn mk_deny_but_8080() -> Inbound {
        Inbound {
            version: "1".into(),
            ports: vec![InboundPort {
                port: 8080,
                protocol: crate::config::Protocol::Detect,
                authorizations: vec![],
                allow_unmeshed: true,
                rate_limit: None,
            }],
            default_policy: DefaultPolicy::Deny,
        }
    }

    fn mk_request(port: u16, grpc: bool) -> Req {
        let mut builder = http::Request::builder().uri("/x");
        if grpc {
            builder = builder.header("content-type", "application/grpc");
        }
        let mut req = builder.body(body::empty()).unwrap();
        req.extensions_mut().insert(LocalPort(port));
        req
    }

    /// The app: answers 200.
    #[derive(Clone)]
    struct App;
    impl App {
        async fn handle(self, _req: Req) -> Rsp {
            http::Response::new(body::empty())
        }
    }
    crate::http_service!(plain App);

    async fn send(policy: &Policy, req: Req) -> Rsp {
        let service = tower::Layer::layer(&layer(policy.clone()), App);
        svc::call(&service, req).await
    }

    fn denied(metrics: &Metrics, port: &str, reason: &str) -> u64 {
        metrics
            .inbound_denied
            .with_label_values(&[port, reason])
            .get()
    }

    #[tokio::test]
    async fn an_allowed_request_reaches_the_app_labelled_with_its_authorization() {
        let (policy, _, _) = mk_policy(Some(mk_deny_but_8080()), None);
        let rsp = send(&policy, mk_request(8080, false)).await;
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(
            &*rsp.extensions().get::<AuthorizationLabel>().unwrap().0,
            "unmeshed"
        );
    }

    #[tokio::test]
    async fn a_denied_request_gets_403_with_the_reason_and_is_counted() {
        let (policy, metrics, _) = mk_policy(Some(mk_deny_but_8080()), None);
        let rsp = send(&policy, mk_request(9090, false)).await;
        assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
        assert_eq!(rsp.headers()["trellis-proxy-error"], "port_not_allowed");
        assert_eq!(denied(&metrics, "9090", "port_not_allowed"), 1);
    }

    #[tokio::test]
    async fn a_denied_grpc_request_gets_permission_denied() {
        let (policy, _, _) = mk_policy(Some(mk_deny_but_8080()), None);
        let rsp = send(&policy, mk_request(9090, true)).await;
        assert_eq!(rsp.status(), StatusCode::OK);
        assert_eq!(rsp.headers()["grpc-status"], "7");
        assert_eq!(rsp.headers()["trellis-proxy-error"], "port_not_allowed");
    }

    #[tokio::test]
    async fn a_meshed_identity_on_the_request_is_what_the_policy_sees() {
        let mut inbound = mk_deny_but_8080();
        inbound.default_policy = DefaultPolicy::AllowAuthenticated;
        let (policy, _, _) = mk_policy(Some(inbound), None);
        let mut req = mk_request(9090, false);
        req.extensions_mut()
            .insert(PeerIdentity(Some("spiffe://td/ns/a/sa/b".into())));
        assert_eq!(send(&policy, req).await.status(), StatusCode::OK);
        assert_eq!(
            send(&policy, mk_request(9090, false)).await.status(),
            StatusCode::FORBIDDEN,
            "the same request in plaintext"
        );
    }

    #[tokio::test]
    async fn without_a_policy_requests_are_denied_unless_a_fallback_allows() {
        let (policy, metrics, tx) = mk_policy(None, None);
        let rsp = send(&policy, mk_request(8080, false)).await;
        assert_eq!(rsp.headers()["trellis-proxy-error"], "no_inbound_policy");
        assert_eq!(denied(&metrics, "8080", "no_inbound_policy"), 1);

        tx.send_replace(Some(Arc::new(mk_deny_but_8080())));
        let rsp = send(&policy, mk_request(8080, false)).await;
        assert_eq!(
            rsp.status(),
            StatusCode::OK,
            "the next request sees the policy"
        );

        let (permissive, _, _) = mk_policy(None, Some(Inbound::permissive("flag")));
        let rsp = send(&permissive, mk_request(8080, false)).await;
        assert_eq!(rsp.status(), StatusCode::OK);
    }

    #[test]
    fn an_opaque_connection_is_decided_once_and_counted() {
        let (policy, metrics, _) = mk_policy(Some(mk_deny_but_8080()), None);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert!(policy.allows_connection(8080, None, peer));
        assert!(!policy.allows_connection(9090, None, peer));
        assert_eq!(denied(&metrics, "9090", "port_not_allowed"), 1);
    }
}
