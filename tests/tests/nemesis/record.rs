//! The clients' workload and the recorded history: concurrent front ends, each on a thread
//! of its own, record every call (invocation and outcome, on one monotonic clock) into one
//! history; the nemesis records what it did on the same clock.

use crate::group::NemesisGroup;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use viewsync_services::frontend::{FrontEnd, FrontEndError};
use viewsync_services::history::History;
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};

/// The keys every client reads and writes (contention: the checkers' material).
pub const SHARED_KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "k4", "k5"];

/// The prefix of keys written once and never again (each read back at the end).
pub const FRESH_PREFIX: &str = "w-";

/// A key-value history.
pub type KvHistory = History<KvOp, KvOutput>;

/// A history shared by concurrent clients, stamped from one origin.
#[derive(Clone)]
pub struct Recorder {
    origin: Instant,
    history: Arc<Mutex<KvHistory>>,
    keep: bool,
    tentative_cas: bool,
}

impl Recorder {
    /// An empty history starting now.
    pub fn new() -> Self {
        Recorder {
            origin: Instant::now(),
            history: Arc::new(Mutex::new(History::new())),
            keep: true,
            tentative_cas: false,
        }
    }

    /// A recorder for the gossip strategy, whose answers to compare-and-swaps are tentative
    /// (computed on the answering member's value at arrival; the swap is decided when the
    /// update is applied in the members' common order, docs/OPERATIONS.md): an answered
    /// compare-and-swap is recorded `info` (it may or may not have taken effect), with the
    /// tentative answer as its error text.
    pub fn with_tentative_cas() -> Self {
        Recorder {
            tentative_cas: true,
            ..Recorder::new()
        }
    }

    /// A recorder that keeps nothing (a long soak's calls are counted, not judged).
    pub fn discarding() -> Self {
        Recorder {
            keep: false,
            ..Recorder::new()
        }
    }

    /// Nanoseconds since the origin: the history's clock.
    pub fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Calls `op` through `fe`, recording its invocation and outcome (`info` when the
    /// outcome is unknown, `fail` when it certainly did not take effect).
    pub async fn call(
        &self,
        fe: &mut FrontEnd<KvStore>,
        op: KvOp,
    ) -> Result<KvOutput, FrontEndError> {
        let id = fe.next_request_id();
        if !self.keep {
            return fe.call(op).await;
        }
        let op_kind = match op {
            KvOp::Cas { .. } => OpKind::Cas,
            _ => OpKind::Other,
        };
        self.lock()
            .invoke(id.client, id.seq, op.clone(), self.now());
        let result = fe.call(op).await;
        let now = self.now();
        let mut history = self.lock();
        match &result {
            Ok(output) if self.tentative_cas && matches!(op_kind, OpKind::Cas) => history.info(
                id.client,
                id.seq,
                format!("tentative answer: {output:?}"),
                now,
            ),
            Ok(output) => history.ok(id.client, id.seq, output.clone(), now),
            Err(e) if e.outcome_unknown() => history.info(id.client, id.seq, e.to_string(), now),
            Err(e) => history.fail(id.client, id.seq, e.to_string(), now),
        }
        result
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, KvHistory> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The history so far.
    pub fn history(&self) -> KvHistory {
        self.lock().clone()
    }
}

enum OpKind {
    Cas,
    Other,
}

/// Client `c`'s operations: puts, gets, deletes and compare-and-swaps of the shared keys,
/// and puts of fresh keys; every written value is unique (`c<client>-<n>`).
pub struct Workload {
    client: u64,
    fresh_keys: bool,
    n: u64,
    rng: StdRng,
    /// The last value this client saw per shared key (what its compare-and-swaps expect).
    seen: BTreeMap<String, Option<String>>,
}

impl Workload {
    /// Client `client`'s workload, drawn from `seed`; without `fresh_keys` the puts of
    /// fresh keys are puts of shared keys (the state stays the same size: for the soak).
    pub fn new(client: u64, seed: u64, fresh_keys: bool) -> Workload {
        Workload {
            client,
            fresh_keys,
            n: 0,
            rng: StdRng::seed_from_u64(seed ^ (client.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
            seen: BTreeMap::new(),
        }
    }

    /// The next operation.
    pub fn next_op(&mut self) -> KvOp {
        self.n += 1;
        let value = format!("c{}-{}", self.client, self.n);
        let key = SHARED_KEYS[self.rng.gen_range(0..SHARED_KEYS.len())];
        match self.rng.gen_range(0..20) {
            0..=5 => KvOp::put(key, value),
            6..=11 => KvOp::get(key),
            12 => KvOp::delete(key),
            13..=15 => {
                let expected = self.seen.get(key).cloned().flatten();
                KvOp::cas(key, expected.as_deref(), value)
            }
            _ if self.fresh_keys => {
                KvOp::put(format!("{FRESH_PREFIX}{}-{}", self.client, self.n), value)
            }
            _ => KvOp::put(key, value),
        }
    }

    /// Remembers what an operation showed of its key.
    pub fn observe(&mut self, op: &KvOp, output: &KvOutput) {
        let seen = match (op, output) {
            (KvOp::Put { value, .. }, KvOutput::Written) => Some(value.clone()),
            (KvOp::Get { .. }, KvOutput::Value(v)) => v.clone(),
            (KvOp::Delete { .. }, KvOutput::Deleted { .. }) => None,
            (KvOp::Cas { new, .. }, KvOutput::Swapped) => Some(new.clone()),
            (KvOp::Cas { .. }, KvOutput::CasMismatch { current }) => current.clone(),
            _ => return,
        };
        if !op.key().starts_with(FRESH_PREFIX) {
            self.seen.insert(op.key().to_string(), seen);
        }
    }
}

/// What one client's calls came to.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Answered.
    pub ok: u64,
    /// Certainly not executed.
    pub failed: u64,
    /// Unknown outcome.
    pub indeterminate: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.indeterminate += other.indeterminate;
    }
}

/// Clients running until stopped, each on its own thread with its own front end.
pub struct Clients {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
}

impl Clients {
    /// Starts `n` clients against `group` (client `c`'s seeds rotated by `c`, so they spread
    /// over the members), `pause` between calls, workloads drawn from `seed` (with fresh
    /// keys or not: see [`Workload::new`]).
    pub fn start(
        group: &NemesisGroup,
        n: u64,
        seed: u64,
        pause: Duration,
        recorder: &Recorder,
        fresh_keys: bool,
    ) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let addrs = group.addrs();
        let threads = (0..n)
            .map(|c| {
                let mut seeds: Vec<SocketAddr> = addrs.clone();
                seeds.rotate_left(c as usize % addrs.len());
                let mut fe = group.front_end(seeds, group.strategy.routing());
                let (recorder, stop) = (recorder.clone(), stop.clone());
                std::thread::spawn(move || {
                    runtime().block_on(async move {
                        let mut workload = Workload::new(c, seed, fresh_keys);
                        let mut tally = Tally::default();
                        while !stop.load(Ordering::Relaxed) {
                            let op = workload.next_op();
                            match recorder.call(&mut fe, op.clone()).await {
                                Ok(output) => {
                                    workload.observe(&op, &output);
                                    tally.ok += 1;
                                }
                                Err(e) if e.outcome_unknown() => tally.indeterminate += 1,
                                Err(_) => tally.failed += 1,
                            }
                            tokio::time::sleep(pause).await;
                        }
                        tally
                    })
                })
            })
            .collect();
        Clients { stop, threads }
    }

    /// Stops the clients (each finishes its call in flight); returns their tallies.
    pub fn stop(self) -> Vec<Tally> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("a client thread"))
            .collect()
    }
}

/// A runtime for front ends.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// One line of `nemesis.jsonl`: what the nemesis did, on the history's clock.
#[derive(Clone, Debug, Serialize)]
pub struct NemesisEvent {
    /// When (nanoseconds on the history's clock).
    pub time_ns: u64,
    /// `kill`, `restart`, `stop`, `continue`, `kill-all`, `restart-all`, `recovered`,
    /// `excluded`.
    pub event: &'static str,
    /// The fault this is part of: `kill-member`, `pause-member`, `kill-coordinator`,
    /// `kill-group`.
    pub fault: &'static str,
    /// The node acted on (none for the whole group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// Free text: the role of the node, the view reached.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}
