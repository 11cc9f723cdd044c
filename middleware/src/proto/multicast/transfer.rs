//! State transfer, standing alone: a joiner fetches the service state of its first view from
//! one provider in chunks (`StateRequest` / `StateChunk`), and the provider answers from the
//! snapshot its service took after delivering the previous view's cut.
//!
//! The core calls it through [`Transfer`]: start fetching, retry on ticks, offer and fill a
//! snapshot, answer requests, take chunks (the completed state is handed back, and the core
//! restores it). Nothing here knows streams, cuts or views beyond their ids.

use super::config::MulticastConfig;
use super::output::MulticastOutput;
use crate::id::ViewId;
use crate::proto::Time;
use crate::view::Member;
use crate::wire::Body;
use bytes::{Bytes, BytesMut};

/// A joiner's incoming state transfer.
#[derive(Debug)]
struct Incoming {
    view: ViewId,
    provider: Member,
    received: BytesMut,
    total: Option<u64>,
    requested_upto: u64,
    last_progress: Time,
}

/// A provider's snapshot for the joiners of `view`.
#[derive(Debug)]
struct Snapshot {
    view: ViewId,
    state: Option<Bytes>,
}

/// Both sides of state transfer at one process: the state it fetches as a joiner, and the
/// snapshot it provides to joiners.
#[derive(Debug, Default)]
pub(super) struct Transfer {
    incoming: Option<Incoming>,
    snapshot: Option<Snapshot>,
}

impl Transfer {
    /// Whether a transfer to this process is under way.
    #[cfg(feature = "planted-bugs")]
    pub(super) fn is_incoming(&self) -> bool {
        self.incoming.is_some()
    }

    /// Gives up the incoming transfer, if any.
    pub(super) fn cancel_incoming(&mut self) {
        self.incoming = None;
    }

    /// Forgets both sides (this process left the group).
    pub(super) fn reset(&mut self) {
        self.incoming = None;
        self.snapshot = None;
    }

    /// Starts fetching the state of `view` from `provider`.
    pub(super) fn start(
        &mut self,
        now: Time,
        view: ViewId,
        provider: Member,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        self.incoming = Some(Incoming {
            view,
            provider,
            received: BytesMut::new(),
            total: None,
            requested_upto: 0,
            last_progress: now,
        });
        self.request_state(now, config, out);
    }

    fn request_state(
        &mut self,
        now: Time,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(incoming) = self.incoming.as_mut() else {
            return;
        };
        let offset = incoming.received.len() as u64;
        incoming.requested_upto =
            offset + config.state_chunk_bytes as u64 * config.state_window_chunks;
        incoming.last_progress = now;
        out.push(MulticastOutput::Send {
            to: incoming.provider.addr,
            body: Body::StateRequest {
                view: incoming.view,
                offset,
            },
        });
    }

    /// Asks again when no chunk came for `state_retry`.
    pub(super) fn handle_tick(
        &mut self,
        now: Time,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        if let Some(incoming) = &self.incoming {
            if now.saturating_sub(incoming.last_progress) >= config.state_retry {
                self.request_state(now, config, out);
            }
        }
    }

    /// Forgets the snapshot provided so far; if `view` is given, this process provides the
    /// state to the joiners of `view` and asks its service for a snapshot.
    pub(super) fn provide(&mut self, view: Option<ViewId>, out: &mut Vec<MulticastOutput>) {
        self.snapshot = None;
        if let Some(view) = view {
            self.snapshot = Some(Snapshot { view, state: None });
            out.push(MulticastOutput::SnapshotWanted(view));
        }
    }

    /// The service's snapshot for the joiners of `view`.
    pub(super) fn handle_snapshot(&mut self, view: ViewId, state: Bytes) {
        if let Some(snapshot) = self.snapshot.as_mut().filter(|s| s.view == view) {
            snapshot.state = Some(state);
        }
    }

    /// The service could not take the snapshot for `view`. Returns whether it was the one
    /// this process provides (which is then forgotten).
    pub(super) fn handle_snapshot_failed(&mut self, view: ViewId) -> bool {
        if self.snapshot.as_ref().is_some_and(|s| s.view == view) {
            self.snapshot = None;
            return true;
        }
        false
    }

    /// A joiner asks for the state of `view` from `offset`: a window of chunks goes back.
    pub(super) fn handle_state_request(
        &self,
        from: Member,
        view: ViewId,
        offset: u64,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(Snapshot {
            state: Some(state), ..
        }) = self.snapshot.as_ref().filter(|s| s.view == view)
        else {
            return;
        };
        let total = state.len() as u64;
        let chunk = config.state_chunk_bytes.max(1) as u64;
        let mut at = offset.min(total);
        for _ in 0..config.state_window_chunks.max(1) {
            let end = (at + chunk).min(total);
            out.push(MulticastOutput::Send {
                to: from.addr,
                body: Body::StateChunk {
                    view,
                    offset: at,
                    total,
                    bytes: state.slice(at as usize..end as usize),
                },
            });
            at = end;
            if at >= total {
                break;
            }
        }
    }

    /// A chunk of the state of `view`. Returns the whole state once it is complete (the
    /// transfer is then over); asks for the next window when this one is in.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_state_chunk(
        &mut self,
        now: Time,
        view: ViewId,
        offset: u64,
        total: u64,
        bytes: Bytes,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) -> Option<Bytes> {
        let incoming = self.incoming.as_mut().filter(|i| i.view == view)?;
        if total > config.state_bytes_max || offset != incoming.received.len() as u64 {
            return None;
        }
        if incoming.total.is_some_and(|t| t != total) {
            return None;
        }
        incoming.total = Some(total);
        incoming.received.extend_from_slice(&bytes);
        incoming.last_progress = now;
        let received = incoming.received.len() as u64;
        if received >= total {
            let incoming = self.incoming.take().expect("checked");
            return Some(incoming.received.freeze());
        } else if received >= incoming.requested_upto {
            self.request_state(now, config, out);
        }
        None
    }

    /// The incoming transfer's view, bytes received and total, for traces.
    pub(super) fn describe(&self) -> Option<(ViewId, usize, Option<u64>)> {
        self.incoming
            .as_ref()
            .map(|i| (i.view, i.received.len(), i.total))
    }
}
