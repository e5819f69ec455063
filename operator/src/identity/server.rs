//! `trellis.proxy.v1.Identity/Certify`: a proxy sends the SPIFFE id it wants, a token
//! proving it and a CSR; it gets a leaf for exactly that id, the issuer and every root.
//!
//! ```text
//! identity parses?            no -> INVALID_ARGUMENT  (result="invalid")
//! trust domain is the mesh's? no -> PERMISSION_DENIED (result="denied")
//! token proves ns + sa?       no -> UNAUTHENTICATED   (result="denied")
//! CSR parses, signature ok?   no -> INVALID_ARGUMENT  (result="invalid")
//! sign: CSR key, URI SAN = id, not a CA, 1 min backdated, workload lifetime (<= issuer)
//!                                -> leaf, [issuer], every root (result="issued")
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, Opts, Registry};
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use trellis_proxy_api::v1::identity_server::{self, Identity};
use trellis_proxy_api::v1::{CertifyRequest, CertifyResponse};

use super::IdentityError;
use super::ca::{CaMaterial, CertifyError};
use super::spiffe::SpiffeId;
use super::tokens::TokenValidator;

/// The metric counting Certify outcomes.
pub const CERTIFICATES_METRIC: &str = "trellis_operator_certificates_issued_total";

/// Values of the metric's `result` label.
pub mod results {
    /// A certificate was issued.
    pub const ISSUED: &str = "issued";
    /// The caller did not prove the identity, or asked for another trust domain.
    pub const DENIED: &str = "denied";
    /// The request was malformed (identity or CSR).
    pub const INVALID: &str = "invalid";
    /// The CA could not sign (e.g. its issuer expired).
    pub const ERROR: &str = "error";
}

/// What the mesh's configuration (MeshConfig) says about identities; the operator keeps it
/// current through a watch channel, and each request uses the value in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentitySettings {
    /// The trust domain of every identity in the mesh, e.g. `cluster.local`.
    pub trust_domain: String,
    /// How long workload certificates live.
    pub workload_lifetime: Duration,
}

impl Default for IdentitySettings {
    /// MeshConfig's defaults: `cluster.local`, 24 h.
    fn default() -> Self {
        IdentitySettings {
            trust_domain: "cluster.local".to_owned(),
            workload_lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

/// The Identity API, generic over how tokens are checked.
pub struct IdentityServer<V: ?Sized = dyn TokenValidator> {
    ca: watch::Receiver<Arc<CaMaterial>>,
    validator: Arc<V>,
    settings: watch::Receiver<IdentitySettings>,
    outcomes: IntCounterVec,
}

impl<V: TokenValidator + ?Sized> IdentityServer<V> {
    /// A server signing with the CA in force on `ca`, checking tokens with `validator`,
    /// following `settings`; registers its metric in `registry`.
    pub fn new(
        ca: watch::Receiver<Arc<CaMaterial>>,
        validator: Arc<V>,
        settings: watch::Receiver<IdentitySettings>,
        registry: &Registry,
    ) -> Result<Self, IdentityError> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                CERTIFICATES_METRIC,
                "Identity.Certify requests by result: issued, denied (token or trust domain), invalid (malformed request), error (the CA could not sign)",
            ),
            &["result"],
        )?;
        for result in [
            results::ISSUED,
            results::DENIED,
            results::INVALID,
            results::ERROR,
        ] {
            outcomes.with_label_values(&[result]);
        }
        registry.register(Box::new(outcomes.clone()))?;
        Ok(IdentityServer {
            ca,
            validator,
            settings,
            outcomes,
        })
    }

    /// The tonic service to add to a gRPC server.
    pub fn into_service(self) -> identity_server::IdentityServer<Self> {
        identity_server::IdentityServer::new(self)
    }

    /// Answers one request (what [`Identity::certify`] does, without tonic's wrapping).
    pub async fn certify_request(
        &self,
        request: CertifyRequest,
    ) -> Result<CertifyResponse, Status> {
        let asked = request.identity.as_str();
        let settings = self.settings.borrow().clone();
        let id: SpiffeId = asked.parse().map_err(|e| {
            self.refuse(
                asked,
                results::INVALID,
                Status::invalid_argument(format!("identity: {e}")),
            )
        })?;
        if id.trust_domain != settings.trust_domain {
            return Err(self.refuse(
                asked,
                results::DENIED,
                Status::permission_denied(format!(
                    "identity: {id} is in trust domain {:?}, but this mesh's trust domain is {:?}",
                    id.trust_domain, settings.trust_domain
                )),
            ));
        }
        if let Err(reason) = self.validator.validate(&request.token, &id).await {
            return Err(self.refuse(
                asked,
                results::DENIED,
                Status::unauthenticated(format!("token: {reason}")),
            ));
        }
        let ca = self.ca.borrow().clone();
        let leaf = ca
            .certify(
                &id,
                &request.certificate_signing_request,
                settings.workload_lifetime,
                SystemTime::now(),
            )
            .map_err(|e| match e {
                CertifyError::Csr(reason) => self.refuse(
                    asked,
                    results::INVALID,
                    Status::invalid_argument(format!("certificate_signing_request: {reason}")),
                ),
                CertifyError::IssuerExpired(_) => self.refuse(
                    asked,
                    results::ERROR,
                    Status::failed_precondition(e.to_string()),
                ),
                CertifyError::Sign(_) => {
                    self.refuse(asked, results::ERROR, Status::internal(e.to_string()))
                }
            })?;
        self.outcomes.with_label_values(&[results::ISSUED]).inc();
        Ok(CertifyResponse {
            leaf_certificate: leaf.der,
            intermediate_certificates: vec![ca.issuer_der().to_vec()],
            trust_anchors: ca.roots().iter().map(|r| r.der.clone()).collect(),
            valid_until: Some(timestamp(leaf.not_after)),
        })
    }

    /// Counts and logs a refusal.
    fn refuse(&self, asked: &str, result: &str, status: Status) -> Status {
        self.outcomes.with_label_values(&[result]).inc();
        let who = if asked.is_empty() {
            "(no identity)".to_owned()
        } else {
            asked.escape_debug().to_string()
        };
        eprintln!(
            "trellis operator: refused certificate for {who}: {:?}: {}",
            status.code(),
            status.message()
        );
        status
    }
}

#[tonic::async_trait]
impl<V: TokenValidator + ?Sized> Identity for IdentityServer<V> {
    async fn certify(
        &self,
        request: Request<CertifyRequest>,
    ) -> Result<Response<CertifyResponse>, Status> {
        self.certify_request(request.into_inner())
            .await
            .map(Response::new)
    }
}

fn timestamp(t: SystemTime) -> pbjson_types::Timestamp {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: since.as_secs() as i64,
        nanos: since.subsec_nanos() as i32,
    }
}
