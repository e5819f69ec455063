//! `trellis demo-app` as users and the demos meet it: real processes on loopback ports.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use trellis_e2e::client::{self, Reply};
use trellis_e2e::demo_app::{DemoApp, Stats};

/// `method path` on `app` with `Host: host`, as a proxy in front of it would send it.
async fn send(app: &DemoApp, method: Method, host: &str, path: &str) -> Reply {
    let req = client::request(method, host, path)
        .body(client::empty())
        .unwrap();
    client::send_once(app.addr, req).await.unwrap()
}

async fn get(app: &DemoApp, path: &str) -> Reply {
    app.get(path).await.unwrap()
}

async fn post(app: &DemoApp, path: &str) -> Reply {
    app.post(path).await.unwrap()
}

fn body_json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {reply}"))
}

/// The statuses of `n` requests to `path`.
async fn statuses(app: &DemoApp, path: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..n {
        statuses.push(get(app, path).await.status.as_u16());
    }
    statuses
}

/// An address nothing listens on.
fn dead_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn prints_one_listening_line_and_stops_on_sigterm_with_exit_0() {
    let mut child = Command::new(trellis_e2e::binary("trellis"))
        .args(["demo-app", "--name", "api-v1", "--version", "v1"])
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (line, stdout) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            (line, stdout)
        }),
    )
    .await
    .expect("a listening line within 10 s")
    .unwrap();

    let addr = line
        .strip_prefix("trellis demo-app listening addr=")
        .and_then(|rest| rest.strip_suffix(" name=api-v1 version=v1\n"))
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_eq!(client::get(addr, "/healthz").await.unwrap().text(), "ok\n");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    let mut rest = String::new();
    let mut stdout = stdout;
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "", "nothing on stdout after the listening line");
}

#[tokio::test]
async fn answers_with_json_naming_the_app_and_what_it_received() {
    let app = DemoApp::start("api-v1", "v1").await.unwrap();

    let reply = send(&app, Method::GET, "api.shop", "/items").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.text(),
        "{\"name\":\"api-v1\",\"version\":\"v1\",\"method\":\"GET\",\"path\":\"/items\",\"host\":\"api.shop\"}\n"
    );
    assert_eq!(reply.header("x-demo-name").as_deref(), Some("api-v1"));
    assert_eq!(reply.header("x-demo-version").as_deref(), Some("v1"));
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/json")
    );

    let other = send(&app, Method::DELETE, "api.shop:8080", "/carts/7?now=1").await;
    assert_eq!(
        body_json(&other),
        json!({"name": "api-v1", "version": "v1", "method": "DELETE", "path": "/carts/7", "host": "api.shop:8080"})
    );
}

#[tokio::test]
async fn error_rate_one_answers_500_to_every_request() {
    let app = DemoApp::builder("api-v2", "v2")
        .error_rate(1.0)
        .start()
        .await
        .unwrap();

    assert_eq!(statuses(&app, "/items", 20).await, vec![500; 20]);

    let reply = get(&app, "/items").await;
    assert_eq!(
        body_json(&reply),
        json!({"name": "api-v2", "version": "v2", "method": "GET", "path": "/items",
               "host": app.addr.to_string(), "error": "injected by --error-rate"})
    );
    assert_eq!(reply.header("x-demo-name").as_deref(), Some("api-v2"));
    assert_eq!(reply.header("x-demo-version").as_deref(), Some("v2"));
    assert_eq!(
        app.stats().await.unwrap(),
        Stats {
            requests: 21,
            errors: 21
        }
    );
}

#[tokio::test]
async fn error_rate_zero_never_answers_500() {
    let app = DemoApp::builder("api-v1", "v1")
        .error_rate(0.0)
        .start()
        .await
        .unwrap();

    assert_eq!(statuses(&app, "/items", 50).await, vec![200; 50]);
    assert_eq!(
        app.stats().await.unwrap(),
        Stats {
            requests: 50,
            errors: 0
        }
    );
}

#[tokio::test]
async fn healthz_is_never_an_error_and_not_counted() {
    let app = DemoApp::builder("api-v1", "v1")
        .error_rate(1.0)
        .start()
        .await
        .unwrap();

    for _ in 0..10 {
        let reply = get(&app, "/healthz").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.text(), "ok\n");
    }
    assert_eq!(app.stats().await.unwrap(), Stats::default());
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let latency = Duration::from_millis(300);
    let app = DemoApp::builder("api-v1", "v1")
        .latency(latency)
        .start()
        .await
        .unwrap();

    let reply = get(&app, "/items").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.elapsed >= latency,
        "answered after {:?}, before the latency {latency:?}",
        reply.elapsed
    );
    assert_eq!(
        get(&app, "/_demo/config").await.text(),
        "{\"latency\":\"300ms\",\"errorRate\":0.0}\n"
    );
}

#[tokio::test]
async fn call_goes_through_the_proxy_with_the_service_as_host() {
    // The "proxy" is another demo app: whatever it receives, it echoes.
    let upstream = DemoApp::start("api-v2", "v2").await.unwrap();
    let web = DemoApp::builder("web", "v1")
        .proxy(upstream.addr)
        .start()
        .await
        .unwrap();

    let reply = get(&web, "/call?service=api.shop&path=/items").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        body_json(&reply),
        json!({"name": "api-v2", "version": "v2", "method": "GET", "path": "/items", "host": "api.shop"})
    );
    assert_eq!(
        reply.header("x-demo-upstream-status").as_deref(),
        Some("200")
    );
    assert_eq!(reply.header("x-demo-name").as_deref(), Some("api-v2"));
    assert_eq!(reply.header("x-demo-version").as_deref(), Some("v2"));

    let with_port = get(
        &web,
        "/call?service=api.shop:8080&path=%2Fcarts&method=POST",
    )
    .await;
    assert_eq!(
        body_json(&with_port),
        json!({"name": "api-v2", "version": "v2", "method": "POST", "path": "/carts", "host": "api.shop:8080"})
    );

    let default_path = get(&web, "/call?service=api.shop").await;
    assert_eq!(body_json(&default_path)["path"], "/");
}

#[tokio::test]
async fn call_relays_the_upstream_status_and_body_verbatim() {
    let upstream = DemoApp::builder("api-v2", "v2")
        .error_rate(1.0)
        .start()
        .await
        .unwrap();
    let web = DemoApp::builder("web", "v1")
        .proxy(upstream.addr)
        .start()
        .await
        .unwrap();

    let reply = get(&web, "/call?service=api.shop&path=/items").await;

    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.header("x-demo-upstream-status").as_deref(),
        Some("500")
    );
    assert_eq!(
        reply.text(),
        "{\"name\":\"api-v2\",\"version\":\"v2\",\"method\":\"GET\",\"path\":\"/items\",\"host\":\"api.shop\",\"error\":\"injected by --error-rate\"}\n"
    );
}

#[tokio::test]
async fn call_without_proxy_connects_to_the_service_itself() {
    let upstream = DemoApp::start("api-v2", "v2").await.unwrap();
    let web = DemoApp::start("web", "v1").await.unwrap();

    let service = upstream.addr.to_string();
    let reply = get(&web, &format!("/call?service={service}&path=/items")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(body_json(&reply)["host"], service.as_str());
}

#[tokio::test]
async fn call_through_a_dead_proxy_answers_502_saying_what_to_check() {
    let proxy = dead_addr();
    let web = DemoApp::builder("web", "v1")
        .proxy(proxy)
        .start()
        .await
        .unwrap();

    let reply = get(&web, "/call?service=api.shop&path=/items").await;

    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let message = reply.text();
    assert!(
        message.contains("http://api.shop/items")
            && message.contains(&format!("cannot connect to the proxy {proxy}"))
            && message.contains("check that trellis-proxy runs"),
        "{message}"
    );
}

#[tokio::test]
async fn config_post_changes_the_behaviour_at_runtime() {
    let app = DemoApp::start("api-v1", "v1").await.unwrap();
    assert_eq!(
        get(&app, "/_demo/config").await.text(),
        "{\"latency\":\"0s\",\"errorRate\":0.0}\n"
    );
    assert_eq!(statuses(&app, "/items", 5).await, vec![200; 5]);

    let changed = post(&app, "/_demo/config?error-rate=1&latency=10ms").await;

    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.text(), "{\"latency\":\"10ms\",\"errorRate\":1.0}\n");
    assert_eq!(get(&app, "/_demo/config").await.text(), changed.text());
    assert_eq!(statuses(&app, "/items", 10).await, vec![500; 10]);
    assert_eq!(
        app.stats().await.unwrap(),
        Stats {
            requests: 15,
            errors: 10
        }
    );
}

#[tokio::test]
async fn bad_input_is_answered_400_naming_the_parameter() {
    let app = DemoApp::builder("api-v1", "v1")
        .error_rate(0.1)
        .start()
        .await
        .unwrap();
    let before = get(&app, "/_demo/config").await.text();

    for (reply, parameter) in [
        (get(&app, "/call?path=/items").await, "service"),
        (get(&app, "/call?service=api.shop&path=items").await, "path"),
        (post(&app, "/_demo/config?error-rate=2").await, "error-rate"),
        (post(&app, "/_demo/config?latency=soon").await, "latency"),
        (
            post(&app, "/_demo/config?latency=1s&error-rate=-1").await,
            "error-rate",
        ),
    ] {
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply}");
        assert!(
            reply
                .text()
                .starts_with(&format!("query parameter {parameter}: ")),
            "{reply}"
        );
    }
    assert_eq!(
        get(&app, "/_demo/config").await.text(),
        before,
        "a rejected change changes nothing"
    );
}

#[test]
fn bad_flags_are_usage_errors_naming_the_flag() {
    for (flag, value, hint) in [
        ("--error-rate", "1.5", "0.0 (no errors) to 1.0"),
        ("--latency", "fast", "use a number with a unit"),
    ] {
        let out = Command::new(trellis_e2e::binary("trellis"))
            .args([
                "demo-app",
                "--name",
                "api-v1",
                "--version",
                "v1",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(hint),
            "{flag} {value}: {stderr}"
        );
    }
}

#[test]
fn help_describes_every_endpoint_with_an_example() {
    let out = Command::new(trellis_e2e::binary("trellis"))
        .args(["demo-app", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for text in [
        "--latency",
        "--error-rate",
        "--proxy",
        "/healthz",
        "/call?service=",
        "/_demo/config",
        "/_demo/stats",
        "Example:",
    ] {
        assert!(help.contains(text), "--help lacks {text:?}:\n{help}");
    }
}
