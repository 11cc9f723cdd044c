//! The clients' side of a replication cell, shared by viewsync and etcd: loading the keys,
//! the closed and open loops, the latency histograms, and what the servers spent (CPU of
//! their processes, TCP segments and IP bytes sent on the machine).

use super::{Cell, Workload};
use crate::BoxError;
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request of the workload.
#[derive(Clone, Copy, Debug)]
pub enum KvRequest<'a> {
    /// Write `value` under `key`.
    Put {
        /// The key.
        key: &'a str,
        /// The value.
        value: &'a str,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: &'a str,
    },
}

/// A client of a replicated key-value store: one request in flight at a time.
pub trait KvCaller: Send + 'static {
    /// Makes `request` and waits for its answer; an error is a request that failed.
    fn call(&mut self, request: KvRequest<'_>) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a cell measured.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// Requests answered within the measured time.
    pub ops: u64,
    /// The measured time.
    pub elapsed: Duration,
    /// Requests that failed (error answers or given up), and the first error.
    pub errors: u64,
    /// The first error.
    pub first_error: Option<String>,
    /// Open loop: requests offered in the measured time that were not answered within the
    /// drain time after it.
    pub unfinished: u64,
    /// Latency of every answered request, microseconds (open loop: from the intended send).
    pub all: Histogram<u64>,
    /// Latency of the writes.
    pub writes: Histogram<u64>,
    /// Latency of the reads.
    pub reads: Histogram<u64>,
    /// CPU seconds the servers' processes used in the measured time.
    pub server_cpu: f64,
    /// TCP segments sent on the machine in the measured time.
    pub tcp_segments: u64,
    /// IP bytes sent on the machine in the measured time (loopback included).
    pub ip_bytes: u64,
}

impl Measurement {
    /// Requests answered per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How long an open loop waits after its measured time for the requests still in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// How many clients load the keys at once.
const LOADERS: usize = 16;

fn histogram() -> Histogram<u64> {
    // 1 µs to 1 h at 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The key of index `i`.
pub fn key_name(i: usize) -> String {
    format!("key{i:07}")
}

/// Everything the clients record, shared by their tasks.
struct Recorder {
    window_start: Instant,
    window_end: Instant,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    all: Histogram<u64>,
    writes: Histogram<u64>,
    reads: Histogram<u64>,
}

impl Recorder {
    fn new(window_start: Instant, window_end: Instant) -> Self {
        Recorder {
            window_start,
            window_end,
            ops: 0,
            errors: 0,
            first_error: None,
            all: histogram(),
            writes: histogram(),
            reads: histogram(),
        }
    }

    /// Records a request sent (or meant to be sent) at `sent` and answered at `done`, if it
    /// was sent within the measured time. Throughput counts answers within the measured
    /// time; latency counts requests sent within it, however late they are answered.
    fn record(&mut self, sent: Instant, done: Instant, read: bool, result: Result<(), String>) {
        if done >= self.window_start && done <= self.window_end && result.is_ok() {
            self.ops += 1;
        }
        if sent < self.window_start || sent > self.window_end {
            return;
        }
        match result {
            Ok(()) => {
                let micros = done.saturating_duration_since(sent).as_micros() as u64;
                let micros = micros.clamp(1, 3_600_000_000);
                self.all.saturating_record(micros);
                if read {
                    self.reads.saturating_record(micros);
                } else {
                    self.writes.saturating_record(micros);
                }
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert(error);
            }
        }
    }
}

/// A request picked by the workload: a read with `reads`% probability, a uniform key.
fn pick(rng: &mut SmallRng, reads: u8, keys: usize) -> (bool, String) {
    let read = rng.gen_range(0..100u8) < reads;
    (read, key_name(rng.gen_range(0..keys)))
}

async fn call<C: KvCaller>(
    caller: &mut C,
    read: bool,
    key: &str,
    value: &str,
) -> Result<(), String> {
    if read {
        caller.call(KvRequest::Get { key }).await
    } else {
        caller.call(KvRequest::Put { key, value }).await
    }
}

/// The runtime the clients run on: two worker threads (the machine's cores are shared with
/// the servers). Clients whose connections spawn background tasks must be made on it.
pub fn runtime() -> Result<tokio::runtime::Runtime, BoxError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `cell` on `runtime` with `callers` (one per client): loads the keys, then the
/// closed or open loop; `servers` are the process ids whose CPU time is counted.
pub fn run<C: KvCaller>(
    runtime: &tokio::runtime::Runtime,
    mut callers: Vec<C>,
    cell: &Cell,
    workload: &Workload,
    servers: &[u32],
) -> Result<Measurement, BoxError> {
    let value: Arc<str> = "v".repeat(workload.size).into();
    runtime.block_on(preload(&mut callers, workload.keys, &value))?;
    let start = Instant::now();
    let window_start = start + workload.warmup;
    let window_end = window_start + workload.measure;
    let recorder = Arc::new(Mutex::new(Recorder::new(window_start, window_end)));
    let before = Counters::read(servers);
    let sampler = {
        // The counters at the window's edges, read on a thread of their own.
        let servers = servers.to_vec();
        std::thread::spawn(move || {
            std::thread::sleep(window_start.saturating_duration_since(Instant::now()));
            let first = Counters::read(&servers);
            std::thread::sleep(window_end.saturating_duration_since(Instant::now()));
            (first, Counters::read(&servers))
        })
    };
    let unfinished = match cell.rate {
        None => {
            runtime.block_on(closed_loop(
                callers,
                cell.reads,
                workload.keys,
                value,
                window_end,
                &recorder,
            ));
            0
        }
        Some(rate) => open_loop(
            runtime,
            callers,
            cell.reads,
            workload.keys,
            value,
            rate,
            start,
            window_end,
            &recorder,
        ),
    };
    let (first, last) = sampler.join().map_err(|_| "the counter thread panicked")?;
    let first = first.or(before);
    // Requests unanswered after the drain still hold the recorder: take its contents and
    // leave them an empty one (the runtime's drop cancels them).
    let recorder = std::mem::replace(
        &mut *recorder.lock().unwrap_or_else(|e| e.into_inner()),
        Recorder::new(window_start, window_end),
    );
    let spent = match (first, last) {
        (Some(a), Some(b)) => b.minus(&a),
        _ => Counters::default(),
    };
    Ok(Measurement {
        ops: recorder.ops,
        elapsed: workload.measure,
        errors: recorder.errors,
        first_error: recorder.first_error,
        unfinished,
        all: recorder.all,
        writes: recorder.writes,
        reads: recorder.reads,
        server_cpu: spent.cpu_seconds,
        tcp_segments: spent.tcp_segments,
        ip_bytes: spent.ip_bytes,
    })
}

/// Writes every key once, [`LOADERS`] clients at a time; the reads of the workload then
/// always find a value.
async fn preload<C: KvCaller>(callers: &mut [C], keys: usize, value: &str) -> Result<(), BoxError> {
    let loaders = callers.len().min(LOADERS);
    let mut tasks = Vec::new();
    for (l, caller) in callers.iter_mut().take(loaders).enumerate() {
        tasks.push(async move {
            for i in (l..keys).step_by(loaders) {
                let key = key_name(i);
                caller
                    .call(KvRequest::Put { key: &key, value })
                    .await
                    .map_err(|e| format!("loading {key}: {e}"))?;
            }
            Ok::<(), String>(())
        });
    }
    for result in futures::future::join_all(tasks).await {
        result?;
    }
    Ok(())
}

/// Each client sends its next request when the last is answered, until `end`.
async fn closed_loop<C: KvCaller>(
    callers: Vec<C>,
    reads: u8,
    keys: usize,
    value: Arc<str>,
    end: Instant,
    recorder: &Arc<Mutex<Recorder>>,
) {
    let mut tasks = Vec::new();
    for (i, mut caller) in callers.into_iter().enumerate() {
        let recorder = recorder.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(i as u64);
            while Instant::now() < end {
                let (read, key) = pick(&mut rng, reads, keys);
                let sent = Instant::now();
                let result = call(&mut caller, read, &key, &value).await;
                let done = Instant::now();
                let mut recorder = recorder.lock().unwrap_or_else(|e| e.into_inner());
                recorder.record(sent, done, read, result);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// Requests offered at `rate` per second from `start` to `end`, each handed to a free
/// client. The dispatcher is a thread of its own (`std::thread::sleep` is finer than the
/// async timer's millisecond); it blocks while every client is busy, and each request's
/// latency counts from its intended send time, so that wait is in the figures. Returns the
/// requests still unanswered [`DRAIN`] after `end`, and those the dispatcher had not even
/// sent by then (it stops: a saturated group would otherwise keep it busy for as long as
/// the backlog takes).
#[allow(clippy::too_many_arguments)]
fn open_loop<C: KvCaller>(
    runtime: &tokio::runtime::Runtime,
    callers: Vec<C>,
    reads: u8,
    keys: usize,
    value: Arc<str>,
    rate: f64,
    start: Instant,
    end: Instant,
    recorder: &Arc<Mutex<Recorder>>,
) -> u64 {
    let (free_tx, mut free_rx) = tokio::sync::mpsc::channel::<C>(callers.len());
    for caller in callers {
        // The channel holds every client.
        let _ = free_tx.try_send(caller);
    }
    let in_flight = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut rng = SmallRng::seed_from_u64(rate.to_bits());
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut never_sent = 0;
    for i in 0u64.. {
        let intended = start + interval.mul_f64(i as f64);
        if intended > end {
            break;
        }
        if let Some(wait) = intended.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let Some(mut caller) = free_rx.blocking_recv() else {
            break;
        };
        if Instant::now() > end + DRAIN {
            // Saturated far past the measured time: what was not even sent is unanswered.
            let intended_total = (end.saturating_duration_since(start).as_secs_f64() * rate) as u64;
            never_sent = intended_total.saturating_sub(i);
            break;
        }
        let (read, key) = pick(&mut rng, reads, keys);
        let recorder = recorder.clone();
        let value = value.clone();
        let free_tx = free_tx.clone();
        let in_flight = in_flight.clone();
        in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        runtime.spawn(async move {
            let result = call(&mut caller, read, &key, &value).await;
            let done = Instant::now();
            recorder
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(intended, done, read, result);
            in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            let _ = free_tx.send(caller).await;
        });
    }
    let drain_until = Instant::now() + DRAIN;
    while in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < drain_until {
        std::thread::sleep(Duration::from_millis(10));
    }
    in_flight.load(std::sync::atomic::Ordering::SeqCst) + never_sent
}

/// What the servers spent: their CPU time and what the machine sent.
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    cpu_seconds: f64,
    tcp_segments: u64,
    ip_bytes: u64,
}

impl Counters {
    /// The counters now; `None` if `/proc` cannot be read.
    fn read(servers: &[u32]) -> Option<Counters> {
        let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as f64;
        let mut cpu_seconds = 0.0;
        for pid in servers {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            cpu_seconds += (utime + stime) / ticks;
        }
        let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
        let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
        Some(Counters {
            cpu_seconds,
            tcp_segments: proc_net_field(&snmp, "Tcp:", "OutSegs")?,
            ip_bytes: proc_net_field(&netstat, "IpExt:", "OutOctets")?,
        })
    }

    fn minus(&self, earlier: &Counters) -> Counters {
        Counters {
            cpu_seconds: (self.cpu_seconds - earlier.cpu_seconds).max(0.0),
            tcp_segments: self.tcp_segments.saturating_sub(earlier.tcp_segments),
            ip_bytes: self.ip_bytes.saturating_sub(earlier.ip_bytes),
        }
    }
}

/// The value of `field` in the `prefix` table of a `/proc/net/snmp`-style file (a line of
/// names followed by a line of values).
fn proc_net_field(text: &str, prefix: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines().filter(|l| l.starts_with(prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let names = names.split_whitespace();
        let mut values = values.split_whitespace();
        for name in names {
            let value = values.next()?;
            if name == field {
                return value.parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_fields_are_found_by_name() {
        let text = "Ip: Forwarding DefaultTTL\nIp: 1 64\nTcp: RtoAlgorithm OutSegs\nTcp: 1 4242\n";
        assert_eq!(proc_net_field(text, "Tcp:", "OutSegs"), Some(4242));
        assert_eq!(proc_net_field(text, "Ip:", "DefaultTTL"), Some(64));
        assert_eq!(proc_net_field(text, "Tcp:", "Missing"), None);
    }

    #[test]
    fn only_requests_sent_in_the_window_count_for_latency_and_answers_in_it_for_throughput() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Recorder::new(t0 + ms(100), t0 + ms(200));
        r.record(t0, t0 + ms(150), false, Ok(())); // sent before: throughput only
        r.record(t0 + ms(150), t0 + ms(160), true, Ok(())); // both
        r.record(t0 + ms(190), t0 + ms(400), false, Ok(())); // latency only
        r.record(t0 + ms(150), t0 + ms(170), false, Err("no".into()));
        assert_eq!(r.ops, 2);
        assert_eq!(r.all.len(), 2);
        assert_eq!(r.reads.len(), 1);
        assert_eq!(r.errors, 1);
        assert!(r.writes.max() >= 209_000);
    }
}
