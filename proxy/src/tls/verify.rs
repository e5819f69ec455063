//! Verifying the server side of an mTLS connection: the chain must lead to a trusted root
//! and the leaf must carry exactly the SPIFFE id the control plane expects for the
//! endpoint. Host names play no part (endpoints are addressed by IP).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::{
    CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::SpiffeId;
use super::credentials::leaf_identity;

/// The server presented a valid certificate for another workload.
#[derive(Debug, thiserror::Error)]
#[error("the peer is {found}, not the expected {expected}")]
pub struct IdentityMismatch {
    pub expected: SpiffeId,
    pub found: SpiffeId,
}

#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeServerVerifier {
    pub fn new(roots: Arc<RootCertStore>, expected: SpiffeId) -> Self {
        Self {
            roots,
            expected,
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
        }
    }
}

/// Checks `end_entity` chains to `roots` for `usage`.
pub fn verify_chain(
    roots: &RootCertStore,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
    usage: webpki::KeyUsage,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<(), Error> {
    let cert = webpki::EndEntityCert::try_from(end_entity).map_err(pki_error)?;
    cert.verify_for_usage(
        algorithms.all,
        &roots.roots,
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map_err(pki_error)?;
    Ok(())
}

fn pki_error(e: webpki::Error) -> Error {
    use webpki::Error as E;
    Error::InvalidCertificate(match e {
        E::UnknownIssuer => CertificateError::UnknownIssuer,
        E::CertExpired { .. } => CertificateError::Expired,
        E::CertNotValidYet { .. } => CertificateError::NotValidYet,
        E::InvalidSignatureForPublicKey => CertificateError::BadSignature,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    })
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        verify_chain(
            &self.roots,
            end_entity,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            &self.algorithms,
        )?;
        let (found, _) = leaf_identity(end_entity).map_err(|e| {
            Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
        })?;
        if found != self.expected {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(IdentityMismatch {
                    expected: self.expected.clone(),
                    found,
                })),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
