//! The segmented write-ahead log (format and guarantees: the [module documentation](super)).

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{sync_dir, Durability, StorageError};

/// Bytes of a record's header: payload length (4), checksum (4), index (8).
pub const RECORD_HEADER_BYTES: usize = 16;

/// The longest payload a record may carry: 64 MiB. [`Wal::append`] refuses longer payloads,
/// and recovery takes a header naming more for damage (it never allocates more than this for
/// one record, nor more than the bytes left in the segment).
pub const RECORD_BYTES_MAX: usize = 64 << 20;

/// The size past which a new segment is started, unless [`WalOptions::segment_bytes`] says
/// otherwise: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// The read buffer recovery uses per segment.
const READ_BUFFER_BYTES: usize = 64 << 10;
/// A write buffer that grew past this (for a large record) is released after the write.
const WRITE_BUFFER_KEEP_BYTES: usize = 1 << 20;

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Its position: one more than the previous record's.
    pub index: u64,
    /// What the owner appended.
    pub payload: Bytes,
}

/// The damaged end of the last segment that [`Wal::open`] cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment that was truncated (or removed, when nothing in it was whole).
    pub segment: PathBuf,
    /// Where the first damaged record started; the segment now ends there.
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes_dropped: u64,
    /// What was wrong with the first damaged record.
    pub reason: String,
}

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Every whole record, in index order, for the owner to replay (after its snapshot, if
    /// any: records at or below the snapshot's position are the owner's to skip). The owner
    /// keeps this bounded by compacting ([`Wal::truncate_before`] after a snapshot).
    pub records: Vec<Record>,
    /// The damaged end of the last segment that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// How a [`Wal`] is opened: its [`Durability`] and its segment size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// How appended records reach the disk.
    pub durability: Durability,
    /// A new segment is started when the next record would take the active segment past this
    /// many bytes (a record longer than this gets a segment of its own). Default
    /// [`DEFAULT_SEGMENT_BYTES`].
    pub segment_bytes: u64,
}

impl WalOptions {
    /// The given durability and the default segment size.
    pub fn new(durability: Durability) -> Self {
        WalOptions {
            durability,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }

    /// Sets the segment size (tests use small ones to get many segments).
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes.max(1);
        self
    }

    /// Opens the log in `dir` with these options (see [`Wal::open`]).
    pub fn open(self, dir: &Path) -> Result<(Wal, Recovery), StorageError> {
        Wal::open_with(dir, self)
    }
}

/// A segment file: its first record's index and its path.
#[derive(Clone, Debug)]
struct Segment {
    first_index: u64,
    path: PathBuf,
}

/// A checksummed, segmented write-ahead log in one directory (see the
/// [module documentation](super)).
///
/// One `Wal` (one process) owns a directory; two writing into the same one corrupt it.
/// Dropping a `Wal` does not sync: in [`Durability::Grouped`] mode the owner calls
/// [`sync`](Wal::sync) before a clean shutdown if it wants the last records to survive power
/// loss (a process exit loses nothing either way).
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    options: WalOptions,
    /// In index order; the last one is the active segment (appends go there).
    segments: Vec<Segment>,
    /// The active segment, open for appending; `None` when there is none yet (an empty log,
    /// or a new segment could not be created).
    active: Option<File>,
    /// The active segment's length in bytes (all of it whole records).
    active_len: u64,
    last_index: Option<u64>,
    /// Records were written to the active segment since its last sync (Grouped mode only).
    unsynced: bool,
    /// A sync failed, or a failed write could not be undone.
    poisoned: bool,
    buf: Vec<u8>,
}

/// What scanning one segment found.
struct Scan {
    /// The segment's length in bytes.
    file_len: u64,
    /// The offset and the reason of the first damaged record, if any.
    damage: Option<(u64, String)>,
    /// How many whole records it holds (before any damage).
    records: usize,
}

impl Wal {
    /// Opens (creating it if missing) the log in `dir` with the default segment size, and
    /// recovers it: see [`Wal::open_with`].
    pub fn open(dir: &Path, durability: Durability) -> Result<(Wal, Recovery), StorageError> {
        Wal::open_with(dir, WalOptions::new(durability))
    }

    /// Opens (creating it if missing) the log in `dir` and recovers it: reads every segment in
    /// order and returns the whole records found.
    ///
    /// A torn tail of the last segment (a truncated record, a bad checksum, an absurd length or
    /// a non-consecutive index, and everything after it) is cut off (the truncation synced,
    /// except in [`Durability::MemoryOnly`] mode), and reported in [`Recovery::torn_tail`] and with `tracing::warn!`; a last segment left
    /// empty is removed. The same damage in any other segment, an empty segment that is not
    /// the last, or a segment whose name does not follow on from the previous segment's last
    /// record is [`StorageError::Corrupt`], and then nothing on disk is changed.
    pub fn open_with(dir: &Path, options: WalOptions) -> Result<(Wal, Recovery), StorageError> {
        fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        let mut segments = list_segments(dir)?;

        // Read everything first: nothing is changed on disk unless every segment but the
        // last is whole.
        let mut records = Vec::new();
        let mut last_scan = None;
        for (i, segment) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            if let Some(last) = records.last().map(|r: &Record| r.index) {
                if last.checked_add(1) != Some(segment.first_index) {
                    return Err(StorageError::Corrupt {
                        path: segment.path.clone(),
                        offset: 0,
                        reason: format!(
                            "segment named for index {} follows a segment ending at index \
                             {last} (a segment is missing or misnamed)",
                            segment.first_index
                        ),
                    });
                }
            }
            let scan = scan_segment(&segment.path, segment.first_index, &mut records)?;
            if !is_last {
                if let Some((offset, reason)) = scan.damage {
                    return Err(StorageError::Corrupt {
                        path: segment.path.clone(),
                        offset,
                        reason: format!("{reason} (in a segment that is not the last one)"),
                    });
                }
                if scan.records == 0 {
                    return Err(StorageError::Corrupt {
                        path: segment.path.clone(),
                        offset: 0,
                        reason: "empty segment that is not the last one".to_string(),
                    });
                }
            } else {
                last_scan = Some(scan);
            }
        }

        // Repair the last segment: cut off its torn tail, remove it if nothing is left.
        let mut torn_tail = None;
        let mut active_len = 0;
        if let Some(scan) = last_scan {
            let segment = segments.last().expect("a last scan means a last segment");
            active_len = scan.file_len;
            if let Some((offset, reason)) = scan.damage {
                let bytes_dropped = scan.file_len - offset;
                tracing::warn!(
                    segment = %segment.path.display(),
                    offset,
                    bytes_dropped,
                    reason = %reason,
                    "write-ahead log: cutting off a torn tail"
                );
                truncate_file(&segment.path, offset, options.durability.syncs())?;
                active_len = offset;
                torn_tail = Some(TornTail {
                    segment: segment.path.clone(),
                    offset,
                    bytes_dropped,
                    reason,
                });
            }
            if scan.records == 0 {
                let path = segment.path.clone();
                tracing::debug!(segment = %path.display(), "write-ahead log: removing an empty last segment");
                fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
                if options.durability.syncs() {
                    sync_dir(dir)?;
                }
                segments.pop();
                active_len = match segments.last() {
                    Some(previous) => fs::metadata(&previous.path)
                        .map_err(|e| StorageError::io(&previous.path, e))?
                        .len(),
                    None => 0,
                };
            }
        }

        let active = match segments.last() {
            Some(segment) => Some(open_append(&segment.path)?),
            None => None,
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            options,
            segments,
            active,
            active_len,
            last_index: records.last().map(|r| r.index),
            unsynced: false,
            poisoned: false,
            buf: Vec::new(),
        };
        Ok((wal, Recovery { records, torn_tail }))
    }

    /// Appends the record `index` carrying `payload`: one `write` of the whole record into the
    /// active segment (starting a new segment first if this one would grow past the segment
    /// size), then, in [`Durability::EveryRecord`] mode, `sync_data`.
    ///
    /// `index` must be one more than [`last_index`](Wal::last_index) (any index when the log
    /// is empty): otherwise [`StorageError::NotConsecutive`] and nothing is written. A payload
    /// over [`RECORD_BYTES_MAX`] is [`StorageError::RecordTooLarge`]. A failed write is undone
    /// (the segment is cut back to its last whole record) and returned; a failed sync poisons
    /// the log.
    pub fn append(&mut self, index: u64, payload: &[u8]) -> Result<(), StorageError> {
        self.check_usable()?;
        if let Some(last) = self.last_index {
            let expected = last.checked_add(1).ok_or(StorageError::IndexExhausted)?;
            if index != expected {
                return Err(StorageError::NotConsecutive {
                    expected,
                    got: index,
                });
            }
        }
        if payload.len() > RECORD_BYTES_MAX {
            return Err(StorageError::RecordTooLarge {
                len: payload.len(),
                max: RECORD_BYTES_MAX,
            });
        }
        let record_len = (RECORD_HEADER_BYTES + payload.len()) as u64;
        if self.active.is_none()
            || (self.active_len > 0
                && self.active_len.saturating_add(record_len) > self.options.segment_bytes)
        {
            self.start_segment(index)?;
        }

        encode_record(&mut self.buf, index, payload);
        let file = self.active.as_mut().expect("start_segment opened one");
        let written = file.write_all(&self.buf);
        if self.buf.capacity() > WRITE_BUFFER_KEEP_BYTES {
            self.buf = Vec::new();
        }
        if let Err(error) = written {
            let error = StorageError::io(self.active_path(), error);
            self.undo_write();
            return Err(error);
        }
        self.active_len += record_len;
        self.last_index = Some(index);
        match self.options.durability {
            Durability::EveryRecord => {
                self.unsynced = true;
                self.sync()?;
            }
            Durability::Grouped { .. } => self.unsynced = true,
            Durability::MemoryOnly => {}
        }
        Ok(())
    }

    /// Syncs (`sync_data`) what was appended since the last sync. A no-op when nothing is
    /// unsynced, which is always the case in [`Durability::EveryRecord`] and
    /// [`Durability::MemoryOnly`] modes. A failure poisons the log.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if !self.unsynced {
            return Ok(());
        }
        let Some(file) = self.active.as_ref() else {
            self.unsynced = false;
            return Ok(());
        };
        if let Err(error) = file.sync_data() {
            self.poisoned = true;
            return Err(StorageError::io(self.active_path(), error));
        }
        self.unsynced = false;
        Ok(())
    }

    /// Whether records were appended since the last sync ([`Durability::Grouped`] mode only):
    /// the owner's cue to call [`sync`](Wal::sync).
    pub fn needs_sync(&self) -> bool {
        self.unsynced
    }

    /// The index of the last record, `None` when the log is empty.
    pub fn last_index(&self) -> Option<u64> {
        self.last_index
    }

    /// The index of the first record kept (it grows with [`truncate_before`](Wal::truncate_before)),
    /// `None` when the log is empty.
    pub fn first_index(&self) -> Option<u64> {
        self.last_index?;
        self.segments.first().map(|s| s.first_index)
    }

    /// The index [`append`](Wal::append) accepts next: `None` when the log is empty (any index
    /// is accepted) or its last index is `u64::MAX` (none is).
    pub fn next_index(&self) -> Option<u64> {
        self.last_index.and_then(|last| last.checked_add(1))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> WalOptions {
        self.options
    }

    /// The segment files, in index order (the last one is the active segment).
    pub fn segment_paths(&self) -> impl Iterator<Item = &Path> {
        self.segments.iter().map(|s| s.path.as_path())
    }

    /// Compaction, once a snapshot covers every record below `index`: deletes each segment all
    /// of whose records are below `index`, oldest first, never the active segment. Returns how
    /// many segments were deleted. In the syncing modes the directory is synced after each
    /// deletion, so that after power loss what is left is still a contiguous run of segments.
    pub fn truncate_before(&mut self, index: u64) -> Result<usize, StorageError> {
        self.check_usable()?;
        let mut removed = 0;
        // segments[0] holds the records below segments[1].first_index.
        while self.segments.len() > 1 && self.segments[1].first_index <= index {
            self.remove_segment_file(0)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Deletes every segment, oldest first, leaving an empty log whose next append may carry
    /// any index: for an owner that installed a snapshot beyond its log's end (a state
    /// transfer), after saving that snapshot. If a crash interrupts it, reopening finds the
    /// newest segments still there, all below the snapshot's position: the owner then calls
    /// `clear` again. A failure poisons the log (reopening finds out what is left).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        self.active = None;
        self.active_len = 0;
        self.unsynced = false;
        while !self.segments.is_empty() {
            if let Err(error) = self.remove_segment_file(0) {
                // What is left is a contiguous run of segments, but which ones reached the
                // disk is not known here: reopening (recovery) finds out.
                self.poisoned = true;
                return Err(error);
            }
        }
        self.last_index = None;
        Ok(())
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        if self.poisoned {
            return Err(StorageError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    fn active_path(&self) -> &Path {
        self.segments
            .last()
            .map(|s| s.path.as_path())
            .unwrap_or(&self.dir)
    }

    /// Closes the active segment (synced, in the syncing modes) and creates a new one named for
    /// `first_index`, synced with its directory entry in the syncing modes.
    fn start_segment(&mut self, first_index: u64) -> Result<(), StorageError> {
        // The closed segment must be whole on disk before a later one exists: after power loss
        // only the last segment may have a torn tail.
        self.sync()?;
        self.active = None;
        let path = segment_path(&self.dir, first_index);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        self.segments.push(Segment {
            first_index,
            path: path.clone(),
        });
        self.active = Some(file);
        self.active_len = 0;
        if self.options.durability.syncs() {
            let synced = self
                .active
                .as_ref()
                .expect("just set")
                .sync_all()
                .map_err(|e| StorageError::io(&path, e))
                .and_then(|()| sync_dir(&self.dir));
            if let Err(error) = synced {
                self.poisoned = true;
                return Err(error);
            }
        }
        tracing::debug!(segment = %path.display(), "write-ahead log: new segment");
        Ok(())
    }

    /// Undoes a failed write: cuts the active segment back to its last whole record, or
    /// removes it when it has none (so that its name cannot disagree with the next append's
    /// index). Poisons the log when that fails too.
    fn undo_write(&mut self) {
        if self.active_len == 0 {
            if self.remove_segment_file(self.segments.len() - 1).is_err() {
                self.poisoned = true;
            }
            self.active = None;
            return;
        }
        let file = self
            .active
            .as_ref()
            .expect("a write needs an active segment");
        if file.set_len(self.active_len).is_err() {
            self.poisoned = true;
        }
    }

    /// Removes the segment file at `position` (and syncs the directory in the syncing modes).
    fn remove_segment_file(&mut self, position: usize) -> Result<(), StorageError> {
        let path = self.segments[position].path.clone();
        if position + 1 == self.segments.len() {
            self.active = None;
        }
        fs::remove_file(&path).map_err(|e| StorageError::io(&path, e))?;
        self.segments.remove(position);
        if self.options.durability.syncs() {
            sync_dir(&self.dir)?;
        }
        tracing::debug!(segment = %path.display(), "write-ahead log: segment deleted");
        Ok(())
    }
}

/// `DIR/wal-{first_index:020}.log`.
fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("wal-{first_index:020}.log"))
}

/// The segment files in `dir`, sorted by first index. Other files are ignored (a file that
/// looks like a segment but is not named exactly as this module names them is ignored with a
/// warning).
fn list_segments(dir: &Path) -> Result<Vec<Segment>, StorageError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| StorageError::io(dir, e))? {
        let entry = entry.map_err(|e| StorageError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
        else {
            continue;
        };
        match digits.parse::<u64>() {
            Ok(first_index) if digits.len() == 20 => segments.push(Segment {
                first_index,
                path: entry.path(),
            }),
            _ => tracing::warn!(
                file = %entry.path().display(),
                "write-ahead log: ignoring a file that is not a segment name"
            ),
        }
    }
    segments.sort_by_key(|s| s.first_index);
    Ok(segments)
}

/// CRC-32 of the index's little-endian bytes followed by the payload.
fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Replaces `buf` with the record's bytes.
fn encode_record(buf: &mut Vec<u8>, index: u64, payload: &[u8]) {
    buf.clear();
    buf.reserve(RECORD_HEADER_BYTES + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(index, payload).to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads the whole records of one segment into `records`, one at a time, stopping at the
/// first damaged one. `expected` is the index its first record must carry.
fn scan_segment(
    path: &Path,
    expected: u64,
    records: &mut Vec<Record>,
) -> Result<Scan, StorageError> {
    let io = |e: std::io::Error| StorageError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
    let mut expected = Some(expected);
    let mut offset = 0u64;
    let mut count = 0;
    let mut header = [0u8; RECORD_HEADER_BYTES];
    let damage = loop {
        let remaining = file_len - offset;
        if remaining == 0 {
            break None;
        }
        if remaining < RECORD_HEADER_BYTES as u64 {
            break Some(format!(
                "truncated record header: {remaining} of {RECORD_HEADER_BYTES} bytes"
            ));
        }
        reader.read_exact(&mut header).map_err(io)?;
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let index = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        if len as usize > RECORD_BYTES_MAX {
            break Some(format!(
                "record length {len} exceeds RECORD_BYTES_MAX ({RECORD_BYTES_MAX})"
            ));
        }
        let available = remaining - RECORD_HEADER_BYTES as u64;
        if u64::from(len) > available {
            break Some(format!(
                "truncated record: its header says {len} payload bytes, {available} remain"
            ));
        }
        let mut payload = vec![0u8; len as usize];
        reader.read_exact(&mut payload).map_err(io)?;
        if checksum(index, &payload) != crc {
            break Some(format!(
                "checksum mismatch in the record claiming index {index}"
            ));
        }
        if Some(index) != expected {
            break Some(match expected {
                Some(expected) => format!("index {index} where {expected} was expected"),
                None => format!("index {index} after index u64::MAX"),
            });
        }
        records.push(Record {
            index,
            payload: Bytes::from(payload),
        });
        count += 1;
        offset += RECORD_HEADER_BYTES as u64 + u64::from(len);
        expected = index.checked_add(1);
    };
    Ok(Scan {
        file_len,
        damage: damage.map(|reason| (offset, reason)),
        records: count,
    })
}

/// Truncates `path` to `len` bytes, and syncs it when `sync`.
fn truncate_file(path: &Path, len: u64, sync: bool) -> Result<(), StorageError> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    file.set_len(len)
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .map_err(|e| StorageError::io(path, e))
}

/// Opens a segment for appending at its end.
fn open_append(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))
}
