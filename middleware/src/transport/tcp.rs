//! The TCP transport.
//!
//! - **Listener**: the [`TcpTransport`] actor owns the listening socket; each accepted
//!   connection gets a reader task that opens frames with the codec and hands envelopes to the
//!   node actor with `send().await`, so a node that falls behind stops reading sockets instead
//!   of buffering without limit (the actor's mailbox is bounded), and a writer task for replies.
//! - **Peers**: one outbound connection per peer address, created on the first frame, with
//!   reconnect and exponential backoff. Each has a bounded queue of `send_queue_frames`
//!   frames. **When the queue is full the new frame is dropped and counted**
//!   ([`TransportStats::frames_dropped_queue_full`]); the protocols above tolerate loss.
//!   A peer with nothing to send for [`PEER_IDLE`] is disconnected and forgotten.
//! - **Batching**: the writer takes every frame already queued, up to `batch_bytes_max`
//!   (and 256 frames), and writes them with one vectored call (the frames are gathered
//!   by the kernel, not copied into one buffer first).
//! - **Bad frames**: a frame that fails to open closes its connection, after an
//!   unauthenticated `Refused` notice naming the reason; the reason is logged and counted.
//! - **Hostile connections** (docs/ARCHITECTURE.md, decision 38): at most
//!   `max_inbound_connections` inbound connections are open at once; one arriving at the limit
//!   is accepted and closed at once. An inbound connection whose first frame has not opened
//!   within `auth_timeout` of its accept (idle, or trickling bytes) is closed after a `Refused`
//!   notice; after that, a frame whose first bytes have arrived must be whole within
//!   `frame_read_timeout` (checked a few times per timeout, so it closes within 1.25 times
//!   it). Time the reader spends waiting for the node to take earlier frames does not count.
//!   Each is counted, and logged at most once a second with the number since the last line.
//!
//! Sending does not go through the actor's mailbox: the node actor calls
//! [`TcpSender::send`], which queues on the peer's channel directly (one hop less per frame).

pub use super::Inbound;
use super::{SendError, Transport, TransportCounters};
use crate::config::TransportConfig;
use crate::id::ConnectionId;
use crate::view::Member;
use crate::wire::{Body, Envelope, FrameCodec, FrameError, PROTOCOL_VERSION};
use actix::prelude::*;
use bytes::{Buf, Bytes};
use dashmap::DashMap;
use futures::StreamExt;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

/// A peer connection with nothing to send for this long is closed and forgotten.
pub const PEER_IDLE: Duration = Duration::from_secs(30);
/// Frames queued per inbound connection for replies.
const REPLY_QUEUE_FRAMES: usize = 64;
/// Pause after a failed accept before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Transport counters.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Inbound connections accepted.
    pub connections_accepted: AtomicU64,
    /// Outbound connections established.
    pub connections_established: AtomicU64,
    /// Outbound connection attempts that failed.
    pub connect_failures: AtomicU64,
    /// Connections closed over a frame that failed to open.
    pub connections_closed_bad_frame: AtomicU64,
    /// Frames queued for sending.
    pub frames_queued: AtomicU64,
    /// Frames dropped because the peer's queue was full.
    pub frames_dropped_queue_full: AtomicU64,
    /// Write calls (each carries a batch of frames).
    pub write_batches: AtomicU64,
    /// Bytes written.
    pub bytes_written: AtomicU64,
    /// Inbound connections closed at accept because `max_inbound_connections` were open.
    pub connections_refused_at_limit: AtomicU64,
    /// Inbound connections closed because no frame opened within `auth_timeout`.
    pub connections_closed_auth_timeout: AtomicU64,
    /// Inbound connections closed because a frame took longer than `frame_read_timeout`.
    pub connections_closed_slow_frame: AtomicU64,
}

/// Logs a repeated event at most once per [`RateLimitedLog::EVERY`], with how many happened
/// since the last line: a flood of hostile connections must not become a flood of log lines.
#[derive(Debug, Default)]
struct RateLimitedLog {
    /// When the last line was written, and events since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl RateLimitedLog {
    const EVERY: Duration = Duration::from_secs(1);

    /// Counts one event; returns how many to report if a line is due now.
    fn due(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += 1;
        let now = Instant::now();
        if state
            .0
            .is_some_and(|last| now.duration_since(last) < Self::EVERY)
        {
            return None;
        }
        let count = state.1;
        *state = (Some(now), 0);
        Some(count)
    }
}

struct PeerQueue {
    id: u64,
    frames: mpsc::Sender<Bytes>,
    /// Whether its connection is established now (set by its writer task).
    connected: Arc<std::sync::atomic::AtomicBool>,
}

struct Shared {
    me: Member,
    codec: FrameCodec,
    config: TransportConfig,
    inbound: Recipient<Inbound>,
    peers: DashMap<SocketAddr, PeerQueue>,
    replies: DashMap<ConnectionId, mpsc::Sender<Bytes>>,
    next_id: AtomicU64,
    stats: Arc<TransportStats>,
    shutdown: CancellationToken,
    /// When an authenticated frame last arrived from each node process, recorded by the reader
    /// tasks as frames come off the socket: evidence of life that does not wait behind the
    /// node actor's mailbox.
    heard: DashMap<crate::id::ProcessId, std::time::Instant>,
    /// Inbound connections open now (at most `config.max_inbound_connections`).
    inbound_open: AtomicUsize,
    log_at_limit: RateLimitedLog,
    log_auth_timeout: RateLimitedLog,
    log_slow_frame: RateLimitedLog,
}

/// Holds one of the `max_inbound_connections` places while its connection's reader runs.
struct InboundPlace(Arc<Shared>);

impl Drop for InboundPlace {
    fn drop(&mut self) {
        self.0.inbound_open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The sending side of the TCP transport; cheap to clone.
#[derive(Clone)]
pub struct TcpSender {
    shared: Arc<Shared>,
}

/// The listener actor of the TCP transport.
pub struct TcpTransport {
    shared: Arc<Shared>,
    listener: Option<TcpListener>,
}

impl TcpTransport {
    /// Starts accepting on `listener` (bound by the caller, inside this arbiter) and returns
    /// the sender handle. Envelopes that arrive go to `inbound`.
    pub fn start(
        listener: TcpListener,
        me: Member,
        codec: FrameCodec,
        config: TransportConfig,
        inbound: Recipient<Inbound>,
    ) -> (Addr<TcpTransport>, TcpSender) {
        let shared = Arc::new(Shared {
            me,
            codec,
            config,
            inbound,
            peers: DashMap::new(),
            replies: DashMap::new(),
            next_id: AtomicU64::new(1),
            stats: Arc::new(TransportStats::default()),
            shutdown: CancellationToken::new(),
            heard: DashMap::new(),
            inbound_open: AtomicUsize::new(0),
            log_at_limit: RateLimitedLog::default(),
            log_auth_timeout: RateLimitedLog::default(),
            log_slow_frame: RateLimitedLog::default(),
        });
        let sender = TcpSender {
            shared: shared.clone(),
        };
        let addr = TcpTransport {
            shared,
            listener: Some(listener),
        }
        .start();
        (addr, sender)
    }
}

impl Actor for TcpTransport {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // The sender's shutdown (the node stopped) stops the listener too.
        let shutdown = self.shared.shutdown.clone();
        ctx.spawn(
            async move { shutdown.cancelled().await }
                .into_actor(self)
                .map(|_, _, ctx| ctx.stop()),
        );
        let listener = self.listener.take().expect("started once");
        let accepted = futures::stream::unfold(listener, |listener| async move {
            let next = listener.accept().await;
            if next.is_err() {
                // Out of file descriptors, typically: accepting again at once would fail
                // again at once, in a busy loop. Connections wait in the backlog meanwhile.
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
            Some((next, listener))
        });
        ctx.add_stream(accepted);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.shared.shutdown.cancel();
    }
}

impl StreamHandler<std::io::Result<(TcpStream, SocketAddr)>> for TcpTransport {
    fn handle(&mut self, item: std::io::Result<(TcpStream, SocketAddr)>, _ctx: &mut Self::Context) {
        match item {
            Ok((stream, peer)) => {
                let open = self.shared.inbound_open.fetch_add(1, Ordering::Relaxed);
                let place = InboundPlace(self.shared.clone());
                if open >= self.shared.config.max_inbound_connections {
                    self.shared
                        .stats
                        .connections_refused_at_limit
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(count) = self.shared.log_at_limit.due() {
                        tracing::warn!(
                            %peer,
                            limit = self.shared.config.max_inbound_connections,
                            refused_since_last_line = count,
                            "closing new connection: at the inbound connection limit"
                        );
                    }
                    // Dropping `stream` and `place` closes it and gives the place back.
                    return;
                }
                self.shared
                    .stats
                    .connections_accepted
                    .fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let connection = ConnectionId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
                let (read, mut write) = stream.into_split();
                let (tx, mut rx) = mpsc::channel::<Bytes>(REPLY_QUEUE_FRAMES);
                self.shared.replies.insert(connection, tx.clone());
                let shared = self.shared.clone();
                actix::spawn(async move {
                    let shutdown = shared.shutdown.clone();
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = async {
                            while let Some(frame) = rx.recv().await {
                                if write.write_all(&frame).await.is_err() {
                                    break;
                                }
                            }
                        } => {}
                    }
                });
                let shared = self.shared.clone();
                actix::spawn(async move {
                    read_frames(shared.clone(), read, peer, connection, Some(tx)).await;
                    shared.replies.remove(&connection);
                    drop(place);
                });
            }
            Err(error) => tracing::warn!(%error, "accept failed"),
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Stops the transport: closes the listener and every connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for TcpTransport {
    type Result = ();
    fn handle(&mut self, _msg: Shutdown, ctx: &mut Self::Context) {
        self.shared.shutdown.cancel();
        ctx.stop();
    }
}

/// Why an inbound connection was closed for its pace rather than its content.
#[derive(Clone, Copy, Debug)]
enum TooSlow {
    /// No frame opened within `auth_timeout` of the accept.
    FirstFrame,
    /// A frame took longer than `frame_read_timeout` to arrive.
    Frame,
}

/// Reads frames from one connection until it ends, the node stops, or a frame fails to open.
/// `refuse_on` is the reply queue of an inbound connection (absent for the replies read on an
/// outbound one): refusals go there, and the connection is held to the pace limits.
async fn read_frames(
    shared: Arc<Shared>,
    read: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    connection: ConnectionId,
    refuse_on: Option<mpsc::Sender<Bytes>>,
) {
    let mut frames = FramedRead::new(read, shared.codec.decoder());
    let config = shared.config;
    let paced = refuse_on.is_some();
    let accepted_at = Instant::now();
    let first_frame_due = tokio::time::Instant::from_std(accepted_at + config.auth_timeout);
    let frame_check_every = config.frame_read_timeout / 4;
    let mut opened_any = false;
    // When bytes of an unfinished frame were first seen waiting, after the first frame.
    let mut partial_since: Option<Instant> = None;
    let check = tokio::time::sleep_until(first_frame_due);
    tokio::pin!(check);
    loop {
        let next = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = check.as_mut(), if paced => {
                let now = Instant::now();
                let too_slow = if !opened_any {
                    Some(TooSlow::FirstFrame)
                } else if frames.read_buffer().is_empty() {
                    partial_since = None;
                    None
                } else {
                    let since = *partial_since.get_or_insert(now);
                    (now.duration_since(since) >= config.frame_read_timeout)
                        .then_some(TooSlow::Frame)
                };
                if let Some(too_slow) = too_slow {
                    close_too_slow(&shared, peer, too_slow, frames.read_buffer().len(), refuse_on)
                        .await;
                    return;
                }
                check.as_mut().reset(tokio::time::Instant::now() + frame_check_every);
                continue;
            }
            next = frames.next() => next,
        };
        match next {
            None => return,
            Some(Ok(envelope)) => {
                if !opened_any {
                    opened_any = true;
                    check
                        .as_mut()
                        .reset(tokio::time::Instant::now() + frame_check_every);
                }
                partial_since = None;
                // Clients are not monitored: recording them would only grow the map.
                if !envelope.body.allowed_unauthenticated() && !envelope.sender.is_client() {
                    shared
                        .heard
                        .insert(envelope.sender, std::time::Instant::now());
                }
                let delivered = shared
                    .inbound
                    .send(Inbound {
                        envelope,
                        connection,
                    })
                    .await;
                if delivered.is_err() {
                    return;
                }
            }
            Some(Err(FrameError::Io(error))) => {
                tracing::debug!(%peer, %error, "connection closed");
                return;
            }
            Some(Err(error)) => {
                shared
                    .stats
                    .connections_closed_bad_frame
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%peer, reason = %error, "closing connection over a bad frame");
                if let Some(replies) = refuse_on {
                    refuse(&shared, &replies, error.to_string()).await;
                }
                return;
            }
        }
    }
}

/// Counts, logs (rate-limited) and refuses a connection closed for its pace.
async fn close_too_slow(
    shared: &Shared,
    peer: SocketAddr,
    too_slow: TooSlow,
    buffered: usize,
    refuse_on: Option<mpsc::Sender<Bytes>>,
) {
    let config = shared.config;
    let (counter, log, reason) = match too_slow {
        TooSlow::FirstFrame => (
            &shared.stats.connections_closed_auth_timeout,
            &shared.log_auth_timeout,
            format!(
                "no valid frame within {:?} of connecting (transport.auth_timeout)",
                config.auth_timeout
            ),
        ),
        TooSlow::Frame => (
            &shared.stats.connections_closed_slow_frame,
            &shared.log_slow_frame,
            format!(
                "frame not complete within {:?} (transport.frame_read_timeout)",
                config.frame_read_timeout
            ),
        ),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(count) = log.due() {
        tracing::warn!(
            %peer,
            %reason,
            bytes_buffered = buffered,
            closed_since_last_line = count,
            "closing slow connection"
        );
    }
    if let Some(replies) = refuse_on {
        refuse(shared, &replies, reason).await;
    }
}

/// Sends an unauthenticated `Refused` notice on an inbound connection about to close.
async fn refuse(shared: &Shared, replies: &mpsc::Sender<Bytes>, reason: String) {
    let notice = Envelope {
        version: PROTOCOL_VERSION,
        sender: shared.me.id,
        sender_addr: shared.me.addr,
        seq: 0,
        group: None,
        body: Body::Refused { reason },
    };
    if let Ok(frame) = shared.codec.seal(notice) {
        let _ = replies.send(frame).await;
        // Give the writer a moment to flush the notice before the drop closes it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TcpSender {
    /// The processes frames arrived from since the last call, with when the last one did.
    pub fn take_heard(&self) -> Vec<(crate::id::ProcessId, std::time::Instant)> {
        let heard: Vec<_> = self
            .shared
            .heard
            .iter()
            .map(|e| (*e.key(), *e.value()))
            .collect();
        for (peer, at) in &heard {
            self.shared.heard.remove_if(peer, |_, v| v == at);
        }
        heard
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<TransportStats> {
        &self.shared.stats
    }

    /// Closes every connection and stops every task of this transport.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    fn spawn_peer(&self, to: SocketAddr) -> mpsc::Sender<Bytes> {
        let (tx, rx) = mpsc::channel(self.shared.config.send_queue_frames);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.shared.peers.insert(
            to,
            PeerQueue {
                id,
                frames: tx.clone(),
                connected: connected.clone(),
            },
        );
        let shared = self.shared.clone();
        actix::spawn(async move {
            let shutdown = shared.shutdown.clone();
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = run_peer(shared.clone(), to, rx, connected) => {}
            }
            shared.peers.remove_if(&to, |_, queue| queue.id == id);
        });
        tx
    }
}

/// Connects to `to` when there is something to send, writes batches, reconnects with
/// backoff, and ends after [`PEER_IDLE`] with nothing to send.
async fn run_peer(
    shared: Arc<Shared>,
    to: SocketAddr,
    mut frames: mpsc::Receiver<Bytes>,
    connected: Arc<std::sync::atomic::AtomicBool>,
) {
    let config = shared.config;
    let mut backoff = config.reconnect_backoff_min;
    // The frames of the next write, as they are (the write gathers them: no copy).
    let mut batch = FrameBatch::default();
    loop {
        if batch.is_empty() {
            match tokio::time::timeout(PEER_IDLE, frames.recv()).await {
                Ok(Some(frame)) => batch.push(frame),
                Ok(None) | Err(_) => return,
            }
        }
        let stream = match TcpStream::connect(to).await {
            Ok(stream) => stream,
            Err(error) => {
                shared
                    .stats
                    .connect_failures
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%to, %error, ?backoff, "connect failed");
                // What was batched is stale by the time the peer is back; drop it.
                batch.clear();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.reconnect_backoff_max);
                continue;
            }
        };
        backoff = config.reconnect_backoff_min;
        connected.store(true, Ordering::Relaxed);
        shared
            .stats
            .connections_established
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let connection = ConnectionId(shared.next_id.fetch_add(1, Ordering::Relaxed));
        let reader_shared = shared.clone();
        let reader = actix::spawn(async move {
            read_frames(reader_shared, read, to, connection, None).await;
        });
        loop {
            while batch.bytes < config.batch_bytes_max && batch.frames.len() < FRAMES_PER_WRITE {
                match frames.try_recv() {
                    Ok(frame) => batch.push(frame),
                    Err(_) => break,
                }
            }
            let bytes = batch.bytes;
            match batch.write_all(&mut write).await {
                Ok(calls) => {
                    shared
                        .stats
                        .write_batches
                        .fetch_add(calls, Ordering::Relaxed);
                    shared
                        .stats
                        .bytes_written
                        .fetch_add(bytes as u64, Ordering::Relaxed);
                }
                Err(error) => {
                    tracing::debug!(%to, %error, "write failed; reconnecting");
                    connected.store(false, Ordering::Relaxed);
                    batch.clear();
                    break;
                }
            }
            match tokio::time::timeout(PEER_IDLE, frames.recv()).await {
                Ok(Some(frame)) => batch.push(frame),
                Ok(None) | Err(_) => {
                    reader.abort();
                    return;
                }
            }
        }
        reader.abort();
    }
}

/// Frames gathered into one write: at most this many (Linux takes up to 1024 buffers in
/// one vectored write; frames are rarely that small).
const FRAMES_PER_WRITE: usize = 256;

/// The frames of one write to a peer, kept as they were queued: a vectored write gathers
/// them, where copying them into one buffer first cost a copy of every byte sent.
#[derive(Default)]
struct FrameBatch {
    frames: std::collections::VecDeque<Bytes>,
    /// Their total length.
    bytes: usize,
}

impl FrameBatch {
    fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    fn clear(&mut self) {
        self.frames.clear();
        self.bytes = 0;
    }

    /// Writes every frame, whole and in order, with as few calls as the socket takes;
    /// returns the calls. Empty afterwards, unless it failed.
    async fn write_all(&mut self, write: &mut (impl AsyncWrite + Unpin)) -> std::io::Result<u64> {
        let mut calls = 0;
        while !self.frames.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .frames
                .iter()
                .take(FRAMES_PER_WRITE)
                .map(|frame| IoSlice::new(frame))
                .collect();
            let mut written = write.write_vectored(&slices).await?;
            calls += 1;
            if written == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.bytes -= written;
            // Drop what went out; a frame written in part keeps its rest for the next call.
            while let Some(frame) = self.frames.front_mut() {
                if written < frame.len() {
                    frame.advance(written);
                    break;
                }
                written -= frame.len();
                self.frames.pop_front();
            }
        }
        Ok(calls)
    }
}

impl Transport for TcpSender {
    fn send(&mut self, to: SocketAddr, frame: Bytes) -> Result<(), SendError> {
        if self.shared.shutdown.is_cancelled() {
            return Err(SendError::Shutdown);
        }
        let queue = match self.shared.peers.get(&to) {
            Some(queue) if !queue.frames.is_closed() => queue.frames.clone(),
            _ => self.spawn_peer(to),
        };
        match queue.try_send(frame) {
            Ok(()) => {
                self.shared
                    .stats
                    .frames_queued
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                self.shared
                    .stats
                    .frames_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                Err(SendError::QueueFull(to))
            }
        }
    }

    fn reply(&mut self, connection: ConnectionId, frame: Bytes) -> Result<(), SendError> {
        let queue = self
            .shared
            .replies
            .get(&connection)
            .map(|q| q.clone())
            .ok_or(SendError::ConnectionClosed(connection))?;
        queue.try_send(frame).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => SendError::ReplyQueueFull(connection),
            mpsc::error::TrySendError::Closed(_) => SendError::ConnectionClosed(connection),
        })
    }

    fn take_heard(&mut self) -> Vec<(crate::id::ProcessId, std::time::Instant)> {
        TcpSender::take_heard(self)
    }

    fn peers(&self) -> Vec<crate::wire::status::PeerState> {
        let mut peers: Vec<_> = self
            .shared
            .peers
            .iter()
            .map(|entry| {
                let queue = entry.value();
                crate::wire::status::PeerState {
                    addr: *entry.key(),
                    connected: queue.connected.load(Ordering::Relaxed) && !queue.frames.is_closed(),
                    queued_frames: (queue.frames.max_capacity() - queue.frames.capacity()) as u64,
                }
            })
            .collect();
        peers.sort_by_key(|p| p.addr);
        peers
    }

    fn counters(&self) -> TransportCounters {
        let stats = &self.shared.stats;
        TransportCounters {
            connections_closed_bad_frame: stats
                .connections_closed_bad_frame
                .load(Ordering::Relaxed),
            frames_dropped_queue_full: stats.frames_dropped_queue_full.load(Ordering::Relaxed),
            write_batches: stats.write_batches.load(Ordering::Relaxed),
            bytes_written: stats.bytes_written.load(Ordering::Relaxed),
        }
    }

    fn shutdown(&mut self) {
        TcpSender::shutdown(self);
    }
}

#[cfg(test)]
mod tests {
    use super::FrameBatch;
    use bytes::Bytes;
    use std::io::IoSlice;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::AsyncWrite;

    /// A socket that takes at most `per_call` bytes per call, across the buffers it is
    /// given (as a full socket buffer does).
    struct Trickle {
        written: Vec<u8>,
        per_call: usize,
        calls: u64,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            self.poll_write_vectored(_cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let mut room = self.per_call;
            let mut taken = Vec::new();
            for buf in bufs {
                let n = buf.len().min(room);
                taken.extend_from_slice(&buf[..n]);
                room -= n;
            }
            self.calls += 1;
            self.written.extend_from_slice(&taken);
            Poll::Ready(Ok(taken.len()))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Every byte of every frame goes out once, in order, whatever the socket takes per
    /// call: a frame written in part resumes where it stopped.
    #[tokio::test]
    async fn a_batch_is_written_whole_and_in_order_through_partial_writes() {
        for per_call in [1, 3, 7, 64, 1 << 20] {
            let mut batch = FrameBatch::default();
            let mut expected = Vec::new();
            for i in 0..300u32 {
                let frame: Vec<u8> = (0..(i % 17 + 1)).map(|j| (i * 31 + j) as u8).collect();
                expected.extend_from_slice(&frame);
                batch.push(Bytes::from(frame));
            }
            let mut socket = Trickle {
                written: Vec::new(),
                per_call,
                calls: 0,
            };
            let calls = batch.write_all(&mut socket).await.unwrap();
            assert_eq!(socket.written, expected, "{per_call} bytes per call");
            assert_eq!(calls, socket.calls);
            assert!(batch.is_empty() && batch.bytes == 0);
        }
    }

    /// A socket that takes nothing is an error, not a busy loop.
    #[tokio::test]
    async fn a_socket_that_takes_nothing_fails_the_write() {
        let mut batch = FrameBatch::default();
        batch.push(Bytes::from_static(b"frame"));
        let mut socket = Trickle {
            written: Vec::new(),
            per_call: 0,
            calls: 0,
        };
        let error = batch.write_all(&mut socket).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WriteZero);
    }
}
