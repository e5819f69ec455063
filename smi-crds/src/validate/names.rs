//! Kubernetes name rules.

pub const LABEL_RULE: &str =
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";
pub const SERVICE_RULE: &str = "use at most 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
pub const SUBDOMAIN_RULE: &str = "use at most 253 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit";
pub const LABEL_KEY_RULE: &str = "use a name of at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, optionally after a DNS subdomain prefix and '/' (e.g. version, app.kubernetes.io/version)";

/// RFC 1123 label: namespaces.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1035 label: Service names (must start with a letter).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// RFC 1123 subdomain: most object names (ServiceAccounts, custom resources).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// A label key (Kubernetes' qualified name): `name` or `prefix/name`, the prefix a DNS
/// subdomain.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let b = name.as_bytes();
    prefix.is_none_or(is_dns1123_subdomain)
        && !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// An HTTP header field name (RFC 9110 token).
pub fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_start_with_a_letter() {
        assert!(is_dns1035_label("web-v2"));
        assert!(!is_dns1035_label("2web"));
        assert!(!is_dns1035_label("Web"));
        assert!(!is_dns1035_label("web-"));
        assert!(!is_dns1035_label(&"a".repeat(64)));
    }

    #[test]
    fn label_keys_may_have_a_prefix() {
        for good in ["version", "app.kubernetes.io/version", "Track_1.x", "a"] {
            assert!(is_label_key(good), "{good:?}");
        }
        for bad in [
            "",
            "-version",
            "version-",
            "a/b/c",
            "/version",
            "Example.com/v",
            "v 1",
        ] {
            assert!(!is_label_key(bad), "{bad:?}");
        }
        assert!(!is_label_key(&"a".repeat(64)));
    }

    #[test]
    fn subdomains_allow_dots() {
        assert!(is_dns1123_subdomain("build-bot.ci"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(!is_dns1123_subdomain("under_score"));
    }
}
