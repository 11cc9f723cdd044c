//! Checks the multicast properties over what the simulated services see.
//!
//! Every multicast carries a unique id (sender node, incarnation, counter). The checker is
//! told of each multicast when the service makes it, and of every service event at every
//! process, and checks after every step:
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
//!   of total-order deliveries.
//!
//! Liveness (every message multicast after the faults stop is delivered everywhere) is
//! checked by the simulation at the end, from the final states.

use super::checker::Violation;
use crate::id::{ProcessId, ViewId};
use crate::proto::multicast::Message;
use crate::wire::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};

/// A multicast as the sending service made it.
#[derive(Clone, Debug)]
struct Sent {
    sender: ProcessId,
    ordering: Ordering,
    /// Per sender, the highest counter the sending service had delivered in its view.
    deps: Vec<(ProcessId, u64)>,
    deps_view: Option<ViewId>,
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
    delivered: HashSet<u64>,
    last_counter: HashMap<ProcessId, u64>,
    total_in_view: Vec<u64>,
}

/// The multicast property checker.
#[derive(Debug, Default)]
pub struct DeliveryChecker {
    sent: HashMap<u64, Sent>,
    delivered_in: HashMap<u64, (ViewId, u64)>,
    processes: HashMap<ProcessId, ProcessLog>,
    total_order: HashMap<ViewId, Vec<u64>>,
    transitions: HashMap<(ViewId, ViewId), (u64, usize, ProcessId)>,
    states: HashMap<ViewId, (StateDigest, ProcessId)>,
    violations: Vec<Violation>,
    deliveries: u64,
    /// Check total order at every delivery, for every process (safe delivery).
    uniform_total_order: bool,
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
    pub fn new(uniform_total_order: bool) -> Self {
        DeliveryChecker {
            uniform_total_order,
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

    /// A service multicast `id`; `deps` is what it had delivered per sender in `view`.
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
            },
        );
    }

    /// `process` delivered `message` whose payload is `id`.
    pub fn on_deliver(&mut self, process: ProcessId, id: u64, message: &Message) {
        self.deliveries += 1;
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
        let check_total_now = message.ordering == Ordering::Total && self.uniform_total_order;
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

    /// `process` restored a state: it delivered nothing yet in the view it starts in.
    pub fn on_restore(&mut self, process: ProcessId) {
        let log = self.processes.entry(process).or_default();
        log.view = None;
        log.in_view.clear();
        log.total_in_view.clear();
    }

    /// `process` entered `view` holding `state`.
    pub fn on_view(&mut self, process: ProcessId, view: ViewId, state: StateDigest) {
        let log = self.processes.entry(process).or_default();
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

    /// Ids multicast by `sender` whose counters lie in `counters`.
    pub fn sent_by(&self, sender: ProcessId) -> BTreeMap<u64, Ordering> {
        self.sent
            .iter()
            .filter(|(_, s)| s.sender == sender)
            .map(|(id, s)| (*id, s.ordering))
            .collect()
    }
}
