//! Active replication (state machine replication), crash mode: the reference notes' sections
//! 14 to 16, on view synchronous group communication with total order and safe delivery.
//!
//! # The five phases
//!
//! 1. **Request.** A front end sends a [`Request`](super::Request) (unique [`RequestId`], machine, operation)
//!    to any member: every member plays the same role. One that does not decode is refused
//!    as malformed. Before the first view a member answers `Busy(Joining)`, between a
//!    `Block` and the next view `Busy(ViewChange)`, and with `pending_max` requests in hand
//!    `Busy(Overloaded)`.
//! 2. **Coordination.** The member multicasts the request ([`ActiveMessage::Request`]) to
//!    the group, whose total order (the view's sequencer) and safe delivery hand every member
//!    the same requests in the same order, each delivered once every member holds it.
//! 3. **Execution.** Every member executes each delivered request on its state, in delivery
//!    order: a deterministic state machine from the same state through the same sequence, so
//!    every member computes the same outputs. An update takes the next *position* (the log
//!    index), is recorded with its output in the executed table and appended to the log; a
//!    read changes nothing and takes the position of the state it read.
//! 4. **Agreement.** None is needed beyond the total order: every member executed the same
//!    requests in the same order.
//! 5. **Response.** The member the front end sent the request to answers it with the id, the
//!    position and the output once the request is delivered there and, with
//!    `quorum_durability`, its position (for a read, the position of the state it read) is
//!    durable at a majority of the view's voters (this member counted): every member
//!    reports its durable position to the others with [`ActiveMessage::Durable`]. The front
//!    end takes the first reply (crash failures only: a faulty member could answer wrong).
//!
//! # Linearizable, although the notes say sequential
//!
//! The notes call active replication sequentially consistent and not linearizable, because
//! the total order need not match real time. That holds when reads are answered locally;
//! with reads ordered like writes and the front end waiting for the reply it is linearizable:
//! a request is answered only once delivered, so it takes effect at its place in the total
//! order, between its invocation (its multicast comes after it) and its response. An
//! operation invoked after another was answered is multicast after that one was delivered
//! somewhere, so the sequencer orders it later, and every member delivers it later. A
//! member cut off from the group cannot answer from a stale state either: safe delivery
//! delivers its multicast only once every member of its view holds it, which the members
//! that moved on without it never will (the primary-partition rule keeps a minority from
//! installing a view of its own). The simulator's sweep and the process tests check this
//! with the linearizability checker.
//!
//! Under [`ActiveReads::Local`] (`active-local-reads`) a read is answered by the member it
//! reaches, from its state, once that state has reached the request's `after` position (the
//! last position this front end saw; queued until then), without being ordered. Each front
//! end sees its own writes and a state that only moves forward, and every member goes
//! through the same sequence, so the service is **sequentially consistent, not
//! linearizable**: a member may lag behind a write another client already had acknowledged.
//! Such a read may also observe an update delivered everywhere but not yet durable at a
//! majority.
//!
//! # At-most-once: the executed table
//!
//! The executed table (per client: its latest executed sequence number, the stored response
//! and the position; bounded by `clients_max`, see [`super::passive`], which shares it) is
//! part of the state, so every member holds the same one. A front end that times out
//! retransmits the same id, possibly to another member, which multicasts it again: the id
//! can be delivered twice. At delivery, an id whose client's latest executed sequence number
//! is this one is *not executed again*: its waiters get the stored response; an older one
//! (the client has moved on) is skipped, its waiters refused as superseded. Every member
//! decides this from the same table at the same point of the sequence, so every member
//! skips the same deliveries. A retransmission that reaches a member where the id is already
//! executed is answered from the table (once durable), and one that reaches the member
//! where it is in flight waits with the first.
//!
//! # View changes
//!
//! Nothing is speculative: the state is built from deliveries alone, so a view change resets
//! nothing. View synchrony delivers everything multicast in a view before the next one is
//! installed; a multicast handed to the middleware after its `Block` (the core had not yet
//! heard of it) goes out in the next view. Either way every member of a view delivers the
//! same messages in the same order, and members skip nothing by view: a request delivered in
//! the next view is executed there by every member, joiners included (they received the
//! state as of the view boundary, and deliver only the new view's messages). A request this
//! member multicast and that is still undelivered two views later never will be: its
//! waiters are refused `Busy(ViewChange)` and their front ends retry the same id (the
//! executed table keeps that safe). On every view change each member syncs its log and
//! reports its durable position to the others; replies waiting for durability wait on
//! the new view's quorum.
//!
//! # Recovery
//!
//! As in [`super::passive`] (the same code, the private `committed` module): a restarted member
//! replays its data directory (snapshot, then records), rejoins, and catches up by a delta
//! from its recovered position or by the whole state; after a total failure the group
//! re-forms from its members' data directories (the replica shell's durable position). A
//! snapshot or record that does not decode is a [`StoreError`] (fail-stop).
//!
//! # Configuration
//!
//! Every member of a group must use the same `machine`, `reads`, `quorum_durability`,
//! `clients_max` and `snapshot_every`; the group must be configured with total order and
//! safe delivery (`[service] strategy = "active"` forces both).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use viewsync::proto::multicast::Message as Delivered;
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{BusyReason, Refusal};
use viewsync::{GroupName, ProcessId, View, ViewId};

use super::committed::{
    accept_request, group_commit_tick, handle_event, refuse, store_error, superseded, Committed,
    CommittedCore, DurableReports, Formats, HeldReplies, Limits, QueuedReads, UpdateRecord,
};
use super::store::Recovered;
use super::{decode, encode, Action, ReplicaCore, ReplicaLog, RequestId, StoreError};
use crate::state_machine::StateMachine;

pub use super::committed::Restored;

/// The kind byte of an active replica's snapshots (the state machine's own snapshot, the
/// position and the executed table, in the checksummed snapshot envelope): never taken for a
/// passive replica's.
pub const ACTIVE_SNAPSHOT_KIND: u8 = 18;

/// The kind byte of an active replica's deltas (its log records after a position).
pub const ACTIVE_DELTA_KIND: u8 = 19;

const FORMATS: Formats = Formats {
    snapshot_kind: ACTIVE_SNAPSHOT_KIND,
    delta_kind: ACTIVE_DELTA_KIND,
    name: "active",
};

/// How read-only requests are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ActiveReads {
    /// Multicast and executed in the total order like updates: linearizable.
    #[default]
    Ordered,
    /// By the member the request reaches, from its state once at the request's `after`
    /// position (`active-local-reads`): sequentially consistent, not linearizable.
    Local,
}

/// An active replica's configuration. All members of a group use the same values except `me`
/// (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveConfig {
    /// This member.
    pub me: ProcessId,
    /// The group it serves.
    pub group: GroupName,
    /// The state machine's name in requests (`"kv"` or `"bank"`).
    pub machine: String,
    /// How reads are answered.
    pub reads: ActiveReads,
    /// Answer only once the position is durable at a majority of the voters (false in
    /// memory-only mode, where nothing is durable anyway).
    pub quorum_durability: bool,
    /// Client requests held (in flight, or waiting for durability or a position) past which
    /// new ones are refused `Busy(Overloaded)`.
    pub pending_max: usize,
    /// Clients the executed table remembers (at least 1).
    pub clients_max: usize,
    /// Save a snapshot (and compact the log) every this many updates; 0: never.
    pub snapshot_every: u64,
    /// The most recent update records kept in memory to catch a restarted member up by a
    /// delta; 0: never serve a delta (see [`super::passive::PassiveConfig`]).
    pub catch_up_records: usize,
}

impl ActiveConfig {
    /// Ordered reads, quorum durability, and the passive strategy's default limits.
    pub fn new(me: ProcessId, group: GroupName, machine: impl Into<String>) -> Self {
        use super::passive::PassiveConfig as Defaults;
        ActiveConfig {
            me,
            group,
            machine: machine.into(),
            reads: ActiveReads::Ordered,
            quorum_durability: true,
            pending_max: Defaults::PENDING_MAX,
            clients_max: Defaults::CLIENTS_MAX,
            snapshot_every: Defaults::SNAPSHOT_EVERY,
            catch_up_records: Defaults::CATCH_UP_RECORDS,
        }
    }
}

/// What active replicas send each other (bincode, [`encode`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActiveMessage<Op> {
    /// Multicast by the member a front end sent the request to: every member executes it
    /// at delivery.
    Request {
        /// The request.
        id: RequestId,
        /// The operation.
        op: Op,
    },
    /// Sent point-to-point to every other member: this member's log is durable up to
    /// `index`.
    Durable {
        /// The highest durable position.
        index: u64,
    },
}

/// An executed update as an active replica logs it (and hands it out in deltas).
#[derive(Serialize, Deserialize)]
struct ActiveRecord<Op, Out> {
    index: u64,
    id: RequestId,
    op: Op,
    /// The output, the stored response (checked again when the record is replayed).
    response: Out,
}

/// Counters of an active replica since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveStats {
    /// Requests this member multicast (front ends' requests it took).
    pub multicast: u64,
    /// Updates executed from deliveries (records replayed at recovery excluded).
    pub updates_applied: u64,
    /// Reads answered (ordered or local).
    pub reads: u64,
    /// Retransmissions answered from the executed table or joined to a request in flight.
    pub duplicates: u64,
    /// Delivered requests not executed because their id was executed already (the same
    /// request multicast twice after a retransmission) or superseded.
    pub duplicate_deliveries: u64,
    /// Waiters refused because their request was not delivered two views later.
    pub lost_multicasts: u64,
    /// Replayed records whose output differed from the stored response (a nondeterministic
    /// state machine).
    pub output_mismatches: u64,
    /// Client requests held now.
    pub waiters: usize,
    /// Clients evicted from the executed table.
    pub evicted_clients: u64,
    /// Delivered messages that did not decode or were not requests.
    pub skipped: u64,
}

/// A request this member multicast, until its first delivery.
struct InFlight {
    waiters: Vec<ReplyTo>,
    /// The number of views installed here when it was multicast.
    installs: u64,
}

/// A delivered request's answer, until its position is durable at a majority.
struct Answer<Out> {
    id: RequestId,
    position: u64,
    output: Out,
    waiters: Vec<ReplyTo>,
}

/// An active replica manager's core, sans IO (see the module documentation).
pub struct ActiveReplica<S: StateMachine> {
    config: ActiveConfig,
    /// The state after every delivered update, its log and executed table.
    committed: Committed<S>,
    /// Requests multicast here and not yet delivered.
    in_flight: HashMap<RequestId, InFlight>,
    /// Delivered requests waiting for durability, in delivery order.
    answers: VecDeque<Answer<S::Output>>,
    /// Reads under [`ActiveReads::Local`] waiting for their position.
    queued_reads: QueuedReads<S::Operation>,
    view: Option<View>,
    /// Views installed since the start.
    installs: u64,
    blocked: bool,
    last_durable_report: Option<std::time::Duration>,
    /// The durable positions the other members reported.
    durable: DurableReports,
    in_hand: HeldReplies,
    stats: ActiveStats,
}

/// Reads an active log record at position `at`.
fn decode_record<S: StateMachine>(
    at: u64,
    what: &str,
    record: &[u8],
) -> Result<UpdateRecord<S::Operation, S::Output>, StoreError> {
    let record: ActiveRecord<S::Operation, S::Output> = decode(record)
        .map_err(|e| store_error(format_args!("{what} {at} does not decode: {e}")))?;
    if record.index != at {
        return Err(store_error(format_args!(
            "{what} {at} holds the update at {}",
            record.index
        )));
    }
    Ok(UpdateRecord {
        index: record.index,
        id: record.id,
        op: record.op,
        response: record.response,
    })
}

impl<S> ActiveReplica<S>
where
    S: StateMachine + Clone + Default,
{
    /// Starts from what the log held (see [`super::passive::PassiveReplica::recover`]: the
    /// same recovery, of this strategy's records).
    pub fn recover(
        config: ActiveConfig,
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
        Ok(ActiveReplica {
            committed,
            in_flight: HashMap::new(),
            answers: VecDeque::new(),
            queued_reads: QueuedReads::default(),
            view: None,
            installs: 0,
            blocked: false,
            last_durable_report: None,
            durable: DurableReports::default(),
            in_hand: HeldReplies::new(config.pending_max),
            stats: ActiveStats {
                output_mismatches: replayed.output_mismatches,
                evicted_clients: replayed.evicted_clients,
                ..ActiveStats::default()
            },
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ActiveConfig {
        &self.config
    }

    /// The position of the last update executed.
    pub fn committed_index(&self) -> u64 {
        self.committed.index
    }

    /// The state (every delivered update).
    pub fn state(&self) -> &S {
        &self.committed.state
    }

    /// The current view, once one was installed.
    pub fn view(&self) -> Option<&View> {
        self.view.as_ref()
    }

    /// The counters.
    pub fn stats(&self) -> ActiveStats {
        ActiveStats {
            waiters: self.in_hand.count(),
            ..self.stats
        }
    }

    /// How the last state transfer to this replica went (`None` before any).
    pub fn last_restore(&self) -> Option<Restored> {
        self.committed.last_restore
    }

    // ---- answering --------------------------------------------------------------------

    /// The highest position this member may answer at: executed here and, with quorum
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

    /// Answers the delivered requests that became answerable, in delivery order.
    fn try_answer(&mut self, out: &mut Vec<Action>) {
        let answerable = self.answerable();
        while self
            .answers
            .front()
            .is_some_and(|a| a.position <= answerable)
        {
            let answer = self.answers.pop_front().expect("front exists");
            self.in_hand.answer(
                answer.waiters,
                answer.id,
                answer.position,
                &answer.output,
                out,
            );
        }
    }

    /// Answers `waiters` with `output` at `position` now if answerable, else once it is.
    fn answer_when_durable(
        &mut self,
        id: RequestId,
        position: u64,
        output: S::Output,
        waiters: Vec<ReplyTo>,
        out: &mut Vec<Action>,
    ) {
        if waiters.is_empty() {
            return;
        }
        self.answers.push_back(Answer {
            id,
            position,
            output,
            waiters,
        });
        self.try_answer(out);
    }

    /// Executes an update at `index` (the next position) and records it: executed table,
    /// log, tail. Returns its output.
    fn execute(
        &mut self,
        index: u64,
        id: RequestId,
        op: S::Operation,
    ) -> Result<S::Output, StoreError> {
        let output = self.committed.state.apply(&op);
        let record = encode(&ActiveRecord {
            index,
            id,
            op,
            response: output.clone(),
        });
        self.stats.evicted_clients += self.committed.commit(index, id, output.clone(), &record)?;
        self.stats.updates_applied += 1;
        Ok(output)
    }

    fn serve_queued_reads(&mut self, out: &mut Vec<Action>) {
        self.stats.reads +=
            self.committed
                .serve_reached_reads(&mut self.queued_reads, &mut self.in_hand, out);
    }

    /// Refuses every held request with `refusal`.
    fn drop_everything(&mut self, refusal: &Refusal, out: &mut Vec<Action>) {
        let mut in_flight: Vec<(RequestId, InFlight)> = self.in_flight.drain().collect();
        // In id order: the refusals go out in the same order at every run.
        in_flight.sort_unstable_by_key(|(id, _)| *id);
        for (_, request) in in_flight {
            self.in_hand.refuse(request.waiters, refusal, out);
        }
        for answer in std::mem::take(&mut self.answers) {
            self.in_hand.refuse(answer.waiters, refusal, out);
        }
        let queued = self.queued_reads.take_all();
        self.in_hand.refuse(queued, refusal, out);
    }

    /// Recounts the held reply handles (tests check the running count against it).
    #[cfg(test)]
    pub(crate) fn recount_waiters(&self) -> usize {
        self.in_flight
            .values()
            .map(|f| f.waiters.len())
            .sum::<usize>()
            + self.answers.iter().map(|a| a.waiters.len()).sum::<usize>()
            + self.queued_reads.len()
    }
}

impl<S> CommittedCore for ActiveReplica<S>
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
        if self.view.is_none() {
            return refuse(to, Refusal::Busy(BusyReason::Joining), out);
        }
        if self.blocked {
            return refuse(to, Refusal::Busy(BusyReason::ViewChange), out);
        }
        let read = S::is_read_only(&request.op);
        if read && self.config.reads == ActiveReads::Local {
            self.stats.reads += self.committed.read_local(
                &mut self.queued_reads,
                &mut self.in_hand,
                to,
                request,
                out,
            );
            return;
        }
        let id = request.id;
        if let Some(in_flight) = self.in_flight.get_mut(&id) {
            // Retransmitted while in flight here: it is answered once, at its delivery.
            if self.in_hand.hold(to, out) {
                self.stats.duplicates += 1;
                in_flight.waiters.push(to);
            }
            return;
        }
        if !read {
            if let Some(done) = self.committed.table.get(id.client) {
                if done.seq == id.seq {
                    let (position, response) = (done.index, done.response.clone());
                    if self.in_hand.hold(to, out) {
                        self.stats.duplicates += 1;
                        self.answer_when_durable(id, position, response, vec![to], out);
                    }
                    return;
                }
                if id.seq < done.seq {
                    return refuse(to, superseded(id, done.seq), out);
                }
            }
        }
        if !self.in_hand.hold(to, out) {
            return;
        }
        // Phases 1 and 2: into the group's total order.
        self.stats.multicast += 1;
        out.push(Action::Multicast(encode(
            &ActiveMessage::<S::Operation>::Request { id, op: request.op },
        )));
        self.in_flight.insert(
            id,
            InFlight {
                waiters: vec![to],
                installs: self.installs,
            },
        );
    }

    fn on_deliver(&mut self, message: &Delivered, out: &mut Vec<Action>) -> Result<(), StoreError> {
        let (id, op) = match decode::<ActiveMessage<S::Operation>>(&message.payload) {
            Ok(ActiveMessage::Request { id, op }) => (id, op),
            Ok(ActiveMessage::Durable { .. }) => {
                tracing::warn!(sender = %message.sender, "a durability report was multicast; ignored");
                self.stats.skipped += 1;
                return Ok(());
            }
            Err(e) => {
                tracing::error!(sender = %message.sender, "delivered message does not decode: {e}");
                self.stats.skipped += 1;
                return Ok(());
            }
        };
        let waiters = self
            .in_flight
            .remove(&id)
            .map(|f| f.waiters)
            .unwrap_or_default();
        // Phase 3, at every member in delivery order.
        if S::is_read_only(&op) {
            if !waiters.is_empty() {
                // A read-only operation leaves the state unchanged whatever the state.
                let output = self.committed.state.apply(&op);
                self.stats.reads += waiters.len() as u64;
                self.answer_when_durable(id, self.committed.index, output, waiters, out);
            }
            return Ok(());
        }
        if let Some(done) = self.committed.table.get(id.client) {
            if id.seq <= done.seq {
                // Delivered again (multicast by two members after a retransmission): every
                // member skips it, deciding from the same table.
                self.stats.duplicate_deliveries += 1;
                if id.seq == done.seq {
                    let (position, response) = (done.index, done.response.clone());
                    self.answer_when_durable(id, position, response, waiters, out);
                } else {
                    let refusal = superseded(id, done.seq);
                    self.in_hand.refuse(waiters, &refusal, out);
                }
                return Ok(());
            }
        }
        let index = self.committed.index + 1;
        let output = self.execute(index, id, op)?;
        self.answer_when_durable(id, index, output, waiters, out);
        if !self.committed.log.needs_sync() {
            // Per-record fsync (or a snapshot just covered it): durable already. Otherwise
            // (group commit) it is at the next tick.
            self.now_durable(out);
        }
        self.serve_queued_reads(out);
        Ok(())
    }

    fn on_view(&mut self, view: &View, out: &mut Vec<Action>) -> Result<(), StoreError> {
        self.view = Some(view.clone());
        self.installs += 1;
        self.blocked = false;
        // Every member of an installed view holds its state durably.
        self.committed.log.sync()?;
        self.committed.local_durable = self.committed.index;
        self.durable.retain(view);
        if !view.contains(self.config.me) {
            self.drop_everything(&Refusal::Busy(BusyReason::ViewChange), out);
            return Ok(());
        }
        // A multicast of two views ago that was not delivered never will be (module
        // documentation): its front ends retry the same id.
        let installs = self.installs;
        let mut lost: Vec<RequestId> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.installs + 2 <= installs)
            .map(|(id, _)| *id)
            .collect();
        lost.sort_unstable();
        let busy = Refusal::Busy(BusyReason::ViewChange);
        for id in lost {
            let request = self.in_flight.remove(&id).expect("listed");
            tracing::warn!(%id, "request multicast two views ago never delivered; its front end retries");
            self.stats.lost_multicasts += 1;
            self.in_hand.refuse(request.waiters, &busy, out);
        }
        self.report_durable(out);
        self.try_answer(out);
        Ok(())
    }

    fn on_direct(&mut self, from: ProcessId, payload: &[u8], out: &mut Vec<Action>) {
        match decode::<ActiveMessage<S::Operation>>(payload) {
            Ok(ActiveMessage::Durable { index }) => {
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
        Ok(())
    }

    /// A delta from `since`: every record executed again in order, exactly as delivered
    /// updates (checked first by [`Committed::check_delta`]).
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
        for (update, _) in updates {
            let output = self.execute(update.index, update.id, update.op)?;
            if output != update.response {
                tracing::error!(index = update.index, id = %update.id, "an update executed here gave another output than at the provider: nondeterministic state machine");
                self.stats.output_mismatches += 1;
            }
        }
        self.committed.finish_delta(since)
    }

    /// The log was synced (or needs no sync): everything executed is durable here.
    fn now_durable(&mut self, out: &mut Vec<Action>) {
        if self.committed.local_durable == self.committed.index {
            return;
        }
        self.committed.local_durable = self.committed.index;
        self.report_durable(out);
        self.try_answer(out);
    }

    /// Tells the other members how far this member's log is durable (quorum mode).
    fn report_durable(&self, out: &mut Vec<Action>) {
        if !self.config.quorum_durability {
            return;
        }
        let Some(view) = &self.view else { return };
        let payload = encode(&ActiveMessage::<S::Operation>::Durable {
            index: self.committed.local_durable,
        });
        for member in &view.members {
            if member.id != self.config.me {
                out.push(Action::Send {
                    to: member.id,
                    payload: payload.clone(),
                });
            }
        }
    }
}

impl<S> ReplicaCore for ActiveReplica<S>
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

    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        self.committed.snapshot_for(view)
    }

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
