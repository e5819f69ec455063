//! Sidecars in network-namespace pods ([`crate::netns::Pod`]): `trellis-proxy init`, then
//! the proxy as uid 2102 listening where a sidecar does (outbound on loopback, inbound and
//! admin on every address), its log kept in the run directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::netns::{PROXY_UID, Pod};

/// How long a sidecar may take to become ready.
pub const READY_WAIT: Duration = Duration::from_secs(15);

/// A directory uid 2102 can read, holding a copy of `trellis-proxy`, configs and logs.
pub struct RunDir {
    dir: tempfile::TempDir,
}

impl RunDir {
    pub fn new() -> anyhow::Result<RunDir> {
        let dir = tempfile::tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let proxy = dir.path().join("trellis-proxy");
        fs::copy(crate::binary("trellis-proxy"), &proxy)
            .context("copying trellis-proxy where uid 2102 can run it")?;
        fs::set_permissions(&proxy, fs::Permissions::from_mode(0o755))?;
        Ok(RunDir { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The copy of `trellis-proxy`.
    pub fn proxy(&self) -> PathBuf {
        self.path().join("trellis-proxy")
    }

    /// A subdirectory readable by every user.
    pub fn subdir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.path().join(name);
        fs::create_dir_all(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        Ok(dir)
    }

    /// The proxy log of `pod`.
    pub fn log(&self, pod: &Pod) -> String {
        fs::read_to_string(self.path().join(format!("{}.log", pod.name()))).unwrap_or_default()
    }

    /// Installs the interception rules in `pod` and starts its sidecar with `config`
    /// and `args`; waits until `/ready` answers.
    pub fn start_sidecar(&self, pod: &Pod, config: &str, args: &[&str]) -> anyhow::Result<()> {
        let proxy = self.proxy();
        let proxy_path = proxy.to_str().context("a UTF-8 temporary path")?;
        let out = pod.run_ok(&[proxy_path, "init"])?;
        if !out.contains("-A OUTPUT -j TRELLIS_OUTPUT") {
            bail!("trellis-proxy init wrote no OUTPUT rule:\n{out}");
        }
        let config_file = self.path().join(format!("{}.yaml", pod.name()));
        fs::write(&config_file, config)?;
        fs::set_permissions(&config_file, fs::Permissions::from_mode(0o644))?;
        let log = fs::File::create(self.path().join(format!("{}.log", pod.name())))?;
        pod.spawn(
            pod.command_as(PROXY_UID, &proxy)
                .arg("--config")
                .arg(&config_file)
                .args(["--outbound", "127.0.0.1:4140"])
                .args(["--inbound", "0.0.0.0:4143"])
                .args(["--admin", "0.0.0.0:4191"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log),
        )?;
        pod.run_until_ok(&["curl", "-sf", "http://127.0.0.1:4191/ready"], READY_WAIT)
            .with_context(|| {
                format!(
                    "the sidecar of {} is not ready:\n{}",
                    pod.name(),
                    self.log(pod)
                )
            })?;
        Ok(())
    }
}

/// Serves `docroot` over HTTP on `port` of every address of `pod` (an app that knows
/// nothing of the mesh: `python3 -m http.server`), and waits until it answers.
pub fn spawn_http_server(pod: &Pod, port: u16, docroot: &Path) -> anyhow::Result<()> {
    let port_arg = port.to_string();
    pod.spawn(
        pod.command("python3")
            .args(["-m", "http.server", &port_arg, "--bind", "0.0.0.0"])
            .arg("--directory")
            .arg(docroot)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    pod.run_until_ok(
        &["curl", "-sf", &format!("http://127.0.0.1:{port}/")],
        READY_WAIT,
    )?;
    Ok(())
}

/// The `/metrics` text of `pod`'s sidecar.
pub fn metrics_of(pod: &Pod) -> anyhow::Result<String> {
    pod.run_ok(&["curl", "-sf", "http://127.0.0.1:4191/metrics"])
}
