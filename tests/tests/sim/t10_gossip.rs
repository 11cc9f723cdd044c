//! The gossip architecture judged by its clients: the gossip replica manager
//! (`viewsync_services::replication::gossip::GossipReplica`, the production core) runs at
//! every process through `replication::sim::SimReplica` under the normal scenario's seeded
//! faults (crashes and restarts with power loss, partitions, cut links, pauses), with
//! simulated gossip front ends (`replication::gossip_sim::GossipFrontEnd`) that keep `prev`,
//! pass tokens to one another, and read every key at every node once the faults stop.
//!
//! Each seed is checked for: the simulator's own properties; every client history, with the
//! client-to-client messages as happens-before edges, causally consistent
//! (`history::causal`); convergence (every final read of a key, at every node, by every
//! front end, returns the same value); every final read answered; no reply malformed.
//! The summary says which paths the sweep reached (gossip rounds, gaps noticed, queries
//! that waited, requests served while blocked, restores merged, replays, folds,
//! partitions). A deliberately broken core (queries answered without waiting for `prev`)
//! shows the checker firing. `SIM_SEEDS=A..B` sweeps a range, `SIM_SEED=N` replays one seed
//! with its trace and history.

use crate::sweep::{configure, replaying, seeds};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use viewsync::runtime::ServiceEvent;
use viewsync::sim::coverage::Hit;
use viewsync::sim::service::ServiceFactory;
use viewsync::sim::{SimConfig, SimReport, Simulation};
use viewsync_services::history::causal::{self, Causality};
use viewsync_services::history::History;
use viewsync_services::replication::gossip::{GossipConfig, GossipReplica, GossipStats};
use viewsync_services::replication::gossip_sim::{
    converged, gossip_clients, GossipFrontEnd, GossipFrontEndStats,
};
use viewsync_services::replication::sim::{replica_factory, FrontEndConfig, ReplicaStart};
use viewsync_services::replication::{decode, encode, Action, ReplicaCore, Request, StoreError};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};

/// Every replica manager's latest statistics, per (node, start).
type StatsBoard = Arc<Mutex<BTreeMap<(u64, u64), GossipStats>>>;

/// How the core under test deviates from the production one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flaw {
    None,
    /// Queries are answered at once, as if the front end had seen nothing (`prev` dropped).
    QueriesIgnorePrev,
}

/// The production gossip core, with its statistics posted to `board` after every event.
struct Observed {
    core: GossipReplica<KvStore>,
    flaw: Flaw,
    key: (u64, u64),
    board: StatsBoard,
}

impl Observed {
    fn post(&self) {
        self.board
            .lock()
            .unwrap()
            .insert(self.key, self.core.stats());
    }

    /// A request with its `prev` dropped when it is a query (the broken variant).
    fn flawed(&self, event: &ServiceEvent) -> Option<ServiceEvent> {
        let ServiceEvent::Request(request) = event else {
            return None;
        };
        if self.flaw != Flaw::QueriesIgnorePrev {
            return None;
        }
        let mut decoded: Request<KvOp> = decode(&request.payload).ok()?;
        if !matches!(decoded.op, KvOp::Get { .. }) {
            return None;
        }
        decoded.causal = None;
        let mut request = request.clone();
        request.payload = encode(&decoded);
        Some(ServiceEvent::Request(request))
    }
}

impl ReplicaCore for Observed {
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        let result = match self.flawed(event) {
            Some(event) => self.core.handle(&event),
            None => self.core.handle(event),
        };
        self.post();
        result
    }
    fn tick(&mut self, now: Duration) -> Result<Vec<Action>, StoreError> {
        let result = self.core.tick(now);
        self.post();
        result
    }
    fn snapshot(&self) -> Bytes {
        self.core.snapshot()
    }
    fn needs_sync(&self) -> bool {
        self.core.needs_sync()
    }
    fn available_while_blocked(&self) -> bool {
        self.core.available_while_blocked()
    }
    fn agreed_state(&self) -> Bytes {
        self.core.agreed_state()
    }
}

/// The gossip core (as `viewsync node` runs it with `strategy = "gossip"`) over each node's
/// simulated disk.
fn gossip(flaw: Flaw, board: StatsBoard) -> ServiceFactory {
    let name = match flaw {
        Flaw::None => "gossip",
        Flaw::QueriesIgnorePrev => "gossip answering queries without waiting for prev",
    };
    replica_factory(name, move |start: ReplicaStart| {
        let config = GossipConfig::new(
            start.me.id,
            viewsync::GroupName::new("sim").expect("valid"),
            "kv",
        );
        let core = GossipReplica::<KvStore>::recover(
            config,
            Box::new(start.log),
            start.recovered,
            KvStore::new(),
        )
        .expect("a simulated disk always reads back");
        Box::new(Observed {
            core,
            flaw,
            key: (start.me.id.node.0, start.start),
            board: board.clone(),
        })
    })
}

/// A run: the seed's faults and scenario, 2 to 4 gossip front ends operating until 4 s into
/// the quiet phase and reading every key at every node 10 s into it.
fn gossip_config(seed: u64, flaw: Flaw, board: StatsBoard) -> SimConfig {
    let mut config = SimConfig::from_seed(seed);
    configure(&mut config);
    config.service = gossip(flaw, board);
    let clients = 2 + (seed % 3) as usize;
    let fault_end = config.fault_time;
    let front_ends = FrontEndConfig::new(
        fault_end + Duration::from_secs(4),
        fault_end + Duration::from_secs(10),
    );
    config.clients = Some(gossip_clients(clients, front_ends));
    config
}

/// What one seed showed.
#[derive(Default)]
struct Verdict {
    failures: Vec<String>,
    counterexample: Option<String>,
    operations: u64,
    messages: u64,
    final_reads: u64,
    front_ends: GossipFrontEndStats,
    replicas: GossipStats,
    partitions: u64,
    restarts: u64,
    excluded: u64,
    liveness_checked: bool,
}

fn add_front_end(total: &mut GossipFrontEndStats, s: GossipFrontEndStats) {
    total.invoked += s.invoked;
    total.ok += s.ok;
    total.given_up += s.given_up;
    total.retransmissions += s.retransmissions;
    total.elsewhere += s.elsewhere;
    total.messages += s.messages;
    total.final_reads_ok += s.final_reads_ok;
}

fn add_replica(total: &mut GossipStats, s: GossipStats) {
    total.updates += s.updates;
    total.queries += s.queries;
    total.queries_waited += s.queries_waited;
    total.gossip_sent += s.gossip_sent;
    total.entries_received += s.entries_received;
    total.gaps_noticed += s.gaps_noticed;
    total.replays += s.replays;
    total.folded += s.folded;
    total.duplicates_skipped += s.duplicates_skipped;
    total.served_while_blocked += s.served_while_blocked;
    total.restores_merged += s.restores_merged;
    total.refused_log_full += s.refused_log_full;
}

/// Runs `seed` and judges it.
fn judge(seed: u64, flaw: Flaw) -> Verdict {
    let board = StatsBoard::default();
    let mut report: SimReport = Simulation::new(gossip_config(seed, flaw, board.clone())).run();
    let mut verdict = Verdict {
        failures: report
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.property, v.detail))
            .collect(),
        partitions: report.coverage.get(Hit::Partition2) + report.coverage.get(Hit::Partition3Plus),
        restarts: report.coverage.get(Hit::Restart),
        excluded: report.coverage.get(Hit::Excluded),
        liveness_checked: report.liveness_checked,
        ..Verdict::default()
    };
    for stats in board.lock().unwrap().values() {
        add_replica(&mut verdict.replicas, *stats);
    }
    let front_ends: Vec<GossipFrontEnd> = std::mem::take(&mut report.clients)
        .into_iter()
        .map(|c| {
            *c.into_any()
                .downcast::<GossipFrontEnd>()
                .expect("gossip front ends")
        })
        .collect();
    let mut history: History<KvOp, KvOutput> = History::new();
    let mut messages = Vec::new();
    for fe in &front_ends {
        history.events.extend(fe.history().events.iter().cloned());
        messages.extend_from_slice(fe.messages());
        add_front_end(&mut verdict.front_ends, fe.stats());
        verdict.failures.extend(fe.anomalies().iter().cloned());
        if report.liveness_checked && fe.final_reads_left() > 0 {
            verdict.failures.push(format!(
                "client {}: {} final reads unanswered after the faults stopped",
                fe.session(),
                fe.final_reads_left()
            ));
        }
    }
    verdict.messages = messages.len() as u64;
    history.events.sort_by_key(|e| e.time_ns);
    match history.operations() {
        Err(e) => verdict.failures.push(format!("malformed history: {e}")),
        Ok(operations) => {
            verdict.operations = operations.len() as u64;
            match causal::check_with_messages(&operations, &messages) {
                Causality::Consistent { .. } => {}
                bad => {
                    verdict
                        .failures
                        .push("client histories not causally consistent".into());
                    verdict.counterexample = Some(bad.to_string());
                }
            }
        }
    }
    if report.liveness_checked {
        let refs: Vec<&GossipFrontEnd> = front_ends.iter().collect();
        match converged(&refs) {
            Ok(reads) => verdict.final_reads = reads as u64,
            Err(why) => verdict
                .failures
                .push(format!("replicas did not converge: {why}")),
        }
    }
    if replaying() {
        for line in &report.trace {
            println!("{line}");
        }
        println!("{}", history.to_json_lines());
        println!("{:?}", board.lock().unwrap());
    }
    verdict
}

fn replay_command(seed: u64, test: &str) -> String {
    format!(
        "SIM_SEED={seed} cargo test --release --locked -p viewsync-tests --test sim {test} -- --nocapture"
    )
}

#[derive(Default)]
struct Summary {
    runs: u64,
    failing: Vec<u64>,
    exempt: u64,
    operations: u64,
    messages: u64,
    final_reads: u64,
    partitions: u64,
    runs_with_partition: u64,
    restarts: u64,
    excluded: u64,
    front_ends: GossipFrontEndStats,
    replicas: GossipStats,
}

impl Summary {
    fn add(&mut self, seed: u64, v: &Verdict) {
        self.runs += 1;
        if !v.failures.is_empty() {
            self.failing.push(seed);
        }
        self.exempt += u64::from(!v.liveness_checked);
        self.operations += v.operations;
        self.messages += v.messages;
        self.final_reads += v.final_reads;
        self.partitions += v.partitions;
        self.runs_with_partition += u64::from(v.partitions > 0);
        self.restarts += v.restarts;
        self.excluded += v.excluded;
        add_front_end(&mut self.front_ends, v.front_ends);
        add_replica(&mut self.replicas, v.replicas);
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, r) = (&self.front_ends, &self.replicas);
        writeln!(
            f,
            "{} seeds, {} failing, {} exempt from liveness; {} partitions (in {} runs), {} restarts, {} exclusions",
            self.runs,
            self.failing.len(),
            self.exempt,
            self.partitions,
            self.runs_with_partition,
            self.restarts,
            self.excluded
        )?;
        writeln!(
            f,
            "clients: {} invoked, {} ok, {} given up, {} retransmissions, {} sent away from home, {} tokens passed between clients, {} checked operations, {} final reads compared",
            c.invoked, c.ok, c.given_up, c.retransmissions, c.elsewhere, self.messages, self.operations, self.final_reads
        )?;
        write!(
            f,
            "replica managers: {} updates, {} queries ({} waited for prev), {} gossip messages, {} entries received by gossip, {} gaps noticed, {} served while blocked, {} restores merged, {} replays, {} entries folded, {} duplicates skipped, {} refused for a full log",
            r.updates,
            r.queries,
            r.queries_waited,
            r.gossip_sent,
            r.entries_received,
            r.gaps_noticed,
            r.served_while_blocked,
            r.restores_merged,
            r.replays,
            r.folded,
            r.duplicates_skipped,
            r.refused_log_full
        )
    }
}

fn sweep(seeds: Range<u64>, flaw: Flaw, test: &str, quiet: bool) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    for seed in seeds {
        let verdict = judge(seed, flaw);
        if !verdict.failures.is_empty() && !quiet {
            eprintln!("seed {seed} ({flaw:?}): {:?}", verdict.failures);
            if let Some(counterexample) = &verdict.counterexample {
                eprintln!("{counterexample}");
            }
            eprintln!("  replay: {}", replay_command(seed, test));
        }
        summary.add(seed, &verdict);
    }
    println!(
        "gossip {flaw:?} ({:.1} s):\n{summary}",
        started.elapsed().as_secs_f64()
    );
    summary
}

#[test]
fn t10_gossip_is_causally_consistent_and_converges_under_faults() {
    let summary = sweep(seeds(0..500), Flaw::None, "t10_gossip_is_causally", false);
    assert!(
        summary.failing.is_empty(),
        "failing seeds: {:?}",
        summary.failing
    );
    if !replaying() {
        // The sweep reached what it claims to check.
        let r = &summary.replicas;
        assert!(
            summary.runs_with_partition > 0 && summary.restarts > 0,
            "{summary}"
        );
        assert!(r.queries_waited > 0 && r.gaps_noticed > 0, "{summary}");
        assert!(
            r.served_while_blocked > 0 && r.restores_merged > 0,
            "{summary}"
        );
        assert!(
            r.folded > 0 && summary.final_reads > 0 && summary.messages > 0,
            "{summary}"
        );
    }
}

#[test]
fn t10_gossip_the_checker_rejects_queries_answered_before_prev_is_covered() {
    let summary = sweep(
        seeds(0..20),
        Flaw::QueriesIgnorePrev,
        "t10_gossip_the_checker_rejects",
        true,
    );
    assert!(
        !summary.failing.is_empty(),
        "no seed caught the flaw: {summary}"
    );
}

#[test]
fn t10_gossip_the_same_seed_replays_the_same_run() {
    let run = || {
        let board = StatsBoard::default();
        let mut report = Simulation::new(gossip_config(11, Flaw::None, board)).run();
        let histories: Vec<String> = std::mem::take(&mut report.clients)
            .into_iter()
            .map(|c| {
                let fe = c.into_any().downcast::<GossipFrontEnd>().expect("gossip");
                fe.history().to_json_lines()
            })
            .collect();
        (report.trace, histories)
    };
    let (a, b) = (run(), run());
    assert!(!a.1.concat().is_empty());
    assert!(a == b, "seed 11 ran twice differently");
}
