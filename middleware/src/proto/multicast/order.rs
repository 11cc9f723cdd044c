//! Causal waiting and total order within one view.
//!
//! A causal entry waits until every entry its clock names is delivered. A total entry waits
//! for its turn in the order that the view's *sequencer* (rank 0) publishes as `Order`
//! entries in its own stream: the sequencer gives each contiguous total-order entry a place
//! ([`Order::assign`]), publishes the places given, and every member reads the records
//! ([`Order::read_records`]) into the queue that total-order delivery follows.

#[cfg(feature = "planted-bugs")]
use super::super::planted::{self, PlantedBug};
use super::stream::Stream;
use crate::wire::{CutEntry, Entry, Item, Ordering, Rank, Seq};
use std::collections::{BTreeSet, VecDeque};

/// The ordering state of one view: the order records read, the agreed order not yet
/// delivered, and (at the sequencer) the places given and not yet published.
#[derive(Debug)]
pub(super) struct Order {
    /// Sequencer stream entries up to this one were read for order records.
    pub(super) records_upto: Seq,
    /// Total-order entries in their agreed order, not yet delivered.
    pub(super) total_queue: VecDeque<(Rank, Seq)>,
    /// Sequencer only: per stream, entries up to this one were given a place in the order.
    pub(super) ordered_upto: Vec<Seq>,
    /// Sequencer only: places given and not yet published.
    to_order: Vec<(Rank, Seq)>,
    /// Sequencer only: the stream [`Order::assign`] looks at first next time.
    first: usize,
}

impl Order {
    /// The ordering state of a view of `n` members.
    pub(super) fn new(n: usize) -> Self {
        Order {
            records_upto: Seq::ZERO,
            total_queue: VecDeque::new(),
            ordered_upto: vec![Seq::ZERO; n],
            to_order: Vec::new(),
            first: 0,
        }
    }

    /// Reads the sequencer's order records up to `upto` (the caller decides how far: what is
    /// contiguous, within the limit and, with safe delivery, stable).
    pub(super) fn read_records(&mut self, sequencer: &Stream, upto: Seq) {
        while self.records_upto < upto {
            self.records_upto = self.records_upto.next();
            if let Some(Entry {
                item: Item::Order(places),
                ..
            }) = sequencer.buffer.get(&self.records_upto)
            {
                self.total_queue.extend(places.iter().copied());
            }
        }
    }

    /// Sequencer: gives a place to every total-order entry of stream `r` up to `upto[r]`
    /// (entries it holds, contiguous). It is called at every arrival, so places follow
    /// arrival order; entries of several streams that became eligible at once are taken
    /// stream by stream starting from a stream that rotates, so no rank comes first in
    /// every burst.
    pub(super) fn assign(&mut self, streams: &[Stream], upto: &[Seq]) {
        let n = streams.len();
        if n == 0 {
            return;
        }
        let first = self.first % n;
        self.first = (first + 1) % n;
        for rank in (first..n).chain(0..first) {
            let stream = &streams[rank];
            #[cfg(feature = "planted-bugs")]
            if planted::active(PlantedBug::SequencerOrdersTwice) {
                self.ordered_upto[rank] = self.ordered_upto[rank].min(stream.delivered);
            }
            while self.ordered_upto[rank] < upto[rank].min(stream.contiguous) {
                self.ordered_upto[rank] = self.ordered_upto[rank].next();
                let seq = self.ordered_upto[rank];
                if let Some(entry) = stream.buffer.get(&seq) {
                    if entry.ordering == Ordering::Total && matches!(entry.item, Item::Payload(_)) {
                        self.to_order.push((Rank::of(rank), seq));
                    }
                }
            }
        }
    }

    /// Sequencer: whether places were given and not yet published.
    pub(super) fn has_unpublished(&self) -> bool {
        !self.to_order.is_empty()
    }

    /// Sequencer: the places given since the last record, for the next `Order` entry.
    pub(super) fn take_unpublished(&mut self) -> Vec<(Rank, Seq)> {
        std::mem::take(&mut self.to_order)
    }

    /// Whether the payload `entry`, the next of stream `rank` (at `next`), may be delivered
    /// as far as its ordering goes: FIFO always, causal once its clock's past is delivered,
    /// total at its turn.
    pub(super) fn admits(&self, streams: &[Stream], rank: Rank, next: Seq, entry: &Entry) -> bool {
        match entry.ordering {
            Ordering::Fifo => true,
            Ordering::Causal => entry
                .clock
                .iter()
                .enumerate()
                .all(|(k, c)| k == rank.index() || streams[k].delivered >= *c),
            Ordering::Total => self.total_queue.front() == Some(&(rank, next)),
        }
    }

    /// A total-order payload was delivered at its turn.
    pub(super) fn delivered_total(&mut self) {
        self.total_queue.pop_front();
    }

    /// Places given to entries past `cut` are void.
    pub(super) fn void_past(&mut self, cut: &[CutEntry]) {
        self.total_queue
            .retain(|&(r, q)| cut.get(r.index()).is_some_and(|c| q <= c.upto));
    }

    /// Total-order entries of the cut that the sequencer never ordered follow the ordered
    /// ones, by (rank, seq).
    pub(super) fn append_unordered(&mut self, streams: &[Stream], cut: &[CutEntry]) {
        let queued: BTreeSet<(Rank, Seq)> = self.total_queue.iter().copied().collect();
        for (rank, stream) in streams.iter().enumerate() {
            if stream.delivered >= cut[rank].upto {
                continue;
            }
            for (&seq, entry) in stream
                .buffer
                .range(stream.delivered.next()..=cut[rank].upto)
            {
                let place = (Rank::of(rank), seq);
                if entry.ordering == Ordering::Total
                    && matches!(entry.item, Item::Payload(_))
                    && !queued.contains(&place)
                {
                    self.total_queue.push_back(place);
                }
            }
        }
    }

    /// The stream whose entry is next in the total order, if any.
    pub(super) fn next_turn(&self) -> Option<Rank> {
        self.total_queue.front().map(|&(r, _)| r)
    }

    /// Stream `rank` was abandoned: its places are void.
    pub(super) fn abandon(&mut self, rank: Rank) {
        self.total_queue.retain(|&(r, _)| r != rank);
    }
}
