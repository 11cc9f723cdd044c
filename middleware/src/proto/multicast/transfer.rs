//! State transfer, standing alone: a joiner fetches the service state of its first view from
//! one provider in chunks (`StateRequest` / `StateChunk`), and the provider answers from the
//! snapshot its service took after delivering the previous view's cut.
//!
//! **Catch-up by a delta.** A joiner that recovered a durable state at position `p` (a
//! restarted member) says so in its requests (`since: Some(p)`). The provider then asks its
//! service, once per `(view, p)`, for the updates after `p` up to its snapshot (a *delta*);
//! until the answer comes it sends nothing (the joiner retries). A delta is served in chunks
//! exactly like a snapshot, each chunk saying which it is (`since`), and the joiner restores
//! it as a delta; when the service cannot (`None`), the joiner gets the whole snapshot. The
//! kind of a transfer is fixed by its first chunk: the joiner never mixes chunks of a delta
//! and of a snapshot.
//!
//! The core calls it through [`Transfer`]: start fetching, retry on ticks, offer and fill a
//! snapshot (and deltas), answer requests, take chunks (the completed state is handed back,
//! and the core restores it). Nothing here knows streams, cuts or views beyond their ids.

use super::config::MulticastConfig;
use super::output::MulticastOutput;
use crate::id::ViewId;
use crate::proto::Time;
use crate::view::Member;
use crate::wire::Body;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;

/// Distinct joiner positions a provider asks its service a delta for, per view; joiners
/// past that get the whole snapshot (bounds the deltas held, whatever requests arrive).
pub(super) const DELTAS_PER_VIEW: usize = 8;

/// A joiner's incoming state transfer.
#[derive(Debug)]
struct Incoming {
    view: ViewId,
    provider: Member,
    /// The position this process asks a delta from, if any.
    since: Option<u64>,
    /// What the chunks received are (`Some(since)` of the first chunk taken): fixed once
    /// the first chunk is in, so a delta and a snapshot are never mixed.
    kind: Option<Option<u64>>,
    received: BytesMut,
    total: Option<u64>,
    requested_upto: u64,
    last_progress: Time,
}

/// The service's answer for one joiner position.
#[derive(Debug)]
enum Delta {
    /// Asked for the joiner `Member`, not answered yet: the joiner waits (and retries);
    /// the answer goes to it at once.
    Asked(Member),
    /// The delta's bytes.
    Ready(Bytes),
    /// The service cannot: the joiner gets the whole snapshot.
    Unavailable,
}

/// A provider's snapshot for the joiners of `view`, and the deltas asked for it.
#[derive(Debug)]
struct Snapshot {
    view: ViewId,
    state: Option<Bytes>,
    /// By joiner position, at most [`DELTAS_PER_VIEW`].
    deltas: BTreeMap<u64, Delta>,
}

/// A finished incoming transfer: the state, and `Some(p)` if it is a delta from `p`.
#[derive(Debug)]
pub(super) struct Completed {
    pub(super) state: Bytes,
    pub(super) since: Option<u64>,
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

    /// Starts fetching the state of `view` from `provider`; with `since`, a delta from that
    /// position is welcome.
    pub(super) fn start(
        &mut self,
        now: Time,
        view: ViewId,
        provider: Member,
        since: Option<u64>,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        self.incoming = Some(Incoming {
            view,
            provider,
            since,
            kind: None,
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
                since: incoming.since,
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
            self.snapshot = Some(Snapshot {
                view,
                state: None,
                deltas: BTreeMap::new(),
            });
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

    /// The service's answer to `DeltaWanted { view, since }`: the delta, or `None` (the
    /// whole snapshot then). The joiner that asked gets the first window at once. Returns
    /// whether it answered a delta asked for the snapshot this process provides.
    pub(super) fn handle_delta(
        &mut self,
        view: ViewId,
        since: u64,
        delta: Option<Bytes>,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) -> bool {
        let Some(slot) = self
            .snapshot
            .as_mut()
            .filter(|s| s.view == view)
            .and_then(|s| s.deltas.get_mut(&since))
        else {
            return false;
        };
        let Delta::Asked(joiner) = *slot else {
            return false;
        };
        *slot = match delta {
            Some(bytes) => Delta::Ready(bytes),
            None => Delta::Unavailable,
        };
        self.handle_state_request(joiner, view, 0, Some(since), config, out);
        true
    }

    /// A joiner asks for the state of `view` from `offset` (a delta from `since` if it can
    /// be had): a window of chunks goes back. The first request with a new `since` asks the
    /// service for the delta; nothing goes back until it answers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_state_request(
        &mut self,
        from: Member,
        view: ViewId,
        offset: u64,
        since: Option<u64>,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(snapshot) = self.snapshot.as_mut().filter(|s| s.view == view) else {
            return;
        };
        let Some(state) = snapshot.state.clone() else {
            return;
        };
        let (bytes, served) = match since {
            None => (state, None),
            Some(p) => {
                let asked = snapshot.deltas.len();
                match snapshot.deltas.get(&p) {
                    Some(Delta::Asked(_)) => return,
                    Some(Delta::Ready(delta)) => (delta.clone(), Some(p)),
                    Some(Delta::Unavailable) => (state, None),
                    None if asked >= DELTAS_PER_VIEW => (state, None),
                    None => {
                        snapshot.deltas.insert(p, Delta::Asked(from));
                        out.push(MulticastOutput::DeltaWanted { view, since: p });
                        return;
                    }
                }
            }
        };
        let total = bytes.len() as u64;
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
                    since: served,
                    bytes: bytes.slice(at as usize..end as usize),
                },
            });
            at = end;
            if at >= total {
                break;
            }
        }
    }

    /// A chunk of the state of `view` (of a delta from `since`, if `Some`). Returns the
    /// whole state once it is complete (the transfer is then over); asks for the next window
    /// when this one is in. A chunk of another kind than the transfer's first (a snapshot's
    /// after a delta's, or a delta from another position) is ignored.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_state_chunk(
        &mut self,
        now: Time,
        view: ViewId,
        offset: u64,
        total: u64,
        since: Option<u64>,
        bytes: Bytes,
        config: &MulticastConfig,
        out: &mut Vec<MulticastOutput>,
    ) -> Option<Completed> {
        let incoming = self.incoming.as_mut().filter(|i| i.view == view)?;
        if total > config.state_bytes_max && since.is_some() && since == incoming.since {
            // A delta larger than this process takes: ask for the whole snapshot instead
            // (the same limit then applies to it, as without catch-up).
            if incoming.kind.is_none() {
                incoming.since = None;
                self.request_state(now, config, out);
            }
            return None;
        }
        if total > config.state_bytes_max || offset != incoming.received.len() as u64 {
            return None;
        }
        // Only a delta from the position asked for, or the whole snapshot.
        if since.is_some() && since != incoming.since {
            return None;
        }
        if incoming.kind.is_some_and(|k| k != since) {
            return None;
        }
        if incoming.total.is_some_and(|t| t != total) {
            return None;
        }
        incoming.kind = Some(since);
        incoming.total = Some(total);
        incoming.received.extend_from_slice(&bytes);
        incoming.last_progress = now;
        let received = incoming.received.len() as u64;
        if received >= total {
            let incoming = self.incoming.take().expect("checked");
            return Some(Completed {
                state: incoming.received.freeze(),
                since,
            });
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
