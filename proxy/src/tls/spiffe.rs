//! SPIFFE ids of meshed workloads: `spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>`.

use std::fmt;
use std::str::FromStr;

/// A workload identity, as carried in a certificate's URI subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        Self {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
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

/// Why a text is no Trellis SPIFFE id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a SPIFFE id of the form spiffe://<trust-domain>/ns/<namespace>/sa/<serviceaccount>"
)]
pub struct NotSpiffe {
    pub text: String,
}

impl FromStr for SpiffeId {
    type Err = NotSpiffe;

    fn from_str(text: &str) -> Result<Self, NotSpiffe> {
        let fail = || NotSpiffe {
            text: text.to_owned(),
        };
        let rest = text.strip_prefix("spiffe://").ok_or_else(fail)?;
        let mut parts = rest.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(td), Some("ns"), Some(ns), Some("sa"), Some(sa), None)
                if [td, ns, sa].iter().all(|p| valid_segment(p)) =>
            {
                Ok(SpiffeId::new(td, ns, sa))
            }
            _ => Err(fail()),
        }
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_and_prints_the_same() {
        let text = "spiffe://cluster.local/ns/shop/sa/web";
        let id: SpiffeId = text.parse().unwrap();
        assert_eq!(id, SpiffeId::new("cluster.local", "shop", "web"));
        assert_eq!(id.to_string(), text);
    }

    #[test]
    fn other_shapes_are_refused() {
        for text in [
            "http://cluster.local/ns/shop/sa/web",
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/ns/shop/sa/web/extra",
            "spiffe://cluster.local/sa/web/ns/shop",
            "spiffe://cluster.local/ns//sa/web",
            "spiffe://Cluster.local/ns/shop/sa/web",
        ] {
            assert!(text.parse::<SpiffeId>().is_err(), "{text}");
        }
    }
}
