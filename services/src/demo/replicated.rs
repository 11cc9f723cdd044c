//! `viewsync demo --strategy passive|passive-backup-reads|active|active-local-reads|naive
//! [--state-machine kv|bank]`: a
//! replicated key-value store (or bank) on three members in one process over loopback TCP,
//! each with a data directory of its own, run exactly as `viewsync node` runs it
//! ([`strategy::start_replica`]). Three clients write distinct keys concurrently through
//! front ends; midway the primary (the view's first member) is crashed, the survivors install
//! a view without it and the clients' front ends go on at the new primary; at the end a fresh
//! front end reads back every acknowledged write. Under passive replication none may be
//! missing (the demo fails otherwise), nor under active replication, where the crashed member
//! is the view's first (the total order's sequencer); naive replication is the labelled counter-example that
//! promises nothing, so the demo only reports what it read back.

use super::STEP_TIMEOUT;
use crate::config::{MachineKind, ServiceConfig, Strategy};
use crate::frontend::{FrontEnd, FrontEndConfig, FrontEndError, Routing};
use crate::replication::signed;
use crate::replication::CausalToken;
use crate::report;
use crate::state_machine::bank::{Bank, BankOp, BankOutput};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use crate::state_machine::StateMachine;
use crate::strategy::{self, StartReplicaError};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use viewsync::proto::multicast::Delivery;
use viewsync::runtime::{Node, NodeHandle};
use viewsync::GroupName;

/// Concurrent clients, each with a front end of its own.
const CLIENTS: u64 = 3;
/// Writes each client makes.
const WRITES_PER_CLIENT: u64 = 40;
/// A client's pause between two writes, so the crash lands mid-stream.
const PAUSE: Duration = Duration::from_millis(30);
/// Acknowledged writes (all clients together) before the primary is crashed: half of them.
const CRASH_AFTER: usize = (CLIENTS * WRITES_PER_CLIENT / 2) as usize;
/// Every this many writes a client's progress is printed (plus slow and failed ones).
const SAMPLE_EVERY: u64 = 10;
/// A write this slow is printed whatever its number: it waited out the crash.
const SLOW: Duration = Duration::from_millis(200);
/// How long one exchange of a front end with a node waits (a crashed primary costs at most
/// this before the front end tries another member).
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1_000);
/// How long a front end tries one call before giving up (outcome unknown).
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// A step of the replicated demo that did not complete, or an acknowledged write lost.
#[derive(Debug, thiserror::Error)]
pub enum ReplicatedDemoError {
    /// The strategy replicates nothing (`log` runs [`super::run`]).
    #[error("strategy {0:?} runs no replica: `viewsync demo` runs the log demo for it")]
    NotReplicated(&'static str),
    /// The members' data directories could not be created.
    #[error("cannot create the members' data directories: {0}")]
    DataDir(std::io::Error),
    /// A member's signing key could not be written (the Byzantine strategy).
    #[error("cannot write a signing key: {0}")]
    Signing(crate::replication::signed::KeyError),
    /// A node failed to start.
    #[error("node {0} failed to start: {1}")]
    Start(u64, viewsync::error::StartError),
    /// A member's replica failed to start.
    #[error("node {0}'s replica failed to start: {1}")]
    Replica(u64, StartReplicaError),
    /// A node stopped unexpectedly.
    #[error("node stopped: {0}")]
    Node(#[from] viewsync::error::NodeError),
    /// A step timed out.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// Acknowledged writes were missing or different when read back.
    #[error("{lost} of {acknowledged} acknowledged writes were not read back as written")]
    Lost {
        /// How many were missing or different.
        lost: usize,
        /// How many were acknowledged.
        acknowledged: usize,
    },
}

/// What the demo writes and reads back on one state machine: write `n` sets key `n` to a
/// value derived from `n`, so every write is checkable on its own.
trait DemoMachine: StateMachine + 'static {
    /// The write of item `n`.
    fn write(n: u64) -> Self::Operation;
    /// How the write of item `n` is printed.
    fn describe(n: u64) -> String;
    /// The key of item `n`, as printed.
    fn key(n: u64) -> String;
    /// Whether `output` is the acknowledgement of a write.
    fn written(output: &Self::Output) -> bool;
    /// The read of item `n`.
    fn read(n: u64) -> Self::Operation;
    /// `Ok` if a read of item `n` returned what its write wrote, else what it returned.
    fn check(n: u64, output: &Self::Output) -> Result<(), String>;
}

impl DemoMachine for KvStore {
    fn write(n: u64) -> KvOp {
        KvOp::put(Self::key(n), format!("v{n}"))
    }

    fn describe(n: u64) -> String {
        format!("put k{n}=v{n}")
    }

    fn key(n: u64) -> String {
        format!("k{n}")
    }

    fn written(output: &KvOutput) -> bool {
        *output == KvOutput::Written
    }

    fn read(n: u64) -> KvOp {
        KvOp::get(Self::key(n))
    }

    fn check(n: u64, output: &KvOutput) -> Result<(), String> {
        match output {
            KvOutput::Value(Some(v)) if *v == format!("v{n}") => Ok(()),
            KvOutput::Value(Some(v)) => Err(format!("value {v}")),
            KvOutput::Value(None) => Err("absent".to_string()),
            other => Err(format!("{other:?}")),
        }
    }
}

impl DemoMachine for Bank {
    fn write(n: u64) -> BankOp {
        BankOp::set(Self::key(n), n)
    }

    fn describe(n: u64) -> String {
        format!("set acct{n}={n}")
    }

    fn key(n: u64) -> String {
        format!("acct{n}")
    }

    fn written(output: &BankOutput) -> bool {
        *output == BankOutput::BalanceSet
    }

    fn read(n: u64) -> BankOp {
        BankOp::get(Self::key(n))
    }

    fn check(n: u64, output: &BankOutput) -> Result<(), String> {
        match output {
            BankOutput::Balance(b) if *b == n => Ok(()),
            BankOutput::Balance(b) => Err(format!("balance {b}")),
            BankOutput::UnknownAccount { .. } => Err("absent".to_string()),
            other => Err(format!("{other:?}")),
        }
    }
}

/// How one client's write ended.
#[derive(Debug)]
enum Outcome {
    /// Acknowledged, by the member at this address.
    Acknowledged(Option<SocketAddr>),
    /// Answered with something other than a write's acknowledgement.
    Unexpected(String),
    /// Not acknowledged: the front end gave up or the group refused it.
    Failed(FrontEndError),
}

/// What the demo's main loop hears about, from the replicas and from the client threads.
enum Heard {
    /// A line a member's replica printed.
    Replica(u64, String),
    /// A client finished a write.
    Write {
        client: u64,
        /// Its position in the client's sequence (0-based).
        index: u64,
        /// The item written.
        n: u64,
        outcome: Outcome,
        took: Duration,
    },
    /// A client made all its writes; its front end's causal token (gossip's `prev`).
    Done(u64, CausalToken),
}

/// A member's current view, from its replica's `replica-view` lines.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SeenView {
    epoch: u64,
    primary: u64,
    members: Vec<u64>,
}

impl SeenView {
    fn parse(line: &str) -> Option<SeenView> {
        let rest = line.strip_prefix("replica-view ")?;
        let field = |key: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        };
        Some(SeenView {
            epoch: field("epoch")?.parse().ok()?,
            primary: field("primary")?.parse().ok()?,
            members: field("members")?
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        })
    }
}

/// Everything the main loop has heard so far.
#[derive(Default)]
struct State {
    views: BTreeMap<u64, SeenView>,
    /// Acknowledged items: the client each was acknowledged to, and by which member.
    acknowledged: BTreeMap<u64, (u64, Option<SocketAddr>)>,
    /// Items whose write was not acknowledged.
    unacknowledged: Vec<u64>,
    /// Clients that made all their writes.
    done: BTreeSet<u64>,
    /// The clients' causal tokens when they finished.
    tokens: Vec<CausalToken>,
    /// Node ids by address, to name the member that answered.
    nodes: BTreeMap<SocketAddr, u64>,
    /// Whether the primary was crashed yet.
    crashed: bool,
}

impl State {
    fn node(&self, addr: Option<SocketAddr>) -> String {
        match addr.and_then(|a| self.nodes.get(&a)) {
            Some(n) => format!("node {n}"),
            None => "a member".to_string(),
        }
    }

    /// Whether every one of `nodes` is in the same view, of exactly `nodes`.
    fn in_one_view(&self, nodes: &[u64]) -> bool {
        let Some(first) = nodes.first().and_then(|n| self.views.get(n)) else {
            return false;
        };
        let mut members = first.members.clone();
        members.sort_unstable();
        members == nodes && nodes.iter().all(|n| self.views.get(n) == Some(first))
    }
}

/// The main loop's side: what it hears, and what it learnt from it.
struct Demo<S> {
    heard: UnboundedReceiver<Heard>,
    state: State,
    machine: std::marker::PhantomData<fn() -> S>,
}

impl<S: DemoMachine> Demo<S> {
    /// Prints and records one thing heard.
    fn show(&mut self, heard: Heard) {
        match heard {
            Heard::Replica(n, line) => {
                println!("[node {n}] {line}");
                if let Some(view) = SeenView::parse(&line) {
                    self.state.views.insert(n, view);
                }
            }
            Heard::Write {
                client,
                index,
                n,
                outcome,
                took,
            } => {
                let sample = index % SAMPLE_EVERY == 0 || index + 1 == WRITES_PER_CLIENT;
                let slow = took >= SLOW;
                let what = S::describe(n);
                match outcome {
                    Outcome::Acknowledged(at) => {
                        self.state.acknowledged.insert(n, (client, at));
                        if slow {
                            let why = if self.state.crashed {
                                " (the front end waited out the crash and retransmitted to a \
                                 member of the new view)"
                            } else {
                                ""
                            };
                            println!(
                                "[client {client}] {what} -> ok at {} after {} ms{why}",
                                self.state.node(at),
                                took.as_millis()
                            );
                        } else if sample {
                            println!("[client {client}] {what} -> ok at {}", self.state.node(at));
                        }
                    }
                    Outcome::Unexpected(output) => {
                        self.state.unacknowledged.push(n);
                        println!("[client {client}] {what} -> unexpected answer {output}");
                    }
                    Outcome::Failed(error) => {
                        self.state.unacknowledged.push(n);
                        let unknown = if error.outcome_unknown() {
                            " (outcome unknown: not counted as acknowledged)"
                        } else {
                            ""
                        };
                        println!("[client {client}] {what} -> not acknowledged: {error}{unknown}");
                    }
                }
            }
            Heard::Done(client, token) => {
                self.state.done.insert(client);
                self.state.tokens.push(token);
            }
        }
    }

    /// Prints what is heard until `done` holds, or fails after [`STEP_TIMEOUT`].
    async fn wait_until(
        &mut self,
        what: &'static str,
        done: impl Fn(&State) -> bool,
    ) -> Result<(), ReplicatedDemoError> {
        let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
        loop {
            if done(&self.state) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, self.heard.recv()).await {
                Ok(Some(heard)) => self.show(heard),
                Ok(None) | Err(_) => return Err(ReplicatedDemoError::Timeout(what)),
            }
        }
    }

    /// Prints what is heard for `quiet` after the last thing heard.
    async fn drain(&mut self, quiet: Duration) {
        while let Ok(Some(heard)) = tokio::time::timeout(quiet, self.heard.recv()).await {
            self.show(heard);
        }
    }
}

/// Runs the replicated demo of `strategy` on `machine`, printing to standard output. Must run
/// inside an actix system. Fails if a step times out or, for the passive strategies, if an
/// acknowledged write is not read back.
pub async fn run(strategy: Strategy, machine: MachineKind) -> Result<(), ReplicatedDemoError> {
    match machine {
        MachineKind::Kv => run_on::<KvStore>(strategy, machine).await,
        MachineKind::Bank => run_on::<Bank>(strategy, machine).await,
    }
}

async fn run_on<S: DemoMachine>(
    strategy: Strategy,
    machine: MachineKind,
) -> Result<(), ReplicatedDemoError> {
    let Some(routing) = strategy::routing(strategy) else {
        return Err(ReplicatedDemoError::NotReplicated("log"));
    };
    let mut service = ServiceConfig {
        strategy,
        state_machine: machine,
        // The default durability (grouped) with each member's own directory, as a
        // `viewsync node` with `data_dir` set runs it.
        ..ServiceConfig::default()
    };
    let group = GroupName::new(machine.name()).expect("a machine name is a valid group name");
    // Removed when the demo returns (on error too); nothing runs after that, because the
    // members only run while the demo's future is polled.
    let dirs = tempfile::Builder::new()
        .prefix("viewsync-demo-")
        .tempdir()
        .map_err(ReplicatedDemoError::DataDir)?;
    println!(
        "[demo] strategy {}, state machine {}: three members in group {group}, each with a data \
         directory under {}; {CLIENTS} clients write {WRITES_PER_CLIENT} distinct keys each \
         through front ends (routing {routing:?})",
        strategy.name(),
        machine.name(),
        dirs.path().display()
    );
    if strategy == Strategy::Gossip {
        println!(
            "[demo] gossip: each member answers at once from its own state and gossips every \
             100 ms; the crashed member is restarted from its data directory at the end, and \
             every acknowledged write must then be read back"
        );
    }
    if strategy == Strategy::Naive {
        println!(
            "[demo] naive replication is the labelled counter-example: it guarantees nothing \
             (each member answers at once and propagates lazily)"
        );
    }

    // The Byzantine strategy: each member's own signing key, every public key listed.
    let mut signing_keys = BTreeMap::new();
    if strategy == Strategy::ActiveByzantine {
        service.f = Some(1);
        for n in 1..=3u64 {
            let path = dirs.path().join(format!("node{n}.key"));
            let key = signed::generate_signing_key();
            signed::write_signing_key(&path, &key).map_err(ReplicatedDemoError::Signing)?;
            service
                .replica_keys
                .insert(n.to_string(), signed::public_key_hex(&key.verifying_key()));
            signing_keys.insert(n, path);
        }
        println!(
            "[demo] f = 1: each member signs its replies with its own key; the front ends send \
             every request to all three and take the reply two of them signed"
        );
    }
    let signed_replies = service
        .signed_replies()
        .expect("the demo lists 2f + 1 valid keys");
    // Member `n`'s service: the Byzantine strategy's with its own key file.
    let service_of = |n: u64| {
        let mut service = service.clone();
        service.signing_key_file = signing_keys.get(&n).cloned();
        service
    };

    let (tx, heard) = tokio::sync::mpsc::unbounded_channel::<Heard>();
    let mut demo = Demo::<S> {
        heard,
        state: State::default(),
        machine: std::marker::PhantomData,
    };
    let mut nodes: BTreeMap<u64, NodeHandle> = BTreeMap::new();
    for n in 1..=3u64 {
        let seeds = nodes.values().map(|h| h.me().addr).collect();
        let node = start_member(n, seeds, dirs.path(), &group, &service_of(n), &tx).await?;
        println!("[node {n}] {}", report::listening(&node.me()));
        demo.state.nodes.insert(node.me().addr, n);
        nodes.insert(n, node);
        // One at a time, so each join (and the joiner's state transfer) is visible.
        demo.wait_until("a member in a view", |s| s.views.contains_key(&n))
            .await?;
    }
    demo.wait_until("all three in one view", |s| s.in_one_view(&[1, 2, 3]))
        .await?;
    // Naive, active and gossip replication have no primary; the view's first member is only
    // that (and under active replication the total order's sequencer).
    let leader = if matches!(strategy, Strategy::Naive | Strategy::Gossip) {
        "first member"
    } else if strategy.needs_total_order() {
        "first member, the sequencer"
    } else {
        "primary"
    };
    let full = demo.state.views[&1].clone();
    println!(
        "[demo] all three members are in view {} ({leader}: node {})",
        full.epoch, full.primary
    );

    let addrs: Vec<SocketAddr> = nodes.values().map(|h| h.me().addr).collect();
    let clients: Vec<std::thread::JoinHandle<()>> = (1..=CLIENTS)
        .map(|c| {
            // Each client first asks a different member (under naive routing, the member it
            // then uses for everything).
            let mut seeds = addrs.clone();
            seeds.rotate_left(((c - 1) as usize) % addrs.len());
            let mut config = FrontEndConfig::new(group.clone(), seeds, machine.name());
            config.routing = routing;
            config.signed_replies = signed_replies.clone();
            config.attempt_timeout = ATTEMPT_TIMEOUT;
            config.deadline = CALL_DEADLINE;
            let tx = tx.clone();
            // A thread and runtime per client, as separate client processes would be.
            std::thread::spawn(move || client::<S>(c, config, tx))
        })
        .collect();

    demo.wait_until("writes before the crash", |s| {
        s.acknowledged.len() >= CRASH_AFTER
    })
    .await?;
    let victim = demo.state.views[&1].primary;
    let survivors: Vec<u64> = (1..=3).filter(|n| *n != victim).collect();
    if matches!(strategy, Strategy::Naive | Strategy::Gossip) {
        println!(
            "[demo] crashing node {victim}, the view's first member ({} replication has no \
             primary: its clients' later writes go to another member)",
            strategy.name()
        );
    } else if strategy.needs_total_order() {
        println!(
            "[demo] crashing node {victim}, the view's first member and the total order's \
             sequencer (active replication has no primary: every member executes every request)"
        );
    } else {
        println!("[demo] crashing the primary, node {victim}");
    }
    let crashed_at = Instant::now();
    nodes[&victim].crash();
    demo.state.crashed = true;
    demo.wait_until("a view without the crashed member", |s| {
        s.in_one_view(&survivors)
    })
    .await?;
    let after = demo.state.views[&survivors[0]].clone();
    println!(
        "[demo] nodes {} and {} installed view {} without node {victim} {} ms after the crash \
         (new {leader}: node {})",
        survivors[0],
        survivors[1],
        after.epoch,
        crashed_at.elapsed().as_millis(),
        after.primary
    );
    demo.wait_until("the clients' last writes", |s| {
        s.done.len() == CLIENTS as usize
    })
    .await?;
    for client in clients {
        // Each has sent its last event: it only has its runtime to drop.
        let _ = client.join();
    }
    if strategy == Strategy::Gossip {
        // Updates the crashed member accepted and had not gossiped are on its disk, and the
        // survivors' updates that depend on them wait for them: restart it from its data
        // directory, as an operator would, and let gossip converge the three.
        println!("[demo] restarting node {victim} from its data directory");
        let seeds = survivors.iter().map(|n| nodes[n].me().addr).collect();
        let node =
            start_member(victim, seeds, dirs.path(), &group, &service_of(victim), &tx).await?;
        demo.state.nodes.insert(node.me().addr, victim);
        nodes.insert(victim, node);
        demo.wait_until("the restarted member back in the view", |s| {
            s.in_one_view(&[1, 2, 3])
        })
        .await?;
        // A few gossip rounds (every 100 ms).
        demo.drain(Duration::from_millis(1_000)).await;
    }
    if strategy == Strategy::Naive {
        // Give the survivors' lazy propagation a few rounds, so what is missing is what the
        // crash lost rather than what is still on its way.
        demo.drain(crate::replication::naive::NaiveConfig::LAZY * 3)
            .await;
    }

    let acknowledged = demo.state.acknowledged.clone();
    let unacknowledged = demo.state.unacknowledged.len();
    println!(
        "[demo] the clients made {} writes: {} acknowledged, {unacknowledged} not",
        CLIENTS * WRITES_PER_CLIENT,
        acknowledged.len()
    );
    // A fresh front end, through the survivors. The passive strategies read at the primary:
    // the check is about durability, and a fresh front end's read at a backup may lag behind
    // the latest writes (sequential consistency allows it).
    let seeds: Vec<SocketAddr> = survivors.iter().map(|n| nodes[n].me().addr).collect();
    let mut config = FrontEndConfig::new(group.clone(), seeds, machine.name());
    config.routing = match routing {
        // Local reads (`active-local-reads`) may lag at any member: the check reads ordered
        // ones... which that strategy does not have, so it reads at the first member, which
        // delivered every write before the clients' last answers arrived.
        Routing::Anywhere if strategy == Strategy::ActiveLocalReads => Routing::Primary,
        Routing::Anywhere => Routing::Anywhere,
        _ => Routing::Primary,
    };
    config.signed_replies = signed_replies;
    config.attempt_timeout = ATTEMPT_TIMEOUT;
    config.deadline = CALL_DEADLINE;
    let mut reader = FrontEnd::<S>::new(config);
    // The clients tell the reader what they have seen (gossip's client-to-client causality:
    // its reads then wait until the member holds every write they saw acknowledged).
    for token in &demo.state.tokens {
        reader.observe(token);
    }
    // Each wrong item: its key, and how it was acknowledged and what was read instead.
    let mut wrong: Vec<(String, String)> = Vec::new();
    for (&n, &(client, at)) in &acknowledged {
        let found = match reader.call(S::read(n)).await {
            Ok(output) => S::check(n, &output),
            Err(error) => Err(format!("not read: {error}")),
        };
        if let Err(found) = found {
            let how = format!(
                "acknowledged to client {client} by {}, read back {found}",
                demo.state.node(at)
            );
            wrong.push((S::key(n), how));
        }
    }
    let read_at = match reader.config().routing {
        Routing::Anywhere => reader.policy().sticky(),
        _ => reader.policy().primary(),
    };
    demo.drain(Duration::from_millis(50)).await;
    let total = acknowledged.len();
    let read_back = total - wrong.len();
    println!(
        "[demo] a fresh front end read back every acknowledged write at {}",
        demo.state.node(read_at)
    );
    if strategy == Strategy::Naive {
        println!(
            "[demo] naive (the labelled counter-example, no guarantee): {read_back} of {total} \
             acknowledged writes read back"
        );
        for (key, how) in &wrong {
            println!("[demo]   {key}: {how}");
        }
        if !wrong.is_empty() {
            println!(
                "[demo]   (a naive member answers before its update reaches the others: what \
                 the crashed member had not yet propagated is gone)"
            );
        }
        return Ok(());
    }
    if wrong.is_empty() {
        println!("[demo] no acknowledged write lost: {read_back} of {total} read back");
        return Ok(());
    }
    for (key, how) in &wrong {
        println!("[demo] LOST: {key}: {how}");
    }
    Err(ReplicatedDemoError::Lost {
        lost: wrong.len(),
        acknowledged: total,
    })
}

/// Starts member `n` (its data directory under `dirs`, joining through `seeds`; founding the
/// group when there are none) with its replica as `viewsync node` runs it, and joins it.
async fn start_member(
    n: u64,
    seeds: Vec<SocketAddr>,
    dirs: &std::path::Path,
    group: &GroupName,
    service: &ServiceConfig,
    tx: &UnboundedSender<Heard>,
) -> Result<NodeHandle, ReplicatedDemoError> {
    let data_dir = dirs.join(format!("node{n}"));
    let mut config = super::config(n, seeds);
    // Replicated strategies need safe delivery (what `viewsync node` sets for them).
    let mut multicast = config.settings.multicast;
    multicast.delivery = Delivery::Safe;
    config.group_multicast.insert(group.clone(), multicast);
    config.data_dir = Some(data_dir.clone());
    let node = Node::spawn(config)
        .await
        .map_err(|e| ReplicatedDemoError::Start(n, e))?;
    let tx = tx.clone();
    strategy::start_replica(
        &node,
        group.clone(),
        service,
        Some(&data_dir),
        move |line| {
            let _ = tx.send(Heard::Replica(n, line));
        },
        false,
    )
    .await
    .map_err(|e| ReplicatedDemoError::Replica(n, e))?;
    node.join(group.clone()).await?;
    Ok(node)
}

/// One client: [`WRITES_PER_CLIENT`] writes of items `c`, `c + CLIENTS`, `c + 2 * CLIENTS`...
/// one at a time through its own front end, each reported to the main loop.
fn client<S: DemoMachine>(c: u64, config: FrontEndConfig, tx: UnboundedSender<Heard>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let routing = config.routing;
        let mut front_end = FrontEnd::<S>::new(config);
        for index in 0..WRITES_PER_CLIENT {
            let n = index * CLIENTS + c;
            let started = Instant::now();
            let outcome = match front_end.call(S::write(n)).await {
                Ok(output) if S::written(&output) => {
                    let policy = front_end.policy();
                    Outcome::Acknowledged(match routing {
                        Routing::Anywhere => policy.sticky(),
                        _ => policy.primary(),
                    })
                }
                Ok(output) => Outcome::Unexpected(format!("{output:?}")),
                Err(error) => Outcome::Failed(error),
            };
            let took = started.elapsed();
            let _ = tx.send(Heard::Write {
                client: c,
                index,
                n,
                outcome,
                took,
            });
            tokio::time::sleep(PAUSE).await;
        }
        let _ = tx.send(Heard::Done(c, front_end.causal_token()));
    });
}
