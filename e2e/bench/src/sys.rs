//! What the benchmark reads from and asks of the operating system: CPU pinning (through the
//! `taskset` command, since the workspace forbids `unsafe`), per-process CPU time and peak
//! memory from `/proc`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

/// CPUs this process may run on, read before any pinning.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A program on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Pins the calling process's main thread to `cpu`. Threads created afterwards inherit the
/// mask, so this must run before the runtime and the backend thread start.
pub fn pin_self(cpu: usize) -> Result<()> {
    let out = Command::new("taskset")
        .args([
            "-p",
            "-c",
            &cpu.to_string(),
            &std::process::id().to_string(),
        ])
        .output()
        .context("running taskset")?;
    if !out.status.success() {
        bail!(
            "taskset -p -c {cpu} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Asks for 1 µs timer slack (default 50 µs) so the pacer's sleeps end close to the
/// scheduled send times. Threads created afterwards inherit it. Best effort.
pub fn tighten_timer_slack() -> bool {
    std::fs::write("/proc/self/timerslack_ns", "1000").is_ok()
}

fn clk_tck() -> f64 {
    static TCK: OnceLock<f64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds the process `pid` (all its threads) has used so far, from
/// `/proc/PID/stat` fields 14 and 15.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> Result<f64> {
        fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse::<f64>()
            .context("bad /proc/PID/stat field")
    };
    Ok((ticks(11)? + ticks(12)?) / clk_tck())
}

/// CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq; all CPUs)
/// since boot, from the first line of `/proc/stat`.
pub fn machine_busy_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse::<f64>().unwrap_or(0.0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0);
    Ok((at(0) + at(1) + at(2) + at(5) + at(6)) / clk_tck())
}

/// Voluntary context switches of all threads of `pid` so far (each one is the process
/// going to sleep, so roughly the number of times it was woken).
pub fn voluntary_switches(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let status = std::fs::read_to_string(task?.path().join("status")).unwrap_or_default();
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

/// Memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmHWM`: peak resident set size since the process started.
    pub peak_rss_kib: u64,
    /// `VmRSS`: resident set size now.
    pub rss_kib: u64,
}

pub fn memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Ok(Memory {
        peak_rss_kib: field("VmHWM:").context("no VmHWM in /proc/PID/status")?,
        rss_kib: field("VmRSS:").unwrap_or(0),
    })
}

/// The memory of several processes added up (both proxies of a two-proxy path); `None` for
/// none. Each process's peak is its own, so the sum of peaks is an upper bound of the peak of
/// the sum.
pub fn memory_sum(pids: &[u32]) -> Result<Option<Memory>> {
    let mut sum: Option<Memory> = None;
    for &pid in pids {
        let m = memory(pid)?;
        let s = sum.get_or_insert_with(Memory::default);
        s.peak_rss_kib += m.peak_rss_kib;
        s.rss_kib += m.rss_kib;
    }
    Ok(sum)
}

/// One line describing the machine, for the report.
pub fn machine(cpus: usize) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    format!("{cpus} x {model}, Linux {kernel}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_memory_and_switches_of_this_process() {
        let me = std::process::id();
        // Burn a little CPU so the counter moves.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        assert!(cpu_seconds(me).unwrap() > 0.0);
        let mem = memory(me).unwrap();
        assert!(mem.peak_rss_kib >= mem.rss_kib && mem.rss_kib > 0);
        voluntary_switches(me).unwrap();
        assert!(machine_busy_seconds().unwrap() > 0.0);
    }

    #[test]
    fn memory_of_several_processes_is_added_up() {
        let me = std::process::id();
        assert!(memory_sum(&[]).unwrap().is_none());
        let one = memory_sum(&[me]).unwrap().unwrap();
        let twice = memory_sum(&[me, me]).unwrap().unwrap();
        assert!(twice.peak_rss_kib >= 2 * one.peak_rss_kib);
        assert!(memory_sum(&[me, u32::MAX]).is_err());
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(cpu_seconds(u32::MAX).is_err());
        assert!(memory(u32::MAX).is_err());
    }
}
