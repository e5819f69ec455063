//! Kubernetes mode's proof of identity: the proxy's projected ServiceAccount token (audience
//! `trellis`), checked with a TokenReview.
//!
//! The token proves `spiffe://<td>/ns/<ns>/sa/<sa>` when the API server says it is
//! authenticated, for the audience `trellis`, as `system:serviceaccount:<ns>:<sa>`. A token
//! for another audience (the default API token, say) is refused: a token made for
//! Trellis cannot be replayed against the API server's other clients, and the reverse.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::identity::{SpiffeId, TokenValidator};

/// The audience projected tokens are requested for (the injected volume sets it).
pub const AUDIENCE: &str = "trellis";

/// Checks tokens with the API server.
pub struct TokenReviewer {
    api: Api<TokenReview>,
}

impl TokenReviewer {
    pub fn new(client: Client) -> Self {
        Self {
            api: Api::all(client),
        }
    }
}

/// Whether a TokenReview's answer proves `identity` (pure).
pub fn verdict(status: &TokenReviewStatus, identity: &SpiffeId) -> Result<(), String> {
    if status.authenticated != Some(true) {
        return Err(match status.error.as_deref() {
            Some(e) if !e.is_empty() => format!("the token was not accepted: {e}"),
            _ => "the token was not accepted by the Kubernetes API server".to_owned(),
        });
    }
    if !status.audiences.iter().flatten().any(|a| a == AUDIENCE) {
        return Err(format!(
            "the token is not for the audience {AUDIENCE:?}: project a ServiceAccount token with `audience: {AUDIENCE}` (the injected `trellis-identity` volume does)"
        ));
    }
    let expected = format!(
        "system:serviceaccount:{}:{}",
        identity.namespace, identity.service_account
    );
    let user = status
        .user
        .as_ref()
        .and_then(|u| u.username.as_deref())
        .unwrap_or_default();
    if user != expected {
        return Err(format!(
            "the token belongs to {user:?}, not {expected:?}: a workload can only get the identity of its own ServiceAccount"
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl TokenValidator for TokenReviewer {
    async fn validate(&self, token: &str, identity: &SpiffeId) -> Result<(), String> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.trim().to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let answer = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| {
                format!(
                    "the TokenReview failed (is the operator allowed to create tokenreviews?): {e}"
                )
            })?;
        verdict(&answer.status.unwrap_or_default(), identity)
    }
}
