//! The iptables rules of transparent interception, as `iptables-restore` input for the
//! nat table. Pure: options (and what `iptables-save -t nat` shows today) in, text out.
//!
//! ```text
//! PREROUTING -> TRELLIS_PREROUTING: admin port, --skip-inbound-ports  RETURN
//!                                   other TCP -> TRELLIS_INBOUND: REDIRECT to the inbound port
//! OUTPUT     -> TRELLIS_OUTPUT:     the proxy's uid, out via lo, --skip-outbound-ports,
//!                                   --skip-outbound-cidrs  RETURN
//!                                   other TCP -> TRELLIS_OUTBOUND: REDIRECT to the outbound port
//! ```
//!
//! Every rule lives in the four `TRELLIS_` chains but the two jumps from the built-in
//! chains. Installing declares the chains (which creates or empties them), deletes the
//! jumps already there, and appends them again: running it twice leaves the same rules.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The chains this module owns, in the order they are declared.
pub const CHAINS: [&str; 4] = [
    "TRELLIS_PREROUTING",
    "TRELLIS_INBOUND",
    "TRELLIS_OUTPUT",
    "TRELLIS_OUTBOUND",
];

/// What to intercept and what to leave alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Connections made by this uid (the proxy's) are never redirected.
    pub proxy_uid: u32,
    pub outbound_port: u16,
    pub inbound_port: u16,
    /// Never redirected inbound, so probes and scrapes reach the proxy's admin listener.
    pub admin_port: u16,
    pub skip_outbound_ports: Vec<PortRange>,
    pub skip_outbound_cidrs: Vec<Cidr>,
    pub skip_inbound_ports: Vec<PortRange>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            proxy_uid: 2102,
            outbound_port: 4140,
            inbound_port: 4143,
            admin_port: 4191,
            skip_outbound_ports: vec![],
            skip_outbound_cidrs: vec![],
            skip_inbound_ports: vec![],
        }
    }
}

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

/// An IPv4 network, `10.0.0.0/8`; a bare address is a `/32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (addr, prefix) = text.split_once('/').unwrap_or((text, "32"));
        let addr: Ipv4Addr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IPv4 address or network (10.0.0.0/8)"))?;
        let prefix: u8 = prefix
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("{text:?} has no prefix length 0-32"))?;
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        Ok(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The rules alone, without the table header, clean-up or `COMMIT` (what `--dry-run`
/// shows, and what [`install`] appends).
pub fn rules(opts: &Options) -> Vec<String> {
    let mut out = vec![];
    let mut add = |line: String| out.push(line);
    for chain in CHAINS {
        add(format!(":{chain} - [0:0]"));
    }
    add(format!(
        "-A TRELLIS_INBOUND -p tcp -j REDIRECT --to-ports {}",
        opts.inbound_port
    ));
    add(format!(
        "-A TRELLIS_PREROUTING -p tcp --dport {} -j RETURN",
        opts.admin_port
    ));
    for ports in &opts.skip_inbound_ports {
        add(format!(
            "-A TRELLIS_PREROUTING -p tcp --dport {ports} -j RETURN"
        ));
    }
    add("-A TRELLIS_PREROUTING -p tcp -j TRELLIS_INBOUND".into());
    add(format!(
        "-A TRELLIS_OUTBOUND -p tcp -j REDIRECT --to-ports {}",
        opts.outbound_port
    ));
    add(format!(
        "-A TRELLIS_OUTPUT -m owner --uid-owner {} -j RETURN",
        opts.proxy_uid
    ));
    add("-A TRELLIS_OUTPUT -o lo -j RETURN".into());
    for ports in &opts.skip_outbound_ports {
        add(format!(
            "-A TRELLIS_OUTPUT -p tcp --dport {ports} -j RETURN"
        ));
    }
    for cidr in &opts.skip_outbound_cidrs {
        add(format!("-A TRELLIS_OUTPUT -d {cidr} -j RETURN"));
    }
    add("-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND".into());
    add("-A PREROUTING -j TRELLIS_PREROUTING".into());
    add("-A OUTPUT -j TRELLIS_OUTPUT".into());
    out
}

/// `iptables-restore --noflush` input that installs [`rules`], given the nat table as
/// `iptables-save -t nat` prints it now: jumps into `TRELLIS_` chains found in other
/// chains are deleted first, so a second run does not add them twice.
pub fn install(opts: &Options, existing: &str) -> String {
    let mut lines = vec!["*nat".to_owned()];
    lines.extend(jumps(existing).map(|rule| format!("-D {rule}")));
    lines.extend(rules(opts));
    lines.push("COMMIT".into());
    lines.join("\n") + "\n"
}

/// `iptables-restore --noflush` input that removes every trace of [`install`] from the
/// nat table as `existing` shows it, or `None` when there is nothing to remove.
pub fn remove(existing: &str) -> Option<String> {
    let present = installed_chains(existing);
    let jumps: Vec<&str> = jumps(existing).collect();
    if present.is_empty() && jumps.is_empty() {
        return None;
    }
    let mut lines = vec!["*nat".to_owned()];
    lines.extend(jumps.iter().map(|rule| format!("-D {rule}")));
    lines.extend(present.iter().map(|chain| format!("-F {chain}")));
    lines.extend(present.iter().map(|chain| format!("-X {chain}")));
    lines.push("COMMIT".into());
    Some(lines.join("\n") + "\n")
}

/// The `TRELLIS_` chains declared in `iptables-save` output, in [`CHAINS`] order.
pub fn installed_chains(existing: &str) -> Vec<&'static str> {
    let declared: Vec<&str> = nat_lines(existing)
        .filter_map(|l| l.strip_prefix(':'))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    CHAINS
        .into_iter()
        .filter(|c| declared.contains(c))
        .collect()
}

/// Rules of chains not ours that jump into ours, without their `-A `.
fn jumps(existing: &str) -> impl Iterator<Item = &str> {
    nat_lines(existing)
        .filter_map(|l| l.strip_prefix("-A "))
        .filter(|rule| {
            let mut words = rule.split_whitespace();
            let chain = words.next().unwrap_or_default();
            !chain.starts_with("TRELLIS_")
                && rule
                    .split_once(" -j ")
                    .is_some_and(|(_, target)| target.trim().starts_with("TRELLIS_"))
        })
}

/// The lines of the `*nat` table of `iptables-save` output.
fn nat_lines(existing: &str) -> impl Iterator<Item = &str> {
    let mut in_nat = false;
    existing.lines().map(str::trim).filter(move |line| {
        if let Some(table) = line.strip_prefix('*') {
            in_nat = table == "nat";
            return false;
        }
        in_nat && !line.starts_with('#') && *line != "COMMIT"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_RULES: &str = "\
:TRELLIS_PREROUTING - [0:0]
:TRELLIS_INBOUND - [0:0]
:TRELLIS_OUTPUT - [0:0]
:TRELLIS_OUTBOUND - [0:0]
-A TRELLIS_INBOUND -p tcp -j REDIRECT --to-ports 4143
-A TRELLIS_PREROUTING -p tcp --dport 4191 -j RETURN
-A TRELLIS_PREROUTING -p tcp -j TRELLIS_INBOUND
-A TRELLIS_OUTBOUND -p tcp -j REDIRECT --to-ports 4140
-A TRELLIS_OUTPUT -m owner --uid-owner 2102 -j RETURN
-A TRELLIS_OUTPUT -o lo -j RETURN
-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND
-A PREROUTING -j TRELLIS_PREROUTING
-A OUTPUT -j TRELLIS_OUTPUT";

    /// `iptables-save -t nat` after one install with the defaults.
    const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables) on Mon Jan  1 00:00:00 2024
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:TRELLIS_INBOUND - [0:0]
:TRELLIS_OUTBOUND - [0:0]
:TRELLIS_OUTPUT - [0:0]
:TRELLIS_PREROUTING - [0:0]
-A PREROUTING -j TRELLIS_PREROUTING
-A OUTPUT -j TRELLIS_OUTPUT
-A OUTPUT -d 10.9.0.0/16 -j MASQUERADE
-A TRELLIS_INBOUND -p tcp -j REDIRECT --to-ports 4143
-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND
-A TRELLIS_PREROUTING -p tcp -j TRELLIS_INBOUND
COMMIT
# Completed on Mon Jan  1 00:00:00 2024
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j TRELLIS_LOOKALIKE
COMMIT
";

    #[test]
    fn default_rules_redirect_all_tcp_but_the_proxy_loopback_and_admin() {
        assert_eq!(rules(&Options::default()).join("\n"), DEFAULT_RULES);
    }

    #[test]
    fn skipped_ports_and_networks_return_before_the_redirect() {
        let opts = Options {
            proxy_uid: 1337,
            outbound_port: 15001,
            inbound_port: 15006,
            admin_port: 9901,
            skip_outbound_ports: vec!["25".parse().unwrap(), "3306-3307".parse().unwrap()],
            skip_outbound_cidrs: vec![
                "169.254.169.254".parse().unwrap(),
                "10.1.2.3/8".parse().unwrap(),
            ],
            skip_inbound_ports: vec!["22".parse().unwrap()],
        };
        assert_eq!(
            rules(&opts).join("\n"),
            "\
:TRELLIS_PREROUTING - [0:0]
:TRELLIS_INBOUND - [0:0]
:TRELLIS_OUTPUT - [0:0]
:TRELLIS_OUTBOUND - [0:0]
-A TRELLIS_INBOUND -p tcp -j REDIRECT --to-ports 15006
-A TRELLIS_PREROUTING -p tcp --dport 9901 -j RETURN
-A TRELLIS_PREROUTING -p tcp --dport 22 -j RETURN
-A TRELLIS_PREROUTING -p tcp -j TRELLIS_INBOUND
-A TRELLIS_OUTBOUND -p tcp -j REDIRECT --to-ports 15001
-A TRELLIS_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A TRELLIS_OUTPUT -o lo -j RETURN
-A TRELLIS_OUTPUT -p tcp --dport 25 -j RETURN
-A TRELLIS_OUTPUT -p tcp --dport 3306:3307 -j RETURN
-A TRELLIS_OUTPUT -d 169.254.169.254/32 -j RETURN
-A TRELLIS_OUTPUT -d 10.0.0.0/8 -j RETURN
-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND
-A PREROUTING -j TRELLIS_PREROUTING
-A OUTPUT -j TRELLIS_OUTPUT"
        );
    }

    #[test]
    fn a_first_install_only_adds() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(
            install(&Options::default(), saved),
            format!("*nat\n{DEFAULT_RULES}\nCOMMIT\n")
        );
        assert_eq!(
            install(&Options::default(), ""),
            format!("*nat\n{DEFAULT_RULES}\nCOMMIT\n")
        );
    }

    #[test]
    fn installing_again_deletes_the_old_jumps_first() {
        assert_eq!(
            install(&Options::default(), SAVED),
            format!(
                "*nat\n-D PREROUTING -j TRELLIS_PREROUTING\n-D OUTPUT -j TRELLIS_OUTPUT\n\
                 {DEFAULT_RULES}\nCOMMIT\n"
            )
        );
    }

    #[test]
    fn remove_deletes_the_jumps_then_empties_and_deletes_our_chains() {
        assert_eq!(
            remove(SAVED).unwrap(),
            "\
*nat
-D PREROUTING -j TRELLIS_PREROUTING
-D OUTPUT -j TRELLIS_OUTPUT
-F TRELLIS_PREROUTING
-F TRELLIS_INBOUND
-F TRELLIS_OUTPUT
-F TRELLIS_OUTBOUND
-X TRELLIS_PREROUTING
-X TRELLIS_INBOUND
-X TRELLIS_OUTPUT
-X TRELLIS_OUTBOUND
COMMIT
"
        );
    }

    #[test]
    fn remove_without_our_rules_does_nothing() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n-A OUTPUT -j MASQUERADE\nCOMMIT\n";
        assert_eq!(remove(saved), None);
        assert_eq!(remove(""), None);
    }

    #[test]
    fn chains_of_other_tables_are_not_ours() {
        assert_eq!(installed_chains(SAVED), CHAINS.to_vec());
        let filter_only = "*filter\n:TRELLIS_OUTPUT - [0:0]\nCOMMIT\n";
        assert!(installed_chains(filter_only).is_empty());
    }

    #[test]
    fn ports_and_networks_parse_or_say_why_not() {
        assert_eq!(
            "8000:8100".parse::<PortRange>().unwrap().to_string(),
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
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("fd00::/8".parse::<Cidr>().unwrap_err().contains("IPv4"));
    }
}
