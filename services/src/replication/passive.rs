//! Passive (primary-backup) replication: the reference notes' sections 10 to 13, on view
//! synchronous group communication with safe delivery.
//!
//! # The five phases
//!
//! 1. **Request.** A front end sends a [`Request`] (unique [`RequestId`], machine, operation)
//!    to the primary. One that does not decode is refused as malformed.
//! 2. **Coordination.** The primary is `view.members[0]` of the current view: an agreed
//!    function of the view (its oldest member), so every member names the same primary
//!    without exchanging a message. Another member refuses with
//!    [`Refusal::NotPrimary`] naming the primary's address (except reads under
//!    [`ReadPolicy::AnyReplica`]). Before the first view a member answers `Busy(Joining)`,
//!    between a `Block` and the next view `Busy(ViewChange)`, and with `pending_max` requests
//!    in hand `Busy(Overloaded)`. The primary handles requests one at a time, in arrival
//!    order, and looks the id up first: an id it already executed is never executed again.
//! 3. **Execution.** The primary executes each new request at once, atomically, on a
//!    *speculative* copy of the state, so it can order the next requests without waiting for
//!    the previous ones to be agreed, and keeps the output as the stored response.
//! 4. **Agreement.** It multicasts [`PassiveMessage::Update`] (position, id, operation,
//!    response). Every member, the primary included, applies an update to its *committed*
//!    state when the group *delivers* it, checks the output against the primary's response
//!    (a difference means a nondeterministic state machine: logged and counted), records the
//!    id and response in the executed table, and appends the update to its log. Delivery is
//!    safe (no member delivers a message before every member holds it), so an update
//!    delivered anywhere survives any member's crash.
//! 5. **Response.** The primary answers an update's front end once the update is delivered
//!    at the primary and, with `quorum_durability`, durable (synced to the log) at a
//!    majority of the view's voters, the primary counted: backups report their durable
//!    position with [`PassiveMessage::Durable`]. Safe delivery alone protects against
//!    crashes; the quorum also protects against a power loss that wipes what a minority had
//!    not synced.
//!
//! # Reads
//!
//! Under [`ReadPolicy::Primary`] (linearizable), a read is executed at arrival on the
//! speculative state (it changes nothing), so it sees every update ordered before it, and is
//! then *ordered through the primary's stream*: the primary multicasts a
//! [`PassiveMessage::Read`] marker (not logged, no position) and answers when the marker is
//! delivered (and, with `quorum_durability`, when every update the read saw is durable at a
//! majority). Answering at once would be wrong: a primary cut off from the group does not
//! know it is deposed, and meanwhile the other members may install a view without it, elect
//! the next primary and acknowledge writes the old primary never sees; its read would
//! return a stale value after a newer write completed. Its marker, though, can never be
//! delivered: safe delivery delivers nothing until every member of the view holds it, and
//! the members that moved on never will; view synchrony then delivers the marker in the old
//! view only if the primary survives into the next one together with the others. A
//! delivered marker therefore proves that the primary was still the primary, with nothing
//! acknowledged behind its back, when the read was ordered.
//!
//! Under [`ReadPolicy::AnyReplica`] (`passive-backup-reads`), any member answers a read
//! from its *committed* state once it has applied the update at the request's `after`
//! position (the last update this front end saw), queueing it until then. Each front end
//! sees its own writes and a state that only moves forward, and every member applies the
//! same updates in the same order, so the service is **sequentially consistent, not
//! linearizable**: a backup may lag behind a write another client already had acknowledged
//! (the notes' section 13). Such a read may also observe an update that is delivered
//! everywhere but not yet durable at a majority. Writes still go to the primary.
//!
//! # Why speculation never leaks
//!
//! Only the primary's front ends ever see speculative effects, and only through answers
//! given after the update (or read marker) was delivered and made durable as above, by
//! which point it is committed. Everything else sees only the committed state, built from
//! *delivered* updates alone: [`ReplicaCore::snapshot`] (state transfer to joiners),
//! compaction snapshots, the log, and the backups (which apply what is delivered, never
//! what the primary executed). At a view change the primary's speculative state is reset to
//! the committed one (other members keep no speculative copy at all). A primary that survives a view change has had all the
//! updates it sent in the old view delivered before the new view (view synchrony), so the
//! reset loses nothing; a member excluded from the group rejoins as a new process and
//! receives a [`ServiceEvent::Restore`] of a committed state, replacing whatever it had.
//!
//! Each update carries the view its primary executed it in, and members apply an update only
//! if it is delivered in that view and sent by that view's primary. A multicast handed to
//! the middleware after its `Block` goes out in the next view, where its primary has already
//! rolled its speculative state back and reuses the position; every member sees the same
//! delivery in the same view, so every member skips the same stale updates.
//!
//! # At-most-once: the executed table
//!
//! Per client id the table keeps its latest executed sequence number, the stored response and
//! the update's position; it is part of the committed state (snapshots, state transfer,
//! recovery). A retransmission of that id is answered from the table; an id still in flight
//! at the primary gets the new reply handle added to the update's waiters; a sequence
//! number below the client's latest is refused as superseded (the front end already had its
//! answer). The table holds at most `clients_max` clients: beyond that the client whose
//! latest update is *oldest in the replicated sequence* is evicted. Recency is measured only
//! by delivered updates (never by reads or retransmissions, which are local), so every
//! member evicts the same client at the same position and the table stays identical
//! everywhere (and in snapshots). An evicted client that retransmits an old request gets
//! it executed again: `clients_max` must exceed the number of live front ends.
//!
//! # View changes
//!
//! On a view change every member syncs its log, so each member of an installed view holds
//! its state durably, and the backups report their durable position to the new primary. A
//! member that stops being primary answers everything it held with `NotPrimary` naming the
//! new primary; the front end retransmits the same id there, which answers from the table
//! (the update was delivered) or executes it (it was not, and never will be). These
//! refusals do not mean "not executed": front ends retry the same id.
//!
//! # Storage errors and refused updates
//!
//! A snapshot or record that does not decode is a [`StoreError`]: the replica never starts
//! from, or restores, an invented state. An update delivered at the wrong position (not the
//! next one) can only be a bug; it is logged, not applied, and the replica marks itself
//! *diverged*: it applies nothing more, answers what it held `Busy(Joining)`, and returns
//! an error, so its shell stops it (fail-stop, `viewsync node` exits with code 4): it can
//! never answer from a state that skipped an update. Restarted, it recovers its log (a
//! correct prefix) and rejoins by state transfer ([`PassiveStats::diverged`]).
//!
//! # Configuration
//!
//! Every member of a group must use the same `machine`, `quorum_durability`, `clients_max`
//! and `snapshot_every` (the group's configuration): the executed table's evictions, and
//! whether backups report durability, depend on them.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use viewsync::proto::multicast::Message as Delivered;
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{BusyReason, Refusal};
use viewsync::{GroupName, Member, ProcessId, View, ViewId};

use super::committed::{
    accept_request, group_commit_tick, handle_event, refuse, reply, store_error, superseded,
    Committed, CommittedCore, DurableReports, Formats, HeldReplies, Limits, QueuedReads,
    UpdateRecord,
};
use super::store::Recovered;
use super::{decode, encode, Action, ReplicaCore, ReplicaLog, Request, RequestId, StoreError};
use crate::state_machine::StateMachine;

/// How often a backup repeats its durable position to the primary (reports may be lost).
pub use super::committed::DURABLE_REPORT_INTERVAL;

/// The kind byte of a passive replica's snapshots (the state machine's own snapshot, the
/// position and the executed table, in the checksummed snapshot envelope).
pub const PASSIVE_SNAPSHOT_KIND: u8 = 16;

/// The kind byte of a passive replica's deltas (the update records after a position, in the
/// same checksummed envelope): a delta is never taken for a snapshot, nor the reverse.
pub const PASSIVE_DELTA_KIND: u8 = 17;

/// Which members answer read-only requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadPolicy {
    /// Only the primary, ordered through its stream: linearizable.
    #[default]
    Primary,
    /// Any member, from its committed state once it reached the request's `after` position
    /// (`passive-backup-reads`): sequentially consistent, not linearizable.
    AnyReplica,
}

/// A passive replica's configuration. All members of a group use the same values except `me`
/// (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassiveConfig {
    /// This member.
    pub me: ProcessId,
    /// The group it serves.
    pub group: GroupName,
    /// The state machine's name in requests (`"kv"` or `"bank"`).
    pub machine: String,
    /// Which members answer reads.
    pub reads: ReadPolicy,
    /// Answer updates only once durable at a majority of the voters (false in memory-only
    /// mode, where nothing is durable anyway).
    pub quorum_durability: bool,
    /// Client requests held (waiting for agreement, durability or a position) past which new
    /// ones are refused `Busy(Overloaded)`.
    pub pending_max: usize,
    /// Clients the executed table remembers (at least 1).
    pub clients_max: usize,
    /// Save a snapshot (and compact the log) every this many updates; 0: never.
    pub snapshot_every: u64,
    /// The most recent update records kept in memory to catch a restarted member up by a
    /// delta (the records after its recovered position) instead of the whole state; a
    /// member further behind gets the whole snapshot. 0: never serve a delta. About the
    /// records' size in memory (an update's encoding, tens to hundreds of bytes).
    pub catch_up_records: usize,
}

impl PassiveConfig {
    /// The default `pending_max`.
    pub const PENDING_MAX: usize = 4096;
    /// The default `clients_max`.
    pub const CLIENTS_MAX: usize = 65_536;
    /// The default `snapshot_every`.
    pub const SNAPSHOT_EVERY: u64 = 10_000;
    /// The default `catch_up_records`.
    pub const CATCH_UP_RECORDS: usize = 10_000;

    /// Linearizable reads at the primary, quorum durability, and the default limits.
    pub fn new(me: ProcessId, group: GroupName, machine: impl Into<String>) -> Self {
        PassiveConfig {
            me,
            group,
            machine: machine.into(),
            reads: ReadPolicy::Primary,
            quorum_durability: true,
            pending_max: Self::PENDING_MAX,
            clients_max: Self::CLIENTS_MAX,
            snapshot_every: Self::SNAPSHOT_EVERY,
            catch_up_records: Self::CATCH_UP_RECORDS,
        }
    }
}

/// What passive replicas send each other (bincode, [`encode`]). An `Update` is also the
/// record appended to the log, byte for byte as delivered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PassiveMessage<Op, Out> {
    /// Multicast by the primary: apply `op` at `index`; the primary's output was `response`.
    Update {
        /// The view the primary executed it in: members skip an update delivered in another
        /// view (it was handed to the middleware after the primary's `Block`).
        view: ViewId,
        /// Its position in the replicated sequence, from 1.
        index: u64,
        /// The request.
        id: RequestId,
        /// The operation.
        op: Op,
        /// The primary's output (the stored response).
        response: Out,
    },
    /// Multicast by the primary for a read under [`ReadPolicy::Primary`]: its delivery in
    /// `view` proves the primary was not deposed when the read was ordered.
    Read {
        /// The view the primary executed the read in.
        view: ViewId,
        /// The read request.
        id: RequestId,
    },
    /// Sent by a backup to the primary: its log is durable up to `index`.
    Durable {
        /// The highest durable position.
        index: u64,
    },
}

/// Counters of a passive replica since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassiveStats {
    /// Updates applied from deliveries (records replayed at recovery excluded).
    pub updates_applied: u64,
    /// Reads answered.
    pub reads: u64,
    /// Retransmissions answered from the executed table or joined to an update or read in
    /// flight.
    pub duplicates: u64,
    /// Updates whose output here differed from the primary's (a nondeterministic state
    /// machine), replayed records included.
    pub output_mismatches: u64,
    /// Client requests held now (waiting for agreement, durability or a position).
    pub waiters: usize,
    /// Clients evicted from the executed table.
    pub evicted_clients: u64,
    /// Delivered messages skipped: an update or read marker of another view or sender, or
    /// bytes that did not decode.
    pub skipped: u64,
    /// Whether an update was delivered out of position: the replica applies nothing more and
    /// serves nobody (see the module documentation).
    pub diverged: bool,
}

pub use super::committed::Restored;

/// An update the primary executed, until its waiters are answered.
struct PendingUpdate<Out> {
    id: RequestId,
    response: Out,
    waiters: Vec<ReplyTo>,
}

/// A read the primary executed, until its marker is delivered and what it saw is durable.
struct PendingRead<Out> {
    /// The position of the (speculative) state it read.
    position: u64,
    output: Out,
    waiters: Vec<ReplyTo>,
    delivered: bool,
}

/// A passive replica manager's core, sans IO (see the module documentation).
pub struct PassiveReplica<S: StateMachine> {
    config: PassiveConfig,
    /// The state after every delivered update, its log and executed table.
    committed: Committed<S>,
    /// At the primary: the committed state plus every update it executed and sent since
    /// (`None` at other members, which never execute anything speculatively: no second copy
    /// of the state).
    speculative: Option<S>,
    /// The last position assigned (the speculative state's position).
    spec_index: u64,
    /// Per client, the latest sequence number executed speculatively and not yet delivered.
    spec_latest: HashMap<u64, u64>,
    /// Updates with waiters, by position: sent and not yet delivered, or delivered and not
    /// yet durable at a majority.
    pending: BTreeMap<u64, PendingUpdate<S::Output>>,
    pending_ids: HashMap<RequestId, u64>,
    reads: BTreeMap<RequestId, PendingRead<S::Output>>,
    /// Reads whose marker was delivered, in delivery order (positions non-decreasing).
    ready_reads: VecDeque<RequestId>,
    /// Reads under `AnyReplica`, by the position they wait for.
    queued_reads: QueuedReads<S::Operation>,
    view: Option<View>,
    blocked: bool,
    /// When this backup last reported its durable position on its tick.
    last_durable_report: Option<std::time::Duration>,
    /// The highest durable position each other member reported.
    durable: DurableReports,
    /// Reply handles held (the `pending_max` bound).
    in_hand: HeldReplies,
    stats: PassiveStats,
}

type Message<S> = PassiveMessage<<S as StateMachine>::Operation, <S as StateMachine>::Output>;

/// The formats of a passive replica's snapshots and deltas.
const FORMATS: Formats = Formats {
    snapshot_kind: PASSIVE_SNAPSHOT_KIND,
    delta_kind: PASSIVE_DELTA_KIND,
    name: "passive",
};

/// Reads a passive log record: an [`PassiveMessage::Update`] at position `at`, byte for
/// byte as delivered.
fn decode_record<S: StateMachine>(
    at: u64,
    what: &str,
    record: &[u8],
) -> Result<UpdateRecord<S::Operation, S::Output>, StoreError> {
    let message: Message<S> = decode(record)
        .map_err(|e| store_error(format_args!("{what} {at} does not decode: {e}")))?;
    let PassiveMessage::Update {
        index,
        id,
        op,
        response,
        ..
    } = message
    else {
        return Err(store_error(format_args!("{what} {at} is not an update")));
    };
    if index != at {
        return Err(store_error(format_args!(
            "{what} {at} holds the update at {index}"
        )));
    }
    Ok(UpdateRecord {
        index,
        id,
        op,
        response,
    })
}

impl<S> PassiveReplica<S>
where
    S: StateMachine + Clone + Default,
{
    /// Starts from what the log held: the snapshot (if any), then every record replayed in
    /// order, rebuilding the state machine, the executed table and the position. With
    /// nothing recovered the state is `S::default()`. `log` is the storage `recovered` was
    /// read from (records continue after the last one). A snapshot or record that does not
    /// decode, or positions that do not follow each other, are an error.
    pub fn recover(
        config: PassiveConfig,
        log: Box<dyn ReplicaLog>,
        recovered: Recovered,
    ) -> Result<Self, StoreError> {
        let limits = Limits {
            clients_max: config.clients_max,
            snapshot_every: config.snapshot_every,
            catch_up_records: config.catch_up_records,
        };
        let (committed, replayed) =
            Committed::recover(FORMATS, limits, log, recovered, decode_record::<S>)?;
        let stats = PassiveStats {
            output_mismatches: replayed.output_mismatches,
            evicted_clients: replayed.evicted_clients,
            ..PassiveStats::default()
        };
        Ok(PassiveReplica {
            speculative: None,
            spec_index: committed.index,
            committed,
            spec_latest: HashMap::new(),
            pending: BTreeMap::new(),
            pending_ids: HashMap::new(),
            reads: BTreeMap::new(),
            ready_reads: VecDeque::new(),
            queued_reads: QueuedReads::default(),
            view: None,
            blocked: false,
            last_durable_report: None,
            durable: DurableReports::default(),
            in_hand: HeldReplies::new(config.pending_max),
            stats,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &PassiveConfig {
        &self.config
    }

    /// The position of the last update applied to the committed state.
    pub fn committed_index(&self) -> u64 {
        self.committed.index
    }

    /// The committed state (every delivered update, nothing speculative).
    pub fn state(&self) -> &S {
        &self.committed.state
    }

    /// The current view, once one was installed.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// The primary of the current view (its first member).
    pub fn primary(&self) -> Option<&Member> {
        self.view.as_ref().map(View::coordinator)
    }

    /// Whether this member is the primary of its current view.
    pub fn is_primary(&self) -> bool {
        self.primary().is_some_and(|p| p.id == self.config.me)
    }

    /// The counters.
    pub fn stats(&self) -> PassiveStats {
        PassiveStats {
            waiters: self.in_hand.count(),
            ..self.stats
        }
    }

    /// The highest position the primary may acknowledge: delivered here and, with quorum
    /// durability, durable at a majority of the view's voters (this member included).
    fn answerable(&self) -> u64 {
        if !self.config.quorum_durability {
            return self.committed.index;
        }
        let Some(view) = &self.view else { return 0 };
        let quorum =
            self.durable
                .quorum_position(view, self.config.me, self.committed.local_durable);
        quorum.min(self.committed.index)
    }

    /// At the primary: answers the updates and reads that became answerable.
    fn try_answer(&mut self, out: &mut Vec<Action>) {
        if !self.is_primary() {
            return;
        }
        let answerable = self.answerable();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > answerable {
                break;
            }
            let (index, update) = entry.remove_entry();
            self.pending_ids.remove(&update.id);
            self.in_hand
                .answer(update.waiters, update.id, index, &update.response, out);
        }
        while let Some(id) = self.ready_reads.front() {
            let position = self.reads.get(id).map_or(0, |r| r.position);
            if position > answerable {
                break;
            }
            let id = self.ready_reads.pop_front().expect("front exists");
            if let Some(read) = self.reads.remove(&id) {
                self.stats.reads += read.waiters.len() as u64;
                self.in_hand
                    .answer(read.waiters, id, read.position, &read.output, out);
            }
        }
    }

    /// Answers the `AnyReplica` reads whose position was reached.
    fn serve_queued_reads(&mut self, out: &mut Vec<Action>) {
        self.stats.reads +=
            self.committed
                .serve_reached_reads(&mut self.queued_reads, &mut self.in_hand, out);
    }

    /// A retransmission of the client's latest executed update: the stored response, at
    /// once if durable, else once it is.
    fn answer_from_table(&mut self, to: ReplyTo, id: RequestId, out: &mut Vec<Action>) {
        let done = self
            .committed
            .table
            .get(id.client)
            .expect("looked up")
            .clone();
        if done.index <= self.answerable() {
            self.stats.duplicates += 1;
            return reply(to, id, done.index, done.response, out);
        }
        if !self.in_hand.hold(to, out) {
            return;
        }
        self.stats.duplicates += 1;
        self.pending_ids.insert(id, done.index);
        self.pending
            .entry(done.index)
            .or_insert_with(|| PendingUpdate {
                id,
                response: done.response,
                waiters: Vec::new(),
            })
            .waiters
            .push(to);
    }

    /// A read under `AnyReplica`: from the committed state, once at the `after` position.
    fn read_committed(
        &mut self,
        to: ReplyTo,
        request: Request<S::Operation>,
        out: &mut Vec<Action>,
    ) {
        self.stats.reads +=
            self.committed
                .read_local(&mut self.queued_reads, &mut self.in_hand, to, request, out);
    }

    /// Phase 4 at every member: apply a delivered update to the committed state.
    fn apply_update(
        &mut self,
        index: u64,
        id: RequestId,
        op: &S::Operation,
        response: S::Output,
        record: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), StoreError> {
        let output = self.committed.state.apply(op);
        if output != response {
            tracing::error!(index, %id, ours = ?output, primary = ?response, "update output differs from the primary's: nondeterministic state machine");
            self.stats.output_mismatches += 1;
        }
        // The primary's response is what its front end gets, so every member stores it.
        self.stats.evicted_clients += self.committed.commit(index, id, response, record)?;
        self.stats.updates_applied += 1;
        if self.is_primary() {
            if self.spec_latest.get(&id.client) == Some(&id.seq) {
                self.spec_latest.remove(&id.client);
            }
            if self.pending.get(&index).is_some_and(|p| p.id != id) {
                tracing::error!(index, %id, "the primary's update at this position was another request");
            }
        }
        if !self.committed.log.needs_sync() {
            // Per-record fsync (or a snapshot just covered it): durable already. Otherwise
            // (group commit) it is at the next tick.
            self.now_durable(out);
        }
        self.try_answer(out);
        self.serve_queued_reads(out);
        Ok(())
    }

    /// An update arrived out of position: stop applying and serving (module documentation).
    fn diverge(&mut self, out: &mut Vec<Action>) {
        self.stats.diverged = true;
        self.drop_everything(&Refusal::Busy(BusyReason::Joining), out);
    }

    /// Refuses every held request with `refusal` and forgets the speculative work.
    fn drop_everything(&mut self, refusal: &Refusal, out: &mut Vec<Action>) {
        for (_, update) in std::mem::take(&mut self.pending) {
            self.in_hand.refuse(update.waiters, refusal, out);
        }
        self.pending_ids.clear();
        for (_, read) in std::mem::take(&mut self.reads) {
            self.in_hand.refuse(read.waiters, refusal, out);
        }
        self.ready_reads.clear();
        let queued = self.queued_reads.take_all();
        self.in_hand.refuse(queued, refusal, out);
        self.reset_speculation();
    }

    fn reset_speculation(&mut self) {
        self.speculative = self.is_primary().then(|| self.committed.state.clone());
        self.spec_index = self.committed.index;
        self.spec_latest.clear();
    }

    /// How the last state transfer to this replica went (`None` before any).
    pub fn last_restore(&self) -> Option<Restored> {
        self.committed.last_restore
    }

    /// Recounts the held reply handles (tests check the running count against it).
    #[cfg(test)]
    pub(crate) fn recount_waiters(&self) -> usize {
        self.pending
            .values()
            .map(|u| u.waiters.len())
            .sum::<usize>()
            + self.reads.values().map(|r| r.waiters.len()).sum::<usize>()
            + self.queued_reads.len()
    }
}

impl<S> CommittedCore for PassiveReplica<S>
where
    S: StateMachine + Clone + Default,
{
    type Machine = S;

    fn group(&self) -> &GroupName {
        &self.config.group
    }

    fn log(&mut self) -> &mut dyn ReplicaLog {
        &mut *self.committed.log
    }

    fn last_durable_report(&mut self) -> &mut Option<std::time::Duration> {
        &mut self.last_durable_report
    }

    fn on_block(&mut self) {
        self.blocked = true;
    }

    fn on_request(&mut self, request: &ClientRequest, out: &mut Vec<Action>) {
        let to = request.reply;
        let Some(request) =
            accept_request::<S::Operation>(request, &self.config.group, &self.config.machine, out)
        else {
            return;
        };
        if self.stats.diverged || self.view.is_none() {
            return refuse(to, Refusal::Busy(BusyReason::Joining), out);
        }
        if self.blocked {
            return refuse(to, Refusal::Busy(BusyReason::ViewChange), out);
        }
        let read = S::is_read_only(&request.op);
        if read && self.config.reads == ReadPolicy::AnyReplica {
            return self.read_committed(to, request, out);
        }
        if !self.is_primary() {
            let primary = self.primary().map(|p| p.addr);
            return refuse(to, Refusal::NotPrimary { primary }, out);
        }
        let id = request.id;
        // Phase 2: an id executed already is never executed again.
        if let Some(&index) = self.pending_ids.get(&id) {
            if self.in_hand.hold(to, out) {
                self.stats.duplicates += 1;
                self.pending
                    .get_mut(&index)
                    .expect("pending ids name pending updates")
                    .waiters
                    .push(to);
            }
            return;
        }
        if let Some(read) = self.reads.get_mut(&id) {
            // The same read, in flight: it takes effect once, at its marker's delivery.
            if self.in_hand.hold(to, out) {
                self.stats.duplicates += 1;
                read.waiters.push(to);
            }
            return;
        }
        let mut latest = self.spec_latest.get(&id.client).copied().unwrap_or(0);
        if let Some(done) = self.committed.table.get(id.client) {
            if done.seq == id.seq {
                return self.answer_from_table(to, id, out);
            }
            latest = latest.max(done.seq);
        }
        if id.seq < latest {
            return refuse(to, superseded(id, latest), out);
        }
        if !self.in_hand.hold(to, out) {
            return;
        }
        let view = self.view.as_ref().expect("a primary has a view").id;
        // Phase 3: execute at arrival on the speculative state.
        let speculative = self
            .speculative
            .get_or_insert_with(|| self.committed.state.clone());
        let output = speculative.apply(&request.op);
        if read {
            self.reads.insert(
                id,
                PendingRead {
                    position: self.spec_index,
                    output,
                    waiters: vec![to],
                    delivered: false,
                },
            );
            out.push(Action::Multicast(encode(&Message::<S>::Read { view, id })));
            return;
        }
        // Phase 4: agreement through the group.
        self.spec_index += 1;
        let index = self.spec_index;
        out.push(Action::Multicast(encode(&Message::<S>::Update {
            view,
            index,
            id,
            op: request.op,
            response: output.clone(),
        })));
        self.spec_latest.insert(id.client, id.seq);
        self.pending_ids.insert(id, index);
        self.pending.insert(
            index,
            PendingUpdate {
                id,
                response: output,
                waiters: vec![to],
            },
        );
    }

    fn on_deliver(&mut self, message: &Delivered, out: &mut Vec<Action>) -> Result<(), StoreError> {
        let decoded: Message<S> = match decode(&message.payload) {
            Ok(decoded) => decoded,
            Err(e) => {
                tracing::error!(sender = %message.sender, "delivered message does not decode: {e}");
                self.stats.skipped += 1;
                return Ok(());
            }
        };
        // Only the current view's primary's messages of this very view count (see the module
        // documentation); every member sees the same delivery in the same view.
        let current = self.view.as_ref().map(|v| (v.id, v.coordinator().id));
        let of_this_view = |view: ViewId| current == Some((view, message.sender));
        match decoded {
            PassiveMessage::Update {
                view,
                index,
                id,
                op,
                response,
            } => {
                if !of_this_view(view) {
                    tracing::debug!(%id, index, sender = %message.sender, "skipping an update of another view");
                    self.stats.skipped += 1;
                    return Ok(());
                }
                if self.stats.diverged {
                    return Ok(());
                }
                if index != self.committed.index + 1 {
                    tracing::error!(
                        index,
                        committed = self.committed.index,
                        %id,
                        "update delivered out of position: not applied; this replica stops serving until it rejoins"
                    );
                    self.diverge(out);
                    // Fail-stop: the shell stops this replica; restarted, it recovers its log
                    // (a correct prefix) and rejoins by state transfer.
                    return Err(StoreError(format!(
                        "update {index} delivered after {}: the replica diverged from the group's sequence",
                        self.committed.index
                    )));
                }
                self.apply_update(index, id, &op, response, &message.payload, out)?;
            }
            PassiveMessage::Read { view, id } => {
                if !of_this_view(view) || message.sender != self.config.me {
                    if !of_this_view(view) {
                        self.stats.skipped += 1;
                    }
                    return Ok(());
                }
                if let Some(read) = self.reads.get_mut(&id) {
                    if !read.delivered {
                        read.delivered = true;
                        self.ready_reads.push_back(id);
                        self.try_answer(out);
                    }
                }
            }
            PassiveMessage::Durable { .. } => {
                tracing::warn!(sender = %message.sender, "a durability report was multicast; ignored");
                self.stats.skipped += 1;
            }
        }
        Ok(())
    }

    fn on_view(&mut self, view: &View, out: &mut Vec<Action>) -> Result<(), StoreError> {
        let was_primary = self.is_primary();
        self.view = Some(view.clone());
        self.blocked = false;
        // Every member of an installed view holds its state durably.
        self.committed.log.sync()?;
        self.committed.local_durable = self.committed.index;
        self.durable.retain(view);
        let primary = *view.coordinator();
        if primary.id == self.config.me {
            // Whatever was sent and not delivered in the old view never will be (view
            // synchrony delivered everything sent before the `Block`): its front ends retry.
            let undelivered = self.pending.split_off(&(self.committed.index + 1));
            let busy = Refusal::Busy(BusyReason::ViewChange);
            for (index, update) in undelivered {
                tracing::warn!(index, id = %update.id, "update not delivered before the view change; its front end retries");
                self.pending_ids.remove(&update.id);
                self.in_hand.refuse(update.waiters, &busy, out);
            }
            let unordered: Vec<RequestId> = self
                .reads
                .iter()
                .filter(|(_, r)| !r.delivered)
                .map(|(id, _)| *id)
                .collect();
            for id in unordered {
                let read = self.reads.remove(&id).expect("listed");
                self.in_hand.refuse(read.waiters, &busy, out);
            }
            self.reset_speculation();
            if !was_primary {
                tracing::info!(view = %view.id, "this member is now the primary");
            }
            self.try_answer(out);
        } else {
            if was_primary {
                tracing::info!(view = %view.id, primary = %primary.id, "this member is no longer the primary");
            }
            let not_primary = Refusal::NotPrimary {
                primary: Some(primary.addr),
            };
            let queued = std::mem::take(&mut self.queued_reads);
            self.drop_everything(&not_primary, out);
            // Reads under `AnyReplica` stay: any member answers them.
            self.queued_reads = queued;
            if view.contains(self.config.me) {
                self.report_durable(out);
            }
        }
        Ok(())
    }

    fn on_direct(&mut self, from: ProcessId, payload: &[u8], out: &mut Vec<Action>) {
        match decode::<Message<S>>(payload) {
            Ok(PassiveMessage::Durable { index }) => {
                self.durable.report(from, index);
                self.try_answer(out);
            }
            Ok(_) => tracing::warn!(%from, "unexpected point-to-point message; ignored"),
            Err(e) => tracing::warn!(%from, "point-to-point message does not decode: {e}"),
        }
    }

    fn on_restore(&mut self, state: &[u8], out: &mut Vec<Action>) -> Result<(), StoreError> {
        self.committed.restore(state)?;
        self.drop_everything(&Refusal::Busy(BusyReason::ViewChange), out);
        self.stats.diverged = false;
        self.reset_speculation();
        Ok(())
    }

    /// A delta from `since` (this replica's recovered position, where it must still be):
    /// every record applied in order exactly as a delivered update (state, executed table,
    /// log), ending at the delta's `upto`. Anything that does not fit (another position, a
    /// record out of sequence, another history) is an error, checked before anything is
    /// applied: the replica never guesses a state.
    fn on_restore_delta(
        &mut self,
        since: u64,
        delta: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), StoreError> {
        let updates = self
            .committed
            .check_delta(since, delta, decode_record::<S>)?;
        self.drop_everything(&Refusal::Busy(BusyReason::ViewChange), out);
        for (update, record) in updates {
            let UpdateRecord {
                index,
                id,
                op,
                response,
            } = update;
            self.apply_update(index, id, &op, response, &record, out)?;
        }
        self.committed.finish_delta(since)?;
        self.stats.diverged = false;
        self.reset_speculation();
        Ok(())
    }

    /// The log was synced (or needs no sync): everything applied is durable here.
    fn now_durable(&mut self, out: &mut Vec<Action>) {
        if self.committed.local_durable == self.committed.index {
            return;
        }
        self.committed.local_durable = self.committed.index;
        if self.is_primary() {
            self.try_answer(out);
        } else {
            self.report_durable(out);
        }
    }

    /// Tells the primary how far this member's log is durable (backups, quorum mode).
    fn report_durable(&self, out: &mut Vec<Action>) {
        if !self.config.quorum_durability || self.is_primary() {
            return;
        }
        let Some(primary) = self.primary() else {
            return;
        };
        out.push(Action::Send {
            to: primary.id,
            payload: encode(&Message::<S>::Durable {
                index: self.committed.local_durable,
            }),
        });
    }
}

impl<S> ReplicaCore for PassiveReplica<S>
where
    S: StateMachine + Clone + Default,
{
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        handle_event(self, event)
    }

    fn tick(&mut self, now: std::time::Duration) -> Result<Vec<Action>, StoreError> {
        group_commit_tick(self, now)
    }

    fn snapshot(&self) -> Bytes {
        self.committed.snapshot()
    }

    fn needs_sync(&self) -> bool {
        self.committed.log.needs_sync()
    }

    /// The snapshot, its position remembered for `view`: a delta for `view`'s joiners ends
    /// there, however far this replica has gone on since.
    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        self.committed.snapshot_for(view)
    }

    /// The records `since + 1 ..=` the position of the snapshot for `view`, from the
    /// in-memory tail; `None` without that snapshot, with `since` past it, or once the tail
    /// no longer reaches back to `since + 1`.
    fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        self.committed.delta(view, since)
    }

    fn position(&self) -> Option<u64> {
        Some(self.committed.index)
    }

    fn log_records(&self) -> Option<u64> {
        self.committed.log.records_held()
    }
}
