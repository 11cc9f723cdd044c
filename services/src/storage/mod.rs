//! Durable storage for replica managers: a checksummed, segmented write-ahead log ([`Wal`])
//! and an atomically replaced snapshot file ([`SnapshotStore`]), both in one data directory.
//!
//! Plain `std::fs`, no async runtime: the owner (a replica manager) calls it from wherever it
//! runs and decides when to [`sync`](Wal::sync).
//!
//! # The data directory
//!
//! ```text
//! DIR/wal-00000000000000000001.log   segment: records 1 ..
//! DIR/wal-00000000000000004097.log   segment: records 4097 .. (the active one: appends go here)
//! DIR/snapshot.bin                   the latest snapshot (its header names its position)
//! DIR/snapshot.tmp                   only during SnapshotStore::save; removed at load
//! ```
//!
//! # The log's format
//!
//! A segment is a sequence of records, nothing else (no file header):
//!
//! ```text
//! [u32 LE payload length][u32 LE crc32 of (index bytes ++ payload)][u64 LE index][payload]
//! ```
//!
//! The checksum is CRC-32 (IEEE, `crc32fast`) of the eight little-endian index bytes followed by
//! the payload. A payload is at most [`RECORD_BYTES_MAX`] (64 MiB) bytes; a header naming more
//! is corrupt. Indices increase by exactly one across the whole log, from segment to segment;
//! the first record may carry any index (after compaction the log starts after the snapshot).
//! A segment is named after the index of its first record, zero-padded to 20 digits so that
//! the names sort in log order, and a new segment is started when the active one would grow
//! past [`WalOptions::segment_bytes`] (64 MiB by default).
//!
//! # Recovery
//!
//! [`Wal::open`] reads every segment in order, one record at a time through a bounded buffer.
//! In the **last** segment, the first record that is truncated, fails its checksum, claims an
//! absurd length or carries a non-consecutive index is a *torn tail*: what a crash in the
//! middle of an append leaves. The segment is truncated at that record's start (and the
//! truncation synced, in the syncing modes), the loss is reported in [`Recovery::torn_tail`] and logged with
//! `tracing::warn!`, and nothing after it is ever applied. The same damage in a segment that is
//! **not** the last is refused with [`StorageError::Corrupt`] and nothing on disk is changed:
//! dropping it would drop acknowledged records that the later segments follow on from, so an
//! operator (or the replica's state transfer) must decide, not the log.
//!
//! # Durability modes and what survives
//!
//! Every append is one `write` of the whole record into the active segment, so it is in the
//! operating system's page cache when [`Wal::append`] returns, whatever the mode. A **process
//! crash** (panic, `kill -9`, abort) therefore loses nothing that was appended, in any mode;
//! at worst a record whose `write` was cut short is dropped as a torn tail, and that append
//! had not returned. What differs is **power loss** (or a kernel crash), which loses whatever
//! the page cache had not yet written to the disk:
//!
//! | [`Durability`] | after `append` returns | lost on power loss |
//! | --- | --- | --- |
//! | [`EveryRecord`](Durability::EveryRecord) (`"fsync"`) | the record is on disk (`sync_data`) | nothing that was acknowledged |
//! | [`Grouped`](Durability::Grouped) (`"grouped"`) | in the page cache; on disk after the next [`Wal::sync`] | the records appended since the last `sync` |
//! | [`MemoryOnly`](Durability::MemoryOnly) (`"memory"`) | in the page cache; the OS writes it when it likes | possibly everything, and the directory may be refused as corrupt |
//!
//! In the two syncing modes a new segment file and the directory entry naming it are synced
//! when the segment is created, and the segment being closed is synced before the next one
//! is created, so after power loss only the last segment can have a torn tail (which
//! recovery drops). [`MemoryOnly`](Durability::MemoryOnly) never syncs at all (not even the
//! repairs [`Wal::open`] makes), so after power loss an earlier segment may have
//! lost data that later ones depend on and `open` then reports [`StorageError::Corrupt`]: such
//! a directory is to be deleted and the replica's state brought back by state transfer.
//!
//! A failed `write` is undone (the segment is cut back to its last whole record); a failed
//! `fsync` leaves the page cache in a state nobody can know, so the log is *poisoned*: every
//! later operation fails with [`StorageError::Poisoned`] and the owner has to reopen it
//! (i.e. run recovery) to go on.
//!
//! # Memory
//!
//! Recovery holds one record at a time while reading, but returns every record found
//! ([`Recovery::records`]) for the owner to replay. The owner keeps that list bounded by
//! compacting: it saves a snapshot of its state at some position with
//! [`SnapshotStore::save`], then calls [`Wal::truncate_before`] with the next position, which
//! deletes every segment the snapshot covers.
//!
//! # Snapshots
//!
//! [`SnapshotStore::save`] writes `snapshot.tmp` (a header with a magic, a format version,
//! the position, the length and a CRC-32, then the bytes), syncs it, renames it over
//! `snapshot.bin` and syncs the directory: a crash at any point leaves either the old snapshot
//! or the new one, whole. [`SnapshotStore::load`] refuses a damaged snapshot with
//! [`StorageError::Corrupt`]; a damaged snapshot is never taken for an absent one.

mod snapshot;
mod wal;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use snapshot::{SnapshotStore, SNAPSHOT_FILE, SNAPSHOT_TMP_FILE};
pub use wal::{
    Record, Recovery, TornTail, Wal, WalOptions, DEFAULT_SEGMENT_BYTES, RECORD_BYTES_MAX,
    RECORD_HEADER_BYTES,
};

/// How appended records reach the disk (see the [module documentation](self) for exactly what
/// each mode keeps after a process crash and after power loss).
///
/// In configuration files: `"fsync"`, `"grouped"` (a 2 ms interval), `"grouped:5ms"` (or
/// `"grouped:500us"`), `"memory"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync (`File::sync_data`) after every append: [`Wal::append`] returns once the record is
    /// on disk.
    EveryRecord,
    /// Group commit: appends are written at once but synced together; [`Wal::append`] returns
    /// without syncing, and the owner calls [`Wal::sync`] (once per burst of records, or on a
    /// timer of `interval`). Records appended since the last sync may be lost on power loss.
    Grouped {
        /// How often the owner should call [`Wal::sync`] while records are unsynced.
        interval: Duration,
    },
    /// Never fsync (the OS writes when it likes); everything may be lost on power loss.
    MemoryOnly,
}

impl Durability {
    /// The interval of `"grouped"` when the configuration names none.
    pub const DEFAULT_GROUP_INTERVAL: Duration = Duration::from_millis(2);

    /// Group commit with [`DEFAULT_GROUP_INTERVAL`](Self::DEFAULT_GROUP_INTERVAL).
    pub const fn grouped() -> Self {
        Durability::Grouped {
            interval: Self::DEFAULT_GROUP_INTERVAL,
        }
    }

    /// The owner's sync timer: `Some(interval)` for [`Grouped`](Self::Grouped), `None`
    /// otherwise (nothing to sync on a timer).
    pub fn sync_interval(&self) -> Option<Duration> {
        match self {
            Durability::Grouped { interval } => Some(*interval),
            _ => None,
        }
    }

    /// Whether this mode ever calls fsync.
    pub fn syncs(&self) -> bool {
        !matches!(self, Durability::MemoryOnly)
    }
}

impl fmt::Display for Durability {
    /// The configuration string: `fsync`, `grouped` (default interval), `grouped:Nms` /
    /// `grouped:Nus`, `memory`. [`FromStr`] reads it back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::EveryRecord => f.write_str("fsync"),
            Durability::MemoryOnly => f.write_str("memory"),
            Durability::Grouped { interval } if *interval == Self::DEFAULT_GROUP_INTERVAL => {
                f.write_str("grouped")
            }
            Durability::Grouped { interval } => {
                let micros = interval.as_micros();
                if micros % 1000 == 0 {
                    write!(f, "grouped:{}ms", micros / 1000)
                } else {
                    write!(f, "grouped:{micros}us")
                }
            }
        }
    }
}

/// A configuration string that names no [`Durability`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown durability {0:?}: expected \"fsync\", \"grouped\", \"grouped:<N>ms\", \
     \"grouped:<N>us\" or \"memory\""
)]
pub struct ParseDurabilityError(pub String);

impl FromStr for Durability {
    type Err = ParseDurabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDurabilityError(s.to_string());
        match s {
            "fsync" => Ok(Durability::EveryRecord),
            "memory" => Ok(Durability::MemoryOnly),
            "grouped" => Ok(Durability::grouped()),
            _ => {
                let spec = s.strip_prefix("grouped:").ok_or_else(bad)?;
                let (number, unit): (&str, fn(u64) -> Duration) =
                    if let Some(n) = spec.strip_suffix("ms") {
                        (n, Duration::from_millis)
                    } else if let Some(n) = spec.strip_suffix("us") {
                        (n, Duration::from_micros)
                    } else {
                        return Err(bad());
                    };
                let n: u64 = number.parse().map_err(|_| bad())?;
                if n == 0 {
                    return Err(bad());
                }
                Ok(Durability::Grouped { interval: unit(n) })
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Durability {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A file holds bytes that are not what this module wrote: a damaged snapshot, or damage
    /// in a log segment that is not the last one. Nothing on disk was changed.
    #[error("{path}: corrupt at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment or snapshot file.
        path: PathBuf,
        /// Where in it the damage starts (the damaged record's first byte).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// [`Wal::append`] was given an index that does not follow the log's last one. Nothing was
    /// written.
    #[error("append of index {got} refused: the log's next index is {expected}")]
    NotConsecutive {
        /// The index the log accepts next.
        expected: u64,
        /// The index given.
        got: u64,
    },
    /// The log's last index is `u64::MAX`: no index follows it.
    #[error("the log's last index is u64::MAX: nothing can be appended")]
    IndexExhausted,
    /// A payload longer than [`RECORD_BYTES_MAX`]. Nothing was written.
    #[error("record of {len} bytes refused: at most {max} bytes")]
    RecordTooLarge {
        /// The payload's length.
        len: usize,
        /// [`RECORD_BYTES_MAX`].
        max: usize,
    },
    /// An earlier fsync (or the undoing of a failed write) failed, so what is on disk is not
    /// known: the log refuses everything until it is reopened, which runs recovery.
    #[error(
        "the write-ahead log in {dir} is unusable after an earlier failed write or sync; reopen it"
    )]
    Poisoned {
        /// The log's directory.
        dir: PathBuf,
    },
}

impl StorageError {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Syncs a directory, so that the entries created, renamed or removed in it survive power
/// loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}
