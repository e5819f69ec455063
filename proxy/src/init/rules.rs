//! The rules of transparent interception, as `iptables-restore` (IPv4) or
//! `ip6tables-restore` (IPv6) input for the nat table. Pure: options, the family (and what
//! `ip(6)tables-save -t nat` shows today) in, text out.
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
//!
//! Both families get the same rules; only the `--skip-outbound-cidrs` networks differ
//! (each family gets its own). Loopback is matched by interface (`-o lo`), which covers
//! 127.0.0.0/8, ::1/128 and the pod's own addresses alike.

use std::fmt;

use super::skip::{Cidr, PortRange};

/// An IP family: its own nat table, its own tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `iptables-save` / `iptables-restore`.
    V4,
    /// `ip6tables-save` / `ip6tables-restore`.
    V6,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::V4, Family::V6];

    /// The tool that prints the table (`iptables-save`).
    pub fn save_tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables-save",
            Family::V6 => "ip6tables-save",
        }
    }

    /// The tool that applies a batch (`iptables-restore`).
    pub fn restore_tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables-restore",
            Family::V6 => "ip6tables-restore",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

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
    /// Of both families; each family's rules take its own.
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

/// The rules of one family alone, without the table header, clean-up or `COMMIT` (what
/// `--dry-run` shows, and what [`install`] appends).
pub fn rules(opts: &Options, family: Family) -> Vec<String> {
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
    for cidr in opts
        .skip_outbound_cidrs
        .iter()
        .filter(|c| c.family() == family)
    {
        add(format!("-A TRELLIS_OUTPUT -d {cidr} -j RETURN"));
    }
    add("-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND".into());
    add("-A PREROUTING -j TRELLIS_PREROUTING".into());
    add("-A OUTPUT -j TRELLIS_OUTPUT".into());
    out
}

/// `ip(6)tables-restore --noflush` input that installs [`rules`] of `family`, given its
/// nat table as `ip(6)tables-save -t nat` prints it now: jumps into `TRELLIS_` chains found
/// in other chains are deleted first, so a second run does not add them twice.
pub fn install(opts: &Options, family: Family, existing: &str) -> String {
    let mut lines = vec!["*nat".to_owned()];
    lines.extend(jumps(existing).map(|rule| format!("-D {rule}")));
    lines.extend(rules(opts, family));
    lines.push("COMMIT".into());
    lines.join("\n") + "\n"
}

/// `ip(6)tables-restore --noflush` input that removes every trace of [`install`] from the
/// nat table as `existing` shows it (either family), or `None` when there is nothing to
/// remove.
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
        assert_eq!(
            rules(&Options::default(), Family::V4).join("\n"),
            DEFAULT_RULES
        );
    }

    #[test]
    fn ipv6_gets_the_same_rules() {
        assert_eq!(
            rules(&Options::default(), Family::V6).join("\n"),
            DEFAULT_RULES
        );
    }

    #[test]
    fn skipped_networks_go_to_the_rules_of_their_family() {
        let opts = Options {
            skip_outbound_cidrs: vec![
                "169.254.169.254".parse().unwrap(),
                "fd00:ec2::254".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ],
            ..Options::default()
        };
        let skipped = |family| {
            rules(&opts, family)
                .into_iter()
                .filter(|r| r.contains(" -d "))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            skipped(Family::V4),
            [
                "-A TRELLIS_OUTPUT -d 169.254.169.254/32 -j RETURN",
                "-A TRELLIS_OUTPUT -d 10.0.0.0/8 -j RETURN",
            ]
        );
        assert_eq!(
            skipped(Family::V6),
            [
                "-A TRELLIS_OUTPUT -d fd00:ec2::254/128 -j RETURN",
                "-A TRELLIS_OUTPUT -d fd00::/8 -j RETURN",
            ]
        );
        let v6 = rules(&opts, Family::V6);
        let returns_before_redirect = v6.iter().position(|r| r.contains("-d fd00::/8")).unwrap()
            < v6.iter()
                .position(|r| r == "-A TRELLIS_OUTPUT -p tcp -j TRELLIS_OUTBOUND")
                .unwrap();
        assert!(returns_before_redirect, "{v6:?}");
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
            rules(&opts, Family::V4).join("\n"),
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
            install(&Options::default(), Family::V4, saved),
            format!("*nat\n{DEFAULT_RULES}\nCOMMIT\n")
        );
        assert_eq!(
            install(&Options::default(), Family::V6, ""),
            format!("*nat\n{DEFAULT_RULES}\nCOMMIT\n")
        );
    }

    #[test]
    fn installing_again_deletes_the_old_jumps_first() {
        assert_eq!(
            install(&Options::default(), Family::V4, SAVED),
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
}
