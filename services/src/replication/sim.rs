//! Replication cores in the deterministic simulator (`viewsync::sim`), judged by the
//! consistency checkers.
//!
//! - [`SimReplica`]: runs any [`ReplicaCore`] as a stamped
//!   [`SimulatedService`]: the core's [`Action`]s become the simulator's
//!   [`ServiceAction`]s, carried out through the node core and the service edge as the
//!   replica shell does (a refused multicast or a storage failure stops the process:
//!   fail-stop). Its storage is a [`SimLog`] (a [`MemoryLog`]) that the simulator keeps on the
//!   node's disk across a crash, minus the records not synced when the crash was a power
//!   loss; [`replica_factory`] makes each process's core from it. A restarted replica's
//!   process asks its state transfer for a delta from the position its core recovered, and
//!   providers answer deltas from their cores (see `ReplicaCore::delta`).
//! - [`KvFrontEnd`]: a simulated front end of the key-value store: random operations on a
//!   few keys, one request in flight, the same request id retransmitted on a timeout or a
//!   refusal (to the primary a `NotPrimary` names, else to another node after a backoff, the
//!   primary found by asking a node for its view; or, with `FrontEndConfig::any_member`,
//!   to one member of its own, the next after a refusal or a timeout, as the active
//!   strategies' front ends do), a read of every key at the end, and the
//!   [`History`] it saw with virtual-time stamps, plus every reply it got for each request
//!   (a request executed twice answers with two positions).

use super::{decode, encode, Action, MemoryLog, ReplicaCore, ReplicaLog, Reply, Request};
use super::{RequestId, StoreError};
use crate::history::History;
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use crate::state_machine::StateMachine;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use viewsync::runtime::ServiceEvent;
use viewsync::sim::client::{ClientFactory, ClientStart, ClientStep, SimulatedClient};
use viewsync::sim::delivery_checker::StateDigest;
use viewsync::sim::service::{
    ServiceAction, ServiceFactory, ServiceFault, ServiceStart, SimulatedService,
};
use viewsync::wire::{Outcome, Refusal};
use viewsync::{Member, ViewId};

pub use super::store::Recovered;

/// A replica's storage in the simulator: a [`MemoryLog`] the core writes through
/// [`ReplicaLog`] and the adapter hands the simulator as the node's disk when the process
/// crashes. Clones share the log.
#[derive(Clone, Debug, Default)]
pub struct SimLog(Arc<Mutex<MemoryLog>>);

impl SimLog {
    /// An empty log.
    pub fn new() -> Self {
        SimLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryLog> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a replica restarting from this storage finds ([`MemoryLog::recover`]).
    pub fn recover(&self, power_loss: bool) -> Recovered {
        self.lock().recover(power_loss)
    }

    /// The disk as the next process finds it after a crash: what was synced, and with
    /// `power_loss` nothing more; a log of its own (the crashed core's handle is cut off).
    pub fn after_crash(&self, power_loss: bool) -> Result<SimLog, StoreError> {
        let recovered = self.recover(power_loss);
        let mut log = MemoryLog::new();
        if let Some((index, snapshot)) = &recovered.snapshot {
            log.reset(*index, snapshot)?;
        }
        for (index, record) in &recovered.records {
            log.append(*index, record)?;
        }
        log.sync()?;
        Ok(SimLog(Arc::new(Mutex::new(log))))
    }

    /// The index of the last record ([`MemoryLog::last_index`]).
    pub fn last_index(&self) -> u64 {
        self.lock().last_index()
    }
}

impl ReplicaLog for SimLog {
    fn append(&mut self, index: u64, record: &[u8]) -> Result<(), StoreError> {
        self.lock().append(index, record)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.lock().sync()
    }

    fn needs_sync(&self) -> bool {
        self.lock().needs_sync()
    }

    fn save_snapshot(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.lock().save_snapshot(index, snapshot)
    }

    fn reset(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.lock().reset(index, snapshot)
    }
}

/// What a core factory is given for a process that starts.
#[derive(Debug)]
pub struct ReplicaStart {
    /// The process and its address.
    pub me: Member,
    /// Starts of its node so far, this one included.
    pub start: u64,
    /// Its storage (the node's disk as the last crash left it, or empty at the first start).
    pub log: SimLog,
    /// What the storage held at the start (`log.recover(false)`).
    pub recovered: Recovered,
}

/// Makes a process's core from its start.
pub type CoreFactory = Arc<dyn Fn(ReplicaStart) -> Box<dyn ReplicaCore> + Send + Sync>;

/// A [`ServiceFactory`] running the cores `make` makes, each as a [`SimReplica`] over the
/// node's [`SimLog`].
pub fn replica_factory(
    name: &'static str,
    make: impl Fn(ReplicaStart) -> Box<dyn ReplicaCore> + Send + Sync + 'static,
) -> ServiceFactory {
    let make: CoreFactory = Arc::new(make);
    ServiceFactory::with_start(name, move |start| Box::new(SimReplica::start(&make, start)))
}

/// Any [`ReplicaCore`] as a simulated service (see the [module documentation](self)).
pub struct SimReplica {
    core: Box<dyn ReplicaCore>,
    log: SimLog,
    me: Member,
    /// The disk was not readable at the start: the replica stops at its first event.
    broken_disk: Option<String>,
}

impl fmt::Debug for SimReplica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimReplica")
            .field("me", &self.me.id)
            .field("log_last_index", &self.log.last_index())
            .finish()
    }
}

impl SimReplica {
    /// The replica of a process starting as `start` says: its core made by `make` over the
    /// node's disk (after the crash's power loss, if any).
    pub fn start(make: &CoreFactory, start: ServiceStart) -> SimReplica {
        let disk = start.disk.and_then(|d| d.downcast::<SimLog>().ok());
        let (log, broken_disk) = match disk.map(|d| d.after_crash(start.power_loss)) {
            None => (SimLog::new(), None),
            Some(Ok(log)) => (log, None),
            Some(Err(error)) => (SimLog::new(), Some(error.to_string())),
        };
        let recovered = log.recover(false);
        let core = make(ReplicaStart {
            me: start.me,
            start: start.start,
            log: log.clone(),
            recovered,
        });
        SimReplica {
            core,
            log,
            me: start.me,
            broken_disk,
        }
    }

    fn actions(
        result: Result<Vec<Action>, StoreError>,
    ) -> Result<Vec<ServiceAction>, ServiceFault> {
        let actions = result.map_err(|e| ServiceFault::Failed(e.to_string()))?;
        Ok(actions
            .into_iter()
            .map(|action| match action {
                Action::Multicast(payload) => ServiceAction::Multicast(payload),
                Action::Send { to, payload } => ServiceAction::Send { to, payload },
                Action::Reply { to, outcome } => ServiceAction::Reply { to, outcome },
            })
            .collect())
    }
}

impl SimulatedService for SimReplica {
    /// Handles the event; what the core asked for is lost (the simulator calls
    /// [`SimulatedService::act`]).
    fn handle(&mut self, event: &ServiceEvent) -> Result<(), ServiceFault> {
        self.act(event).map(drop)
    }

    fn act(&mut self, event: &ServiceEvent) -> Result<Vec<ServiceAction>, ServiceFault> {
        if let Some(why) = &self.broken_disk {
            return Err(ServiceFault::Failed(format!("unreadable disk: {why}")));
        }
        // As in the replica shell, records appended now are synced at the next tick (group
        // commit), which answers what waited for them.
        Self::actions(self.core.handle(event))
    }

    fn tick(&mut self, now: Duration) -> Result<Vec<ServiceAction>, ServiceFault> {
        Self::actions(self.core.tick(now))
    }

    fn snapshot(&self) -> Bytes {
        self.core.snapshot()
    }

    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        self.core.snapshot_for(view)
    }

    /// The core's position at the start: what it recovered from the node's disk.
    fn position(&self) -> Option<u64> {
        self.core.position()
    }

    /// The core's delta (a passive core answers from its in-memory tail), so restarted
    /// replicas catch up from their recovered position as the replica shell lets them.
    fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        self.core.delta(view, since)
    }

    /// A hash of the core's snapshot: members entering a view, and at the end, hold the same
    /// delivered state.
    fn digest(&self) -> StateDigest {
        let snapshot = self.core.agreed_state();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        snapshot.hash(&mut hasher);
        StateDigest {
            count: snapshot.len() as u64,
            set_hash: hasher.finish(),
            total_chain: 0,
        }
    }

    fn stamped(&self) -> bool {
        true
    }

    fn available_while_blocked(&self) -> bool {
        self.core.available_while_blocked()
    }

    fn crash(&mut self) -> Option<viewsync::sim::service::Disk> {
        Some(Box::new(self.log.clone()))
    }

    /// The last index its [`SimLog`] recovered (the last record's, or the snapshot's), as the
    /// replica shell registers a durable replica; none from a disk it could not read.
    fn durable_position(&self) -> Option<u64> {
        self.broken_disk.is_none().then(|| self.log.last_index())
    }
}

/// How the key-value front ends behave.
#[derive(Clone, Debug)]
pub struct FrontEndConfig {
    /// The keys operated on.
    pub keys: Vec<String>,
    /// No new operation after this (virtual time).
    pub ops_until: Duration,
    /// Then each front end reads every key, from this time on.
    pub final_reads_at: Duration,
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// An operation unanswered this long is given up (recorded as `info`: it may still take
    /// effect).
    pub give_up_after: Duration,
    /// The pause between an answer and the next operation, at most.
    pub think_max: Duration,
    /// The pause before a retransmission to another node after a refusal or a timeout.
    pub backoff: Duration,
    /// Send every request to one member (first the session's own node of the seed list,
    /// then the next after a refusal or a timeout) with the highest position seen as its
    /// `after`, as the active strategies' front ends do; `false`: to the primary (found by
    /// asking a node for its view, or named by a `NotPrimary`), `after` always 0.
    pub any_member: bool,
    /// Under the Byzantine strategy: replies are signed, and a call's result is the reply
    /// `f + 1` members signed (the front end asks the next member after each reply until
    /// they agree); replies that do not verify are counted and ignored. Implies
    /// [`FrontEndConfig::any_member`].
    pub signed: Option<SimSignedReplies>,
}

/// What the Byzantine strategy's simulated front ends trust.
#[derive(Clone, Debug)]
pub struct SimSignedReplies {
    /// `f` and the members' public keys.
    pub trusted: crate::frontend::SignedReplies,
    /// The group the replies are signed for.
    pub group: viewsync::GroupName,
}

impl FrontEndConfig {
    /// Keys `a`, `b`, `c`; operations until `ops_until`, final reads from `final_reads_at`;
    /// 400 ms timeouts, operations given up after 8 s, up to 60 ms between operations, 100 ms
    /// backoff.
    pub fn new(ops_until: Duration, final_reads_at: Duration) -> Self {
        FrontEndConfig {
            keys: ["a", "b", "c"].map(String::from).to_vec(),
            ops_until,
            final_reads_at,
            timeout: Duration::from_millis(400),
            give_up_after: Duration::from_secs(8),
            think_max: Duration::from_millis(60),
            backoff: Duration::from_millis(100),
            any_member: false,
            signed: None,
        }
    }

    /// The same, with every request sent to one member ([`FrontEndConfig::any_member`]).
    pub fn any_member(mut self) -> Self {
        self.any_member = true;
        self
    }

    /// The same, taking the reply `f + 1` members signed ([`FrontEndConfig::signed`]).
    pub fn signed(mut self, signed: SimSignedReplies) -> Self {
        self.any_member = true;
        self.signed = Some(signed);
        self
    }
}

/// `count` key-value front ends ([`KvFrontEnd`]) for a simulation.
pub fn kv_clients(count: usize, config: FrontEndConfig) -> ClientFactory {
    ClientFactory::new("kv", count, move |start| {
        Box::new(KvFrontEnd::new(start, config.clone()))
    })
}

/// The operation a front end has in hand.
#[derive(Clone, Debug)]
struct Call {
    seq: u64,
    op: KvOp,
    payload: Bytes,
    invoked: Duration,
    /// The tag of the latest attempt (0 before the first).
    tag: u64,
    /// Where the next attempt goes.
    target: SocketAddr,
    attempts: u32,
    /// Under [`FrontEndConfig::signed`]: the signed replies so far, and the members whose
    /// verified reply counted (not asked again).
    quorum: Option<super::signed::ReplyQuorum>,
    voted: Vec<SocketAddr>,
}

/// What a front end counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrontEndStats {
    /// Operations invoked.
    pub invoked: u64,
    /// Answered `ok`.
    pub ok: u64,
    /// Given up (`info`).
    pub given_up: u64,
    /// Refused for good before any attempt could have executed (`fail`).
    pub failed: u64,
    /// Attempts after the first (the same request id again).
    pub retransmissions: u64,
    /// Redirections to the primary a `NotPrimary` named.
    pub redirects: u64,
    /// Views asked of a node to find the primary.
    pub members_queries: u64,
    /// Final reads answered.
    pub final_reads_ok: u64,
    /// Under [`FrontEndConfig::signed`]: replies that did not verify (ignored).
    pub rejected_replies: u64,
    /// Under [`FrontEndConfig::signed`]: verified replies that did not yet make a quorum
    /// (the next member was asked).
    pub quorum_waits: u64,
    /// Under [`FrontEndConfig::signed`]: calls whose members signed different replies.
    pub disagreements: u64,
}

/// A request a front end sent, and the first reply it got for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentRequest {
    /// The operation.
    pub op: KvOp,
    /// The first reply's position and output (`None`: none came).
    pub reply: Option<(u64, KvOutput)>,
}

/// A simulated front end of the key-value store (see the [module documentation](self)).
#[derive(Debug)]
pub struct KvFrontEnd {
    /// The history's client number (its index in the run, from 1).
    session: u64,
    /// The request ids' client part (its identity's client id).
    client: u64,
    nodes: Vec<SocketAddr>,
    config: FrontEndConfig,
    history: History<KvOp, KvOutput>,
    seq: u64,
    call: Option<Call>,
    /// Whether the call in hand is a final read.
    final_read: bool,
    /// Where requests go: the primary, or with [`FrontEndConfig::any_member`] the member
    /// this front end uses.
    primary: Option<SocketAddr>,
    /// Ask a node for its view before the next attempt.
    find_primary: bool,
    next_tag: u64,
    not_before: Duration,
    /// Draw a pause before the next operation.
    think: bool,
    final_keys: Option<VecDeque<String>>,
    /// The value each key was last seen with (the expected value of a compare-and-swap).
    seen: BTreeMap<String, Option<String>>,
    /// Per request sequence number, the operation and the first reply.
    replies: BTreeMap<u64, SentRequest>,
    /// Requests answered twice differently, and replies that did not decode.
    anomalies: Vec<String>,
    stats: FrontEndStats,
    /// The highest position a reply carried (the `after` of requests when
    /// [`FrontEndConfig::any_member`]).
    seen_position: u64,
}

fn ns(t: Duration) -> u64 {
    t.as_nanos() as u64
}

impl KvFrontEnd {
    /// The front end of client `start`.
    pub fn new(start: ClientStart, config: FrontEndConfig) -> Self {
        // A front end of any member starts at its own node of the seed list: the members
        // share the clients.
        let member = config
            .any_member
            .then(|| start.nodes[start.index % start.nodes.len()]);
        KvFrontEnd {
            session: start.index as u64 + 1,
            client: start.id.incarnation.0,
            nodes: start.nodes,
            find_primary: !config.any_member,
            config,
            history: History::new(),
            seq: 0,
            call: None,
            final_read: false,
            primary: member,
            next_tag: 0,
            not_before: Duration::ZERO,
            think: true,
            final_keys: None,
            seen: BTreeMap::new(),
            replies: BTreeMap::new(),
            anomalies: Vec::new(),
            stats: FrontEndStats::default(),
            seen_position: 0,
        }
    }

    /// The history it recorded. An operation still in hand at the end has no completion
    /// (pending).
    pub fn history(&self) -> &History<KvOp, KvOutput> {
        &self.history
    }

    /// Its history's client number.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Per request sequence number: the operation and the first reply's position and output.
    pub fn replies(&self) -> &BTreeMap<u64, SentRequest> {
        &self.replies
    }

    /// Requests answered twice with different positions or outputs (executed twice), and
    /// replies that did not decode.
    pub fn anomalies(&self) -> &[String] {
        &self.anomalies
    }

    /// What it counted.
    pub fn stats(&self) -> FrontEndStats {
        self.stats
    }

    /// The final reads it has not had answered (all keys until it starts them).
    pub fn final_reads_left(&self) -> usize {
        match &self.final_keys {
            None => self.config.keys.len(),
            Some(keys) => keys.len() + usize::from(self.final_read && self.call.is_some()),
        }
    }

    /// The node after `addr` in the seed list.
    fn other_node(&self, addr: SocketAddr) -> SocketAddr {
        let i = self.nodes.iter().position(|n| *n == addr).unwrap_or(0);
        self.nodes[(i + 1) % self.nodes.len()]
    }

    fn random_op(&mut self, rng: &mut StdRng) -> KvOp {
        let key = self.config.keys[rng.gen_range(0..self.config.keys.len())].clone();
        // Unique values (client.request): a write executed twice, or lost, shows in what is
        // read.
        let value = format!("{}.{}", self.session, self.seq + 1);
        match rng.gen_range(0..100) {
            0..=34 => KvOp::put(key, value),
            35..=64 => KvOp::get(key),
            65..=84 => {
                let expected = self.seen.get(&key).cloned().flatten();
                KvOp::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
            _ => KvOp::delete(key),
        }
    }

    fn begin(&mut self, op: KvOp, now: Duration) {
        self.seq += 1;
        let request = Request {
            id: RequestId {
                client: self.client,
                seq: self.seq,
            },
            machine: "kv".to_string(),
            after: if self.config.any_member {
                self.seen_position
            } else {
                0
            },
            causal: None,
            op: op.clone(),
        };
        self.history
            .invoke(self.session, self.seq, op.clone(), ns(now));
        self.stats.invoked += 1;
        self.replies.insert(
            self.seq,
            SentRequest {
                op: op.clone(),
                reply: None,
            },
        );
        let target = self
            .primary
            .unwrap_or(self.nodes[self.seq as usize % self.nodes.len()]);
        self.call = Some(Call {
            seq: self.seq,
            op,
            payload: encode(&request),
            invoked: now,
            tag: 0,
            target,
            attempts: 0,
            quorum: self
                .config
                .signed
                .as_ref()
                .map(|s| super::signed::ReplyQuorum::new(s.trusted.f)),
            voted: Vec::new(),
        });
    }

    /// Under [`FrontEndConfig::signed`]: counts a signed reply to the call in hand. Returns
    /// the reply once `f + 1` members signed it; until then, asks the next member at once.
    fn count_signed(
        &mut self,
        now: Duration,
        from: SocketAddr,
        tag: u64,
        bytes: &[u8],
    ) -> Option<Bytes> {
        let trust = self.config.signed.as_ref().expect("signed mode");
        let verified = trust.trusted.keys.verify(&trust.group, bytes);
        let call = self.call.as_mut()?;
        let current = call.tag == tag;
        let signed = match verified {
            Ok(signed) => signed,
            Err(_) => {
                self.stats.rejected_replies += 1;
                if current {
                    // After a backoff: every member may be refused (more liars than `f`).
                    self.retry_at(self.other_node(from), now, self.config.backoff);
                }
                return None;
            }
        };
        // A late reply to an earlier call counts for nothing.
        let reply: Reply<KvOutput> = decode(&signed.reply).ok()?;
        if reply.id.client != self.client || reply.id.seq != call.seq {
            return None;
        }
        if !call.voted.contains(&from) {
            call.voted.push(from);
        }
        let quorum = call.quorum.as_mut().expect("signed mode");
        let was_split = quorum.distinct_replies() > 1;
        let agreed = quorum.offer(signed);
        if !was_split && quorum.distinct_replies() > 1 {
            self.stats.disagreements += 1;
        }
        if agreed.is_none() {
            self.stats.quorum_waits += 1;
            if current {
                // The next member that has not answered yet, at once; when every member
                // has, the first again after a backoff (some were down or refused).
                let voted = call.voted.clone();
                let mut next = self.other_node(from);
                let mut backoff = Duration::ZERO;
                for _ in 0..self.nodes.len() {
                    if !voted.contains(&next) {
                        break;
                    }
                    next = self.other_node(next);
                }
                if voted.contains(&next) {
                    backoff = self.config.backoff;
                }
                self.retry_at(next, now, backoff);
            }
        }
        agreed
    }

    /// The call in hand ends; `think` draws a pause before the next.
    fn end_call(&mut self) {
        self.call = None;
        self.final_read = false;
        self.think = true;
    }

    /// `from` refused or did not answer: after a backoff, try the next node (with
    /// [`FrontEndConfig::any_member`], the member used from then on; else the primary is
    /// looked for again, through it).
    fn move_on(&mut self, from: SocketAddr, now: Duration) {
        let other = self.other_node(from);
        if self.config.any_member {
            self.primary = Some(other);
        } else {
            self.primary = None;
            self.find_primary = true;
        }
        self.retry_at(other, now, self.config.backoff);
    }

    /// A refusal or a timeout: try `target` next, after `backoff`.
    fn retry_at(&mut self, target: SocketAddr, now: Duration, backoff: Duration) {
        if let Some(call) = &mut self.call {
            call.target = target;
        }
        self.not_before = now + backoff;
    }
}

impl SimulatedClient for KvFrontEnd {
    fn next(&mut self, now: Duration, rng: &mut StdRng) -> ClientStep {
        if std::mem::take(&mut self.think) {
            let pause = rng.gen_range(0..=self.config.think_max.as_micros() as u64);
            self.not_before = self.not_before.max(now + Duration::from_micros(pause));
        }
        if now < self.not_before {
            return ClientStep::Wait(self.not_before - now);
        }
        if let Some(call) = &self.call {
            if now.saturating_sub(call.invoked) >= self.config.give_up_after {
                let seq = call.seq;
                self.history.info(self.session, seq, "given up", ns(now));
                self.stats.given_up += 1;
                self.end_call();
                return ClientStep::Wait(Duration::from_micros(1));
            }
        } else if now < self.config.ops_until {
            let op = self.random_op(rng);
            self.begin(op, now);
        } else {
            if now < self.config.final_reads_at {
                return ClientStep::Wait(self.config.final_reads_at - now);
            }
            let keys = self
                .final_keys
                .get_or_insert_with(|| self.config.keys.iter().cloned().collect());
            let Some(key) = keys.pop_front() else {
                return ClientStep::Done;
            };
            self.begin(KvOp::get(key), now);
            self.final_read = true;
        }
        let timeout = self.config.timeout;
        if std::mem::take(&mut self.find_primary) && self.primary.is_none() {
            let to = self.call.as_ref().expect("in hand").target;
            self.stats.members_queries += 1;
            return ClientStep::Members { to, timeout };
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        let call = self.call.as_mut().expect("in hand");
        call.tag = tag;
        call.attempts += 1;
        if call.attempts > 1 {
            self.stats.retransmissions += 1;
        }
        ClientStep::Request {
            to: call.target,
            tag,
            payload: call.payload.clone(),
            timeout,
        }
    }

    fn on_response(&mut self, now: Duration, from: SocketAddr, tag: u64, outcome: &Outcome) {
        match outcome {
            Ok(signed) if self.config.signed.is_some() => {
                if let Some(agreed) = self.count_signed(now, from, tag, signed) {
                    self.on_reply(now, from, &agreed);
                }
            }
            Ok(bytes) => self.on_reply(now, from, bytes),
            Err(refusal) => self.on_refusal(now, from, tag, refusal),
        }
    }

    fn on_members(
        &mut self,
        _now: Duration,
        from: SocketAddr,
        view: Option<&viewsync::View>,
        _blocked: Option<&viewsync::wire::Blocked>,
    ) {
        match view {
            Some(view) => {
                let primary = view.coordinator().addr;
                self.primary = Some(primary);
                if let Some(call) = &mut self.call {
                    call.target = primary;
                }
            }
            None => {
                let other = self.other_node(from);
                if let Some(call) = &mut self.call {
                    call.target = other;
                }
            }
        }
    }

    fn on_timeout(&mut self, now: Duration, to: SocketAddr, _tag: Option<u64>) {
        self.move_on(to, now);
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

impl KvFrontEnd {
    /// A reply (under [`FrontEndConfig::signed`], the one a quorum signed).
    fn on_reply(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) {
        let reply: Reply<KvOutput> = match decode(bytes) {
            Ok(reply) => reply,
            Err(e) => {
                self.anomalies
                    .push(format!("undecodable reply from {from}: {e}"));
                return;
            }
        };
        if reply.id.client != self.client {
            self.anomalies
                .push(format!("reply for another client's request {}", reply.id));
            return;
        }
        let seq = reply.id.seq;
        self.seen_position = self.seen_position.max(reply.position);
        let answer = (reply.position, reply.output.clone());
        match self.replies.get_mut(&seq) {
            None => self
                .anomalies
                .push(format!("reply to request {seq}, never sent")),
            Some(SentRequest { op, reply: first }) => match first {
                None => *first = Some(answer),
                // A read may be served again (it has no effect); a write answered
                // twice differently was executed twice.
                Some(first) if *first != answer && !KvStore::is_read_only(op) => {
                    self.anomalies.push(format!(
                        "request {seq} ({op:?}) answered {first:?} and then {answer:?} \
                         (from {from}): executed twice"
                    ))
                }
                Some(_) => {}
            },
        }
        let Some(call) = &self.call else { return };
        if call.seq != seq {
            return;
        }
        let key = call.op.key().to_string();
        match &reply.output {
            KvOutput::Value(v) | KvOutput::CasMismatch { current: v } => {
                self.seen.insert(key, v.clone());
            }
            KvOutput::Written | KvOutput::Swapped => {
                if let KvOp::Put { value: new, .. } | KvOp::Cas { new, .. } = &call.op {
                    self.seen.insert(key, Some(new.clone()));
                }
            }
            KvOutput::Deleted { .. } => {
                self.seen.insert(key, None);
            }
        }
        self.history.ok(self.session, seq, reply.output, ns(now));
        self.stats.ok += 1;
        if self.final_read {
            self.stats.final_reads_ok += 1;
        }
        self.primary = Some(from);
        self.end_call();
    }

    /// A refusal of the attempt tagged `tag`.
    fn on_refusal(&mut self, now: Duration, from: SocketAddr, tag: u64, refusal: &Refusal) {
        let Some(call) = &self.call else { return };
        if call.tag != tag {
            return;
        }
        match refusal {
            Refusal::NotPrimary {
                primary: Some(primary),
            } if *primary != from => {
                self.stats.redirects += 1;
                self.primary = Some(*primary);
                self.retry_at(*primary, now, Duration::ZERO);
            }
            Refusal::TooLarge { .. } | Refusal::Malformed(_) => {
                // It will never be taken; an earlier attempt may have been.
                let seq = call.seq;
                if call.attempts == 1 {
                    self.history
                        .fail(self.session, seq, refusal.to_string(), ns(now));
                    self.stats.failed += 1;
                } else {
                    self.history
                        .info(self.session, seq, refusal.to_string(), ns(now));
                    self.stats.given_up += 1;
                }
                self.end_call();
            }
            _ => self.move_on(from, now),
        }
    }
}
