//! Where a replica manager keeps what it must not lose: a log of the updates it applied, in
//! the group's order, and snapshots that cover a prefix of it.
//!
//! Cores write through the [`ReplicaLog`] trait. [`MemoryLog`] keeps everything in memory
//! (the `memory` durability mode, and the simulator, which also models a power loss with it);
//! the write-ahead log in a data directory is the durable implementation.
//!
//! Positions: the update applied first is at index 1; a snapshot "at index n" is the state
//! after applying updates `1..=n`; the log then holds `n+1..`.

use bytes::Bytes;

/// The replica's storage failed; the replica manager stops rather than go on without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replica storage failed: {0}")]
pub struct StoreError(pub String);

/// What a replica finds in its storage when it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The latest snapshot and the index it is at, if any.
    pub snapshot: Option<(u64, Bytes)>,
    /// The records after it, in order, with their indices (consecutive, following the
    /// snapshot's index).
    pub records: Vec<(u64, Bytes)>,
}

/// A replica manager's storage: an append-only log of update records and snapshots.
pub trait ReplicaLog: Send {
    /// Appends the record at `index` (the last index plus one). Durable at once with
    /// per-record fsync; otherwise once [`ReplicaLog::sync`] returns.
    fn append(&mut self, index: u64, record: &[u8]) -> Result<(), StoreError>;

    /// Makes every appended record durable (a no-op in memory).
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Whether records were appended and not yet made durable.
    fn needs_sync(&self) -> bool;

    /// Stores `snapshot`, the state at `index`, durably, and forgets the records it covers.
    fn save_snapshot(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError>;

    /// Replaces everything with `snapshot` at `index` (after a state transfer): the log
    /// continues at `index + 1`.
    fn reset(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError>;
}

/// Storage in memory: what a replica recovers from it is what it held when it stopped, so
/// it survives only in the same process (the simulator keeps it across a simulated crash,
/// minus what was not synced, to model a power loss).
#[derive(Clone, Debug, Default)]
pub struct MemoryLog {
    snapshot: Option<(u64, Bytes)>,
    records: Vec<(u64, Bytes)>,
    /// Records `..synced` of `records` are durable.
    synced: usize,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// What a replica restarting from this storage finds. With `power_loss`, records
    /// appended and not synced are gone, as on a disk whose cache was lost.
    pub fn recover(&self, power_loss: bool) -> Recovered {
        let records = if power_loss {
            &self.records[..self.synced]
        } else {
            &self.records[..]
        };
        Recovered {
            snapshot: self.snapshot.clone(),
            records: records.to_vec(),
        }
    }

    /// The index of the last record (or of the snapshot when the log is empty; 0 if none).
    pub fn last_index(&self) -> u64 {
        self.records
            .last()
            .map(|(i, _)| *i)
            .or(self.snapshot.as_ref().map(|(i, _)| *i))
            .unwrap_or(0)
    }
}

impl ReplicaLog for MemoryLog {
    fn append(&mut self, index: u64, record: &[u8]) -> Result<(), StoreError> {
        let expected = self.last_index() + 1;
        if index != expected {
            return Err(StoreError(format!(
                "record {index} appended where {expected} was due"
            )));
        }
        self.records.push((index, Bytes::copy_from_slice(record)));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.synced = self.records.len();
        Ok(())
    }

    fn needs_sync(&self) -> bool {
        self.synced < self.records.len()
    }

    fn save_snapshot(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let covered = self.records.iter().take_while(|(i, _)| *i <= index).count();
        self.records.drain(..covered);
        self.synced = self.synced.saturating_sub(covered);
        self.snapshot = Some((index, Bytes::copy_from_slice(snapshot)));
        Ok(())
    }

    fn reset(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.records.clear();
        self.synced = 0;
        self.snapshot = Some((index, Bytes::copy_from_slice(snapshot)));
        Ok(())
    }
}
