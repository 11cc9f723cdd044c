//! One sender's stream within a view: the entries received and not yet collected, and the
//! counters that delivery, stability and garbage collection move forward.

use crate::proto::Time;
use crate::wire::{Entry, Item, Seq};
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

/// One member's stream of entries in a view, as this process holds it.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Entries received and not yet both delivered and stable.
    pub(super) buffer: SeqBuffer,
    /// Every entry up to this one has been received.
    pub(super) contiguous: Seq,
    /// Entries up to this one have been delivered (consumed).
    pub(super) delivered: Seq,
    /// The highest sequence number known to exist.
    pub(super) highest_known: Seq,
    /// Entries up to this one are held by every member.
    pub(super) stable: Seq,
    pub(super) last_nak: Option<Time>,
    pub(super) naks_without_progress: u32,
    /// Since when entries known to exist are missing without progress.
    pub(super) stalled_since: Option<Time>,
    /// Abandoned at the end of the view: its head can never be delivered.
    pub(super) abandoned: bool,
}

impl Stream {
    /// The order of a stream's counters, which delivery, stability and garbage collection
    /// rely on: nothing is delivered or stable that was not received in order, and nothing
    /// is received in order that is not known to exist.
    pub(super) fn debug_check(&self) {
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

/// The bytes an entry counts for in the credit window and in batches (an estimate of its
/// encoded size).
pub(super) fn entry_bytes(entry: &Entry) -> usize {
    let item = match &entry.item {
        Item::Payload(p) => p.len(),
        Item::Order(places) => places.len() * 12,
    };
    item + entry.clock.len() * 8 + 24
}

/// Splits `entries` into `Data` batches of at most `batch_bytes` (each at least one entry).
pub(super) fn batch<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    batch_bytes: usize,
) -> Vec<Vec<Entry>> {
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

/// The entries of one stream by sequence number: a ring of slots, one per sequence number
/// from the oldest held to the newest, empty where an entry is missing.
///
/// A stream's entries arrive almost in order and leave from the front (garbage collection),
/// so a ring does with one index what a `BTreeMap` does with a tree walk and a node
/// allocation per few entries. It has the methods of the map the core used (keys are the
/// entries' own `seq`). Memory is proportional to the *span* of sequence numbers held, not
/// their number: the caller keeps the span bounded (the core refuses an entry more than its
/// buffer limit ahead of the stream's contiguous point).
#[derive(Debug, Default)]
pub(super) struct SeqBuffer {
    /// `slots[i]` holds the entry with sequence number `base + i`. Empty, or the first and
    /// the last slot are occupied.
    slots: VecDeque<Option<Entry>>,
    /// The sequence number of `slots[0]` (meaningless while `slots` is empty).
    base: u64,
    /// Occupied slots.
    len: usize,
}

impl SeqBuffer {
    /// Entries held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The slot of `seq`, if within the ring.
    fn index(&self, seq: Seq) -> Option<usize> {
        let offset = seq.0.checked_sub(self.base)?;
        (offset < self.slots.len() as u64).then_some(offset as usize)
    }

    /// The entry with sequence number `seq`.
    pub(super) fn get(&self, seq: &Seq) -> Option<&Entry> {
        self.slots.get(self.index(*seq)?)?.as_ref()
    }

    /// Whether the entry with sequence number `seq` is held.
    pub(super) fn contains_key(&self, seq: &Seq) -> bool {
        self.get(seq).is_some()
    }

    /// Holds `entry` under `seq` (its own `entry.seq`); returns the entry it replaces. Slots
    /// between the held entries and `seq` are made (empty): the caller bounds the span.
    pub(super) fn insert(&mut self, seq: Seq, entry: Entry) -> Option<Entry> {
        debug_assert_eq!(seq, entry.seq, "an entry is kept under its own seq");
        if self.slots.is_empty() {
            self.base = seq.0;
            self.slots.push_back(Some(entry));
            self.len = 1;
            return None;
        }
        if seq.0 < self.base {
            let gap = (self.base - seq.0) as usize;
            self.slots.reserve(gap);
            for _ in 1..gap {
                self.slots.push_front(None);
            }
            self.slots.push_front(Some(entry));
            self.base = seq.0;
            self.len += 1;
            return None;
        }
        let offset = seq.0 - self.base;
        let end = self.slots.len() as u64;
        if offset >= end {
            let gap = (offset - end) as usize;
            self.slots.reserve(gap + 1);
            self.slots.extend(std::iter::repeat_with(|| None).take(gap));
            self.slots.push_back(Some(entry));
            self.len += 1;
            return None;
        }
        let old = self.slots[offset as usize].replace(entry);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes and returns the entry with sequence number `seq`.
    // The rest of the map's interface, kept with it (and tested against the map).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn remove(&mut self, seq: &Seq) -> Option<Entry> {
        let index = self.index(*seq)?;
        let old = self.slots[index].take()?;
        self.len -= 1;
        self.trim();
        Some(old)
    }

    /// Drops empty slots at both ends, so that the first and last slots are occupied.
    fn trim(&mut self) {
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
    }

    /// The entry with the lowest sequence number, with that number.
    pub(super) fn first_key_value(&self) -> Option<(&Seq, &Entry)> {
        self.slots.front()?.as_ref().map(|e| (&e.seq, e))
    }

    /// The entry with the highest sequence number, with that number.
    // The rest of the map's interface, kept with it (and tested against the map).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn last_key_value(&self) -> Option<(&Seq, &Entry)> {
        self.slots.back()?.as_ref().map(|e| (&e.seq, e))
    }

    /// Removes and returns the entry with the lowest sequence number.
    pub(super) fn pop_first(&mut self) -> Option<(Seq, Entry)> {
        let entry = self.slots.pop_front()??;
        self.base += 1;
        self.len -= 1;
        self.trim();
        Some((entry.seq, entry))
    }

    /// The entries whose sequence numbers are in `range`, in order, with those numbers.
    pub(super) fn range(
        &self,
        range: impl RangeBounds<Seq>,
    ) -> impl Iterator<Item = (&Seq, &Entry)> {
        let held = self.slots.len() as u64;
        let start = match range.start_bound() {
            Bound::Included(s) => s.0.saturating_sub(self.base),
            Bound::Excluded(s) => s.0.saturating_add(1).saturating_sub(self.base),
            Bound::Unbounded => 0,
        }
        .min(held);
        let end = match range.end_bound() {
            Bound::Included(s) if s.0 < self.base => 0,
            Bound::Included(s) => (s.0 - self.base).saturating_add(1),
            Bound::Excluded(s) => s.0.saturating_sub(self.base),
            Bound::Unbounded => held,
        }
        .min(held)
        .max(start);
        self.slots
            .range(start as usize..end as usize)
            .filter_map(|slot| slot.as_ref().map(|e| (&e.seq, e)))
    }

    /// Every entry, in order of sequence number, with its number.
    // The rest of the map's interface, kept with it (and tested against the map).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Seq, &Entry)> {
        self.range(..)
    }
}

impl std::ops::Index<&Seq> for SeqBuffer {
    type Output = Entry;

    fn index(&self, seq: &Seq) -> &Entry {
        self.get(seq)
            .expect("no entry with that seq in the stream's buffer")
    }
}

#[cfg(test)]
mod seq_buffer_tests {
    use super::SeqBuffer;
    use crate::wire::{Entry, Item, Ordering, Seq};
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq: Seq(seq),
            ordering: Ordering::Fifo,
            clock: Vec::new(),
            item: Item::Payload(Bytes::from(seq.to_le_bytes().to_vec())),
        }
    }

    /// One operation on a stream buffer, with the sequence numbers near each other as a
    /// stream's are (so that ranges overlap the held entries).
    #[derive(Clone, Debug)]
    enum Op {
        Insert(u64),
        Remove(u64),
        PopFirst,
        Range(u64, u64),
        RangeFrom(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1u64..200).prop_map(Op::Insert),
            1 => (0u64..210).prop_map(Op::Remove),
            2 => Just(Op::PopFirst),
            1 => (0u64..210, 0u64..210).prop_map(|(a, b)| Op::Range(a, b)),
            1 => (0u64..210).prop_map(Op::RangeFrom),
        ]
    }

    fn same(buffer: &SeqBuffer, model: &BTreeMap<Seq, Entry>) -> Result<(), TestCaseError> {
        prop_assert_eq!(buffer.len(), model.len());
        prop_assert_eq!(buffer.first_key_value(), model.first_key_value());
        prop_assert_eq!(buffer.last_key_value(), model.last_key_value());
        prop_assert!(buffer.iter().eq(model.iter()));
        for seq in 0..210 {
            prop_assert_eq!(buffer.get(&Seq(seq)), model.get(&Seq(seq)));
            prop_assert_eq!(
                buffer.contains_key(&Seq(seq)),
                model.contains_key(&Seq(seq))
            );
        }
        Ok(())
    }

    proptest! {
        /// Every method answers as a `BTreeMap` does after the same operations.
        #[test]
        fn behaves_as_a_btree_map(ops in proptest::collection::vec(op(), 0..300)) {
            let mut buffer = SeqBuffer::default();
            let mut model = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(seq) => {
                        prop_assert_eq!(
                            buffer.insert(Seq(seq), entry(seq)),
                            model.insert(Seq(seq), entry(seq))
                        );
                    }
                    Op::Remove(seq) => {
                        prop_assert_eq!(buffer.remove(&Seq(seq)), model.remove(&Seq(seq)));
                    }
                    Op::PopFirst => prop_assert_eq!(buffer.pop_first(), model.pop_first()),
                    Op::Range(a, b) => {
                        let (lo, hi) = (Seq(a.min(b)), Seq(a.max(b)));
                        prop_assert!(buffer.range(lo..=hi).eq(model.range(lo..=hi)));
                        prop_assert!(buffer.range(lo..hi).eq(model.range(lo..hi)));
                    }
                    Op::RangeFrom(a) => {
                        prop_assert!(buffer.range(Seq(a)..).eq(model.range(Seq(a)..)));
                    }
                }
                same(&buffer, &model)?;
            }
        }
    }

    /// Removing entries leaves no empty slots at the ends: memory follows what is held.
    #[test]
    fn slots_span_only_the_held_entries() {
        let mut buffer = SeqBuffer::default();
        for seq in [10, 11, 15, 20] {
            buffer.insert(Seq(seq), entry(seq));
        }
        assert_eq!(buffer.slots.len(), 11);
        buffer.remove(&Seq(20));
        assert_eq!(buffer.slots.len(), 6);
        buffer.pop_first();
        buffer.pop_first();
        assert_eq!(buffer.slots.len(), 1);
        assert_eq!(buffer.first_key_value().map(|(s, _)| *s), Some(Seq(15)));
        buffer.pop_first();
        assert_eq!(buffer.slots.len(), 0);
        assert_eq!(buffer.len(), 0);
        // Empty, it starts again wherever the next entry is.
        buffer.insert(Seq(1000), entry(1000));
        assert_eq!(buffer.slots.len(), 1);
    }
}
