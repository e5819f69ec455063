//! HAProxy doing the same hops as trellis-proxy: HTTP mode, keep-alive on both sides,
//! server-side connections kept and shared, one thread, no logging.
//!
//! ```text
//! haproxy      load -> [bind plain | server plain] -> backend
//! haproxy-tls  load -> [bind plain | server ssl crt client.pem verify required]
//!                   -> [bind ssl crt server.pem verify required | server plain] -> backend
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::identity::{self, Pair};
use super::{Env, Kind, Proxy, Running, command, tail};

/// The files one TLS end needs: its certificate and key in one PEM file (`crt`) and the
/// roots it verifies its peer against (`ca-file`).
#[derive(Clone, Copy, Debug)]
pub struct TlsFiles<'a> {
    pub crt: &'a Path,
    pub ca: &'a Path,
}

impl TlsFiles<'_> {
    /// Both ends verify: mutual TLS.
    fn options(&self) -> String {
        format!(
            "ssl crt {} ca-file {} verify required",
            self.crt.display(),
            self.ca.display()
        )
    }
}

/// One HAProxy hop: `bind` and `server` are everything after the keyword.
fn config(bind: &str, server: &str, tls: bool) -> String {
    let tls_globals = if tls {
        // TLS 1.3 only, as between trellis-proxies.
        "\x20   ssl-default-bind-options ssl-min-ver TLSv1.3\n\
         \x20   ssl-default-server-options ssl-min-ver TLSv1.3\n"
    } else {
        ""
    };
    format!(
        "# written by trellis-bench\n\
         global\n\
         \x20   nbthread 1\n\
         \x20   maxconn 2000\n\
         {tls_globals}\
         defaults\n\
         \x20   mode http\n\
         \x20   option http-keep-alive\n\
         \x20   http-reuse always\n\
         \x20   timeout connect 5s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout http-keep-alive 60s\n\
         frontend bench\n\
         \x20   bind {bind}\n\
         \x20   default_backend backend_bench\n\
         backend backend_bench\n\
         \x20   server b1 {server}\n"
    )
}

/// The `haproxy` target: one plaintext hop.
pub fn haproxy_config(listen: SocketAddr, backend: SocketAddr) -> String {
    config(&listen.to_string(), &backend.to_string(), false)
}

/// First proxy of `haproxy-tls`: plaintext from the load generator, mTLS to `upstream`.
pub fn tls_origin_config(listen: SocketAddr, upstream: SocketAddr, files: TlsFiles<'_>) -> String {
    config(
        &listen.to_string(),
        &format!("{upstream} {}", files.options()),
        true,
    )
}

/// Second proxy of `haproxy-tls`: terminates mTLS, plaintext to the backend.
pub fn tls_terminate_config(
    listen: SocketAddr,
    backend: SocketAddr,
    files: TlsFiles<'_>,
) -> String {
    config(
        &format!("{listen} {}", files.options()),
        &backend.to_string(),
        true,
    )
}

pub async fn start_single(env: &Env) -> Result<Running> {
    let listen = free_port()?;
    let proxy = spawn(env, "haproxy", &haproxy_config(listen, env.backend), listen).await?;
    Ok(Running::of(Kind::Haproxy, listen, vec![proxy]))
}

pub async fn start_tls_pair(env: &Env) -> Result<Running> {
    let certs = Pair::shared()?;
    let dir = env.tmp.join("haproxy-tls");
    std::fs::create_dir_all(&dir)?;
    let write = |name: &str, text: &str| -> Result<std::path::PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    let roots = write("roots.pem", &certs.roots)?;
    let client_crt = write("client.pem", &identity::haproxy_crt(&certs.client))?;
    let server_crt = write("server.pem", &identity::haproxy_crt(&certs.server))?;

    let server_listen = free_port()?;
    let server_files = TlsFiles {
        crt: &server_crt,
        ca: &roots,
    };
    let server_cfg = tls_terminate_config(server_listen, env.backend, server_files);
    let server = spawn(env, "haproxy-tls-server", &server_cfg, server_listen).await?;

    let client_listen = free_port()?;
    let client_files = TlsFiles {
        crt: &client_crt,
        ca: &roots,
    };
    let client_cfg = tls_origin_config(client_listen, server_listen, client_files);
    let client = spawn(env, "haproxy-tls-client", &client_cfg, client_listen).await?;
    Ok(Running::of(
        Kind::HaproxyTls,
        client_listen,
        vec![client, server],
    ))
}

/// HAProxy does not report a port it picked, so pick a free one here.
fn free_port() -> Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// Starts `haproxy -f tmp/NAME.cfg -db` and waits until it accepts connections on `listen`.
async fn spawn(env: &Env, name: &str, cfg: &str, listen: SocketAddr) -> Result<Proxy> {
    let config = env.tmp.join(format!("{name}.cfg"));
    std::fs::write(&config, cfg)?;
    let log_path = env.tmp.join(format!("{name}.stderr"));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = command(env, &env.haproxy_bin);
    cmd.arg("-f")
        .arg(&config)
        .arg("-db")
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", env.haproxy_bin.display()))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{name} exited ({status}); stderr: {}", tail(&log_path));
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            bail!(
                "{name} did not listen on {listen} within 10 s; stderr: {}",
                tail(&log_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Proxy { child, pid })
}

/// `haproxy -v`'s first line.
pub fn haproxy_version(bin: &Path) -> Option<String> {
    let out = std::process::Command::new(bin).arg("-v").output().ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .next()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_plain_hop_to_the_backend() {
        let cfg = haproxy_config(addr("127.0.0.1:9000"), addr("127.0.0.1:8123"));
        assert!(cfg.contains("bind 127.0.0.1:9000\n"));
        assert!(cfg.contains("server b1 127.0.0.1:8123\n"));
        assert!(cfg.contains("nbthread 1"));
        assert!(cfg.contains("http-reuse always"));
        assert!(!cfg.contains("ssl"));
    }

    #[test]
    fn the_first_tls_proxy_takes_plaintext_and_originates_mutual_tls() {
        let files = TlsFiles {
            crt: Path::new("/t/client.pem"),
            ca: Path::new("/t/roots.pem"),
        };
        let cfg = tls_origin_config(addr("127.0.0.1:9000"), addr("127.0.0.1:9001"), files);
        assert!(cfg.contains("bind 127.0.0.1:9000\n"));
        assert!(cfg.contains(
            "server b1 127.0.0.1:9001 ssl crt /t/client.pem ca-file /t/roots.pem verify required\n"
        ));
        assert!(cfg.contains("ssl-default-server-options ssl-min-ver TLSv1.3"));
        assert!(cfg.contains("nbthread 1"));
        assert!(cfg.contains("http-reuse always"));
    }

    #[test]
    fn the_second_tls_proxy_terminates_mutual_tls_and_forwards_plaintext() {
        let files = TlsFiles {
            crt: Path::new("/t/server.pem"),
            ca: Path::new("/t/roots.pem"),
        };
        let cfg = tls_terminate_config(addr("127.0.0.1:9001"), addr("127.0.0.1:8123"), files);
        assert!(cfg.contains(
            "bind 127.0.0.1:9001 ssl crt /t/server.pem ca-file /t/roots.pem verify required\n"
        ));
        assert!(cfg.contains("server b1 127.0.0.1:8123\n"));
        assert!(cfg.contains("ssl-default-bind-options ssl-min-ver TLSv1.3"));
    }
}
