//! What `trellis-proxy init`'s `--skip-*` flags take: ports or port ranges, and networks.
//! Checked here so that a mistake is reported where it is written (inject.yaml or a pod
//! annotation), not by an init container that fails at pod start.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// One port (`25`) or an inclusive range (`8000-8100`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} is not a port (1-65535); write e.g. 25 or 8000-8100"))
        };
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(text)?, port(text)?),
        };
        if first > last {
            return Err(format!("port range {text:?} ends before it starts"));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    /// As `trellis-proxy init` takes it: `25` or `8000-8100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// An IPv4 or IPv6 network (`169.254.169.254/32`, `fd00::/8`) or a bare address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr(String);

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("{text:?} is not an IP network; write e.g. 10.0.0.0/8 or fd00::/8");
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if let Some(prefix) = prefix {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?;
        }
        Ok(Cidr(text.to_owned()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A comma-separated list (`25,3306,8000-8100`), as the annotations and the flags take it.
pub fn parse_list<T: FromStr<Err = String>>(text: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::parse)
        .collect()
}

/// A list as `trellis-proxy init`'s flags take it: `25,3306,8000-8100`.
pub fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl<'de> Deserialize<'de> for PortRange {
    /// `25` (a number) or `"8000-8100"`.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PortRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (25) or a port range (\"8000-8100\")")
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortRange, E> {
                n.to_string().parse().map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortRange, E> {
                n.to_string().parse().map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PortRange, E> {
                text.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges_are_read_as_init_takes_them() {
        let ports: Vec<PortRange> = parse_list(" 25, 3306,8000-8100 ,").unwrap();
        assert_eq!(join(&ports), "25,3306,8000-8100");
    }

    #[test]
    fn bad_ports_say_what_to_write() {
        let e = parse_list::<PortRange>("25,smtp").unwrap_err();
        assert_eq!(
            e,
            r#""smtp" is not a port (1-65535); write e.g. 25 or 8000-8100"#
        );
        assert!(parse_list::<PortRange>("0").is_err());
        assert!(parse_list::<PortRange>("70000").is_err());
        let e = parse_list::<PortRange>("9000-8000").unwrap_err();
        assert_eq!(e, r#"port range "9000-8000" ends before it starts"#);
    }

    #[test]
    fn networks_of_both_families_and_bare_addresses_are_accepted() {
        let cidrs: Vec<Cidr> = parse_list("169.254.169.254/32,fd00::/8,10.1.2.3").unwrap();
        assert_eq!(join(&cidrs), "169.254.169.254/32,fd00::/8,10.1.2.3");
        for bad in ["10.0.0.0/33", "fd00::/129", "example.com", "10.0.0.0/x"] {
            let e = parse_list::<Cidr>(bad).unwrap_err();
            assert!(e.contains("is not an IP network"), "{bad}: {e}");
        }
    }
}
