//! What `init`'s `--skip-*` flags name: port ranges, and networks of either IP family (an
//! IPv4 network goes to the iptables rules, an IPv6 one to the ip6tables rules).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::rules::Family;

/// One port (`25`) or an inclusive range (`8000-8100` or `8000:8100`).
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
                .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
        };
        let (first, last) = match text.split_once(['-', ':']) {
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
    /// As iptables writes it: `25` or `8000:8100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8`; a bare address is a `/32` or a
/// `/128`. Bits beyond the prefix are cleared, as iptables shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("{text:?} is not an IP address or network (10.0.0.0/8, fd00::/8)")
        })?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix: u8 = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has no prefix length 0-{max}"))?,
        };
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse_or_say_why_not() {
        assert_eq!(
            "8000:8100".parse::<PortRange>().unwrap().to_string(),
            "8000:8100"
        );
        assert_eq!(
            "8000-8100".parse::<PortRange>().unwrap().to_string(),
            "8000:8100"
        );
        assert_eq!("443".parse::<PortRange>().unwrap().to_string(), "443");
        assert!("0".parse::<PortRange>().is_err());
        assert!(
            "9-8"
                .parse::<PortRange>()
                .unwrap_err()
                .contains("ends before")
        );
        assert!("http".parse::<PortRange>().is_err());
    }

    #[test]
    fn ipv4_networks_parse_with_the_host_bits_cleared() {
        let cidr = |t: &str| t.parse::<Cidr>().map(|c| (c.to_string(), c.family()));
        assert_eq!(cidr("0.0.0.0/0"), Ok(("0.0.0.0/0".into(), Family::V4)));
        assert_eq!(cidr("10.1.2.3/8"), Ok(("10.0.0.0/8".into(), Family::V4)));
        assert_eq!(
            cidr("169.254.169.254"),
            Ok(("169.254.169.254/32".into(), Family::V4))
        );
        assert!("10.0.0.0/33".parse::<Cidr>().unwrap_err().contains("0-32"));
    }

    #[test]
    fn ipv6_networks_parse_with_the_host_bits_cleared() {
        let cidr = |t: &str| t.parse::<Cidr>().map(|c| (c.to_string(), c.family()));
        assert_eq!(cidr("fd00::1/8"), Ok(("fd00::/8".into(), Family::V6)));
        assert_eq!(cidr("::/0"), Ok(("::/0".into(), Family::V6)));
        assert_eq!(
            cidr("fd00:ec2::254"),
            Ok(("fd00:ec2::254/128".into(), Family::V6))
        );
        assert!("fd00::/129".parse::<Cidr>().unwrap_err().contains("0-128"));
        assert!("web.shop".parse::<Cidr>().unwrap_err().contains("fd00::/8"));
    }
}
