//! The edge of `init`: reading a family's nat table with `ip(6)tables-save -t nat` and
//! applying one batch with `ip(6)tables-restore --noflush` (all or nothing).

use std::io::Write as _;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

use super::rules::Family;

/// The nat table of `family` as `ip(6)tables-save -t nat` prints it.
pub fn save(family: Family) -> anyhow::Result<String> {
    let tool = family.save_tool();
    let out = Command::new(tool)
        .args(["-t", "nat"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {tool} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{tool} -t nat failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            match family {
                Family::V4 => "",
                Family::V6 => " (does the kernel have IPv6 and its nat table, ip6table_nat?)",
            }
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{tool} printed non-UTF-8 text"))
}

/// Applies `batch` to the tables of `family`; a refused batch changes nothing.
pub fn restore(family: Family, batch: &str) -> anyhow::Result<()> {
    let tool = family.restore_tool();
    let mut child = Command::new(tool)
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {tool} (is it installed?)"))?;
    child
        .stdin
        .take()
        .with_context(|| format!("{tool} stdin"))?
        .write_all(batch.as_bytes())
        .with_context(|| format!("writing to {tool}"))?;
    let out = child.wait_with_output().with_context(|| tool.to_owned())?;
    if !out.status.success() {
        bail!(
            "{tool} --noflush refused the rules ({}): {}\nthe batch was:\n{batch}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
