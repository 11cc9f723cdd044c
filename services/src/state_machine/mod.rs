//! Deterministic state machines: what a replicated service replicates.
//!
//! A [`StateMachine`] applies typed operations and returns typed outputs. Every replica that
//! starts from the same state and applies the same operations in the same order ends in the
//! same state with the same outputs (the reference notes' section 3: "an RM can be a state
//! machine"). Two machines are used throughout the services: the key-value store
//! ([`kv::KvStore`]) and the bank accounts of the reference notes ([`bank::Bank`]).
//!
//! Snapshots share one envelope ([`encode_snapshot`] / [`decode_snapshot`]): a magic, a format
//! version, the machine's kind, the bincode body and a SHA-256 digest of all of it, so a torn,
//! truncated or corrupted snapshot is refused with a [`SnapshotError`], never half-restored
//! and never a panic.

pub mod bank;
pub mod kv;

use std::fmt::Debug;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// A deterministic replicated object.
///
/// Implementations must be deterministic: [`apply`](StateMachine::apply) depends only on the
/// state and the operation (no clock, no randomness, no iteration over hash maps with random
/// seeds), so replicas applying the same sequence agree on every output and on the final state.
///
/// A register holding one number, replicated as the key-value store is:
///
/// ```
/// use bytes::Bytes;
/// use serde::{Deserialize, Serialize};
/// use viewsync_services::state_machine::{
///     decode_snapshot, encode_snapshot, SnapshotError, StateMachine,
/// };
///
/// #[derive(Clone, Debug, Default, PartialEq)]
/// struct Register(u64);
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// enum RegisterOp {
///     Add(u64),
///     Read,
/// }
///
/// /// A snapshot kind of its own, so another machine's snapshot is refused.
/// const REGISTER_KIND: u8 = 42;
///
/// impl StateMachine for Register {
///     type Operation = RegisterOp;
///     type Output = u64;
///
///     fn apply(&mut self, op: &RegisterOp) -> u64 {
///         if let RegisterOp::Add(n) = op {
///             self.0 = self.0.saturating_add(*n); // never panics, whatever the input
///         }
///         self.0
///     }
///
///     fn is_read_only(op: &RegisterOp) -> bool {
///         matches!(op, RegisterOp::Read)
///     }
///
///     fn snapshot(&self) -> Bytes {
///         encode_snapshot(REGISTER_KIND, &self.0)
///     }
///
///     fn restore(bytes: &[u8]) -> Result<Self, SnapshotError> {
///         decode_snapshot(REGISTER_KIND, bytes).map(Register)
///     }
/// }
///
/// // Two replicas applying the same operations in the same order agree.
/// let ops = [RegisterOp::Add(2), RegisterOp::Read, RegisterOp::Add(5)];
/// let (mut a, mut b) = (Register::default(), Register::default());
/// let outputs_a: Vec<u64> = ops.iter().map(|op| a.apply(op)).collect();
/// let outputs_b: Vec<u64> = ops.iter().map(|op| b.apply(op)).collect();
/// assert_eq!((outputs_a, &a), (outputs_b, &b));
/// // A joiner restores the state from a snapshot; a corrupted one is refused.
/// assert_eq!(Register::restore(&a.snapshot())?, a);
/// let mut corrupted = a.snapshot().to_vec();
/// corrupted[8] ^= 1;
/// assert!(Register::restore(&corrupted).is_err());
/// # Ok::<(), SnapshotError>(())
/// ```
pub trait StateMachine: Sized {
    /// An operation clients request (serde, encodable with bincode 2 through serde).
    type Operation: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + 'static;
    /// What applying an operation returns to the client.
    type Output: Serialize + DeserializeOwned + Clone + Debug + PartialEq + Send + 'static;

    /// Applies `op` and returns its output. Deterministic; never panics on any operation
    /// (refusals such as insufficient funds are outputs, not errors).
    fn apply(&mut self, op: &Self::Operation) -> Self::Output;

    /// Whether `op` leaves the state unchanged whatever the state (a read). Replication
    /// strategies may serve such operations without ordering them with updates.
    fn is_read_only(op: &Self::Operation) -> bool;

    /// The keys `op` reads or writes. Operations whose key sets are disjoint commute and do not
    /// see each other's effects, which lets the linearizability checker split a history into
    /// independent parts. An empty list means "may touch anything" (the default).
    fn keys(op: &Self::Operation) -> Vec<String> {
        let _ = op;
        Vec::new()
    }

    /// The whole state, encoded (see [`encode_snapshot`]).
    fn snapshot(&self) -> Bytes;

    /// Rebuilds a machine from [`snapshot`](StateMachine::snapshot)'s bytes. Corrupt, truncated
    /// or foreign bytes are an error; nothing is partially restored.
    fn restore(bytes: &[u8]) -> Result<Self, SnapshotError>;

    /// The output [`apply`](StateMachine::apply) would return for `op` now, leaving the
    /// state as it is. The gossip strategy answers updates with this *tentative* output before
    /// the update takes its place in the order. The default applies `op` to a copy made with
    /// [`snapshot`](StateMachine::snapshot) and [`restore`](StateMachine::restore), which costs
    /// the whole state per call: machines with large states should compute it directly (the
    /// key-value store and the bank do). `None` only if the copy does not restore.
    fn preview(&self, op: &Self::Operation) -> Option<Self::Output> {
        Self::restore(&self.snapshot())
            .ok()
            .map(|mut copy| copy.apply(op))
    }
}

/// Why a snapshot could not be restored. In every case no state was built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Fewer bytes than the envelope's header and digest.
    #[error("snapshot too short: {len} bytes")]
    TooShort {
        /// The length received.
        len: usize,
    },
    /// The bytes do not start with the snapshot magic.
    #[error("not a viewsync state machine snapshot (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported snapshot format version {found} (this build reads {SNAPSHOT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
    },
    /// A snapshot of another kind of state machine.
    #[error("snapshot of state machine kind {found}, expected kind {expected}")]
    WrongMachine {
        /// The kind the restoring machine writes.
        expected: u8,
        /// The kind found in the snapshot.
        found: u8,
    },
    /// The digest does not match the bytes: corrupted or torn.
    #[error("snapshot checksum mismatch (corrupted or truncated)")]
    Checksum,
    /// The body did not decode (only reachable with a matching digest, i.e. a bug or a
    /// deliberately forged snapshot).
    #[error("snapshot body does not decode: {0}")]
    Decode(String),
    /// The body decoded but left bytes unread.
    #[error("snapshot body has {0} trailing bytes")]
    TrailingBytes(usize),
}

/// The first bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 4] = *b"VSSM";
/// The snapshot envelope's format version.
pub const SNAPSHOT_VERSION: u8 = 1;
const HEADER_BYTES: usize = 6;
const DIGEST_BYTES: usize = 32;
/// Largest snapshot body decoded (bincode allocation limit).
pub const SNAPSHOT_BYTES_LIMIT: usize = 1 << 30;

const BINCODE_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<SNAPSHOT_BYTES_LIMIT>,
> = bincode::config::standard().with_limit::<SNAPSHOT_BYTES_LIMIT>();

/// Encodes `body` in the snapshot envelope:
/// `magic (4) | version (1) | kind (1) | bincode body | SHA-256 of everything before (32)`.
pub fn encode_snapshot<T: Serialize>(kind: u8, body: &T) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    out.push(SNAPSHOT_VERSION);
    out.push(kind);
    // Encoding plain maps of strings and integers into a Vec cannot fail.
    let encoded = bincode::serde::encode_to_vec(body, BINCODE_CONFIG)
        .expect("state machine state always encodes");
    out.extend_from_slice(&encoded);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    Bytes::from(out)
}

/// Decodes a snapshot written by [`encode_snapshot`] with the same `kind`, checking the
/// envelope and the digest before decoding the body.
pub fn decode_snapshot<T: DeserializeOwned>(kind: u8, bytes: &[u8]) -> Result<T, SnapshotError> {
    if bytes.len() < HEADER_BYTES + DIGEST_BYTES {
        return Err(SnapshotError::TooShort { len: bytes.len() });
    }
    if bytes[..4] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let (content, digest) = bytes.split_at(bytes.len() - DIGEST_BYTES);
    if Sha256::digest(content).as_slice() != digest {
        return Err(SnapshotError::Checksum);
    }
    if content[4] != SNAPSHOT_VERSION {
        return Err(SnapshotError::UnsupportedVersion { found: content[4] });
    }
    if content[5] != kind {
        return Err(SnapshotError::WrongMachine {
            expected: kind,
            found: content[5],
        });
    }
    let body = &content[HEADER_BYTES..];
    let (value, read) = bincode::serde::decode_from_slice(body, BINCODE_CONFIG)
        .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if read != body.len() {
        return Err(SnapshotError::TrailingBytes(body.len() - read));
    }
    Ok(value)
}

/// Encodes an operation or an output with the same bincode configuration as snapshots (for
/// the wire and the logs of replication cores).
pub fn encode_value<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(
        bincode::serde::encode_to_vec(value, BINCODE_CONFIG).expect("operations always encode"),
    )
}

/// Decodes what [`encode_value`] wrote; the whole slice must be consumed.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, BINCODE_CONFIG)
        .map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(SnapshotError::TrailingBytes(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_refusals() {
        let body: Vec<(String, u64)> = vec![("a".into(), 1), ("b".into(), 2)];
        let snap = encode_snapshot(7, &body);
        assert_eq!(
            decode_snapshot::<Vec<(String, u64)>>(7, &snap).unwrap(),
            body
        );
        assert_eq!(
            decode_snapshot::<Vec<(String, u64)>>(8, &snap),
            Err(SnapshotError::WrongMachine {
                expected: 8,
                found: 7
            })
        );
        assert_eq!(
            decode_snapshot::<Vec<(String, u64)>>(7, &snap[..10]),
            Err(SnapshotError::TooShort { len: 10 })
        );
        let mut bad = snap.to_vec();
        bad[0] = b'X';
        assert_eq!(
            decode_snapshot::<Vec<(String, u64)>>(7, &bad),
            Err(SnapshotError::BadMagic)
        );
        // Every single-byte flip after the magic is caught by the digest.
        for i in 4..snap.len() {
            let mut bad = snap.to_vec();
            bad[i] ^= 0x40;
            assert!(
                decode_snapshot::<Vec<(String, u64)>>(7, &bad).is_err(),
                "byte {i}"
            );
        }
        // A truncated snapshot (torn write) is refused.
        assert_eq!(
            decode_snapshot::<Vec<(String, u64)>>(7, &snap[..snap.len() - 1]),
            Err(SnapshotError::Checksum)
        );
    }

    #[test]
    fn value_round_trip() {
        let v = (String::from("k"), Some(3u64));
        let bytes = encode_value(&v);
        assert_eq!(decode_value::<(String, Option<u64>)>(&bytes).unwrap(), v);
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            decode_value::<(String, Option<u64>)>(&long),
            Err(SnapshotError::TrailingBytes(1))
        ));
    }
}
