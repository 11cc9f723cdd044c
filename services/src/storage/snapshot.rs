//! The snapshot file, replaced atomically (see the [module documentation](super)).
//!
//! `snapshot.bin` is a 28-byte header and then the snapshot's bytes:
//!
//! ```text
//! [magic "VSWS" (4)][u32 LE format version (1)][u64 LE position][u64 LE length][u32 LE crc32]
//! ```
//!
//! The CRC-32 covers the header's first 24 bytes (magic, version, position, length) and then
//! the snapshot's bytes, so a damaged position is caught as well as damaged bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::{sync_dir, StorageError};

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "snapshot.bin";
/// The file a snapshot is written to before it is renamed over [`SNAPSHOT_FILE`].
pub const SNAPSHOT_TMP_FILE: &str = "snapshot.tmp";

const MAGIC: [u8; 4] = *b"VSWS";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 28;
/// The header bytes the checksum covers (all but the checksum itself).
const CHECKED_HEADER_BYTES: usize = 24;

/// The snapshot of a data directory: at most one, replaced whole by [`save`](Self::save).
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// The snapshot store of `dir` (nothing is read or created until [`save`](Self::save) or
    /// [`load`](Self::load)).
    pub fn new(dir: &Path) -> Self {
        SnapshotStore {
            dir: dir.to_path_buf(),
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/snapshot.bin`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_FILE)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_TMP_FILE)
    }

    /// Replaces the snapshot with `bytes`, the owner's state after applying every record up to
    /// and including `position`. Writes `snapshot.tmp` (header, then the bytes), syncs it,
    /// renames it over `snapshot.bin` and syncs the directory (creating the directory if
    /// missing). A crash at any point leaves the old snapshot or the new one, whole; once
    /// `save` returns, the new one survives power loss.
    pub fn save(&self, position: u64, bytes: &[u8]) -> Result<(), StorageError> {
        fs::create_dir_all(&self.dir).map_err(|e| StorageError::io(&self.dir, e))?;
        let tmp = self.tmp_path();
        let mut header = [0u8; HEADER_BYTES];
        header[0..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&VERSION.to_le_bytes());
        header[8..16].copy_from_slice(&position.to_le_bytes());
        header[16..24].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
        let crc = checksum(&header[..CHECKED_HEADER_BYTES], bytes);
        header[24..28].copy_from_slice(&crc.to_le_bytes());

        let written = File::create(&tmp).and_then(|mut file| {
            file.write_all(&header)?;
            file.write_all(bytes)?;
            file.sync_all()
        });
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StorageError::io(&tmp, error));
        }
        let path = self.path();
        fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e))?;
        sync_dir(&self.dir)?;
        tracing::debug!(
            snapshot = %path.display(),
            position,
            bytes = bytes.len(),
            "snapshot saved"
        );
        Ok(())
    }

    /// The saved snapshot: `Some((position, bytes))`, or `None` when there is none. A
    /// `snapshot.tmp` left by a `save` that a crash interrupted is removed first. A snapshot
    /// file that is damaged (too short, a wrong magic, version or length, a checksum mismatch)
    /// is [`StorageError::Corrupt`], never taken for an absent snapshot.
    pub fn load(&self) -> Result<Option<(u64, Bytes)>, StorageError> {
        let tmp = self.tmp_path();
        match fs::remove_file(&tmp) {
            Ok(()) => {
                tracing::info!(file = %tmp.display(), "removed an unfinished snapshot")
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(StorageError::io(&tmp, error)),
        }

        let path = self.path();
        let io = |e: io::Error| StorageError::io(&path, e);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io(error)),
        };
        let file_len = file.metadata().map_err(io)?.len();
        let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
            path: path.clone(),
            offset,
            reason,
        };
        if file_len < HEADER_BYTES as u64 {
            return Err(corrupt(
                0,
                format!("{file_len} bytes, shorter than the {HEADER_BYTES}-byte snapshot header"),
            ));
        }
        let mut header = [0u8; HEADER_BYTES];
        file.read_exact(&mut header).map_err(io)?;
        if header[0..4] != MAGIC {
            return Err(corrupt(0, "not a snapshot file (bad magic)".to_string()));
        }
        let version = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(corrupt(
                4,
                format!("snapshot format version {version}, this build reads {VERSION}"),
            ));
        }
        let position = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes"));
        let body_len = file_len - HEADER_BYTES as u64;
        if len != body_len {
            return Err(corrupt(
                16,
                format!("the header says {len} bytes, the file holds {body_len} after it"),
            ));
        }
        let body_len = usize::try_from(body_len)
            .map_err(|_| corrupt(16, format!("{body_len} bytes do not fit in memory")))?;
        let mut body = vec![0u8; body_len];
        file.read_exact(&mut body).map_err(io)?;
        if checksum(&header[..CHECKED_HEADER_BYTES], &body) != crc {
            return Err(corrupt(24, "checksum mismatch".to_string()));
        }
        Ok(Some((position, Bytes::from(body))))
    }
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(body);
    hasher.finalize()
}
