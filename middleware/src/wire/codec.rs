//! The one codec: length-delimited frames carrying a bincode envelope, authenticated with the
//! cluster key (HMAC-SHA256), checked against replays.
//!
//! Frame layout (the length prefix is tokio-util's `LengthDelimitedCodec`, 4 bytes big-endian):
//!
//! ```text
//! [len: u32][flag: u8][envelope: bincode 2, standard config][tag: 32 bytes, if flag = 1]
//! ```
//!
//! The tag covers the flag and the envelope. Checks run cheapest first and before any
//! allocation the frame asks for: length against `frame_bytes_max` (tokio-util checks the
//! prefix before reserving), flag, tag, then decoding with a byte limit, the protocol version,
//! and the replay window. A failed check is a [`FrameError`]; it never changes node state.

use super::messages::{Body, Envelope, PROTOCOL_COUNTER_MAX, PROTOCOL_VERSION};
use crate::id::{NodeId, ProcessId};
use bytes::{Bytes, BytesMut};
use dashmap::DashMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

type HmacSha256 = Hmac<Sha256>;

/// Length of the authentication tag.
pub const TAG_BYTES: usize = 32;
thread_local! {
    /// The frame being opened on this thread, so that payloads decode as slices of it.
    static CURRENT_FRAME: std::cell::RefCell<Option<Bytes>> = const { std::cell::RefCell::new(None) };
}

/// Deserializes a payload as a slice of the frame being opened ([`FrameCodec::open_frame`]):
/// no copy and no allocation per multicast. Outside `open_frame`, or for bytes not inside the
/// frame, it copies.
pub(crate) fn frame_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    struct FrameSlice;
    impl<'de> serde::de::Visitor<'de> for FrameSlice {
        type Value = Bytes;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("bytes")
        }
        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Bytes, E> {
            Ok(CURRENT_FRAME.with(|current| match &*current.borrow() {
                Some(frame) if contains(frame, v) => frame.slice_ref(v),
                _ => Bytes::copy_from_slice(v),
            }))
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }
        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }
    }
    d.deserialize_bytes(FrameSlice)
}

fn contains(frame: &Bytes, part: &[u8]) -> bool {
    let start = frame.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    at >= start && at + part.len() <= start + frame.len()
}

/// The largest frame any configuration may allow; also bincode's allocation limit.
pub const FRAME_BYTES_LIMIT: usize = 16 * 1024 * 1024;
/// Default largest accepted frame.
pub const FRAME_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
/// How many frame counters behind the newest one a frame may arrive and still be accepted.
pub const REPLAY_WINDOW_FRAMES: u64 = 1024;
/// Distinct sending nodes tracked by the replay guard; frames from further nodes are refused.
pub const REPLAY_NODES_MAX: usize = 4096;
/// Distinct clients tracked by the replay guard, apart from the nodes; a new client past this
/// evicts the window of the client heard from least recently (see [`ReplayGuard`]).
pub const REPLAY_CLIENTS_MAX: usize = 4096;

const FLAG_PLAIN: u8 = 0;
const FLAG_AUTHENTICATED: u8 = 1;
const BINCODE_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<FRAME_BYTES_LIMIT>,
> = bincode::config::standard().with_limit::<FRAME_BYTES_LIMIT>();

/// The shared secret of a cluster. Frames sealed with another key fail authentication.
#[derive(Clone)]
pub struct ClusterKey(Arc<[u8]>);

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// A key file or key text that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// There is no file at the path.
    #[error(
        "no key file at {path}: make one with `viewsync keygen > {path}` and `chmod 600 {path}`, \
         and give every node of the cluster the same file"
    )]
    Missing {
        /// The file.
        path: String,
    },
    /// The file could not be read.
    #[error("cannot read key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not hexadecimal.
    #[error("key must be hexadecimal text: {0}")]
    NotHex(hex::FromHexError),
    /// The key is too short to be safe.
    #[error("key is {0} bytes; at least 32 are needed (64 hex digits)")]
    TooShort(usize),
}

impl ClusterKey {
    /// Shortest key accepted, in bytes.
    pub const BYTES_MIN: usize = 32;

    /// Parses a key from hex text (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(KeyError::NotHex)?;
        if bytes.len() < Self::BYTES_MIN {
            return Err(KeyError::TooShort(bytes.len()));
        }
        Ok(ClusterKey(bytes.into()))
    }

    /// Reads a key file holding hex text.
    ///
    /// A file that others than its owner may read is used, with a warning naming the fix
    /// (`chmod 600`), as ssh warns of private keys: anyone who reads the key can join the
    /// cluster and send it anything. (Git keeps only modes 644 and 755, so a key checked
    /// out from a repository is group- and world-readable until it is changed.)
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing {
                    path: shown.clone(),
                }
            } else {
                KeyError::Read {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        if let Some(mode) = readable_by_others(path) {
            tracing::warn!(
                "key file {shown} is readable by others than its owner (mode {mode:03o}): \
                 anyone who can read it can join the cluster; run `chmod 600 {shown}`"
            );
        }
        Self::from_hex(&text)
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC accepts keys of any length")
    }
}

/// The file's permission bits when group or others may read it (`None` when only its owner
/// can, or on systems without Unix permissions).
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o044 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Why a frame was refused. The frame is dropped and, on a connection, the connection closed;
/// no state changes.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the frame limit (checked before reading the frame).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Claimed or actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The frame is too short to hold a flag and a tag.
    #[error("truncated frame of {0} bytes")]
    Truncated(usize),
    /// Unknown flag byte.
    #[error("unknown frame flag {0}")]
    BadFlag(u8),
    /// The frame is not authenticated but this node requires it.
    #[error("unauthenticated {0} frame refused: this cluster requires a key")]
    Unauthenticated(&'static str),
    /// The tag does not match: wrong key or tampered frame.
    #[error("authentication failed: wrong cluster key or tampered frame")]
    BadTag,
    /// The frame is authenticated but this node has no key to check it.
    #[error("authenticated frame refused: this node has no cluster key")]
    NoKey,
    /// The envelope does not decode.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The sender speaks another protocol version.
    #[error("protocol version {got} not supported (this node speaks {PROTOCOL_VERSION})")]
    Version {
        /// The sender's version.
        got: u16,
    },
    /// This frame counter was seen before from this process.
    #[error("replayed frame {seq} from {sender}")]
    Replayed {
        /// The claimed sender.
        sender: ProcessId,
        /// The frame counter.
        seq: u64,
    },
    /// This frame counter is too far behind the newest one seen from this process to tell
    /// whether it is a replay (a frame delayed past the replay window); refused like one.
    #[error("frame {seq} from {sender} is older than the replay window")]
    TooOld {
        /// The claimed sender.
        sender: ProcessId,
        /// The frame counter.
        seq: u64,
    },
    /// The frame claims an older incarnation of a node than one already heard from.
    #[error("frame from stale incarnation {sender}")]
    StaleIncarnation {
        /// The claimed sender.
        sender: ProcessId,
    },
    /// Too many distinct sending nodes to track for replays (never for a client: see
    /// [`ReplayGuard`]).
    #[error("replay guard full ({REPLAY_NODES_MAX} nodes)")]
    ReplayGuardFull,
    /// The connection failed underneath the codec.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Counters of frames refused, by reason, and of frames accepted and sent.
#[derive(Debug, Default)]
pub struct WireStats {
    /// Frames decoded and accepted.
    pub frames_accepted: AtomicU64,
    /// Frames sealed for sending.
    pub frames_sealed: AtomicU64,
    /// Bytes of the frames sealed, length prefixes included.
    pub bytes_sealed: AtomicU64,
    /// Refused: over the size limit.
    pub refused_too_large: AtomicU64,
    /// Refused: truncated, bad flag, malformed or wrong version.
    pub refused_malformed: AtomicU64,
    /// Refused: missing or wrong authentication.
    pub refused_unauthenticated: AtomicU64,
    /// Refused: replayed or from a stale incarnation.
    pub refused_replayed: AtomicU64,
}

impl WireStats {
    /// Counts a refusal under its reason.
    pub fn count_refusal(&self, error: &FrameError) {
        let counter = match error {
            FrameError::TooLarge { .. } => &self.refused_too_large,
            FrameError::Truncated(_)
            | FrameError::BadFlag(_)
            | FrameError::Malformed(_)
            | FrameError::Version { .. } => &self.refused_malformed,
            FrameError::Unauthenticated(_) | FrameError::BadTag | FrameError::NoKey => {
                &self.refused_unauthenticated
            }
            FrameError::Replayed { .. }
            | FrameError::TooOld { .. }
            | FrameError::StaleIncarnation { .. }
            | FrameError::ReplayGuardFull => &self.refused_replayed,
            FrameError::Io(_) => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Frames refused for any reason.
    pub fn refused_total(&self) -> u64 {
        self.refused_too_large.load(Ordering::Relaxed)
            + self.refused_malformed.load(Ordering::Relaxed)
            + self.refused_unauthenticated.load(Ordering::Relaxed)
            + self.refused_replayed.load(Ordering::Relaxed)
    }
}

/// Sliding-window replay detection per sender (like IPsec's anti-replay window), with a
/// window per node and one per client.
///
/// - **Nodes** are keyed by node id: a frame of an older incarnation than the newest heard
///   from that node is refused ([`FrameError::StaleIncarnation`]), a newer one starts a fresh
///   window. At most [`REPLAY_NODES_MAX`] nodes are tracked; frames from further nodes are
///   refused ([`FrameError::ReplayGuardFull`]).
/// - **Clients** ([`ProcessId::is_client`]) are keyed by their whole process id (their random
///   client id), so any number of clients, started in any order, each keep their own counter
///   and window; there is no incarnation order among them. At most [`REPLAY_CLIENTS_MAX`]
///   client windows are kept, apart from the nodes' (clients never crowd out a node): a new
///   client at the limit evicts the window of the client heard from least recently (counted,
///   [`ReplayGuard::clients_evicted`]). A client whose window was evicted starts a fresh one
///   with its next frame, so it keeps working; until it does, its earlier frames are no longer
///   recognised as replays.
#[derive(Debug)]
pub struct ReplayGuard {
    nodes: DashMap<NodeId, ReplayWindow>,
    clients: Mutex<ClientWindows>,
    clients_evicted: AtomicU64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::with_client_capacity(REPLAY_CLIENTS_MAX)
    }
}

/// Client windows, least recently heard first in `by_age`.
#[derive(Debug)]
struct ClientWindows {
    capacity: usize,
    /// Per client: its window and the stamp of its last accepted frame.
    windows: HashMap<ProcessId, (ReplayWindow, u64)>,
    /// Stamp of the last accepted frame → client; the first entry is the least recent.
    by_age: BTreeMap<u64, ProcessId>,
    next_stamp: u64,
}

#[derive(Debug, Clone)]
struct ReplayWindow {
    incarnation: crate::id::Incarnation,
    highest: u64,
    /// Bit i set: frame `highest - i` was seen.
    seen: [u64; (REPLAY_WINDOW_FRAMES / 64) as usize],
}

impl ReplayWindow {
    fn fresh(sender: ProcessId, seq: u64) -> Self {
        let mut seen = [0; (REPLAY_WINDOW_FRAMES / 64) as usize];
        seen[0] = 1;
        ReplayWindow {
            incarnation: sender.incarnation,
            highest: seq,
            seen,
        }
    }

    fn bit(&self, offset: u64) -> bool {
        self.seen[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    fn set(&mut self, offset: u64) {
        self.seen[(offset / 64) as usize] |= 1 << (offset % 64);
    }

    fn shift(&mut self, by: u64) {
        if by >= REPLAY_WINDOW_FRAMES {
            self.seen = [0; (REPLAY_WINDOW_FRAMES / 64) as usize];
            return;
        }
        let words = (by / 64) as usize;
        let bits = by % 64;
        let n = self.seen.len();
        for i in (0..n).rev() {
            let lo = if i >= words { self.seen[i - words] } else { 0 };
            let lower = if bits > 0 && i > words {
                self.seen[i - words - 1] >> (64 - bits)
            } else {
                0
            };
            self.seen[i] = if bits > 0 { (lo << bits) | lower } else { lo };
        }
    }

    /// Records frame `seq` of this window's sender, or refuses it as a replay (or as too old
    /// to tell).
    fn record(&mut self, sender: ProcessId, seq: u64) -> Result<(), FrameError> {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
            self.set(0);
            return Ok(());
        }
        let offset = self.highest - seq;
        if offset >= REPLAY_WINDOW_FRAMES {
            return Err(FrameError::TooOld { sender, seq });
        }
        if self.bit(offset) {
            return Err(FrameError::Replayed { sender, seq });
        }
        self.set(offset);
        Ok(())
    }
}

impl ReplayGuard {
    /// A guard keeping at most `capacity` client windows (at least one); the node limit is
    /// [`REPLAY_NODES_MAX`].
    pub fn with_client_capacity(capacity: usize) -> Self {
        ReplayGuard {
            nodes: DashMap::new(),
            clients: Mutex::new(ClientWindows {
                capacity: capacity.max(1),
                windows: HashMap::new(),
                by_age: BTreeMap::new(),
                next_stamp: 0,
            }),
            clients_evicted: AtomicU64::new(0),
        }
    }

    /// Records frame `seq` from `sender`, or refuses it as a replay.
    pub fn check(&self, sender: ProcessId, seq: u64) -> Result<(), FrameError> {
        if sender.is_client() {
            return self.check_client(sender, seq);
        }
        if !self.nodes.contains_key(&sender.node) && self.nodes.len() >= REPLAY_NODES_MAX {
            return Err(FrameError::ReplayGuardFull);
        }
        let mut first = false;
        let mut entry = self.nodes.entry(sender.node).or_insert_with(|| {
            first = true;
            ReplayWindow::fresh(sender, seq)
        });
        if first {
            return Ok(());
        }
        let window = entry.value_mut();
        if sender.incarnation < window.incarnation {
            return Err(FrameError::StaleIncarnation { sender });
        }
        if sender.incarnation > window.incarnation {
            *window = ReplayWindow::fresh(sender, seq);
            return Ok(());
        }
        window.record(sender, seq)
    }

    /// Starts tracking the process this guard belongs to, so that frames claiming an older
    /// incarnation of its node are refused as [`FrameError::StaleIncarnation`] (otherwise the
    /// first such frame would open a window for the node id). Its own frames never come back
    /// to it, so its window holds no frame.
    pub fn track_own_process(&self, me: ProcessId) {
        if me.is_client() {
            return;
        }
        let mut window = ReplayWindow::fresh(me, 0);
        window.seen = [0; (REPLAY_WINDOW_FRAMES / 64) as usize];
        self.nodes.insert(me.node, window);
    }

    fn check_client(&self, sender: ProcessId, seq: u64) -> Result<(), FrameError> {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let clients = &mut *clients;
        let stamp = clients.next_stamp;
        match clients.windows.get_mut(&sender) {
            Some((window, last)) => {
                window.record(sender, seq)?;
                clients.by_age.remove(last);
                *last = stamp;
            }
            None => {
                while clients.windows.len() >= clients.capacity {
                    let Some((_, oldest)) = clients.by_age.pop_first() else {
                        break;
                    };
                    clients.windows.remove(&oldest);
                    self.clients_evicted.fetch_add(1, Ordering::Relaxed);
                }
                clients
                    .windows
                    .insert(sender, (ReplayWindow::fresh(sender, seq), stamp));
            }
        }
        clients.by_age.insert(stamp, sender);
        clients.next_stamp += 1;
        Ok(())
    }

    /// Nodes with a replay window.
    pub fn nodes_tracked(&self) -> usize {
        self.nodes.len()
    }

    /// Clients with a replay window (at most the client capacity).
    pub fn clients_tracked(&self) -> usize {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .windows
            .len()
    }

    /// Client windows evicted so far to make room for newer clients.
    pub fn clients_evicted(&self) -> u64 {
        self.clients_evicted.load(Ordering::Relaxed)
    }
}

/// Seals envelopes into frames and opens frames into envelopes, for one node (or client).
#[derive(Clone, Debug)]
pub struct FrameCodec {
    key: Option<ClusterKey>,
    frame_bytes_max: usize,
    next_seq: Arc<AtomicU64>,
    replay: Arc<ReplayGuard>,
    stats: Arc<WireStats>,
}

impl FrameCodec {
    /// A codec sealing with `key` (or unauthenticated with `None`) and refusing frames over
    /// `frame_bytes_max` (capped at [`FRAME_BYTES_LIMIT`]).
    pub fn new(key: Option<ClusterKey>, frame_bytes_max: usize) -> Self {
        FrameCodec {
            key,
            frame_bytes_max: frame_bytes_max.min(FRAME_BYTES_LIMIT),
            next_seq: Arc::new(AtomicU64::new(1)),
            replay: Arc::new(ReplayGuard::default()),
            stats: Arc::new(WireStats::default()),
        }
    }

    /// The frame counters.
    pub fn stats(&self) -> &Arc<WireStats> {
        &self.stats
    }

    /// The replay windows of the senders this codec opened frames from.
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.replay
    }

    /// The largest frame accepted or sent.
    pub fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Whether frames are authenticated.
    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    fn length_codec(&self) -> LengthDelimitedCodec {
        LengthDelimitedCodec::builder()
            .length_field_type::<u32>()
            .max_frame_length(self.frame_bytes_max)
            .new_codec()
    }

    /// Stamps the next frame counter on `envelope` and appends its frame (length prefix
    /// included) to `out`. Refused without touching `out` if the frame would exceed the limit.
    pub fn seal_into(&self, mut envelope: Envelope, out: &mut BytesMut) -> Result<(), FrameError> {
        envelope.version = PROTOCOL_VERSION;
        envelope.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let authenticate = self.key.is_some() && !matches!(envelope.body, Body::Refused { .. });
        let mut payload = Vec::with_capacity(128);
        payload.push(if authenticate {
            FLAG_AUTHENTICATED
        } else {
            FLAG_PLAIN
        });
        bincode::serde::encode_into_std_write(&envelope, &mut payload, BINCODE_CONFIG)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        if let (true, Some(key)) = (authenticate, &self.key) {
            let mut mac = key.mac();
            mac.update(&payload);
            payload.extend_from_slice(&mac.finalize().into_bytes());
        }
        if payload.len() > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                len: payload.len(),
                max: self.frame_bytes_max,
            });
        }
        let framed = payload.len() as u64 + 4;
        self.length_codec()
            .encode(Bytes::from(payload), out)
            .map_err(FrameError::Io)?;
        self.stats.frames_sealed.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_sealed.fetch_add(framed, Ordering::Relaxed);
        Ok(())
    }

    /// Seals one envelope into a frame of its own.
    pub fn seal(&self, envelope: Envelope) -> Result<Bytes, FrameError> {
        let mut out = BytesMut::new();
        self.seal_into(envelope, &mut out)?;
        Ok(out.freeze())
    }

    /// Checks and decodes one frame's payload held in `frame`, without copying multicast
    /// payloads: they become slices of `frame` (which they keep alive).
    pub fn open_frame(&self, frame: Bytes) -> Result<Envelope, FrameError> {
        CURRENT_FRAME.with(|current| *current.borrow_mut() = Some(frame.clone()));
        let result = self.open(&frame);
        CURRENT_FRAME.with(|current| current.borrow_mut().take());
        result
    }

    /// Checks and decodes one frame's payload (the bytes after the length prefix).
    pub fn open(&self, payload: &[u8]) -> Result<Envelope, FrameError> {
        let result = self.open_unchecked(payload);
        match &result {
            Ok(_) => self.stats.frames_accepted.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                self.stats.count_refusal(e);
                0
            }
        };
        result
    }

    fn open_unchecked(&self, payload: &[u8]) -> Result<Envelope, FrameError> {
        if payload.len() > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                len: payload.len(),
                max: self.frame_bytes_max,
            });
        }
        let (&flag, _) = payload.split_first().ok_or(FrameError::Truncated(0))?;
        let authenticated = match flag {
            FLAG_PLAIN => false,
            FLAG_AUTHENTICATED => true,
            other => return Err(FrameError::BadFlag(other)),
        };
        let body_end = if authenticated {
            if payload.len() < 1 + TAG_BYTES {
                return Err(FrameError::Truncated(payload.len()));
            }
            let (signed, tag) = payload.split_at(payload.len() - TAG_BYTES);
            match &self.key {
                Some(key) => {
                    let mut mac = key.mac();
                    mac.update(signed);
                    mac.verify_slice(tag).map_err(|_| FrameError::BadTag)?;
                }
                // A client without the key cannot check the tag; it still reads answers that
                // would be accepted unauthenticated anyway (checked below), nothing else.
                None => {
                    let envelope = self.decode_envelope(&payload[1..signed.len()])?;
                    if !envelope.body.allowed_unauthenticated() {
                        return Err(FrameError::NoKey);
                    }
                    return Ok(envelope);
                }
            }
            signed.len()
        } else {
            payload.len()
        };
        let envelope = self.decode_envelope(&payload[1..body_end])?;
        if !authenticated {
            if self.key.is_some() && !envelope.body.allowed_unauthenticated() {
                return Err(FrameError::Unauthenticated(envelope.body.kind()));
            }
            return Ok(envelope);
        }
        // Client queries are read-only and idempotent (and pass unauthenticated anyway), so
        // they are not recorded: a one-shot query costs no replay window.
        if !envelope.body.allowed_unauthenticated() {
            self.replay.check(envelope.sender, envelope.seq)?;
        }
        Ok(envelope)
    }

    fn decode_envelope(&self, bytes: &[u8]) -> Result<Envelope, FrameError> {
        let (envelope, used): (Envelope, usize) =
            bincode::serde::borrow_decode_from_slice(bytes, BINCODE_CONFIG)
                .map_err(|e| FrameError::Malformed(e.to_string()))?;
        if used != bytes.len() {
            return Err(FrameError::Malformed(format!(
                "{} trailing bytes after the envelope",
                bytes.len() - used
            )));
        }
        if envelope.version != PROTOCOL_VERSION {
            return Err(FrameError::Version {
                got: envelope.version,
            });
        }
        let counter = envelope.body.max_counter();
        if counter > PROTOCOL_COUNTER_MAX {
            return Err(FrameError::Malformed(format!(
                "{} carries epoch or round {counter}, past {PROTOCOL_COUNTER_MAX}",
                envelope.body.kind()
            )));
        }
        Ok(envelope)
    }

    /// A tokio-util decoder yielding opened envelopes from a byte stream.
    pub fn decoder(&self) -> FrameDecoder {
        FrameDecoder {
            length: self.length_codec(),
            codec: self.clone(),
        }
    }
}

/// Splits a byte stream into frames and opens each one. The first bad frame ends the stream
/// with its [`FrameError`]: a connection that sent a bad frame is closed.
#[derive(Debug)]
pub struct FrameDecoder {
    length: LengthDelimitedCodec,
    codec: FrameCodec,
}

impl Decoder for FrameDecoder {
    type Item = Envelope;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Envelope>, FrameError> {
        match self.length.decode(src) {
            Ok(Some(payload)) => self.codec.open_frame(payload.freeze()).map(Some),
            Ok(None) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let len = if src.len() >= 4 {
                    u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
                } else {
                    0
                };
                let error = FrameError::TooLarge {
                    len,
                    max: self.codec.frame_bytes_max,
                };
                self.codec.stats.count_refusal(&error);
                Err(error)
            }
            Err(e) => Err(FrameError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{GroupName, Incarnation};

    fn key(byte: u8) -> ClusterKey {
        ClusterKey::from_hex(&hex::encode([byte; 32])).unwrap()
    }

    /// The protocol's numbers are typed in the cores but encode as the bare integers they
    /// wrap, so frames are the same as before they had types (PROTOCOL_VERSION unchanged).
    #[test]
    fn sequence_numbers_and_ranks_encode_as_bare_integers() {
        use crate::wire::{CutEntry, Rank, Seq};
        fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
            bincode::serde::encode_to_vec(value, BINCODE_CONFIG).unwrap()
        }
        let typed = CutEntry {
            upto: Seq(300),
            holder: Rank(7),
        };
        assert_eq!(encode(&typed), encode(&(300u64, 7u32)));
        let nak = Body::Nak {
            view: crate::id::ViewId {
                epoch: 1,
                coordinator: envelope(Body::Probe).sender,
            },
            origin: Rank(2),
            from: Seq(1 << 40),
            to: Seq(u64::MAX),
        };
        let Body::Nak { view, .. } = &nak else {
            unreachable!()
        };
        // The variant's index, then its fields as plain integers.
        let variant = encode(&nak)[0];
        let mut bare = vec![variant];
        bare.extend(encode(&(view, 2u32, 1u64 << 40, u64::MAX)));
        assert_eq!(encode(&nak), bare);
    }

    fn envelope(body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            sender: ProcessId {
                node: NodeId(7),
                incarnation: Incarnation(3),
            },
            sender_addr: "127.0.0.1:9".parse().unwrap(),
            seq: 0,
            group: Some(GroupName::new("g").unwrap()),
            body,
        }
    }

    fn decode_all(codec: &FrameCodec, mut bytes: BytesMut) -> Vec<Result<Envelope, String>> {
        let mut decoder = codec.decoder();
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut bytes) {
                Ok(Some(e)) => out.push(Ok(e)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn sealed_frames_open_with_the_same_key() {
        let sender = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let receiver = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let mut bytes = BytesMut::new();
        sender
            .seal_into(envelope(Body::Heartbeat { views: vec![] }), &mut bytes)
            .unwrap();
        sender.seal_into(envelope(Body::Probe), &mut bytes).unwrap();
        let got = decode_all(&receiver, bytes);
        assert_eq!(got.len(), 2);
        let first = got[0].as_ref().unwrap();
        assert_eq!(first.body, Body::Heartbeat { views: vec![] });
        assert_eq!(first.seq, 1);
        assert_eq!(got[1].as_ref().unwrap().seq, 2);
    }

    #[test]
    fn a_wrong_key_fails_authentication_and_is_counted() {
        let sender = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let receiver = FrameCodec::new(Some(key(2)), FRAME_BYTES_MAX_DEFAULT);
        let frame = sender
            .seal(envelope(Body::Heartbeat { views: vec![] }))
            .unwrap();
        let got = decode_all(&receiver, BytesMut::from(&frame[..]));
        assert_eq!(got, vec![Err(FrameError::BadTag.to_string())]);
        assert_eq!(
            receiver
                .stats()
                .refused_unauthenticated
                .load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn unauthenticated_frames_carry_only_client_queries_into_a_keyed_node() {
        let client = FrameCodec::new(None, FRAME_BYTES_MAX_DEFAULT);
        let node = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let query = client.seal(envelope(Body::MembersRequest)).unwrap();
        assert_eq!(
            decode_all(&node, BytesMut::from(&query[..]))[0]
                .as_ref()
                .unwrap()
                .body,
            Body::MembersRequest
        );
        let join = client
            .seal(envelope(Body::Heartbeat { views: vec![] }))
            .unwrap();
        assert_eq!(
            decode_all(&node, BytesMut::from(&join[..])),
            vec![Err(FrameError::Unauthenticated("heartbeat").to_string())]
        );
    }

    #[test]
    fn multicast_payloads_are_slices_of_the_frame_not_copies() {
        use crate::wire::{Entry, Item, Ordering};
        let sender = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let receiver = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let payload = Bytes::from(vec![42u8; 1000]);
        let data = Body::Data {
            view: crate::id::ViewId {
                epoch: 1,
                coordinator: envelope(Body::Probe).sender,
            },
            origin: crate::wire::Rank(0),
            entries: vec![Entry {
                seq: crate::wire::Seq(1),
                ordering: Ordering::Fifo,
                clock: vec![],
                item: Item::Payload(payload.clone()),
            }],
        };
        let frame = sender.seal(envelope(data)).unwrap();
        let mut stream = BytesMut::from(&frame[..]);
        let (start, len) = (stream.as_ptr() as usize, stream.len());
        let opened = receiver.decoder().decode(&mut stream).unwrap().unwrap();
        let Body::Data { entries, .. } = opened.body else {
            panic!("a data frame")
        };
        let Item::Payload(got) = &entries[0].item else {
            panic!("a payload")
        };
        assert_eq!(got, &payload);
        // Decoded where it lies in the received buffer: no copy per multicast.
        let at = got.as_ptr() as usize;
        assert!(at >= start && at + got.len() <= start + len);
        // Opening from a plain slice still works (it copies).
        let copied = receiver.open(&frame[4..]);
        assert!(matches!(copied, Err(FrameError::Replayed { .. })));
    }

    #[test]
    fn replayed_frames_are_refused() {
        let sender = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let receiver = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let frame = sender
            .seal(envelope(Body::Heartbeat { views: vec![] }))
            .unwrap();
        assert!(receiver.open(&frame[4..]).is_ok());
        assert!(matches!(
            receiver.open(&frame[4..]),
            Err(FrameError::Replayed { seq: 1, .. })
        ));
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_reading_the_body() {
        let receiver = FrameCodec::new(Some(key(1)), 1024);
        let mut bytes = BytesMut::new();
        bytes.extend_from_slice(&(10_000_000u32).to_be_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let got = decode_all(&receiver, bytes);
        assert!(got[0].as_ref().unwrap_err().contains("exceeds the limit"));
    }

    #[test]
    fn sealing_over_the_limit_is_refused() {
        let codec = FrameCodec::new(None, 64);
        let big = Body::Refused {
            reason: "x".repeat(100),
        };
        let mut out = BytesMut::new();
        assert!(matches!(
            codec.seal_into(envelope(big), &mut out),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn replay_window_accepts_reordering_within_the_window() {
        let guard = ReplayGuard::default();
        let p = ProcessId {
            node: NodeId(1),
            incarnation: Incarnation(1),
        };
        for seq in [5, 3, 4, 1, 2, 200, 70, 6] {
            guard.check(p, seq).unwrap();
        }
        for seq in [5, 3, 200, 70] {
            assert!(guard.check(p, seq).is_err(), "seq {seq} replayed");
        }
        guard.check(p, 5000).unwrap();
        assert!(guard.check(p, 6).is_err(), "too old to tell");
        let older = ProcessId {
            node: NodeId(1),
            incarnation: Incarnation(0),
        };
        assert!(matches!(
            guard.check(older, 9999),
            Err(FrameError::StaleIncarnation { .. })
        ));
    }

    fn client_send(client: ProcessId, text: &str) -> Envelope {
        Envelope {
            sender: client,
            sender_addr: "0.0.0.0:0".parse().unwrap(),
            ..envelope(Body::GroupSend {
                ordering: None,
                payload: Bytes::copy_from_slice(text.as_bytes()),
            })
        }
    }

    #[test]
    fn clients_with_interleaved_counters_are_all_accepted() {
        let node = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        // Long-lived clients, each with its own identity and counter, speaking in turn.
        let clients: Vec<(ProcessId, FrameCodec)> = (0..3)
            .map(|_| {
                let codec = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
                (ProcessId::new_client(), codec)
            })
            .collect();
        for round in 0..50 {
            for (i, (id, codec)) in clients.iter().enumerate() {
                let frame = codec
                    .seal(client_send(*id, &format!("{i}-{round}")))
                    .unwrap();
                let opened = node.open(&frame[4..]).unwrap();
                assert_eq!((opened.sender, opened.seq), (*id, round + 1));
            }
        }
        // Clients whose ids look like start times (as older clients used), the one started
        // later heard first: no order among clients, so the earlier one is not stale.
        let earlier = ProcessId {
            node: crate::id::CLIENT_NODE_ID,
            incarnation: Incarnation(1_000),
        };
        let later = ProcessId {
            incarnation: Incarnation(2_000),
            ..earlier
        };
        let guard = ReplayGuard::default();
        guard.check(later, 1).unwrap();
        guard.check(earlier, 1).unwrap();
        guard.check(later, 2).unwrap();
        guard.check(earlier, 2).unwrap();
        assert_eq!(guard.clients_tracked(), 2);
        assert_eq!(guard.nodes_tracked(), 0);
    }

    #[test]
    fn a_replayed_client_frame_is_refused() {
        let node = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let client = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
        let id = ProcessId::new_client();
        let first = client.seal(client_send(id, "once")).unwrap();
        let second = client.seal(client_send(id, "twice")).unwrap();
        node.open(&first[4..]).unwrap();
        node.open(&second[4..]).unwrap();
        // Other clients in between change nothing for this one.
        for _ in 0..10 {
            let other = FrameCodec::new(Some(key(1)), FRAME_BYTES_MAX_DEFAULT);
            let frame = other
                .seal(client_send(ProcessId::new_client(), "other"))
                .unwrap();
            node.open(&frame[4..]).unwrap();
        }
        for frame in [&first, &second] {
            assert!(matches!(
                node.open(&frame[4..]),
                Err(FrameError::Replayed { sender, .. }) if sender == id
            ));
        }
        assert_eq!(node.stats().refused_replayed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn clients_at_the_limit_evict_the_least_recent_and_never_disturb_nodes() {
        let guard = ReplayGuard::default();
        let node = |n: u64, incarnation: u64| ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(incarnation),
        };
        for n in 1..=3 {
            for seq in 1..=5 {
                guard.check(node(n, 10), seq).unwrap();
            }
        }
        let busy = ProcessId::new_client();
        guard.check(busy, 1).unwrap();
        let first_idle = ProcessId::new_client();
        guard.check(first_idle, 1).unwrap();
        // Twice the limit of clients, each heard once; `busy` keeps sending meanwhile.
        let mut busy_seq = 1;
        for i in 0..2 * REPLAY_CLIENTS_MAX {
            guard.check(ProcessId::new_client(), 1).unwrap();
            if i % 100 == 0 {
                busy_seq += 1;
                guard.check(busy, busy_seq).unwrap();
            }
        }
        assert_eq!(guard.clients_tracked(), REPLAY_CLIENTS_MAX);
        assert_eq!(
            guard.clients_evicted(),
            (2 * REPLAY_CLIENTS_MAX + 2 - REPLAY_CLIENTS_MAX) as u64
        );
        // The busy client kept its window: its replays are still refused.
        assert!(matches!(
            guard.check(busy, busy_seq),
            Err(FrameError::Replayed { .. })
        ));
        guard.check(busy, busy_seq + 1).unwrap();
        // The idle one was forgotten; its next frame starts a fresh window.
        guard.check(first_idle, 2).unwrap();
        // Node windows are untouched: replays and stale incarnations still refused, and
        // further nodes still admitted up to the node limit.
        for n in 1..=3 {
            assert!(matches!(
                guard.check(node(n, 10), 5),
                Err(FrameError::Replayed { .. })
            ));
            assert!(matches!(
                guard.check(node(n, 9), 100),
                Err(FrameError::StaleIncarnation { .. })
            ));
            guard.check(node(n, 10), 6).unwrap();
        }
        assert_eq!(guard.nodes_tracked(), 3);
        for n in 4..=REPLAY_NODES_MAX as u64 {
            guard.check(node(n, 1), 1).unwrap();
        }
        assert!(matches!(
            guard.check(node(REPLAY_NODES_MAX as u64 + 1, 1), 1),
            Err(FrameError::ReplayGuardFull)
        ));
        // A full node table refuses no client.
        guard.check(ProcessId::new_client(), 1).unwrap();
        assert_eq!(guard.clients_tracked(), REPLAY_CLIENTS_MAX);
    }

    #[test]
    fn frames_of_an_earlier_incarnation_of_this_node_are_stale() {
        let me = ProcessId {
            node: NodeId(2),
            incarnation: Incarnation(50),
        };
        let guard = ReplayGuard::default();
        guard.track_own_process(me);
        let earlier = ProcessId {
            incarnation: Incarnation(49),
            ..me
        };
        assert!(matches!(
            guard.check(earlier, 1),
            Err(FrameError::StaleIncarnation { .. })
        ));
        // Other nodes are unaffected.
        guard
            .check(
                ProcessId {
                    node: NodeId(3),
                    incarnation: Incarnation(1),
                },
                1,
            )
            .unwrap();
    }

    #[test]
    fn a_client_guard_of_one_keeps_the_latest_client() {
        let guard = ReplayGuard::with_client_capacity(1);
        let (a, b) = (ProcessId::new_client(), ProcessId::new_client());
        guard.check(a, 1).unwrap();
        guard.check(b, 1).unwrap();
        assert!(matches!(
            guard.check(b, 1),
            Err(FrameError::Replayed { .. })
        ));
        assert_eq!((guard.clients_tracked(), guard.clients_evicted()), (1, 1));
    }

    mod properties {
        use super::*;
        use crate::id::ViewId;
        use proptest::prelude::*;

        fn body() -> impl Strategy<Value = Body> {
            prop_oneof![
                proptest::collection::vec((0u64..1000, 0u64..1000), 0..8).prop_map(|ids| {
                    Body::Heartbeat {
                        views: ids
                            .into_iter()
                            .map(|(epoch, n)| {
                                (
                                    GroupName::new(format!("g{n}")).unwrap(),
                                    ViewId {
                                        epoch,
                                        coordinator: ProcessId {
                                            node: NodeId(n),
                                            incarnation: Incarnation(epoch),
                                        },
                                    },
                                )
                            })
                            .collect(),
                    }
                }),
                ".{0,200}".prop_map(|reason| Body::Refused { reason }),
                Just(Body::Probe),
                Just(Body::MembersRequest),
                (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
                    |(tag, payload)| Body::Request {
                        tag,
                        payload: Bytes::from(payload),
                    }
                ),
                (
                    any::<u64>(),
                    proptest::collection::vec(any::<u8>(), 0..300),
                    0u8..5
                )
                    .prop_map(|(tag, reply, refusal)| Body::Response {
                        tag,
                        outcome: match refusal {
                            0 => Ok(Bytes::from(reply)),
                            1 => Err(crate::wire::Refusal::NotPrimary {
                                primary: Some(std::net::SocketAddr::from((
                                    [127, 0, 0, 1],
                                    tag as u16
                                ))),
                            }),
                            2 => Err(crate::wire::Refusal::Busy(
                                crate::wire::BusyReason::ViewChange
                            )),
                            3 => Err(crate::wire::Refusal::TooLarge {
                                size: tag,
                                limit: 7
                            }),
                            _ => Err(crate::wire::Refusal::Malformed(
                                String::from_utf8_lossy(&reply).into_owned()
                            )),
                        },
                    }),
            ]
        }

        proptest! {
            #[test]
            fn sealed_envelopes_open_unchanged(bodies in proptest::collection::vec(body(), 1..20)) {
                let sender = FrameCodec::new(Some(key(3)), FRAME_BYTES_MAX_DEFAULT);
                let receiver = FrameCodec::new(Some(key(3)), FRAME_BYTES_MAX_DEFAULT);
                let mut bytes = BytesMut::new();
                for b in &bodies {
                    sender.seal_into(envelope(b.clone()), &mut bytes).unwrap();
                }
                let got = decode_all(&receiver, bytes);
                prop_assert_eq!(got.len(), bodies.len());
                for (g, b) in got.iter().zip(&bodies) {
                    prop_assert_eq!(&g.as_ref().unwrap().body, b);
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
                for codec in [FrameCodec::new(Some(key(3)), 2048), FrameCodec::new(None, 2048)] {
                    let _ = decode_all(&codec, BytesMut::from(&bytes[..]));
                }
            }

            #[test]
            fn any_flipped_bit_fails_authentication(position in 5usize..40, bit in 0u8..8) {
                let codec = FrameCodec::new(Some(key(3)), FRAME_BYTES_MAX_DEFAULT);
                let frame = codec.seal(envelope(Body::Probe)).unwrap();
                let mut tampered = frame.to_vec();
                let position = position.min(tampered.len() - 1);
                tampered[position] ^= 1 << bit;
                let receiver = FrameCodec::new(Some(key(3)), FRAME_BYTES_MAX_DEFAULT);
                prop_assert!(receiver.open(&tampered[4..]).is_err());
            }
        }
    }
}
