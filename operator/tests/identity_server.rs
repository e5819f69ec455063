//! `Identity.Certify` over a real loopback gRPC connection: the operator's CA in a data
//! directory, local-mode join tokens, CSRs made the way proxies make them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, KeyPair, SanType};
use tokio::sync::watch;
use tonic::Code;
use trellis_e2e::metrics;
use trellis_e2e::serve::GrpcServer;
use trellis_operator::identity::{self, IdentitySettings, JoinTokens};
use trellis_proxy_api::v1::identity_client::IdentityClient;
use trellis_proxy_api::v1::{CertifyRequest, CertifyResponse};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";
const HOUR: Duration = Duration::from_secs(3600);

struct Operator {
    dir: tempfile::TempDir,
    registry: prometheus::Registry,
    settings: watch::Sender<IdentitySettings>,
    tokens: std::sync::Arc<JoinTokens>,
    client: IdentityClient<tonic::transport::Channel>,
    _server: GrpcServer,
}

impl Operator {
    async fn start(lifetime: Duration) -> Operator {
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let (settings, settings_rx) = watch::channel(IdentitySettings {
            trust_domain: "cluster.local".into(),
            workload_lifetime: lifetime,
        });
        let (server, tokens) = identity::start(
            dir.path(),
            identity::DEFAULT_ROOT_LIFETIME,
            settings_rx,
            &registry,
        )
        .unwrap();
        let server = GrpcServer::start(server.into_service()).await;
        let client = IdentityClient::connect(server.url()).await.unwrap();
        Operator {
            dir,
            registry,
            settings,
            tokens,
            client,
            _server: server,
        }
    }

    fn token(&self, ns: &str, sa: &str) -> String {
        self.tokens.token_for(ns, sa)
    }

    async fn certify(
        &self,
        id: &str,
        token: &str,
        csr: Vec<u8>,
    ) -> Result<CertifyResponse, tonic::Status> {
        self.client
            .clone()
            .certify(CertifyRequest {
                identity: id.into(),
                token: token.into(),
                certificate_signing_request: csr,
            })
            .await
            .map(|r| r.into_inner())
    }

    /// `trellis_operator_certificates_issued_total{result}`.
    fn outcomes(&self, result: &str) -> u64 {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap();
        metrics::sum(
            &text,
            "trellis_operator_certificates_issued_total",
            &[("result", result)],
        ) as u64
    }
}

/// A CSR like a proxy's, but asking for more names than it will get.
fn csr(key: &KeyPair) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["anything.example".to_owned()]).unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://cluster.local/ns/kube-system/sa/admin"
            .try_into()
            .unwrap(),
    ));
    params.serialize_request(key).unwrap().der().to_vec()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    x509_parser::parse_x509_certificate(der).unwrap().1
}

fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::URI(u) => (*u).to_owned(),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Leaf <- intermediate <- one of the anchors, every signature checked, every anchor
/// self-signed; returns the index of the anchor the chain ends at.
fn verify_chain(response: &CertifyResponse) -> usize {
    let leaf = parse(&response.leaf_certificate);
    assert_eq!(response.intermediate_certificates.len(), 1);
    let issuer = parse(&response.intermediate_certificates[0]);
    leaf.verify_signature(Some(issuer.public_key()))
        .expect("the leaf is signed by the intermediate");
    assert!(issuer.is_ca());
    let anchors: Vec<X509Certificate<'_>> =
        response.trust_anchors.iter().map(|d| parse(d)).collect();
    for anchor in &anchors {
        anchor
            .verify_signature(None)
            .expect("anchors are self-signed");
    }
    anchors
        .iter()
        .position(|a| issuer.verify_signature(Some(a.public_key())).is_ok())
        .expect("the intermediate is signed by one of the trust anchors")
}

#[tokio::test]
async fn an_issued_leaf_chains_to_the_anchors_and_names_exactly_the_requested_identity() {
    let op = Operator::start(HOUR).await;
    let key = KeyPair::generate().unwrap();
    let before = SystemTime::now();
    let response = op
        .certify(WEB, &op.token("shop", "web"), csr(&key))
        .await
        .unwrap();

    assert_eq!(verify_chain(&response), 0);
    assert_eq!(response.trust_anchors.len(), 1);
    let leaf = parse(&response.leaf_certificate);
    assert_eq!(uri_sans(&leaf), [WEB]);
    assert!(!leaf.is_ca());
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let validity = leaf.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    assert_eq!(
        not_after - not_before,
        3600 + 60,
        "the lifetime, backdated a minute"
    );
    let now = before.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!(
        (now - 61..=now + 1).contains(&not_before),
        "{not_before} vs {now}"
    );
    assert_eq!(response.valid_until.unwrap().seconds, not_after);
    assert_eq!(op.outcomes("issued"), 1);
}

#[tokio::test]
async fn the_lifetime_and_trust_domain_follow_the_settings() {
    let op = Operator::start(HOUR).await;
    let key = KeyPair::generate().unwrap();
    op.settings
        .send_modify(|s| s.workload_lifetime = Duration::from_secs(600));
    let response = op
        .certify(WEB, &op.token("shop", "web"), csr(&key))
        .await
        .unwrap();
    let leaf = parse(&response.leaf_certificate);
    let validity = leaf.validity();
    assert_eq!(
        validity.not_after.timestamp() - validity.not_before.timestamp(),
        600 + 60
    );

    op.settings
        .send_modify(|s| s.trust_domain = "example.org".into());
    let status = op
        .certify(WEB, &op.token("shop", "web"), csr(&key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let id = "spiffe://example.org/ns/shop/sa/web";
    let response = op
        .certify(id, &op.token("shop", "web"), csr(&key))
        .await
        .unwrap();
    assert_eq!(uri_sans(&parse(&response.leaf_certificate)), [id]);
}

#[tokio::test]
async fn refusals_say_why_and_are_counted() {
    let op = Operator::start(HOUR).await;
    let key = KeyPair::generate().unwrap();
    let web_token = op.token("shop", "web");

    let status = op
        .certify(WEB, &op.token("shop", "api"), csr(&key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().starts_with(
            "token: the join token does not prove namespace \"shop\", service account \"web\""
        ),
        "{status:?}"
    );

    let status = op.certify(WEB, "", csr(&key)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    let other = "spiffe://other.org/ns/shop/sa/web";
    let status = op.certify(other, &web_token, csr(&key)).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("\"other.org\""), "{status:?}");
    assert!(status.message().contains("\"cluster.local\""), "{status:?}");

    let status = op
        .certify(WEB, &web_token, b"garbage".to_vec())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("certificate_signing_request: "),
        "{status:?}"
    );

    let status = op
        .certify("spiffe://cluster.local/web", &web_token, csr(&key))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("identity: "), "{status:?}");

    op.certify(WEB, &web_token, csr(&key)).await.unwrap();
    assert_eq!(
        (
            op.outcomes("issued"),
            op.outcomes("denied"),
            op.outcomes("invalid")
        ),
        (1, 3, 2)
    );
}

/// `trellis identity rotate-root` beside a running server: within a poll or two new
/// certificates chain to the new root, and both roots are anchors until the old one is
/// dropped.
#[tokio::test]
async fn a_root_rotation_is_picked_up_while_serving() {
    let op = Operator::start(HOUR).await;
    let key = KeyPair::generate().unwrap();
    let token = op.token("shop", "web");
    let first = op.certify(WEB, &token, csr(&key)).await.unwrap();

    let rotation =
        identity::rotate_root(op.dir.path(), None, identity::DEFAULT_ROOT_LIFETIME).unwrap();
    let rotated = wait_for(&op, &token, &key, |r| r.trust_anchors.len() == 2).await;
    assert_eq!(
        rotated.trust_anchors[0], first.trust_anchors[0],
        "the old root stays trusted"
    );
    assert_eq!(
        verify_chain(&rotated),
        1,
        "the issuer chains to the new root"
    );
    assert_eq!(
        identity::x509::fingerprint(&rotated.trust_anchors[1]),
        rotation.new_root.fingerprint
    );

    identity::drop_old_roots(op.dir.path()).unwrap();
    let dropped = wait_for(&op, &token, &key, |r| r.trust_anchors.len() == 1).await;
    assert_eq!(dropped.trust_anchors[0], rotated.trust_anchors[1]);
    assert_eq!(verify_chain(&dropped), 0);
}

async fn wait_for(
    op: &Operator,
    token: &str,
    key: &KeyPair,
    done: impl Fn(&CertifyResponse) -> bool,
) -> CertifyResponse {
    for _ in 0..100 {
        let response = op.certify(WEB, token, csr(key)).await.unwrap();
        if done(&response) {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not pick up the change to its files within 10 s");
}

#[tokio::test]
async fn a_restarted_operator_keeps_its_ca_and_its_tokens() {
    let op = Operator::start(HOUR).await;
    let key = KeyPair::generate().unwrap();
    let token = op.token("shop", "web");
    let first = op.certify(WEB, &token, csr(&key)).await.unwrap();

    let (_tx, settings) = watch::channel(IdentitySettings::default());
    let (server, tokens) = identity::start(
        op.dir.path(),
        identity::DEFAULT_ROOT_LIFETIME,
        settings,
        &prometheus::Registry::new(),
    )
    .unwrap();
    assert_eq!(tokens.token_for("shop", "web"), token);
    let again = server
        .certify_request(CertifyRequest {
            identity: WEB.into(),
            token,
            certificate_signing_request: csr(&key),
        })
        .await
        .unwrap();
    assert_eq!(again.trust_anchors, first.trust_anchors);
    assert_eq!(
        again.intermediate_certificates,
        first.intermediate_certificates
    );
}
