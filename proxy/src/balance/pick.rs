//! Endpoint choice among the eligible (not ejected) endpoints.

use http::header;

use crate::body::Req;
use crate::config::HashKey;
use crate::telemetry::ClientAddr;

/// Power of two choices: two distinct random candidates, the one with the lower load wins.
pub fn p2c(eligible: &[usize], load: impl Fn(usize) -> f64) -> Option<usize> {
    match eligible.len() {
        0 => None,
        1 => Some(eligible[0]),
        n => {
            let a = fastrand::usize(..n);
            let mut b = fastrand::usize(..n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (eligible[a], eligible[b]);
            Some(if load(b) < load(a) { b } else { a })
        }
    }
}

pub fn round_robin(eligible: &[usize], counter: usize) -> Option<usize> {
    (!eligible.is_empty()).then(|| eligible[counter % eligible.len()])
}

/// The bytes a ring-hash balancer hashes for a request, if the request carries them.
pub fn hash_key(key: &HashKey, req: &Req) -> Option<Vec<u8>> {
    match key {
        HashKey::Header(name) => req.headers().get(name).map(|v| v.as_bytes().to_vec()),
        HashKey::Cookie(name) => req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_bytes().to_vec()),
        HashKey::SourceIp => req
            .extensions()
            .get::<ClientAddr>()
            .map(|c| c.0.ip().to_string().into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2c_prefers_the_lighter_of_two() {
        let loads = [5.0, 1.0];
        for _ in 0..50 {
            assert_eq!(p2c(&[0, 1], |i| loads[i]), Some(1));
        }
        assert_eq!(p2c(&[], |_| 0.0), None);
        assert_eq!(p2c(&[7], |_| 0.0), Some(7));
    }

    #[test]
    fn a_cookie_key_is_found_among_others() {
        let mut req = Req::new(crate::body::empty());
        req.headers_mut()
            .insert(header::COOKIE, "a=1; session=xyz; b=2".parse().unwrap());
        let key = hash_key(&HashKey::Cookie("session".into()), &req);
        assert_eq!(key.as_deref(), Some(&b"xyz"[..]));
        assert_eq!(hash_key(&HashKey::Cookie("none".into()), &req), None);
    }
}
