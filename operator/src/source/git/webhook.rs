//! The on-demand sync trigger: `POST /hooks/git` on the admin endpoint, as GitHub, GitLab
//! or any CI job calls it after a push. Only a caller holding the shared secret triggers:
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
//! - GitLab: `X-Gitlab-Token: <secret>`;
//! - anything else: `Authorization: Bearer <secret>`.
//!
//! A trigger only makes the source look at the remote now; what it applies is whatever
//! the branch holds then, never anything from the request body.

use http::HeaderMap;
use ring::hmac;

/// Why a hook call was turned down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No credential in the request.
    Unauthenticated,
    /// A credential that does not match the secret.
    BadSecret,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::Unauthenticated => {
                "no credential: send X-Hub-Signature-256 (GitHub), X-Gitlab-Token (GitLab) or Authorization: Bearer <secret>"
            }
            Refused::BadSecret => "the credential does not match --git-webhook-secret-file",
        })
    }
}

/// Checks a hook call against the shared secret.
pub fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), Refused> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(signature) = header("x-hub-signature-256") {
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or(Refused::BadSecret)?;
        let mac = decode_hex(hex).ok_or(Refused::BadSecret)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
        return hmac::verify(&key, body, &mac).map_err(|_| Refused::BadSecret);
    }
    let token = header("x-gitlab-token")
        .or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::trim)));
    match token {
        Some(token) if same(token.as_bytes(), secret) => Ok(()),
        Some(_) => Err(Refused::BadSecret),
        None => Err(Refused::Unauthenticated),
    }
}

/// GitHub's connectivity check after a webhook is created: answered, no sync.
pub fn is_ping(headers: &HeaderMap) -> bool {
    headers
        .get("x-github-event")
        .is_some_and(|event| event == "ping")
}

/// Constant-time equality (through an HMAC of one side checked against the other).
fn same(a: &[u8], b: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, b"trellis webhook compare");
    hmac::verify(&key, a, hmac::sign(&key, b).as_ref()).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    fn github_signature(secret: &[u8], body: &[u8]) -> String {
        let mac = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body);
        let hex: String = mac.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256={hex}")
    }

    #[test]
    fn github_signs_the_body_with_the_secret() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = headers(&[("x-hub-signature-256", &github_signature(b"s3cret", body))]);
        assert_eq!(verify(b"s3cret", &good, body), Ok(()));
        assert_eq!(
            verify(b"s3cret", &good, b"{\"ref\":\"refs/heads/evil\"}"),
            Err(Refused::BadSecret),
            "a signature over another body"
        );
        let other = headers(&[("x-hub-signature-256", &github_signature(b"guess", body))]);
        assert_eq!(verify(b"s3cret", &other, body), Err(Refused::BadSecret));
        let garbage = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert_eq!(verify(b"s3cret", &garbage, body), Err(Refused::BadSecret));
    }

    #[test]
    fn gitlab_and_bearer_tokens_are_the_secret_itself() {
        assert_eq!(
            verify(b"s3cret", &headers(&[("x-gitlab-token", "s3cret")]), b""),
            Ok(())
        );
        assert_eq!(
            verify(
                b"s3cret",
                &headers(&[("authorization", "Bearer s3cret")]),
                b""
            ),
            Ok(())
        );
        assert_eq!(
            verify(b"s3cret", &headers(&[("x-gitlab-token", "s3cre")]), b""),
            Err(Refused::BadSecret)
        );
        assert_eq!(
            verify(b"s3cret", &headers(&[]), b""),
            Err(Refused::Unauthenticated)
        );
    }

    #[test]
    fn a_github_ping_is_recognised() {
        assert!(is_ping(&headers(&[("x-github-event", "ping")])));
        assert!(!is_ping(&headers(&[("x-github-event", "push")])));
    }
}
