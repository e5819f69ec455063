//! Pods as Linux network namespaces, for tests of transparent interception: each [`Pod`]
//! is a namespace of its own (`ip netns add trellis-<unique>-<name>`, loopback up), two pods
//! are joined by a point-to-point veth link with addresses `10.77.0.1/24` and `10.77.0.2/24`
//! ([`Pod::link`]), and commands run inside with `ip netns exec`.
//!
//! Dropping a pod (also while a test panics) kills the processes it spawned and deletes the
//! namespace, which deletes its end of the veth link (and so the link).
//!
//! Needs root and `ip` (iproute2); [`available`] checks for the tools with
//! [`crate::require_tool`], so a missing tool fails under `TRELLIS_STRICT=1`.
//!
//! ```text
//! let (a, b) = Pod::pair("client", "server")?;
//! let app = b.spawn(b.command("python3").args(["-m", "http.server", "8080"]))?;
//! let out = a.run(&["curl", "-s", &format!("http://{}:8080/", b.ip())])?;
//! ```

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// The uid Trellis proxies run as (`trellis-proxy init --proxy-uid` default).
pub const PROXY_UID: u32 = 2102;

/// Whether pods can be made here: root, `ip`, `iptables`, `iptables-save` and `setpriv`
/// on `PATH` (else the test says so and passes, or fails under `TRELLIS_STRICT=1`).
pub fn available() -> bool {
    let tools = [
        "ip",
        "iptables",
        "iptables-save",
        "iptables-restore",
        "setpriv",
        "curl",
    ];
    // Every missing tool is named (no short circuit).
    let missing = tools
        .iter()
        .filter(|tool| crate::require_tool(tool).is_none())
        .count();
    if missing > 0 {
        return false;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        let hint = "network namespace tests need root";
        assert!(!crate::strict(), "{hint} ({} is set)", crate::STRICT_ENV);
        eprintln!("SKIPPED: {hint}");
    }
    root
}

/// A network namespace standing for a pod.
pub struct Pod {
    name: String,
    ip: Option<Ipv4Addr>,
    children: Mutex<Vec<Child>>,
}

impl Pod {
    /// A new namespace `trellis-<unique>-<name>` with loopback up. The name is unique per
    /// process and run, so tests running in parallel never share one.
    pub fn new(name: &str) -> anyhow::Result<Pod> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let unique = format!(
            "{:x}{:x}{}",
            std::process::id(),
            nanos,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let name = format!("trellis-{unique}-{name}");
        ip(&["netns", "add", &name])?;
        let pod = Pod {
            name,
            ip: None,
            children: Mutex::new(vec![]),
        };
        pod.run_ok(&["ip", "link", "set", "lo", "up"])?;
        Ok(pod)
    }

    /// Two pods joined by a veth link: the first is `10.77.0.1`, the second `10.77.0.2`.
    pub fn pair(a: &str, b: &str) -> anyhow::Result<(Pod, Pod)> {
        let mut a = Pod::new(a)?;
        let mut b = Pod::new(b)?;
        Pod::link(&mut a, &mut b, 0)?;
        Ok((a, b))
    }

    /// Joins two pods with a point-to-point veth link (`eth<subnet>` in each) on
    /// `10.77.<subnet>.0/24`: `a` gets `.1`, `b` `.2`. The link lives only in the two
    /// namespaces, so links of other tests never collide with it.
    pub fn link(a: &mut Pod, b: &mut Pod, subnet: u8) -> anyhow::Result<()> {
        let dev = format!("eth{subnet}");
        ip(&[
            "link", "add", &dev, "netns", &a.name, "type", "veth", "peer", "name", &dev, "netns",
            &b.name,
        ])?;
        for (pod, host) in [(&mut *a, 1), (&mut *b, 2)] {
            let addr = Ipv4Addr::new(10, 77, subnet, host);
            pod.run_ok(&["ip", "addr", "add", &format!("{addr}/24"), "dev", &dev])?;
            pod.run_ok(&["ip", "link", "set", &dev, "up"])?;
            pod.ip.get_or_insert(addr);
        }
        Ok(())
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pod's address on its first link.
    ///
    /// # Panics
    /// When the pod has no link.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
            .expect("the pod has a link (Pod::link or Pod::pair)")
    }

    /// `program` to run inside the namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// `program` inside the namespace as uid and gid `uid`, without supplementary groups
    /// (`setpriv`), as a proxy runs so that its own connections are not intercepted.
    pub fn command_as(&self, uid: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.command("setpriv");
        cmd.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(program);
        cmd
    }

    /// Spawns `cmd`; the pod kills and reaps it when dropped. Returns its pid.
    pub fn spawn(&self, cmd: &mut Command) -> anyhow::Result<u32> {
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {cmd:?} in {}", self.name))?;
        let pid = child.id();
        self.children.lock().expect("children").push(child);
        Ok(pid)
    }

    /// Spawns `cmd` and hands the child to the caller (who must reap it); it is still
    /// killed with the namespace's other processes when the pod is dropped, by pid.
    pub fn spawn_child(&self, cmd: &mut Command) -> anyhow::Result<Child> {
        cmd.spawn()
            .with_context(|| format!("spawning {cmd:?} in {}", self.name))
    }

    /// Runs `args` inside the namespace and returns its output, whatever its exit status.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        let (program, rest) = args.split_first().context("a command")?;
        self.command(program)
            .args(rest)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {args:?} in {}", self.name))
    }

    /// Runs `args` inside the namespace; fails unless it exits 0. Returns its stdout.
    pub fn run_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.run(args)?;
        if !out.status.success() {
            bail!(
                "{args:?} in {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs `args` inside the namespace until it exits 0 or `timeout` passes; its stdout.
    pub fn run_until_ok(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.run_ok(args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context(format!("still failing after {timeout:?}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let children = match self.children.get_mut() {
            Ok(children) => children,
            Err(poisoned) => poisoned.into_inner(),
        };
        for child in children.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Anything else still running in the namespace (spawn_child) goes too.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleaning up pod {}: {e:#}", self.name);
        }
    }
}

/// Runs `ip ARGS` in the test's own namespace.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
