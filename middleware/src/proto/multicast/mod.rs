//! View-synchronous reliable multicast core: one instance per group a process belongs to,
//! owned by that group's membership core, which drives its view changes.
//!
//! # Streams
//!
//! In each view, every member owns a *stream*: its entries carry sequence numbers from 1.
//! Receivers hold entries until every member of the view holds them (*stable*, learnt from
//! `Ack` vectors) and they were delivered, then drop them. Gaps are asked for with `Nak`
//! (to the origin, or to any member whose ack shows it holds the range). A sender may have at
//! most `window_messages` entries and a byte window of payload bytes that are not yet stable
//! (credit flow control); more multicasts wait in a bounded outbox, and a full outbox refuses
//! with [`MulticastError::Full`]. So a member that stops reading stops the senders, and memory
//! stays bounded until it is evicted. The byte window adapts between `window_min_bytes` and
//! `window_bytes` to how long the sender's entries take to become stable, against
//! `window_target_latency`, and only while it holds multicasts back; acks follow delivery
//! closely (`ack_bytes`) so that this delay measures the receivers' queues.
//!
//! # Ordering
//!
//! Every stream is consumed in sequence order (FIFO). A causal entry also waits until every
//! entry its clock names is delivered. A total entry also waits for its turn in the order
//! that the view's *sequencer* (rank 0, the coordinator) publishes as `Order` entries in its
//! own stream; a new view has a new sequencer. The sequencer orders entries as they arrive,
//! its own once a peer's ack shows they arrived there, so its multicasts pay a round trip as
//! everyone else's do and cannot overtake theirs at every turn. With safe delivery an entry also waits until
//! it is stable.
//!
//! # View synchrony
//!
//! When a member promises in a view change it freezes: it delivers nothing beyond what it
//! held at that moment and sends nothing more in the view. The decided *cut* is, per stream,
//! the maximum any promiser held, so it covers everything any survivor delivered. Survivors
//! fetch what they lack of the cut, deliver exactly the cut (a fixed function of the cut's
//! contents, the same everywhere), then install the next view. Everything past the cut is
//! discarded: it came from members that did not survive.
//!
//! # Files
//!
//! [`Multicast`] (this file) owns the view lifecycle (install, freeze, the ending view, the
//! retired one), the outbox, and dispatch; the parts below import one way and never this
//! file: `view_stream` (one view's streams: credit, acks, stability, retransmission
//! requests, garbage collection, delivery), built on `stream` (one sender's stream) and
//! `order` (causal waiting, the sequencer's order records, total order); `cut` (composing
//! the cut, delivering it at the end of a view) uses `view_stream`; `transfer` (state
//! transfer, both sides) stands alone; `config` and `output` are used by all.

mod config;
mod cut;
mod order;
mod output;
mod stream;
#[cfg(test)]
mod tests;
mod transfer;
mod view_stream;

pub use config::{Delivery, MulticastConfig};
pub use cut::compose_cut;
pub use output::{Message, MulticastError, MulticastOutput, MulticastStats};

#[cfg(feature = "planted-bugs")]
use super::planted::{self, PlantedBug};
use super::Time;
use crate::id::{ProcessId, ViewId};
use crate::view::{Member, View, ViewChange};
use crate::wire::{Body, CutEntry, Decision, Entry, FlushReport, Item, Ordering, Rank, Seq};
use bytes::Bytes;
use config::IDLE_ACK_INTERVAL;
use cut::Ending;
use std::collections::VecDeque;
use transfer::Transfer;
use view_stream::ViewStream;

/// The multicast core of one group at one process.
#[derive(Debug)]
pub struct Multicast {
    me: ProcessId,
    config: MulticastConfig,
    /// The installed view's streams (delivery waits while `ending` is `Some`).
    current: Option<ViewStream>,
    /// The previous view, while its cut is fetched and delivered.
    ending: Option<Ending>,
    /// The previous view once its cut is delivered, kept until the next view change to
    /// answer retransmission requests: members of the new view that did not accept the
    /// decision may still be fetching its cut from this one. Only its unstable entries are
    /// still buffered (about a window per sender).
    retired: Option<ViewStream>,
    /// Whether the service state is in step with the group.
    ready: bool,
    /// Installed a view this process cannot vouch for (no cut, no state): a state transfer
    /// must be arranged through a new view change.
    needs_resync: bool,
    /// The last view the service was told of.
    service_view: Option<View>,
    outbox: VecDeque<(Ordering, Bytes)>,
    /// State transfer: the state this process fetches as a joiner, the snapshot it provides.
    transfer: Transfer,
    /// The service is behind: deliver nothing for now (credit is withheld meanwhile).
    paused: bool,
    /// Excluded and joining again: multicasts still go to the outbox, for the next view.
    rejoining: bool,
    /// A cut of the current view this member must hold before it answers `Accepted`.
    fetch_target: Option<(ViewId, Vec<CutEntry>)>,
    /// The position of the durable state this process's service recovered, until the
    /// service state first moves (a restore or a view created here): a joiner's requests
    /// carry it, so the provider may send a delta from it.
    catch_up_from: Option<u64>,
    stats: MulticastStats,
}

impl Multicast {
    /// A multicast core for process `me`, not yet in any view.
    pub fn new(me: ProcessId, config: MulticastConfig) -> Self {
        Multicast {
            me,
            config,
            current: None,
            ending: None,
            retired: None,
            ready: false,
            needs_resync: false,
            service_view: None,
            outbox: VecDeque::new(),
            transfer: Transfer::default(),
            paused: false,
            fetch_target: None,
            rejoining: false,
            catch_up_from: None,
            stats: MulticastStats::default(),
        }
    }

    /// Pauses or resumes deliveries (the service's mailbox is full or has room again).
    /// Returns whether the setting changed. A paused member acknowledges at most a window
    /// past what it delivered, so the senders wait for it.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        let changed = self.paused != paused;
        self.paused = paused;
        changed
    }

    fn may_deliver(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        if planted::active(PlantedBug::JoinerDeliversBeforeRestore) && self.transfer.is_incoming() {
            return self.ending.is_none() && !self.paused;
        }
        self.ready && self.ending.is_none() && !self.paused
    }

    /// The service's recovered durable state is at `position` (a restarted member): until
    /// its state first moves, a state transfer to this process asks for a delta from there
    /// instead of the whole state. `None` (the default): always the whole state. Set before
    /// the first view; ignored once the service state has moved.
    pub fn set_catch_up_from(&mut self, position: Option<u64>) {
        if !self.ready {
            self.catch_up_from = position;
        }
    }

    /// The position a state transfer to this process asks a delta from, if any.
    pub fn catch_up_from(&self) -> Option<u64> {
        self.catch_up_from
    }

    /// The settings.
    pub fn config(&self) -> &MulticastConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> MulticastStats {
        self.stats
    }

    /// Whether the service state is in step with the group (not waiting for a transfer).
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Whether this process holds the group's state as of its installed view: it is ready and
    /// has delivered the cut that ended the previous view.
    pub fn holds_state(&self) -> bool {
        self.ready && self.ending.is_none()
    }

    /// Whether this process needs a view change that lists it as a joiner, to get the state.
    pub fn needs_resync(&self) -> bool {
        self.needs_resync
    }

    /// The view the service was last told of.
    pub fn service_view(&self) -> Option<&View> {
        self.service_view.as_ref()
    }

    /// Multicasts waiting in the outbox.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Entries held in buffers (sent or received, not yet collected), over all streams.
    pub fn buffered_entries(&self) -> usize {
        self.current
            .iter()
            .chain(self.ending.as_ref().map(|e| &e.stream))
            .chain(self.retired.as_ref())
            .flat_map(|v| v.streams.iter())
            .map(|s| s.buffer.len())
            .sum()
    }

    /// A one-line account of the core's state, for traces.
    pub fn describe(&self) -> String {
        let stream = |v: &ViewStream| v.describe();
        format!(
            "ready {} resync {} paused {} outbox {} current [{}] ending [{}] incoming {:?}",
            self.ready,
            self.needs_resync,
            self.paused,
            self.outbox.len(),
            self.current.as_ref().map(stream).unwrap_or_default(),
            self.ending
                .as_ref()
                .map(|e| format!("{} cut {:?} since {:?}", stream(&e.stream), e.cut, e.since))
                .unwrap_or_default(),
            self.transfer.describe(),
        )
    }

    /// What this member holds of `base`'s streams, for its promise.
    pub fn report(&self, base: ViewId) -> FlushReport {
        FlushReport {
            received: self
                .current
                .as_ref()
                .filter(|v| v.id() == base)
                .map(|v| v.received())
                .unwrap_or_default(),
            // A survivor still fetching the previous view's cut does not hold the state yet:
            // a view decided now lists it as a learner (`install_decided` treats it as a
            // joiner), so it is never the next view's only voter without the state.
            ready: self.holds_state(),
        }
    }

    /// This member promised in the view change from `base`: it stops delivering past what it
    /// holds and stops sending.
    pub fn freeze(&mut self, base: ViewId, out: &mut Vec<MulticastOutput>) {
        let Some(view) = self.current.as_mut().filter(|v| v.id() == base) else {
            return;
        };
        if view.limit.is_some() {
            return;
        }
        view.limit = Some(view.received());
        if self.ready && self.ending.is_none() {
            out.push(MulticastOutput::Block);
        }
    }

    /// Whether this member holds every entry of `cut` of `base`.
    pub fn holds(&self, base: ViewId, cut: &[CutEntry]) -> bool {
        if cut.iter().all(|c| c.upto == Seq::ZERO) {
            return true;
        }
        self.current
            .as_ref()
            .is_some_and(|v| v.id() == base && v.holds(cut))
    }

    /// Asks for what this member lacks of `cut` of `base`.
    pub fn fetch(
        &mut self,
        now: Time,
        base: ViewId,
        cut: &[CutEntry],
        out: &mut Vec<MulticastOutput>,
    ) {
        let config = self.config;
        if let Some(view) = self.current.as_mut().filter(|v| v.id() == base) {
            if cut.len() == view.streams.len() {
                self.fetch_target = Some((base, cut.to_vec()));
                view.request_missing(now, Some(cut), &config, out);
            }
        }
    }

    /// The group's first view, created by this process: it starts with an empty state.
    pub fn install_created(&mut self, view: &View, out: &mut Vec<MulticastOutput>) {
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.retired = None;
        self.transfer.cancel_incoming();
        self.ready = true;
        // The service goes on from its own state: that position is no longer where it is.
        self.catch_up_from = None;
        self.needs_resync = false;
        self.tell_view(view, out);
    }

    /// A view decided as the successor of `base` was installed.
    pub fn install_decided(
        &mut self,
        now: Time,
        base: ViewId,
        decision: &Decision,
        out: &mut Vec<MulticastOutput>,
    ) {
        let view = &decision.view;
        // A new view change: the view before the base is no longer anyone's cut.
        self.retired = None;
        // A member of the base that holds its state by now is a survivor even if the decision
        // lists it as a learner (it was still fetching the previous cut, or restoring, when it
        // promised): its delivery stopped at what it reported, and dropping its state would
        // throw away a copy the view may need (the decision's voters may have lost theirs
        // since, a failed snapshot). But a learner is listed for its join request, not for a
        // promise, so the cut may not cover what it delivered: its promise may have gone to
        // another ballot after the decision's promisers had frozen (ring seed 16053: a member
        // that installed the base late delivered 48 of its own multicasts the cut left out).
        // It goes on with its state only if everything it delivered lies within the cut.
        let survivor = self.ready
            && self.ending.is_none()
            && self.current.as_ref().is_some_and(|v| {
                v.id() == base
                    && (!decision.joiners.contains(&self.me)
                        || (v.limit.is_some() && v.delivered_within(&decision.cut)))
            });
        if survivor {
            let stream = self.current.take().expect("checked");
            self.ending = Some(Ending {
                stream,
                cut: decision.cut.clone(),
                decision: decision.clone(),
                since: now,
            });
            self.current = Some(ViewStream::new(view.clone(), self.me));
            self.try_finish_ending(now, out);
        } else {
            // Not continuing with its state, but what it received of the base may be in the
            // cut and held nowhere else (its own multicasts, the sequencer's order): keep
            // answering for it until the next view change, as a survivor does.
            let base_streams = self.current.take().filter(|v| v.id() == base);
            if decision.joiners.contains(&self.me) {
                self.start_as_joiner(now, decision, out);
            } else {
                self.install_unverified(view);
            }
            if base_streams.is_some() {
                self.retired = base_streams;
            }
        }
    }

    /// A view learnt without its cut (a resent install or a newer view heard of): this
    /// process cannot tell what the group delivered, so it waits for a state transfer.
    pub fn install_unverified(&mut self, view: &View) {
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.retired = None;
        self.transfer.cancel_incoming();
        self.ready = false;
        self.needs_resync = true;
    }

    /// Streams for `view`, which this process is listed in but never installed, so that it
    /// can hold a cut of it as an acceptor. It delivers nothing there.
    pub fn shadow(&mut self, view: &View) {
        if self.current.as_ref().is_some_and(|v| v.id() == view.id) || !view.contains(self.me) {
            return;
        }
        // The streams it kept of that view since it left it hold what it had: the cut may
        // need them (it may be the only holder of its own entries).
        let kept = self.retired.take().filter(|r| r.id() == view.id);
        self.current = Some(kept.unwrap_or_else(|| ViewStream::new(view.clone(), self.me)));
        self.ending = None;
        self.ready = false;
    }

    /// This process is no longer a member (excluded or left): its streams are dropped.
    /// Multicasts in the outbox are kept for the next view after a rejoin, unless `left`.
    pub fn leave_group(&mut self, left: bool) {
        // Excluded from a view (not a first join, not a leave): keep accepting multicasts.
        self.rejoining = !left && (self.rejoining || self.current.is_some());
        // The view it was in may have ended with a cut this process holds and the new view's
        // members still fetch: keep answering for it until this process installs a view.
        let last = self.current.take();
        let ending = self.ending.take().map(|e| e.stream);
        if let Some(stream) = last.or(ending) {
            self.retired = Some(stream);
        }
        self.transfer.reset();
        self.ready = false;
        self.needs_resync = false;
        self.service_view = None;
        if left {
            self.outbox.clear();
        }
    }

    fn start_as_joiner(&mut self, now: Time, decision: &Decision, out: &mut Vec<MulticastOutput>) {
        let view = &decision.view;
        self.current = Some(ViewStream::new(view.clone(), self.me));
        self.ending = None;
        self.needs_resync = false;
        // The voters hold the state (a decision is never made without one); the first is the
        // provider.
        let provider = view
            .voters()
            .iter()
            .find(|m| !decision.joiners.contains(&m.id))
            .copied();
        match provider {
            Some(provider) => {
                self.ready = false;
                let since = self.catch_up_from;
                self.transfer
                    .start(now, view.id, provider, since, &self.config, out);
            }
            None => {
                // A decision naming no holder of the state is never composed; one that
                // arrives anyway is not followed from nothing: this process waits for its
                // state through a later view change.
                self.transfer.cancel_incoming();
                self.ready = false;
                self.needs_resync = true;
                self.stats.states_lost += 1;
            }
        }
    }

    fn tell_view(&mut self, view: &View, out: &mut Vec<MulticastOutput>) {
        let change = ViewChange::between(self.service_view.as_ref(), view.clone());
        self.service_view = Some(view.clone());
        out.push(MulticastOutput::View(change));
    }

    /// Delivers the ending view's cut once it is held; then the next view starts.
    fn try_finish_ending(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let safe = self.config.delivery == Delivery::Safe;
        let Some(ending) = self.ending.as_mut() else {
            return;
        };
        if !ending.holds_cut() {
            // Giving up leaves the state to the next view's other holders. When there are
            // none (every other member joins), giving up would leave the group with no holder
            // and blocked for good, so the cut is fetched for as long as it takes: its
            // entries were reported by voters that may be reachable again (an excluded one
            // answers from the streams it retired). Sim seed 8850: a coordinator whose
            // outgoing links were cut for 3.5 s gave up, and the group never moved again.
            let me = self.me;
            let decision = &ending.decision;
            let others_hold = decision
                .view
                .members
                .iter()
                .any(|m| m.id != me && !decision.joiners.contains(&m.id));
            if others_hold && now.saturating_sub(ending.since) >= self.config.flush_fetch_timeout {
                // The entries cannot be had (their holders are gone): fall back to a state
                // transfer in a later view. The current view's entries are kept: this member
                // may be the one holding some that others need.
                self.ending = None;
                self.ready = false;
                self.needs_resync = true;
            }
            return;
        }
        let mut ending = self.ending.take().expect("checked");
        let before = out.len();
        ending.deliver_cut(safe, out);
        self.count_new(before, out);
        self.retired = Some(ending.stream);
        let view = ending.decision.view.clone();
        self.tell_view(&view, out);
        let has_joiners = view
            .members
            .iter()
            .any(|m| ending.decision.joiners.contains(&m.id));
        let provider = view
            .members
            .iter()
            .find(|m| !ending.decision.joiners.contains(&m.id));
        let provides = has_joiners && provider.is_some_and(|p| p.id == self.me);
        self.transfer.provide(provides.then_some(view.id), out);
        self.after_progress(now, out);
    }

    /// The service's snapshot for the joiners of `view`.
    pub fn handle_snapshot(&mut self, view: ViewId, state: Bytes) {
        self.transfer.handle_snapshot(view, state);
    }

    /// The service's answer to [`MulticastOutput::DeltaWanted`]: the updates after `since` up
    /// to its snapshot for `view`, or `None` when it cannot (the joiner then gets the whole
    /// snapshot).
    pub fn handle_delta(
        &mut self,
        view: ViewId,
        since: u64,
        delta: Option<Bytes>,
        out: &mut Vec<MulticastOutput>,
    ) {
        let served = delta.is_some();
        let config = self.config;
        if self.transfer.handle_delta(view, since, delta, &config, out) && served {
            self.stats.deltas_served += 1;
        }
    }

    /// The service could not take the snapshot for the joiners of `view`: this process no
    /// longer vouches for the state (it gets it again through a view change that lists it as
    /// a joiner), and the joiners get the state from another holder in that view change.
    pub fn handle_snapshot_failed(&mut self, view: ViewId) {
        if self.transfer.handle_snapshot_failed(view) {
            self.ready = false;
            self.needs_resync = true;
            self.stats.snapshots_failed += 1;
        }
    }

    /// How far this process's own stream in `view` is *stable*: every member of `view` holds
    /// its entries up to the returned one (from their acks), so each delivers them unless it
    /// fails, and every member that moves on to the next view delivers them first (they are
    /// inside the cut). `None` once this process no longer keeps that view's streams.
    pub fn own_stable(&self, view: ViewId) -> Option<Seq> {
        let streams = [
            self.current.as_ref(),
            self.ending.as_ref().map(|e| &e.stream),
            self.retired.as_ref(),
        ];
        streams
            .into_iter()
            .flatten()
            .find(|s| s.id() == view)
            .map(|s| s.streams[s.my_rank.index()].stable)
    }

    /// The service multicasts `payload`.
    pub fn multicast(
        &mut self,
        now: Time,
        ordering: Option<Ordering>,
        payload: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) -> Result<(), MulticastError> {
        if self.current.is_none() && self.service_view.is_none() && !self.rejoining {
            return Err(MulticastError::NotMember);
        }
        if payload.len() > self.config.payload_bytes_max {
            return Err(MulticastError::TooLarge {
                size: payload.len(),
                max: self.config.payload_bytes_max,
            });
        }
        if self.outbox.len() >= self.config.outbox_messages {
            self.stats.refused_full += 1;
            return Err(MulticastError::Full(self.outbox.len()));
        }
        self.stats.multicasts += 1;
        self.outbox
            .push_back((ordering.unwrap_or(self.config.ordering), payload));
        self.after_progress(now, out);
        Ok(())
    }

    /// Moves outbox entries into the stream while credit allows, then delivers.
    fn after_progress(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let safe = self.config.delivery == Delivery::Safe;
        let config = self.config;
        let can_send = self.ready && self.ending.is_none();
        let may_deliver = self.may_deliver();
        let Some(view) = self.current.as_mut() else {
            return;
        };
        view.advance_clock(now);
        if can_send && view.limit.is_none() {
            view.take_from_outbox(&mut self.outbox, &config);
        }
        view.assign_order();
        if may_deliver {
            let before = out.len();
            view.deliver(safe, out);
            self.count_new(before, out);
        }
    }

    /// Sends what is waiting: new entries, the sequencer's order records, and an ack when
    /// one is due. The shell calls it after handling a burst of inputs, so entries batch.
    pub fn flush(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let config = self.config;
        let may_deliver = self.may_deliver();
        if let Some(ending) = self.ending.as_mut() {
            if ending.stream.ack_dirty {
                ending.stream.send_ack(
                    now,
                    config.window_messages,
                    config.delivery == Delivery::Safe,
                    out,
                );
            }
        }
        let Some(view) = self.current.as_mut() else {
            return;
        };
        view.advance_clock(now);
        if view.my_rank == Rank::SEQUENCER && view.order.has_unpublished() && view.limit.is_none() {
            let places = view.order.take_unpublished();
            let entry = Entry {
                seq: view.next_seq(),
                ordering: Ordering::Fifo,
                clock: Vec::new(),
                item: Item::Order(places),
            };
            view.insert(Rank::SEQUENCER, entry, u64::MAX / 4);
        }
        view.send_new(config.batch_bytes, out);
        // Acks drive credit: sent once a quarter window of entries or `ack_bytes` arrived,
        // and at once when the sequencer waits for a member to hold its multicasts.
        let urgent = view.received_since_ack >= (config.window_messages / 4).max(1)
            || view.bytes_since_ack >= config.ack_bytes
            || view.ack_soon;
        // With safe delivery, stability is what delivery waits for: acknowledge at once.
        // Otherwise acks only drive credit and garbage collection, and may wait.
        let due = view.ack_dirty
            && (config.delivery == Delivery::Safe
                || view
                    .last_ack
                    .is_none_or(|t| now.saturating_sub(t) >= config.ack_interval));
        if urgent || due {
            view.send_ack(
                now,
                config.window_messages,
                config.delivery == Delivery::Safe,
                out,
            );
        }
        // Order records are also deliverable entries of the sequencer's own stream.
        if may_deliver {
            let before = out.len();
            view.deliver(config.delivery == Delivery::Safe, out);
            self.count_new(before, out);
        }
    }

    fn count_new(&mut self, before: usize, out: &[MulticastOutput]) {
        self.stats.delivered += out[before..]
            .iter()
            .filter(|o| matches!(o, MulticastOutput::Deliver(_)))
            .count() as u64;
    }

    /// Periodic work: retransmission requests, acks of idle views, state transfer retries,
    /// finishing a view whose cut arrived.
    pub fn handle_tick(&mut self, now: Time, out: &mut Vec<MulticastOutput>) {
        let config = self.config;
        if let Some(ending) = self.ending.as_mut() {
            let cut = ending.cut.clone();
            ending.stream.request_missing(now, Some(&cut), &config, out);
        }
        self.try_finish_ending(now, out);
        if let Some(view) = self.current.as_mut() {
            let target = self
                .fetch_target
                .as_ref()
                .filter(|(base, _)| *base == view.id())
                .map(|(_, cut)| cut.as_slice());
            view.request_missing(now, target, &config, out);
            // A periodic ack even when nothing changed lets peers learn of lost tails.
            if view
                .last_ack
                .is_none_or(|t| now.saturating_sub(t) >= IDLE_ACK_INTERVAL.max(config.ack_interval))
            {
                view.ack_dirty = true;
            }
        }
        self.transfer.handle_tick(now, &config, out);
        self.flush(now, out);
    }

    /// A multicast-layer message from the member `from`.
    pub fn handle_message(
        &mut self,
        now: Time,
        from: Member,
        body: Body,
        out: &mut Vec<MulticastOutput>,
    ) {
        match body {
            Body::Data {
                view,
                origin,
                entries,
            } => self.handle_data(now, view, origin, entries, out),
            Body::Ack { view, received } => self.handle_ack(now, from, view, received, out),
            Body::Nak {
                view,
                origin,
                from: first,
                to,
            } => self.handle_nak(from, view, origin, first, to, out),
            Body::StateRequest {
                view,
                offset,
                since,
            } => {
                let config = self.config;
                self.transfer
                    .handle_state_request(from, view, offset, since, &config, out)
            }
            Body::StateChunk {
                view,
                offset,
                total,
                since,
                bytes,
            } => self.handle_state_chunk(now, view, offset, total, since, bytes, out),
            Body::Direct { payload }
                if self
                    .current
                    .as_ref()
                    .is_some_and(|v| v.view.contains(from.id)) =>
            {
                out.push(MulticastOutput::Direct {
                    from: from.id,
                    payload,
                });
            }
            _ => {}
        }
    }

    fn stream_for(&mut self, view: ViewId) -> Option<&mut ViewStream> {
        if let Some(current) = self.current.as_mut().filter(|v| v.id() == view) {
            return Some(current);
        }
        self.ending
            .as_mut()
            .map(|e| &mut e.stream)
            .filter(|v| v.id() == view)
    }

    fn handle_data(
        &mut self,
        now: Time,
        view: ViewId,
        origin: Rank,
        entries: Vec<Entry>,
        out: &mut Vec<MulticastOutput>,
    ) {
        let window = self.config.window_messages;
        let Some(stream) = self.stream_for(view) else {
            return;
        };
        stream.advance_clock(now);
        let Some(duplicates) = stream.receive_data(origin, entries, window) else {
            return;
        };
        self.stats.duplicates += duplicates;
        if self.ending.as_ref().is_some_and(|e| e.stream.id() == view) {
            self.try_finish_ending(now, out);
        } else {
            self.after_progress(now, out);
        }
    }

    fn handle_ack(
        &mut self,
        now: Time,
        from: Member,
        view: ViewId,
        received: Vec<Seq>,
        out: &mut Vec<MulticastOutput>,
    ) {
        let Some(stream) = self.stream_for(view) else {
            return;
        };
        stream.advance_clock(now);
        let Some(rank) = stream.view.rank_of(from.id).map(Rank::of) else {
            return;
        };
        if received.len() != stream.streams.len() {
            return;
        }
        stream.handle_ack(rank, &received);
        if self.current.as_ref().is_some_and(|v| v.id() == view) {
            self.after_progress(now, out);
        }
    }

    fn handle_nak(
        &mut self,
        from: Member,
        view: ViewId,
        origin: Rank,
        first: Seq,
        to: Seq,
        out: &mut Vec<MulticastOutput>,
    ) {
        let config = self.config;
        let stream = if self.retired.as_ref().is_some_and(|v| v.id() == view) {
            self.retired.as_mut()
        } else {
            self.stream_for(view)
        };
        let Some(stream) = stream else {
            return;
        };
        self.stats.retransmitted += stream.retransmit(from, origin, first, to, &config, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_state_chunk(
        &mut self,
        now: Time,
        view: ViewId,
        offset: u64,
        total: u64,
        since: Option<u64>,
        bytes: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) {
        let config = self.config;
        let Some(done) = self
            .transfer
            .handle_state_chunk(now, view, offset, total, since, bytes, &config, out)
        else {
            return;
        };
        self.ready = true;
        // The service state moves now: later transfers (after an exclusion) are whole.
        self.catch_up_from = None;
        self.stats.state_transfers += 1;
        if done.since.is_some() {
            self.stats.delta_transfers += 1;
        }
        out.push(MulticastOutput::Restore {
            view,
            state: done.state,
            since: done.since,
        });
        let view = self.current.as_ref().map(|v| v.view.clone());
        if let Some(view) = view {
            self.tell_view(&view, out);
        }
        self.after_progress(now, out);
    }

    /// Sends a point-to-point message to `to`, a member of the current view.
    pub fn send_direct(
        &self,
        to: ProcessId,
        payload: Bytes,
        out: &mut Vec<MulticastOutput>,
    ) -> Result<(), MulticastError> {
        let view = self.current.as_ref().ok_or(MulticastError::NotMember)?;
        let member = view
            .view
            .members
            .iter()
            .find(|m| m.id == to)
            .ok_or(MulticastError::NotMember)?;
        if payload.len() > self.config.payload_bytes_max {
            return Err(MulticastError::TooLarge {
                size: payload.len(),
                max: self.config.payload_bytes_max,
            });
        }
        out.push(MulticastOutput::Send {
            to: member.addr,
            body: Body::Direct { payload },
        });
        Ok(())
    }
}
