//! One sender's stream within a view: the entries received and not yet collected, and the
//! counters that delivery, stability and garbage collection move forward.

use crate::proto::Time;
use crate::wire::{Entry, Item, Seq};
use std::collections::BTreeMap;

/// One member's stream of entries in a view, as this process holds it.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Entries received and not yet both delivered and stable.
    pub(super) buffer: BTreeMap<Seq, Entry>,
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
