//! `trellis-proxy init`: installs (or with `--remove` deletes) the iptables and ip6tables
//! rules that send the workload's TCP traffic through the proxy, in the current network
//! namespace.
//!
//! ```text
//! read:  iptables-save -t nat; ip6tables-save -t nat (--ipv6 auto: a warning and IPv4 only
//!        when it fails; require: fail before changing anything; off: not read)
//! write: per family, one batch from rules (pure) -> ip(6)tables-restore --noflush
//! ```
//!
//! The rules come from [`rules`] (pure), the `--skip-*` values from [`skip`]; [`tables`]
//! runs the tools. Each family's batch is all or nothing.

pub mod rules;
pub mod skip;
mod tables;

use std::process::ExitCode;

use trellis_proxy_api::ports;

pub use rules::{Family, Options};
pub use skip::{Cidr, PortRange};

/// Flags of `trellis-proxy init`.
#[derive(Debug, clap::Args)]
#[command(after_help = INIT_EXAMPLES)]
pub struct InitArgs {
    /// The uid the proxy runs as; its own connections are never redirected.
    #[arg(long, value_name = "UID", default_value_t = 2102)]
    pub proxy_uid: u32,
    /// Port of the proxy's outbound listener (where the app's connections are sent).
    #[arg(long, value_name = "PORT", default_value_t = ports::OUTBOUND)]
    pub outbound_port: u16,
    /// Port of the proxy's inbound listener (where connections to the app are sent).
    #[arg(long, value_name = "PORT", default_value_t = ports::INBOUND)]
    pub inbound_port: u16,
    /// Port of the proxy's admin listener; never redirected.
    #[arg(long, value_name = "PORT", default_value_t = ports::ADMIN)]
    pub admin_port: u16,
    /// Destination ports the app connects to directly (e.g. 25,3306,8000-8100).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub skip_outbound_ports: Vec<PortRange>,
    /// Destination networks the app connects to directly, IPv4 or IPv6 (e.g.
    /// 169.254.169.254/32,fd00:ec2::254/128); each goes to the rules of its family.
    #[arg(long, value_name = "CIDRS", value_delimiter = ',')]
    pub skip_outbound_cidrs: Vec<Cidr>,
    /// Ports of the app that clients reach directly, not through the proxy (e.g. 22).
    #[arg(long, value_name = "PORTS", value_delimiter = ',')]
    pub skip_inbound_ports: Vec<PortRange>,
    /// Delete the rules instead (every TRELLIS_ chain and the jumps into them).
    #[arg(long)]
    pub remove: bool,
    /// Print the rules and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// IPv6 rules (ip6tables): `auto` writes them when ip6tables and the kernel's IPv6 nat
    /// table are there (else a warning, IPv4 only), `require` fails without them, `off`
    /// writes IPv4 rules only.
    #[arg(long, value_name = "MODE", value_enum, default_value_t = Ipv6::Auto)]
    pub ipv6: Ipv6,
}

/// What `init` does about IPv6 (`--ipv6`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Ipv6 {
    /// IPv6 rules when they can be written; else a warning and IPv4 only.
    #[default]
    Auto,
    /// IPv6 rules, or an error.
    Require,
    /// IPv4 rules only.
    Off,
}

impl Ipv6 {
    /// The families whose rules `init` writes or removes.
    pub fn families(self) -> &'static [Family] {
        match self {
            Ipv6::Off => &[Family::V4],
            Ipv6::Auto | Ipv6::Require => &Family::ALL,
        }
    }
}

const INIT_EXAMPLES: &str = "\
Examples:
  trellis-proxy init                                   # before the app and the proxy start
  trellis-proxy init --skip-outbound-ports 25,3306 --skip-inbound-ports 22
  trellis-proxy init --dry-run                         # print the rules only
  trellis-proxy init --remove
  trellis-proxy init --ipv6 require                    # fail unless IPv6 is intercepted too

Needs CAP_NET_ADMIN in the workload's network namespace, iptables-save/-restore and (for
IPv6) ip6tables-save/-restore.
The proxy must then run as --proxy-uid. See docs/proxy.md, \"Transparent interception\".";

impl InitArgs {
    pub fn options(&self) -> Options {
        Options {
            proxy_uid: self.proxy_uid,
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            admin_port: self.admin_port,
            skip_outbound_ports: self.skip_outbound_ports.clone(),
            skip_outbound_cidrs: self.skip_outbound_cidrs.clone(),
            skip_inbound_ports: self.skip_inbound_ports.clone(),
        }
    }
}

/// Runs `trellis-proxy init`.
pub fn main(args: &InitArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trellis-proxy init: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &InitArgs) -> anyhow::Result<()> {
    if args.dry_run {
        print!("{}", dry_run(args));
        return Ok(());
    }
    for (family, existing) in read_tables(args.ipv6)? {
        let done = if args.remove {
            remove(family, &existing)
        } else {
            install(family, &args.options(), &existing)
        };
        match done {
            Err(e) if family == Family::V6 && args.ipv6 == Ipv6::Auto => warn_ipv6(args, &e),
            Err(e) if family == Family::V6 => {
                let done = if args.remove { "removed" } else { "installed" };
                return Err(e.context(format!(
                    "--ipv6 require: the IPv4 rules are {done}, the IPv6 ones are not"
                )));
            }
            done => done?,
        }
    }
    Ok(())
}

/// The nat table of every family to work on, read before anything changes: IPv4 always,
/// IPv6 unless `--ipv6 off`. IPv6 tables that cannot be read are a warning (`auto`) or an
/// error (`require`).
fn read_tables(ipv6: Ipv6) -> anyhow::Result<Vec<(Family, String)>> {
    let mut tables = vec![];
    for &family in ipv6.families() {
        match tables::save(family) {
            Ok(existing) => tables.push((family, existing)),
            Err(e) if family == Family::V6 && ipv6 == Ipv6::Auto => {
                eprintln!("trellis-proxy init: warning: {e:#}; IPv4 only ({IPV6_HINT})");
            }
            Err(e) if family == Family::V6 => {
                return Err(e.context("--ipv6 require: nothing was changed"));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(tables)
}

const IPV6_HINT: &str =
    "--ipv6 off skips IPv6 without this warning, --ipv6 require makes it an error";

fn warn_ipv6(args: &InitArgs, e: &anyhow::Error) {
    let what = if args.remove {
        "IPv6 rules left as they are"
    } else {
        "IPv6 connections are not intercepted"
    };
    eprintln!("trellis-proxy init: warning: {e:#}; {what} ({IPV6_HINT})");
}

fn install(family: Family, opts: &Options, existing: &str) -> anyhow::Result<()> {
    let batch = rules::install(opts, family, existing);
    tables::restore(family, &batch)?;
    print!("trellis-proxy init: installed the {family} interception rules:\n{batch}");
    Ok(())
}

fn remove(family: Family, existing: &str) -> anyhow::Result<()> {
    match rules::remove(existing) {
        Some(batch) => {
            tables::restore(family, &batch)?;
            print!("trellis-proxy init: removed the {family} interception rules:\n{batch}");
        }
        None => println!("trellis-proxy init: no interception rules to remove ({family})"),
    }
    Ok(())
}

/// What `--dry-run` prints: each family's rules (or what `--remove` would do), labelled
/// with the family and the tool that would apply them.
fn dry_run(args: &InitArgs) -> String {
    let mut out = String::new();
    for &family in args.ipv6.families() {
        let tool = family.restore_tool();
        if args.remove {
            out += &format!(
                "# {family} ({tool}): would delete every TRELLIS_ chain of the nat table and the jumps into them\n"
            );
        } else {
            let rules = rules::rules(&args.options(), family).join("\n");
            out += &format!("# {family} ({tool} --noflush)\n*nat\n{rules}\nCOMMIT\n");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        init: InitArgs,
    }

    fn parse(args: &[&str]) -> InitArgs {
        Cli::try_parse_from([&["init"], args].concat())
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .init
    }

    #[test]
    fn ipv6_is_automatic_unless_required_or_off() {
        assert_eq!(parse(&[]).ipv6, Ipv6::Auto);
        assert_eq!(parse(&["--ipv6", "require"]).ipv6, Ipv6::Require);
        assert_eq!(Ipv6::Off.families(), [Family::V4]);
        assert_eq!(Ipv6::Auto.families(), [Family::V4, Family::V6]);
        assert!(Cli::try_parse_from(["init", "--ipv6", "yes"]).is_err());
    }

    #[test]
    fn a_dry_run_prints_both_rule_sets_labelled_each_with_its_own_networks() {
        let args = parse(&[
            "--dry-run",
            "--skip-outbound-cidrs",
            "169.254.169.254,fd00:ec2::254",
        ]);
        let out = dry_run(&args);
        let (v4, v6) = out.split_once("# IPv6").expect("an IPv6 section");
        assert!(
            v4.starts_with("# IPv4 (iptables-restore --noflush)\n*nat\n"),
            "{out}"
        );
        assert!(
            v6.starts_with(" (ip6tables-restore --noflush)\n*nat\n"),
            "{out}"
        );
        assert!(v4.contains("-A TRELLIS_OUTPUT -d 169.254.169.254/32 -j RETURN\n"));
        assert!(!v4.contains("fd00"), "{v4}");
        assert!(v6.contains("-A TRELLIS_OUTPUT -d fd00:ec2::254/128 -j RETURN\n"));
        assert!(!v6.contains("169.254"), "{v6}");
        assert!(
            v4.ends_with("COMMIT\n") && v6.ends_with("COMMIT\n"),
            "{out}"
        );
    }

    #[test]
    fn a_dry_run_with_ipv6_off_prints_ipv4_only() {
        let out = dry_run(&parse(&["--dry-run", "--ipv6", "off"]));
        assert!(out.starts_with("# IPv4"), "{out}");
        assert!(!out.contains("IPv6"), "{out}");
        let remove = dry_run(&parse(&["--dry-run", "--remove"]));
        assert_eq!(remove.lines().count(), 2, "{remove}");
        assert!(
            remove.contains("# IPv6 (ip6tables-restore): would delete"),
            "{remove}"
        );
    }
}
