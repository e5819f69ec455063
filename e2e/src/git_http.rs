//! A real Git smart-HTTP server over TLS: `git http-backend` (the CGI program that ships
//! with Git) behind a small Python HTTPS server that demands HTTP Basic credentials, with a
//! self-signed certificate made by `openssl`. The operator trusts it through
//! `SSL_CERT_FILE`, as a user with a private CA would.
//!
//! ```text
//! let Some(server) = GitHttps::start(repos_root, "ci-bot", "t0ken")? else { return };
//! let url = server.url("mesh");             // https://localhost:PORT/mesh
//! operator env: SSL_CERT_FILE=server.ca()
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const SERVER: &str = r#"
import base64, http.server, os, ssl, subprocess, sys
port, root, user, token, cert, key = sys.argv[1:7]
expected = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()

class Handler(http.server.BaseHTTPRequestHandler):
    def handle_one(self, method):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(body)), REMOTE_USER=user,
                   HTTP_CONTENT_ENCODING=self.headers.get("Content-Encoding", ""))
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self): self.handle_one("GET")
    def do_POST(self): self.handle_one("POST")
    def log_message(self, *args): pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
"#;

pub struct GitHttps {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl GitHttps {
    /// Serves the repositories under `root` over HTTPS to `user`/`token` only; `None` when
    /// python3 or openssl is missing (and the run is not strict).
    pub fn start(root: &Path, user: &str, token: &str) -> anyhow::Result<Option<GitHttps>> {
        let (Some(python), Some(openssl), Some(_)) = (
            crate::require_tool("python3"),
            crate::require_tool("openssl"),
            crate::require_tool("git"),
        ) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let out = Command::new(openssl)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()?;
        if !out.status.success() {
            bail!("openssl req: {}", String::from_utf8_lossy(&out.stderr));
        }
        let script = dir.path().join("server.py");
        std::fs::write(&script, SERVER)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new(python)
            .arg(&script)
            .arg(port.to_string())
            .arg(root)
            .args([user, token])
            .arg(&cert)
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the Git HTTPS server")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                bail!("the Git HTTPS server did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Some(GitHttps { child, dir, port }))
    }

    /// `https://localhost:PORT/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("https://localhost:{}/{name}", self.port)
    }

    /// The self-signed certificate to trust (`SSL_CERT_FILE`).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }
}

impl Drop for GitHttps {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
