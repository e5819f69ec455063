//! `trellis-bench`: constant-rate (open-loop) load of 1 KiB HTTP/1.1 answers, latency
//! corrected for coordinated omission, sent directly to a built-in backend, through one
//! `trellis-proxy`, through one HAProxy, through two trellis-proxies talking mTLS and through
//! two HAProxies talking mTLS, side by side in one run. See docs/benchmarks.md.

mod backend;
mod load;
mod report;
mod sys;
mod targets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use report::{Cell, MaxCell, Meta, Percentiles, Report};
use targets::Kind;

#[derive(Debug, Parser)]
#[command(
    name = "trellis-bench",
    about = "Load benchmark: direct vs trellis-proxy vs HAProxy, open loop, corrected for coordinated omission",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole benchmark (the default when no subcommand is given).
    Run(RunArgs),
    /// Only the built-in backend (1 KiB answers), until Ctrl-C.
    Backend {
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: SocketAddr,
    },
    /// Only the load generator, against any HTTP/1.1 server.
    Load(LoadArgs),
}

#[derive(Debug, Clone, Args)]
struct RunArgs {
    /// Open-loop rates, req/s.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    rates: Vec<f64>,
    /// Measured seconds per (target, rate) cell, split evenly over the rounds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Sweeps over every (rate, target) cell; the rounds of a cell are merged. Interleaving
    /// the targets this way spreads slow drifts of the machine over all of them alike.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Warm-up seconds before each measurement (load sent, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Keep-alive connections of the load generator.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// What to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "direct,trellis-proxy,haproxy,trellis-mtls,haproxy-tls"
    )]
    targets: Vec<Kind>,
    /// Short run: 3 s per cell after 1 s of warm-up, 2 s saturation runs.
    #[arg(long)]
    quick: bool,
    /// Measured seconds of each closed-loop saturation run.
    #[arg(long, default_value_t = 5.0)]
    max_duration: f64,
    /// Connections of the saturation runs.
    #[arg(long, default_value_t = 32)]
    max_connections: usize,
    /// Skip the saturation (max throughput) runs.
    #[arg(long)]
    no_max: bool,
    /// trellis-proxy binary [default: next to this binary, else $CARGO_TARGET_DIR/release].
    #[arg(long)]
    proxy_bin: Option<PathBuf>,
    /// Threads of trellis-proxy: `--threads` when the build has it, and TOKIO_WORKER_THREADS
    /// (HAProxy runs `nbthread 1`).
    #[arg(long, default_value_t = 1)]
    proxy_workers: usize,
    /// HAProxy binary.
    #[arg(long, default_value = "haproxy")]
    haproxy_bin: PathBuf,
    /// CPU the proxies are pinned to.
    #[arg(long, default_value_t = 1)]
    proxy_cpu: usize,
    /// CPU the load generator and backend are pinned to.
    #[arg(long, default_value_t = 0)]
    loadgen_cpu: usize,
    /// Before each measurement, wait up to this many seconds for other processes to leave
    /// the CPUs idle (0: do not wait).
    #[arg(long, default_value_t = 30.0)]
    quiet_wait: f64,
    /// Measure a (target, rate) round again, up to this many times, when other processes used
    /// more than 0.1 core while it ran.
    #[arg(long, default_value_t = 2)]
    noise_retries: usize,
    /// Do not pin anything.
    #[arg(long)]
    no_pin: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Address to send to.
    #[arg(long)]
    addr: SocketAddr,
    /// Host header.
    #[arg(long, default_value = targets::AUTHORITY)]
    host: String,
    /// Requests per second; 0: closed loop.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let result = match command {
        Command::Run(args) => run(args),
        Command::Backend { addr } => runtime()
            .and_then(|rt| rt.block_on(backend::run_foreground(addr)))
            .map(|()| ExitCode::SUCCESS),
        Command::Load(args) => load_only(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("trellis-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Other processes using more CPU than this during a measurement make it noisy.
const NOISY_CORES: f64 = 0.05;
/// Other processes using more CPU than this during a measurement get it discarded and
/// measured again (up to `--noise-retries` times).
const RETRY_CORES: f64 = 0.1;
/// Busy cores below which the machine counts as idle before a measurement.
const QUIET_CORES: f64 = 0.05;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

fn load_only(args: &LoadArgs) -> Result<()> {
    sys::tighten_timer_slack();
    let rt = runtime()?;
    let plan = load::Plan {
        addr: args.addr,
        host: args.host.clone(),
        connections: args.connections,
        rate: (args.rate > 0.0).then_some(args.rate),
        warmup: secs(args.warmup),
        duration: secs(args.duration),
        watch: vec![],
    };
    let out = rt.block_on(load::run(&plan))?;
    let p = Percentiles::of(&out.latency);
    println!(
        "{:.0} req/s achieved; latency p50 {} p99 {} p99.9 {} max {}; {} ok, {} non-200, {} errors, {} lost",
        out.achieved_rps,
        report::us(p.p50),
        report::us(p.p99),
        report::us(p.p99_9),
        report::us(p.max),
        out.ok,
        out.bad_status,
        out.errors,
        out.incomplete
    );
    Ok(())
}

fn default_proxy_bin() -> PathBuf {
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("trellis-proxy")));
    let from_env =
        std::env::var_os("CARGO_TARGET_DIR").map(|d| Path::new(&d).join("release/trellis-proxy"));
    let in_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/trellis-proxy");
    [sibling, from_env, Some(in_tree)]
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| Path::new("trellis-proxy").to_owned())
}

fn run(mut args: RunArgs) -> Result<ExitCode> {
    if args.quick {
        args.duration = 3.0;
        args.warmup = 1.0;
        args.rounds = 1;
        args.max_duration = 2.0;
    }
    let mut targets: Vec<Kind> = Vec::new();
    for t in &args.targets {
        if !targets.contains(t) {
            targets.push(*t);
        }
    }
    let mut rates = args.rates.clone();
    rates.retain(|r| *r > 0.0);
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    anyhow::ensure!(!rates.is_empty(), "--rates: give at least one rate > 0");

    // HAProxy must be there: the comparison is the point of the benchmark.
    let haproxy_bin = if targets.iter().any(|t| t.uses_haproxy()) {
        let found = if args.haproxy_bin.components().count() > 1 {
            args.haproxy_bin.is_file().then(|| args.haproxy_bin.clone())
        } else {
            sys::which(&args.haproxy_bin.to_string_lossy())
        };
        match found {
            Some(p) => p,
            None => {
                eprintln!(
                    "trellis-bench: HAProxy not found ({}). Install it with `apt-get install haproxy` \
                     (e2e/bench/run.sh does this), or leave it out with \
                     --targets direct,trellis-proxy,trellis-mtls.",
                    args.haproxy_bin.display()
                );
                return Ok(ExitCode::from(2));
            }
        }
    } else {
        args.haproxy_bin.clone()
    };

    // Pin before any thread exists: the backend thread, the pacer threads and the runtime
    // inherit the main thread's CPU mask.
    let cpus = sys::cpu_count();
    let machine = sys::machine(cpus);
    let pin = !args.no_pin && cpus >= 2 && sys::which("taskset").is_some();
    let pinning = if pin {
        sys::pin_self(args.loadgen_cpu)?;
        format!(
            "proxy under test on CPU {} (taskset -c {}); load generator and backend on CPU {}",
            args.proxy_cpu, args.proxy_cpu, args.loadgen_cpu
        )
    } else if args.no_pin {
        "not pinned (--no-pin)".to_owned()
    } else {
        format!("not pinned ({cpus} CPU(s) or no taskset)")
    };
    let slack = sys::tighten_timer_slack();

    let tmp = std::env::temp_dir().join(format!("trellis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let backend = backend::spawn("127.0.0.1:0".parse()?)?;
    let env = targets::Env {
        backend,
        tmp: tmp.clone(),
        proxy_bin: args.proxy_bin.clone().unwrap_or_else(default_proxy_bin),
        haproxy_bin: haproxy_bin.clone(),
        proxy_cpu: pin.then_some(args.proxy_cpu),
        proxy_workers: args.proxy_workers,
    };
    let meta = Meta {
        machine,
        pinning,
        haproxy: targets
            .iter()
            .any(|t| t.uses_haproxy())
            .then(|| targets::haproxy_version(&haproxy_bin))
            .flatten(),
        trellis_proxy_bin: env.proxy_bin.display().to_string(),
        trellis_proxy_workers: args.proxy_workers,
        connections: args.connections,
        warmup_secs: args.warmup,
        duration_secs: args.duration,
        rounds: args.rounds.max(1),
        max_connections: args.max_connections,
        max_duration_secs: args.max_duration,
        unix_time: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    eprintln!("trellis-bench: {}", meta.machine);
    eprintln!("trellis-bench: {}", meta.pinning);
    if !slack {
        eprintln!("trellis-bench: could not lower timer slack; pacing may lag by ~50 µs");
    }
    eprintln!(
        "trellis-bench: backend on {backend}; {} connections; per cell {}s measured in {} round(s), each after {}s of warm-up",
        args.connections,
        args.duration,
        args.rounds.max(1),
        args.warmup
    );

    let rt = runtime()?;
    let result = rt.block_on(measure_all(&args, &targets, &rates, &env));
    let _ = std::fs::remove_dir_all(&tmp);
    let (mut cells, max_throughput) = result?;
    report::compute_added(&mut cells);
    let verdicts = report::verdicts(&cells, &targets);
    let report = Report {
        meta,
        cells,
        max_throughput,
        verdicts,
    };

    println!();
    println!(
        "Open loop, {} keep-alive HTTP/1.1 connections, 1 KiB answers; latency from the scheduled send \
         time (corrected for coordinated omission); added = target - direct at the same rate.",
        report.meta.connections
    );
    println!("{}", report.meta.pinning);
    println!();
    print!("{}", report::table(&report));
    let pairs: Vec<&str> = targets
        .iter()
        .filter(|t| t.proxies() > 1)
        .map(|t| t.name())
        .collect();
    if !pairs.is_empty() {
        println!(
            "{} run two proxies each (both on the proxy CPU): their proxy CPU, wakeups and peak RSS \
             are the two processes' sums.",
            pairs.join(" and ")
        );
    }
    let noisiest = report
        .cells
        .iter()
        .filter_map(|c| c.other_cpu_cores)
        .fold(0.0_f64, f64::max);
    if noisiest > NOISY_CORES {
        println!(
            "NOTE: other processes used up to {noisiest:.2} cores during the measurements: \
             tail latencies and CPU figures are disturbed; rerun on a quiet machine."
        );
    }
    if !report.max_throughput.is_empty() {
        println!();
        println!(
            "Max throughput on one core: closed loop, {} connections, {}s measured; \
             req/s per core = req/s / proxy CPU (the load generator's core may saturate first).",
            report.meta.max_connections, report.meta.max_duration_secs
        );
        print!("{}", report::max_table(&report));
    }
    println!();
    print!("{}", report::verdict_lines(&report));

    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("trellis-bench: results written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

async fn measure_all(
    args: &RunArgs,
    targets: &[Kind],
    rates: &[f64],
    env: &targets::Env,
) -> Result<(Vec<Cell>, Vec<MaxCell>)> {
    let me = std::process::id();
    // A target that failed once is not retried.
    let mut broken: HashMap<Kind, String> = HashMap::new();
    let mut accs: Vec<Acc> = Vec::new();
    for &rate in rates {
        for &kind in targets {
            accs.push(Acc::new(kind, rate));
        }
    }
    let rounds = args.rounds.max(1);
    let per_round = secs(args.duration / rounds as f64);
    for round in 1..=rounds {
        for acc in &mut accs {
            let (kind, rate) = (acc.kind, acc.rate);
            if broken.contains_key(&kind) {
                continue;
            }
            let tag = if rounds > 1 {
                format!("[round {round}/{rounds}] [{rate:.0} req/s] {kind}")
            } else {
                format!("[{rate:.0} req/s] {kind}")
            };
            let mut retries = args.noise_retries;
            loop {
                wait_quiet(args.quiet_wait, &tag).await;
                eprintln!("{tag}: running...");
                match open_loop_round(args, kind, rate, per_round, env, me).await {
                    Ok((out, mem, conns)) => {
                        let other = out.other_cpu_cores.unwrap_or(0.0);
                        if other > RETRY_CORES && retries > 0 {
                            retries -= 1;
                            eprintln!(
                                "{tag}: other processes used {other:.2} cores meanwhile: \
                                 discarded, measuring again"
                            );
                            continue;
                        }
                        eprintln!("{tag}: {}", summary(&out, mem));
                        acc.add(&out, mem, conns);
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        eprintln!("{tag}: FAILED: {e}");
                        broken.insert(kind, e);
                    }
                }
                break;
            }
        }
    }
    let cells = accs
        .iter()
        .map(|acc| match broken.get(&acc.kind) {
            Some(e) => Cell::failed(acc.kind, acc.rate, e.clone()),
            None => acc.cell(),
        })
        .collect();

    let mut maxes = Vec::new();
    if !args.no_max {
        for &kind in targets {
            let m = match broken.get(&kind) {
                Some(e) => max_failed(kind, e.clone()),
                None => {
                    wait_quiet(args.quiet_wait, &format!("[max] {kind}")).await;
                    eprintln!("[max] {kind}: closed loop, {}s...", args.max_duration);
                    match max_cell(args, kind, env, me).await {
                        Ok(m) => {
                            eprintln!(
                                "[max] {kind}: {:.0} req/s{}",
                                m.rps,
                                m.proxy_cpu_cores
                                    .map_or(String::new(), |c| format!(" at {c:.3} cores"))
                            );
                            m
                        }
                        Err(e) => {
                            let e = format!("{e:#}");
                            eprintln!("[max] {kind}: FAILED: {e}");
                            max_failed(kind, e)
                        }
                    }
                }
            };
            maxes.push(m);
        }
    }
    Ok((cells, maxes))
}

/// CPU of the proxies (watched after the bench itself) in the window, summed; `None` when
/// there is no proxy or one could not be read.
fn proxies_cpu(out: &load::Outcome) -> Option<f64> {
    let proxies = out.cpu_cores.get(1..).filter(|p| !p.is_empty())?;
    proxies.iter().copied().sum()
}

/// Voluntary context switches of the proxies in the window, summed, as [`proxies_cpu`].
fn proxies_switches(out: &load::Outcome) -> Option<u64> {
    let proxies = out.switches.get(1..).filter(|p| !p.is_empty())?;
    proxies.iter().copied().sum()
}

/// One round's figures on one progress line.
fn summary(out: &load::Outcome, mem: Option<sys::Memory>) -> String {
    let p = Percentiles::of(&out.latency);
    let mut line = format!(
        "{:.0} req/s, p50 {} p99 {} p99.9 {}",
        out.achieved_rps,
        report::us(p.p50),
        report::us(p.p99),
        report::us(p.p99_9)
    );
    if let Some(c) = proxies_cpu(out) {
        line += &format!(", {:.4} cores/1k req/s", c / (out.achieved_rps / 1000.0));
    }
    if let Some(m) = mem {
        line += &format!(", peak RSS {:.1} MiB", m.peak_rss_kib as f64 / 1024.0);
    }
    if out.bad_status + out.errors + out.incomplete > 0 {
        line += &format!(
            ", {} non-200, {} errors, {} lost",
            out.bad_status, out.errors, out.incomplete
        );
    }
    if let Some(o) = out.other_cpu_cores.filter(|o| *o > NOISY_CORES) {
        line += &format!("; WARNING: other processes used {o:.2} cores meanwhile");
    }
    line
}

/// Waits (up to `max_secs`) until the rest of the machine is idle: other processes busy on
/// the CPUs make tail latencies and CPU figures meaningless.
async fn wait_quiet(max_secs: f64, tag: &str) {
    let deadline = std::time::Instant::now() + secs(max_secs);
    let mut told = false;
    loop {
        let Ok(before) = sys::machine_busy_seconds() else {
            return;
        };
        let t0 = std::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(after) = sys::machine_busy_seconds() else {
            return;
        };
        let busy = (after - before) / t0.elapsed().as_secs_f64();
        if busy <= QUIET_CORES {
            return;
        }
        if std::time::Instant::now() >= deadline {
            eprintln!("{tag}: machine still busy ({busy:.2} cores); measuring anyway");
            return;
        }
        if !told {
            eprintln!(
                "{tag}: other processes use {busy:.2} cores; waiting up to {max_secs}s for quiet..."
            );
            told = true;
        }
    }
}

/// One (target, rate) cell summed over its rounds: histograms merged, CPU and throughput
/// averaged, peak RSS the highest seen.
struct Acc {
    kind: Kind,
    rate: f64,
    rounds: u32,
    backend_conns: u64,
    latency: hdrhistogram::Histogram<u64>,
    send_delay: hdrhistogram::Histogram<u64>,
    ok: u64,
    bad_status: u64,
    errors: u64,
    incomplete: u64,
    rps_sum: f64,
    proxy_cpu_sum: Option<f64>,
    loadgen_cpu_sum: Option<f64>,
    other_cpu_sum: Option<f64>,
    wakeups_sum: Option<f64>,
    mem: Option<sys::Memory>,
}

impl Acc {
    fn new(kind: Kind, rate: f64) -> Self {
        Acc {
            kind,
            rate,
            rounds: 0,
            backend_conns: 0,
            latency: load::new_histogram(),
            send_delay: load::new_histogram(),
            ok: 0,
            bad_status: 0,
            errors: 0,
            incomplete: 0,
            rps_sum: 0.0,
            proxy_cpu_sum: None,
            loadgen_cpu_sum: None,
            other_cpu_sum: None,
            wakeups_sum: None,
            mem: None,
        }
    }

    fn add(&mut self, out: &load::Outcome, mem: Option<sys::Memory>, backend_conns: u64) {
        fn sum(acc: &mut Option<f64>, v: Option<f64>) {
            if let Some(v) = v {
                *acc = Some(acc.unwrap_or(0.0) + v);
            }
        }
        self.rounds += 1;
        self.backend_conns += backend_conns;
        let _ = self.latency.add(&out.latency);
        let _ = self.send_delay.add(&out.send_delay);
        self.ok += out.ok;
        self.bad_status += out.bad_status;
        self.errors += out.errors;
        self.incomplete += out.incomplete;
        self.rps_sum += out.achieved_rps;
        sum(
            &mut self.loadgen_cpu_sum,
            out.cpu_cores.first().copied().flatten(),
        );
        sum(&mut self.proxy_cpu_sum, proxies_cpu(out));
        sum(&mut self.other_cpu_sum, out.other_cpu_cores);
        // Wakeups per answer inside the window.
        let answers = out.achieved_rps * out.window_secs;
        sum(
            &mut self.wakeups_sum,
            proxies_switches(out)
                .filter(|_| answers > 0.0)
                .map(|w| w as f64 / answers),
        );
        if let Some(m) = mem {
            let peak = self.mem.map_or(0, |p| p.peak_rss_kib).max(m.peak_rss_kib);
            self.mem = Some(sys::Memory {
                peak_rss_kib: peak,
                rss_kib: m.rss_kib,
            });
        }
    }

    fn cell(&self) -> Cell {
        let n = f64::from(self.rounds.max(1));
        let achieved_rps = self.rps_sum / n;
        let proxy_cpu = self.proxy_cpu_sum.map(|c| c / n);
        Cell {
            target: self.kind,
            rate: self.rate,
            error: None,
            achieved_rps,
            ok: self.ok,
            bad_status: self.bad_status,
            errors: self.errors,
            incomplete: self.incomplete,
            latency_us: Percentiles::of(&self.latency),
            added_us: None,
            send_delay_p99_us: self.send_delay.value_at_quantile(0.99) as f64 / 1000.0,
            proxy_cpu_cores: proxy_cpu,
            proxy_cpu_per_1k: proxy_cpu
                .filter(|_| achieved_rps > 0.0)
                .map(|c| c / (achieved_rps / 1000.0)),
            loadgen_cpu_cores: self.loadgen_cpu_sum.map(|c| c / n),
            other_cpu_cores: self.other_cpu_sum.map(|c| c / n),
            proxy_wakeups_per_req: self.wakeups_sum.map(|w| w / n),
            backend_conns: self.backend_conns as f64 / n,
            peak_rss_mib: self.mem.map(|m| m.peak_rss_kib as f64 / 1024.0),
            rss_mib: self.mem.map(|m| m.rss_kib as f64 / 1024.0),
        }
    }
}

fn max_failed(target: Kind, error: String) -> MaxCell {
    MaxCell {
        target,
        error: Some(error),
        rps: 0.0,
        errors: 0,
        bad_status: 0,
        proxy_cpu_cores: None,
        rps_per_core: None,
        loadgen_cpu_cores: None,
        latency_us: Percentiles::default(),
    }
}

async fn open_loop_round(
    args: &RunArgs,
    kind: Kind,
    rate: f64,
    duration: Duration,
    env: &targets::Env,
    me: u32,
) -> Result<(load::Outcome, Option<sys::Memory>, u64)> {
    let accepted_before = backend::accepted();
    let target = targets::start(kind, env).await?;
    let mut watch = vec![me];
    watch.extend(&target.pids);
    let plan = load::Plan {
        addr: target.addr,
        host: targets::AUTHORITY.into(),
        connections: args.connections,
        rate: Some(rate),
        warmup: secs(args.warmup),
        duration,
        watch,
    };
    let out = load::run(&plan).await;
    let mem = sys::memory_sum(&target.pids);
    let backend_conns = backend::accepted() - accepted_before;
    target.stop().await;
    Ok((out?, mem?, backend_conns))
}

async fn max_cell(args: &RunArgs, kind: Kind, env: &targets::Env, me: u32) -> Result<MaxCell> {
    let target = targets::start(kind, env).await?;
    let mut watch = vec![me];
    watch.extend(&target.pids);
    let plan = load::Plan {
        addr: target.addr,
        host: targets::AUTHORITY.into(),
        connections: args.max_connections,
        rate: None,
        warmup: secs(1.0_f64.min(args.warmup)),
        duration: secs(args.max_duration),
        watch,
    };
    let out = load::run(&plan).await;
    target.stop().await;
    let out = out?;
    let proxy_cpu = proxies_cpu(&out);
    Ok(MaxCell {
        target: kind,
        error: None,
        rps: out.achieved_rps,
        errors: out.errors,
        bad_status: out.bad_status,
        proxy_cpu_cores: proxy_cpu,
        rps_per_core: proxy_cpu.filter(|c| *c > 0.0).map(|c| out.achieved_rps / c),
        loadgen_cpu_cores: out.cpu_cores.first().copied().flatten(),
        latency_us: Percentiles::of(&out.latency),
    })
}
