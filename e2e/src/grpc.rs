//! A toy `trellis.proxy.v1.Identity` gRPC server and a tonic client that reaches it through
//! the proxy, for tests of real gRPC traffic (HTTP/2, trailers, `grpc-status`).
//!
//! The server answers `Certify` with a fixed [`CertifyResponse`] (its `leaf_certificate` is
//! the server's name) or with a configured [`Status`], and counts the calls and records the
//! request metadata it saw.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tonic::metadata::MetadataMap;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Request, Response, Status};
use trellis_proxy_api::v1::identity_client::IdentityClient;
use trellis_proxy_api::v1::identity_server::{Identity, IdentityServer};
use trellis_proxy_api::v1::{CertifyRequest, CertifyResponse};

use crate::serve::GrpcServer;

struct Shared {
    name: String,
    answer: Mutex<Option<(Code, String)>>,
    next: Mutex<std::collections::VecDeque<(Code, String)>>,
    delay: Mutex<std::time::Duration>,
    calls: AtomicUsize,
    metadata: Mutex<Vec<MetadataMap>>,
}

#[derive(Clone)]
struct Service(Arc<Shared>);

#[tonic::async_trait]
impl Identity for Service {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        self.0
            .metadata
            .lock()
            .unwrap()
            .push(request.metadata().clone());
        let delay = *self.0.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let next = self.0.next.lock().unwrap().pop_front();
        if let Some((code, message)) = next.or_else(|| self.0.answer.lock().unwrap().clone()) {
            return Err(Status::new(code, message));
        }
        Ok(Response::new(CertifyResponse {
            leaf_certificate: self.0.name.clone().into_bytes(),
            ..Default::default()
        }))
    }
}

/// The toy Identity server. Stops when dropped.
pub struct ToyIdentity {
    shared: Arc<Shared>,
    server: GrpcServer,
}

impl ToyIdentity {
    /// Starts a server answering every call with `leaf_certificate = name`.
    pub async fn start(name: &str) -> ToyIdentity {
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            answer: Mutex::new(None),
            next: Mutex::new(std::collections::VecDeque::new()),
            delay: Mutex::new(std::time::Duration::ZERO),
            calls: AtomicUsize::new(0),
            metadata: Mutex::new(Vec::new()),
        });
        let server = GrpcServer::start(IdentityServer::new(Service(shared.clone()))).await;
        ToyIdentity { shared, server }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// From now on every call fails with `code` and `message`.
    pub fn fail_with(&self, code: Code, message: &str) {
        *self.shared.answer.lock().unwrap() = Some((code, message.to_owned()));
    }

    /// From now on every call takes `delay` to answer.
    pub fn set_delay(&self, delay: std::time::Duration) {
        *self.shared.delay.lock().unwrap() = delay;
    }

    /// The next `n` calls fail with `code` and `message`; then the usual answer.
    pub fn fail_next(&self, n: usize, code: Code, message: &str) {
        let mut next = self.shared.next.lock().unwrap();
        next.extend(std::iter::repeat_n((code, message.to_owned()), n));
    }

    /// From now on every call succeeds.
    pub fn succeed(&self) {
        *self.shared.answer.lock().unwrap() = None;
    }

    /// Calls received.
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// The metadata (headers) of every call received.
    pub fn metadata(&self) -> Vec<MetadataMap> {
        self.shared.metadata.lock().unwrap().clone()
    }
}

/// A tonic channel whose HTTP/2 connection goes to `proxy` (the proxy's outbound address)
/// while its requests carry `:authority = authority`, as an application using the proxy
/// would send them. Any generated client can use it.
pub async fn channel_via(proxy: SocketAddr, authority: &str) -> anyhow::Result<Channel> {
    let origin: Uri = format!("http://{authority}").parse()?;
    Ok(Endpoint::from_shared(format!("http://{proxy}"))?
        .origin(origin)
        .connect()
        .await?)
}

/// A tonic Identity client reaching `authority` through `proxy` (see [`channel_via`]).
pub async fn identity_client_via(
    proxy: SocketAddr,
    authority: &str,
) -> anyhow::Result<IdentityClient<Channel>> {
    Ok(IdentityClient::new(channel_via(proxy, authority).await?))
}

/// A plain `Certify` request.
pub fn certify_request() -> CertifyRequest {
    CertifyRequest {
        identity: "spiffe://trellis.test/ns/shop/sa/web".into(),
        token: "token".into(),
        certificate_signing_request: vec![1, 2, 3],
    }
}
