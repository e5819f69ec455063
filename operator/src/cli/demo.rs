//! `trellis demo`: runs the mesh on this machine and tells its story (see
//! [`crate::demo`]).

use std::path::PathBuf;
use std::process::Command;

use crate::cli::exit;
use crate::demo::{self, Check, Mesh, Settings};

/// Run the whole mesh on this machine, driven by Git commits, in about a minute.
///
/// Creates a Git repository from gitops-examples/ (a web front end calling an API split
/// between v1 and v2), starts `trellis operator --local --git` on it, starts web and
/// api-v1 to api-v4 (`trellis demo-app`) each behind its own `trellis-proxy`, sends
/// traffic, then commits changes and shows each take effect on real requests: shifting the
/// split's weights, adding a TrafficTarget, pushing a broken manifest (refused, the last
/// good commit stays in force), then a Canary promoting v3 on live metrics and rolling
/// back v4, which answers 20 % errors. Exits 0 when every check held.
///
/// Examples:
///   trellis demo                      # run the story, print a summary, clean up
///   trellis demo --keep-running       # then leave everything up to explore
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// After the story, leave the operator, apps and proxies running and print their
    /// addresses; stop with Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// Working directory for the Git repository, the operator's data and the logs
    /// (default: a new directory under the system's temp dir, removed on success
    /// unless --keep-running).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Requests per measurement.
    #[arg(long, value_name = "N", default_value_t = 200)]
    requests: usize,
    /// The trellis-proxy binary (default: next to this `trellis`, built with cargo when
    /// missing and run through `cargo run`).
    #[arg(long, value_name = "FILE")]
    proxy_binary: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let trellis = match std::env::current_exe() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("trellis demo: cannot find this program's path: {e}");
            return exit::USAGE;
        }
    };
    let proxy = match args.proxy_binary.clone() {
        Some(p) => p,
        None => match find_or_build_proxy(&trellis) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("trellis demo: {e}");
                return exit::USAGE;
            }
        },
    };
    let explicit_dir = args.dir.is_some();
    let dir = demo::working_dir(args.dir.clone());
    let settings = Settings {
        dir: dir.clone(),
        requests: args.requests.max(20),
        trellis,
        proxy,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async {
        println!("Trellis demo: an SMI service mesh driven by Git, on this machine");
        println!("working directory: {}\n", dir.display());
        let mut mesh = match Mesh::start(settings).await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("\ntrellis demo: could not start the mesh: {e:#}");
                eprintln!("logs: {}", dir.join("logs").display());
                return exit::PROBLEMS;
            }
        };
        let checks = match mesh.story().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("\ntrellis demo: {e:#}");
                eprintln!("logs: {}", dir.join("logs").display());
                mesh.stop().await;
                return exit::PROBLEMS;
            }
        };
        let passed = summary(&mesh, &checks);
        if args.keep_running {
            explore(&mesh);
            let _ = tokio::signal::ctrl_c().await;
            println!("\nstopping");
        }
        mesh.stop().await;
        if passed { exit::OK } else { exit::PROBLEMS }
    });
    if code == exit::OK && !explicit_dir && !args.keep_running {
        let _ = std::fs::remove_dir_all(&dir);
    } else if code != exit::OK {
        eprintln!(
            "the repository and the logs are kept in {} for a look",
            dir.display()
        );
    }
    code
}

/// Prints what was shown; true when every check held.
fn summary(mesh: &Mesh, checks: &[Check]) -> bool {
    let requests: usize = checks.iter().map(|c| c.requests).sum();
    let ok: usize = checks.iter().map(|c| c.ok).sum();
    let denied: usize = checks.iter().map(|c| c.denied).sum();
    let failed: Vec<&Check> = checks.iter().filter(|c| c.failure.is_some()).collect();
    println!("\nSummary ({:.0} s)", mesh.elapsed().as_secs_f64());
    for c in checks {
        let mark = if c.failure.is_none() {
            "ok    "
        } else {
            "FAILED"
        };
        println!("  {mark} {}: {}", c.title, c.observed);
        if let Some(why) = &c.failure {
            println!("         {why}");
        }
    }
    println!(
        "\n  {requests} requests measured: {ok} succeeded ({:.1}%), {denied} denied by SMI access policy (403) as intended, {} otherwise",
        100.0 * ok as f64 / requests.max(1) as f64,
        requests - ok - denied
    );
    println!(
        "  {} of {} checks held",
        checks.len() - failed.len(),
        checks.len()
    );
    println!("\nWhere to look next:");
    println!(
        "  trellis demo --keep-running     leave the mesh up, commit to its repo, watch it change"
    );
    println!(
        "  trellis status --admin URL      resources, conditions, canaries, workloads and proxies"
    );
    println!("  docs/demo.md, docs/gitops.md    what the demo did, and the Git source in depth");
    println!("  docs/canary.md                  canaries: the GitOps flow, metrics, webhooks");
    failed.is_empty()
}

/// Prints the addresses to explore with `--keep-running`.
fn explore(mesh: &Mesh) {
    println!("\nThe mesh keeps running (Ctrl-C stops it):");
    println!(
        "  repository:  {}   (edit, git commit: the operator follows main every 2 s)",
        mesh.repo.path().display()
    );
    println!(
        "  status:      trellis status --admin http://{}",
        mesh.admin
    );
    println!("  operator:    http://{}/status  /metrics", mesh.admin);
    for app in &mesh.apps {
        println!(
            "  {:<7}      app http://{}/   proxy http://{}/metrics  /config",
            app.name, app.addr, app.proxy_admin
        );
    }
    println!(
        "  try:         curl 'http://{}/call?service=api.shop:8080&path=/items'",
        mesh.web()
    );
    println!(
        "  logs:        {}",
        mesh.settings.dir.join("logs").display()
    );
}

/// `trellis-proxy` next to this program; when it is missing and this runs under
/// `cargo run` (CARGO is set), builds it with the same profile.
fn find_or_build_proxy(trellis: &std::path::Path) -> Result<PathBuf, String> {
    let proxy = demo::proxy_beside(trellis);
    if proxy.is_file() {
        return Ok(proxy);
    }
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Err(format!(
            "{} not found: build it (cargo build -p trellis-proxy) or pass --proxy-binary",
            proxy.display()
        ));
    };
    let release = trellis
        .parent()
        .and_then(|d| d.file_name())
        .is_some_and(|d| d == "release");
    println!("building trellis-proxy (cargo build -p trellis-proxy), once...");
    let mut command = Command::new(cargo);
    command.args(["build", "-p", "trellis-proxy"]);
    if release {
        command.arg("--release");
    }
    match command.status() {
        Ok(s) if s.success() && proxy.is_file() => Ok(proxy),
        Ok(s) => Err(format!(
            "building trellis-proxy failed ({s}); run `cargo build -p trellis-proxy` to see why"
        )),
        Err(e) => Err(format!("cannot run cargo to build trellis-proxy: {e}")),
    }
}
