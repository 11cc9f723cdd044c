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

    /// Records held after the last snapshot (what `viewsync status` shows as the log's
    /// length); `None` if the storage cannot tell.
    fn records_held(&self) -> Option<u64> {
        None
    }
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
    fn records_held(&self) -> Option<u64> {
        Some(self.records.len() as u64)
    }

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

/// The durable storage: the write-ahead log and the snapshot file of a data directory
/// ([`crate::storage`]).
#[derive(Debug)]
pub struct DiskLog {
    wal: crate::storage::Wal,
    snapshots: crate::storage::SnapshotStore,
}

impl DiskLog {
    /// Opens (or creates) the replica's storage in `dir` and reads what it holds. A torn
    /// tail of the log (a crash in the middle of a write) is cut off and reported in the log;
    /// anything else that does not read back whole is an error: the replica does not start
    /// from a state it cannot trust.
    pub fn open(
        dir: &std::path::Path,
        durability: crate::storage::Durability,
    ) -> Result<(DiskLog, Recovered), StoreError> {
        let failed = |e: crate::storage::StorageError| StoreError(e.to_string());
        let snapshots = crate::storage::SnapshotStore::new(dir);
        let snapshot = snapshots.load().map_err(failed)?;
        let (wal, recovery) =
            crate::storage::Wal::open(&dir.join("log"), durability).map_err(failed)?;
        if let Some(torn) = &recovery.torn_tail {
            tracing::warn!(
                segment = %torn.segment.display(),
                offset = torn.offset,
                bytes = torn.bytes_dropped,
                reason = %torn.reason,
                "the replica log ended in a torn record (a crash mid-write): cut off, never applied"
            );
        }
        let from = snapshot.as_ref().map_or(0, |(index, _)| *index);
        let records: Vec<(u64, Bytes)> = recovery
            .records
            .into_iter()
            .filter(|r| r.index > from)
            .map(|r| (r.index, r.payload))
            .collect();
        if let Some((first, _)) = records.first() {
            if *first != from + 1 {
                return Err(StoreError(format!(
                    "{}: the log resumes at record {first}, but the snapshot ends at {from}: \
                     records in between are missing",
                    dir.display()
                )));
            }
        }
        Ok((DiskLog { wal, snapshots }, Recovered { snapshot, records }))
    }
}

impl ReplicaLog for DiskLog {
    fn records_held(&self) -> Option<u64> {
        Some(match (self.wal.first_index(), self.wal.last_index()) {
            (Some(first), Some(last)) => last.saturating_sub(first) + 1,
            _ => 0,
        })
    }

    fn append(&mut self, index: u64, record: &[u8]) -> Result<(), StoreError> {
        self.wal
            .append(index, record)
            .map_err(|e| StoreError(e.to_string()))
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.wal.sync().map_err(|e| StoreError(e.to_string()))
    }

    fn needs_sync(&self) -> bool {
        self.wal.needs_sync()
    }

    fn save_snapshot(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let failed = |e: crate::storage::StorageError| StoreError(e.to_string());
        // The snapshot first: only once it is durable may the records it covers go.
        self.snapshots.save(index, snapshot).map_err(failed)?;
        self.wal.truncate_before(index + 1).map_err(failed)?;
        Ok(())
    }

    fn reset(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        let failed = |e: crate::storage::StorageError| StoreError(e.to_string());
        self.snapshots.save(index, snapshot).map_err(failed)?;
        self.wal.clear().map_err(failed)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Durability;

    fn records(recovered: &Recovered) -> Vec<(u64, &[u8])> {
        recovered
            .records
            .iter()
            .map(|(i, b)| (*i, &b[..]))
            .collect()
    }

    #[test]
    fn a_disk_log_recovers_its_snapshot_and_the_records_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recovered) = DiskLog::open(dir.path(), Durability::EveryRecord).unwrap();
        assert_eq!(recovered, Recovered::default());
        for i in 1..=5u64 {
            log.append(i, format!("r{i}").as_bytes()).unwrap();
        }
        log.save_snapshot(3, b"state@3").unwrap();
        log.append(6, b"r6").unwrap();
        drop(log);
        let (mut log, recovered) = DiskLog::open(dir.path(), Durability::EveryRecord).unwrap();
        assert_eq!(
            recovered.snapshot,
            Some((3, Bytes::from_static(b"state@3")))
        );
        assert_eq!(
            records(&recovered),
            vec![(4, &b"r4"[..]), (5, b"r5"), (6, b"r6")]
        );
        // A state transfer replaces everything; the log goes on after it.
        log.reset(40, b"state@40").unwrap();
        log.append(41, b"r41").unwrap();
        drop(log);
        let (_, recovered) = DiskLog::open(dir.path(), Durability::EveryRecord).unwrap();
        assert_eq!(
            recovered.snapshot,
            Some((40, Bytes::from_static(b"state@40")))
        );
        assert_eq!(records(&recovered), vec![(41, &b"r41"[..])]);
    }

    #[test]
    fn a_disk_log_refuses_a_gap_between_its_snapshot_and_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), Durability::MemoryOnly).unwrap();
        for i in 1..=3u64 {
            log.append(i, b"r").unwrap();
        }
        drop(log);
        // A snapshot at 0 with records from 1 is fine; one whose records resume later is not.
        crate::storage::SnapshotStore::new(dir.path())
            .save(0, b"s")
            .unwrap();
        assert!(DiskLog::open(dir.path(), Durability::MemoryOnly).is_ok());
        std::fs::remove_dir_all(dir.path().join("log")).unwrap();
        let (mut log, _) = DiskLog::open(dir.path(), Durability::MemoryOnly).unwrap();
        log.reset(0, b"s").unwrap();
        log.append(5, b"r5").unwrap();
        drop(log);
        let error = DiskLog::open(dir.path(), Durability::MemoryOnly).unwrap_err();
        assert!(error.0.contains("missing"), "{error}");
    }

    #[test]
    fn a_memory_log_loses_only_unsynced_records_in_a_power_loss() {
        let mut log = MemoryLog::new();
        log.append(1, b"a").unwrap();
        log.sync().unwrap();
        log.append(2, b"b").unwrap();
        assert!(log.needs_sync());
        assert_eq!(log.recover(false).records.len(), 2);
        assert_eq!(log.recover(true).records.len(), 1);
        assert!(log.append(4, b"d").is_err(), "a gap is refused");
    }
}
