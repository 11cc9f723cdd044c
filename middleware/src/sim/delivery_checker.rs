//! Checks the multicast properties over what the simulated services see.
//!
//! Every multicast carries a unique id (sender node, incarnation, counter). The checker is
//! told of each multicast when the service makes it (and whether the core accepted it), and
//! of every service event at every process, and checks after every step (each violation is
//! reported under the property's name, in italics here):
//!
//! - *no creation*: a delivered id was multicast, by the process named as its sender;
//! - *no duplication*: no process delivers an id twice, or one already in its restored state;
//! - *sending-view delivery*: a message is delivered in the view the process is in, and that
//!   is the view the message names as its sending view;
//! - *same-view delivery*: every process that delivers a message does so in the same view;
//! - *FIFO order*: within a view, a process delivers each sender's messages in the order sent
//!   with no gap (counters are consecutive);
//! - *causal order*: a causal message is delivered only after everything its sender had
//!   delivered in that view when it multicast it;
//! - *total order*: within a view, the sequences of total-order messages delivered by the
//!   processes that go on to the next view (and by those still in it at the end) are prefixes
//!   of one another. With safe delivery this holds for every process, also those excluded
//!   mid-view (uniform agreement); with agreed delivery an excluded process may have delivered
//!   messages past the cut in an order the survivors never used;
//! - *view synchrony*: processes that move from view `v` to the same next view delivered the
//!   same set of messages in `v`;
//! - *state agreement*: every process entering a view (through a state transfer or from the
//!   previous view) holds the same state: the same set of delivered ids, and the same chain
//!   of total-order deliveries;
//! - *empty restore*: once the group has had state (a delivery, or a non-empty state
//!   transferred), no process is handed an empty state (the group lost it).
//!
//! At the end of a run the simulation hands over what only it knows:
//!
//! - [`DeliveryChecker::finish`]: *total order* for the processes still in their view;
//! - [`DeliveryChecker::check_final_states`] (once the group settled): *durability*, every
//!   accepted multicast of a process that stayed in the group to the end was delivered by it
//!   and by every final member that stayed since, and is in the final state of every final
//!   member; with safe delivery, *uniform delivery*, every id delivered by anyone is in the
//!   final state of every final member;
//! - [`DeliveryChecker::check_states_lost`]: *states lost*, no view was entered without a
//!   member holding the state.
//!
//! Liveness (every message multicast after the faults stop is delivered everywhere) is
//! checked by the simulation at the end, from the final states.

use super::checker::Violation;
use crate::id::{ProcessId, ViewId};
use crate::proto::multicast::Message;
use crate::wire::{Ordering, Seq};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// A multicast as the sending service made it.
#[derive(Clone, Debug)]
struct Sent {
    sender: ProcessId,
    ordering: Ordering,
    /// Per sender, the highest counter the sending service had delivered in its view.
    deps: Vec<(ProcessId, u64)>,
    deps_view: Option<ViewId>,
    /// Set once the core accepted it.
    accepted: Option<Acceptance>,
}

/// When a multicast was accepted, and where its sender stood then.
#[derive(Clone, Copy, Debug)]
struct Acceptance {
    /// The checker's event counter at acceptance.
    at: u64,
    /// The sender's restores so far: another one means it left (or was excluded) and came
    /// back, and may have lost the message with its outbox or its unstable messages.
    sender_restores: u64,
    /// Whether the sender's service was in a view (not joining).
    sender_in_view: bool,
}

/// A service's state digest: the ids it delivered (or restored), and a hash chain of its
/// total-order deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateDigest {
    /// How many ids.
    pub count: u64,
    /// Order-independent hash of the ids.
    pub set_hash: u64,
    /// Hash chain over total-order deliveries, in order.
    pub total_chain: u64,
}

#[derive(Debug, Default)]
struct ProcessLog {
    view: Option<ViewId>,
    in_view: Vec<u64>,
    /// Every id this process delivered, over all its views.
    delivered: HashSet<u64>,
    /// The ids of the last state it restored.
    restored: HashSet<u64>,
    restores: u64,
    /// The event at which it entered its first view since its last restore (or ever): it has
    /// been a member without interruption since then, as far as the checker can tell.
    member_since: Option<u64>,
    last_counter: HashMap<ProcessId, u64>,
    total_in_view: Vec<u64>,
}

/// The multicast property checker.
#[derive(Debug, Default)]
pub struct DeliveryChecker {
    sent: HashMap<u64, Sent>,
    delivered_in: HashMap<u64, (ViewId, Seq)>,
    processes: HashMap<ProcessId, ProcessLog>,
    total_order: HashMap<ViewId, Vec<u64>>,
    transitions: HashMap<(ViewId, ViewId), (u64, usize, ProcessId)>,
    states: HashMap<ViewId, (StateDigest, ProcessId)>,
    violations: Vec<Violation>,
    deliveries: u64,
    /// The group uses safe delivery: total order is checked at every delivery, for every
    /// process, and everything delivered must survive to the end.
    safe: bool,
    /// Counts acceptances, views and restores, to order them.
    events: u64,
    /// Something was delivered, or a non-empty state transferred: the group has a state that
    /// must never be lost.
    had_state: bool,
}

/// The id's counter part.
pub fn counter_of(id: u64) -> u64 {
    id & 0xffff_ffff
}

/// Mixes an id into a 64-bit hash.
pub fn mix(id: u64) -> u64 {
    let mut x = id.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl DeliveryChecker {
    /// A checker; `uniform_total_order` when the group uses safe delivery.
    pub fn new(safe: bool) -> Self {
        DeliveryChecker {
            safe,
            ..Default::default()
        }
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Deliveries observed.
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }

    fn violate(&mut self, property: &'static str, detail: String) {
        if self.violations.len() < 20 {
            self.violations.push(Violation { property, detail });
        }
    }

    fn event(&mut self) -> u64 {
        self.events += 1;
        self.events
    }

    /// A service multicast `id`; `deps` is what it had delivered per sender in `view`. Call
    /// before handing it to the core (it may be delivered at once), and
    /// [`DeliveryChecker::on_accepted`] once the core accepted it.
    pub fn on_multicast(
        &mut self,
        id: u64,
        sender: ProcessId,
        ordering: Ordering,
        deps: Vec<(ProcessId, u64)>,
        view: Option<ViewId>,
    ) {
        self.sent.insert(
            id,
            Sent {
                sender,
                ordering,
                deps,
                deps_view: view,
                accepted: None,
            },
        );
    }

    /// The core accepted multicast `id` (made known by [`DeliveryChecker::on_multicast`]):
    /// if its sender stays in the group to the end, it must be delivered (see
    /// [`DeliveryChecker::check_final_states`]).
    pub fn on_accepted(&mut self, id: u64) {
        let at = self.event();
        let Some(sender) = self.sent.get(&id).map(|s| s.sender) else {
            return;
        };
        let (sender_restores, sender_in_view) = self
            .processes
            .get(&sender)
            .map_or((0, false), |log| (log.restores, log.member_since.is_some()));
        if let Some(sent) = self.sent.get_mut(&id) {
            sent.accepted = Some(Acceptance {
                at,
                sender_restores,
                sender_in_view,
            });
        }
    }

    /// `process` delivered `message` whose payload is `id`.
    pub fn on_deliver(&mut self, process: ProcessId, id: u64, message: &Message) {
        self.deliveries += 1;
        self.had_state = true;
        let Some(sent) = self.sent.get(&id).cloned() else {
            return self.violate(
                "no creation",
                format!("{process} delivered unknown id {id:#x}"),
            );
        };
        if sent.sender != message.sender || sent.ordering != message.ordering {
            self.violate(
                "no creation",
                format!(
                    "{process} delivered {id:#x} as from {} ({}), sent by {} ({})",
                    message.sender, message.ordering, sent.sender, sent.ordering
                ),
            );
        }
        let log = self.processes.entry(process).or_default();
        if log.restored.contains(&id) {
            return self.violate(
                "no duplication",
                format!("{process} delivered {id:#x}, already in the state it restored"),
            );
        }
        if !log.delivered.insert(id) {
            return self.violate(
                "no duplication",
                format!("{process} delivered {id:#x} twice"),
            );
        }
        if log.view != Some(message.view) {
            let view = log.view;
            return self.violate(
                "sending-view delivery",
                format!(
                    "{process} delivered {id:#x} of view {} while in {view:?}",
                    message.view
                ),
            );
        }
        log.in_view.push(id);
        // FIFO: consecutive counters per sender within a view.
        let counter = counter_of(id);
        let previous = log.last_counter.insert(message.sender, counter);
        let fifo_broken = previous.is_some_and(|p| counter != p + 1);
        // Causal: everything the sender had delivered in this view.
        let mut causal_missing = None;
        if sent.ordering == Ordering::Causal && sent.deps_view == Some(message.view) {
            for &(dep_sender, dep_counter) in &sent.deps {
                let have = log.last_counter.get(&dep_sender).copied().unwrap_or(0);
                if have < dep_counter {
                    causal_missing = Some((dep_sender, dep_counter, have));
                    break;
                }
            }
        }
        if message.ordering == Ordering::Total {
            log.total_in_view.push(id);
        }
        let check_total_now = message.ordering == Ordering::Total && self.safe;
        if let Some(p) = previous.filter(|_| fifo_broken) {
            self.violate(
                "FIFO order",
                format!(
                    "{process} delivered counter {counter} of {} after {p} in {}",
                    message.sender, message.view
                ),
            );
        }
        if let Some((dep_sender, dep_counter, have)) = causal_missing {
            self.violate(
                "causal order",
                format!(
                    "{process} delivered {id:#x} before {dep_sender}'s counter {dep_counter} (has {have})"
                ),
            );
        }
        match self.delivered_in.get(&id) {
            Some(&(view, seq)) if (view, seq) != (message.view, message.seq) => self.violate(
                "same-view delivery",
                format!(
                    "{id:#x} delivered in {view} (seq {seq}) and by {process} in {} (seq {})",
                    message.view, message.seq
                ),
            ),
            Some(_) => {}
            None => {
                self.delivered_in.insert(id, (message.view, message.seq));
            }
        }
        if check_total_now {
            let sequence = self.processes[&process].total_in_view.clone();
            self.check_total_order(process, message.view, &sequence);
        }
    }

    /// Checks `sequence`, the total-order deliveries of `process` in `view`, against the
    /// longest sequence seen for that view.
    fn check_total_order(&mut self, process: ProcessId, view: ViewId, sequence: &[u64]) {
        let order = self.total_order.entry(view).or_default();
        let common = order.len().min(sequence.len());
        if let Some(position) = (0..common).find(|&i| order[i] != sequence[i]) {
            let detail = format!(
                "{process} delivered {:#x} at position {position} of {view}, others {:#x}",
                sequence[position], order[position]
            );
            return self.violate("total order", detail);
        }
        if sequence.len() > order.len() {
            order.extend_from_slice(&sequence[order.len()..]);
        }
    }

    /// At the end of a run: processes still members of the view their service is in (per
    /// `membership`) are survivors of it so far; an excluded one may have gone past the cut.
    pub fn finish(&mut self, membership: &BTreeMap<ProcessId, ViewId>) {
        let open: Vec<(ProcessId, ViewId, Vec<u64>)> = self
            .processes
            .iter()
            .filter_map(|(p, log)| Some((*p, log.view?, log.total_in_view.clone())))
            .filter(|(p, view, _)| membership.get(p) == Some(view))
            .collect();
        for (process, view, sequence) in open {
            self.check_total_order(process, view, &sequence);
        }
    }

    /// `process` restored a state of `state_len` bytes holding the ids `restored`: it
    /// delivered nothing yet in the view it starts in, and must not deliver those ids. An
    /// empty state (the group lost its state) is a violation once the group had state.
    pub fn on_restore(
        &mut self,
        process: ProcessId,
        state_len: usize,
        restored: impl IntoIterator<Item = u64>,
    ) {
        self.event();
        if state_len == 0 && self.had_state {
            self.violate(
                "empty restore",
                format!("{process} was handed an empty state, the group had one"),
            );
        }
        self.had_state |= state_len > 0;
        let log = self.processes.entry(process).or_default();
        log.view = None;
        log.in_view.clear();
        log.total_in_view.clear();
        log.restored = restored.into_iter().collect();
        log.restores += 1;
        log.member_since = None;
    }

    /// `process` entered `view` holding `state`.
    pub fn on_view(&mut self, process: ProcessId, view: ViewId, state: StateDigest) {
        let at = self.event();
        let log = self.processes.entry(process).or_default();
        log.member_since.get_or_insert(at);
        let previous = log.view.replace(view);
        let in_previous = std::mem::take(&mut log.in_view);
        let total_previous = std::mem::take(&mut log.total_in_view);
        log.last_counter.clear();
        if let Some(previous) = previous {
            self.check_total_order(process, previous, &total_previous);
            let set_hash = in_previous.iter().fold(0u64, |h, id| h ^ mix(*id));
            let count = in_previous.len();
            match self.transitions.get(&(previous, view)) {
                Some(&(hash, n, other)) if (hash, n) != (set_hash, count) => self.violate(
                    "view synchrony",
                    format!(
                        "{process} delivered {count} messages in {previous} before {view}, {other} delivered {n} (or other ones)"
                    ),
                ),
                Some(_) => {}
                None => {
                    self.transitions
                        .insert((previous, view), (set_hash, count, process));
                }
            }
        }
        match self.states.get(&view) {
            Some(&(digest, other)) if digest != state => self.violate(
                "state agreement",
                format!("{process} entered {view} with {state:?}, {other} with {digest:?}"),
            ),
            Some(_) => {}
            None => {
                self.states.insert(view, (state, process));
            }
        }
    }

    /// Every process crashed at once (a total failure): what was delivered so far lived in
    /// the processes and is no longer expected in the final states (*uniform delivery*). What
    /// survives is what the services made durable, which only they can tell (a replicated
    /// service's clients judge it: every acknowledged write read back). The senders are gone,
    /// so *durability* no longer applies to their multicasts either.
    pub fn total_failure(&mut self) {
        self.delivered_in.clear();
    }

    /// Ids multicast by `sender` (accepted or not), with their orderings.
    pub fn sent_by(&self, sender: ProcessId) -> BTreeMap<u64, Ordering> {
        self.sent
            .iter()
            .filter(|(_, s)| s.sender == sender)
            .map(|(id, s)| (*id, s.ordering))
            .collect()
    }

    /// At the end of a run in which the group settled: `final_states` holds each final
    /// member's service state (the ids it delivered or restored).
    ///
    /// *Durability*: an accepted multicast whose sender was in a view when it was accepted
    /// and stayed (no restore since, and a final member) was delivered by every final member
    /// that has been a member since before it was accepted (the sender included), and is in
    /// the final state of every final member. *Uniform delivery* (safe delivery): every id
    /// delivered by any process, also one that crashed or was excluded, is in the final state
    /// of every final member.
    pub fn check_final_states(&mut self, final_states: &BTreeMap<ProcessId, BTreeSet<u64>>) {
        // A few of each, so that one property's many reports do not hide the other's.
        const SHOWN: usize = 5;
        let mut found = Vec::new();
        let mut ids: Vec<(&u64, &Sent)> = self.sent.iter().collect();
        ids.sort_by_key(|(id, _)| **id);
        for (id, sent) in ids {
            let Some(accepted) = sent.accepted else {
                continue;
            };
            let Some(sender) = self.processes.get(&sent.sender) else {
                continue;
            };
            let stayed = final_states.contains_key(&sent.sender)
                && accepted.sender_in_view
                && sender.restores == accepted.sender_restores;
            if !stayed {
                continue;
            }
            for (process, state) in final_states {
                if found.len() >= SHOWN {
                    break;
                }
                let log = self.processes.get(process);
                let member_before = log
                    .and_then(|l| l.member_since)
                    .is_some_and(|since| since < accepted.at);
                if member_before && !log.is_some_and(|l| l.delivered.contains(id)) {
                    found.push((
                        "durability",
                        format!(
                            "{process} never delivered {id:#x}, accepted from {} which stayed",
                            sent.sender
                        ),
                    ));
                } else if !state.contains(id) {
                    found.push((
                        "durability",
                        format!(
                            "{id:#x}, accepted from {} which stayed, is not in {process}'s final state",
                            sent.sender
                        ),
                    ));
                }
            }
        }
        if self.safe {
            let mut delivered: Vec<u64> = self.delivered_in.keys().copied().collect();
            delivered.sort_unstable();
            let durability = found.len();
            for id in delivered {
                for (process, state) in final_states {
                    if found.len() >= durability + SHOWN {
                        break;
                    }
                    if !state.contains(&id) {
                        found.push((
                            "uniform delivery",
                            format!(
                                "{id:#x} was safe-delivered, but is not in {process}'s final state"
                            ),
                        ));
                    }
                }
            }
        }
        for (property, detail) in found {
            self.violate(property, detail);
        }
    }

    /// At the end of a run: `states_lost` views were entered by some process with no member
    /// holding the state (the multicast cores' `states_lost` counters); any is a violation.
    pub fn check_states_lost(&mut self, states_lost: u64) {
        if states_lost > 0 {
            self.violate(
                "states lost",
                format!("{states_lost} views were entered with the group's state lost"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each property is shown to fire on a small history that breaks it alone, and a history
    //! that breaks none reports nothing.

    use super::*;
    use crate::id::{Incarnation, NodeId};
    use bytes::Bytes;

    const FIFO: Ordering = Ordering::Fifo;
    const CAUSAL: Ordering = Ordering::Causal;
    const TOTAL: Ordering = Ordering::Total;

    fn p(n: u64) -> ProcessId {
        ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        }
    }

    fn v(epoch: u64) -> ViewId {
        ViewId {
            epoch,
            coordinator: p(1),
        }
    }

    /// The id of `sender`'s `counter`th multicast, as the simulated services make them.
    fn id(sender: u64, counter: u64) -> u64 {
        (sender << 48) | (1 << 32) | counter
    }

    /// A service state holding `ids`, with `total` its total-order deliveries in order.
    fn state(ids: &[u64], total: &[u64]) -> StateDigest {
        StateDigest {
            count: ids.len() as u64,
            set_hash: ids.iter().fold(0, |h, id| h ^ mix(*id)),
            total_chain: total.iter().fold(0, |c, id| mix(c ^ id)),
        }
    }

    fn empty() -> StateDigest {
        state(&[], &[])
    }

    /// A multicast with no dependencies, made in view 1 and accepted.
    fn send(c: &mut DeliveryChecker, sender: u64, counter: u64, ordering: Ordering) -> u64 {
        send_with(c, sender, counter, ordering, Vec::new())
    }

    fn send_with(
        c: &mut DeliveryChecker,
        sender: u64,
        counter: u64,
        ordering: Ordering,
        deps: Vec<(ProcessId, u64)>,
    ) -> u64 {
        let id = id(sender, counter);
        c.on_multicast(id, p(sender), ordering, deps, Some(v(1)));
        c.on_accepted(id);
        id
    }

    /// `process` delivers `id` as message `seq` of view `view`.
    fn deliver(c: &mut DeliveryChecker, process: u64, id: u64, view: ViewId, seq: u64) {
        let sent = &c.sent[&id];
        let message = Message {
            sender: sent.sender,
            view,
            seq: crate::wire::Seq(seq),
            ordering: sent.ordering,
            payload: Bytes::new(),
        };
        c.on_deliver(p(process), id, &message);
    }

    fn properties(c: &DeliveryChecker) -> Vec<&'static str> {
        c.violations().iter().map(|v| v.property).collect()
    }

    /// Processes 1 to 3 found view 1 (empty state).
    fn three_in_view_1(safe: bool) -> DeliveryChecker {
        let mut c = DeliveryChecker::new(safe);
        for n in 1..=3 {
            c.on_view(p(n), v(1), empty());
        }
        c
    }

    fn finals(states: &[(u64, &[u64])]) -> BTreeMap<ProcessId, BTreeSet<u64>> {
        states
            .iter()
            .map(|(n, ids)| (p(*n), ids.iter().copied().collect()))
            .collect()
    }

    /// Everything at once, correctly: FIFO, causal and total multicasts in view 1 delivered
    /// alike by 1 to 3; all three deliver one more in view 2, then 3 crashes; 4 joins view 3
    /// with a transferred state and delivers only what is new; the end checks.
    fn good_history(safe: bool) -> DeliveryChecker {
        let mut c = three_in_view_1(safe);
        let a1 = send(&mut c, 1, 1, FIFO);
        let a2 = send(&mut c, 1, 2, TOTAL);
        let b1 = send(&mut c, 2, 1, TOTAL);
        for n in 1..=3 {
            deliver(&mut c, n, a1, v(1), 1);
        }
        let c1 = send_with(&mut c, 3, 1, CAUSAL, vec![(p(1), 1)]);
        // The total order is a2, b1 everywhere; c1 after a1 everywhere.
        for n in 1..=3 {
            deliver(&mut c, n, a2, v(1), 2);
            deliver(&mut c, n, b1, v(1), 1);
            deliver(&mut c, n, c1, v(1), 1);
        }
        let in_1 = [a1, a2, b1, c1];
        for n in 1..=3 {
            c.on_view(p(n), v(2), state(&in_1, &[a2, b1]));
        }
        let a3 = send(&mut c, 1, 3, FIFO);
        for n in 1..=3 {
            deliver(&mut c, n, a3, v(2), 3);
        }
        let in_2 = [a1, a2, b1, c1, a3];
        for n in 1..=2 {
            c.on_view(p(n), v(3), state(&in_2, &[a2, b1]));
        }
        // 4 joins view 3 with the state; a3 is in it, and it delivers only what is new.
        c.on_restore(p(4), 48, in_2);
        c.on_view(p(4), v(3), state(&in_2, &[a2, b1]));
        let b2 = send(&mut c, 2, 2, TOTAL);
        for n in [1, 2, 4] {
            deliver(&mut c, n, b2, v(3), 1);
        }
        let all = [a1, a2, b1, c1, a3, b2];
        c.finish(&[(p(1), v(3)), (p(2), v(3)), (p(4), v(3))].into());
        c.check_final_states(&finals(&[(1, &all), (2, &all), (4, &all)]));
        c.check_states_lost(0);
        c
    }

    #[test]
    fn a_good_history_reports_nothing() {
        for safe in [false, true] {
            let c = good_history(safe);
            assert_eq!(properties(&c), Vec::<&str>::new(), "safe: {safe}");
            assert_eq!(c.deliveries(), 18);
        }
    }

    #[test]
    fn no_creation_is_checked() {
        let mut c = three_in_view_1(false);
        let message = Message {
            sender: p(2),
            view: v(1),
            seq: crate::wire::Seq(1),
            ordering: FIFO,
            payload: Bytes::new(),
        };
        c.on_deliver(p(1), id(2, 1), &message);
        assert_eq!(properties(&c), vec!["no creation"], "never multicast");
        // Multicast by 2, delivered as from 3.
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 2, 1, FIFO);
        let message = Message {
            sender: p(3),
            ..message
        };
        c.on_deliver(p(1), a1, &message);
        assert_eq!(properties(&c), vec!["no creation"], "another sender");
    }

    #[test]
    fn no_duplication_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        deliver(&mut c, 1, a1, v(1), 1);
        assert_eq!(properties(&c), vec!["no duplication"], "twice");
        // 4 joins with a1 in its state, then delivers it (the checker used to miss this:
        // it was not told what a restored state held).
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        c.on_view(p(1), v(2), state(&[a1], &[]));
        c.on_restore(p(4), 16, [a1]);
        c.on_view(p(4), v(2), state(&[a1], &[]));
        let message = Message {
            sender: p(1),
            view: v(2),
            seq: crate::wire::Seq(1),
            ordering: FIFO,
            payload: Bytes::new(),
        };
        c.on_deliver(p(4), a1, &message);
        assert_eq!(properties(&c), vec!["no duplication"], "already restored");
    }

    #[test]
    fn sending_view_delivery_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        c.on_view(p(2), v(2), empty());
        deliver(&mut c, 2, a1, v(1), 1);
        assert_eq!(
            properties(&c),
            vec!["sending-view delivery"],
            "in a later view"
        );
        let mut c = DeliveryChecker::new(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 2, a1, v(1), 1);
        assert_eq!(
            properties(&c),
            vec!["sending-view delivery"],
            "before any view"
        );
    }

    #[test]
    fn same_view_delivery_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        // 4 is in view 2 and gets a1 as a message of view 2.
        c.on_view(p(4), v(2), empty());
        deliver(&mut c, 4, a1, v(2), 1);
        assert_eq!(properties(&c), vec!["same-view delivery"], "another view");
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        deliver(&mut c, 2, a1, v(1), 2);
        assert_eq!(
            properties(&c),
            vec!["same-view delivery"],
            "another position"
        );
    }

    #[test]
    fn fifo_order_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        send(&mut c, 1, 2, FIFO);
        let a3 = send(&mut c, 1, 3, FIFO);
        deliver(&mut c, 2, a1, v(1), 1);
        deliver(&mut c, 2, a3, v(1), 3);
        assert_eq!(properties(&c), vec!["FIFO order"], "a gap");
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        let a2 = send(&mut c, 1, 2, FIFO);
        deliver(&mut c, 2, a2, v(1), 2);
        deliver(&mut c, 2, a1, v(1), 1);
        assert_eq!(properties(&c), vec!["FIFO order"], "reordered");
    }

    #[test]
    fn causal_order_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 2, a1, v(1), 1);
        // 2 multicasts b1 having delivered a1; 3 delivers b1 first.
        let b1 = send_with(&mut c, 2, 1, CAUSAL, vec![(p(1), 1)]);
        deliver(&mut c, 3, b1, v(1), 1);
        deliver(&mut c, 3, a1, v(1), 1);
        assert_eq!(properties(&c), vec!["causal order"]);
    }

    /// Agreed delivery: 1 delivers a1 then b1 (total order), 2 delivers b1 then a1.
    fn total_orders_differ() -> DeliveryChecker {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, TOTAL);
        let b1 = send(&mut c, 2, 1, TOTAL);
        deliver(&mut c, 1, a1, v(1), 1);
        deliver(&mut c, 1, b1, v(1), 1);
        deliver(&mut c, 2, b1, v(1), 1);
        deliver(&mut c, 2, a1, v(1), 1);
        c
    }

    #[test]
    fn total_order_is_checked() {
        // Both go on to view 2 (the same state given, so that only the order differs).
        let mut c = total_orders_differ();
        let same = state(&[id(1, 1), id(2, 1)], &[]);
        c.on_view(p(1), v(2), same);
        assert_eq!(properties(&c), Vec::<&str>::new());
        c.on_view(p(2), v(2), same);
        assert_eq!(properties(&c), vec!["total order"], "moving on together");
        // Both still in view 1 at the end.
        let mut c = total_orders_differ();
        c.finish(&[(p(1), v(1)), (p(2), v(1))].into());
        assert_eq!(properties(&c), vec!["total order"], "at the end");
    }

    #[test]
    fn uniform_total_order_is_checked_with_safe_delivery() {
        // 1 delivers a1 then b1; 2 delivers b1 first, then is excluded (it rejoins later with
        // a state), and 1 goes on.
        let excluded = |safe| {
            let mut c = three_in_view_1(safe);
            let a1 = send(&mut c, 1, 1, TOTAL);
            let b1 = send(&mut c, 2, 1, TOTAL);
            deliver(&mut c, 1, a1, v(1), 1);
            deliver(&mut c, 1, b1, v(1), 1);
            deliver(&mut c, 2, b1, v(1), 1);
            c.on_restore(p(2), 8, []);
            c.on_view(
                p(1),
                v(2),
                state(&[id(1, 1), id(2, 1)], &[id(1, 1), id(2, 1)]),
            );
            c.finish(&[(p(1), v(2))].into());
            properties(&c)
        };
        assert_eq!(excluded(false), Vec::<&str>::new(), "agreed: past the cut");
        assert_eq!(excluded(true), vec!["total order"], "safe: uniform");
    }

    #[test]
    fn view_synchrony_is_checked() {
        let mut c = three_in_view_1(false);
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        // 2 moves on to view 2 with 1 without a1 (the same state given, to test only this).
        c.on_view(p(1), v(2), empty());
        c.on_view(p(2), v(2), empty());
        assert_eq!(properties(&c), vec!["view synchrony"]);
    }

    #[test]
    fn state_agreement_is_checked() {
        let mut c = three_in_view_1(false);
        c.on_restore(p(4), 16, [id(9, 1)]);
        c.on_view(p(4), v(1), state(&[id(9, 1)], &[]));
        assert_eq!(properties(&c), vec!["state agreement"]);
    }

    #[test]
    fn durability_is_checked() {
        // 1 multicasts a1 and stays to the end, with 2 (a member since before) and 4 (which
        // joined after): each one's failure to hold a1 is reported.
        let history = |delivered_by: &[u64], state_4: &[u64]| {
            let mut c = three_in_view_1(false);
            let a1 = send(&mut c, 1, 1, FIFO);
            for n in delivered_by {
                deliver(&mut c, *n, a1, v(1), 1);
            }
            c.on_restore(p(4), 8, state_4.iter().copied());
            c.on_view(p(4), v(1), empty());
            let holders: Vec<u64> = delivered_by.to_vec();
            let state = |n: u64| {
                if n == 4 {
                    state_4.to_vec()
                } else if holders.contains(&n) {
                    vec![a1]
                } else {
                    Vec::new()
                }
            };
            let (s1, s2, s4) = (state(1), state(2), state(4));
            c.check_final_states(&finals(&[(1, &s1), (2, &s2), (4, &s4)]));
            c.violations().to_vec()
        };
        let a1 = id(1, 1);
        assert_eq!(history(&[1, 2], &[a1]), Vec::new());
        for (delivered_by, state_4, shows) in [
            (&[2][..], &[a1][..], format!("{} never delivered", p(1))),
            (&[1], &[a1], format!("{} never delivered", p(2))),
            (&[1, 2], &[], format!("not in {}'s final state", p(4))),
        ] {
            let violations = history(delivered_by, state_4);
            assert_eq!(violations.len(), 1, "{shows}: {violations:?}");
            assert_eq!(violations[0].property, "durability");
            assert!(violations[0].detail.contains(&shows), "{violations:?}");
        }
    }

    #[test]
    fn durability_spares_what_may_be_lost() {
        let mut c = three_in_view_1(false);
        // Refused by the core: never accepted.
        c.on_multicast(id(1, 1), p(1), FIFO, Vec::new(), Some(v(1)));
        // Accepted from 2, which is then excluded and rejoins (a restore).
        send(&mut c, 2, 1, FIFO);
        c.on_restore(p(2), 8, []);
        c.on_view(p(2), v(2), empty());
        // Accepted from 3, which does not stay to the end.
        send(&mut c, 3, 1, FIFO);
        // Accepted from 5 while it was joining (before its first view).
        let e1 = id(5, 1);
        c.on_multicast(e1, p(5), FIFO, Vec::new(), None);
        c.on_accepted(e1);
        c.on_restore(p(5), 8, []);
        c.on_view(p(5), v(2), empty());
        c.on_view(p(1), v(2), empty());
        c.check_final_states(&finals(&[(1, &[]), (2, &[]), (5, &[])]));
        assert_eq!(properties(&c), Vec::<&str>::new());
    }

    #[test]
    fn uniform_delivery_is_checked_with_safe_delivery() {
        // 3 delivers its own a3 and crashes; 1 and 2 end without it.
        let lost = |safe| {
            let mut c = three_in_view_1(safe);
            let a3 = send(&mut c, 3, 1, FIFO);
            deliver(&mut c, 3, a3, v(1), 1);
            c.check_final_states(&finals(&[(1, &[]), (2, &[])]));
            properties(&c)
        };
        assert_eq!(lost(false), Vec::<&str>::new(), "agreed");
        assert_eq!(lost(true), vec!["uniform delivery"; 2], "safe");
    }

    #[test]
    fn an_empty_restore_is_checked_once_the_group_had_state() {
        // No state yet: a joiner handed an empty one is fine.
        let mut c = three_in_view_1(false);
        c.on_restore(p(4), 0, []);
        assert_eq!(properties(&c), Vec::<&str>::new(), "nothing to lose");
        // After a delivery.
        let a1 = send(&mut c, 1, 1, FIFO);
        deliver(&mut c, 1, a1, v(1), 1);
        c.on_restore(p(5), 0, []);
        assert_eq!(properties(&c), vec!["empty restore"], "after a delivery");
        // After a state was transferred (even one without ids).
        let mut c = three_in_view_1(false);
        c.on_restore(p(4), 8, []);
        c.on_restore(p(5), 0, []);
        assert_eq!(properties(&c), vec!["empty restore"], "after a transfer");
    }

    #[test]
    fn lost_states_are_checked() {
        let mut c = DeliveryChecker::new(false);
        c.check_states_lost(0);
        assert_eq!(properties(&c), Vec::<&str>::new());
        c.check_states_lost(2);
        assert_eq!(properties(&c), vec!["states lost"]);
    }
}
