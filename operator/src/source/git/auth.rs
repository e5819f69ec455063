//! Credentials for the Git remote, read from files (mounted Secrets, in a cluster) at
//! every fetch so rotated credentials are picked up: a username and password or token
//! for HTTPS, a private key for SSH, and the known_hosts file that SSH host keys are
//! checked against (an unknown or changed host key refuses the connection).

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::known_hosts::{KnownHosts, Verdict};

/// Where the credentials are (flags of `trellis operator`).
#[derive(Clone, Debug, Default)]
pub struct CredentialFiles {
    /// HTTPS username (default: the URL's, else `git`).
    pub username: Option<PathBuf>,
    /// HTTPS password or access token.
    pub password: Option<PathBuf>,
    /// SSH private key (OpenSSH or PEM format, without a passphrase).
    pub ssh_key: Option<PathBuf>,
    /// known_hosts for SSH remotes (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
}

/// Credentials read from [`CredentialFiles`].
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    ssh_key: Option<PathBuf>,
    known_hosts: KnownHosts,
    known_hosts_path: Option<PathBuf>,
    /// Why the last host key was refused: libgit2 replaces the callback's message with its
    /// own ("invalid or unknown remote ssh hostkey"), so [`Credentials::explain`] puts it back.
    refusal: RefCell<Option<String>>,
}

impl CredentialFiles {
    /// Reads every file named; a file named but unreadable is an error naming the flag.
    pub fn read(&self) -> Result<Credentials, String> {
        let text = |path: &Option<PathBuf>, flag: &str| -> Result<Option<String>, String> {
            path.as_ref()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .map(|s| s.trim().to_owned())
                        .map_err(|e| format!("{flag} {}: {e}", p.display()))
                })
                .transpose()
        };
        if let Some(key) = &self.ssh_key
            && !key.is_file()
        {
            return Err(format!(
                "--git-ssh-key-file {}: no such file",
                key.display()
            ));
        }
        let known_hosts_path = self.known_hosts.clone().or_else(|| {
            std::env::var_os("HOME").map(|home| Path::new(&home).join(".ssh/known_hosts"))
        });
        let known_hosts = match &known_hosts_path {
            Some(p) if p.is_file() => KnownHosts::parse(
                &std::fs::read_to_string(p)
                    .map_err(|e| format!("--git-known-hosts-file {}: {e}", p.display()))?,
            ),
            Some(p) if self.known_hosts.is_some() => {
                return Err(format!(
                    "--git-known-hosts-file {}: no such file",
                    p.display()
                ));
            }
            _ => KnownHosts::default(),
        };
        Ok(Credentials {
            username: text(&self.username, "--git-username-file")?,
            password: text(&self.password, "--git-password-file")?,
            ssh_key: self.ssh_key.clone(),
            known_hosts,
            known_hosts_path,
            refusal: RefCell::default(),
        })
    }
}

impl Credentials {
    /// Callbacks for one connection to `url`. Credentials are offered once: a second ask
    /// means they were refused, and retrying would loop.
    pub fn callbacks<'a>(&'a self, url: &str) -> RemoteCallbacks<'a> {
        let port = ssh_port(url);
        let mut callbacks = RemoteCallbacks::new();
        let asked = Cell::new(false);
        callbacks.credentials(move |_url, username_from_url, allowed| {
            if asked.replace(true) {
                return Err(git2::Error::from_str(
                    "the remote refused the credentials: check --git-username-file/--git-password-file or --git-ssh-key-file",
                ));
            }
            self.credential(username_from_url, allowed)
        });
        callbacks.certificate_check(move |cert, host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // HTTPS: libgit2 checks the certificate chain against the system roots.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (Some(key), Some(key_type)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
                return Err(git2::Error::from_str(
                    "the SSH server sent no host key to check",
                ));
            };
            let file = self
                .known_hosts_path
                .as_ref()
                .map_or("known_hosts".into(), |p| p.display().to_string());
            let refusal = match self.known_hosts.check(host, port, key_type.name(), key) {
                Verdict::Known => return Ok(CertificateCheckStatus::CertificateOk),
                Verdict::UnknownHost => format!(
                    "host {host} is not in {file}: add its key (ssh-keyscan -p {port} {host} >> {file}) or pass --git-known-hosts-file"
                ),
                Verdict::Mismatch => format!(
                    "host {host} presented a {} key that {file} does not hold for it: refusing (possible man in the middle)",
                    key_type.name()
                ),
                Verdict::Revoked => {
                    format!("host {host} presented a key marked @revoked in {file}")
                }
            };
            let error = git2::Error::from_str(&refusal);
            *self.refusal.borrow_mut() = Some(refusal);
            Err(error)
        });
        callbacks
    }

    /// The error of a failed connection, with the host key refusal's own message when
    /// that is what failed.
    pub fn explain(&self, error: git2::Error) -> git2::Error {
        match self.refusal.borrow_mut().take() {
            Some(refusal) => git2::Error::from_str(&refusal),
            None => error,
        }
    }

    fn credential(
        &self,
        username_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        let username = self
            .username
            .as_deref()
            .or(username_from_url)
            .unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY)
            && let Some(key) = &self.ssh_key
        {
            return Cred::ssh_key(username, None, key, None);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(password) = &self.password
        {
            return Cred::userpass_plaintext(username, password);
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username);
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials: pass --git-password-file (HTTPS token or password) or --git-ssh-key-file (SSH)",
        ))
    }
}

/// The SSH port of a remote URL: `ssh://[user@]host[:port]/path`, else 22 (scp-like
/// `user@host:path` has no port).
fn ssh_port(url: &str) -> u16 {
    url.strip_prefix("ssh://")
        .and_then(|rest| rest.split('/').next())
        .map(|authority| authority.rsplit('@').next().unwrap_or(authority))
        .and_then(|host_port| host_port.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ssh_port_comes_from_an_ssh_url_else_22() {
        assert_eq!(
            ssh_port("ssh://git@git.example.com:2222/org/mesh.git"),
            2222
        );
        assert_eq!(ssh_port("ssh://git.example.com/org/mesh.git"), 22);
        assert_eq!(ssh_port("git@github.com:org/mesh.git"), 22);
        assert_eq!(ssh_port("https://github.com/org/mesh.git"), 22);
    }

    #[test]
    fn a_token_is_offered_for_https_and_a_key_for_ssh() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "ghp_example\n").unwrap();
        let key = dir.path().join("id_ed25519");
        std::fs::write(&key, "not read until the server asks").unwrap();
        let creds = CredentialFiles {
            password: Some(token),
            ssh_key: Some(key),
            known_hosts: None,
            username: None,
        }
        .read()
        .unwrap();
        assert_eq!(creds.password.as_deref(), Some("ghp_example"));
        let https = creds
            .credential(None, CredentialType::USER_PASS_PLAINTEXT)
            .unwrap();
        assert_eq!(https.credtype(), git2_sys_userpass());
        assert!(creds.credential(None, CredentialType::SSH_KEY).is_ok());
    }

    fn git2_sys_userpass() -> u32 {
        CredentialType::USER_PASS_PLAINTEXT.bits()
    }

    #[test]
    fn a_missing_file_names_its_flag() {
        let err = CredentialFiles {
            password: Some("/nonexistent/token".into()),
            ..CredentialFiles::default()
        }
        .read()
        .unwrap_err();
        assert!(
            err.starts_with("--git-password-file /nonexistent/token"),
            "{err}"
        );
        let err = CredentialFiles {
            known_hosts: Some("/nonexistent/known_hosts".into()),
            ..CredentialFiles::default()
        }
        .read()
        .unwrap_err();
        assert!(err.contains("--git-known-hosts-file"), "{err}");
    }

    #[test]
    fn without_credentials_the_error_says_which_flag_to_pass() {
        let creds = Credentials::default();
        let err = creds
            .credential(None, CredentialType::USER_PASS_PLAINTEXT)
            .err()
            .unwrap();
        assert!(err.message().contains("--git-password-file"), "{err}");
    }
}
