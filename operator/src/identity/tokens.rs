//! Proof of identity: what a workload presents with its CSR, and how it is checked.
//!
//! - [`TokenValidator`]: the interface the Identity server is generic over. Kubernetes mode
//!   will check projected ServiceAccount tokens with a TokenReview.
//! - [`JoinTokens`]: local mode. A token is `trellis-join-v1.` + base64url(HMAC-SHA256(key,
//!   "<namespace>/<serviceaccount>")) with a 32-byte key kept in
//!   `<data-dir>/identity/join-token.key`: it proves exactly one namespace and service
//!   account, and only to an operator holding that key. `trellis join-token` prints one.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::SecureRandom as _;

use super::IdentityError;
use super::spiffe::SpiffeId;
use super::store::{Layout, write_atomic};

/// Checks that a token proves an identity.
#[tonic::async_trait]
pub trait TokenValidator: Send + Sync + 'static {
    /// Ok when `token` proves `identity` (namespace + service account); Err says why, for
    /// the caller.
    async fn validate(&self, token: &str, identity: &SpiffeId) -> Result<(), String>;
}

/// What every join token starts with (the format's version).
pub const JOIN_TOKEN_PREFIX: &str = "trellis-join-v1.";

/// Length of the join token key in bytes.
pub const KEY_LEN: usize = 32;

/// Local-mode join tokens: made and checked with one secret key.
pub struct JoinTokens {
    key: hmac::Key,
}

impl std::fmt::Debug for JoinTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinTokens { key: <secret> }")
    }
}

impl JoinTokens {
    /// Tokens with the key in `<data_dir>/identity/join-token.key`, made (32 random bytes,
    /// mode 0600) when the file is missing. The flag says whether it was made.
    pub fn load_or_create(data_dir: &Path) -> Result<(JoinTokens, bool), IdentityError> {
        let layout = Layout::new(data_dir);
        let path = &layout.join_token_key;
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let mut key = [0u8; KEY_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut key)
            .expect("the system's random number generator");
        layout.create_dir()?;
        write_atomic(path, &key, 0o600)?;
        Ok((Self::from_key(&key), true))
    }

    /// Tokens with the key in `path`, which must hold exactly [`KEY_LEN`] bytes.
    pub fn load(path: &Path) -> Result<JoinTokens, IdentityError> {
        let key = std::fs::read(path).map_err(IdentityError::io("reading", path))?;
        if key.len() != KEY_LEN {
            return Err(IdentityError::file(
                path,
                format!(
                    "holds {} bytes, but a join token key is {KEY_LEN} random bytes: restore it, or remove it to make a new key (every join token given out then stops working)",
                    key.len()
                ),
            ));
        }
        Ok(Self::from_key(&key))
    }

    pub fn from_key(key: &[u8]) -> JoinTokens {
        JoinTokens {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// The token proving `namespace`/`service_account`.
    pub fn token_for(&self, namespace: &str, service_account: &str) -> String {
        let tag = hmac::sign(&self.key, subject(namespace, service_account).as_bytes());
        format!(
            "{JOIN_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Ok when `token` is the token for `namespace`/`service_account` (compared in
    /// constant time).
    pub fn check(&self, token: &str, namespace: &str, service_account: &str) -> Result<(), String> {
        let hint = format!(
            "make one with `trellis join-token --namespace {namespace} --service-account {service_account}`"
        );
        let token = token.trim();
        if token.is_empty() {
            return Err(format!("the token is empty: {hint}"));
        }
        let Some(encoded) = token.strip_prefix(JOIN_TOKEN_PREFIX) else {
            return Err(format!(
                "not a join token (they start with {JOIN_TOKEN_PREFIX:?}): {hint}"
            ));
        };
        let tag = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| format!("the join token is damaged (not base64url): {hint}"))?;
        hmac::verify(
            &self.key,
            subject(namespace, service_account).as_bytes(),
            &tag,
        )
        .map_err(|_| {
            format!(
                "the join token does not prove namespace {namespace:?}, service account {service_account:?}: it was made for another service account or by another operator's key; {hint}"
            )
        })
    }
}

/// What a token is bound to.
fn subject(namespace: &str, service_account: &str) -> String {
    format!("{namespace}/{service_account}")
}

#[tonic::async_trait]
impl TokenValidator for JoinTokens {
    async fn validate(&self, token: &str, identity: &SpiffeId) -> Result<(), String> {
        self.check(token, &identity.namespace, &identity.service_account)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> JoinTokens {
        JoinTokens::from_key(&[7u8; KEY_LEN])
    }

    fn web() -> SpiffeId {
        "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap()
    }

    async fn validate(tokens: &JoinTokens, token: &str) -> Result<(), String> {
        tokens.validate(token, &web()).await
    }

    #[tokio::test]
    async fn the_token_for_an_identity_proves_it() {
        let t = tokens();
        let token = t.token_for("shop", "web");
        assert!(token.starts_with(JOIN_TOKEN_PREFIX), "{token}");
        assert_eq!(validate(&t, &token).await, Ok(()));
        // Surrounding whitespace (a token file ending in a newline) does not matter.
        assert_eq!(validate(&t, &format!("{token}\n")).await, Ok(()));
    }

    #[tokio::test]
    async fn a_token_for_another_service_account_or_namespace_is_refused() {
        let t = tokens();
        for token in [
            t.token_for("shop", "api"),
            t.token_for("other", "web"),
            t.token_for("web", "shop"),
        ] {
            let err = validate(&t, &token).await.unwrap_err();
            assert!(
                err.contains("does not prove namespace \"shop\", service account \"web\""),
                "{err}"
            );
            assert!(
                err.contains("trellis join-token --namespace shop --service-account web"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn a_token_from_another_key_is_refused() {
        let other = JoinTokens::from_key(&[8u8; KEY_LEN]).token_for("shop", "web");
        assert!(validate(&tokens(), &other).await.is_err());
    }

    #[tokio::test]
    async fn tampered_and_malformed_tokens_are_refused_with_the_reason() {
        let t = tokens();
        let good = t.token_for("shop", "web");
        let mut tampered = good.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for (token, says) in [
            (tampered.as_str(), "does not prove"),
            (&good[..good.len() - 3], "does not prove"),
            ("", "the token is empty"),
            ("eyJhbGciOiJSUzI1NiJ9.e30.sig", "not a join token"),
            ("trellis-join-v1.not base64!", "damaged"),
        ] {
            let err = validate(&t, token).await.unwrap_err();
            assert!(err.contains(says), "{token:?}: {err}");
        }
    }

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = JoinTokens::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (second, created) = JoinTokens::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(
            first.token_for("shop", "web"),
            second.token_for("shop", "web")
        );
        let path = Layout::new(dir.path()).join_token_key;
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), KEY_LEN as u64);
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = Layout::new(dir.path()).join_token_key;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"short").unwrap();
        let err = JoinTokens::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("holds 5 bytes"), "{err}");
    }
}
