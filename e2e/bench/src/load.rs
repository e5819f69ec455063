//! The load generator.
//!
//! Open loop (`rate: Some(r)`): a pacer thread produces one *scheduled send time* every
//! `1/r` seconds, whether or not earlier requests have been answered, into one FIFO queue.
//! `connections` workers, each owning one keep-alive HTTP/1.1 connection, take the next
//! scheduled time as soon as their connection is free and send the request. Latency is
//! measured from the scheduled time, not from when the request actually left, so a stall in
//! the target also counts against every request that should have been sent during it
//! (the coordinated-omission correction, as wrk2 does). Requests scheduled in the warm-up are
//! sent but not recorded.
//!
//! Closed loop (`rate: None`): every worker sends its next request as soon as the previous
//! answer is read, for the whole run; this measures saturation throughput.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Lowest and highest latency the histograms hold, in nanoseconds.
const HIST_LOW_NS: u64 = 1_000;
const HIST_HIGH_NS: u64 = 120_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_NS, HIST_HIGH_NS, 3).expect("histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let _ = h.record(ns.clamp(HIST_LOW_NS, HIST_HIGH_NS));
}

/// One load run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    /// `Host` header sent with every request.
    pub host: String,
    pub connections: usize,
    /// `Some(req/s)`: open loop at that rate; `None`: closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Processes whose CPU time is sampled at the edges of the measured window.
    pub watch: Vec<u32>,
}

/// What a run measured. Latencies are in nanoseconds.
#[derive(Debug)]
pub struct Outcome {
    /// Latency of every measured `200` answer, from its scheduled send time.
    pub latency: Histogram<u64>,
    /// Delay between a request's scheduled time and the moment a worker started sending it:
    /// the load generator's own lag plus queueing for a free connection.
    pub send_delay: Histogram<u64>,
    /// Measured requests answered `200`.
    pub ok: u64,
    /// Measured requests answered with another status.
    pub bad_status: u64,
    /// Measured requests that failed at the transport (connect, reset, parse).
    pub errors: u64,
    /// Measured requests still queued or in flight when the run gave up waiting for them.
    pub incomplete: u64,
    /// Answers (any status) received inside the measured window, per second.
    pub achieved_rps: f64,
    /// CPU seconds each watched process used inside the window, per wall second (cores).
    pub cpu_cores: Vec<Option<f64>>,
    /// Length of the measured window, seconds.
    pub window_secs: f64,
    /// Voluntary context switches of each watched process inside the window.
    pub switches: Vec<Option<u64>>,
    /// CPU the rest of the machine used in the window (cores): everything busy on every CPU
    /// minus the watched processes.
    pub other_cpu_cores: Option<f64>,
}

struct Shared {
    win_start: Instant,
    win_end: Instant,
    latency: StdMutex<Histogram<u64>>,
    send_delay: StdMutex<Histogram<u64>>,
    ok: AtomicU64,
    bad_status: AtomicU64,
    errors: AtomicU64,
    in_window: AtomicU64,
    in_flight: AtomicU64,
}

impl Shared {
    fn measured(&self, sched: Instant) -> bool {
        sched >= self.win_start && sched < self.win_end
    }

    fn finish(&self, sched: Instant, sent: Instant, done: Instant, res: &Result<StatusCode>) {
        if done >= self.win_start && done < self.win_end && res.is_ok() {
            self.in_window.fetch_add(1, Ordering::Relaxed);
        }
        if !self.measured(sched) {
            return;
        }
        record(
            &mut self.send_delay.lock().expect("histogram lock"),
            sent - sched,
        );
        match res {
            Ok(StatusCode::OK) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                record(
                    &mut self.latency.lock().expect("histogram lock"),
                    done - sched,
                );
            }
            Ok(_) => {
                self.bad_status.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One keep-alive HTTP/1.1 connection, re-opened after an error.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let mut conn = Conn { addr, sender: None };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> Result<()> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("connecting to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends `GET /` and reads the whole answer; returns its status, headers and body.
    pub async fn get(&mut self, host: &str) -> Result<hyper::Response<Bytes>> {
        self.get_path(host, "/").await
    }

    /// Sends `GET path` and reads the whole answer.
    pub async fn get_path(&mut self, host: &str, path: &str) -> Result<hyper::Response<Bytes>> {
        let res = self.try_get(host, path).await;
        if res.is_err() {
            self.sender = None;
        }
        res
    }

    async fn try_get(&mut self, host: &str, path: &str) -> Result<hyper::Response<Bytes>> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await?;
        let req = Request::get(path)
            .header(HOST, host)
            .body(Empty::<Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(hyper::Response::from_parts(parts, body))
    }
}

enum Source {
    Paced(Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>),
    Closed,
}

async fn worker(mut conn: Conn, source: Arc<Source>, shared: Arc<Shared>, host: Arc<str>) {
    loop {
        let sched = match &*source {
            Source::Paced(queue) => {
                let next = queue.lock().await.recv().await;
                match next {
                    Some(t) => t,
                    None => break,
                }
            }
            Source::Closed => {
                let now = Instant::now();
                if now >= shared.win_end {
                    break;
                }
                now
            }
        };
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let sent = Instant::now();
        let res = conn.get(&host).await.map(|r| r.status());
        let done = Instant::now();
        shared.finish(sched, sent, done, &res);
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        if res.is_err() && matches!(&*source, Source::Closed) {
            // Do not spin on a target that refuses connections.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Runs one load run to the end. Must be called on the runtime that does the I/O.
pub async fn run(plan: &Plan) -> Result<Outcome> {
    if plan.connections == 0 {
        bail!("need at least one connection");
    }
    // Open every connection before the clock starts: connect time is not what is measured.
    let mut conns = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        conns.push(Conn::open(plan.addr).await?);
    }

    let start = Instant::now() + Duration::from_millis(20);
    let win_start = start + plan.warmup;
    let win_end = win_start + plan.duration;
    let shared = Arc::new(Shared {
        win_start,
        win_end,
        latency: StdMutex::new(new_histogram()),
        send_delay: StdMutex::new(new_histogram()),
        ok: AtomicU64::new(0),
        bad_status: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        in_window: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
    });

    let (queue, pacer) = match plan.rate {
        Some(rate) => {
            let (tx, rx) = mpsc::unbounded_channel();
            let queue = Arc::new(Mutex::new(rx));
            let pacer = std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(move || pace(rate, start, win_end, &tx))?;
            (Some(queue), Some(pacer))
        }
        None => (None, None),
    };
    let source = Arc::new(match &queue {
        Some(q) => Source::Paced(q.clone()),
        None => Source::Closed,
    });

    // CPU samples at the window's edges.
    let watch = plan.watch.clone();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(win_start.into()).await;
        let t0 = Instant::now();
        let machine_before = crate::sys::machine_busy_seconds().ok();
        let before: Vec<Option<f64>> = watch
            .iter()
            .map(|&p| crate::sys::cpu_seconds(p).ok())
            .collect();
        let switches_before: Vec<Option<u64>> = watch
            .iter()
            .map(|&p| crate::sys::voluntary_switches(p).ok())
            .collect();
        tokio::time::sleep_until(win_end.into()).await;
        let wall = t0.elapsed().as_secs_f64();
        let cores: Vec<Option<f64>> = watch
            .iter()
            .zip(before)
            .map(|(&p, b)| Some((crate::sys::cpu_seconds(p).ok()? - b?) / wall))
            .collect();
        let switches: Vec<Option<u64>> = watch
            .iter()
            .zip(switches_before)
            .map(|(&p, b)| Some(crate::sys::voluntary_switches(p).ok()?.saturating_sub(b?)))
            .collect();
        let machine = crate::sys::machine_busy_seconds()
            .ok()
            .zip(machine_before)
            .map(|(after, before)| (after - before) / wall);
        (cores, switches, machine)
    });

    if plan.rate.is_none() {
        tokio::time::sleep_until(start.into()).await;
    }
    let host: Arc<str> = plan.host.as_str().into();
    let mut workers = JoinSet::new();
    for conn in conns {
        workers.spawn(worker(conn, source.clone(), shared.clone(), host.clone()));
    }

    // Wait for the workers; past the window, give queued and in-flight requests a grace
    // period, then give up on them.
    let grace = plan
        .duration
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    let deadline = win_end + grace;
    loop {
        match tokio::time::timeout_at(deadline.into(), workers.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                workers.shutdown().await;
                break;
            }
        }
    }
    let gave_up_at = Instant::now();
    let mut incomplete = shared.in_flight.load(Ordering::Relaxed);
    if let Some(pacer) = pacer {
        let _ = pacer.join();
    }
    if let Some(queue) = queue {
        let mut rx = queue.lock().await;
        let mut lat = shared.latency.lock().expect("histogram lock");
        while let Ok(sched) = rx.try_recv() {
            if shared.measured(sched) {
                // Never answered: counted at least as late as the moment we stopped waiting.
                record(&mut lat, gave_up_at.saturating_duration_since(sched));
                incomplete += 1;
            }
        }
    }
    let (cpu_cores, switches, machine_cores) = cpu.await.context("cpu sampler")?;
    // Whatever else ran on the machine meanwhile (another build, say) disturbs the figures.
    let other_cpu_cores = machine_cores.map(|m| {
        let ours: f64 = cpu_cores.iter().flatten().sum();
        (m - ours).max(0.0)
    });

    let window_secs = plan.duration.as_secs_f64();
    let take = |m: &StdMutex<Histogram<u64>>| {
        std::mem::replace(&mut *m.lock().expect("histogram lock"), new_histogram())
    };
    Ok(Outcome {
        latency: take(&shared.latency),
        send_delay: take(&shared.send_delay),
        ok: shared.ok.load(Ordering::Relaxed),
        bad_status: shared.bad_status.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        incomplete,
        achieved_rps: shared.in_window.load(Ordering::Relaxed) as f64 / window_secs,
        window_secs,
        cpu_cores,
        switches,
        other_cpu_cores,
    })
}

/// The pacer: emits scheduled send times `start + i/rate` until `end`, sleeping in between.
/// When it wakes late it emits every time already due at once, so lateness never lowers
/// the offered rate.
fn pace(rate: f64, start: Instant, end: Instant, tx: &mpsc::UnboundedSender<Instant>) {
    let interval_ns = 1e9 / rate;
    let mut i: u64 = 0;
    loop {
        let t = start + Duration::from_nanos((i as f64 * interval_ns) as u64);
        if t >= end {
            break;
        }
        let now = Instant::now();
        if t > now {
            std::thread::sleep(t - now);
        }
        if tx.send(t).is_err() {
            break;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(addr: SocketAddr, rate: Option<f64>) -> Plan {
        Plan {
            addr,
            host: "backend.bench".into(),
            connections: 4,
            rate,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(500),
            watch: vec![std::process::id()],
        }
    }

    #[tokio::test]
    async fn open_loop_sends_the_scheduled_requests_and_records_them() {
        let addr = crate::backend::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
        let out = run(&plan(addr, Some(200.0))).await.unwrap();
        // 200 req/s over a 0.5 s window: 100 measured requests, the warm-up ones not counted.
        assert_eq!(out.ok, 100, "{out:?}");
        assert_eq!(out.bad_status + out.errors + out.incomplete, 0);
        assert_eq!(out.latency.len(), 100);
        assert!(out.latency.min() >= HIST_LOW_NS);
        assert!(
            out.achieved_rps > 100.0 && out.achieved_rps < 300.0,
            "{out:?}"
        );
        assert!(out.cpu_cores[0].is_some());
    }

    #[tokio::test]
    async fn closed_loop_counts_answers_in_the_window() {
        let addr = crate::backend::spawn("127.0.0.1:0".parse().unwrap()).unwrap();
        let out = run(&plan(addr, None)).await.unwrap();
        assert!(out.ok > 100, "{out:?}");
        assert_eq!(out.errors, 0);
        assert!(out.achieved_rps > 200.0);
    }

    #[tokio::test]
    async fn a_refused_target_is_an_error_before_the_clock_starts() {
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(run(&plan(free, Some(100.0))).await.is_err());
    }

    #[test]
    fn the_pacer_emits_one_time_per_interval_up_to_the_end() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        pace(1000.0, start, start + Duration::from_millis(50), &tx);
        let mut times = Vec::new();
        while let Ok(t) = rx.try_recv() {
            times.push(t);
        }
        assert_eq!(times.len(), 50);
        assert_eq!(times[1] - times[0], Duration::from_millis(1));
        assert_eq!(times[49] - times[0], Duration::from_millis(49));
    }
}
