//! Replicated services judged by their clients: a replication core
//! (`viewsync_services::replication::ReplicaCore`) runs at every process through
//! `replication::sim::SimReplica`, simulated key-value front ends
//! (`replication::sim::KvFrontEnd`) send it requests through the memory network under the
//! seeded faults, and each seed is checked for the simulator's own properties, every client
//! history linearizable (`history::linearizability`; an unknown answer fails too), every key
//! read at the end (so an acknowledged write that was lost shows), and no request executed
//! twice (a write answered twice with different positions, or two writes at one position).
//!
//! The cores: primary-backup (`replication::passive::PassiveReplica`, the production core,
//! with quorum durability over the simulated disks; restarted replicas catch up by a delta
//! from the position they recovered, and the summary counts those transfers), and a small sequencer
//! (`sequencer::SequencerCore`) whose deliberately broken variants show the checks firing.
//! `SIM_SEEDS`/`SIM_SEED` as in the other sim tests. Plugging another core in is one line: a
//! `replica_factory`.

use crate::sweep::{configure, replaying, seeds};
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};
use viewsync::proto::multicast::Delivery;
use viewsync::sim::client::ClientStats;
use viewsync::sim::coverage::{Coverage, Hit};
use viewsync::sim::service::ServiceFactory;
use viewsync::sim::{SimConfig, SimReport, Simulation};
use viewsync::wire::Ordering;
use viewsync_services::history::linearizability::{self, Linearizability};
use viewsync_services::history::sequential::{self, SequentialConsistency};
use viewsync_services::history::{History, SearchLimits, StateMachineModel};
use viewsync_services::replication::passive::{PassiveConfig, PassiveReplica};
use viewsync_services::replication::sim::{
    kv_clients, replica_factory, FrontEndConfig, FrontEndStats, KvFrontEnd,
};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_services::state_machine::StateMachine;

/// The passive (primary-backup) core, as `viewsync node` runs it with `strategy = "passive"`,
/// over each node's simulated disk.
fn passive() -> ServiceFactory {
    replica_factory("passive", |start| {
        let config = PassiveConfig::new(
            start.me.id,
            viewsync::GroupName::new("sim").expect("valid"),
            "kv",
        );
        Box::new(
            PassiveReplica::<KvStore>::recover(config, Box::new(start.log), start.recovered)
                .expect("a simulated disk always reads back"),
        )
    })
}

/// The sequencer core, correct, as every process's service.
fn sequencer() -> ServiceFactory {
    replica_factory("sequencer", |start| {
        Box::new(sequencer::SequencerCore::new(start, sequencer::Flaw::None))
    })
}

/// A run of `service` with simulated front ends: the seed's faults and scenario, the group in
/// total order with safe delivery (what replicated strategies require), 2 to 4 clients
/// operating until 4 s into the quiet phase and reading every key 10 s into it.
pub(crate) fn replicated_config(seed: u64, service: ServiceFactory) -> SimConfig {
    replicated_config_with(seed, service, false)
}

/// [`replicated_config`], its front ends sending every request to one member
/// (`FrontEndConfig::any_member`) when `any_member`.
pub(crate) fn replicated_config_with(
    seed: u64,
    service: ServiceFactory,
    any_member: bool,
) -> SimConfig {
    let mut config = SimConfig::from_seed(seed);
    configure(&mut config);
    config.settings.multicast.ordering = Ordering::Total;
    config.settings.multicast.delivery = Delivery::Safe;
    config.service = service;
    let clients = 2 + (seed % 3) as usize;
    let fault_end = config.fault_time;
    let mut front_ends = FrontEndConfig::new(
        fault_end + Duration::from_secs(4),
        fault_end + Duration::from_secs(10),
    );
    front_ends.any_member = any_member;
    config.clients = Some(kv_clients(clients, front_ends));
    config
}

/// The search budget of the sequential-consistency checker, per history.
const SEQUENTIAL_STEPS_MAX: u64 = 50_000_000;

/// The consistency a sweep holds its histories to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Consistency {
    /// `history::linearizability`, per key.
    Linearizable,
    /// `history::sequential`, the whole history (not compositional).
    Sequential,
}

/// What one seed showed.
pub(crate) struct Verdict {
    pub(crate) seed: u64,
    /// Why the seed fails (empty: it passes).
    pub(crate) failures: Vec<String>,
    /// The checker's counterexample, if it found one.
    pub(crate) counterexample: Option<String>,
    unknown: bool,
    operations: usize,
    pending: usize,
    steps: u64,
    pub(crate) front_ends: FrontEndStats,
    pub(crate) clients: ClientStats,
    liveness_checked: bool,
    views: u64,
    multicasts: u64,
    /// State transfers completed with the whole snapshot, and by a delta (a restarted
    /// replica catching up from the position it recovered).
    transfers_whole: u64,
    transfers_delta: u64,
    /// The faults and paths the run reached.
    pub(crate) coverage: Coverage,
}

fn add_stats(total: &mut FrontEndStats, s: FrontEndStats) {
    total.invoked += s.invoked;
    total.ok += s.ok;
    total.given_up += s.given_up;
    total.failed += s.failed;
    total.retransmissions += s.retransmissions;
    total.redirects += s.redirects;
    total.members_queries += s.members_queries;
    total.final_reads_ok += s.final_reads_ok;
    total.rejected_replies += s.rejected_replies;
    total.quorum_waits += s.quorum_waits;
    total.disagreements += s.disagreements;
}

/// Runs `config` and judges it.
fn judge(config: SimConfig) -> Verdict {
    judge_report(Simulation::new(config).run())
}

/// Judges a run's report, its histories for linearizability.
fn judge_report(report: SimReport) -> Verdict {
    judge_report_as(report, Consistency::Linearizable)
}

/// Judges a run's report, its histories for `consistency`.
pub(crate) fn judge_report_as(mut report: SimReport, consistency: Consistency) -> Verdict {
    let mut failures: Vec<String> = report
        .violations
        .iter()
        .map(|v| format!("{}: {}", v.property, v.detail))
        .collect();
    let front_ends: Vec<KvFrontEnd> = std::mem::take(&mut report.clients)
        .into_iter()
        .map(|c| {
            *c.into_any()
                .downcast::<KvFrontEnd>()
                .expect("kv front ends")
        })
        .collect();
    // One history of every client, in time order (each client's events keep their order).
    let mut history: History<KvOp, KvOutput> = History::new();
    let mut stats = FrontEndStats::default();
    let mut write_positions: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for front_end in &front_ends {
        history
            .events
            .extend(front_end.history().events.iter().cloned());
        add_stats(&mut stats, front_end.stats());
        failures.extend(front_end.anomalies().iter().cloned());
        for (seq, sent) in front_end.replies() {
            let Some((position, _)) = &sent.reply else {
                continue;
            };
            if KvStore::is_read_only(&sent.op) {
                continue;
            }
            let request = (front_end.session(), *seq);
            if let Some(other) = write_positions.insert(*position, request) {
                failures.push(format!(
                    "writes {other:?} and {request:?} (client, request) both answered at position {position}"
                ));
            }
        }
        if report.liveness_checked && front_end.final_reads_left() > 0 {
            failures.push(format!(
                "client {}: {} final reads unanswered after the faults stopped",
                front_end.session(),
                front_end.final_reads_left()
            ));
        }
    }
    history.events.sort_by_key(|e| e.time_ns);
    let mut verdict = Verdict {
        seed: report.seed,
        failures: Vec::new(),
        counterexample: None,
        unknown: false,
        operations: 0,
        pending: 0,
        steps: 0,
        front_ends: stats,
        clients: report.client_stats.clone(),
        liveness_checked: report.liveness_checked,
        views: report.views_seen as u64,
        multicasts: report.multicasts,
        transfers_whole: report.coverage.get(Hit::TransferWhole),
        transfers_delta: report.coverage.get(Hit::TransferDelta),
        coverage: report.coverage.clone(),
    };
    match history.operations() {
        Err(e) => failures.push(format!("malformed history: {e}")),
        Ok(operations) if consistency == Consistency::Sequential => {
            verdict.operations = operations.len();
            verdict.pending = operations.iter().filter(|o| o.result().is_none()).count();
            let model = StateMachineModel::new(KvStore::new());
            // The whole history at once (sequential consistency is not compositional): a
            // larger budget than the per-key linearizability search.
            let limits = SearchLimits {
                max_steps: SEQUENTIAL_STEPS_MAX,
            };
            match sequential::check(&model, &operations, limits) {
                SequentialConsistency::Consistent { steps, .. } => verdict.steps = steps,
                SequentialConsistency::NotConsistent(counterexample) => {
                    failures.push("client histories not sequentially consistent".into());
                    verdict.counterexample = Some(counterexample.to_string());
                }
                SequentialConsistency::Unknown { operations, steps } => {
                    verdict.unknown = true;
                    failures.push(format!(
                        "sequential consistency unknown: {operations} operations exceeded the search limit after {steps} steps"
                    ));
                }
            }
        }
        Ok(operations) => {
            verdict.operations = operations.len();
            verdict.pending = operations.iter().filter(|o| o.result().is_none()).count();
            let model = StateMachineModel::new(KvStore::new());
            match linearizability::check(&model, &operations, SearchLimits::default()) {
                Linearizability::Linearizable { steps, .. } => verdict.steps = steps,
                Linearizability::NotLinearizable(counterexample) => {
                    failures.push("client histories not linearizable".into());
                    verdict.counterexample = Some(counterexample.to_string());
                }
                Linearizability::Unknown {
                    keys,
                    operations,
                    steps,
                } => {
                    verdict.unknown = true;
                    failures.push(format!(
                        "linearizability unknown: keys {keys:?} ({operations} operations) exceeded the search limit after {steps} steps"
                    ));
                }
            }
        }
    }
    if replaying() {
        for line in &report.trace {
            println!("{line}");
        }
        println!("{}", history.to_json_lines());
        println!("{}", report.client_stats);
    }
    verdict.failures = failures;
    verdict
}

/// The command that replays `seed` of test `test`.
pub(crate) fn replay_command(seed: u64, test: &str) -> String {
    format!(
        "SIM_SEED={seed} cargo test --release --locked -p viewsync-tests --test sim {test} -- --include-ignored --nocapture"
    )
}

/// A sweep's totals.
#[derive(Default)]
pub(crate) struct Summary {
    pub(crate) runs: u64,
    pub(crate) failing: Vec<u64>,
    unknown: u64,
    exempted: u64,
    operations: u64,
    pending: u64,
    steps: u64,
    views: u64,
    multicasts: u64,
    transfers_whole: u64,
    pub(crate) transfers_delta: u64,
    /// Runs with at least one transfer by a delta.
    runs_with_delta: u64,
    pub(crate) front_ends: FrontEndStats,
    pub(crate) clients: ClientStats,
}

impl Summary {
    pub(crate) fn add(&mut self, verdict: &Verdict) {
        self.runs += 1;
        if !verdict.failures.is_empty() {
            self.failing.push(verdict.seed);
        }
        self.unknown += u64::from(verdict.unknown);
        self.exempted += u64::from(!verdict.liveness_checked);
        self.operations += verdict.operations as u64;
        self.pending += verdict.pending as u64;
        self.steps += verdict.steps;
        self.views += verdict.views;
        self.multicasts += verdict.multicasts;
        self.transfers_whole += verdict.transfers_whole;
        self.transfers_delta += verdict.transfers_delta;
        self.runs_with_delta += u64::from(verdict.transfers_delta > 0);
        add_stats(&mut self.front_ends, verdict.front_ends);
        self.clients.add(&verdict.clients);
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.front_ends;
        writeln!(
            f,
            "{} seeds, {} failing, {} unknown to the checker, {} exempt from liveness; {} views, {} service multicasts",
            self.runs,
            self.failing.len(),
            self.unknown,
            self.exempted,
            self.views,
            self.multicasts
        )?;
        writeln!(
            f,
            "operations: {} invoked, {} ok, {} given up (info), {} failed, {} checked ({} pending), {} search steps; \
             {} retransmissions, {} redirects to the primary, {} views asked, {} final reads ok",
            s.invoked,
            s.ok,
            s.given_up,
            s.failed,
            self.operations,
            self.pending,
            self.steps,
            s.retransmissions,
            s.redirects,
            s.members_queries,
            s.final_reads_ok
        )?;
        writeln!(
            f,
            "state transfers: {} whole snapshots, {} deltas from a restarted replica's position (in {} runs)",
            self.transfers_whole, self.transfers_delta, self.runs_with_delta
        )?;
        write!(f, "{}", self.clients)
    }
}

/// Runs `service` over `seeds`, printing each failing seed (with its replay command and any
/// counterexample) and the summary.
fn sweep(service: &ServiceFactory, seeds: Range<u64>, test: &str, quiet: bool) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    for seed in seeds {
        let verdict = judge(replicated_config(seed, service.clone()));
        report_failure(&verdict, service.name, test, quiet);
        summary.add(&verdict);
    }
    println!(
        "{} ({:.1} s):\n{summary}",
        service.name,
        started.elapsed().as_secs_f64()
    );
    summary
}

/// Prints a failing seed: its failures, any counterexample, and its replay command (unless
/// `quiet`).
pub(crate) fn report_failure(verdict: &Verdict, service: &str, test: &str, quiet: bool) {
    let seed = verdict.seed;
    if !verdict.failures.is_empty() && !quiet {
        eprintln!("seed {seed} ({service}): {:?}", verdict.failures);
        if let Some(counterexample) = &verdict.counterexample {
            eprintln!("{counterexample}");
        }
        eprintln!("  replay: {}", replay_command(seed, test));
    }
}

#[test]
fn passive_replication_is_linearizable_with_simulated_clients() {
    let summary = sweep(
        &passive(),
        seeds(0..500),
        "passive_replication_is_linearizable",
        false,
    );
    assert_clean_and_exercised(&summary);
    // Restarted replicas recover a position from their disks and catch up from it.
    if !replaying() {
        assert!(summary.transfers_delta > 0, "{summary}");
    }
}

#[test]
fn replicated_kv_is_linearizable_with_simulated_clients() {
    let summary = sweep(
        &sequencer(),
        seeds(0..100),
        "replicated_kv_is_linearizable",
        false,
    );
    assert_clean_and_exercised(&summary);
}

/// No seed failed, and the sweep exercised what it claims to: answers, refusals, timeouts,
/// retransmissions, disks kept across crashes.
fn assert_clean_and_exercised(summary: &Summary) {
    assert!(
        summary.failing.is_empty(),
        "failing seeds: {:?}",
        summary.failing
    );
    let s = &summary.front_ends;
    assert!(
        s.ok > 0 && s.retransmissions > 0 && s.redirects > 0,
        "{summary}"
    );
    assert!(summary.clients.timeouts > 0 && summary.clients.disks_kept > 0);
}

#[test]
fn replicated_kv_the_same_seed_replays_the_same_run() {
    let run = || {
        let mut report = Simulation::new(replicated_config(7, sequencer())).run();
        let histories: Vec<String> = std::mem::take(&mut report.clients)
            .into_iter()
            .map(|c| {
                let front_end = c.into_any().downcast::<KvFrontEnd>().expect("kv");
                front_end.history().to_json_lines()
            })
            .collect();
        (report.trace, report.network, report.client_stats, histories)
    };
    let (a, b) = (run(), run());
    assert!(!a.3.concat().is_empty());
    assert!(a == b, "seed 7 ran twice differently");
}

#[test]
fn replicated_kv_a_replica_whose_storage_fails_stops_and_the_group_goes_on() {
    // Node 2's first process fails its storage at its 200th tick (4 s in): it stops
    // (fail-stop), the node restarts from its disk, and the clients see nothing wrong.
    let failing = replica_factory("sequencer with a failing disk", |start| {
        let fail_at = (start.me.id.node == viewsync::NodeId(2) && start.start == 1).then_some(200);
        Box::new(sequencer::FailsOnce {
            inner: sequencer::SequencerCore::new(start, sequencer::Flaw::None),
            ticks: 0,
            fail_at,
        })
    });
    let summary = sweep(&failing, seeds(0..10), "storage_fails", false);
    assert!(
        summary.failing.is_empty(),
        "failing seeds: {:?}",
        summary.failing
    );
    assert!(summary.clients.service_stops > 0, "{summary}");
}

#[test]
fn replicated_kv_the_checker_rejects_a_coordinator_that_answers_before_delivery() {
    let broken = replica_factory("sequencer answering before delivery", |start| {
        Box::new(sequencer::SequencerCore::new(
            start,
            sequencer::Flaw::AnswersBeforeDelivery,
        ))
    });
    let mut rejected = None;
    for seed in seeds(0..30) {
        let verdict = judge(replicated_config(seed, broken.clone()));
        if let Some(counterexample) = verdict.counterexample {
            println!("seed {seed}: the broken core is caught:\n{counterexample}");
            println!(
                "  replay: {}",
                replay_command(seed, "answers_before_delivery")
            );
            rejected = Some(seed);
            break;
        }
    }
    assert!(
        rejected.is_some(),
        "no seed showed the broken core's histories not linearizable"
    );
}

#[test]
fn replicated_kv_the_checker_rejects_a_core_executing_retransmissions_twice() {
    let broken = replica_factory("sequencer executing retransmissions twice", |start| {
        Box::new(sequencer::SequencerCore::new(
            start,
            sequencer::Flaw::ExecutesRetransmissions,
        ))
    });
    let mut rejected = None;
    for seed in seeds(0..30) {
        let verdict = judge(replicated_config(seed, broken.clone()));
        if !verdict.failures.is_empty() {
            println!(
                "seed {seed}: the broken core is caught: {:?}",
                verdict.failures
            );
            if let Some(counterexample) = verdict.counterexample {
                println!("{counterexample}");
            }
            println!(
                "  replay: {}",
                replay_command(seed, "retransmissions_twice")
            );
            rejected = Some(seed);
            break;
        }
    }
    assert!(rejected.is_some(), "no seed caught the broken core");
}

/// A small replication core for the tests, correct unless a [`Flaw`] is planted: the
/// coordinator (`view.members[0]`) multicasts every request it takes; every replica applies
/// the key-value store at delivery (total order, safe delivery: one sequence, stable
/// everywhere when delivered), skipping a request id it executed already; the member that
/// took the request answers at its own delivery, or from its table of executed requests for
/// a retransmission. Each applied request is appended to the replica's log (synced at the
/// ticks); a restarted replica replays its log, then takes the group's state.
mod sequencer {
    use std::collections::BTreeMap;
    use viewsync::runtime::{ReplyTo, ServiceEvent};
    use viewsync::wire::{BusyReason, Refusal};
    use viewsync::{ProcessId, View};
    use viewsync_services::replication::sim::{ReplicaStart, SimLog};
    use viewsync_services::replication::{
        decode, decode_request, encode, Action, ReplicaCore, ReplicaLog, Reply, Request, RequestId,
        StoreError,
    };
    use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
    use viewsync_services::state_machine::StateMachine;

    /// A bug planted in the core.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Flaw {
        /// None: the core is correct.
        None,
        /// The coordinator answers at once, from its own state with the request applied,
        /// before its multicast is delivered (a write acknowledged that the group may lose).
        AnswersBeforeDelivery,
        /// Retransmissions are multicast and applied again (no table of executed requests).
        ExecutesRetransmissions,
    }

    /// What every replica agrees on: the store, the position of the last request applied and
    /// the table of executed requests (for retransmissions).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    struct Replicated {
        applied: u64,
        store: KvStore,
        executed: BTreeMap<RequestId, (u64, KvOutput)>,
    }

    impl Replicated {
        fn encode(&self) -> bytes::Bytes {
            let executed: Vec<(RequestId, u64, KvOutput)> = self
                .executed
                .iter()
                .map(|(id, (p, o))| (*id, *p, o.clone()))
                .collect();
            encode(&(self.applied, self.store.snapshot().to_vec(), executed))
        }

        fn decode(bytes: &[u8]) -> Result<Self, String> {
            let (applied, store, executed): (u64, Vec<u8>, Vec<(RequestId, u64, KvOutput)>) =
                decode(bytes)?;
            Ok(Replicated {
                applied,
                store: KvStore::restore(&store).map_err(|e| e.to_string())?,
                executed: executed.into_iter().map(|(i, p, o)| (i, (p, o))).collect(),
            })
        }

        /// Applies `request` unless executed already (or `again`); its position and output.
        fn apply(&mut self, request: &Request<KvOp>, again: bool) -> Option<(u64, KvOutput)> {
            if !again && self.executed.contains_key(&request.id) {
                return None;
            }
            self.applied += 1;
            let output = self.store.apply(&request.op);
            self.executed
                .insert(request.id, (self.applied, output.clone()));
            Some((self.applied, output))
        }
    }

    /// The sequencer core (see the module documentation).
    pub struct SequencerCore {
        me: ProcessId,
        flaw: Flaw,
        log: SimLog,
        view: Option<View>,
        blocked: bool,
        state: Replicated,
        /// Requests this member took and answers at their delivery.
        waiting: BTreeMap<RequestId, ReplyTo>,
        /// [`Flaw::AnswersBeforeDelivery`]: the coordinator's state with what it answered.
        speculative: Replicated,
    }

    impl SequencerCore {
        /// The core of a process starting as `start` says, its log replayed.
        pub fn new(start: ReplicaStart, flaw: Flaw) -> Self {
            let mut state = Replicated::default();
            if let Some((_, snapshot)) = &start.recovered.snapshot {
                state = Replicated::decode(snapshot).expect("the log's snapshot decodes");
            }
            for (_, record) in &start.recovered.records {
                let request: Request<KvOp> = decode(record).expect("the log's records decode");
                state.apply(&request, flaw == Flaw::ExecutesRetransmissions);
            }
            SequencerCore {
                me: start.me.id,
                flaw,
                log: start.log,
                view: None,
                blocked: false,
                speculative: state.clone(),
                state,
                waiting: BTreeMap::new(),
            }
        }

        fn reply(to: ReplyTo, id: RequestId, (position, output): (u64, KvOutput)) -> Action {
            let reply = Reply {
                id,
                position,
                output,
                causal: None,
            };
            Action::Reply {
                to,
                outcome: Ok(encode(&reply)),
            }
        }

        fn refuse(to: ReplyTo, refusal: Refusal) -> Vec<Action> {
            vec![Action::Reply {
                to,
                outcome: Err(refusal),
            }]
        }
    }

    impl ReplicaCore for SequencerCore {
        fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
            match event {
                ServiceEvent::Request(request) => {
                    let to = request.reply;
                    let parsed: Request<KvOp> = match decode_request(&request.payload, "kv") {
                        Ok(parsed) => parsed,
                        Err(refusal) => return Ok(Self::refuse(to, refusal)),
                    };
                    let Some(view) = &self.view else {
                        return Ok(Self::refuse(to, Refusal::Busy(BusyReason::Joining)));
                    };
                    if view.coordinator().id != self.me {
                        let primary = Some(view.coordinator().addr);
                        return Ok(Self::refuse(to, Refusal::NotPrimary { primary }));
                    }
                    if self.blocked {
                        return Ok(Self::refuse(to, Refusal::Busy(BusyReason::ViewChange)));
                    }
                    let again = self.flaw == Flaw::ExecutesRetransmissions;
                    if let (Some(done), false) = (self.state.executed.get(&parsed.id), again) {
                        return Ok(vec![Self::reply(to, parsed.id, done.clone())]);
                    }
                    let multicast = Action::Multicast(request.payload.clone());
                    if self.flaw == Flaw::AnswersBeforeDelivery {
                        let done = match self.speculative.executed.get(&parsed.id) {
                            Some(done) => done.clone(),
                            None => self.speculative.apply(&parsed, false).expect("new"),
                        };
                        return Ok(vec![Self::reply(to, parsed.id, done), multicast]);
                    }
                    self.waiting.insert(parsed.id, to);
                    Ok(vec![multicast])
                }
                ServiceEvent::Deliver { message, .. } => {
                    let request: Request<KvOp> = decode(&message.payload)
                        .map_err(|e| StoreError(format!("undecodable update: {e}")))?;
                    let again = self.flaw == Flaw::ExecutesRetransmissions;
                    let done = match self.state.apply(&request, again) {
                        Some(done) => {
                            self.log.append(done.0, &message.payload)?;
                            done
                        }
                        None => self.state.executed[&request.id].clone(),
                    };
                    Ok(match self.waiting.remove(&request.id) {
                        Some(to) if self.flaw != Flaw::AnswersBeforeDelivery => {
                            vec![Self::reply(to, request.id, done)]
                        }
                        _ => Vec::new(),
                    })
                }
                ServiceEvent::Block { .. } => {
                    self.blocked = true;
                    Ok(Vec::new())
                }
                ServiceEvent::ViewChange { change, .. } => {
                    self.view = Some(change.view.clone());
                    self.blocked = false;
                    self.speculative = self.state.clone();
                    Ok(Vec::new())
                }
                ServiceEvent::Restore { state, .. } => {
                    self.state = Replicated::decode(state)
                        .map_err(|e| StoreError(format!("undecodable state: {e}")))?;
                    self.speculative = self.state.clone();
                    self.log.reset(self.state.applied, state)?;
                    Ok(Vec::new())
                }
                ServiceEvent::Direct { .. } => Ok(Vec::new()),
            }
        }

        fn tick(&mut self, _now: std::time::Duration) -> Result<Vec<Action>, StoreError> {
            if self.log.needs_sync() {
                self.log.sync()?;
            }
            Ok(Vec::new())
        }

        fn snapshot(&self) -> bytes::Bytes {
            self.state.encode()
        }

        fn needs_sync(&self) -> bool {
            self.log.needs_sync()
        }
    }

    /// A core whose storage fails at its `fail_at`th tick: it reports the error, as a core
    /// whose log could not be synced does.
    pub struct FailsOnce {
        pub inner: SequencerCore,
        pub ticks: u64,
        pub fail_at: Option<u64>,
    }

    impl ReplicaCore for FailsOnce {
        fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
            self.inner.handle(event)
        }

        fn tick(&mut self, now: std::time::Duration) -> Result<Vec<Action>, StoreError> {
            self.ticks += 1;
            if Some(self.ticks) == self.fail_at {
                return Err(StoreError("simulated disk failure".into()));
            }
            self.inner.tick(now)
        }

        fn snapshot(&self) -> bytes::Bytes {
            self.inner.snapshot()
        }

        fn needs_sync(&self) -> bool {
            self.inner.needs_sync()
        }
    }
}

/// A run of `service` with simulated front ends (as [`replicated_config`]) through the
/// total-failure scenario: every node crashes at once 3–6 s in, and they restart one after
/// another (see `viewsync::sim::total_failure`).
pub(crate) fn total_failure_config(seed: u64, service: ServiceFactory) -> SimConfig {
    total_failure_config_with(seed, service, false)
}

/// [`total_failure_config`] with [`replicated_config_with`]'s front ends.
pub(crate) fn total_failure_config_with(
    seed: u64,
    service: ServiceFactory,
    any_member: bool,
) -> SimConfig {
    let mut config = replicated_config_with(seed, service, any_member);
    config.scenario = viewsync::sim::scenario::Scenario::TotalFailure;
    config
}

/// Runs `config` through the total-failure scenario and judges it: the simulator's checks,
/// the scenario's stated outcome, and the clients' (every history linearizable across the
/// failure, every key read back at the end: an acknowledged write the re-formed group lost
/// shows as a read that cannot be linearized). Also returns what the scenario saw.
pub(crate) fn judge_total_failure(
    config: SimConfig,
) -> (Verdict, viewsync::sim::total_failure::TotalFailureReport) {
    judge_total_failure_as(config, Consistency::Linearizable)
}

/// [`judge_total_failure`], the histories judged for `consistency`.
pub(crate) fn judge_total_failure_as(
    config: SimConfig,
    consistency: Consistency,
) -> (Verdict, viewsync::sim::total_failure::TotalFailureReport) {
    let mut report = Simulation::new(config).run();
    let total_failure = report
        .total_failure
        .take()
        .expect("a total-failure run reports");
    let mut verdict = judge_report_as(report, consistency);
    if total_failure.reformations.is_empty() {
        verdict
            .failures
            .push("the group never re-formed after the total failure".into());
    }
    if !verdict.liveness_checked {
        verdict
            .failures
            .push("liveness not checked: the final reads were not required".into());
    }
    (verdict, total_failure)
}

/// The passive core through the total-failure scenario: every seed re-forms its group once a
/// majority of the last view's voters is back, from a state at least what a majority of them
/// made durable, and the clients' histories, which span the failure, are linearizable with
/// every key read back at the end.
#[test]
fn passive_replication_recovers_from_a_total_failure() {
    let test = "passive_replication_recovers_from_a_total_failure";
    let started = Instant::now();
    let mut summary = Summary::default();
    // Members back at the re-formation, of how many voters: runs.
    let mut back: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    let (mut reformed, mut below_best, mut all_back, mut power_losses) = (0, 0, 0, 0);
    // Runs in which some claim named a view its maker accepted but never installed.
    let mut accepted_claims = 0;
    let mut positions: Vec<u64> = Vec::new();
    for seed in seeds(0..250) {
        let (verdict, total_failure) = judge_total_failure(total_failure_config(seed, passive()));
        if let Some(first) = total_failure.reformations.first() {
            reformed += 1;
            let voters = total_failure.last_voters().len();
            *back.entry((first.back.len(), voters)).or_default() += 1;
            all_back += u64::from(first.back.len() == voters);
            positions.push(first.position);
            // Some restarted voter held more than the re-former (an unacknowledged tail, or a
            // claimant not yet back): the choice among the claimants mattered.
            let best = total_failure.positions().values().flatten().copied().max();
            below_best += u64::from(best.is_some_and(|b| b > first.position));
        }
        power_losses += verdict.clients.power_losses;
        accepted_claims += u64::from(total_failure.restarts.iter().any(|r| r.accepted.is_some()));
        if !verdict.failures.is_empty() {
            eprintln!("seed {seed} (total failure): {:?}", verdict.failures);
            if let Some(counterexample) = &verdict.counterexample {
                eprintln!("{counterexample}");
            }
            eprintln!("  replay: {}", replay_command(seed, test));
        }
        summary.add(&verdict);
    }
    positions.sort_unstable();
    let shown: Vec<String> = back
        .iter()
        .map(|((b, v), n)| format!("{b} of {v}: {n}"))
        .collect();
    println!(
        "passive, total failure ({:.1} s):\n{summary}\nre-formed: {reformed} of {} seeds (voters of the last view back at the re-formation: {}; all back: {all_back}); \
         from positions {} to {} (median {}); {below_best} below a restarted voter's position; {power_losses} power losses; \
         {accepted_claims} runs with a claim naming a view accepted but not installed",
        started.elapsed().as_secs_f64(),
        summary.runs,
        shown.join(", "),
        positions.first().copied().unwrap_or(0),
        positions.last().copied().unwrap_or(0),
        positions.get(positions.len() / 2).copied().unwrap_or(0),
    );
    assert!(
        summary.failing.is_empty(),
        "failing seeds: {:?}",
        summary.failing
    );
    if summary.runs >= 50 {
        // The sweep exercised what it claims: re-formations before every voter was back,
        // from a state past nothing, with power losses.
        assert!(reformed == summary.runs && all_back < reformed && power_losses > 0);
        assert!(positions.last().is_some_and(|p| *p > 0));
    }
}

/// A deliberately broken recovery is caught: with the claims' positions inverted (the least
/// advanced claimant re-forms) some seed loses acknowledged writes, and the simulator's
/// check (a re-formation from below what a majority made durable) and the clients' (a
/// history that cannot be linearized) both say so; the same seed passes with honest claims.
#[test]
fn passive_total_failure_the_checks_catch_a_recovery_from_the_least_advanced() {
    let test = "the_checks_catch_a_recovery_from_the_least_advanced";
    let mut caught = None;
    for seed in seeds(0..40) {
        let mut config = total_failure_config(seed, passive());
        config.claim_fault = Some(viewsync::sim::total_failure::ClaimFault::Inverted);
        let (verdict, total_failure) = judge_total_failure(config);
        let lost = verdict.counterexample.is_some()
            && verdict
                .failures
                .iter()
                .any(|f| f.contains("durable at a majority are lost"));
        if lost {
            let first = total_failure.reformations.first().expect("re-formed");
            println!(
                "seed {seed}: {} re-formed from position {} (a majority held {:?}): {:?}",
                first.process,
                first.position,
                total_failure.majority_position(),
                verdict.failures
            );
            println!("{}", verdict.counterexample.as_deref().unwrap_or_default());
            println!(
                "  replay: SIM_SEED={seed} ... (broken claims) {}",
                replay_command(seed, test)
            );
            caught = Some(seed);
            break;
        }
    }
    let seed = caught.expect("no seed caught the least advanced claimant re-forming");
    let (verdict, _) = judge_total_failure(total_failure_config(seed, passive()));
    assert!(
        verdict.failures.is_empty(),
        "seed {seed} with honest claims: {:?}",
        verdict.failures
    );
}

/// Seeds in which two claimants each re-formed the group before claimants backed one bid at a
/// time (`proto::membership::join`, *Backing*): under one-way cuts a claimant counted a
/// majority that never heard it (72, 166, 208, 232, 662, 756), or one that had just joined the
/// first re-formed group (109); 166 and 208 lost acknowledged writes on the merge.
#[test]
fn passive_total_failure_seeds_that_once_made_two_groups() {
    for seed in [72, 109, 166, 208, 232, 662, 756] {
        let (verdict, total_failure) = judge_total_failure(total_failure_config(seed, passive()));
        assert!(
            verdict.failures.is_empty() && total_failure.reformations.len() == 1,
            "seed {seed}: {:?}\n  replay: {}",
            verdict.failures,
            replay_command(seed, "seeds_that_once_made_two_groups")
        );
    }
}

/// Seeds of `SIM_SEEDS=1000..4000` (none below 1000) in which the group once re-formed
/// from claims naming an older view than the last one installed, before a majority of that
/// last view's voters was back: a claim named only the last view its maker *installed*, and a
/// voter that accepted (or proposed) the next view and crashed before installing it claimed
/// the older one (seed 2949: node 1 proposes view 7 with its outgoing links cut, node 2
/// accepts and installs it, node 1 never learns it was decided; nodes 1 and 3 re-formed from
/// view 6 while node 2, holding position 5, was still down). Claims now also name the latest
/// view accepted, recorded before the `Accepted` left, and the claimants wait for a majority
/// of every view that may have been decided (`proto::membership::join`).
#[test]
fn passive_total_failure_a_view_its_proposer_never_installed() {
    for seed in [1298, 2949, 3710, 3834] {
        let (verdict, total_failure) = judge_total_failure(total_failure_config(seed, passive()));
        assert!(
            verdict.failures.is_empty(),
            "seed {seed}: {:?}\n  replay: {}",
            verdict.failures,
            replay_command(seed, "a_view_its_proposer_never_installed")
        );
        // The path these seeds exist for: a claim naming a view accepted, not installed. Seed
        // 3834 no longer takes it since the sequencer orders its own multicasts once a member
        // holds them (other schedules); it is kept for its verdict.
        if seed != 3834 {
            assert!(
                total_failure.restarts.iter().any(|r| r.accepted.is_some()),
                "seed {seed}: no claim named an accepted view"
            );
        }
    }
}
