//! View-synchronous reliable multicast core: one instance per group a process belongs to,
//! owned by that group's membership core, which drives its view changes.
//!
//! # Streams
//!
//! In each view, every member owns a *stream*: its entries carry sequence numbers from 1.
//! Receivers hold entries until every member of the view holds them (*stable*, learnt from
//! `Ack` vectors) and they were delivered, then drop them. Gaps are asked for with `Nak`
//! (to the origin, or to any member whose ack shows it holds the range). A sender may have at
//! most `window_messages` entries and `window_bytes` payload bytes that are not yet stable
//! (credit flow control); more multicasts wait in a bounded outbox, and a full outbox refuses
//! with [`MulticastError::Full`]. So a member that stops reading stops the senders, and memory
//! stays bounded until it is evicted.
//!
//! # Ordering
//!
//! Every stream is consumed in sequence order (FIFO). A causal entry also waits until every
//! entry its clock names is delivered. A total entry also waits for its turn in the order
//! that the view's *sequencer* (rank 0, the coordinator) publishes as `Order` entries in its
//! own stream; a new view has a new sequencer. With safe delivery an entry also waits until
//! it is stable.
//!
//! # View synchrony
//!
//! When a member promises in a view change it freezes: it delivers nothing beyond what it
//! held at that moment and sends nothing more in the view. The decided *cut* is, per stream,
//! the maximum any promiser held, so it covers everything any survivor delivered. Survivors
//! fetch what they lack of the cut, deliver exactly the cut (a fixed function of the cut's
//! contents, the same everywhere), then install the next view. Everything past the cut is
//! discarded: it came from members that did not survive.

#[cfg(feature = "planted-bugs")]
use super::planted::{self, PlantedBug};
use super::Time;
use crate::id::{ProcessId, ViewId};
use crate::view::{Member, View, ViewChange};
use crate::wire::{Body, CutEntry, Decision, Entry, FlushReport, Item, Ordering};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// How often a member acknowledges even when nothing changed, so peers learn of lost tails.
const IDLE_ACK_INTERVAL: Duration = Duration::from_millis(100);

/// When a multicast counts as deliverable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// As soon as its order allows.
    #[default]
    Agreed,
    /// Only once every member of the view holds it.
    Safe,
}

/// Multicast settings of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastConfig {
    /// Default ordering of the group's multicasts.
    pub ordering: Ordering,
    /// Agreed or safe delivery.
    pub delivery: Delivery,
    /// Most entries a member may have sent and not yet seen stable.
    pub window_messages: u64,
    /// Most payload bytes a member may have sent and not yet seen stable.
    pub window_bytes: usize,
    /// Most multicasts waiting for credit (or for a view change to end) before
    /// `multicast` refuses.
    pub outbox_messages: usize,
    /// Largest payload accepted, in bytes. Larger multicasts are refused, not fragmented.
    pub payload_bytes_max: usize,
    /// Largest `Data` frame body built from a batch of entries, in bytes.
    pub batch_bytes: usize,
    /// Least time between two acks of the same view while nothing urges one.
    pub ack_interval: Duration,
    /// Least time between two retransmission requests for the same stream.
    pub nak_interval: Duration,
    /// Size of a state transfer chunk.
    pub state_chunk_bytes: usize,
    /// Chunks a provider sends per request.
    pub state_window_chunks: u64,
    /// Largest state accepted in a transfer.
    pub state_bytes_max: u64,
    /// How long a joiner waits for a chunk before asking again.
    pub state_retry: Duration,
    /// How long a survivor may wait for the entries of a cut before it gives up on them and
    /// asks for a state transfer instead.
    pub flush_fetch_timeout: Duration,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        MulticastConfig {
            ordering: Ordering::Total,
            delivery: Delivery::Agreed,
            window_messages: 8192,
            window_bytes: 16 << 20,
            outbox_messages: 8192,
            payload_bytes_max: 256 << 10,
            batch_bytes: 60 << 10,
            ack_interval: Duration::from_millis(20),
            nak_interval: Duration::from_millis(100),
            state_chunk_bytes: 256 << 10,
            state_window_chunks: 4,
            state_bytes_max: 1 << 30,
            state_retry: Duration::from_millis(300),
            flush_fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// A delivered multicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Who multicast it.
    pub sender: ProcessId,
    /// The view it was sent and is delivered in.
    pub view: ViewId,
    /// Its position in the sender's stream of that view.
    pub seq: u64,
    /// Its ordering.
    pub ordering: Ordering,
    /// The application bytes.
    pub payload: Bytes,
}

/// What the multicast core asks its shell to do or tell the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MulticastOutput {
    /// Send `body`, scoped to this group, to `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message.
        body: Body,
    },
    /// Send `body` to each of `to` (one frame, sealed once).
    SendAll {
        /// Destination addresses.
        to: Vec<SocketAddr>,
        /// The message.
        body: Body,
    },
    /// Deliver a multicast to the service.
    Deliver(Message),
    /// A view change began: the service should expect no deliveries until the next view, and
    /// its multicasts wait until then.
    Block,
    /// The service's next view: everything of the previous view has been delivered.
    View(ViewChange),
    /// Take a snapshot of the service state now (after the last delivery of the previous
    /// view) and hand it to [`Multicast::handle_snapshot`]; joiners of `view` need it.
    SnapshotWanted(ViewId),
    /// Replace the service state with `state` (a joiner's transfer is complete). Followed by
    /// the `View` it starts in.
    Restore {
        /// The view the state is the start of.
        view: ViewId,
        /// The state.
        state: Bytes,
    },
    /// A point-to-point message from a member.
    Direct {
        /// Sender.
        from: ProcessId,
        /// The message.
        payload: Bytes,
    },
}

/// Why a multicast was refused. Nothing was queued or sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MulticastError {
    /// The process is not a member of the group.
    #[error("not a member of the group")]
    NotMember,
    /// The payload exceeds `payload_bytes_max` (multicasts are not fragmented).
    #[error("payload of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Flow control: the outbox holds `outbox_messages` multicasts waiting for credit.
    #[error("outbox full ({0} multicasts waiting for credit); retry later")]
    Full(usize),
}

#[derive(Debug, Default)]
struct Stream {
    /// Entries received and not yet both delivered and stable.
    buffer: BTreeMap<u64, Entry>,
    /// Every entry up to this one has been received.
    contiguous: u64,
    /// Entries up to this one have been delivered (consumed).
    delivered: u64,
    /// The highest sequence number known to exist.
    highest_known: u64,
    /// Entries up to this one are held by every member.
    stable: u64,
    last_nak: Option<Time>,
    naks_without_progress: u32,
    /// Since when entries known to exist are missing without progress.
    stalled_since: Option<Time>,
    /// Abandoned at the end of the view: its head can never be delivered.
    abandoned: bool,
}

impl Stream {
    /// The order of a stream's counters, which delivery, stability and garbage collection
    /// rely on: nothing is delivered or stable that was not received in order, and nothing
    /// is received in order that is not known to exist.
    fn debug_check(&self) {
        debug_assert!(
            self.delivered <= self.contiguous && self.contiguous <= self.highest_known,
            "delivered {} <= contiguous {} <= highest known {}",
            self.delivered,
            self.contiguous,
            self.highest_known
        );
        // A planted bug makes stability run one ahead on purpose (the simulator must catch it).
        #[cfg(not(feature = "planted-bugs"))]
        debug_assert!(
            self.stable <= self.contiguous,
            "stable {} <= contiguous {}",
            self.stable,
            self.contiguous
        );
    }
}

/// The multicast state of one view.
#[derive(Debug)]
struct ViewStream {
    view: View,
    my_rank: usize,
    streams: Vec<Stream>,
    /// `acked[m][r]`: member `m` holds stream `r` up to this.
    acked: Vec<Vec<u64>>,
    /// My entries up to this one were sent to the others.
    sent_upto: u64,
    /// Payload bytes of my entries that are not yet stable.
    unstable_bytes: usize,
    /// Sequencer stream entries up to this one were read for order records.
    records_upto: u64,
    /// Total-order entries in their agreed order, not yet delivered.
    total_queue: VecDeque<(u32, u64)>,
    /// Sequencer only: per stream, entries up to this one were given a place in the order.
    ordered_upto: Vec<u64>,
    /// Sequencer only: places given and not yet published.
    to_order: Vec<(u32, u64)>,
    /// Frozen by a view change: deliver nothing past this (per stream).
    limit: Option<Vec<u64>>,
    /// Delivering the cut: stability no longer required.
    flushing: bool,
    last_ack: Option<Time>,
    ack_dirty: bool,
    received_since_ack: u64,
}

impl ViewStream {
    fn new(view: View, me: ProcessId) -> Self {
        debug_assert!(
            view.is_well_formed(),
            "streams for an ill-formed view {view:?}"
        );
        let n = view.members.len();
        let my_rank = view
            .rank_of(me)
            .expect("a view stream is made for a member");
        ViewStream {
            view,
            my_rank,
            streams: (0..n).map(|_| Stream::default()).collect(),
            acked: vec![vec![0; n]; n],
            sent_upto: 0,
            unstable_bytes: 0,
            records_upto: 0,
            total_queue: VecDeque::new(),
            ordered_upto: vec![0; n],
            to_order: Vec::new(),
            limit: None,
            flushing: false,
            last_ack: None,
            ack_dirty: true,
            received_since_ack: 0,
        }
    }

    fn id(&self) -> ViewId {
        self.view.id
    }

    fn received(&self) -> Vec<u64> {
        self.streams.iter().map(|s| s.contiguous).collect()
    }

    /// What this member acknowledges: what it holds, but never more than `window` entries
    /// past what it delivered, so a member that does not deliver (waiting for its state, or
    /// slow) withholds credit and the senders stop instead of filling its buffers.
    ///
    /// With safe delivery the sequencer's stream counts as consumed up to the order records
    /// read: records are read only once stable, and the entries they order may lie far behind
    /// them, so capping at what was delivered would wait on itself.
    fn ack_vector(&self, window: u64, safe: bool) -> Vec<u64> {
        self.streams
            .iter()
            .enumerate()
            .map(|(rank, s)| {
                if rank == self.my_rank {
                    return s.contiguous.min(self.limit_of(rank));
                }
                let consumed = if rank == 0 && safe {
                    s.delivered.max(self.records_upto)
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

    fn holds(&self, cut: &[CutEntry]) -> bool {
        cut.len() == self.streams.len()
            && self
                .streams
                .iter()
                .zip(cut)
                .all(|(s, c)| s.contiguous >= c.upto)
    }

    fn next_seq(&self) -> u64 {
        self.streams[self.my_rank].contiguous + 1
    }

    fn others(&self) -> impl Iterator<Item = &Member> {
        let me = self.my_rank;
        self.view
            .members
            .iter()
            .enumerate()
            .filter(move |(r, _)| *r != me)
            .map(|(_, m)| m)
    }

    /// Adds an entry of stream `origin`. Returns whether it was new.
    fn insert(&mut self, origin: usize, entry: Entry, window: u64) -> bool {
        let stream = &mut self.streams[origin];
        if entry.seq <= stream.contiguous || stream.buffer.contains_key(&entry.seq) {
            return false;
        }
        // A correct sender keeps at most a window of payloads (plus the sequencer's order
        // records, bounded by everyone's windows) unstable; a buffer far past that is a bug or
        // a hostile peer. Drop the entry: it is asked for again once there is room.
        if stream.buffer.len() as u64 >= window.saturating_mul(8).saturating_add(1024) {
            return false;
        }
        stream.highest_known = stream.highest_known.max(entry.seq);
        stream.buffer.insert(entry.seq, entry);
        while stream.buffer.contains_key(&(stream.contiguous + 1)) {
            stream.contiguous += 1;
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

    fn limit_of(&self, rank: usize) -> u64 {
        self.limit.as_ref().map_or(u64::MAX, |l| l[rank])
    }

    /// Reads the sequencer's order records that are contiguous and within the limit. With
    /// safe delivery only stable records count, so that an order a process delivered in is
    /// one every member holds (and the cut therefore keeps).
    fn consume_records(&mut self, safe: bool) {
        let mut upto = self.streams[0].contiguous.min(self.limit_of(0));
        if safe && !self.flushing {
            upto = upto.min(self.streams[0].stable);
        }
        while self.records_upto < upto {
            self.records_upto += 1;
            if let Some(Entry {
                item: Item::Order(places),
                ..
            }) = self.streams[0].buffer.get(&self.records_upto)
            {
                self.total_queue.extend(places.iter().copied());
            }
        }
    }

    /// Sequencer: gives every contiguous total-order entry a place.
    fn assign_order(&mut self) {
        if self.my_rank != 0 || self.limit.is_some() {
            return;
        }
        for (rank, stream) in self.streams.iter().enumerate() {
            #[cfg(feature = "planted-bugs")]
            if planted::active(PlantedBug::SequencerOrdersTwice) {
                self.ordered_upto[rank] = self.ordered_upto[rank].min(stream.delivered);
            }
            while self.ordered_upto[rank] < stream.contiguous {
                self.ordered_upto[rank] += 1;
                let seq = self.ordered_upto[rank];
                if let Some(entry) = stream.buffer.get(&seq) {
                    if entry.ordering == Ordering::Total && matches!(entry.item, Item::Payload(_)) {
                        self.to_order.push((rank as u32, seq));
                    }
                }
            }
        }
    }

    /// Delivers everything the ordering rules allow.
    fn deliver(&mut self, safe: bool, out: &mut Vec<MulticastOutput>) {
        self.consume_records(safe);
        loop {
            let mut progress = false;
            for rank in 0..self.streams.len() {
                while self.deliver_head(rank, safe, out) {
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn deliver_head(&mut self, rank: usize, safe: bool, out: &mut Vec<MulticastOutput>) -> bool {
        let stream = &self.streams[rank];
        let next = stream.delivered + 1;
        if stream.abandoned || next > stream.contiguous || next > self.limit_of(rank) {
            return false;
        }
        let entry = &stream.buffer[&next];
        let deliverable = match &entry.item {
            Item::Order(_) => true,
            Item::Payload(_) => {
                let stable_enough = !safe || self.flushing || next <= stream.stable;
                stable_enough
                    && match entry.ordering {
                        Ordering::Fifo => true,
                        Ordering::Causal => entry
                            .clock
                            .iter()
                            .enumerate()
                            .all(|(k, c)| k == rank || self.streams[k].delivered >= *c),
                        Ordering::Total => self.total_queue.front() == Some(&(rank as u32, next)),
                    }
            }
        };
        if !deliverable {
            return false;
        }
        if entry.ordering == Ordering::Total && matches!(entry.item, Item::Payload(_)) {
            self.total_queue.pop_front();
        }
        if let Item::Payload(payload) = &entry.item {
            out.push(MulticastOutput::Deliver(Message {
                sender: self.view.members[rank].id,
                view: self.view.id,
                seq: next,
                ordering: entry.ordering,
                payload: payload.clone(),
            }));
        }
        self.streams[rank].delivered = next;
        self.streams[rank].debug_check();
        self.collect(rank);
        true
    }

    /// Drops entries of stream `rank` that are delivered, stable and (the sequencer's) read
    /// for order records.
    fn collect(&mut self, rank: usize) {
        let records_upto = if rank == 0 {
            self.records_upto
        } else {
            u64::MAX
        };
        let stream = &mut self.streams[rank];
        let upto = stream.delivered.min(stream.stable).min(records_upto);
        while let Some((&seq, _)) = stream.buffer.first_key_value() {
            if seq > upto {
                break;
            }
            stream.buffer.pop_first();
        }
    }

    fn handle_ack(&mut self, from_rank: usize, received: &[u64]) {
        for (rank, &upto) in received.iter().enumerate() {
            let acked = &mut self.acked[from_rank][rank];
            *acked = (*acked).max(upto);
            let stream = &mut self.streams[rank];
            stream.highest_known = stream.highest_known.max(upto);
        }
        self.refresh_stability();
    }

    fn refresh_stability(&mut self) {
        let me = self.my_rank;
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
                        .range(old + 1..=stable)
                        .map(|(_, e)| entry_bytes(e))
                        .sum();
                    self.unstable_bytes = self.unstable_bytes.saturating_sub(freed);
                }
                self.streams[rank].stable = stable;
                self.streams[rank].debug_check();
                self.collect(rank);
            }
        }
    }

    /// Ends the view at `cut`: delivers exactly the entries the cut determines, the same at
    /// every survivor whatever each had delivered before.
    fn deliver_cut(&mut self, cut: &[CutEntry], safe: bool, out: &mut Vec<MulticastOutput>) {
        debug_assert_eq!(
            cut.len(),
            self.streams.len(),
            "a cut has a stream per member"
        );
        self.limit = Some(cut.iter().map(|c| c.upto).collect());
        self.flushing = true;
        self.consume_records(safe);
        // Places given to entries past the cut are void.
        self.total_queue
            .retain(|&(r, q)| cut.get(r as usize).is_some_and(|c| q <= c.upto));
        let mut appended_unordered = false;
        loop {
            self.deliver(safe, out);
            if !appended_unordered {
                // Total-order entries of the cut that the sequencer never ordered follow the
                // ordered ones, by (rank, seq).
                appended_unordered = true;
                let queued: BTreeSet<(u32, u64)> = self.total_queue.iter().copied().collect();
                for (rank, stream) in self.streams.iter().enumerate() {
                    if stream.delivered >= cut[rank].upto {
                        continue;
                    }
                    for (&seq, entry) in stream.buffer.range(stream.delivered + 1..=cut[rank].upto)
                    {
                        let place = (rank as u32, seq);
                        if entry.ordering == Ordering::Total
                            && matches!(entry.item, Item::Payload(_))
                            && !queued.contains(&place)
                        {
                            self.total_queue.push_back(place);
                        }
                    }
                }
                continue;
            }
            // Still stuck: a head whose causal past lies beyond the cut, or the total order
            // waiting on such a stream. Abandon that stream (only a non-survivor's can be).
            let stuck = match self.total_queue.front() {
                Some(&(r, _)) if !self.streams[r as usize].abandoned => Some(r as usize),
                _ => (0..self.streams.len()).find(|&r| {
                    let s = &self.streams[r];
                    !s.abandoned && s.delivered < cut[r].upto
                }),
            };
            let Some(rank) = stuck else { break };
            self.streams[rank].abandoned = true;
            self.total_queue.retain(|&(r, _)| r as usize != rank);
        }
    }

    /// Sends my unsent entries, batched.
    fn send_new(&mut self, batch_bytes: usize, out: &mut Vec<MulticastOutput>) {
        let upto = self.next_seq() - 1;
        if self.sent_upto >= upto {
            return;
        }
        let me = self.my_rank;
        let batches = batch(
            self.streams[me]
                .buffer
                .range(self.sent_upto + 1..=upto)
                .map(|(_, e)| e),
            batch_bytes,
        );
        self.sent_upto = upto;
        for entries in batches {
            self.send_to_others(
                Body::Data {
                    view: self.view.id,
                    origin: me as u32,
                    entries,
                },
                out,
            );
        }
    }

    /// One output for all the other members: the shell seals the frame once.
    fn send_to_others(&self, body: Body, out: &mut Vec<MulticastOutput>) {
        let mut to: Vec<SocketAddr> = self.others().map(|m| m.addr).collect();
        // Two incarnations of a node may share an address for a view: one frame each address.
        to.sort_unstable();
        to.dedup();
        if !to.is_empty() {
            out.push(MulticastOutput::SendAll { to, body });
        }
    }

    fn send_ack(&mut self, now: Time, window: u64, safe: bool, out: &mut Vec<MulticastOutput>) {
        self.last_ack = Some(now);
        self.ack_dirty = false;
        self.received_since_ack = 0;
        let body = Body::Ack {
            view: self.view.id,
            received: self.ack_vector(window, safe),
        };
        self.send_to_others(body, out);
    }

    /// Asks for missing entries, up to what is known to exist or, while a view change waits
    /// for it, up to the cut. Each attempt asks another member that may hold the range: the
    /// origin, members whose acks show they hold the first missing entry, the cut's holder.
    fn request_missing(
        &mut self,
        now: Time,
        target: Option<&[CutEntry]>,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        for rank in 0..self.streams.len() {
            if rank == self.my_rank {
                continue;
            }
            let stream = &self.streams[rank];
            let cut = target.and_then(|c| c.get(rank));
            let wanted = stream.highest_known.max(cut.map_or(0, |c| c.upto));
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
            let from = stream.contiguous + 1;
            let to = wanted.min(stream.contiguous + config.window_messages.max(1));
            // While a view change waits for the cut, anyone may hold it (acks of frozen
            // members understate what they hold): ask every member in turn.
            let mut holders: Vec<usize> = (0..self.view.members.len())
                .filter(|&m| {
                    m != self.my_rank && (m == rank || cut.is_some() || self.acked[m][rank] >= from)
                })
                .collect();
            if let Some(cut) = cut {
                let holder = cut.holder as usize;
                if holder != self.my_rank && holder < self.view.members.len() {
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
                    origin: rank as u32,
                    from,
                    to,
                },
            });
        }
    }
}

fn entry_bytes(entry: &Entry) -> usize {
    let item = match &entry.item {
        Item::Payload(p) => p.len(),
        Item::Order(places) => places.len() * 12,
    };
    item + entry.clock.len() * 8 + 24
}

fn batch<'a>(entries: impl Iterator<Item = &'a Entry>, batch_bytes: usize) -> Vec<Vec<Entry>> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for entry in entries {
        let bytes = entry_bytes(entry);
        if !current.is_empty() && size + bytes > batch_bytes {
            batches.push(std::mem::take(&mut current));
            size = 0;
        }
        size += bytes;
        current.push(entry.clone());
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// A view ending: the old streams, and the cut to deliver before the next view.
#[derive(Debug)]
struct Ending {
    stream: ViewStream,
    cut: Vec<CutEntry>,
    decision: Decision,
    since: Time,
}

/// A joiner's incoming state transfer.
#[derive(Debug)]
struct Incoming {
    view: ViewId,
    provider: Member,
    received: BytesMut,
    total: Option<u64>,
    requested_upto: u64,
    last_progress: Time,
}

/// A provider's snapshot for the joiners of `view`.
#[derive(Debug)]
struct Snapshot {
    view: ViewId,
    state: Option<Bytes>,
}

/// Counters of the multicast core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticastStats {
    /// Multicasts accepted from the service.
    pub multicasts: u64,
    /// Multicasts delivered.
    pub delivered: u64,
    /// Entries received twice (or retransmitted needlessly).
    pub duplicates: u64,
    /// Entries retransmitted in answer to a `Nak`.
    pub retransmitted: u64,
    /// Multicasts refused because the outbox was full.
    pub refused_full: u64,
    /// State transfers completed as a joiner.
    pub state_transfers: u64,
    /// Snapshots the service could not take (this process then got the state again).
    pub snapshots_failed: u64,
    /// Views this process entered as a joiner with no voter to get the state from (it waits
    /// for a later view instead of starting empty). Never happens: decisions always name a
    /// holder. Checked to stay 0.
    pub states_lost: u64,
}

/// The multicast core of one group at one process.
#[derive(Debug)]
pub struct Multicast {
    me: ProcessId,
    config: MulticastConfig,
    /// The installed view's streams (delivery waits while `ending` is `Some`).
    current: Option<ViewStream>,
    /// The previous view, while its cut is fetched and delivered.
    ending: Option<Ending>,
    /// The previous view once its cut is delivered, kept until the next view change to
    /// answer retransmission requests: members of the new view that did not accept the
    /// decision may still be fetching its cut from this one. Only its unstable entries are
    /// still buffered (about a window per sender).
    retired: Option<ViewStream>,
    /// Whether the service state is in step with the group.
    ready: bool,
    /// Installed a view this process cannot vouch for (no cut, no state): a state transfer
    /// must be arranged through a new view change.
    needs_resync: bool,
    /// The last view the service was told of.
    service_view: Option<View>,
    outbox: VecDeque<(Ordering, Bytes)>,
    incoming: Option<Incoming>,
    snapshot: Option<Snapshot>,
    /// The service is behind: deliver nothing for now (credit is withheld meanwhile).
    paused: bool,
    /// Excluded and joining again: multicasts still go to the outbox, for the next view.
    rejoining: bool,
    /// A cut of the current view this member must hold before it answers `Accepted`.
    fetch_target: Option<(ViewId, Vec<CutEntry>)>,
    stats: MulticastStats,
}

impl Multicast {
    /// A multicast core for process `me`, not yet in any view.
    pub fn new(me: ProcessId, config: MulticastConfig) -> Self {
        Multicast {
            me,
            config,
            current: None,
            ending: None,
            retired: None,
            ready: false,
            needs_resync: false,
            service_view: None,
            outbox: VecDeque::new(),
            incoming: None,
            snapshot: None,
            paused: false,
            fetch_target: None,
            rejoining: false,
            stats: MulticastStats::default(),
        }
    }

    /// Pauses or resumes deliveries (the service's mailbox is full or has room again).
    /// Returns whether the setting changed. A paused member acknowledges at most a window
    /// past what it delivered, so the senders wait for it.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        let changed = self.paused != paused;
        self.paused = paused;
        changed
    }

    fn may_deliver(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if planted::active(PlantedBug::JoinerDeliversBeforeRestore) && self.incoming.is_some() {
            return self.ending.is_none() && !self.paused;
        }
        self.ready && self.ending.is_none() && !self.paused
    }

    /// The settings.
    pub fn config(&self) -> &MulticastConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> MulticastStats {
        self.stats
    }

    /// Whether the service state is in step with the group (not waiting for a transfer).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether this process holds the group's state as of its installed view: it is ready and
    /// has delivered the cut that ended the previous view.
    pub fn holds_state(&self) -> bool {
        self.ready && self.ending.is_none()
    }

    /// Whether this process needs a view change that lists it as a joiner, to get the state.
    pub fn needs_resync(&self) -> bool {
        self.needs_resync
    }

    /// The view the service was last told of.
    pub fn service_view(&self) -> Option<&View> {
        self.service_view.as_ref()
    }

    /// Multicasts waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Entries held in buffers (sent or received, not yet collected), over all streams.
    pub fn buffered_entries(&self) -> usize {
        self.current
            .iter()
            .chain(self.ending.as_ref().map(|e| &e.stream))
            .chain(self.retired.as_ref())
            .flat_map(|v| v.streams.iter())
            .map(|s| s.buffer.len())
            .sum()
    }

    /// A one-line account of the core's state, for traces.
    pub fn describe(&self) -> String {
        let stream = |v: &ViewStream| {
            let streams: Vec<String> = v
                .streams
                .iter()
                .map(|s| {
                    let head = s.buffer.get(&(s.delivered + 1)).map(|e| match &e.item {
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
                v.view.id,
                v.my_rank,
                v.limit,
                v.records_upto,
                v.ordered_upto,
                streams,
                v.total_queue.iter().take(3).collect::<Vec<_>>()
            )
        };
        format!(
            "ready {} resync {} paused {} outbox {} current [{}] ending [{}] incoming {:?}",
            self.ready,
            self.needs_resync,
            self.paused,
            self.outbox.len(),
            self.current.as_ref().map(stream).unwrap_or_default(),
            self.ending
                .as_ref()
                .map(|e| format!("{} cut {:?} since {:?}", stream(&e.stream), e.cut, e.since))
                .unwrap_or_default(),
            self.incoming
                .as_ref()
                .map(|i| (i.view, i.received.len(), i.total)),
        )
    }

    /// What this member holds of `base`'s streams, for its promise.
    pub fn report(&self, base: ViewId) -> FlushReport {
        FlushReport {
            received: self
                .current
                .as_ref()
                .filter(|v| v.id() == base)
                .map(|v| v.received())
                .unwrap_or_default(),
            // A survivor still fetching the previous view's cut does not hold the state yet:
            // a view decided now lists it as a learner (`install_decided` treats it as a
            // joiner), so it is never the next view's only voter without the state.
            ready: self.holds_state(),
        }
    }

    /// This member promised in the view change from `base`: it stops delivering past what it
    /// holds and stops sending.
    pub fn freeze(&mut self, base: ViewId, out: &mut Vec<MulticastOutput>) {
        let Some(view) = self.current.as_mut().filter(|v| v.id() == base) else {
            return;
        };
        if view.limit.is_some() {
            return;
        }
        view.limit = Some(view.received());
        if self.ready && self.ending.is_none() {
            out.push(MulticastOutput::Block);
        }
    }

    /// Whether this member holds every entry of `cut` of `base`.
    pub fn holds(&self, base: ViewId, cut: &[CutEntry]) -> bool {
        if cut.iter().all(|c| c.upto == 0) {
            return true;
        }
        self.current
            .as_ref()
            .is_some_and(|v| v.id() == base && v.holds(cut))
    }

    /// Asks for what this member lacks of `cut` of `base`.
    pub fn fetch(
        &mut self,
        now: Time,
        base: ViewId,
        cut: &[CutEntry],
        out: &mut Vec<MulticastOutput>,
    ) {
        let config = self.config;
        if let Some(view) = self.current.as_mut().filter(|v| v.id() == base) {
            if cut.len() == view.streams.len() {
                self.fetch_target = Some((base, cut.to_vec()));
                view.request_missing(now, Some(cut), &config, out);
            }
        }
    }

    /// The group's first view, created by this process: it starts with an empty state.
    pub fn install_created(&mut self, view: &View, out: &mut Vec<MulticastOutput>) {
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.retired = None;
        self.incoming = None;
        self.ready = true;
        self.needs_resync = false;
        self.tell_view(view, out);
    }

    /// A view decided as the successor of `base` was installed.
    pub fn install_decided(
        &mut self,
        now: Time,
        base: ViewId,
        decision: &Decision,
        out: &mut Vec<MulticastOutput>,
    ) {
        let view = &decision.view;
        // A new view change: the view before the base is no longer anyone's cut.
        self.retired = None;
        // A member of the base that holds its state by now is a survivor even if the decision
        // lists it as a learner (it was still fetching the previous cut, or restoring, when it
        // promised): it promised, so its delivery stopped at what it reported, and the cut
        // covers that. Dropping its state would throw away a copy the view may need: the
        // decision's voters may have lost theirs since (a failed snapshot).
        let survivor = self.ready
            && self.ending.is_none()
            && self.current.as_ref().is_some_and(|v| {
                v.id() == base && (!decision.joiners.contains(&self.me) || v.limit.is_some())
            });
        if survivor {
            let stream = self.current.take().expect("checked");
            self.ending = Some(Ending {
                stream,
                cut: decision.cut.clone(),
                decision: decision.clone(),
                since: now,
            });
            self.current = Some(ViewStream::new(view.clone(), self.me));
            self.try_finish_ending(now, out);
        } else {
            // Not continuing with its state, but what it received of the base may be in the
            // cut and held nowhere else (its own multicasts, the sequencer's order): keep
            // answering for it until the next view change, as a survivor does.
            let base_streams = self.current.take().filter(|v| v.id() == base);
            if decision.joiners.contains(&self.me) {
                self.start_as_joiner(now, decision, out);
            } else {
                self.install_unverified(view);
            }
            if base_streams.is_some() {
                self.retired = base_streams;
            }
        }
    }

    /// A view learnt without its cut (a resent install or a newer view heard of): this
    /// process cannot tell what the group delivered, so it waits for a state transfer.
    pub fn install_unverified(&mut self, view: &View) {
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.retired = None;
        self.incoming = None;
        self.ready = false;
        self.needs_resync = true;
    }

    /// Streams for `view`, which this process is listed in but never installed, so that it
    /// can hold a cut of it as an acceptor. It delivers nothing there.
    pub fn shadow(&mut self, view: &View) {
        if self.current.as_ref().is_some_and(|v| v.id() == view.id) || !view.contains(self.me) {
            return;
        }
        // The streams it kept of that view since it left it hold what it had: the cut may
        // need them (it may be the only holder of its own entries).
        let kept = self.retired.take().filter(|r| r.id() == view.id);
        self.current = Some(kept.unwrap_or_else(|| ViewStream::new(view.clone(), self.me)));
        self.ending = None;
        self.ready = false;
    }

    /// This process is no longer a member (excluded or left): its streams are dropped.
    /// Multicasts in the outbox are kept for the next view after a rejoin, unless `left`.
    pub fn leave_group(&mut self, left: bool) {
        // Excluded from a view (not a first join, not a leave): keep accepting multicasts.
        self.rejoining = !left && (self.rejoining || self.current.is_some());
        // The view it was in may have ended with a cut this process holds and the new view's
        // members still fetch: keep answering for it until this process installs a view.
        let last = self.current.take();
        let ending = self.ending.take().map(|e| e.stream);
        if let Some(stream) = last.or(ending) {
            self.retired = Some(stream);
        }
        self.incoming = None;
        self.snapshot = None;
        self.ready = false;
        self.needs_resync = false;
        self.service_view = None;
        if left {
            self.outbox.clear();
        }
    }

    fn start_as_joiner(&mut self, now: Time, decision: &Decision, out: &mut Vec<MulticastOutput>) {
        let view = &decision.view;
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.needs_resync = false;
        // The voters hold the state (a decision is never made without one); the first is the
        // provider.
        let provider = view
            .voters()
            .iter()
            .find(|m| !decision.joiners.contains(&m.id))
            .copied();
        match provider {
            Some(provider) => {
                self.ready = false;
                self.incoming = Some(Incoming {
                    view: view.id,
                    provider,
                    received: BytesMut::new(),
                    total: None,
                    requested_upto: 0,
                    last_progress: now,
                });
                self.request_state(now, out);
            }
            None => {
                // A decision naming no holder of the state is never composed; one that
                // arrives anyway is not followed from nothing: this process waits for its
                // state through a later view change.
                self.incoming = None;
                self.ready = false;
                self.needs_resync = true;
                self.stats.states_lost += 1;
            }
        }
    }

    fn request_state(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        let offset = incoming.received.len() as u64;
        incoming.requested_upto =
            offset + self.config.state_chunk_bytes as u64 * self.config.state_window_chunks;
        incoming.last_progress = now;
        out.push(MulticastOutput::Send {
            to: incoming.provider.addr,
            body: Body::StateRequest {
                view: incoming.view,
                offset,
            },
        });
    }

    fn tell_view(&mut self, view: &View, out: &mut Vec<MulticastOutput>) {
        let change = ViewChange::between(self.service_view.as_ref(), view.clone());
        self.service_view = Some(view.clone());
        out.push(MulticastOutput::View(change));
    }

    /// Delivers the ending view's cut once it is held; then the next view starts.
    fn try_finish_ending(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let safe = self.config.delivery == Delivery::Safe;
        let Some(ending) = self.ending.as_mut() else {
            return;
        };
        if !ending.stream.holds(&ending.cut) {
            if now.saturating_sub(ending.since) >= self.config.flush_fetch_timeout {
                // The entries cannot be had (their holders are gone): fall back to a state
                // transfer in a later view. The current view's entries are kept: this member
                // may be the one holding some that others need.
                self.ending = None;
                self.ready = false;
                self.needs_resync = true;
            }
            return;
        }
        let mut ending = self.ending.take().expect("checked");
        let before = out.len();
        ending.stream.deliver_cut(&ending.cut, safe, out);
        self.count_new(before, out);
        self.retired = Some(ending.stream);
        let view = ending.decision.view.clone();
        self.tell_view(&view, out);
        let has_joiners = view
            .members
            .iter()
            .any(|m| ending.decision.joiners.contains(&m.id));
        let provider = view
            .members
            .iter()
            .find(|m| !ending.decision.joiners.contains(&m.id));
        self.snapshot = None;
        if has_joiners && provider.is_some_and(|p| p.id == self.me) {
            self.snapshot = Some(Snapshot {
                view: view.id,
                state: None,
            });
            out.push(MulticastOutput::SnapshotWanted(view.id));
        }
        self.after_progress(now, out);
    }

    /// The service's snapshot for the joiners of `view`.
    pub fn handle_snapshot(&mut self, view: ViewId, state: Bytes) {
        if let Some(snapshot) = self.snapshot.as_mut().filter(|s| s.view == view) {
            snapshot.state = Some(state);
        }
    }

    /// The service could not take the snapshot for the joiners of `view`: this process no
    /// longer vouches for the state (it gets it again through a view change that lists it as
    /// a joiner), and the joiners get the state from another holder in that view change.
    pub fn handle_snapshot_failed(&mut self, view: ViewId) {
        if self.snapshot.as_ref().is_some_and(|s| s.view == view) {
            self.snapshot = None;
            self.ready = false;
            self.needs_resync = true;
            self.stats.snapshots_failed += 1;
        }
    }

    /// The service multicasts `payload`.
    pub fn multicast(
        &mut self,
        now: Time,
        ordering: Option<Ordering>,
        payload: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) -> Result<(), MulticastError> {
        if self.current.is_none() && self.service_view.is_none() && !self.rejoining {
            return Err(MulticastError::NotMember);
        }
        if payload.len() > self.config.payload_bytes_max {
            return Err(MulticastError::TooLarge {
                size: payload.len(),
                max: self.config.payload_bytes_max,
            });
        }
        if self.outbox.len() >= self.config.outbox_messages {
            self.stats.refused_full += 1;
            return Err(MulticastError::Full(self.outbox.len()));
        }
        self.stats.multicasts += 1;
        self.outbox
            .push_back((ordering.unwrap_or(self.config.ordering), payload));
        self.after_progress(now, out);
        Ok(())
    }

    /// Moves outbox entries into the stream while credit allows, then delivers.
    fn after_progress(&mut self, _now: Time, out: &mut Vec<MulticastOutput>) {
        let safe = self.config.delivery == Delivery::Safe;
        let window_messages = self.config.window_messages;
        let window_bytes = self.config.window_bytes;
        let can_send = self.ready && self.ending.is_none();
        let may_deliver = self.may_deliver();
        let Some(view) = self.current.as_mut() else {
            return;
        };
        if can_send && view.limit.is_none() {
            let me = view.my_rank;
            while let Some((ordering, payload)) = self.outbox.front() {
                let seq = view.next_seq();
                let in_flight = seq - 1 - view.streams[me].stable;
                let has_credit = in_flight < window_messages
                    && (in_flight == 0 || view.unstable_bytes + payload.len() <= window_bytes);
                if !has_credit {
                    break;
                }
                let clock = if *ordering == Ordering::Causal {
                    view.streams.iter().map(|s| s.delivered).collect()
                } else {
                    Vec::new()
                };
                let entry = Entry {
                    seq,
                    ordering: *ordering,
                    clock,
                    item: Item::Payload(payload.clone()),
                };
                view.unstable_bytes += entry_bytes(&entry);
                view.insert(me, entry, u64::MAX / 4);
                self.outbox.pop_front();
            }
        }
        view.assign_order();
        if may_deliver {
            let before = out.len();
            view.deliver(safe, out);
            self.count_new(before, out);
        }
    }

    /// Sends what is waiting: new entries, the sequencer's order records, and an ack when
    /// one is due. The shell calls it after handling a burst of inputs, so entries batch.
    pub fn flush(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let config = self.config;
        let may_deliver = self.may_deliver();
        if let Some(ending) = self.ending.as_mut() {
            if ending.stream.ack_dirty {
                ending.stream.send_ack(
                    now,
                    config.window_messages,
                    config.delivery == Delivery::Safe,
                    out,
                );
            }
        }
        let Some(view) = self.current.as_mut() else {
            return;
        };
        if view.my_rank == 0 && !view.to_order.is_empty() && view.limit.is_none() {
            let places = std::mem::take(&mut view.to_order);
            let entry = Entry {
                seq: view.next_seq(),
                ordering: Ordering::Fifo,
                clock: Vec::new(),
                item: Item::Order(places),
            };
            view.insert(0, entry, u64::MAX / 4);
        }
        view.send_new(config.batch_bytes, out);
        let urgent = view.received_since_ack >= (config.window_messages / 4).max(1);
        // With safe delivery, stability is what delivery waits for: acknowledge at once.
        // Otherwise acks only drive credit and garbage collection, and may wait.
        let due = view.ack_dirty
            && (config.delivery == Delivery::Safe
                || view
                    .last_ack
                    .is_none_or(|t| now.saturating_sub(t) >= config.ack_interval));
        if urgent || due {
            view.send_ack(
                now,
                config.window_messages,
                config.delivery == Delivery::Safe,
                out,
            );
        }
        // Order records are also deliverable entries of the sequencer's own stream.
        if may_deliver {
            let before = out.len();
            view.deliver(config.delivery == Delivery::Safe, out);
            self.count_new(before, out);
        }
    }

    fn count_new(&mut self, before: usize, out: &[MulticastOutput]) {
        self.stats.delivered += out[before..]
            .iter()
            .filter(|o| matches!(o, MulticastOutput::Deliver(_)))
            .count() as u64;
    }

    /// Periodic work: retransmission requests, acks of idle views, state transfer retries,
    /// finishing a view whose cut arrived.
    pub fn handle_tick(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let config = self.config;
        if let Some(ending) = self.ending.as_mut() {
            let cut = ending.cut.clone();
            ending.stream.request_missing(now, Some(&cut), &config, out);
        }
        self.try_finish_ending(now, out);
        if let Some(view) = self.current.as_mut() {
            let target = self
                .fetch_target
                .as_ref()
                .filter(|(base, _)| *base == view.id())
                .map(|(_, cut)| cut.as_slice());
            view.request_missing(now, target, &config, out);
            // A periodic ack even when nothing changed lets peers learn of lost tails.
            if view
                .last_ack
                .is_none_or(|t| now.saturating_sub(t) >= IDLE_ACK_INTERVAL.max(config.ack_interval))
            {
                view.ack_dirty = true;
            }
        }
        if let Some(incoming) = &self.incoming {
            if now.saturating_sub(incoming.last_progress) >= config.state_retry {
                self.request_state(now, out);
            }
        }
        self.flush(now, out);
    }

    /// A multicast-layer message from the member `from`.
    pub fn handle_message(
        &mut self,
        now: Time,
        from: Member,
        body: Body,
        out: &mut Vec<MulticastOutput>,
    ) {
        match body {
            Body::Data {
                view,
                origin,
                entries,
            } => self.handle_data(now, view, origin as usize, entries, out),
            Body::Ack { view, received } => self.handle_ack(now, from, view, received, out),
            Body::Nak {
                view,
                origin,
                from: first,
                to,
            } => self.handle_nak(from, view, origin as usize, first, to, out),
            Body::StateRequest { view, offset } => {
                self.handle_state_request(from, view, offset, out)
            }
            Body::StateChunk {
                view,
                offset,
                total,
                bytes,
            } => self.handle_state_chunk(now, view, offset, total, bytes, out),
            Body::Direct { payload }
                if self
                    .current
                    .as_ref()
                    .is_some_and(|v| v.view.contains(from.id)) =>
            {
                out.push(MulticastOutput::Direct {
                    from: from.id,
                    payload,
                });
            }
            _ => {}
        }
    }

    fn stream_for(&mut self, view: ViewId) -> Option<&mut ViewStream> {
        if let Some(current) = self.current.as_mut().filter(|v| v.id() == view) {
            return Some(current);
        }
        self.ending
            .as_mut()
            .map(|e| &mut e.stream)
            .filter(|v| v.id() == view)
    }

    fn handle_data(
        &mut self,
        now: Time,
        view: ViewId,
        origin: usize,
        entries: Vec<Entry>,
        out: &mut Vec<MulticastOutput>,
    ) {
        let window = self.config.window_messages;
        let mut duplicates = 0;
        let Some(stream) = self.stream_for(view) else {
            return;
        };
        let n = stream.streams.len();
        if origin >= n || origin == stream.my_rank {
            return;
        }
        let before = stream.streams[origin].contiguous;
        for entry in entries {
            let well_formed = match &entry.item {
                Item::Payload(_) => {
                    entry.clock.is_empty()
                        || (entry.ordering == Ordering::Causal && entry.clock.len() == n)
                }
                Item::Order(places) => {
                    origin == 0 && places.iter().all(|&(r, q)| (r as usize) < n && q > 0)
                }
            };
            if !well_formed || (entry.ordering == Ordering::Causal && entry.clock.len() != n) {
                continue;
            }
            if !stream.insert(origin, entry, window) {
                duplicates += 1;
            }
        }
        if stream.streams[origin].contiguous > before {
            stream.streams[origin].naks_without_progress = 0;
            stream.streams[origin].stalled_since = None;
            stream.refresh_stability();
        }
        self.stats.duplicates += duplicates;
        if self.ending.as_ref().is_some_and(|e| e.stream.id() == view) {
            self.try_finish_ending(now, out);
        } else {
            self.after_progress(now, out);
        }
    }

    fn handle_ack(
        &mut self,
        now: Time,
        from: Member,
        view: ViewId,
        received: Vec<u64>,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(stream) = self.stream_for(view) else {
            return;
        };
        let Some(rank) = stream.view.rank_of(from.id) else {
            return;
        };
        if received.len() != stream.streams.len() {
            return;
        }
        stream.handle_ack(rank, &received);
        if self.current.as_ref().is_some_and(|v| v.id() == view) {
            self.after_progress(now, out);
        }
    }

    fn handle_nak(
        &mut self,
        from: Member,
        view: ViewId,
        origin: usize,
        first: u64,
        to: u64,
        out: &mut Vec<MulticastOutput>,
    ) {
        let batch_bytes = self.config.batch_bytes;
        let window = self.config.window_messages;
        let stream = if self.retired.as_ref().is_some_and(|v| v.id() == view) {
            self.retired.as_mut()
        } else {
            self.stream_for(view)
        };
        let Some(stream) = stream else {
            return;
        };
        if origin >= stream.streams.len() || !stream.view.contains(from.id) || first > to {
            return;
        }
        let to = to.min(first.saturating_add(window));
        let entries = stream.streams[origin]
            .buffer
            .range(first..=to)
            .map(|(_, e)| e);
        let batches = batch(entries, batch_bytes);
        for entries in batches {
            self.stats.retransmitted += entries.len() as u64;
            out.push(MulticastOutput::Send {
                to: from.addr,
                body: Body::Data {
                    view,
                    origin: origin as u32,
                    entries,
                },
            });
        }
    }

    fn handle_state_request(
        &mut self,
        from: Member,
        view: ViewId,
        offset: u64,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(Snapshot {
            state: Some(state), ..
        }) = self.snapshot.as_ref().filter(|s| s.view == view)
        else {
            return;
        };
        let total = state.len() as u64;
        let chunk = self.config.state_chunk_bytes.max(1) as u64;
        let mut at = offset.min(total);
        for _ in 0..self.config.state_window_chunks.max(1) {
            let end = (at + chunk).min(total);
            out.push(MulticastOutput::Send {
                to: from.addr,
                body: Body::StateChunk {
                    view,
                    offset: at,
                    total,
                    bytes: state.slice(at as usize..end as usize),
                },
            });
            at = end;
            if at >= total {
                break;
            }
        }
    }

    fn handle_state_chunk(
        &mut self,
        now: Time,
        view: ViewId,
        offset: u64,
        total: u64,
        bytes: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) {
        let state_max = self.config.state_bytes_max;
        let Some(incoming) = self.incoming.as_mut().filter(|i| i.view == view) else {
            return;
        };
        if total > state_max || offset != incoming.received.len() as u64 {
            return;
        }
        if incoming.total.is_some_and(|t| t != total) {
            return;
        }
        incoming.total = Some(total);
        incoming.received.extend_from_slice(&bytes);
        incoming.last_progress = now;
        let received = incoming.received.len() as u64;
        if received >= total {
            let incoming = self.incoming.take().expect("checked");
            self.ready = true;
            self.stats.state_transfers += 1;
            out.push(MulticastOutput::Restore {
                view,
                state: incoming.received.freeze(),
            });
            let view = self.current.as_ref().map(|v| v.view.clone());
            if let Some(view) = view {
                self.tell_view(&view, out);
            }
            self.after_progress(now, out);
        } else if received >= incoming.requested_upto {
            self.request_state(now, out);
        }
    }

    /// Sends a point-to-point message to `to`, a member of the current view.
    pub fn send_direct(
        &self,
        to: ProcessId,
        payload: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) -> Result<(), MulticastError> {
        let view = self.current.as_ref().ok_or(MulticastError::NotMember)?;
        let member = view
            .view
            .members
            .iter()
            .find(|m| m.id == to)
            .ok_or(MulticastError::NotMember)?;
        if payload.len() > self.config.payload_bytes_max {
            return Err(MulticastError::TooLarge {
                size: payload.len(),
                max: self.config.payload_bytes_max,
            });
        }
        out.push(MulticastOutput::Send {
            to: member.addr,
            body: Body::Direct { payload },
        });
        Ok(())
    }
}

/// Composes the cut of a view change from the promisers' reports: per stream, the most any
/// promiser holds, and one promiser that holds it. `base_len` is the base view's size.
pub fn compose_cut<'a>(
    base_len: usize,
    reports: impl Iterator<Item = (usize, &'a FlushReport)>,
) -> Vec<CutEntry> {
    #[cfg(feature = "planted-bugs")]
    if planted::active(PlantedBug::CutMinimum) {
        return planted::cut_minimum(base_len, reports);
    }
    let mut cut: Vec<CutEntry> = (0..base_len)
        .map(|r| CutEntry {
            upto: 0,
            holder: r as u32,
        })
        .collect();
    for (rank, report) in reports {
        if report.received.len() != base_len {
            continue;
        }
        for (stream, &upto) in report.received.iter().enumerate() {
            if upto > cut[stream].upto {
                cut[stream] = CutEntry {
                    upto,
                    holder: rank as u32,
                };
            }
        }
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{GroupName, Incarnation, NodeId};

    fn member(n: u64) -> Member {
        Member {
            id: ProcessId {
                node: NodeId(n),
                incarnation: Incarnation(1),
            },
            addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
        }
    }

    fn view(epoch: u64, members: &[u64]) -> View {
        View {
            group: GroupName::new("g").unwrap(),
            id: ViewId {
                epoch,
                coordinator: member(members[0]).id,
            },
            members: members.iter().map(|n| member(*n)).collect(),
            voters: members.len(),
        }
    }

    fn ms(n: u64) -> Time {
        Duration::from_millis(n)
    }

    fn config(ordering: Ordering) -> MulticastConfig {
        MulticastConfig {
            ordering,
            ..MulticastConfig::default()
        }
    }

    /// A core of member `me` already in `view` with the (empty) state.
    fn core_in(me: u64, view: &View, config: MulticastConfig) -> Multicast {
        let mut core = Multicast::new(member(me).id, config);
        let mut out = Vec::new();
        core.install_created(view, &mut out);
        core
    }

    fn payload(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    fn delivered(out: &[MulticastOutput]) -> Vec<(u64, Bytes)> {
        out.iter()
            .filter_map(|o| match o {
                MulticastOutput::Deliver(m) => Some((m.sender.node.0, m.payload.clone())),
                _ => None,
            })
            .collect()
    }

    /// The `Data` bodies in `out` sent to member `to`.
    fn data_to(out: &[MulticastOutput], to: u64) -> Vec<Body> {
        out.iter()
            .filter_map(|o| match o {
                MulticastOutput::Send { to: addr, body } if *addr == member(to).addr => {
                    matches!(body, Body::Data { .. }).then(|| body.clone())
                }
                MulticastOutput::SendAll { to: addrs, body }
                    if addrs.contains(&member(to).addr) =>
                {
                    matches!(body, Body::Data { .. }).then(|| body.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn entry(seq: u64, ordering: Ordering, item: Item) -> Entry {
        Entry {
            seq,
            ordering,
            clock: Vec::new(),
            item,
        }
    }

    #[test]
    fn a_lost_entry_is_asked_for_and_delivery_stays_fifo() {
        let v = view(1, &[1, 2]);
        let mut a = core_in(1, &v, config(Ordering::Fifo));
        let mut b = core_in(2, &v, config(Ordering::Fifo));
        let mut out = Vec::new();
        a.multicast(ms(0), None, payload("one"), &mut out).unwrap();
        a.multicast(ms(0), None, payload("two"), &mut out).unwrap();
        assert_eq!(
            delivered(&out),
            vec![(1, payload("one")), (1, payload("two"))]
        );
        let mut out = Vec::new();
        a.flush(ms(0), &mut out);
        let one = entry(1, Ordering::Fifo, Item::Payload(payload("one")));
        let two = entry(2, Ordering::Fifo, Item::Payload(payload("two")));
        assert_eq!(
            data_to(&out, 2),
            vec![Body::Data {
                view: v.id,
                origin: 0,
                entries: vec![one.clone(), two.clone()],
            }],
            "both entries in one batch"
        );
        // The first is lost: the second is held, not delivered.
        let mut out = Vec::new();
        let lossy = Body::Data {
            view: v.id,
            origin: 0,
            entries: vec![two.clone()],
        };
        b.handle_message(ms(1), member(1), lossy, &mut out);
        assert_eq!(delivered(&out), vec![]);
        // The gap is asked for once the stream made no progress for `nak_interval`.
        let mut out = Vec::new();
        b.handle_tick(ms(2), &mut out);
        assert!(!out.iter().any(|o| matches!(
            o,
            MulticastOutput::Send {
                body: Body::Nak { .. },
                ..
            }
        )));
        let mut out = Vec::new();
        b.handle_tick(ms(102), &mut out);
        let nak = Body::Nak {
            view: v.id,
            origin: 0,
            from: 1,
            to: 2,
        };
        assert!(out.contains(&MulticastOutput::Send {
            to: member(1).addr,
            body: nak.clone(),
        }));
        let mut out = Vec::new();
        a.handle_message(ms(3), member(2), nak, &mut out);
        assert_eq!(
            out,
            vec![MulticastOutput::Send {
                to: member(2).addr,
                body: Body::Data {
                    view: v.id,
                    origin: 0,
                    entries: vec![one, two.clone()],
                },
            }]
        );
        let mut out = Vec::new();
        let retransmitted = Body::Data {
            view: v.id,
            origin: 0,
            entries: vec![entry(1, Ordering::Fifo, Item::Payload(payload("one"))), two],
        };
        b.handle_message(ms(4), member(1), retransmitted.clone(), &mut out);
        assert_eq!(
            delivered(&out),
            vec![(1, payload("one")), (1, payload("two"))]
        );
        // A duplicate changes nothing.
        let mut out = Vec::new();
        b.handle_message(ms(5), member(1), retransmitted, &mut out);
        assert_eq!(delivered(&out), vec![]);
        // "two" arrived twice in the retransmission, then both again.
        assert_eq!(b.stats().duplicates, 3);
    }

    #[test]
    fn credit_runs_out_then_the_outbox_fills_then_acks_free_it() {
        let v = view(1, &[1, 2]);
        let cfg = MulticastConfig {
            window_messages: 2,
            outbox_messages: 1,
            payload_bytes_max: 8,
            ..config(Ordering::Fifo)
        };
        let mut a = core_in(1, &v, cfg);
        let mut out = Vec::new();
        for text in ["m1", "m2", "m3"] {
            a.multicast(ms(0), None, payload(text), &mut out).unwrap();
        }
        assert_eq!(delivered(&out).len(), 2, "two within the window");
        assert_eq!(a.outbox_len(), 1, "the third waits for credit");
        assert_eq!(
            a.multicast(ms(0), None, payload("m4"), &mut out),
            Err(MulticastError::Full(1))
        );
        assert_eq!(
            a.multicast(ms(0), None, payload("too large"), &mut out),
            Err(MulticastError::TooLarge { size: 9, max: 8 })
        );
        // Member 2 acknowledges both: they are stable, collected, and m3 goes out.
        let mut out = Vec::new();
        let ack = Body::Ack {
            view: v.id,
            received: vec![2, 0],
        };
        a.handle_message(ms(1), member(2), ack, &mut out);
        assert_eq!(delivered(&out), vec![(1, payload("m3"))]);
        assert_eq!(a.outbox_len(), 0);
        assert_eq!(
            a.buffered_entries(),
            1,
            "m1 and m2 collected, m3 kept until stable"
        );
    }

    #[test]
    fn total_order_waits_for_the_sequencer() {
        let v = view(1, &[1, 2, 3]);
        let mut s = core_in(1, &v, config(Ordering::Total));
        let mut b = core_in(2, &v, config(Ordering::Total));
        let mut c = core_in(3, &v, config(Ordering::Total));
        let mut out = Vec::new();
        b.multicast(ms(0), None, payload("t"), &mut out).unwrap();
        assert_eq!(
            delivered(&out),
            vec![],
            "not even at its sender before it is ordered"
        );
        b.flush(ms(0), &mut out);
        let data = data_to(&out, 1).pop().unwrap();
        let mut c_out = Vec::new();
        c.handle_message(
            ms(1),
            member(2),
            data_to(&out, 3).pop().unwrap(),
            &mut c_out,
        );
        assert_eq!(delivered(&c_out), vec![]);
        let mut s_out = Vec::new();
        s.handle_message(ms(1), member(2), data, &mut s_out);
        s.flush(ms(1), &mut s_out);
        assert_eq!(delivered(&s_out), vec![(2, payload("t"))]);
        let record = Body::Data {
            view: v.id,
            origin: 0,
            entries: vec![entry(1, Ordering::Fifo, Item::Order(vec![(1, 1)]))],
        };
        assert_eq!(data_to(&s_out, 3), vec![record.clone()]);
        c.handle_message(ms(2), member(1), record.clone(), &mut c_out);
        assert_eq!(delivered(&c_out), vec![(2, payload("t"))]);
        let mut b_out = Vec::new();
        b.handle_message(ms(2), member(1), record, &mut b_out);
        assert_eq!(delivered(&b_out), vec![(2, payload("t"))]);
    }

    #[test]
    fn a_causal_message_waits_for_what_its_sender_had_delivered() {
        let v = view(1, &[1, 2, 3]);
        let mut a = core_in(1, &v, config(Ordering::Causal));
        let mut b = core_in(2, &v, config(Ordering::Causal));
        let mut c = core_in(3, &v, config(Ordering::Causal));
        let mut out = Vec::new();
        a.multicast(ms(0), None, payload("question"), &mut out)
            .unwrap();
        a.flush(ms(0), &mut out);
        let question = data_to(&out, 2).pop().unwrap();
        let mut b_out = Vec::new();
        b.handle_message(ms(1), member(1), question.clone(), &mut b_out);
        b.multicast(ms(1), None, payload("answer"), &mut b_out)
            .unwrap();
        b.flush(ms(1), &mut b_out);
        let answer = data_to(&b_out, 3).pop().unwrap();
        let Body::Data { entries, .. } = &answer else {
            unreachable!()
        };
        assert_eq!(
            entries[0].clock,
            vec![1, 0, 0],
            "it had delivered the question"
        );
        let mut c_out = Vec::new();
        c.handle_message(ms(2), member(2), answer, &mut c_out);
        assert_eq!(
            delivered(&c_out),
            vec![],
            "the answer waits for the question"
        );
        c.handle_message(ms(3), member(1), question, &mut c_out);
        assert_eq!(
            delivered(&c_out),
            vec![(1, payload("question")), (2, payload("answer"))]
        );
    }

    /// Two survivors that delivered different amounts before the view change deliver the same
    /// sequence in the view once the cut is applied, including a total-order message the
    /// sequencer never ordered and a stream (of a member that crashed) whose tail is cut.
    #[test]
    fn the_cut_ends_a_view_the_same_way_everywhere() {
        let v = view(1, &[1, 2, 3]);
        let record = entry(1, Ordering::Fifo, Item::Order(vec![(2, 1)]));
        let s_stream = vec![record];
        let c_stream = [
            entry(1, Ordering::Total, Item::Payload(payload("c1"))),
            entry(2, Ordering::Total, Item::Payload(payload("c2"))),
            entry(3, Ordering::Fifo, Item::Payload(payload("c3"))),
        ];
        let feed = |core: &mut Multicast, upto_c: usize, out: &mut Vec<MulticastOutput>| {
            core.handle_message(
                ms(1),
                member(1),
                Body::Data {
                    view: v.id,
                    origin: 0,
                    entries: s_stream.clone(),
                },
                out,
            );
            core.handle_message(
                ms(1),
                member(3),
                Body::Data {
                    view: v.id,
                    origin: 2,
                    entries: c_stream[..upto_c].to_vec(),
                },
                out,
            );
        };
        let mut b = core_in(2, &v, config(Ordering::Total));
        let mut b_before = Vec::new();
        feed(&mut b, 3, &mut b_before);
        assert_eq!(delivered(&b_before), vec![(3, payload("c1"))]);
        let mut d = core_in(2, &v, config(Ordering::Total));
        let mut d_before = Vec::new();
        b.freeze(v.id, &mut Vec::new());
        d.freeze(v.id, &mut Vec::new());
        feed(&mut d, 3, &mut d_before);
        assert_eq!(
            delivered(&d_before),
            vec![],
            "frozen before anything arrived"
        );
        // The cut keeps c1 and c2 of member 3's stream, not c3.
        let next = view(2, &[2]);
        let decision = Decision {
            view: next.clone(),
            cut: vec![
                CutEntry { upto: 1, holder: 0 },
                CutEntry { upto: 0, holder: 1 },
                CutEntry { upto: 2, holder: 1 },
            ],
            joiners: vec![],
        };
        let mut b_after = Vec::new();
        b.install_decided(ms(3), v.id, &decision, &mut b_after);
        let mut d_after = Vec::new();
        d.install_decided(ms(3), v.id, &decision, &mut d_after);
        let b_all = [delivered(&b_before), delivered(&b_after)].concat();
        let d_all = [delivered(&d_before), delivered(&d_after)].concat();
        assert_eq!(b_all, vec![(3, payload("c1")), (3, payload("c2"))]);
        assert_eq!(d_all, b_all);
        assert!(matches!(
            b_after.last(),
            Some(MulticastOutput::View(change)) if change.view == next
        ));
        assert!(b.is_ready());
    }

    #[test]
    fn a_failed_snapshot_or_a_missing_holder_never_becomes_an_empty_state() {
        let first = view(1, &[1]);
        let mut next = view(2, &[1, 2]);
        next.voters = 1;
        let cfg = config(Ordering::Total);
        let decision = Decision {
            view: next.clone(),
            cut: vec![CutEntry { upto: 0, holder: 0 }],
            joiners: vec![member(2).id],
        };
        let mut provider = core_in(1, &first, cfg);
        let mut out = Vec::new();
        provider.freeze(first.id, &mut out);
        provider.install_decided(ms(1), first.id, &decision, &mut out);
        assert_eq!(out.last(), Some(&MulticastOutput::SnapshotWanted(next.id)));
        // The service could not take it: the provider stops vouching for the state.
        provider.handle_snapshot_failed(next.id);
        assert!(!provider.is_ready() && provider.needs_resync());
        assert_eq!(provider.stats().snapshots_failed, 1);
        let mut out = Vec::new();
        let request = Body::StateRequest {
            view: next.id,
            offset: 0,
        };
        provider.handle_message(ms(2), member(2), request, &mut out);
        assert_eq!(out, vec![], "no chunk of an invented state");

        // A decision naming no holder (never composed, but arriving anyway) is not followed
        // from nothing: the joiner restores nothing and waits for a later view change.
        let orphan = Decision {
            view: view(2, &[2]),
            cut: vec![CutEntry { upto: 0, holder: 0 }],
            joiners: vec![member(2).id],
        };
        let mut joiner = Multicast::new(member(2).id, cfg);
        let mut out = Vec::new();
        joiner.install_decided(ms(1), first.id, &orphan, &mut out);
        assert!(
            !out.iter()
                .any(|o| matches!(o, MulticastOutput::Restore { .. })),
            "{out:?}"
        );
        assert!(!joiner.is_ready() && joiner.needs_resync());
    }

    #[test]
    fn a_lone_member_is_never_short_of_credit() {
        // No other member acknowledges: its own entries (and order records) are stable at
        // once, so a window of two never stops it, in any ordering, safe delivery included.
        let alone = view(1, &[1]);
        for ordering in [Ordering::Fifo, Ordering::Causal, Ordering::Total] {
            for delivery in [Delivery::Agreed, Delivery::Safe] {
                let cfg = MulticastConfig {
                    ordering,
                    delivery,
                    window_messages: 2,
                    outbox_messages: 4,
                    ..MulticastConfig::default()
                };
                let mut core = core_in(1, &alone, cfg);
                let mut out = Vec::new();
                for _ in 0..20 {
                    core.multicast(ms(0), None, payload("x"), &mut out).unwrap();
                    // As the shell does after each burst: the sequencer orders what it has.
                    core.flush(ms(0), &mut out);
                }
                assert_eq!(core.outbox_len(), 0, "{ordering} {delivery:?}");
                assert_eq!(delivered(&out).len(), 20, "{ordering} {delivery:?}");
                assert!(core.buffered_entries() <= 2, "{ordering} {delivery:?}");
            }
        }
    }

    #[test]
    fn a_base_member_listed_as_a_learner_keeps_the_state_it_holds_by_the_install() {
        // Member 2 was still fetching the previous cut when it promised, so the decision lists
        // it as a learner; by the install it holds the state. Member 1, the decision's only
        // voter, may have lost its copy since (a failed snapshot): 2 keeps its own.
        let base = view(2, &[1, 2]);
        let mut next = view(3, &[1, 2]);
        next.voters = 1;
        let decision = Decision {
            view: next.clone(),
            cut: vec![
                CutEntry { upto: 0, holder: 0 },
                CutEntry { upto: 1, holder: 1 },
            ],
            joiners: vec![member(2).id],
        };
        let cfg = config(Ordering::Fifo);
        let mut promised = core_in(2, &base, cfg);
        let mut out = Vec::new();
        promised
            .multicast(ms(0), None, payload("mine"), &mut out)
            .unwrap();
        promised.freeze(base.id, &mut out);
        let mut out = Vec::new();
        promised.install_decided(ms(1), base.id, &decision, &mut out);
        assert!(promised.is_ready() && !promised.needs_resync());
        assert!(
            out.iter()
                .any(|o| matches!(o, MulticastOutput::View(c) if c.view == next)),
            "{out:?}"
        );
        assert!(!out.iter().any(|o| matches!(
            o,
            MulticastOutput::Send {
                body: Body::StateRequest { .. },
                ..
            }
        )));

        // One that never promised (its delivery was never stopped at what it reported) is a
        // joiner: it asks for the state, and still answers for what it held of the base,
        // which the cut may need from it alone.
        let mut silent = core_in(2, &base, cfg);
        let mut out = Vec::new();
        silent
            .multicast(ms(0), None, payload("mine"), &mut out)
            .unwrap();
        let mut out = Vec::new();
        silent.install_decided(ms(1), base.id, &decision, &mut out);
        assert!(!silent.is_ready());
        assert!(out.iter().any(|o| matches!(
            o,
            MulticastOutput::Send {
                body: Body::StateRequest { .. },
                ..
            }
        )));
        let nak = Body::Nak {
            view: base.id,
            origin: 1,
            from: 1,
            to: 1,
        };
        let mut out = Vec::new();
        silent.handle_message(ms(2), member(1), nak, &mut out);
        assert_eq!(
            data_to(&out, 1),
            vec![Body::Data {
                view: base.id,
                origin: 1,
                entries: vec![entry(1, Ordering::Fifo, Item::Payload(payload("mine")))],
            }]
        );
    }

    #[test]
    fn a_joiner_gets_the_state_in_chunks_before_its_first_view() {
        let first = view(1, &[1]);
        let next = view(2, &[1, 2]);
        let cfg = MulticastConfig {
            state_chunk_bytes: 4,
            state_window_chunks: 2,
            ..config(Ordering::Total)
        };
        let mut provider = core_in(1, &first, cfg);
        let decision = Decision {
            view: next.clone(),
            cut: vec![CutEntry { upto: 0, holder: 0 }],
            joiners: vec![member(2).id],
        };
        let mut out = Vec::new();
        provider.freeze(first.id, &mut out);
        assert_eq!(out, vec![MulticastOutput::Block]);
        let mut out = Vec::new();
        provider.install_decided(ms(1), first.id, &decision, &mut out);
        assert_eq!(
            out.last(),
            Some(&MulticastOutput::SnapshotWanted(next.id)),
            "{out:?}"
        );
        provider.handle_snapshot(next.id, payload("0123456789"));
        let mut joiner = Multicast::new(member(2).id, cfg);
        let mut out = Vec::new();
        joiner.install_decided(ms(1), first.id, &decision, &mut out);
        let request = |offset| MulticastOutput::Send {
            to: member(1).addr,
            body: Body::StateRequest {
                view: next.id,
                offset,
            },
        };
        assert_eq!(out, vec![request(0)]);
        assert!(!joiner.is_ready());
        let chunk = |offset: u64, bytes: &'static str| MulticastOutput::Send {
            to: member(2).addr,
            body: Body::StateChunk {
                view: next.id,
                offset,
                total: 10,
                bytes: payload(bytes),
            },
        };
        let mut out = Vec::new();
        let Some(MulticastOutput::Send { body, .. }) = [request(0)].into_iter().next() else {
            unreachable!()
        };
        provider.handle_message(ms(2), member(2), body, &mut out);
        assert_eq!(out, vec![chunk(0, "0123"), chunk(4, "4567")]);
        let mut joiner_out = Vec::new();
        for o in out {
            let MulticastOutput::Send { body, .. } = o else {
                unreachable!()
            };
            joiner.handle_message(ms(3), member(1), body, &mut joiner_out);
        }
        assert_eq!(joiner_out, vec![request(8)]);
        let mut out = Vec::new();
        let MulticastOutput::Send { body, .. } = request(8) else {
            unreachable!()
        };
        provider.handle_message(ms(4), member(2), body, &mut out);
        assert_eq!(out, vec![chunk(8, "89")]);
        let MulticastOutput::Send { body, .. } = out.pop().unwrap() else {
            unreachable!()
        };
        let mut joiner_out = Vec::new();
        joiner.handle_message(ms(5), member(1), body, &mut joiner_out);
        assert_eq!(
            joiner_out,
            vec![
                MulticastOutput::Restore {
                    view: next.id,
                    state: payload("0123456789"),
                },
                MulticastOutput::View(ViewChange::between(None, next)),
            ]
        );
        assert!(joiner.is_ready());
    }
}
