//! The gossip architecture (the reference notes' sections 17 to 22): a highly available
//! service. A front end sends each request to any replica manager (RM); an RM answers an
//! update as soon as it has logged it and a query as soon as its value covers what the front
//! end has seen; RMs bring one another up to date lazily, by gossip.
//!
//! # The replica manager's state (the notes' section 22, component by component)
//!
//! - **Replica timestamp** (`replica_ts`): entry `i` counts the updates this RM accepted
//!   from front ends itself; entry `j` the updates accepted by RM `j` that reached this RM.
//!   Vector timestamps are indexed by the node id, the stable identity of a replica: a
//!   restarted or rejoining process of the same node is the same replica (its durable log
//!   brings its entry back).
//! - **Update log** (`log`): every update received and not yet known to be everywhere, each
//!   `<RM id, vector timestamp, update, prev, operation id>` ([`LogEntry`], plus the Lamport
//!   number below). Entries wait there until *stable* (`prev <= value timestamp`), are then
//!   applied, and are removed once the timestamp table shows every replica has them.
//! - **Executed operation table** (`executed`): the ids of updates applied, so an update
//!   that arrives twice (a front end retransmitted it to another RM, which logged it as a
//!   new update) is applied once.
//! - **Value and value timestamp** (`value`, `value_ts`): the state machine's state and the
//!   timestamp of the updates applied to it. A query is answered when
//!   `q.prev <= value_ts`, else it waits for gossip.
//! - **Timestamp table** (`ts_table`): the latest replica timestamp each other RM sent in
//!   gossip: what it has, so gossip to it carries only what it lacks and entries known to be
//!   everywhere leave the log. A row is *replaced* by each report, never merged: an RM that
//!   lost power lost the gossip it had not synced and reports less than before, and must be
//!   sent those entries again (an entry already folded everywhere reaches it in the base of
//!   the state transfer it gets on rejoining).
//!
//! # Where this goes past the notes, and why
//!
//! - **Per-origin order.** `value_ts[j] = k` must mean "updates 1..k of RM j are applied"
//!   for `prev <= value_ts` to prove a query sees everything its front end saw. An update is
//!   therefore applied when its `prev` is covered *and* its origin's previous update is
//!   applied; gossip carries each origin's updates in order, and the replica timestamp
//!   advances only over a contiguous run (a gap is noticed and asked for), instead of
//!   merging the sender's timestamp wholesale (sound only when a message carries the
//!   sender's whole log, which a bounded batch does not).
//! - **Convergence with operations that do not commute.** Causal order alone lets two RMs
//!   apply concurrent puts of one key in different orders and stay different forever. Each
//!   update also gets a Lamport number (larger than any the accepting RM or the front end
//!   has seen), and the value is the updates applied *in (Lamport, origin) order*, a total
//!   order that extends causality: an update that arrives late and sorts before updates
//!   already applied makes the RM replay its unfolded updates from the *base* (the state of
//!   the updates removed from the log). RMs holding the same updates hold the same value.
//!   An entry is folded into the base (and leaves the log) once (a) every replica is known
//!   to have received it and (b) this RM holds everything each replica had issued when it
//!   said so: no update that sorts before it can still arrive.
//! - **Durability.** Every entry entering the log is appended to the replica's log
//!   ([`ReplicaLog`]) and nothing leaves the RM (replies, gossip) until the records behind
//!   it are synced (group commit at the next tick): a restarted RM never reuses an update
//!   number another RM or a front end has seen.
//! - **Serving while cut off.** The core answers from its own state whatever the group is
//!   doing ([`ReplicaCore::available_while_blocked`]): blocked in a minority, rejoining
//!   after being excluded, or restarted from its data directory and not yet back in its
//!   group (a disconnected laptop: before its first view it serves from the state it
//!   recovered; a replica that recovered nothing waits for the group's). A state transfer it receives on rejoining is *merged* (logs
//!   united, the further-folded base kept, the value replayed), never restored over what it
//!   accepted while cut off.
//!
//! # Update classes
//!
//! Only the notes' *causal* updates are offered. *Forced* updates (a total order among
//! themselves) and *immediate* ones (total order with every update, the kind a bank
//! transfer needs) would ride on viewsync's total-order multicast, which a member cut off
//! from the majority cannot use: the group blocks there, which is the opposite of what this
//! strategy is for, and the strongly consistent strategies (`passive`, `active`) already give
//! that order. `docs/ARCHITECTURE.md` (decision 31) says more.
//!
//! # Read-only replicas
//!
//! An RM configured `read_only` refuses updates (`NotPrimary` with no address: the front end
//! tries another RM) and receives updates only by gossip; it answers queries.
//!
//! # Bounds
//!
//! The log holds at most `log_max` entries: an update beyond that is refused
//! `Busy(Overloaded)` (nothing changed), and gossip entries beyond it are dropped and asked
//! for again later. Queries waiting for gossip: at most `waiting_max`, beyond that refused
//! `Busy(Overloaded)`. The executed table keeps one entry per client (its latest request
//! applied), at most `clients_max`; beyond that the client applied longest ago (in the total
//! order, so every RM evicts the same one) is forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{BusyReason, Refusal};
use viewsync::{GroupName, ProcessId};

use super::{
    decode, decode_request, encode, Action, CausalToken, ReplicaCore, ReplicaLog, Reply, Request,
    RequestId, StoreError, VectorClock,
};
use crate::replication::store::Recovered;
use crate::state_machine::StateMachine;

/// A gossip replica manager's configuration. Every RM of a group uses the same `machine`
/// and `clients_max` (the executed table's evictions must match).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipConfig {
    /// This member.
    pub me: ProcessId,
    /// The group it serves.
    pub group: GroupName,
    /// The state machine's name in requests.
    pub machine: String,
    /// How often it gossips to each member of its view.
    pub gossip_interval: Duration,
    /// Update log entries per gossip message at most.
    pub batch_max: usize,
    /// Whether it refuses updates (a read-only replica: updated only by gossip).
    pub read_only: bool,
    /// Update log entries at most (then updates are refused `Busy(Overloaded)`).
    pub log_max: usize,
    /// Queries waiting for gossip at most.
    pub waiting_max: usize,
    /// Clients in the executed table at most.
    pub clients_max: usize,
    /// Records in its storage between compactions (a snapshot of the whole state).
    pub snapshot_every: u64,
}

impl GossipConfig {
    /// Gossip every 100 ms, 256 entries per message, 100,000 log entries, 1,024 waiting
    /// queries, 100,000 clients, a snapshot every 1,000 records.
    pub fn new(me: ProcessId, group: GroupName, machine: impl Into<String>) -> Self {
        GossipConfig {
            me,
            group,
            machine: machine.into(),
            gossip_interval: Duration::from_millis(100),
            batch_max: 256,
            read_only: false,
            log_max: 100_000,
            waiting_max: 1024,
            clients_max: 100_000,
            snapshot_every: 1000,
        }
    }
}

/// An update in the log: the notes' `<RM id, vector timestamp, update, prev, operation id>`
/// and the Lamport number that places it in the total order the value is built in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry<Op> {
    /// The RM that accepted it from a front end.
    pub origin: u64,
    /// Its number at that RM (`ts[origin]`).
    pub seq: u64,
    /// Its Lamport number.
    pub lamport: u64,
    /// Its vector timestamp: `prev` with the origin's entry set to `seq`.
    pub ts: VectorClock,
    /// What its front end had seen.
    pub prev: VectorClock,
    /// The request.
    pub id: RequestId,
    /// The operation.
    pub op: Op,
}

impl<Op> LogEntry<Op> {
    fn order(&self) -> (u64, u64) {
        (self.lamport, self.origin)
    }
}

/// What gossip RMs send each other (point to point).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage<Op> {
    /// The sender's replica timestamp and log entries the receiver seems to lack, each
    /// origin's in order.
    Gossip {
        /// The sender's replica timestamp.
        replica_ts: VectorClock,
        /// Entries.
        entries: Vec<LogEntry<Op>>,
    },
    /// "I miss updates": the sender's replica timestamp; the receiver gossips to it now.
    Missing {
        /// The sender's replica timestamp.
        replica_ts: VectorClock,
    },
}

/// A record in the replica's storage.
#[derive(Serialize, Deserialize)]
enum Record<Op> {
    /// An entry entered the log.
    Entry(LogEntry<Op>),
}

/// The executed operation table: per client, its latest request applied and where in the
/// total order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Executed {
    /// client -> (latest sequence number applied, its order key).
    latest: BTreeMap<u64, (u64, (u64, u64))>,
}

impl Executed {
    fn has(&self, id: RequestId) -> bool {
        self.latest
            .get(&id.client)
            .is_some_and(|(seq, _)| *seq >= id.seq)
    }

    fn record(&mut self, id: RequestId, order: (u64, u64), clients_max: usize) {
        self.latest.insert(id.client, (id.seq, order));
        if self.latest.len() > clients_max {
            let oldest = self
                .latest
                .iter()
                .min_by_key(|(_, (_, order))| *order)
                .map(|(client, _)| *client)
                .expect("not empty");
            self.latest.remove(&oldest);
        }
    }
}

/// The whole state, as a snapshot (for joiners, compaction and merging).
#[derive(Serialize, Deserialize)]
struct Snapshot<Op> {
    base: Bytes,
    base_ts: VectorClock,
    base_executed: Executed,
    log: Vec<LogEntry<Op>>,
    replica_ts: VectorClock,
    ts_table: BTreeMap<u64, VectorClock>,
    replicas: BTreeSet<u64>,
    lamport: u64,
}

/// What a gossip RM counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Updates accepted from front ends.
    pub updates: u64,
    /// Queries answered.
    pub queries: u64,
    /// Queries that had to wait for gossip before answering.
    pub queries_waited: u64,
    /// Gossip messages sent.
    pub gossip_sent: u64,
    /// Entries received by gossip that were new here.
    pub entries_received: u64,
    /// Gaps noticed (an entry whose origin's predecessor is missing, or a query waiting for
    /// updates not here) and asked for.
    pub gaps_noticed: u64,
    /// Replays of the value from the base (an update that sorts before applied ones came).
    pub replays: u64,
    /// Entries folded into the base and removed from the log.
    pub folded: u64,
    /// Duplicate updates (the same request logged twice) skipped when applied.
    pub duplicates_skipped: u64,
    /// Requests served while the group was blocked (between a `Block` and the next view).
    pub served_while_blocked: u64,
    /// State transfers merged into this RM's state.
    pub restores_merged: u64,
    /// Updates refused because the log was full.
    pub refused_log_full: u64,
}

/// The gossip replica manager's core (see the [module documentation](self)).
pub struct GossipReplica<S: StateMachine> {
    config: GossipConfig,
    log_store: Box<dyn ReplicaLog>,
    /// Records written to `log_store` (its last index).
    records: u64,
    records_since_snapshot: u64,
    // --- the notes' state components ---
    replica_ts: VectorClock,
    log: BTreeMap<(u64, u64), LogEntry<S::Operation>>,
    executed: Executed,
    value: S,
    value_ts: VectorClock,
    ts_table: BTreeMap<u64, VectorClock>,
    // --- the base the value is replayed from, and the total order ---
    base: S,
    base_ts: VectorClock,
    base_executed: Executed,
    /// The order key of the last entry applied to `value` (a smaller one forces a replay).
    applied_upto: Option<(u64, u64)>,
    /// The largest Lamport number seen.
    lamport: u64,
    /// Where each logged request is (to answer a retransmission from its entry).
    logged_ids: HashMap<RequestId, (u64, u64)>,
    /// Every node seen in a view: the replicas whose knowledge removes entries from the log.
    replicas: BTreeSet<u64>,
    /// The other members of the latest view (gossip goes to them).
    peers: Vec<ProcessId>,
    in_view: bool,
    /// Whether this replica started from a durable state of its own (a restart): it then
    /// serves its clients before its first view, as it would cut off from the group.
    recovered: bool,
    blocked: bool,
    waiting: Vec<(ReplyTo, Request<S::Operation>)>,
    /// Answers held until the records behind them are synced.
    held: Vec<Action>,
    last_gossip: Duration,
    /// Members that asked for gossip since the last tick.
    asked: Vec<ProcessId>,
    /// Rotates which origin a size-limited gossip message starts with.
    rotation: usize,
    stats: GossipStats,
}

impl<S: StateMachine> GossipReplica<S> {
    /// A replica manager recovering from its storage (`recovered`; empty at the first start)
    /// with `initial` as the state before any update.
    pub fn recover(
        config: GossipConfig,
        log_store: Box<dyn ReplicaLog>,
        recovered: Recovered,
        initial: S,
    ) -> Result<Self, StoreError> {
        let base_bytes = initial.snapshot();
        let mut replica = GossipReplica {
            config,
            log_store,
            records: 0,
            records_since_snapshot: 0,
            replica_ts: VectorClock::default(),
            log: BTreeMap::new(),
            executed: Executed::default(),
            value: restore::<S>(&base_bytes)?,
            value_ts: VectorClock::default(),
            ts_table: BTreeMap::new(),
            base: initial,
            base_ts: VectorClock::default(),
            base_executed: Executed::default(),
            applied_upto: None,
            lamport: 0,
            logged_ids: HashMap::new(),
            replicas: BTreeSet::new(),
            peers: Vec::new(),
            in_view: false,
            recovered: recovered.snapshot.is_some() || !recovered.records.is_empty(),
            blocked: false,
            waiting: Vec::new(),
            held: Vec::new(),
            last_gossip: Duration::ZERO,
            asked: Vec::new(),
            rotation: 0,
            stats: GossipStats::default(),
        };
        replica.replicas.insert(replica.me());
        if let Some((index, snapshot)) = &recovered.snapshot {
            replica.merge_snapshot(snapshot)?;
            replica.records = *index;
        }
        for (index, record) in &recovered.records {
            let Record::Entry(entry) = decode::<Record<S::Operation>>(record)
                .map_err(|e| StoreError(format!("gossip log record {index}: {e}")))?;
            replica.insert_entry(entry);
            replica.records = *index;
        }
        replica.apply_stable();
        Ok(replica)
    }

    fn me(&self) -> u64 {
        self.config.me.node.0
    }

    /// The value (the state machine's state).
    pub fn value(&self) -> &S {
        &self.value
    }

    /// The value timestamp.
    pub fn value_ts(&self) -> &VectorClock {
        &self.value_ts
    }

    /// The replica timestamp.
    pub fn replica_ts(&self) -> &VectorClock {
        &self.replica_ts
    }

    /// Entries in the update log.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Clients in the executed table.
    pub fn executed_len(&self) -> usize {
        self.executed.latest.len()
    }

    /// Queries waiting for gossip.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// What it counted.
    pub fn stats(&self) -> GossipStats {
        self.stats
    }

    /// The token of the value: its timestamp and the largest Lamport number applied.
    fn value_token(&self) -> CausalToken {
        // The largest Lamport number seen bounds every update the value holds.
        CausalToken {
            prev: self.value_ts.clone(),
            lamport: self.lamport,
        }
    }

    /// Answers (held until synced when records wait).
    fn answer(&mut self, to: ReplyTo, outcome: viewsync::wire::Outcome, out: &mut Vec<Action>) {
        let action = Action::Reply { to, outcome };
        if self.log_store.needs_sync() {
            self.held.push(action);
        } else {
            out.push(action);
        }
    }

    fn refuse(&mut self, to: ReplyTo, refusal: Refusal, out: &mut Vec<Action>) {
        out.push(Action::Reply {
            to,
            outcome: Err(refusal),
        });
    }

    fn on_request(&mut self, request: &ClientRequest, out: &mut Vec<Action>) {
        let to = request.reply;
        if request.group != self.config.group {
            return self.refuse(to, Refusal::NoService, out);
        }
        // A replica that knows nothing yet waits for the group's state; one restarted from
        // its own serves from it (its update numbers survived on disk: none is reused).
        if !self.in_view && !self.recovered {
            return self.refuse(to, Refusal::Busy(BusyReason::Joining), out);
        }
        let request: Request<S::Operation> =
            match decode_request(&request.payload, &self.config.machine) {
                Ok(request) => request,
                Err(refusal) => return self.refuse(to, refusal, out),
            };
        if self.blocked {
            self.stats.served_while_blocked += 1;
        }
        if S::is_read_only(&request.op) {
            self.on_query(to, request, out);
        } else {
            self.on_update(to, request, out);
        }
    }

    fn on_query(&mut self, to: ReplyTo, request: Request<S::Operation>, out: &mut Vec<Action>) {
        let prev = request.causal.clone().unwrap_or_default().prev;
        if prev.le(&self.value_ts) {
            return self.answer_query(to, &request, out);
        }
        if self.waiting.len() >= self.config.waiting_max {
            return self.refuse(to, Refusal::Busy(BusyReason::Overloaded), out);
        }
        self.stats.queries_waited += 1;
        // Noticed missing updates: ask the RMs that accepted them (or everyone) for gossip.
        if !prev.le(&self.replica_ts) {
            self.stats.gaps_noticed += 1;
            self.ask_for_missing(&prev, out);
        }
        self.waiting.push((to, request));
    }

    fn answer_query(
        &mut self,
        to: ReplyTo,
        request: &Request<S::Operation>,
        out: &mut Vec<Action>,
    ) {
        // A read-only operation leaves the value as it is.
        let output = self.value.apply(&request.op);
        self.stats.queries += 1;
        let reply = Reply {
            id: request.id,
            position: self.value_ts.sum(),
            output,
            causal: Some(self.value_token()),
        };
        self.answer(to, Ok(encode(&reply)), out);
    }

    fn on_update(&mut self, to: ReplyTo, request: Request<S::Operation>, out: &mut Vec<Action>) {
        if self.config.read_only {
            return self.refuse(to, Refusal::NotPrimary { primary: None }, out);
        }
        let token = request.causal.clone().unwrap_or_default();
        // The output is *tentative*: the operation on this RM's value now. Its effect is
        // applied later, in the total order, where a state-dependent output may differ.
        let Some(output) = self.value.preview(&request.op) else {
            tracing::error!("gossip replica value does not restore for a tentative output");
            return self.refuse(to, Refusal::Busy(BusyReason::Overloaded), out);
        };
        // Seen before (a retransmission): the same answer, nothing logged again.
        let known = self
            .logged_ids
            .get(&request.id)
            .and_then(|order| self.log.get(order))
            .map(|e| CausalToken {
                prev: e.ts.clone(),
                lamport: e.lamport,
            });
        let token_out = match known {
            Some(token) => token,
            None if self.executed.has(request.id) => self.value_token(),
            None => {
                if self.log.len() >= self.config.log_max {
                    self.stats.refused_log_full += 1;
                    return self.refuse(to, Refusal::Busy(BusyReason::Overloaded), out);
                }
                let me = self.me();
                let seq = self.replica_ts.get(me) + 1;
                let lamport = self.lamport.max(token.lamport) + 1;
                let mut ts = token.prev.clone();
                ts.set(me, seq);
                let entry = LogEntry {
                    origin: me,
                    seq,
                    lamport,
                    ts: ts.clone(),
                    prev: token.prev,
                    id: request.id,
                    op: request.op,
                };
                if let Err(e) = self.persist(&entry) {
                    tracing::error!("gossip replica storage: {e}");
                    return self.refuse(to, Refusal::Busy(BusyReason::Overloaded), out);
                }
                self.insert_entry(entry);
                self.stats.updates += 1;
                self.apply_stable();
                self.answer_waiting(out);
                CausalToken { prev: ts, lamport }
            }
        };
        let reply = Reply {
            id: request.id,
            position: token_out.prev.sum(),
            output,
            causal: Some(token_out),
        };
        self.answer(to, Ok(encode(&reply)), out);
    }

    /// Appends an entry to the storage (synced at the next tick).
    fn persist(&mut self, entry: &LogEntry<S::Operation>) -> Result<(), StoreError> {
        self.records += 1;
        self.records_since_snapshot += 1;
        self.log_store
            .append(self.records, &encode(&Record::Entry(entry.clone())))
    }

    /// Puts an entry in the log, if it is the next of its origin here (else it is old news
    /// or past a gap). Returns whether it was new.
    fn insert_entry(&mut self, entry: LogEntry<S::Operation>) -> bool {
        // An RM that accepted an update is a replica whose knowledge counts.
        self.replicas.insert(entry.origin);
        let next = self.replica_ts.get(entry.origin) + 1;
        if entry.seq != next || entry.seq <= self.base_ts.get(entry.origin) {
            return false;
        }
        self.replica_ts.set(entry.origin, entry.seq);
        self.lamport = self.lamport.max(entry.lamport);
        let order = entry.order();
        self.logged_ids.insert(entry.id, order);
        self.log.insert(order, entry);
        true
    }

    fn is_applied(&self, entry: &LogEntry<S::Operation>) -> bool {
        entry.seq <= self.value_ts.get(entry.origin)
    }

    /// Applies every stable entry (its `prev` covered, its origin's predecessor applied), in
    /// the total order; replays from the base when one sorts before entries applied already.
    fn apply_stable(&mut self) {
        let mut replay = false;
        loop {
            let mut progressed = false;
            let stable: Vec<(u64, u64)> = self
                .log
                .iter()
                .filter(|(_, e)| {
                    !self.is_applied(e)
                        && e.seq == self.value_ts.get(e.origin) + 1
                        && e.prev.le(&self.value_ts)
                })
                .map(|(order, _)| *order)
                .collect();
            for order in stable {
                let entry = &self.log[&order];
                // Re-check: an earlier one of this pass may have changed the origin's entry.
                if entry.seq != self.value_ts.get(entry.origin) + 1
                    || !entry.prev.le(&self.value_ts)
                {
                    continue;
                }
                let (origin, seq) = (entry.origin, entry.seq);
                self.value_ts.set(origin, seq);
                progressed = true;
                if self.applied_upto.is_some_and(|upto| order < upto) {
                    replay = true;
                } else if !replay {
                    self.apply_to_value(order);
                    self.applied_upto = Some(order);
                }
            }
            if !progressed {
                break;
            }
        }
        if replay {
            self.replay();
        }
    }

    fn apply_to_value(&mut self, order: (u64, u64)) {
        let entry = &self.log[&order];
        if self.executed.has(entry.id) {
            self.stats.duplicates_skipped += 1;
            return;
        }
        self.value.apply(&entry.op);
        self.executed
            .record(entry.id, order, self.config.clients_max);
    }

    /// Rebuilds the value from the base and every applied entry, in order.
    fn replay(&mut self) {
        self.stats.replays += 1;
        self.value =
            restore::<S>(&self.base.snapshot()).expect("a state machine restores its own snapshot");
        self.executed = self.base_executed.clone();
        self.applied_upto = None;
        let applied: Vec<(u64, u64)> = self
            .log
            .iter()
            .filter(|(_, e)| self.is_applied(e))
            .map(|(order, _)| *order)
            .collect();
        for order in applied {
            self.apply_to_value(order);
            self.applied_upto = Some(order);
        }
    }

    /// Removes from the log the entries every replica has, as long as nothing that sorts
    /// before them can still arrive (see the module documentation), folding them into the
    /// base.
    fn fold(&mut self) {
        if !self.in_view {
            return;
        }
        let me = self.me();
        let everyone_reported = self.replicas.iter().all(|&j| {
            j == me
                || self
                    .ts_table
                    .get(&j)
                    .is_some_and(|t| self.replica_ts.get(j) >= t.get(j))
        });
        if !everyone_reported {
            return;
        }
        while let Some((&order, entry)) = self.log.iter().next() {
            let everywhere = self.replicas.iter().all(|&j| {
                j == me
                    || self
                        .ts_table
                        .get(&j)
                        .is_some_and(|t| t.get(entry.origin) >= entry.seq)
            });
            if !self.is_applied(entry) || !everywhere {
                break;
            }
            let entry = self.log.remove(&order).expect("first entry");
            self.logged_ids.remove(&entry.id);
            if !self.base_executed.has(entry.id) {
                self.base.apply(&entry.op);
                self.base_executed
                    .record(entry.id, order, self.config.clients_max);
            }
            self.base_ts.set(entry.origin, entry.seq);
            self.stats.folded += 1;
        }
    }

    /// Answers the queries whose `prev` the value now covers.
    fn answer_waiting(&mut self, out: &mut Vec<Action>) {
        if self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for (to, request) in waiting {
            let prev = request.causal.clone().unwrap_or_default().prev;
            if prev.le(&self.value_ts) {
                self.answer_query(to, &request, out);
            } else {
                self.waiting.push((to, request));
            }
        }
    }

    fn ask_for_missing(&mut self, wanted: &VectorClock, out: &mut Vec<Action>) {
        let message = encode(&GossipMessage::<S::Operation>::Missing {
            replica_ts: self.replica_ts.clone(),
        });
        // The RMs that accepted what is missing, if they are members; else every member.
        let holders: Vec<ProcessId> = self
            .peers
            .iter()
            .filter(|p| wanted.get(p.node.0) > self.replica_ts.get(p.node.0))
            .copied()
            .collect();
        let targets = if holders.is_empty() {
            self.peers.clone()
        } else {
            holders
        };
        for to in targets {
            out.push(Action::Send {
                to,
                payload: message.clone(),
            });
        }
    }

    fn on_direct(&mut self, from: ProcessId, payload: &[u8], out: &mut Vec<Action>) {
        let message = match decode::<GossipMessage<S::Operation>>(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(%from, "gossip message does not decode: {e}");
                return;
            }
        };
        let sender = from.node.0;
        // Before its first view a replica knows neither the group's state nor its members:
        // it must not fold by a timestamp table that leaves replicas out.
        if !self.in_view {
            return;
        }
        // Whoever gossips is a replica whose knowledge decides what leaves the log.
        self.replicas.insert(sender);
        match message {
            GossipMessage::Missing { replica_ts } => {
                self.ts_table.insert(sender, replica_ts);
                // Answered at the next tick, once this RM's own entries are synced.
                if !self.asked.contains(&from) && self.asked.len() < self.peers.len().max(1) * 2 {
                    self.asked.push(from);
                }
            }
            GossipMessage::Gossip {
                replica_ts,
                entries,
            } => {
                // Replaced, not merged: a replica that lost power lost the entries it had
                // received and not synced, and must be sent them again.
                self.ts_table.insert(sender, replica_ts.clone());
                let mut gap = false;
                for entry in entries {
                    let (origin, seq) = (entry.origin, entry.seq);
                    if seq <= self.replica_ts.get(origin) {
                        continue;
                    }
                    if seq > self.replica_ts.get(origin) + 1
                        || self.log.len() >= self.config.log_max
                    {
                        gap = true;
                        continue;
                    }
                    if let Err(e) = self.persist(&entry) {
                        tracing::error!("gossip replica storage: {e}");
                        return;
                    }
                    self.insert_entry(entry);
                    self.stats.entries_received += 1;
                }
                // The sender has more than it sent (or sent past a gap): ask again.
                if gap || !replica_ts.le(&self.replica_ts) && !self.log_full() {
                    if gap {
                        self.stats.gaps_noticed += 1;
                    }
                    out.push(Action::Send {
                        to: from,
                        payload: encode(&GossipMessage::<S::Operation>::Missing {
                            replica_ts: self.replica_ts.clone(),
                        }),
                    });
                }
                self.apply_stable();
                self.answer_waiting(out);
                self.fold();
            }
        }
    }

    fn log_full(&self) -> bool {
        self.log.len() >= self.config.log_max
    }

    /// A gossip message to `to`: this RM's replica timestamp and up to `batch_max` entries
    /// its timestamp-table row says `to` lacks, each origin's in order.
    fn gossip_for(&mut self, to: ProcessId) -> Option<Action> {
        let known = self.ts_table.get(&to.node.0).cloned().unwrap_or_default();
        let mut by_origin: BTreeMap<u64, Vec<&LogEntry<S::Operation>>> = BTreeMap::new();
        for entry in self.log.values() {
            if entry.seq > known.get(entry.origin) {
                by_origin.entry(entry.origin).or_default().push(entry);
            }
        }
        let origins: Vec<u64> = by_origin.keys().copied().collect();
        let mut entries = Vec::new();
        if !origins.is_empty() {
            self.rotation = self.rotation.wrapping_add(1);
            let start = self.rotation % origins.len();
            'fill: for k in 0..origins.len() {
                let mut run = by_origin
                    .remove(&origins[(start + k) % origins.len()])
                    .expect("listed");
                run.sort_by_key(|e| e.seq);
                for entry in run {
                    if entries.len() >= self.config.batch_max {
                        break 'fill;
                    }
                    entries.push(entry.clone());
                }
            }
        }
        self.stats.gossip_sent += 1;
        Some(Action::Send {
            to,
            payload: encode(&GossipMessage::Gossip {
                replica_ts: self.replica_ts.clone(),
                entries,
            }),
        })
    }

    fn on_view(&mut self, change: &viewsync::view::ViewChange) {
        self.in_view = true;
        self.blocked = false;
        let me = self.config.me;
        self.peers = change
            .view
            .members
            .iter()
            .map(|m| m.id)
            .filter(|id| id.node != me.node)
            .collect();
        for member in &change.view.members {
            self.replicas.insert(member.id.node.0);
        }
    }

    fn snapshot_value(&self) -> Snapshot<S::Operation> {
        let mut ts_table = self.ts_table.clone();
        ts_table.insert(self.me(), self.replica_ts.clone());
        Snapshot {
            base: self.base.snapshot(),
            base_ts: self.base_ts.clone(),
            base_executed: self.base_executed.clone(),
            log: self.log.values().cloned().collect(),
            replica_ts: self.replica_ts.clone(),
            ts_table,
            replicas: self.replicas.clone(),
            lamport: self.lamport,
        }
    }

    /// Merges another RM's snapshot (a state transfer, or this RM's own compaction snapshot
    /// at recovery): the further-folded base, the union of the logs, the larger timestamps;
    /// then the value is replayed. Nothing this RM accepted is dropped.
    fn merge_snapshot(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let other: Snapshot<S::Operation> =
            decode(bytes).map_err(|e| StoreError(format!("gossip snapshot: {e}")))?;
        let theirs_further = self.base_ts.le(&other.base_ts);
        if !theirs_further && !other.base_ts.le(&self.base_ts) {
            // Two folds that are not prefixes of one order: cannot happen when every RM
            // folds by the rule; keep ours and say so.
            tracing::warn!(
                mine = %self.base_ts,
                theirs = %other.base_ts,
                "gossip bases not ordered; keeping this replica's"
            );
        }
        if theirs_further {
            self.base = restore::<S>(&other.base)?;
            self.base_ts = other.base_ts.clone();
            self.base_executed = other.base_executed.clone();
        }
        // The log: ours past the base, then theirs, each origin contiguous from the base.
        let mine: Vec<LogEntry<S::Operation>> =
            std::mem::take(&mut self.log).into_values().collect();
        self.logged_ids.clear();
        let mut all: Vec<LogEntry<S::Operation>> = mine.into_iter().chain(other.log).collect();
        all.sort_by_key(|e| (e.origin, e.seq));
        all.dedup_by_key(|e| (e.origin, e.seq));
        self.replica_ts = self.base_ts.clone();
        for entry in all {
            self.insert_entry(entry);
        }
        // Whatever either side counted as received stays received (a gap the other side
        // folded is in the base).
        let mut received = self.replica_ts.clone();
        received.merge(&self.base_ts);
        self.replica_ts = received;
        for (node, ts) in other.ts_table {
            if node != self.me() {
                self.ts_table.entry(node).or_default().merge(&ts);
            }
        }
        self.replicas.extend(other.replicas);
        self.lamport = self.lamport.max(other.lamport);
        self.value_ts = self.base_ts.clone();
        self.applied_upto = None;
        self.replay();
        self.apply_stable();
        Ok(())
    }

    /// Compacts the storage into one snapshot of the whole state.
    fn compact(&mut self) -> Result<(), StoreError> {
        let snapshot = encode(&self.snapshot_value());
        self.log_store.save_snapshot(self.records, &snapshot)?;
        self.records_since_snapshot = 0;
        Ok(())
    }
}

fn restore<S: StateMachine>(bytes: &[u8]) -> Result<S, StoreError> {
    S::restore(bytes).map_err(|e| StoreError(format!("gossip replica state: {e}")))
}

impl<S: StateMachine> ReplicaCore for GossipReplica<S> {
    fn log_records(&self) -> Option<u64> {
        Some(self.log_len() as u64)
    }

    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        let mut out = Vec::new();
        match event {
            ServiceEvent::Request(request) => self.on_request(request, &mut out),
            ServiceEvent::Direct { from, payload, .. } => self.on_direct(*from, payload, &mut out),
            ServiceEvent::ViewChange { change, .. } => self.on_view(change),
            ServiceEvent::Block { .. } => self.blocked = true,
            ServiceEvent::Restore { state, .. } => {
                self.merge_snapshot(state)?;
                self.stats.restores_merged += 1;
                // What this RM holds now is durable before it serves from it.
                self.compact()?;
                self.answer_waiting(&mut out);
            }
            // Gossip RMs never multicast.
            ServiceEvent::Deliver { .. } => {}
        }
        Ok(out)
    }

    fn tick(&mut self, now: Duration) -> Result<Vec<Action>, StoreError> {
        if self.log_store.needs_sync() {
            self.log_store.sync()?;
        }
        let mut out = std::mem::take(&mut self.held);
        if self.records_since_snapshot >= self.config.snapshot_every {
            self.compact()?;
        }
        let asked = std::mem::take(&mut self.asked);
        if self.in_view && now >= self.last_gossip + self.config.gossip_interval {
            self.last_gossip = now;
            for to in self.peers.clone() {
                out.extend(self.gossip_for(to));
            }
            self.fold();
        } else {
            for to in asked {
                out.extend(self.gossip_for(to));
            }
        }
        Ok(out)
    }

    fn snapshot(&self) -> Bytes {
        encode(&self.snapshot_value())
    }

    fn needs_sync(&self) -> bool {
        self.log_store.needs_sync()
    }

    fn available_while_blocked(&self) -> bool {
        true
    }

    /// Gossip replicas differ at view boundaries by design; their convergence is checked by
    /// reading every replica once the faults stop.
    fn agreed_state(&self) -> Bytes {
        Bytes::new()
    }
}
