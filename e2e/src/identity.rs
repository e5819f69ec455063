//! Workload identities in tests: a CA ([`Pki`]), `--identity-dir` directories it issues,
//! and a real `trellis.proxy.v1.Identity` gRPC server ([`IdentityServer`]) that checks a
//! token and signs the proxy's CSR with that CA, standing in for the operator's Identity
//! API.
//!
//! ```text
//! let pki = Pki::new();
//! let dir = pki.identity_dir(&spiffe("shop", "web"), Duration::from_secs(3600));
//! Proxy::builder().arg("--identity-dir").arg(dir.path()) ...
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::{Request, Response, Status};
use trellis_proxy::tls::{Ca, SpiffeId};
use trellis_proxy_api::v1::identity_server::{Identity, IdentityServer as Server};
use trellis_proxy_api::v1::{CertifyRequest, CertifyResponse};

use crate::serve::GrpcServer;

pub const TRUST_DOMAIN: &str = "cluster.local";

/// `spiffe://cluster.local/ns/<ns>/sa/<sa>`.
pub fn spiffe(ns: &str, sa: &str) -> String {
    SpiffeId::new(TRUST_DOMAIN, ns, sa).to_string()
}

/// A certificate authority for one test.
pub struct Pki {
    ca: Ca,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            ca: Ca::new(TRUST_DOMAIN, Duration::from_secs(24 * 3600)).expect("a test CA"),
        }
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> String {
        self.ca.root_pem()
    }

    /// A fresh directory holding a key and certificate for `id` and this CA's root.
    pub fn identity_dir(&self, id: &str, lifetime: Duration) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temporary directory");
        self.write_identity(dir.path(), id, lifetime, &[]);
        dir
    }

    /// Writes `cert.pem`, `key.pem` and `roots.pem` (this CA's root, then `extra_roots`)
    /// into `dir`, readable by everyone (proxies may run as another user).
    pub fn write_identity(&self, dir: &Path, id: &str, lifetime: Duration, extra_roots: &[String]) {
        let id: SpiffeId = id.parse().expect("a SPIFFE id");
        let issued = self
            .ca
            .issue_pem(&id, lifetime)
            .expect("a leaf certificate");
        let mut roots = self.root_pem();
        for extra in extra_roots {
            roots.push_str(extra);
        }
        for (name, text) in [
            ("cert.pem", &issued.cert),
            ("key.pem", &issued.key),
            ("roots.pem", &roots),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("writing an identity file");
            set_mode(&path, 0o644);
        }
        set_mode(dir, 0o755);
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

struct Shared {
    pki: Pki,
    /// Token -> the identity it proves.
    tokens: Mutex<HashMap<String, String>>,
    lifetime: Mutex<Duration>,
    issued: AtomicUsize,
    refused: AtomicUsize,
    /// Requests still to fail with UNAVAILABLE.
    failing: AtomicUsize,
}

/// A running Identity API. Stopped when dropped.
pub struct IdentityServer {
    shared: Arc<Shared>,
    server: GrpcServer,
}

impl IdentityServer {
    /// Serves `pki` with certificates valid for `lifetime`.
    pub async fn start(pki: Pki, lifetime: Duration) -> IdentityServer {
        let shared = Arc::new(Shared {
            pki,
            tokens: Mutex::new(HashMap::new()),
            lifetime: Mutex::new(lifetime),
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            failing: AtomicUsize::new(0),
        });
        let server = GrpcServer::start(Server::new(Service(shared.clone()))).await;
        IdentityServer { shared, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    pub fn pki(&self) -> &Pki {
        &self.shared.pki
    }

    /// `token` proves `id` from now on.
    pub fn allow(&self, token: &str, id: &str) {
        self.shared
            .tokens
            .lock()
            .unwrap()
            .insert(token.to_owned(), id.to_owned());
    }

    /// The next `n` requests fail with UNAVAILABLE (a control plane in trouble).
    pub fn fail_next(&self, n: usize) {
        self.shared.failing.store(n, Ordering::SeqCst);
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> usize {
        self.shared.issued.load(Ordering::SeqCst)
    }

    /// Requests refused for a bad token so far.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct Service(Arc<Shared>);

#[tonic::async_trait]
impl Identity for Service {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        let s = &self.0;
        if s.failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Status::unavailable("the test made this request fail"));
        }
        let request = request.into_inner();
        let proven = s.tokens.lock().unwrap().get(&request.token).cloned();
        if proven.as_deref() != Some(request.identity.as_str()) {
            s.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Status::permission_denied(format!(
                "the token does not prove {}",
                request.identity
            )));
        }
        let id: SpiffeId = request
            .identity
            .parse()
            .map_err(|e| Status::invalid_argument(format!("identity: {e}")))?;
        let lifetime = *s.lifetime.lock().unwrap();
        let leaf = s
            .pki
            .ca
            .certify(&id, &request.certificate_signing_request, lifetime)
            .map_err(|e| Status::invalid_argument(format!("certificate_signing_request: {e}")))?;
        s.issued.fetch_add(1, Ordering::SeqCst);
        let valid_until = SystemTime::now() + lifetime;
        let secs = valid_until.duration_since(UNIX_EPOCH).unwrap_or_default();
        Ok(Response::new(CertifyResponse {
            leaf_certificate: leaf.der().to_vec(),
            intermediate_certificates: vec![],
            trust_anchors: vec![s.pki.ca.root().to_vec()],
            valid_until: Some(pbjson_types::Timestamp {
                seconds: secs.as_secs() as i64,
                nanos: secs.subsec_nanos() as i32,
            }),
        }))
    }
}
