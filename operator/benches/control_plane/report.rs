//! The results: what the JSON holds, the printed report and the verdicts against the
//! issue's targets.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::changes::{Kind, Quantiles, Sample, Summary};
use crate::full::FullCompile;
use crate::mesh::Counts;
use crate::probe::Probe;
use crate::sys::Memory;

/// Targets of the issue.
pub const MAX_FULL_COMPILE_S: f64 = 2.0;
pub const MAX_OPERATOR_RSS_MIB: f64 = 500.0;
pub const MAX_CHANGE_P99_MS: f64 = 100.0;

#[derive(Debug, Serialize)]
pub struct Meta {
    pub machine: String,
    pub commit: Option<String>,
    pub command: String,
    pub unix_time: u64,
    pub operator_threads: usize,
    pub proxy_threads: usize,
    pub connect_concurrency: usize,
    pub pause_ms: u64,
    pub seed: u64,
    pub quick: bool,
}

#[derive(Debug, Serialize)]
pub struct Load {
    /// Namespaces, Services, SMI and Trellis resources as one `Update::Source`.
    pub manifests_s: f64,
    /// Every workload as an `Update::Workload` (endpoints derived from selectors).
    pub workloads_s: f64,
    pub total_s: f64,
    /// Building the workload updates (benchmark side, not timed in `workloads_s`).
    pub generate_workloads_s: f64,
    /// Index revisions (batches) the workloads were applied in.
    pub workload_batches: u64,
    /// What the index holds after the load.
    pub services: usize,
    pub workloads: usize,
    pub endpoints: usize,
}

#[derive(Debug, Serialize)]
pub struct MemoryReport {
    pub start: Memory,
    pub after_load: Memory,
    /// After the full compile: the index and the idle server, no client yet.
    pub before_clients: Memory,
    pub after_subscriptions: Memory,
    pub end: Memory,
    /// The operator alone with every proxy subscribed (proxies in a child process).
    pub probe: Option<Probe>,
}

impl MemoryReport {
    /// RSS the changes added. The in-process proxies only decode a few small configs per
    /// change, so this growth is the operator's.
    pub fn change_growth_mib(&self) -> f64 {
        (self.end.rss_mib - self.after_subscriptions.rss_mib).max(0.0)
    }

    /// The operator with every subscription open: measured by the probe, else (an upper
    /// bound) this process with the in-process proxies.
    pub fn operator_subscribed_mib(&self) -> f64 {
        self.probe
            .as_ref()
            .map_or(self.after_subscriptions.rss_mib, |p| p.operator.rss_mib)
    }
}

#[derive(Debug, Serialize)]
pub struct Subscriptions {
    pub proxies: usize,
    pub watches: usize,
    pub outbound_watches: usize,
    pub inbound_watches: usize,
    /// First proxy starting -> every watch has its first config.
    pub initial_s: f64,
    /// Per watch: first proxy starting -> its first config, ms.
    pub first_config_ms: Quantiles,
    /// Outbound configs received with a route without backends (expected 0).
    pub outbound_unavailable: usize,
    /// Inbound configs received without any authorization (expected 0).
    pub inbound_without_authorizations: usize,
    /// Connections the kernel dropped during the phase because the server's listen queue
    /// was full (machine-wide counter); each delays one proxy by a 1 s SYN retransmit.
    pub listen_overflows: Option<u64>,
    /// CPU seconds by thread group during the phase (`operator`: the index, the server and
    /// its watches; `proxies`: the in-process clients).
    pub cpu_s: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
pub struct Propagation {
    pub summaries: Vec<Summary>,
    /// Pushes that arrived between changes (expected 0).
    pub stray_pushes: usize,
    /// Index revisions the changes made, and how many of their snapshots were still alive
    /// at the end of the phase (held by someone after newer ones existed).
    pub revisions: usize,
    pub snapshots_alive: usize,
    /// Watches the server held at the end (expected: every watch of the plan).
    pub server_watches_at_end: usize,
    /// Mean server-side compile time of one outbound recompile during the phase, µs.
    pub server_compile_mean_us: f64,
    pub cpu_s: BTreeMap<String, f64>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub target: String,
    pub value: String,
    pub pass: bool,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub meta: Meta,
    pub mesh: Counts,
    pub load: Load,
    pub full_compile: FullCompile,
    pub memory: MemoryReport,
    pub subscriptions: Subscriptions,
    pub propagation: Propagation,
    pub verdicts: Vec<Verdict>,
}

impl Results {
    pub fn judge(&mut self) {
        let full = self.full_compile.total_s;
        let mut verdicts = vec![Verdict {
            target: format!("full compile < {MAX_FULL_COMPILE_S} s"),
            value: format!(
                "{full:.2} s ({} outbound + {} inbound configs)",
                self.full_compile.outbound.configs, self.full_compile.inbound.configs
            ),
            pass: full < MAX_FULL_COMPILE_S,
        }];
        let mem = &self.memory;
        let subscribed = mem.operator_subscribed_mib();
        let growth = mem.change_growth_mib();
        let changes: usize = self.propagation.summaries.iter().map(|s| s.changes).sum();
        let after_changes = subscribed + growth;
        verdicts.push(Verdict {
            target: format!("operator RSS < {MAX_OPERATOR_RSS_MIB} MiB"),
            value: format!(
                "{subscribed:.0} MiB with {} proxies subscribed{} (index + idle server {:.0} MiB); \
                 after {changes} changes ~{after_changes:.0} MiB (+{growth:.0} MiB)",
                self.subscriptions.proxies,
                if mem.probe.is_some() {
                    ""
                } else {
                    ", in-process proxies included"
                },
                mem.before_clients.rss_mib,
            ),
            pass: subscribed.max(after_changes) < MAX_OPERATOR_RSS_MIB,
        });
        for s in &self.propagation.summaries {
            let p99 = s.latency_ms.p99;
            verdicts.push(Verdict {
                target: format!(
                    "{} change -> last affected proxy p99 < {MAX_CHANGE_P99_MS} ms",
                    kind_name(s.kind)
                ),
                value: format!(
                    "p99 {p99:.1} ms (p50 {:.1}, max {:.1}; {} changes, {} missed, {} unaffected pushes)",
                    s.latency_ms.p50, s.latency_ms.max, s.changes, s.missed, s.unaffected_pushes
                ),
                pass: p99 < MAX_CHANGE_P99_MS && s.missed == 0,
            });
        }
        self.verdicts = verdicts;
    }

    pub fn render(&self) -> String {
        let mut o = String::new();
        let m = &self.mesh;
        let _ = writeln!(o, "\nControl plane at scale: {}", self.meta.command);
        let _ = writeln!(
            o,
            "machine: {}; commit {}; operator runtime {} threads, proxies runtime {}",
            self.meta.machine,
            self.meta.commit.as_deref().unwrap_or("?"),
            self.meta.operator_threads,
            self.meta.proxy_threads
        );
        let _ = writeln!(
            o,
            "mesh: {} namespaces, {} Services ({} ports), {} workloads -> {} endpoints, \
             {} TrafficSplits, {} TrafficTargets, {} HTTPRouteGroups, {} TrafficPolicies",
            m.namespaces,
            m.services,
            m.service_ports,
            m.workloads,
            self.load.endpoints,
            m.traffic_splits,
            m.traffic_targets,
            m.http_route_groups,
            m.traffic_policies
        );

        let l = &self.load;
        let _ = writeln!(o, "\n1. Load (Index::update ... flush)");
        let _ = writeln!(
            o,
            "   manifests (one Update::Source)     {:>9}",
            secs(l.manifests_s)
        );
        let _ = writeln!(
            o,
            "   workloads ({} Update::Workload)  {:>9}   in {} batches",
            l.workloads,
            secs(l.workloads_s),
            l.workload_batches
        );
        let _ = writeln!(
            o,
            "   total                              {:>9}",
            secs(l.total_s)
        );

        let f = &self.full_compile;
        let _ = writeln!(
            o,
            "\n2. Full compile (one snapshot, one thread; version = encode + hash)"
        );
        let _ = writeln!(
            o,
            "   {:<9} {:>8} {:>10} {:>10} {:>10} {:>11} {:>9} {:>10}",
            "", "configs", "compile", "version", "mean", "encoded", "deps", "degenerate"
        );
        for (name, p) in [("outbound", &f.outbound), ("inbound", &f.inbound)] {
            let _ = writeln!(
                o,
                "   {:<9} {:>8} {:>10} {:>10} {:>8.1}µs {:>8.1}MiB {:>9.1} {:>10}",
                name,
                p.configs,
                secs(p.compile_s),
                secs(p.version_s),
                p.mean_us,
                p.encoded_bytes as f64 / 1048576.0,
                p.mean_deps,
                p.degenerate
            );
        }
        let _ = writeln!(o, "   total {}", secs(f.total_s));

        let mem = &self.memory;
        let _ = writeln!(o, "\n3. Memory (VmRSS / VmHWM)");
        let row = |o: &mut String, name: &str, v: Memory| {
            let _ = writeln!(
                o,
                "   {name:<52} {:>7.1} MiB   peak {:>7.1} MiB",
                v.rss_mib, v.peak_mib
            );
        };
        row(&mut o, "start (runtimes, empty index)", mem.start);
        row(&mut o, "after load (index + idle server)", mem.after_load);
        row(
            &mut o,
            "before clients (after the full compile)",
            mem.before_clients,
        );
        if let Some(p) = &mem.probe {
            row(
                &mut o,
                &format!(
                    "operator, {} watches open (proxies in a child)",
                    p.server_watches
                ),
                p.operator,
            );
            let child = Memory {
                rss_mib: p.child.rss_mib,
                peak_mib: p.child.peak_mib,
            };
            row(&mut o, "  the child process (the proxies alone)", child);
        }
        row(
            &mut o,
            "after subscriptions (operator + in-process proxies)",
            mem.after_subscriptions,
        );
        row(&mut o, "end (after the changes)", mem.end);
        let p = &self.propagation;
        let changes = p.revisions.max(1);
        let _ = writeln!(
            o,
            "   the changes added {:.1} MiB ({:.2} MiB per change); snapshots of the {} revisions \
             they made still alive at the end: {}",
            mem.change_growth_mib(),
            mem.change_growth_mib() / changes as f64,
            p.revisions,
            p.snapshots_alive
        );

        let s = &self.subscriptions;
        let _ = writeln!(
            o,
            "\n4. Subscriptions (real gRPC on loopback, one HTTP/2 connection per proxy)"
        );
        let _ = writeln!(
            o,
            "   {} proxies, {} watches ({} outbound, {} inbound): every initial config in {}",
            s.proxies,
            s.watches,
            s.outbound_watches,
            s.inbound_watches,
            secs(s.initial_s)
        );
        let _ = writeln!(
            o,
            "   per watch, start -> first config: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            s.first_config_ms.p50, s.first_config_ms.p99, s.first_config_ms.max
        );
        let _ = writeln!(
            o,
            "   outbound configs with an unavailable route: {}; inbound configs without authorizations: {}",
            s.outbound_unavailable, s.inbound_without_authorizations
        );
        if let Some(n) = s.listen_overflows {
            let _ = writeln!(
                o,
                "   connections dropped by a full listen queue (each retried after 1 s): {n}"
            );
        }
        let _ = writeln!(o, "   CPU during the phase: {}", cpu(&s.cpu_s));
        if let Some(p) = &mem.probe {
            let _ = writeln!(
                o,
                "   (memory probe, the same proxies from a child process: {} watches, every \
                 initial config in {})",
                p.child.watches,
                secs(p.child.initial_s)
            );
        }

        let p = &self.propagation;
        let _ = writeln!(
            o,
            "\n5. Change propagation (update -> every affected watch has the new config)"
        );
        let _ = writeln!(
            o,
            "   {:<14} {:>7} {:>22} {:>10} {:>10} {:>14} {:>7} {:>11} {:>7} {:>10}",
            "kind",
            "changes",
            "last p50/p99/max ms",
            "first p50",
            "index p50",
            "affected mean/max",
            "missed",
            "unaffected",
            "extra",
            "recompiles"
        );
        for s in &p.summaries {
            let _ = writeln!(
                o,
                "   {:<14} {:>7} {:>22} {:>10.2} {:>10.2} {:>14} {:>7} {:>11} {:>7} {:>10.1}",
                kind_name(s.kind),
                s.changes,
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    s.latency_ms.p50, s.latency_ms.p99, s.latency_ms.max
                ),
                s.first_ms.p50,
                s.index_ms.p50,
                format!("{:.1} / {:.0}", s.affected.mean, s.affected.max),
                s.missed,
                s.unaffected_pushes,
                s.extra_pushes,
                s.recompiles_per_change
            );
        }
        let _ = writeln!(
            o,
            "   pushes between changes: {}; server compile per outbound recompile: {:.1} µs; \
             watches open at the end: {}",
            p.stray_pushes, p.server_compile_mean_us, p.server_watches_at_end
        );
        let _ = writeln!(o, "   CPU during the phase: {}", cpu(&p.cpu_s));

        let _ = writeln!(o, "\n6. Verdict");
        for v in &self.verdicts {
            let _ = writeln!(
                o,
                "   {} {}: {}",
                if v.pass { "PASS" } else { "MISS" },
                v.target,
                v.value
            );
        }
        o
    }
}

pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Endpoint => "endpoint",
        Kind::SplitWeights => "split weights",
    }
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn cpu(groups: &BTreeMap<String, f64>) -> String {
    groups
        .iter()
        .map(|(k, v)| format!("{k} {v:.2} s"))
        .collect::<Vec<_>>()
        .join(", ")
}
