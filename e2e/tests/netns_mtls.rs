//! The whole zero-trust path in real network namespaces: an app that knows nothing of the
//! mesh calls another app by its address; both sidecars intercept, the hop between the pods
//! is mTLS with each side proving its ServiceAccount identity, and the server's inbound
//! policy decides by that identity, for HTTP and for opaque TCP.
//!
//! ```text
//! pod a (sa web): curl 10.77.0.2:8080 -> proxy a :4140 --mTLS--> 10.77.0.2:8080
//!   -> pod b (sa api): PREROUTING -> proxy b :4143 (authorize web) -> 10.77.0.2:8080 app
//! ```
//!
//! Needs root, iproute2, iptables, setpriv, curl and python3 (`.ci/run` installs them).

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use trellis_e2e::config::{Destination, route};
use trellis_e2e::identity::{Pki, spiffe};
use trellis_e2e::inbound_config::{InboundPolicy, authorization, meshed, yaml};
use trellis_e2e::metrics;
use trellis_e2e::netns::{self, Pod};
use trellis_e2e::sidecar::{self, RunDir, metrics_of};

const HTTP_PORT: u16 = 8080;
const ECHO_PORT: u16 = 9000;
const HOUR: Duration = Duration::from_secs(3600);

/// A destination at `ip:port` whose one endpoint (the same address) proves `identity`.
fn meshed_destination(addr: &str, identity: &str) -> Destination {
    let (ip, port) = addr.rsplit_once(':').unwrap();
    let endpoint = json!({
        "address": {"ip": ip, "port": port.parse::<u16>().unwrap()},
        "identity": identity,
    });
    Destination::new(addr)
        .route(route("default", &[("b", 1)]))
        .backend(json!({"name": "b", "endpoints": [endpoint]}))
}

/// The HTTP status `pod` gets for `GET url` (curl).
fn status_of(pod: &Pod, url: &str) -> String {
    let format = "%{http_code}";
    pod.run_ok(&["curl", "-s", "-o", "/dev/null", "-w", format, url])
        .unwrap()
}

#[test]
fn intercepted_traffic_between_pods_is_mtls_and_authorized_by_identity() {
    if !netns::available() || trellis_e2e::require_tool("python3").is_none() {
        return;
    }
    let run = RunDir::new().unwrap();
    let pki = Pki::new();
    let (web, api) = (spiffe("shop", "web"), spiffe("shop", "api"));
    let (a, mut b) = Pod::pair("web", "api").unwrap();
    // c: a pod without a sidecar or certificate, linked to b too.
    let mut c = Pod::new("plain").unwrap();
    Pod::link(&mut c, &mut b, 1).unwrap();
    let http_addr = format!("{}:{HTTP_PORT}", b.ip());
    let echo_addr = format!("{}:{ECHO_PORT}", b.ip());

    // Pod b: an HTTP app and a TCP echo app, on every address.
    let docroot = run.subdir("www").unwrap();
    std::fs::write(docroot.join("index.html"), "hello from api\n").unwrap();
    std::fs::write(docroot.join("secret.html"), "secret\n").unwrap();
    let http_port = HTTP_PORT.to_string();
    sidecar::spawn_http_server(&b, HTTP_PORT, &docroot).unwrap();
    let echo = format!(
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', {ECHO_PORT})); s.listen()\n\
         while True:\n    c, _ = s.accept(); c.sendall(b'echo ' + c.recv(100)); c.close()\n"
    );
    b.spawn(
        b.command("python3")
            .args(["-c", &echo])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();

    // b's sidecar: api's identity; web may GET / only, and open TCP to the echo port.
    let b_certs = run.subdir("b-certs").unwrap();
    pki.write_identity(&b_certs, &api, HOUR, &[]);
    let policy = InboundPolicy::deny()
        .port(meshed(HTTP_PORT).authorization(authorization("web-http", &[&web], &["/$"])))
        .port(meshed(ECHO_PORT).authorization(authorization("web-echo", &[&web], &[])));
    let b_certs_arg = b_certs.to_str().unwrap();
    run.start_sidecar(&b, &yaml(&[], &policy), &["--identity-dir", b_certs_arg])
        .unwrap();

    // a's sidecar: web's identity; b's addresses are meshed endpoints proving api.
    let a_certs = run.subdir("a-certs").unwrap();
    pki.write_identity(&a_certs, &web, HOUR, &[]);
    let config = yaml(
        &[
            meshed_destination(&http_addr, &api),
            meshed_destination(&echo_addr, &api),
        ],
        &InboundPolicy::deny(),
    );
    let a_certs_arg = a_certs.to_str().unwrap();
    run.start_sidecar(&a, &config, &["--identity-dir", a_certs_arg])
        .unwrap();
    let logs = || format!("a:\n{}\nb:\n{}", run.log(&a), run.log(&b));

    // The app in a calls b's address; it knows nothing of proxies or certificates.
    let body = a
        .run_ok(&[
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "10",
            &format!("http://{http_addr}/"),
        ])
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert_eq!(body, "hello from api\n");

    // b's policy allows web GET / only: another path is refused by b's proxy.
    let status = status_of(&a, &format!("http://{http_addr}/secret.html"));
    assert_eq!(status, "403", "{}", logs());

    // Opaque TCP to the echo port: mTLS too, authorized per connection.
    let client = format!(
        "import socket; s = socket.create_connection(('{}', {ECHO_PORT}), timeout=10); \
         s.sendall(b'ping'); print(s.recv(100).decode())",
        b.ip()
    );
    let echoed = a
        .run_ok(&["python3", "-c", &client])
        .unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert_eq!(echoed, "echo ping\n");

    // Both sides saw the hop as mTLS with the other's identity.
    let (ma, mb) = (metrics_of(&a).unwrap(), metrics_of(&b).unwrap());
    let requests = |m: &str, direction, peer: &str, status| {
        metrics::sum(
            m,
            "trellis_requests_total",
            &[
                ("direction", direction),
                ("tls", "true"),
                ("peer_identity", peer),
                ("status_code", status),
            ],
        )
    };
    assert_eq!(requests(&ma, "outbound", &api, "200"), 1.0, "{ma}");
    assert_eq!(requests(&ma, "outbound", &api, "403"), 1.0, "{ma}");
    assert_eq!(requests(&mb, "inbound", &web, "200"), 1.0, "{mb}");
    assert_eq!(requests(&mb, "inbound", &web, "403"), 1.0, "{mb}");
    assert_eq!(
        metrics::sum(&mb, "trellis_requests_total", &[("tls", "false")]),
        0.0,
        "nothing reached b in plaintext:\n{mb}"
    );
    let opaque = |m: &str, direction, peer: &str| {
        metrics::sum(
            m,
            "trellis_tcp_connections_total",
            &[
                ("direction", direction),
                ("protocol", "opaque"),
                ("tls", "true"),
                ("peer_identity", peer),
            ],
        )
    };
    assert_eq!(opaque(&ma, "outbound", &api), 1.0, "{ma}");
    assert_eq!(opaque(&mb, "inbound", &web), 1.0, "{mb}");
    assert_eq!(
        metrics::sum(
            &mb,
            "trellis_inbound_denied_total",
            &[("port", &http_port), ("reason", "route_not_allowed")]
        ),
        1.0
    );

    // A pod without a certificate (plaintext) cannot reach b's meshed ports.
    let status = status_of(&c, &format!("http://10.77.1.2:{HTTP_PORT}/"));
    assert_eq!(status, "403", "{}", logs());
}
