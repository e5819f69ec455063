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
        if let Some((code, message)) = self.0.answer.lock().unwrap().clone() {
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

/// A tonic Identity client whose HTTP/2 connection goes to `proxy` (the proxy's outbound
/// address) while its requests carry `:authority = authority`, as an application using the
/// proxy would send them.
pub async fn identity_client_via(
    proxy: SocketAddr,
    authority: &str,
) -> anyhow::Result<IdentityClient<Channel>> {
    let origin: Uri = format!("http://{authority}").parse()?;
    let channel = Endpoint::from_shared(format!("http://{proxy}"))?
        .origin(origin)
        .connect()
        .await?;
    Ok(IdentityClient::new(channel))
}

/// A plain `Certify` request.
pub fn certify_request() -> CertifyRequest {
    CertifyRequest {
        identity: "spiffe://trellis.test/ns/shop/sa/web".into(),
        token: "token".into(),
        certificate_signing_request: vec![1, 2, 3],
    }
}
