//! Transparent interception in real network namespaces: two pods A and B, each with
//! `trellis-proxy init` rules and a proxy running as uid 2102; an unmodified client in A
//! calls B's address directly and the traffic goes through both proxies.
//!
//! ```text
//! pod A: curl http://10.77.0.2:8080/ --OUTPUT REDIRECT--> proxy A :4140 (outbound, uid 2102)
//!        --> 10.77.0.2:8080 --PREROUTING REDIRECT--> pod B: proxy B :4143 (inbound)
//!        --> 127.0.0.1:8080 (python3 -m http.server)
//! ```
//!
//! Needs root, iproute2, iptables, setpriv, curl and python3 (`.ci/run` installs them).

use std::fs;
use std::path::Path;

use trellis_e2e::config::{single, yaml};
use trellis_e2e::metrics;
use trellis_e2e::netns::{self, Pod};
use trellis_e2e::sidecar::{self, RunDir};

const APP_PORT: u16 = 8080;

fn metrics_of(pod: &Pod) -> String {
    sidecar::metrics_of(pod).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

#[test]
fn an_unmodified_client_is_intercepted_on_both_sides() {
    if !netns::available() || trellis_e2e::require_tool("python3").is_none() {
        return;
    }
    // The proxy runs as uid 2102, which may not read the build directory: a copy it can.
    let run = RunDir::new().unwrap();
    let proxy_bin = run.proxy();

    let (a, b) = Pod::pair("a", "b").unwrap();
    let app_addr = format!("{}:{APP_PORT}", b.ip());

    // B: the app on every address of the pod, and its sidecar.
    let docroot = run.subdir("www").unwrap();
    fs::write(docroot.join("index.html"), "hello from b\n").unwrap();
    sidecar::spawn_http_server(&b, APP_PORT, &docroot).unwrap();
    run.start_sidecar(&b, "outbound: []\n", &[]).unwrap();

    // A: a sidecar whose config names B's address as the authority.
    let dest = single(&app_addr, "b", &[app_addr.parse().unwrap()]);
    run.start_sidecar(&a, &yaml(&[dest]), &[]).unwrap();

    // The client knows nothing of the proxies: it calls B's address.
    let url = format!("http://{app_addr}/");
    let body = a
        .run_ok(&["curl", "-sS", "--fail", "--max-time", "10", &url])
        .unwrap_or_else(|e| panic!("{e:#}\nA:\n{}\nB:\n{}", run.log(&a), run.log(&b)));
    assert_eq!(body, "hello from b\n");

    // HTTP/1.0 without a Host header: routed by the original destination.
    let body = a
        .run_ok(&["curl", "-sS", "--fail", "--http1.0", "-H", "Host:", &url])
        .unwrap();
    assert_eq!(body, "hello from b\n");

    let ok = [("status_code", "200")];
    let out_a = metrics_of(&a);
    let outbound = [("direction", "outbound"), ("authority", app_addr.as_str())];
    assert_eq!(
        metrics::sum(
            &out_a,
            "trellis_requests_total",
            &[outbound[0], outbound[1], ok[0]]
        ),
        2.0,
        "A's proxy saw the client's requests as outbound:\n{out_a}"
    );
    let in_b = metrics_of(&b);
    assert_eq!(
        metrics::sum(
            &in_b,
            "trellis_requests_total",
            &[("direction", "inbound"), ok[0]]
        ),
        2.0,
        "B's proxy saw them as inbound:\n{in_b}"
    );

    // Opaque TCP (not HTTP) goes to the original destination unchanged: the app itself
    // answers the bytes it cannot parse (python's error page), through both proxies.
    let opaque = format!(
        "import socket; s = socket.create_connection(('{}', {APP_PORT}), timeout=10); \
         s.sendall(b'\\x00\\x01opaque\\r\\n\\r\\n'); print(b''.join(iter(lambda: s.recv(4096), b'')).decode())",
        b.ip()
    );
    let answer = a.run_ok(&["python3", "-c", &opaque]).unwrap();
    assert!(answer.contains("Error code: 400"), "{answer}");
    let opaque_conns = |m: &str, direction| {
        metrics::sum(
            m,
            "trellis_tcp_connections_total",
            &[("direction", direction), ("protocol", "opaque")],
        )
    };
    assert_eq!(opaque_conns(&metrics_of(&a), "outbound"), 1.0);
    assert_eq!(opaque_conns(&metrics_of(&b), "inbound"), 1.0);

    // --remove leaves no trace, and is idempotent.
    let proxy = path(&proxy_bin);
    a.run_ok(&[proxy, "init", "--remove"]).unwrap();
    let saved = a.run_ok(&["iptables-save", "-t", "nat"]).unwrap();
    assert!(!saved.contains("TRELLIS"), "{saved}");
    let again = a.run_ok(&[proxy, "init", "--remove"]).unwrap();
    assert!(again.contains("no interception rules"), "{again}");
}

#[test]
fn init_twice_leaves_the_same_rules() {
    if !netns::available() {
        return;
    }
    let pod = Pod::new("init").unwrap();
    let proxy = trellis_e2e::binary("trellis-proxy");
    let proxy = path(&proxy);
    let save = || {
        let saved = pod.run_ok(&["iptables-save", "-t", "nat"]).unwrap();
        saved
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let flags = [
        "init",
        "--skip-outbound-ports",
        "25",
        "--skip-inbound-ports",
        "22",
    ];
    pod.run_ok(&[&[proxy][..], &flags[..]].concat()).unwrap();
    let once = save();
    pod.run_ok(&[&[proxy][..], &flags[..]].concat()).unwrap();
    assert_eq!(save(), once);
    for rule in [
        "-A OUTPUT -j TRELLIS_OUTPUT",
        "-A PREROUTING -j TRELLIS_PREROUTING",
        "-A TRELLIS_OUTPUT -m owner --uid-owner 2102 -j RETURN",
        "--dport 25 -j RETURN",
        "--dport 22 -j RETURN",
        "--dport 4191 -j RETURN",
    ] {
        assert!(once.contains(rule), "{rule} missing from:\n{once}");
    }
    assert_eq!(once.matches("-j TRELLIS_OUTPUT").count(), 1, "{once}");
}

#[test]
fn a_pod_is_deleted_even_when_its_test_panics() {
    if !netns::available() {
        return;
    }
    let name = std::sync::Mutex::new(String::new());
    let panicked = std::panic::catch_unwind(|| {
        let pod = Pod::new("panics").unwrap();
        *name.lock().unwrap() = pod.name().to_owned();
        panic!("a failing test");
    });
    assert!(panicked.is_err());
    let name = name.into_inner().unwrap();
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !name.is_empty() && !list.contains(&name),
        "{name} left in:\n{list}"
    );
}

#[test]
fn init_writes_the_ipv6_rules_too_and_remove_takes_them_away() {
    if !netns::available() || trellis_e2e::require_tool("ip6tables-save").is_none() {
        return;
    }
    let pod = Pod::new("init6").unwrap();
    let proxy = trellis_e2e::binary("trellis-proxy");
    let proxy = path(&proxy);
    let save = |tool: &str| {
        let saved = pod.run_ok(&[tool, "-t", "nat"]).unwrap();
        saved
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let init = [
        proxy,
        "init",
        "--ipv6",
        "require",
        "--skip-outbound-cidrs",
        "169.254.169.254,fd00:ec2::254",
    ];

    let out = pod.run_ok(&init).unwrap();
    assert!(
        out.contains("installed the IPv6 interception rules"),
        "{out}"
    );
    let v6 = save("ip6tables-save");
    for chain in [
        "TRELLIS_PREROUTING",
        "TRELLIS_INBOUND",
        "TRELLIS_OUTPUT",
        "TRELLIS_OUTBOUND",
    ] {
        assert!(v6.contains(&format!(":{chain} ")), "{chain} missing:\n{v6}");
    }
    for rule in [
        "-A OUTPUT -j TRELLIS_OUTPUT",
        "-A PREROUTING -j TRELLIS_PREROUTING",
        "-A TRELLIS_OUTPUT -o lo -j RETURN",
        "-A TRELLIS_OUTPUT -d fd00:ec2::254/128 -j RETURN",
    ] {
        assert!(v6.contains(rule), "{rule} missing from:\n{v6}");
    }
    assert!(
        !v6.contains("169.254"),
        "an IPv4 network in IPv6 rules:\n{v6}"
    );
    let v4 = save("iptables-save");
    assert!(v4.contains("-d 169.254.169.254/32 -j RETURN"), "{v4}");
    assert!(!v4.contains("fd00"), "an IPv6 network in IPv4 rules:\n{v4}");

    pod.run_ok(&init).unwrap();
    assert_eq!(
        save("ip6tables-save"),
        v6,
        "init twice leaves the same rules"
    );

    pod.run_ok(&[proxy, "init", "--remove"]).unwrap();
    let v6 = save("ip6tables-save");
    assert!(!v6.contains("TRELLIS"), "{v6}");
    let v4 = save("iptables-save");
    assert!(!v4.contains("TRELLIS"), "{v4}");
}
