//! OpenSSH `known_hosts` files: which host keys an SSH Git server may present.
//!
//! Supports what `ssh-keyscan` and `ssh` write: comma-separated host patterns with `*`
//! and `?` wildcards and `!` negation, `[host]:port` for other ports than 22, hashed
//! names (`|1|salt|hash`, HMAC-SHA1) and the `@revoked` marker. `@cert-authority` lines
//! are ignored (host certificates are not supported).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// One usable line of a known_hosts file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    patterns: Vec<String>,
    key_type: String,
    key: Vec<u8>,
    revoked: bool,
}

/// The keys of a known_hosts file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What a known_hosts file says of a presented key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host holds this key.
    Known,
    /// The host is listed, but with other keys: possibly a man in the middle.
    Mismatch,
    /// The key is marked `@revoked`.
    Revoked,
    /// No line names the host.
    UnknownHost,
}

impl KnownHosts {
    /// Parses a known_hosts file; lines that cannot be read are skipped, as ssh does.
    pub fn parse(text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    return None;
                }
                let mut fields = line.split_whitespace();
                let mut first = fields.next()?;
                let mut revoked = false;
                if first.starts_with('@') {
                    match first {
                        "@revoked" => revoked = true,
                        _ => return None,
                    }
                    first = fields.next()?;
                }
                let key_type = fields.next()?.to_owned();
                let key = STANDARD.decode(fields.next()?).ok()?;
                Some(Entry {
                    patterns: first.split(',').map(str::to_owned).collect(),
                    key_type,
                    key,
                    revoked,
                })
            })
            .collect();
        KnownHosts { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the key `host:port` presented (`key` is the raw public key blob, as in the
    /// file's base64 field).
    pub fn check(&self, host: &str, port: u16, key_type: &str, key: &[u8]) -> Verdict {
        let name = if port == 22 {
            host.to_owned()
        } else {
            format!("[{host}]:{port}")
        };
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| host_matches(&e.patterns, &name))
            .collect();
        if matching
            .iter()
            .any(|e| e.revoked && e.key_type == key_type && e.key == key)
        {
            return Verdict::Revoked;
        }
        let listed: Vec<&&Entry> = matching.iter().filter(|e| !e.revoked).collect();
        if listed.is_empty() {
            Verdict::UnknownHost
        } else if listed
            .iter()
            .any(|e| e.key_type == key_type && e.key == key)
        {
            Verdict::Known
        } else {
            Verdict::Mismatch
        }
    }
}

/// Whether a line's patterns name `name` (`host` or `[host]:port`): one positive match
/// and no negated one.
fn host_matches(patterns: &[String], name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_matches(hashed, name);
        } else if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard(negated, name) {
                return false;
            }
        } else {
            matched |= wildcard(pattern, name);
        }
    }
    matched
}

/// `salt|hash`, both base64: HMAC-SHA1 of the name keyed by the salt.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (STANDARD.decode(salt), STANDARD.decode(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// `*` and `?` wildcards, case-insensitive as host names are.
fn wildcard(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHV2g0ZQqC1x4aZ2b7tq2yQkmC2bQ0dH1cYx0JzP4Qe9";

    fn key(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn a_listed_host_with_its_key_is_known_and_with_another_key_is_a_mismatch() {
        let hosts = KnownHosts::parse(&format!(
            "# comment\n\ngit.example.com,10.0.0.7 ssh-ed25519 {KEY} deploy\n"
        ));
        let check = |host, key_type, k: &str| hosts.check(host, 22, key_type, &key(k));
        assert_eq!(check("git.example.com", "ssh-ed25519", KEY), Verdict::Known);
        assert_eq!(check("10.0.0.7", "ssh-ed25519", KEY), Verdict::Known);
        assert_eq!(
            check("git.example.com", "ssh-ed25519", OTHER),
            Verdict::Mismatch
        );
        assert_eq!(check("git.example.com", "ssh-rsa", KEY), Verdict::Mismatch);
        assert_eq!(
            check("gitlab.example.com", "ssh-ed25519", KEY),
            Verdict::UnknownHost
        );
    }

    #[test]
    fn another_port_is_written_in_brackets() {
        let hosts = KnownHosts::parse(&format!("[git.example.com]:2222 ssh-ed25519 {KEY}\n"));
        assert_eq!(
            hosts.check("git.example.com", 2222, "ssh-ed25519", &key(KEY)),
            Verdict::Known
        );
        assert_eq!(
            hosts.check("git.example.com", 22, "ssh-ed25519", &key(KEY)),
            Verdict::UnknownHost
        );
    }

    #[test]
    fn hashed_names_match_by_hmac_sha1() {
        // `ssh-keygen -H` form of "git.example.com", salt chosen for the test.
        let salt = [7u8; 20];
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt),
            b"git.example.com",
        );
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY}\n",
            STANDARD.encode(salt),
            STANDARD.encode(mac.as_ref())
        );
        let hosts = KnownHosts::parse(&line);
        assert_eq!(
            hosts.check("git.example.com", 22, "ssh-ed25519", &key(KEY)),
            Verdict::Known
        );
        assert_eq!(
            hosts.check("git.example.org", 22, "ssh-ed25519", &key(KEY)),
            Verdict::UnknownHost
        );
    }

    #[test]
    fn wildcards_negation_and_revoked_keys() {
        let hosts = KnownHosts::parse(&format!(
            "*.example.com,!evil.example.com ssh-ed25519 {KEY}\n@revoked * ssh-ed25519 {OTHER}\n@cert-authority * ssh-ed25519 {KEY}\nnot a valid line\n"
        ));
        assert_eq!(
            hosts.check("git.example.com", 22, "ssh-ed25519", &key(KEY)),
            Verdict::Known
        );
        assert_eq!(
            hosts.check("evil.example.com", 22, "ssh-ed25519", &key(KEY)),
            Verdict::UnknownHost
        );
        assert_eq!(
            hosts.check("git.example.com", 22, "ssh-ed25519", &key(OTHER)),
            Verdict::Revoked
        );
    }
}
