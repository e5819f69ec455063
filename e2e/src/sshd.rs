//! A real OpenSSH server on a loopback port, for the Git source's SSH transport: host and
//! client keys made with `ssh-keygen`, the client's public key authorized for the current
//! user, and the `known_hosts` line a user would get from `ssh-keyscan`.
//!
//! ```text
//! let Some(sshd) = Sshd::start()? else { return };     // skipped when sshd is missing
//! let url = sshd.url(repo.path());                     // ssh://root@127.0.0.1:PORT/...
//! std::fs::write(hosts, sshd.known_hosts_line())?;
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Sshd {
    /// Starts `sshd -D` on a free port; `None` when sshd or ssh-keygen is not installed
    /// (and the run is not strict: see [`crate::require_tool`]).
    pub fn start() -> anyhow::Result<Option<Sshd>> {
        let (Some(sshd), Some(_)) = (
            crate::require_tool("sshd"),
            crate::require_tool("ssh-keygen"),
        ) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        for key in ["host_key", "client_key", "other_key"] {
            keygen(&dir.path().join(key))?;
        }
        std::fs::copy(
            dir.path().join("client_key.pub"),
            dir.path().join("authorized_keys"),
        )?;
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").context("creating /run/sshd")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nPidFile {d}/sshd.pid\n",
                d = dir.path().display()
            ),
        )?;
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("sshd.log"))?)
            .spawn()
            .context("starting sshd")?;
        let sshd = Sshd { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("sshd did not listen on {port}: {}", sshd.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(sshd))
    }

    /// `ssh://USER@127.0.0.1:PORT/<path>`, as the current user (tests run as root in CI).
    pub fn url(&self, repo: &Path) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        format!("ssh://{user}@127.0.0.1:{}{}", self.port, repo.display())
    }

    /// The authorized client key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// A key the server does not accept.
    pub fn other_key(&self) -> PathBuf {
        self.dir.path().join("other_key")
    }

    /// The server's line for a known_hosts file (`[127.0.0.1]:PORT ssh-ed25519 AAAA...`).
    pub fn known_hosts_line(&self) -> String {
        self.line_for("host_key.pub")
    }

    /// The same host with a key it does not have (what a man in the middle would show).
    pub fn wrong_known_hosts_line(&self) -> String {
        self.line_for("other_key.pub")
    }

    fn line_for(&self, public: &str) -> String {
        let key = std::fs::read_to_string(self.dir.path().join(public)).expect("a public key");
        let mut fields = key.split_whitespace();
        let (kind, blob) = (fields.next().unwrap(), fields.next().unwrap());
        format!("[127.0.0.1]:{} {kind} {blob}\n", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) -> anyhow::Result<()> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "trellis-test", "-f"])
        .arg(path)
        .output()?;
    if !out.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
