//! What every strategy that numbers its updates shares: the *committed* state (a state
//! machine built from delivered updates alone, at a position), the executed table, the log
//! (append, compaction snapshots, recovery, restore by a whole snapshot or a delta), the
//! in-memory tail that deltas are made of, the durable quorum, and the bookkeeping of the
//! front ends' reply handles.
//!
//! [`super::passive`] and [`super::active`] differ in *who* executes a request and *when*
//! its front end is answered; what a delivered update does to the committed state is the
//! same, and lives here once. Each strategy keeps its own snapshot and delta kinds
//! ([`Formats`]) and its own record encoding (a [`RecordDecoder`] reads it back), so a
//! replica never restores another strategy's state.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use viewsync::proto::multicast::Message as Delivered;
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{BusyReason, Refusal};
use viewsync::{GroupName, ProcessId, View, ViewId};

use super::store::Recovered;
use super::{encode, Action, ReplicaLog, Reply, RequestId, StoreError};
use crate::state_machine::{decode_snapshot, encode_snapshot, StateMachine};

/// Snapshot positions remembered, by view (a delta ends at the snapshot of its view; only
/// the latest views' joiners still fetch).
const SNAPSHOT_POSITIONS: usize = 4;

pub(crate) fn store_error(what: impl std::fmt::Display) -> StoreError {
    StoreError(what.to_string())
}

/// Appends `item`, dropping the oldest beyond `max`.
pub(crate) fn push_bounded<T>(queue: &mut VecDeque<T>, max: usize, item: T) {
    if max == 0 {
        return;
    }
    queue.push_back(item);
    while queue.len() > max {
        queue.pop_front();
    }
}

/// One client's latest executed update.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Executed<Out> {
    pub(crate) client: u64,
    pub(crate) seq: u64,
    pub(crate) index: u64,
    pub(crate) response: Out,
}

/// The executed table: per client, its latest update; bounded, evicting the client whose
/// latest update is oldest in the replicated sequence (the same decision at every member).
#[derive(Clone, Debug)]
pub(crate) struct ExecutedTable<Out> {
    max: usize,
    clients: HashMap<u64, Executed<Out>>,
    /// The position of each client's latest update, to the client: oldest first.
    recency: BTreeMap<u64, u64>,
}

impl<Out: Clone> ExecutedTable<Out> {
    pub(crate) fn new(max: usize) -> Self {
        ExecutedTable {
            max: max.max(1),
            clients: HashMap::new(),
            recency: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, client: u64) -> Option<&Executed<Out>> {
        self.clients.get(&client)
    }

    /// Records `id`'s update at `index`; returns how many clients were evicted.
    pub(crate) fn record(&mut self, id: RequestId, index: u64, response: Out) -> u64 {
        let entry = Executed {
            client: id.client,
            seq: id.seq,
            index,
            response,
        };
        if let Some(old) = self.clients.insert(id.client, entry) {
            self.recency.remove(&old.index);
        }
        self.recency.insert(index, id.client);
        let mut evicted = 0;
        while self.clients.len() > self.max {
            let (_, client) = self
                .recency
                .pop_first()
                .expect("one recency entry per client");
            self.clients.remove(&client);
            evicted += 1;
        }
        evicted
    }

    /// The entries, oldest first (the order that rebuilds the same table).
    fn entries(&self) -> Vec<Executed<Out>> {
        self.recency
            .values()
            .map(|client| self.clients[client].clone())
            .collect()
    }

    fn from_entries(max: usize, entries: Vec<Executed<Out>>) -> Result<Self, String> {
        let mut table = ExecutedTable::new(max);
        let mut last = 0;
        for entry in entries {
            if entry.index <= last || table.clients.contains_key(&entry.client) {
                return Err(format!(
                    "executed table entry of client {:016x} at {} is out of order or repeated",
                    entry.client, entry.index
                ));
            }
            last = entry.index;
            let id = RequestId {
                client: entry.client,
                seq: entry.seq,
            };
            table.record(id, entry.index, entry.response);
        }
        Ok(table)
    }
}

/// The body of a snapshot.
#[derive(Serialize, Deserialize)]
struct SnapshotBody<Out> {
    /// The position of the last update the state includes.
    index: u64,
    /// The state machine's own snapshot.
    machine: Bytes,
    /// The executed table, oldest first.
    clients: Vec<Executed<Out>>,
}

/// The body of a delta: the update records `since + 1 ..= upto`, byte for byte as logged.
#[derive(Serialize, Deserialize)]
struct DeltaBody {
    /// The position the delta starts after (the joiner's).
    since: u64,
    /// The position it ends at (the provider's snapshot for the joiner's view).
    upto: u64,
    /// The record at `since`, when the provider still holds it: a joiner holding its own
    /// record there checks they are the same (a state from another history is refused).
    anchor: Option<Bytes>,
    /// The records, in order.
    records: Vec<Bytes>,
}

/// How the last state transfer to a replica went, for its shell's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// `Some(p)`: a delta from position `p`; `None`: the whole snapshot.
    pub since: Option<u64>,
    /// The position it ended at.
    pub position: u64,
}

/// A strategy's names for its stored bodies: the snapshot and delta kind bytes of the
/// checksummed envelope, and its name in error messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Formats {
    pub(crate) snapshot_kind: u8,
    pub(crate) delta_kind: u8,
    pub(crate) name: &'static str,
}

/// The group's settings the committed state depends on (identical at every member).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) clients_max: usize,
    pub(crate) snapshot_every: u64,
    pub(crate) catch_up_records: usize,
}

/// An update read back from a log record or a delta.
pub(crate) struct UpdateRecord<Op, Out> {
    pub(crate) index: u64,
    pub(crate) id: RequestId,
    pub(crate) op: Op,
    pub(crate) response: Out,
}

/// An update of a delta and its record, byte for byte.
pub(crate) type DeltaUpdate<S> = (
    UpdateRecord<<S as StateMachine>::Operation, <S as StateMachine>::Output>,
    Bytes,
);

/// Reads a strategy's log record: the update, or why it is not one (`at`: its position in
/// the log, `what`: "log record" or "delta record", for the message).
pub(crate) type RecordDecoder<Op, Out> =
    fn(at: u64, what: &str, record: &[u8]) -> Result<UpdateRecord<Op, Out>, StoreError>;

/// The committed state of a replica manager and its storage (see the module
/// documentation).
pub(crate) struct Committed<S: StateMachine> {
    formats: Formats,
    limits: Limits,
    pub(crate) log: Box<dyn ReplicaLog>,
    /// The state after every delivered update `1..=index`.
    pub(crate) state: S,
    pub(crate) index: u64,
    pub(crate) table: ExecutedTable<S::Output>,
    /// This member's log is durable up to here.
    pub(crate) local_durable: u64,
    /// The latest update records, by position (at most `catch_up_records`): what a delta
    /// to a restarted member is made of.
    tail: VecDeque<(u64, Bytes)>,
    /// The position of the snapshot taken for each of the latest views' joiners.
    snapshot_positions: VecDeque<(ViewId, u64)>,
    pub(crate) last_restore: Option<Restored>,
}

/// What recovery counted while replaying the log.
#[derive(Default)]
pub(crate) struct Replayed {
    pub(crate) output_mismatches: u64,
    pub(crate) evicted_clients: u64,
}

impl<S> Committed<S>
where
    S: StateMachine + Clone + Default,
{
    /// Starts from what the log held: the snapshot (if any), then every record replayed in
    /// order, rebuilding the state machine, the executed table and the position. With
    /// nothing recovered the state is `S::default()`. A snapshot or record that does not
    /// decode, or positions that do not follow each other, are an error.
    pub(crate) fn recover(
        formats: Formats,
        limits: Limits,
        mut log: Box<dyn ReplicaLog>,
        recovered: Recovered,
        decode_record: RecordDecoder<S::Operation, S::Output>,
    ) -> Result<(Self, Replayed), StoreError> {
        let (mut index, mut state, mut table) = match &recovered.snapshot {
            Some((at, bytes)) => {
                let (index, state, table) = Self::decode_state(formats, limits, bytes)?;
                if index != *at {
                    return Err(store_error(format_args!(
                        "snapshot stored at {at} holds the state at {index}"
                    )));
                }
                (index, state, table)
            }
            None => (0, S::default(), ExecutedTable::new(limits.clients_max)),
        };
        let mut replayed = Replayed::default();
        let mut tail = VecDeque::new();
        for (at, record) in &recovered.records {
            if *at != index + 1 {
                return Err(store_error(format_args!(
                    "log record {at} follows position {index}"
                )));
            }
            let update = decode_record(*at, "log record", record)?;
            if state.apply(&update.op) != update.response {
                tracing::error!(index = at, id = %update.id, "replayed update's output differs from the stored response: nondeterministic state machine");
                replayed.output_mismatches += 1;
            }
            replayed.evicted_clients += table.record(update.id, update.index, update.response);
            index = update.index;
            // Records replayed at recovery serve deltas too (a total failure's re-formed
            // group catches its other members up from them).
            push_bounded(
                &mut tail,
                limits.catch_up_records,
                (update.index, record.clone()),
            );
        }
        if log.needs_sync() {
            log.sync()?;
        }
        let committed = Committed {
            formats,
            limits,
            log,
            state,
            index,
            table,
            local_durable: index,
            tail,
            snapshot_positions: VecDeque::new(),
            last_restore: None,
        };
        Ok((committed, replayed))
    }

    /// Decodes a snapshot: the position, the state machine and the executed table.
    fn decode_state(
        formats: Formats,
        limits: Limits,
        bytes: &[u8],
    ) -> Result<(u64, S, ExecutedTable<S::Output>), StoreError> {
        let name = formats.name;
        let body: SnapshotBody<S::Output> = decode_snapshot(formats.snapshot_kind, bytes)
            .map_err(|e| store_error(format_args!("{name} snapshot: {e}")))?;
        let state = S::restore(&body.machine)
            .map_err(|e| store_error(format_args!("state machine snapshot: {e}")))?;
        let table = ExecutedTable::from_entries(limits.clients_max, body.clients)
            .map_err(|e| store_error(format_args!("{name} snapshot: {e}")))?;
        Ok((body.index, state, table))
    }

    /// Records an update executed on [`Committed::state`] at `index` (the next position):
    /// the executed table, the log (`record`, the strategy's encoding), the tail, and a
    /// compaction snapshot when one is due. Returns the clients evicted from the table.
    pub(crate) fn commit(
        &mut self,
        index: u64,
        id: RequestId,
        response: S::Output,
        record: &[u8],
    ) -> Result<u64, StoreError> {
        let evicted = self.table.record(id, index, response);
        self.log.append(index, record)?;
        self.index = index;
        push_bounded(
            &mut self.tail,
            self.limits.catch_up_records,
            (index, Bytes::copy_from_slice(record)),
        );
        if self.limits.snapshot_every > 0 && index % self.limits.snapshot_every == 0 {
            let snapshot = self.snapshot();
            self.log.save_snapshot(index, &snapshot)?;
        }
        Ok(evicted)
    }

    /// The committed state, position and executed table, in the checksummed envelope.
    pub(crate) fn snapshot(&self) -> Bytes {
        encode_snapshot(
            self.formats.snapshot_kind,
            &SnapshotBody {
                index: self.index,
                machine: self.state.snapshot(),
                clients: self.table.entries(),
            },
        )
    }

    /// The snapshot, its position remembered for `view`: a delta for `view`'s joiners ends
    /// there, however far this replica has gone on since.
    pub(crate) fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        self.snapshot_positions.retain(|(v, _)| *v != view);
        push_bounded(
            &mut self.snapshot_positions,
            SNAPSHOT_POSITIONS,
            (view, self.index),
        );
        self.snapshot()
    }

    /// The records `since + 1 ..=` the position of the snapshot for `view`, from the
    /// in-memory tail; `None` without that snapshot, with `since` past it, or once the tail
    /// no longer reaches back to `since + 1`.
    pub(crate) fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        let upto = self
            .snapshot_positions
            .iter()
            .find(|(v, _)| *v == view)
            .map(|(_, at)| *at)?;
        if since > upto || self.limits.catch_up_records == 0 {
            return None;
        }
        let records: Vec<Bytes> = self
            .tail
            .iter()
            .filter(|(at, _)| *at > since && *at <= upto)
            .map(|(_, record)| record.clone())
            .collect();
        // The tail is consecutive: all of them, or the tail lost the oldest.
        if records.len() as u64 != upto - since {
            return None;
        }
        let anchor = self
            .tail
            .iter()
            .find(|(at, _)| *at == since)
            .map(|(_, record)| record.clone());
        Some(encode_snapshot(
            self.formats.delta_kind,
            &DeltaBody {
                since,
                upto,
                anchor,
                records,
            },
        ))
    }

    /// Replaces the committed state with a whole snapshot (state transfer), durably: the
    /// log restarts from it. Nothing changes if the snapshot does not decode.
    pub(crate) fn restore(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let (index, machine, table) = Self::decode_state(self.formats, self.limits, bytes)?;
        self.log.reset(index, bytes)?;
        self.log.sync()?;
        self.state = machine;
        self.index = index;
        self.table = table;
        self.local_durable = index;
        // The records before the snapshot are not known here.
        self.tail.clear();
        self.last_restore = Some(Restored {
            since: None,
            position: index,
        });
        tracing::info!(index, "state restored");
        Ok(())
    }

    /// Checks a delta from `since` (this replica's recovered position, where it must still
    /// be) and returns its updates with their records, for the strategy to apply in order
    /// as delivered updates. Anything that does not fit (another position, a record out of
    /// sequence, another history) is an error, found before anything is applied: the replica
    /// never guesses a state.
    pub(crate) fn check_delta(
        &mut self,
        since: u64,
        delta: &[u8],
        decode_record: RecordDecoder<S::Operation, S::Output>,
    ) -> Result<Vec<DeltaUpdate<S>>, StoreError> {
        let name = self.formats.name;
        let body: DeltaBody = decode_snapshot(self.formats.delta_kind, delta)
            .map_err(|e| store_error(format_args!("{name} delta: {e}")))?;
        if body.since != since || self.index != since {
            return Err(store_error(format_args!(
                "a delta from position {} handed to a replica at {} that asked from {since}",
                body.since, self.index
            )));
        }
        if body.upto < since || body.records.len() as u64 != body.upto - since {
            return Err(store_error(format_args!(
                "a delta from {since} to {} holds {} records",
                body.upto,
                body.records.len()
            )));
        }
        let mine = self.tail.iter().find(|(at, _)| *at == since);
        if let (Some(anchor), Some((_, mine))) = (&body.anchor, mine) {
            if anchor != mine {
                // This replica's records from there on were never acknowledged (the group,
                // re-formed after a total failure from a majority's state, wrote others at
                // those positions; it is live, since it provides this delta). Its own copy is
                // not the group's data: discard it durably, so the restart after this
                // fail-stop starts empty and receives the whole state instead of asking for a
                // delta from a position of another history for ever.
                let empty = encode_snapshot(
                    self.formats.snapshot_kind,
                    &SnapshotBody::<S::Output> {
                        index: 0,
                        machine: S::default().snapshot(),
                        clients: Vec::new(),
                    },
                );
                self.log.reset(0, &empty)?;
                self.log.sync()?;
                return Err(store_error(format_args!(
                    "the delta's record at {since} is not this replica's: its state is of another history (discarded: the restart receives the whole state)"
                )));
            }
        }
        let mut updates = Vec::with_capacity(body.records.len());
        for (k, record) in body.records.into_iter().enumerate() {
            let at = since + 1 + k as u64;
            let update = decode_record(at, "delta record", &record)?;
            updates.push((update, record));
        }
        Ok(updates)
    }

    /// After a delta's updates were applied: durable, and remembered for the shell's log.
    pub(crate) fn finish_delta(&mut self, since: u64) -> Result<(), StoreError> {
        self.log.sync()?;
        self.local_durable = self.index;
        self.last_restore = Some(Restored {
            since: Some(since),
            position: self.index,
        });
        tracing::info!(since, index = self.index, "state caught up by a delta");
        Ok(())
    }
}

impl<S: StateMachine> Committed<S> {
    /// A read served from the committed state (`passive-backup-reads`,
    /// `active-local-reads`): answered now if the state reached `request.after` (the last
    /// position its front end saw, so it sees its own writes), else queued (and held) until
    /// it does. Returns the reads answered.
    pub(crate) fn read_local(
        &mut self,
        queued: &mut QueuedReads<S::Operation>,
        held: &mut HeldReplies,
        to: ReplyTo,
        request: super::Request<S::Operation>,
        out: &mut Vec<Action>,
    ) -> u64 {
        if request.after <= self.index {
            self.read_now(to, request.id, &request.op, out);
            return 1;
        }
        if held.hold(to, out) {
            queued.queue(
                request.after,
                QueuedRead {
                    to,
                    id: request.id,
                    op: request.op,
                },
            );
        }
        0
    }

    /// Answers the queued reads whose position the committed state reached. Returns the
    /// reads answered.
    pub(crate) fn serve_reached_reads(
        &mut self,
        queued: &mut QueuedReads<S::Operation>,
        held: &mut HeldReplies,
        out: &mut Vec<Action>,
    ) -> u64 {
        let reached = queued.reached(self.index);
        for read in &reached {
            held.release();
            self.read_now(read.to, read.id, &read.op, out);
        }
        reached.len() as u64
    }

    fn read_now(&mut self, to: ReplyTo, id: RequestId, op: &S::Operation, out: &mut Vec<Action>) {
        // A read-only operation leaves the state unchanged whatever the state.
        let output = self.state.apply(op);
        reply(to, id, self.index, output, out);
    }
}

/// How often a member repeats its durable position to the members waiting on it (reports
/// are point-to-point and may be lost).
pub const DURABLE_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A strategy's core built on [`Committed`], one handler per event of its group:
/// [`handle_event`] dispatches a [`ServiceEvent`] to them and [`group_commit_tick`] runs the
/// tick every such core runs, so the strategies differ only in their handlers.
pub(crate) trait CommittedCore {
    /// The state machine replicated.
    type Machine: StateMachine;
    /// The group served (events of another group are logged and ignored).
    fn group(&self) -> &GroupName;
    /// The replica's log.
    fn log(&mut self) -> &mut dyn ReplicaLog;
    /// When the durable position was last reported on a tick.
    fn last_durable_report(&mut self) -> &mut Option<std::time::Duration>;
    /// A front end's request.
    fn on_request(&mut self, request: &ClientRequest, out: &mut Vec<Action>);
    /// A delivery of the group.
    fn on_deliver(&mut self, message: &Delivered, out: &mut Vec<Action>) -> Result<(), StoreError>;
    /// The group's `Block`: a view change begins.
    fn on_block(&mut self);
    /// A view installed.
    fn on_view(&mut self, view: &View, out: &mut Vec<Action>) -> Result<(), StoreError>;
    /// A point-to-point message of another member.
    fn on_direct(&mut self, from: ProcessId, payload: &[u8], out: &mut Vec<Action>);
    /// A whole state to restore (state transfer).
    fn on_restore(&mut self, state: &[u8], out: &mut Vec<Action>) -> Result<(), StoreError>;
    /// A delta from position `since` to apply (state transfer to a restarted member).
    fn on_restore_delta(
        &mut self,
        since: u64,
        delta: &[u8],
        out: &mut Vec<Action>,
    ) -> Result<(), StoreError>;
    /// The log was synced: everything applied is durable here.
    fn now_durable(&mut self, out: &mut Vec<Action>);
    /// Tells the members waiting on it how far this member's log is durable.
    fn report_durable(&self, out: &mut Vec<Action>);
}

/// [`super::ReplicaCore::handle`] for a [`CommittedCore`]: the event to its handler.
pub(crate) fn handle_event<C: CommittedCore>(
    core: &mut C,
    event: &ServiceEvent,
) -> Result<Vec<Action>, StoreError> {
    let mut out = Vec::new();
    let ours = |group: &GroupName| group == core.group();
    match event {
        ServiceEvent::Request(request) => core.on_request(request, &mut out),
        ServiceEvent::Deliver { group, message } if ours(group) => {
            core.on_deliver(message, &mut out)?
        }
        ServiceEvent::Block { group } if ours(group) => core.on_block(),
        ServiceEvent::ViewChange { group, change } if ours(group) => {
            core.on_view(&change.view, &mut out)?
        }
        ServiceEvent::Direct {
            group,
            from,
            payload,
        } if ours(group) => core.on_direct(*from, payload, &mut out),
        ServiceEvent::Restore {
            group,
            state,
            since: None,
            ..
        } if ours(group) => core.on_restore(state, &mut out)?,
        ServiceEvent::Restore {
            group,
            state,
            since: Some(since),
            ..
        } if ours(group) => core.on_restore_delta(*since, state, &mut out)?,
        other => tracing::warn!(?other, "event of another group; ignored"),
    }
    Ok(out)
}

/// [`super::ReplicaCore::tick`] for a [`CommittedCore`]: group commit (one sync covers
/// every record appended since the last), then the durable position repeated every
/// [`DURABLE_REPORT_INTERVAL`]: reports may be lost, and without a new update none would
/// follow, so a member waiting on this one would wait for ever.
pub(crate) fn group_commit_tick<C: CommittedCore>(
    core: &mut C,
    now: std::time::Duration,
) -> Result<Vec<Action>, StoreError> {
    let mut out = Vec::new();
    if core.log().needs_sync() {
        core.log().sync()?;
        core.now_durable(&mut out);
    }
    let last = core.last_durable_report();
    if last.is_none_or(|last| now.saturating_sub(last) >= DURABLE_REPORT_INTERVAL) {
        *last = Some(now);
        core.report_durable(&mut out);
    }
    Ok(out)
}

/// The durable positions the other members of the view reported ([`quorum_position`]'s
/// input).
#[derive(Debug, Default)]
pub(crate) struct DurableReports(HashMap<ProcessId, u64>);

impl DurableReports {
    /// `from` reports its log durable up to `index` (reports may arrive out of order).
    pub(crate) fn report(&mut self, from: ProcessId, index: u64) {
        let known = self.0.entry(from).or_insert(0);
        *known = (*known).max(index);
    }

    /// Forgets the members that left.
    pub(crate) fn retain(&mut self, view: &View) {
        self.0.retain(|p, _| view.contains(*p));
    }

    /// The highest position durable at a majority of `view`'s voters, `me` (durable up to
    /// `local`) counted.
    pub(crate) fn quorum_position(&self, view: &View, me: ProcessId, local: u64) -> u64 {
        let mut durable: Vec<u64> = view
            .voters()
            .iter()
            .map(|m| {
                if m.id == me {
                    local
                } else {
                    self.0.get(&m.id).copied().unwrap_or(0)
                }
            })
            .collect();
        durable.sort_unstable_by(|a, b| b.cmp(a));
        durable.get(view.majority() - 1).copied().unwrap_or(0)
    }
}

/// The front ends' reply handles a replica holds, bounded by `pending_max`: one more is
/// refused `Busy(Overloaded)` (the front end backs off and retries), so a flood of requests
/// never grows the replica's memory without bound.
#[derive(Debug)]
pub(crate) struct HeldReplies {
    held: usize,
    max: usize,
}

impl HeldReplies {
    pub(crate) fn new(max: usize) -> Self {
        HeldReplies { held: 0, max }
    }

    /// Reply handles held now.
    pub(crate) fn count(&self) -> usize {
        self.held
    }

    /// Holds one more handle if the bound allows; refuses `to` if not.
    pub(crate) fn hold(&mut self, to: ReplyTo, out: &mut Vec<Action>) -> bool {
        if self.held >= self.max {
            refuse(to, Refusal::Busy(BusyReason::Overloaded), out);
            false
        } else {
            self.held += 1;
            true
        }
    }

    /// Answers held handles with `output` (they leave the count).
    pub(crate) fn answer<Out: Serialize + Clone>(
        &mut self,
        waiters: Vec<ReplyTo>,
        id: RequestId,
        position: u64,
        output: &Out,
        out: &mut Vec<Action>,
    ) {
        self.held -= waiters.len();
        for to in waiters {
            reply(to, id, position, output.clone(), out);
        }
    }

    /// Refuses held handles (they leave the count).
    pub(crate) fn refuse(
        &mut self,
        waiters: Vec<ReplyTo>,
        refusal: &Refusal,
        out: &mut Vec<Action>,
    ) {
        self.held -= waiters.len();
        for to in waiters {
            refuse(to, refusal.clone(), out);
        }
    }

    /// One handle leaves the count without an answer here (its caller answers it).
    pub(crate) fn release(&mut self) {
        self.held -= 1;
    }
}

/// A client's request for this replica's `group` and `machine`, decoded; `None` when it is
/// refused (another group's, or bytes that are not such a request), the refusal in `out`.
pub(crate) fn accept_request<Op: serde::de::DeserializeOwned>(
    request: &ClientRequest,
    group: &GroupName,
    machine: &str,
    out: &mut Vec<Action>,
) -> Option<super::Request<Op>> {
    if request.group != *group {
        refuse(request.reply, Refusal::NoService, out);
        return None;
    }
    match super::decode_request(&request.payload, machine) {
        Ok(request) => Some(request),
        Err(refusal) => {
            refuse(request.reply, refusal, out);
            None
        }
    }
}

/// The refusal of request `id` of a client that has had its request `latest` executed since
/// (the front end already had its answer).
pub(crate) fn superseded(id: RequestId, latest: u64) -> Refusal {
    Refusal::Malformed(format!(
        "superseded request {id}: this client's request {latest} was executed since"
    ))
}

/// Answers `to` with `output` for request `id`, at `position`.
pub(crate) fn reply<Out: Serialize>(
    to: ReplyTo,
    id: RequestId,
    position: u64,
    output: Out,
    out: &mut Vec<Action>,
) {
    let reply = Reply {
        id,
        position,
        output,
        causal: None,
    };
    out.push(Action::Reply {
        to,
        outcome: Ok(encode(&reply)),
    });
}

/// Refuses `to`.
pub(crate) fn refuse(to: ReplyTo, refusal: Refusal, out: &mut Vec<Action>) {
    out.push(Action::Reply {
        to,
        outcome: Err(refusal),
    });
}

/// A read served from the committed state (`passive-backup-reads`, `active-local-reads`),
/// waiting for the position of the last update its front end saw.
pub(crate) struct QueuedRead<Op> {
    pub(crate) to: ReplyTo,
    pub(crate) id: RequestId,
    pub(crate) op: Op,
}

/// Reads waiting for a position, by that position.
pub(crate) struct QueuedReads<Op>(BTreeMap<u64, Vec<QueuedRead<Op>>>);

impl<Op> Default for QueuedReads<Op> {
    fn default() -> Self {
        QueuedReads(BTreeMap::new())
    }
}

impl<Op> QueuedReads<Op> {
    /// Queues `read` until the committed state reaches `after`.
    pub(crate) fn queue(&mut self, after: u64, read: QueuedRead<Op>) {
        self.0.entry(after).or_default().push(read);
    }

    /// The reads whose position is at most `index`, in position order.
    pub(crate) fn reached(&mut self, index: u64) -> Vec<QueuedRead<Op>> {
        let mut reached = Vec::new();
        while let Some(entry) = self.0.first_entry() {
            if *entry.key() > index {
                break;
            }
            reached.extend(entry.remove());
        }
        reached
    }

    /// Every queued read's handle, the queue emptied.
    pub(crate) fn take_all(&mut self) -> Vec<ReplyTo> {
        std::mem::take(&mut self.0)
            .into_values()
            .flatten()
            .map(|r| r.to)
            .collect()
    }

    /// Reads queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }
}
