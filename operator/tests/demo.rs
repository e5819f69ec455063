//! `trellis demo`, as a user runs it: the real binary starting a real operator, proxies and
//! apps, committing to a real Git repository, and telling what it showed.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trellis_e2e::binary;

fn demo() -> Command {
    let mut command = Command::new(binary("trellis"));
    command
        .arg("demo")
        .arg("--proxy-binary")
        .arg(binary("trellis-proxy"));
    command
}

#[test]
fn the_demo_shows_every_step_take_effect_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo().arg("--dir").arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for shown in [
        "created a Git repository from gitops-examples/",
        "operator running in local mode",
        "ok     90/10 split in force: 200 x 200",
        "ok     DELETE /items denied by the TrafficTarget (SMI deny by default): 403 x 200",
        "ok     50/50 after a commit",
        "ok     0/100: every request on v2: 200 x 200 (v2 100%)",
        "ok     GET /healthz allowed by the new TrafficTarget: 200 x 200",
        "shop/split.yaml:11: TrafficSplit shop/api-rollout: spec.backends[0].weight",
        "ok     broken commit refused; traffic stays on the last good commit (0/100): 200 x 200 (v2 100%)",
        "7 of 7 checks held",
        "Where to look next",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?} in:\n{stdout}");
    }
    // The repository holds the story as commits, and every process wrote a log.
    let log = Command::new("git")
        .arg("-C")
        .arg(dir.path().join("repo"))
        .args(["log", "--format=%s"])
        .output();
    if let Ok(log) = log {
        let subjects = String::from_utf8_lossy(&log.stdout);
        assert!(subjects.contains("api: broken weights"), "{subjects}");
        assert!(subjects.contains("Import gitops-examples/"), "{subjects}");
    }
    for name in ["operator", "web", "web-proxy", "api-v1-proxy", "api-v2"] {
        assert!(
            dir.path().join(format!("logs/{name}.log")).is_file(),
            "{name}"
        );
    }
}

#[test]
fn keep_running_leaves_the_mesh_up_to_explore_until_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = demo()
        .arg("--dir")
        .arg(dir.path())
        .args(["--keep-running", "--requests", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut try_line = None;
    let mut lines = Vec::new();
    while try_line.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
            if line.trim_start().starts_with("try:") {
                try_line = Some(line.clone());
            }
            lines.push(line);
        }
    }
    let try_line =
        try_line.unwrap_or_else(|| panic!("no addresses printed:\n{}", lines.join("\n")));
    assert!(lines.iter().any(|l| l.contains("Ctrl-C stops it")));

    // The printed web address answers, calling the API through the mesh.
    let url = try_line.split('\'').nth(1).unwrap();
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime
        .block_on(trellis_e2e::client::get(
            addr.parse().unwrap(),
            "/call?service=api.shop:8080&path=/items",
        ))
        .unwrap();
    assert_eq!(reply.status, 200, "{reply}");
    assert!(reply.text().contains("\"version\":\"v2\""), "{reply}");

    // Ctrl-C stops everything and the demo exits 0.
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
