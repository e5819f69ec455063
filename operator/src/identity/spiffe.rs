//! Workload identities as SPIFFE ids: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.
//!
//! The same shape and character rules as the proxy's (`trellis_proxy::tls::SpiffeId`): every
//! part is non-empty and holds only lowercase letters, digits, `-`, `.` and `_`.

use std::fmt;
use std::str::FromStr;

/// The identity of one workload: a service account in a namespace of a trust domain.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    /// An id from its parts, each checked as [`SpiffeId::from_str`] checks them.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeError> {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
        .to_string()
        .parse()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// Why a text is not a Trellis SPIFFE id; the message says what would be valid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeError {
    #[error(
        "{text:?} is not a SPIFFE id: expected spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>, e.g. spiffe://cluster.local/ns/shop/sa/web"
    )]
    Shape { text: String },
    #[error(
        "{text:?}: the {part} {value:?} is not valid: use a non-empty name of lowercase letters, digits, '-', '.' and '_'"
    )]
    Part {
        text: String,
        /// `trust domain`, `namespace` or `service account`.
        part: &'static str,
        value: String,
    },
}

impl FromStr for SpiffeId {
    type Err = SpiffeError;

    fn from_str(text: &str) -> Result<Self, SpiffeError> {
        let shape = || SpiffeError::Shape {
            text: text.to_owned(),
        };
        let rest = text.strip_prefix("spiffe://").ok_or_else(shape)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [td, "ns", ns, "sa", sa] = parts[..] else {
            return Err(shape());
        };
        for (part, value) in [
            ("trust domain", td),
            ("namespace", ns),
            ("service account", sa),
        ] {
            if !valid_part(value) {
                return Err(SpiffeError::Part {
                    text: text.to_owned(),
                    part,
                    value: value.to_owned(),
                });
            }
        }
        Ok(SpiffeId {
            trust_domain: td.to_owned(),
            namespace: ns.to_owned(),
            service_account: sa.to_owned(),
        })
    }
}

/// Whether `s` may be a trust domain, namespace or service account in an id.
pub fn valid_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids_read_and_print_the_same() {
        for text in [
            "spiffe://cluster.local/ns/shop/sa/web",
            "spiffe://example.org/ns/kube-system/sa/default",
            "spiffe://td/ns/a_b/sa/x.y-z0",
        ] {
            let id: SpiffeId = text.parse().unwrap();
            assert_eq!(id.to_string(), text);
        }
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap();
        assert_eq!(
            (
                id.trust_domain.as_str(),
                id.namespace.as_str(),
                id.service_account.as_str()
            ),
            ("cluster.local", "shop", "web")
        );
    }

    #[test]
    fn malformed_ids_say_what_is_valid() {
        let shape = "expected spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>";
        let chars = "lowercase letters, digits, '-', '.' and '_'";
        for (text, says) in [
            ("", shape),
            ("web", shape),
            ("http://cluster.local/ns/shop/sa/web", shape),
            ("spiffe://cluster.local/ns/shop", shape),
            ("spiffe://cluster.local/ns/shop/sa/web/extra", shape),
            ("spiffe://cluster.local/sa/web/ns/shop", shape),
            ("spiffe://cluster.local/ns/shop/sa/web/", shape),
            (
                "spiffe://Cluster.local/ns/shop/sa/web",
                "the trust domain \"Cluster.local\"",
            ),
            ("spiffe:///ns/shop/sa/web", "the trust domain \"\""),
            ("spiffe://cluster.local/ns//sa/web", "the namespace \"\""),
            (
                "spiffe://cluster.local/ns/shop/sa/We b",
                "the service account \"We b\"",
            ),
            ("spiffe://cluster.local:8080/ns/shop/sa/web", "trust domain"),
        ] {
            let err = text.parse::<SpiffeId>().unwrap_err().to_string();
            assert!(err.contains(says), "{text:?}: {err}");
            if matches!(
                text.parse::<SpiffeId>().unwrap_err(),
                SpiffeError::Part { .. }
            ) {
                assert!(err.contains(chars), "{text:?}: {err}");
            }
        }
    }

    #[test]
    fn new_checks_its_parts() {
        assert_eq!(
            SpiffeId::new("cluster.local", "shop", "web")
                .unwrap()
                .to_string(),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        assert!(SpiffeId::new("cluster.local", "shop/sa/x", "web").is_err());
        assert!(SpiffeId::new("cluster.local", "Shop", "web").is_err());
    }
}
