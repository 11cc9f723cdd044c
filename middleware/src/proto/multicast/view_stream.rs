//! The multicast state of one view: every member's stream, acknowledgements and stability,
//! credit, retransmission requests, garbage collection, and delivery as the ordering rules
//! allow.

#[cfg(feature = "planted-bugs")]
use super::super::planted::{self, PlantedBug};
use super::config::MulticastConfig;
use super::order::Order;
use super::output::{Message, MulticastOutput};
use super::stream::{batch, entry_bytes, Stream};
use crate::id::{ProcessId, ViewId};
use crate::proto::Time;
use crate::view::{Member, View};
use crate::wire::{Body, CutEntry, Entry, Item, Ordering, Rank, Seq};
use bytes::Bytes;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// The multicast state of one view.
#[derive(Debug)]
pub(super) struct ViewStream {
    pub(super) view: View,
    pub(super) my_rank: Rank,
    pub(super) streams: Vec<Stream>,
    /// `acked[m][r]`: member `m` holds stream `r` up to this.
    pub(super) acked: Vec<Vec<Seq>>,
    /// My entries up to this one were sent to the others.
    pub(super) sent_upto: Seq,
    /// Payload bytes of my entries that are not yet stable.
    pub(super) unstable_bytes: usize,
    /// Causal and total order: the order records read, the agreed order.
    pub(super) order: Order,
    /// Frozen by a view change: deliver nothing past this (per stream).
    pub(super) limit: Option<Vec<Seq>>,
    /// Delivering the cut: stability no longer required.
    pub(super) flushing: bool,
    pub(super) last_ack: Option<Time>,
    pub(super) ack_dirty: bool,
    pub(super) received_since_ack: u64,
    /// Payload bytes received from others since the last ack.
    pub(super) bytes_since_ack: usize,
    /// The sequencer sent a total-order payload since the last ack: it orders its own
    /// multicasts only once a member holds them, so acknowledge at the next flush.
    pub(super) ack_soon: bool,
    /// The latest time the core was called with (stability delays are measured with it).
    pub(super) now: Time,
    /// When my payload entries entered my stream, until they are stable (at most a window).
    pub(super) own_sent_at: VecDeque<(Seq, Time)>,
    /// The adaptive byte window of my stream.
    pub(super) window: ByteWindow,
    /// My entries became stable since the last credit check: how long the latest took, and
    /// the bytes freed.
    pub(super) stabilized: Option<(Time, usize)>,
}

/// The adaptive limit on a member's payload bytes not yet stable: between
/// `window_min_bytes` and `window_bytes`, it shrinks by a quarter (at most once per
/// `window_target_latency`) when entries take longer than that target to become stable,
/// and grows by the bytes that became stable when they take less; it changes only while it
/// holds multicasts back, so below saturation it never matters.
#[derive(Debug, Default)]
pub(super) struct ByteWindow {
    /// The limit in bytes (0 until first used: the floor).
    limit: usize,
    /// Multicasts waited for credit since the window last changed.
    limited: bool,
    /// When the window last shrank.
    last_cut: Option<Time>,
}

impl ByteWindow {
    /// The current limit, within the configured bounds.
    pub(super) fn limit(&self, config: &MulticastConfig) -> usize {
        let ceiling = config.window_bytes.max(1);
        let floor = config.window_min_bytes.clamp(1, ceiling);
        self.limit.clamp(floor, ceiling)
    }

    /// Entries up to one sent `delay` ago became stable, freeing `freed` bytes.
    pub(super) fn on_stable(
        &mut self,
        now: Time,
        delay: Time,
        freed: usize,
        config: &MulticastConfig,
    ) {
        let limit = self.limit(config);
        if !self.limited {
            self.limit = limit;
            return;
        }
        let target = config.window_target_latency;
        if delay > target {
            // One cut per target interval: entries that become stable just after a cut were
            // sent under the larger window.
            if self
                .last_cut
                .is_none_or(|t| now.saturating_sub(t) >= target)
            {
                self.limit = limit - limit / 4;
                self.last_cut = Some(now);
                self.limited = false;
            }
        } else {
            self.limit = limit.saturating_add(freed);
            self.limited = false;
        }
        self.limit = self.limit(config);
    }
}

impl ViewStream {
    pub(super) fn new(view: View, me: ProcessId) -> Self {
        debug_assert!(
            view.is_well_formed(),
            "streams for an ill-formed view {view:?}"
        );
        let n = view.members.len();
        let my_rank = Rank::of(
            view.rank_of(me)
                .expect("a view stream is made for a member"),
        );
        ViewStream {
            view,
            my_rank,
            streams: (0..n).map(|_| Stream::default()).collect(),
            acked: vec![vec![Seq::ZERO; n]; n],
            sent_upto: Seq::ZERO,
            unstable_bytes: 0,
            order: Order::new(n),
            limit: None,
            flushing: false,
            last_ack: None,
            ack_dirty: true,
            received_since_ack: 0,
            bytes_since_ack: 0,
            ack_soon: false,
            now: Time::ZERO,
            own_sent_at: VecDeque::new(),
            window: ByteWindow::default(),
            stabilized: None,
        }
    }

    /// The core was called at `now`.
    pub(super) fn advance_clock(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    pub(super) fn id(&self) -> ViewId {
        self.view.id
    }

    pub(super) fn received(&self) -> Vec<Seq> {
        self.streams.iter().map(|s| s.contiguous).collect()
    }

    /// What this member acknowledges: what it holds, but never more than `window` entries
    /// past what it delivered, so a member that does not deliver (waiting for its state, or
    /// slow) withholds credit and the senders stop instead of filling its buffers.
    ///
    /// With safe delivery the sequencer's stream counts as consumed up to the order records
    /// read: records are read only once stable, and the entries they order may lie far behind
    /// them, so capping at what was delivered would wait on itself.
    pub(super) fn ack_vector(&self, window: u64, safe: bool) -> Vec<Seq> {
        self.streams
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let rank = Rank::of(index);
                if rank == self.my_rank {
                    return s.contiguous.min(self.limit_of(rank));
                }
                let consumed = if rank == Rank::SEQUENCER && safe {
                    s.delivered.max(self.order.records_upto)
                } else {
                    s.delivered
                };
                // Once frozen, never claim more than the report: what others see as stable
                // is then inside every survivor's report, hence inside the cut, which is what
                // makes safe delivery uniform.
                s.contiguous
                    .min(consumed.saturating_add(window))
                    .min(self.limit_of(rank))
            })
            .collect()
    }

    pub(super) fn holds(&self, cut: &[CutEntry]) -> bool {
        cut.len() == self.streams.len()
            && self
                .streams
                .iter()
                .zip(cut)
                .all(|(s, c)| s.contiguous >= c.upto)
    }

    /// Whether everything this member delivered of the view lies within `cut`: only then can it
    /// deliver the cut and go on with its own state.
    pub(super) fn delivered_within(&self, cut: &[CutEntry]) -> bool {
        cut.len() == self.streams.len()
            && self
                .streams
                .iter()
                .zip(cut)
                .all(|(s, c)| s.delivered <= c.upto)
    }

    pub(super) fn next_seq(&self) -> Seq {
        self.streams[self.my_rank.index()].contiguous.next()
    }

    pub(super) fn others(&self) -> impl Iterator<Item = &Member> {
        let me = self.my_rank.index();
        self.view
            .members
            .iter()
            .enumerate()
            .filter(move |(r, _)| *r != me)
            .map(|(_, m)| m)
    }

    /// Adds an entry of stream `origin`. Returns whether it was new.
    pub(super) fn insert(&mut self, origin: Rank, entry: Entry, window: u64) -> bool {
        let stream = &mut self.streams[origin.index()];
        if entry.seq <= stream.contiguous || stream.buffer.contains_key(&entry.seq) {
            return false;
        }
        // A correct sender keeps at most a window of payloads (plus the sequencer's order
        // records, bounded by everyone's windows) unstable; a buffer far past that is a bug or
        // a hostile peer. Drop the entry: it is asked for again once there is room.
        let limit = window.saturating_mul(8).saturating_add(1024);
        if stream.buffer.len() as u64 >= limit {
            return false;
        }
        // The buffer's memory follows the span of sequence numbers it holds: an entry that
        // far ahead is refused the same way.
        if entry.seq.0 - stream.contiguous.0 > limit {
            return false;
        }
        stream.highest_known = stream.highest_known.max(entry.seq);
        if origin != self.my_rank {
            if let Item::Payload(payload) = &entry.item {
                self.bytes_since_ack += payload.len();
                self.ack_soon |= origin == Rank::SEQUENCER && entry.ordering == Ordering::Total;
            }
        }
        let stream = &mut self.streams[origin.index()];
        stream.buffer.insert(entry.seq, entry);
        while stream.buffer.contains_key(&stream.contiguous.next()) {
            stream.contiguous = stream.contiguous.next();
        }
        stream.debug_check();
        self.received_since_ack += 1;
        self.ack_dirty = true;
        if self.streams.len() == 1 {
            // A lone member: no acknowledgement will ever come, its own entries (payloads and
            // order records) are stable at once, or its window would never free.
            self.refresh_stability();
        }
        true
    }

    pub(super) fn limit_of(&self, rank: Rank) -> Seq {
        self.limit.as_ref().map_or(Seq::MAX, |l| l[rank.index()])
    }

    /// Reads the sequencer's order records that are contiguous and within the limit. With
    /// safe delivery only stable records count, so that an order a process delivered in is
    /// one every member holds (and the cut therefore keeps).
    pub(super) fn consume_records(&mut self, safe: bool) {
        let mut upto = self.streams[0]
            .contiguous
            .min(self.limit_of(Rank::SEQUENCER));
        if safe && !self.flushing {
            upto = upto.min(self.streams[0].stable);
        }
        self.order.read_records(&self.streams[0], upto);
    }

    /// Sequencer: gives every contiguous total-order entry a place, its own once another
    /// member holds them (a fair sequencer: its multicasts take a round trip to be ordered,
    /// as everyone else's do, instead of overtaking theirs at every turn).
    pub(super) fn assign_order(&mut self) {
        if self.my_rank != Rank::SEQUENCER || self.limit.is_some() {
            return;
        }
        let me = self.my_rank.index();
        let n = self.streams.len();
        let upto: Vec<Seq> = (0..n)
            .map(|rank| {
                let contiguous = self.streams[rank].contiguous;
                if rank != me || n == 1 {
                    return contiguous;
                }
                let held = (0..n)
                    .filter(|&m| m != me)
                    .map(|m| self.acked[m][rank])
                    .max()
                    .unwrap_or(contiguous);
                contiguous.min(held)
            })
            .collect();
        self.order.assign(&self.streams, &upto);
    }

    /// Delivers everything the ordering rules allow.
    pub(super) fn deliver(&mut self, safe: bool, out: &mut Vec<MulticastOutput>) {
        self.consume_records(safe);
        loop {
            let mut progress = false;
            for rank in (0..self.streams.len()).map(Rank::of) {
                while self.deliver_head(rank, safe, out) {
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    pub(super) fn deliver_head(
        &mut self,
        rank: Rank,
        safe: bool,
        out: &mut Vec<MulticastOutput>,
    ) -> bool {
        let stream = &self.streams[rank.index()];
        let next = stream.delivered.next();
        if stream.abandoned || next > stream.contiguous || next > self.limit_of(rank) {
            return false;
        }
        let entry = &stream.buffer[&next];
        let deliverable = match &entry.item {
            Item::Order(_) => true,
            Item::Payload(_) => {
                let stable_enough = !safe || self.flushing || next <= stream.stable;
                stable_enough && self.order.admits(&self.streams, rank, next, entry)
            }
        };
        if !deliverable {
            return false;
        }
        if entry.ordering == Ordering::Total && matches!(entry.item, Item::Payload(_)) {
            self.order.delivered_total();
        }
        if let Item::Payload(payload) = &entry.item {
            out.push(MulticastOutput::Deliver(Message {
                sender: self.view.members[rank.index()].id,
                view: self.view.id,
                seq: next,
                ordering: entry.ordering,
                payload: payload.clone(),
            }));
        }
        self.streams[rank.index()].delivered = next;
        self.streams[rank.index()].debug_check();
        self.collect(rank);
        true
    }

    /// Drops entries of stream `rank` that are delivered, stable and (the sequencer's) read
    /// for order records.
    pub(super) fn collect(&mut self, rank: Rank) {
        let records_upto = if rank == Rank::SEQUENCER {
            self.order.records_upto
        } else {
            Seq::MAX
        };
        let stream = &mut self.streams[rank.index()];
        let upto = stream.delivered.min(stream.stable).min(records_upto);
        while let Some((&seq, _)) = stream.buffer.first_key_value() {
            if seq > upto {
                break;
            }
            stream.buffer.pop_first();
        }
    }

    pub(super) fn handle_ack(&mut self, from_rank: Rank, received: &[Seq]) {
        for (rank, &upto) in received.iter().enumerate() {
            let acked = &mut self.acked[from_rank.index()][rank];
            *acked = (*acked).max(upto);
            let stream = &mut self.streams[rank];
            stream.highest_known = stream.highest_known.max(upto);
        }
        self.refresh_stability();
    }

    pub(super) fn refresh_stability(&mut self) {
        let me = self.my_rank.index();
        for rank in 0..self.streams.len() {
            let mine = self.streams[rank].contiguous;
            let stable = self
                .acked
                .iter()
                .enumerate()
                .map(|(m, row)| if m == me { mine } else { row[rank] })
                .min()
                .unwrap_or(mine);
            #[cfg(feature = "planted-bugs")]
            let stable = stable + u64::from(planted::active(PlantedBug::StabilityOffByOne));
            let old = self.streams[rank].stable;
            if stable > old {
                if rank == me {
                    let freed: usize = self.streams[rank]
                        .buffer
                        .range(old.next()..=stable)
                        .map(|(_, e)| entry_bytes(e))
                        .sum();
                    self.unstable_bytes = self.unstable_bytes.saturating_sub(freed);
                    let mut sent_at = None;
                    while let Some(&(seq, at)) = self.own_sent_at.front() {
                        if seq > stable {
                            break;
                        }
                        sent_at = Some(at);
                        self.own_sent_at.pop_front();
                    }
                    if let Some(at) = sent_at {
                        // The window adapts at the next credit check (which has the settings).
                        let delay = self.now.saturating_sub(at);
                        let before = self.stabilized.map_or(0, |(_, f)| f);
                        self.stabilized = Some((delay, before + freed));
                    }
                }
                self.streams[rank].stable = stable;
                self.streams[rank].debug_check();
                self.collect(Rank::of(rank));
            }
        }
    }

    /// Sends my unsent entries, batched.
    pub(super) fn send_new(&mut self, batch_bytes: usize, out: &mut Vec<MulticastOutput>) {
        let upto = Seq(self.next_seq().0 - 1);
        if self.sent_upto >= upto {
            return;
        }
        let me = self.my_rank;
        let batches = batch(
            self.streams[me.index()]
                .buffer
                .range(self.sent_upto.next()..=upto)
                .map(|(_, e)| e),
            batch_bytes,
        );
        self.sent_upto = upto;
        for entries in batches {
            self.send_to_others(
                Body::Data {
                    view: self.view.id,
                    origin: me,
                    entries,
                },
                out,
            );
        }
    }

    /// One output for all the other members: the shell seals the frame once.
    pub(super) fn send_to_others(&self, body: Body, out: &mut Vec<MulticastOutput>) {
        let mut to: Vec<SocketAddr> = self.others().map(|m| m.addr).collect();
        // Two incarnations of a node may share an address for a view: one frame each address.
        to.sort_unstable();
        to.dedup();
        if !to.is_empty() {
            out.push(MulticastOutput::SendAll { to, body });
        }
    }

    pub(super) fn send_ack(
        &mut self,
        now: Time,
        window: u64,
        safe: bool,
        out: &mut Vec<MulticastOutput>,
    ) {
        self.last_ack = Some(now);
        self.ack_dirty = false;
        self.received_since_ack = 0;
        self.bytes_since_ack = 0;
        self.ack_soon = false;
        let body = Body::Ack {
            view: self.view.id,
            received: self.ack_vector(window, safe),
        };
        self.send_to_others(body, out);
    }

    /// Asks for missing entries, up to what is known to exist or, while a view change waits
    /// for it, up to the cut. Each attempt asks another member that may hold the range: the
    /// origin, members whose acks show they hold the first missing entry, the cut's holder.
    pub(super) fn request_missing(
        &mut self,
        now: Time,
        target: Option<&[CutEntry]>,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        let me = self.my_rank.index();
        for rank in 0..self.streams.len() {
            if rank == me {
                continue;
            }
            let stream = &self.streams[rank];
            let cut = target.and_then(|c| c.get(rank));
            let wanted = stream.highest_known.max(cut.map_or(Seq::ZERO, |c| c.upto));
            if stream.contiguous >= wanted {
                continue;
            }
            // Entries known from acks are usually still in flight (queued behind others on
            // the same connection): ask only once the stream made no progress for a while.
            // A view change waiting for its cut asks at once.
            let stalled_since = *self.streams[rank].stalled_since.get_or_insert(now);
            if cut.is_none() && now.saturating_sub(stalled_since) < config.nak_interval {
                continue;
            }
            let stream = &self.streams[rank];
            if stream
                .last_nak
                .is_some_and(|t| now.saturating_sub(t) < config.nak_interval)
            {
                continue;
            }
            let from = stream.contiguous.next();
            let to = wanted.min(stream.contiguous + config.window_messages.max(1));
            // While a view change waits for the cut, anyone may hold it (acks of frozen
            // members understate what they hold): ask every member in turn.
            let mut holders: Vec<usize> = (0..self.view.members.len())
                .filter(|&m| m != me && (m == rank || cut.is_some() || self.acked[m][rank] >= from))
                .collect();
            if let Some(cut) = cut {
                let holder = cut.holder.index();
                if holder != me && holder < self.view.members.len() {
                    holders.insert(0, holder);
                }
            }
            let attempts = stream.naks_without_progress as usize;
            let holder = holders[attempts % holders.len()];
            let stream = &mut self.streams[rank];
            stream.last_nak = Some(now);
            stream.naks_without_progress += 1;
            out.push(MulticastOutput::Send {
                to: self.view.members[holder].addr,
                body: Body::Nak {
                    view: self.view.id,
                    origin: Rank::of(rank),
                    from,
                    to,
                },
            });
        }
    }

    /// Credit flow control: moves multicasts from the front of `outbox` into this member's
    /// stream while fewer than `window_messages` entries and (past the first, so it never
    /// stalls) at most the byte window's limit of payload bytes of its own are not yet
    /// stable. The byte window first adapts to how long the entries stabilized since the
    /// last check took.
    pub(super) fn take_from_outbox(
        &mut self,
        outbox: &mut VecDeque<(Ordering, Bytes)>,
        config: &MulticastConfig,
    ) {
        if let Some((delay, freed)) = self.stabilized.take() {
            self.window.on_stable(self.now, delay, freed, config);
        }
        let window_bytes = self.window.limit(config);
        let me = self.my_rank;
        while let Some((ordering, payload)) = outbox.front() {
            let seq = self.next_seq();
            let clock = if *ordering == Ordering::Causal {
                self.streams.iter().map(|s| s.delivered).collect()
            } else {
                Vec::new()
            };
            let entry = Entry {
                seq,
                ordering: *ordering,
                clock,
                item: Item::Payload(payload.clone()),
            };
            let in_flight = seq.0 - 1 - self.streams[me.index()].stable.0;
            let bytes = entry_bytes(&entry);
            let has_credit = in_flight < config.window_messages
                && (in_flight == 0 || self.unstable_bytes + bytes <= window_bytes);
            if !has_credit {
                self.window.limited = true;
                break;
            }
            self.unstable_bytes += bytes;
            self.insert(me, entry, u64::MAX / 4);
            self.own_sent_at.push_back((seq, self.now));
            outbox.pop_front();
        }
    }

    /// Takes a `Data` batch of stream `origin`: drops ill-formed entries, inserts the rest.
    /// Returns the number of entries that were not new, or `None` if `origin` is no stream
    /// this member takes entries of (out of range, or its own).
    pub(super) fn receive_data(
        &mut self,
        origin: Rank,
        entries: Vec<Entry>,
        window: u64,
    ) -> Option<u64> {
        let mut duplicates = 0;
        let n = self.streams.len();
        if origin.index() >= n || origin == self.my_rank {
            return None;
        }
        let before = self.streams[origin.index()].contiguous;
        for entry in entries {
            let well_formed = match &entry.item {
                Item::Payload(_) => {
                    entry.clock.is_empty()
                        || (entry.ordering == Ordering::Causal && entry.clock.len() == n)
                }
                Item::Order(places) => {
                    origin == Rank::SEQUENCER
                        && places.iter().all(|&(r, q)| r.index() < n && q > Seq::ZERO)
                }
            };
            if !well_formed || (entry.ordering == Ordering::Causal && entry.clock.len() != n) {
                continue;
            }
            if !self.insert(origin, entry, window) {
                duplicates += 1;
            }
        }
        let stream = &mut self.streams[origin.index()];
        if stream.contiguous > before {
            stream.naks_without_progress = 0;
            stream.stalled_since = None;
            self.refresh_stability();
        }
        Some(duplicates)
    }

    /// Answers a `Nak` of member `from` for stream `origin`, entries `first..=to` (at most a
    /// window): what is still buffered goes back in batches. Returns the entries resent.
    pub(super) fn retransmit(
        &self,
        from: Member,
        origin: Rank,
        first: Seq,
        to: Seq,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) -> u64 {
        if origin.index() >= self.streams.len() || !self.view.contains(from.id) || first > to {
            return 0;
        }
        let view = self.view.id;
        let to = to.min(first.saturating_add(config.window_messages));
        let entries = self.streams[origin.index()]
            .buffer
            .range(first..=to)
            .map(|(_, e)| e);
        let batches = batch(entries, config.batch_bytes);
        let mut retransmitted = 0;
        for entries in batches {
            retransmitted += entries.len() as u64;
            out.push(MulticastOutput::Send {
                to: from.addr,
                body: Body::Data {
                    view,
                    origin,
                    entries,
                },
            });
        }
        retransmitted
    }

    /// A one-line account of the streams, for traces.
    pub(super) fn describe(&self) -> String {
        let streams: Vec<String> = self
            .streams
            .iter()
            .map(|s| {
                let head = s.buffer.get(&s.delivered.next()).map(|e| match &e.item {
                    Item::Order(p) => format!("order{p:?}"),
                    Item::Payload(_) => format!("{} {:?}", e.ordering, e.clock),
                });
                format!(
                    "{}/{}/{}/{} head {head:?}",
                    s.delivered, s.contiguous, s.highest_known, s.stable
                )
            })
            .collect();
        format!(
            "{} rank {} limit {:?} records {} ordered {:?} streams(deliv/contig/known/stable) {:?} queue {:?}",
            self.view.id,
            self.my_rank,
            self.limit,
            self.order.records_upto,
            self.order.ordered_upto,
            streams,
            self.order.total_queue.iter().take(3).collect::<Vec<_>>()
        )
    }
}
