//! `trellis-proxy init`: installs (or with `--remove` deletes) the iptables rules that send
//! the workload's TCP traffic through the proxy, in the current network namespace.
//!
//! The rules come from [`rules`] (pure); this module only reads the nat table with
//! `iptables-save -t nat` and applies one batch with `iptables-restore --noflush`, so a
//! failure leaves the table as it was.

pub mod rules;

use std::io::Write as _;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context as _, bail};
use trellis_proxy_api::ports;

pub use rules::{Cidr, Options, PortRange};

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
    /// Destination networks the app connects to directly (e.g. 169.254.169.254/32).
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
}

const INIT_EXAMPLES: &str = "\
Examples:
  trellis-proxy init                                   # before the app and the proxy start
  trellis-proxy init --skip-outbound-ports 25,3306 --skip-inbound-ports 22
  trellis-proxy init --dry-run                         # print the rules only
  trellis-proxy init --remove

Needs CAP_NET_ADMIN in the workload's network namespace, and iptables-save/-restore.
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
        if args.remove {
            println!(
                "# would delete every TRELLIS_ chain of the nat table and the jumps into them"
            );
        } else {
            println!("*nat\n{}\nCOMMIT", rules::rules(&args.options()).join("\n"));
        }
        return Ok(());
    }
    let existing = iptables_save()?;
    if args.remove {
        match rules::remove(&existing) {
            Some(batch) => {
                iptables_restore(&batch)?;
                print!("trellis-proxy init: removed the interception rules:\n{batch}");
            }
            None => println!("trellis-proxy init: no interception rules to remove"),
        }
    } else {
        let batch = rules::install(&args.options(), &existing);
        iptables_restore(&batch)?;
        print!("trellis-proxy init: installed the interception rules:\n{batch}");
    }
    Ok(())
}

fn iptables_save() -> anyhow::Result<String> {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .stdin(Stdio::null())
        .output()
        .context("cannot run iptables-save (is iptables installed?)")?;
    if !out.status.success() {
        bail!(
            "iptables-save -t nat failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).context("iptables-save printed non-UTF-8 text")
}

fn iptables_restore(batch: &str) -> anyhow::Result<()> {
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run iptables-restore (is iptables installed?)")?;
    child
        .stdin
        .take()
        .context("iptables-restore stdin")?
        .write_all(batch.as_bytes())
        .context("writing to iptables-restore")?;
    let out = child.wait_with_output().context("iptables-restore")?;
    if !out.status.success() {
        bail!(
            "iptables-restore --noflush refused the rules ({}): {}\nthe batch was:\n{batch}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
