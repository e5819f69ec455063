//! trellis-proxy as a target: its config files (docs/proxy.md), start-up, and the check
//! that the two-proxy path really is mTLS.
//!
//! ```text
//! trellis-proxy  load -> [outbound: backend.bench -> backend]
//! trellis-mtls   load -> [client: outbound, backend.bench -> server's inbound, identity server]
//!                     ==mTLS==> [server: inbound, allows identity client -> --inbound-target]
//!                     -> backend
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use trellis_proxy::tls::SpiffeId;

use super::identity::{self, Pair};
use super::{AUTHORITY, Env, Kind, Proxy, Running, command, tail};
use crate::load::Conn;

/// The metric whose labels show how a request arrived.
const REQUESTS_METRIC: &str = "trellis_requests_total";

/// `outbound:` with one authority, one route, one backend, one endpoint (YAML flow map).
fn outbound_config(endpoint: &str) -> String {
    format!(
        "outbound:\n\
         \x20 - authority: {AUTHORITY}\n\
         \x20   routes:\n\
         \x20     - name: default\n\
         \x20       backends: [{{backend: bench, weight: 1}}]\n\
         \x20   backends:\n\
         \x20     - name: bench\n\
         \x20       endpoints: [{endpoint}]\n\
         \x20       balancer: {{round_robin: {{}}}}\n"
    )
}

fn endpoint(addr: SocketAddr, identity: Option<&SpiffeId>) -> String {
    let address = format!("address: {{ip: {}, port: {}}}", addr.ip(), addr.port());
    match identity {
        Some(id) => format!("{{{address}, identity: \"{id}\"}}"),
        None => format!("{{{address}}}"),
    }
}

/// The `trellis-proxy` target: the backend as a plaintext endpoint.
pub fn trellis_config(backend: SocketAddr) -> String {
    format!(
        "# written by trellis-bench\n{}",
        outbound_config(&endpoint(backend, None))
    )
}

/// The client proxy of `trellis-mtls`: one endpoint, the server proxy's inbound listener,
/// which must prove `server` over mTLS.
pub fn mtls_client_config(server_inbound: SocketAddr, server: &SpiffeId) -> String {
    format!(
        "# written by trellis-bench\n{}",
        outbound_config(&endpoint(server_inbound, Some(server)))
    )
}

/// The server proxy of `trellis-mtls`: no destinations; inbound, only `client` (over mTLS)
/// may call the app's port.
pub fn mtls_server_config(app_port: u16, client: &SpiffeId) -> String {
    format!(
        "# written by trellis-bench\n\
         outbound: []\n\
         inbound:\n\
         \x20 default_policy: DEFAULT_POLICY_DENY\n\
         \x20 ports:\n\
         \x20   - port: {app_port}\n\
         \x20     authorizations:\n\
         \x20       - name: bench-client\n\
         \x20         identities: [\"{client}\"]\n"
    )
}

/// The addresses of the `trellis-proxy listening outbound=A inbound=B admin=C` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    pub outbound: SocketAddr,
    pub inbound: SocketAddr,
    pub admin: SocketAddr,
}

impl Listening {
    /// From the text after `trellis-proxy listening `.
    pub fn parse(rest: &str) -> Result<Self> {
        let field = |key: &str| -> Result<SocketAddr> {
            let prefix = format!("{key}=");
            rest.split_whitespace()
                .find_map(|kv| kv.strip_prefix(prefix.as_str()))
                .with_context(|| format!("the listening line has no {key}="))?
                .parse()
                .with_context(|| format!("{key}= is not an address"))
        };
        Ok(Listening {
            outbound: field("outbound")?,
            inbound: field("inbound")?,
            admin: field("admin")?,
        })
    }
}

pub async fn start_single(env: &Env) -> Result<Running> {
    let (proxy, listening) = spawn(env, "trellis-proxy", &trellis_config(env.backend), &[]).await?;
    Ok(Running::of(
        Kind::TrellisProxy,
        listening.outbound,
        vec![proxy],
    ))
}

pub async fn start_mtls_pair(env: &Env) -> Result<Running> {
    let certs = Pair::shared()?;
    let server_dir = identity::write_trellis_dir(
        &env.tmp.join("mtls/server-certs"),
        &certs.server,
        &certs.roots,
    )?;
    let client_dir = identity::write_trellis_dir(
        &env.tmp.join("mtls/client-certs"),
        &certs.client,
        &certs.roots,
    )?;

    let server_cfg = mtls_server_config(env.backend.port(), &identity::client_id());
    let server_args = [
        "--identity-dir".to_owned(),
        server_dir.display().to_string(),
        "--inbound-target".to_owned(),
        env.backend.to_string(),
    ];
    let (server, at_server) = spawn(env, "trellis-mtls-server", &server_cfg, &server_args).await?;

    let client_cfg = mtls_client_config(at_server.inbound, &identity::server_id());
    let client_args = [
        "--identity-dir".to_owned(),
        client_dir.display().to_string(),
    ];
    let (client, at_client) = spawn(env, "trellis-mtls-client", &client_cfg, &client_args).await?;

    let mut running = Running::of(Kind::TrellisMtls, at_client.outbound, vec![client, server]);
    running.mtls_server_admin = Some(at_server.admin);
    Ok(running)
}

/// Starts `trellis-proxy --config tmp/NAME.yaml` (every listener on a free port, plus
/// `extra` arguments) and waits for its listening line.
async fn spawn(
    env: &Env,
    name: &str,
    config: &str,
    extra: &[String],
) -> Result<(Proxy, Listening)> {
    if !env.proxy_bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p trellis-proxy` or pass --proxy-bin",
            env.proxy_bin.display()
        );
    }
    let config_path = env.tmp.join(format!("{name}.yaml"));
    std::fs::write(&config_path, config)?;
    let log_path = env.tmp.join(format!("{name}.stderr"));
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = command(env, &env.proxy_bin);
    cmd.arg("--config")
        .arg(&config_path)
        .args(["--outbound", "127.0.0.1:0"])
        .args(["--inbound", "127.0.0.1:0"])
        .args(["--admin", "127.0.0.1:0"])
        .args(extra)
        // Older builds size their runtime from the environment only; newer ones take --threads.
        .env("TOKIO_WORKER_THREADS", env.proxy_workers.to_string())
        .stdout(Stdio::piped())
        .stderr(log);
    if takes_threads_flag(&env.proxy_bin) {
        cmd.arg("--threads").arg(env.proxy_workers.to_string());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", env.proxy_bin.display()))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();

    let listening = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("trellis-proxy listening ") {
                return Ok(Some(rest.to_owned()));
            }
        }
        Ok::<_, std::io::Error>(None)
    })
    .await;
    let rest = match listening {
        Ok(Ok(Some(rest))) => rest,
        Ok(Ok(None)) | Ok(Err(_)) => {
            let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            let status = match status {
                Ok(Ok(s)) => s.to_string(),
                _ => "still running".to_owned(),
            };
            bail!(
                "{name} closed stdout without printing its listening line ({status}); stderr: {}",
                tail(&log_path)
            );
        }
        Err(_) => {
            let _ = child.kill().await;
            bail!(
                "{name} printed no listening line within 20 s; stderr: {}",
                tail(&log_path)
            );
        }
    };
    let listening = Listening::parse(&rest).with_context(|| format!("{name}: {rest:?}"))?;
    // Keep reading stdout (an access log, if any) so the proxy never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((Proxy { child, pid }, listening))
}

/// Whether this trellis-proxy build has the `--threads` flag.
fn takes_threads_flag(bin: &Path) -> bool {
    std::process::Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--threads"))
}

/// Fails unless the server proxy's `/metrics` counts requests that arrived inbound over mTLS
/// from the client's identity: proof that the path under load is the meshed one, not a
/// plaintext fallback. Called after a request went through.
pub async fn require_mtls(admin: SocketAddr) -> Result<()> {
    let peer = identity::client_id().to_string();
    // The count is taken when the answer ends, which may be just after the client read it.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = scrape(admin).await?;
        if mtls_requests(&text, &peer) > 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            let seen: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with(REQUESTS_METRIC) && l.contains("direction=\"inbound\""))
                .collect();
            bail!(
                "trellis-mtls is not mTLS: the server proxy's http://{admin}/metrics has no \
                 {REQUESTS_METRIC} sample with direction=\"inbound\", tls=\"true\", \
                 peer_identity=\"{peer}\" after a request went through; inbound samples: {}",
                if seen.is_empty() {
                    "none".to_owned()
                } else {
                    seen.join(" | ")
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(admin: SocketAddr) -> Result<String> {
    let mut conn = Conn::open(admin).await?;
    let resp = tokio::time::timeout(
        Duration::from_secs(2),
        conn.get_path("localhost", "/metrics"),
    )
    .await
    .with_context(|| format!("http://{admin}/metrics: no answer within 2 s"))??;
    if resp.status() != hyper::StatusCode::OK {
        bail!("http://{admin}/metrics answered {}", resp.status());
    }
    Ok(String::from_utf8_lossy(resp.body()).into_owned())
}

/// Requests counted in `trellis_requests_total` (Prometheus text format) as having arrived
/// inbound over mTLS from `peer`.
pub fn mtls_requests(metrics: &str, peer: &str) -> u64 {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(REQUESTS_METRIC)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once('}')?;
            let labels = parse_labels(labels);
            let is = |k: &str, v: &str| labels.iter().any(|(lk, lv)| lk == k && lv == v);
            (is("direction", "inbound") && is("tls", "true") && is("peer_identity", peer))
                .then(|| value.split_whitespace().next()?.parse::<f64>().ok())
                .flatten()
        })
        .map(|v| v as u64)
        .sum()
}

/// `a="x",b="y\"z"` into pairs, unescaping `\"`, `\\` and `\n`.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        out.push((name.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_single_proxy_routes_the_authority_to_the_backend_in_plaintext() {
        let yaml = trellis_config(addr("127.0.0.1:8123"));
        assert!(yaml.contains("authority: backend.bench"));
        assert!(yaml.contains("endpoints: [{address: {ip: 127.0.0.1, port: 8123}}]"));
        assert!(!yaml.contains("identity"));
    }

    #[test]
    fn the_client_proxy_sends_to_the_server_proxy_expecting_its_identity() {
        let yaml = mtls_client_config(addr("127.0.0.1:4143"), &identity::server_id());
        assert!(yaml.contains("authority: backend.bench"));
        assert!(yaml.contains(
            "endpoints: [{address: {ip: 127.0.0.1, port: 4143}, \
             identity: \"spiffe://bench.local/ns/bench/sa/server\"}]"
        ));
    }

    #[test]
    fn the_server_proxy_lets_only_the_client_identity_call_the_app_port() {
        let yaml = mtls_server_config(8123, &identity::client_id());
        assert_eq!(
            yaml,
            "# written by trellis-bench\n\
             outbound: []\n\
             inbound:\n\
             \x20 default_policy: DEFAULT_POLICY_DENY\n\
             \x20 ports:\n\
             \x20   - port: 8123\n\
             \x20     authorizations:\n\
             \x20       - name: bench-client\n\
             \x20         identities: [\"spiffe://bench.local/ns/bench/sa/client\"]\n"
        );
    }

    #[test]
    fn reads_every_address_of_the_listening_line() {
        let l =
            Listening::parse("outbound=127.0.0.1:1 inbound=127.0.0.1:2 admin=127.0.0.1:3").unwrap();
        assert_eq!(l.outbound, addr("127.0.0.1:1"));
        assert_eq!(l.inbound, addr("127.0.0.1:2"));
        assert_eq!(l.admin, addr("127.0.0.1:3"));
        let err = Listening::parse("outbound=127.0.0.1:1 inbound=127.0.0.1:2").unwrap_err();
        assert_eq!(err.to_string(), "the listening line has no admin=");
    }

    const PEER: &str = "spiffe://bench.local/ns/bench/sa/client";

    fn sample(direction: &str, tls: &str, peer: &str, value: &str) -> String {
        format!(
            "trellis_requests_total{{direction=\"{direction}\",authority=\"backend.bench\",\
             route=\"\",backend=\"\",status_code=\"200\",grpc_status=\"\",\
             classification=\"success\",tls=\"{tls}\",peer_identity=\"{peer}\"}} {value}\n"
        )
    }

    #[test]
    fn counts_inbound_mtls_requests_from_the_client_identity() {
        let text = format!(
            "# HELP trellis_requests_total HTTP and gRPC requests, by outcome\n\
             # TYPE trellis_requests_total counter\n{}{}",
            sample("inbound", "true", PEER, "3"),
            sample("outbound", "true", PEER, "5"),
        );
        assert_eq!(mtls_requests(&text, PEER), 3);
    }

    #[test]
    fn plaintext_or_another_identity_is_not_the_mtls_path() {
        let plaintext = sample("inbound", "false", "", "7");
        assert_eq!(mtls_requests(&plaintext, PEER), 0);
        let other = sample(
            "inbound",
            "true",
            "spiffe://bench.local/ns/bench/sa/other",
            "7",
        );
        assert_eq!(mtls_requests(&other, PEER), 0);
        let similar_metric = sample("inbound", "true", PEER, "7")
            .replace("trellis_requests_total", "trellis_requests_total_other");
        assert_eq!(mtls_requests(&similar_metric, PEER), 0);
        assert_eq!(mtls_requests("", PEER), 0);
    }

    #[test]
    fn label_values_may_hold_commas_and_escaped_quotes() {
        assert_eq!(
            parse_labels(r#"a="x,y",b="say \"hi\"",c="""#),
            vec![
                ("a".to_owned(), "x,y".to_owned()),
                ("b".to_owned(), "say \"hi\"".to_owned()),
                ("c".to_owned(), String::new()),
            ]
        );
    }
}
