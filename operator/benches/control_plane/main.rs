//! The control plane at scale: a generated mesh (10,000 Services, 100,000 endpoints from
//! registered workloads, splits, targets, policies) in a real index, a real Discovery
//! server on loopback and 2,000 proxies subscribed over real gRPC, in one process.
//!
//! ```text
//! 1. load:   Update::Source (manifests) + 100k Update::Workload ... Index::flush
//! 2. full:   outbound(every Service at each port) + inbound(every workload), one thread
//! 3. memory: VmRSS / VmHWM at each stage; the operator alone with every proxy subscribed
//!            (the same proxies run for a moment from a child process: probe.rs)
//! 4. subscribe: 2,000 proxies (own HTTP/2 connection each) x (N outbound + 1 inbound)
//! 5. changes: endpoint / split weights, one at a time: update -> last affected watch
//! 6. verdicts against the issue's targets (a report, never a failure)
//! ```
//!
//! `cargo bench -p trellis-operator --bench control_plane [-- --quick] [-- --json FILE]`;
//! docs/benchmarks.md, "Control plane at scale", says what is measured and how.

mod changes;
mod full;
mod mesh;
mod probe;
mod proxies;
mod report;
mod sys;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::mpsc;
use trellis_operator::discovery::DiscoveryServer;
use trellis_operator::grpc::{self, Routes};
use trellis_operator::index::{Index, Options, Update};
use trellis_operator::metrics::Metrics;

use changes::{Driver, Kind, Quantiles, Summary};
use mesh::Mesh;
use proxies::{Plan, Seen};
use report::{Load, MemoryReport, Meta, Propagation, Results, Subscriptions};

/// Control-plane scale benchmark: load, full compile, memory, subscriptions and change
/// propagation over real gRPC. Prints a report; never fails on a missed target.
#[derive(Parser, Debug)]
#[command(name = "control_plane")]
struct Args {
    /// Services in the mesh (100 per namespace) [default: 10000; --quick 1000]
    #[arg(long)]
    services: Option<usize>,
    /// Services per namespace.
    #[arg(long, default_value_t = 100)]
    services_per_namespace: usize,
    /// Workloads (endpoints) per Service [default: 10]
    #[arg(long)]
    endpoints_per_service: Option<usize>,
    /// Subscribed proxies, one HTTP/2 connection each [default: 2000; --quick 200]
    #[arg(long)]
    proxies: Option<usize>,
    /// Watches per proxy: one inbound, the rest outbound destinations [default: 6]
    #[arg(long)]
    watches_per_proxy: Option<usize>,
    /// Changes of each kind (endpoint, split weights) [default: 200; --quick 30]
    #[arg(long)]
    changes: Option<usize>,
    /// Pause after each change, during which pushes to unaffected watches are counted.
    #[arg(long, default_value_t = 50)]
    pause_ms: u64,
    /// How long a change may take to reach every affected watch before it counts as missed.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Proxies connecting at once (each holds its slot until all its watches have a config).
    /// Above the listen backlog (128) SYNs may be dropped and retried 1 s later.
    #[arg(long, default_value_t = 100)]
    connect_concurrency: usize,
    /// Worker threads of the operator's runtime (index writer, server, watches) [default: CPUs]
    #[arg(long)]
    operator_threads: Option<usize>,
    /// Worker threads of the in-process proxies' runtime.
    #[arg(long, default_value_t = 1)]
    proxy_threads: usize,
    /// Seed of the proxies' destinations and of the changes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// A small mesh for a smoke run: 1,000 Services, 200 proxies, 30 changes of each kind.
    #[arg(long)]
    quick: bool,
    /// Also write every figure as JSON to FILE (a relative path is taken from the directory
    /// cargo was started in, not from `operator/` where cargo runs benchmarks).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Skip the memory probe (the proxies subscribed from a child process for a moment, so
    /// that the operator's RSS with every subscription open is measured alone).
    #[arg(long)]
    no_probe: bool,
    /// Internal: be the probe's child, running the plan's proxies against ADDR.
    #[arg(long, hide = true, value_name = "ADDR")]
    proxies_only: Option<SocketAddr>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pick = |v: Option<usize>, full: usize, quick: usize| {
        v.unwrap_or(if args.quick { quick } else { full })
    };
    let mesh = Mesh {
        services: pick(args.services, 10_000, 1_000).max(1),
        per_namespace: args.services_per_namespace.max(1),
        endpoints_per_service: pick(args.endpoints_per_service, 10, 10).max(1),
    };
    let proxies = pick(args.proxies, 2_000, 200).min(mesh.services);
    let watches_per_proxy = pick(args.watches_per_proxy, 6, 6).max(1);
    let changes = pick(args.changes, 200, 30);
    let operator_threads = args
        .operator_threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));

    let plan = Plan::new(&mesh, proxies, watches_per_proxy - 1, args.seed);
    if let Some(server) = args.proxies_only {
        let threads = args.proxy_threads.max(1);
        return probe::child(server, &plan, args.connect_concurrency, threads);
    }
    let plan_args: Vec<String> = [
        ("--services", mesh.services),
        ("--services-per-namespace", mesh.per_namespace),
        ("--endpoints-per-service", mesh.endpoints_per_service),
        ("--proxies", proxies),
        ("--watches-per-proxy", watches_per_proxy),
        ("--seed", args.seed as usize),
        ("--connect-concurrency", args.connect_concurrency),
        ("--proxy-threads", args.proxy_threads.max(1)),
    ]
    .iter()
    .flat_map(|(flag, v)| [flag.to_string(), v.to_string()])
    .collect();

    let op_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(operator_threads)
        .thread_name("operator")
        .enable_all()
        .build()?;
    let proxies_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.proxy_threads.max(1))
        .thread_name("proxies")
        .enable_all()
        .build()?;
    let metrics = Arc::new(Metrics::new());

    // The operator: index (local mode: endpoints from workloads) and Discovery server.
    let (index, discovery, server) = op_rt.block_on(async {
        let index = Index::spawn(Options {
            endpoints_from_workloads: true,
        });
        let discovery = DiscoveryServer::new(index.clone(), metrics.clone());
        let listener =
            grpc::bind("127.0.0.1:0".parse()?, "the benchmark's Discovery server").await?;
        let addr = listener.local_addr()?;
        let routes = Routes::default().with(discovery.clone().service());
        tokio::spawn(grpc::serve(listener, routes));
        anyhow::Ok((index, discovery, addr))
    })?;
    let mem_start = sys::memory();

    // 1. Load.
    progress(&format!(
        "load: {} Services, {} workloads",
        mesh.services,
        mesh.workloads()
    ));
    let manifests = mesh.manifests();
    let t = Instant::now();
    index.update(Update::Source {
        name: "bench".into(),
        objects: manifests,
    });
    let rev_manifests = op_rt.block_on(index.flush());
    let manifests_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let workloads: Vec<Update> = (0..mesh.services)
        .flat_map(|s| (0..mesh.endpoints_per_service).map(move |k| (s, k)))
        .map(|(s, k)| Update::Workload(mesh.workload(s, k)))
        .collect();
    let generate_workloads_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for update in workloads {
        index.update(update);
    }
    let rev_workloads = op_rt.block_on(index.flush());
    let workloads_s = t.elapsed().as_secs_f64();
    let snapshot = index.snapshot();
    let load = Load {
        manifests_s,
        workloads_s,
        total_s: manifests_s + workloads_s,
        generate_workloads_s,
        workload_batches: rev_workloads - rev_manifests,
        services: snapshot.service_count(),
        workloads: snapshot.workload_count(),
        endpoints: snapshot.endpoint_count(),
    };
    let mem_load = sys::memory();

    // 2. Full compile.
    progress("full compile");
    let full = full::run(&mesh, &snapshot);
    drop(snapshot);
    let mem_before_clients = sys::memory();

    // 3. The operator's memory with every proxy subscribed, the proxies in a child process.
    let probe = if args.no_probe {
        None
    } else {
        progress("memory probe: the proxies subscribe from a child process");
        Some(probe::run(server, &plan_args, discovery.subscriptions())?)
    };

    // 4. Subscriptions.
    progress(&format!(
        "subscriptions: {} proxies, {} watches",
        plan.proxies.len(),
        plan.watches.len()
    ));
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let cpu_before = sys::cpu_by_thread_group();
    let overflows_before = sys::listen_overflows();
    let started = Instant::now();
    let _proxies = proxies_rt.block_on(proxies::start(
        server,
        &plan,
        args.connect_concurrency,
        events_tx,
    ));
    let mut first = vec![None::<Instant>; plan.watches.len()];
    let (mut outbound_unavailable, mut inbound_without_authorizations) = (0, 0);
    let mut received = 0;
    proxies_rt.block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        while received < plan.watches.len() {
            let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await else {
                eprintln!(
                    "subscriptions: only {received} of {} watches had a config after 600 s",
                    plan.watches.len()
                );
                break;
            };
            let slot = &mut first[event.watch as usize];
            if slot.is_none() {
                *slot = Some(event.at);
                received += 1;
                match event.seen {
                    Seen::Outbound { unavailable, .. } => {
                        outbound_unavailable += usize::from(unavailable)
                    }
                    Seen::Inbound { authorizations, .. } => {
                        inbound_without_authorizations += usize::from(authorizations == 0)
                    }
                }
            }
        }
    });
    let initial_s = started.elapsed().as_secs_f64();
    let listen_overflows = sys::listen_overflows()
        .zip(overflows_before)
        .map(|(after, before)| after - before);
    let cpu_subscribed = sys::cpu_by_thread_group();
    let mem_subscriptions = sys::memory();
    let subscriptions = Subscriptions {
        proxies: plan.proxies.len(),
        watches: plan.watches.len(),
        outbound_watches: plan.outbound_watches(),
        inbound_watches: plan.watches.len() - plan.outbound_watches(),
        initial_s,
        first_config_ms: Quantiles::of(
            first
                .iter()
                .flatten()
                .map(|at| at.duration_since(started).as_secs_f64() * 1e3),
        ),
        outbound_unavailable,
        inbound_without_authorizations,
        listen_overflows,
        cpu_s: sys::cpu_delta(&cpu_before, &cpu_subscribed),
    };

    // 5. Changes, the two kinds in turn. Acks of the initial configs settle first.
    progress(&format!("changes: {changes} of each kind"));
    std::thread::sleep(Duration::from_millis(500));
    let compile_hist = metrics.compile_seconds.with_label_values(&["outbound"]);
    let (sum_before, count_before) = (
        compile_hist.get_sample_sum(),
        compile_hist.get_sample_count(),
    );
    let cpu_before_changes = sys::cpu_by_thread_group();
    let mut driver = Driver::new(
        &mesh,
        &plan,
        index.clone(),
        metrics.clone(),
        &mut events,
        Duration::from_millis(args.timeout_ms),
        Duration::from_millis(args.pause_ms),
        args.seed,
    );
    let mut samples = Vec::new();
    proxies_rt.block_on(async {
        for _ in 0..changes {
            for kind in [Kind::Endpoint, Kind::SplitWeights] {
                if driver.can(kind) {
                    samples.push(driver.run(kind).await);
                }
            }
        }
    });
    let stray_pushes = driver.stray_pushes;
    let revisions = driver.revisions.len();
    let snapshots_alive = driver
        .revisions
        .iter()
        .filter(|s| s.strong_count() > 0)
        .count();
    let cpu_changes = sys::cpu_delta(&cpu_before_changes, &sys::cpu_by_thread_group());
    let compiles = compile_hist.get_sample_count() - count_before;
    let server_compile_mean_us =
        (compile_hist.get_sample_sum() - sum_before) * 1e6 / compiles.max(1) as f64;
    let mem_end = sys::memory();

    let command = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect::<Vec<_>>()
        .join(" ");
    let mut results = Results {
        meta: Meta {
            machine: sys::machine(),
            commit: sys::commit(),
            command: format!("cargo bench -p trellis-operator --bench control_plane -- {command}")
                .trim_end_matches(" -- ")
                .to_owned(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            operator_threads,
            proxy_threads: args.proxy_threads.max(1),
            connect_concurrency: args.connect_concurrency,
            pause_ms: args.pause_ms,
            seed: args.seed,
            quick: args.quick,
        },
        mesh: mesh.counts(),
        load,
        full_compile: full,
        memory: MemoryReport {
            start: mem_start,
            after_load: mem_load,
            before_clients: mem_before_clients,
            after_subscriptions: mem_subscriptions,
            end: mem_end,
            probe,
        },
        subscriptions,
        propagation: Propagation {
            summaries: [Kind::Endpoint, Kind::SplitWeights]
                .into_iter()
                .map(|k| Summary::of(k, &samples))
                .collect(),
            stray_pushes,
            revisions,
            snapshots_alive,
            server_watches_at_end: discovery.subscriptions().len(),
            server_compile_mean_us,
            cpu_s: cpu_changes,
            samples,
        },
        verdicts: Vec::new(),
    };
    results.judge();
    println!("{}", results.render());
    if let Some(path) = &args.json {
        let path = &from_invocation_dir(path);
        let json = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("results written to {}", path.display());
    }
    // Thousands of connections and tasks: do not wait for them to wind down.
    proxies_rt.shutdown_background();
    op_rt.shutdown_background();
    Ok(())
}

/// `cargo bench` runs the benchmark in the package's directory; `PWD` still names the
/// directory the command was typed in.
fn from_invocation_dir(path: &std::path::Path) -> PathBuf {
    match std::env::var_os("PWD") {
        Some(pwd) if path.is_relative() => PathBuf::from(pwd).join(path),
        _ => path.to_owned(),
    }
}

fn progress(what: &str) {
    eprintln!("==> {what}");
}
