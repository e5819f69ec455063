//! Consistent-hash ring: each endpoint holds many points on a 64-bit ring; a key goes to
//! the first endpoint clockwise from its hash. Adding or removing an endpoint moves only
//! the keys next to its points.

use std::net::SocketAddr;

const POINTS_PER_ENDPOINT: u32 = 128;

#[derive(Debug)]
pub struct Ring {
    /// (point, endpoint index), sorted by point.
    points: Vec<(u64, usize)>,
}

impl Ring {
    pub fn new(endpoints: &[SocketAddr]) -> Self {
        let mut points = Vec::with_capacity(endpoints.len() * POINTS_PER_ENDPOINT as usize);
        for (i, addr) in endpoints.iter().enumerate() {
            let name = addr.to_string();
            for p in 0..POINTS_PER_ENDPOINT {
                points.push((hash(format!("{name}#{p}").as_bytes()), i));
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// Endpoint indices in ring order from `key`'s position (each index once).
    pub fn walk(&self, key: &[u8]) -> impl Iterator<Item = usize> + '_ {
        let h = hash(key);
        let start = self.points.partition_point(|(p, _)| *p < h);
        let mut seen = Vec::new();
        self.points[start..]
            .iter()
            .chain(&self.points[..start])
            .map(|(_, i)| *i)
            .filter(move |i| {
                if seen.contains(i) {
                    false
                } else {
                    seen.push(*i);
                    true
                }
            })
    }
}

/// FNV-1a with a final avalanche (splitmix64), stable across processes and releases.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1], 8000 + i)))
            .collect()
    }

    #[test]
    fn a_key_always_lands_on_the_same_endpoint() {
        let ring = Ring::new(&addrs(3));
        let first = ring.walk(b"user-42").next();
        for _ in 0..10 {
            assert_eq!(ring.walk(b"user-42").next(), first);
        }
    }

    #[test]
    fn keys_spread_over_every_endpoint() {
        let ring = Ring::new(&addrs(3));
        let mut counts = [0; 3];
        for k in 0..3000 {
            counts[ring.walk(format!("k{k}").as_bytes()).next().unwrap()] += 1;
        }
        for c in counts {
            assert!((700..1300).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let all = addrs(4);
        let before = Ring::new(&all);
        let after = Ring::new(&all[..3]);
        let moved = (0..2000)
            .filter(|k| {
                let key = format!("k{k}");
                let b = before.walk(key.as_bytes()).next().unwrap();
                let a = after.walk(key.as_bytes()).next().unwrap();
                b != 3 && a != b
            })
            .count();
        assert_eq!(moved, 0);
    }

    #[test]
    fn the_walk_visits_each_endpoint_once() {
        let ring = Ring::new(&addrs(5));
        let mut order: Vec<_> = ring.walk(b"x").collect();
        order.sort_unstable();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
    }
}
