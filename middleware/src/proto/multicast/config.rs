//! The multicast core's settings: delivery kind, windows, batch and chunk sizes, intervals.

use crate::wire::Ordering;
use std::time::Duration;

/// How often a member acknowledges even when nothing changed, so peers learn of lost tails.
pub(super) const IDLE_ACK_INTERVAL: Duration = Duration::from_millis(100);

/// When a multicast counts as deliverable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    /// As soon as its order allows.
    #[default]
    Agreed,
    /// Only once every member of the view holds it.
    Safe,
}

/// Multicast settings of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticastConfig {
    /// Default ordering of the group's multicasts.
    pub ordering: Ordering,
    /// Agreed or safe delivery.
    pub delivery: Delivery,
    /// Most entries a member may have sent and not yet seen stable.
    pub window_messages: u64,
    /// Most payload bytes a member may have sent and not yet seen stable: the ceiling of
    /// the adaptive byte window (see `window_target_latency`).
    pub window_bytes: usize,
    /// The floor of the adaptive byte window, and where it starts in each view (clamped to
    /// `window_bytes`). The default equals `window_bytes`: a fixed window, since with every
    /// member flooding the adaptive one favours the sequencer (see ARCHITECTURE.md,
    /// decision 40).
    pub window_min_bytes: usize,
    /// How long an entry of this member may take to become stable while the window is what
    /// holds its multicasts back: above it the byte window shrinks by a quarter, below it
    /// the window grows by the bytes that became stable (between `window_min_bytes` and
    /// `window_bytes`). So in a flood the queue between sender and receivers stays near
    /// this much time, instead of a fixed number of messages.
    pub window_target_latency: Duration,
    /// A member acknowledges once it received this many payload bytes since its last ack
    /// (besides every `ack_interval`), so that stability, hence credit, follows delivery
    /// closely. With an adaptive window keep it well below `window_min_bytes`, or a small
    /// window waits for acks and reads that wait as congestion.
    pub ack_bytes: usize,
    /// Most multicasts waiting for credit (or for a view change to end) before
    /// `multicast` refuses.
    pub outbox_messages: usize,
    /// Largest payload accepted, in bytes. Larger multicasts are refused, not fragmented.
    pub payload_bytes_max: usize,
    /// Largest `Data` frame body built from a batch of entries, in bytes.
    pub batch_bytes: usize,
    /// Least time between two acks of the same view while nothing urges one.
    pub ack_interval: Duration,
    /// Least time between two retransmission requests for the same stream.
    pub nak_interval: Duration,
    /// Size of a state transfer chunk.
    pub state_chunk_bytes: usize,
    /// Chunks a provider sends per request.
    pub state_window_chunks: u64,
    /// Largest state accepted in a transfer.
    pub state_bytes_max: u64,
    /// How long a joiner waits for a chunk before asking again.
    pub state_retry: Duration,
    /// How long a survivor may wait for the entries of a cut before it gives up on them and
    /// asks for a state transfer instead.
    pub flush_fetch_timeout: Duration,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        MulticastConfig {
            ordering: Ordering::Total,
            delivery: Delivery::Agreed,
            window_messages: 8192,
            window_bytes: 16 << 20,
            window_min_bytes: 16 << 20,
            window_target_latency: Duration::from_millis(5),
            ack_bytes: 4 << 20,
            outbox_messages: 8192,
            payload_bytes_max: 256 << 10,
            batch_bytes: 60 << 10,
            ack_interval: Duration::from_millis(20),
            nak_interval: Duration::from_millis(100),
            state_chunk_bytes: 256 << 10,
            state_window_chunks: 4,
            state_bytes_max: 1 << 30,
            state_retry: Duration::from_millis(300),
            flush_fetch_timeout: Duration::from_secs(5),
        }
    }
}
