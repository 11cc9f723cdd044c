//! The services the simulator runs. A service core is anything that implements
//! [`SimulatedService`]: the simulator hands it the [`ServiceEvent`]s its node's service edge
//! produces (the same edge the node actor runs), takes its snapshots for joiners, and
//! multicasts its requests, so a replication scheme's core runs under the seeded faults and
//! the checkers without an actor around it.
//!
//! The checkers follow the simulator's message ids: a payload starts with its id (8 bytes,
//! little-endian), and a service tells which ids its state holds and digests its state, so
//! view synchrony, state transfer and final agreement are checked for any service.
//!
//! A service may also *act* ([`SimulatedService::act`], [`SimulatedService::tick`]): multicast
//! payloads of its own, send members point-to-point messages and answer clients
//! ([`ServiceAction`]), which the simulator carries out through the node core and the edge
//! as the service actor's shell does. Such a service is *stamped*
//! ([`SimulatedService::stamped`]): the simulator gives each of its multicasts an id, puts it
//! in front of the payload and takes it off again before the service sees the delivery, and
//! keeps the ids each process holds itself (carried to joiners in front of the service's
//! snapshot), so the checkers work on payloads they know nothing of. A service whose process
//! keeps something across a crash hands it over as a [`Disk`]
//! ([`SimulatedService::crash`]) and gets it back at the restart ([`ServiceStart`]).
//!
//! - [`LogService`]: the log-like service every run uses by default: its state is the set of
//!   ids it delivered (or restored) and a hash chain of its total-order deliveries.
//! - [`CounterService`]: a second, small service (a replicated sum), to show a service core
//!   plugged in by [`SimConfig::service`](super::SimConfig::service).

use super::delivery_checker::{self, mix, StateDigest};
use super::Simulation;
use crate::id::{ProcessId, ViewId};
use crate::proto::service_edge::{ReplyTo, ServiceEvent};
use crate::proto::Time;
use crate::view::Member;
use crate::wire::{Ordering, Outcome};
use bytes::Bytes;
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// What a process keeps across a crash (its data directory), opaque to the simulator: the
/// service hands it over when its process crashes and the factory gets it back when the node
/// restarts.
pub type Disk = Box<dyn Any>;

/// What a service asks its node to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAction {
    /// Multicast `payload` to the group, with the group's ordering (a stamped service's
    /// multicasts get their ids from the simulator). The node refusing it stops the process
    /// (fail-stop), as the replica shell does.
    Multicast(Bytes),
    /// Send `payload` point-to-point to the member `to` (`NodeCore::handle_send_direct`).
    /// Advisory: one that cannot be sent is dropped.
    Send {
        /// The member.
        to: ProcessId,
        /// The message.
        payload: Bytes,
    },
    /// Answer a client's request (`NodeCore::response`).
    Reply {
        /// Where the answer goes.
        to: ReplyTo,
        /// The answer.
        outcome: Outcome,
    },
}

/// A service core under simulation: what a service actor does with its group's events,
/// without the actor.
pub trait SimulatedService: fmt::Debug {
    /// The payload of the simulator's multicast `id`: `id`'s 8 bytes (little-endian) first,
    /// then whatever the service adds (by default nothing). The simulator never asks a
    /// stamped service.
    fn request(&mut self, id: u64) -> Bytes {
        Bytes::copy_from_slice(&id.to_le_bytes())
    }
    /// Handles one event of its group, in agreed order. An error says which of the service's
    /// own invariants an event broke (a message applied twice, a state it cannot restore);
    /// the simulator reports it as a violation.
    fn handle(&mut self, event: &ServiceEvent) -> Result<(), ServiceFault>;
    /// Handles one event and returns what it asks the node to do, in order. The simulator
    /// calls this one; by default it is [`SimulatedService::handle`], asking nothing.
    fn act(&mut self, event: &ServiceEvent) -> Result<Vec<ServiceAction>, ServiceFault> {
        self.handle(event).map(|()| Vec::new())
    }
    /// Called at each of its node's ticks with the process's clock (the replica shell's
    /// periodic tick: group commit, timeouts). By default nothing.
    fn tick(&mut self, now: Time) -> Result<Vec<ServiceAction>, ServiceFault> {
        let _ = now;
        Ok(Vec::new())
    }
    /// Its state, for joiners (taken after every event handed to it before).
    fn snapshot(&self) -> Bytes;
    /// Its state for the joiners of `view` (the simulator calls this one when a joiner
    /// needs it): by default [`SimulatedService::snapshot`]. A service that answers deltas
    /// remembers where the snapshot of `view` was taken.
    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        let _ = view;
        self.snapshot()
    }
    /// The position of the durable state it started from (recovered from its disk), for a
    /// service whose state survives a restart: its process then asks a state transfer for a
    /// delta from there. `None` by default (and from 0: an empty state).
    fn position(&self) -> Option<u64> {
        None
    }
    /// The updates after `since` up to its snapshot for `view`
    /// ([`SimulatedService::snapshot_for`]), for a joiner at `since`; `None` (the default)
    /// when it cannot, and the joiner gets the whole snapshot. A joiner restores it through a
    /// `Restore` with `since: Some(since)`.
    fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        let _ = (view, since);
        None
    }
    /// The simulator's message ids its state holds (delivered or restored). Not asked of a
    /// stamped service (the simulator keeps those itself); empty by default.
    fn ids(&self) -> &BTreeSet<u64> {
        static NONE: BTreeSet<u64> = BTreeSet::new();
        &NONE
    }
    /// What the checkers compare between members entering the same view and at the end. For
    /// a stamped service the simulator adds the ids it keeps for it.
    fn digest(&self) -> StateDigest;
    /// Whether the simulator stamps this service's multicasts with ids and keeps its ids
    /// (see the [module documentation](self)): a service that makes its own payloads. Such a
    /// service sees payloads without the ids, and snapshots without the simulator's part.
    fn stamped(&self) -> bool {
        false
    }
    /// Whether its node hands it client requests while the group is blocked or the process
    /// rejoins (`NodeCore::set_available_while_blocked`), as the replica shell registers a
    /// gossip replica. `false` by default.
    fn available_while_blocked(&self) -> bool {
        false
    }
    /// Its process crashes: what stays on the node's disk for the next start (by default
    /// nothing).
    fn crash(&mut self) -> Option<Disk> {
        None
    }
    /// How far the durable state it recovered at this start goes (its own measure, larger is
    /// more advanced: a replica's last log index), if its state is durable. Asked once, right
    /// after the start. With it, a node whose data directory records a last view claims it
    /// for total-failure recovery (`NodeCore::set_recovery`), as the replica shell registers a
    /// durable service; `None` (the default: no durable state) never re-forms a group.
    fn durable_position(&self) -> Option<u64> {
        None
    }
}

/// What a factory is told when it makes the service of a process that starts.
#[derive(Debug)]
pub struct ServiceStart {
    /// The process (its node and incarnation) and its address.
    pub me: Member,
    /// Starts of the node so far, this one included (0 for the placeholder made before the
    /// node first starts).
    pub start: u64,
    /// What the node's last process left on its disk ([`SimulatedService::crash`]).
    pub disk: Option<Disk>,
    /// That crash was a power loss: what the disk had not synced is gone (a seeded choice,
    /// [`SimConfig::power_loss_probability`](super::SimConfig::power_loss_probability); never
    /// after a fail-stop, where the machine stays up).
    pub power_loss: bool,
}

/// How an event broke a service's invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFault {
    /// Message `id` was delivered, and the state already held it.
    Duplicate(u64),
    /// A restored state could not be used; what it was.
    BadState(String),
    /// The service cannot go on safely (its storage failed): the simulator stops its process
    /// (fail-stop) and restarts the node a while later, as an operator would.
    Failed(String),
}

/// Makes the service of each process (at every start), with a name for traces and
/// comparisons.
#[derive(Clone)]
pub struct ServiceFactory {
    /// The service's name.
    pub name: &'static str,
    make: Make,
}

/// How a factory makes a service.
#[derive(Clone)]
enum Make {
    /// A fresh service at every start.
    Fresh(fn() -> Box<dyn SimulatedService>),
    /// From what the process starts with (its identity, its node's disk).
    Start(Arc<dyn Fn(ServiceStart) -> Box<dyn SimulatedService> + Send + Sync>),
}

impl ServiceFactory {
    /// The log-like service ([`LogService`]), the default.
    pub const LOG: ServiceFactory = ServiceFactory::fresh("log", LogService::boxed);
    /// The replicated sum ([`CounterService`]).
    pub const COUNTER: ServiceFactory = ServiceFactory::fresh("counter", CounterService::boxed);

    /// A factory making a fresh service with `make` at every start.
    pub const fn fresh(name: &'static str, make: fn() -> Box<dyn SimulatedService>) -> Self {
        ServiceFactory {
            name,
            make: Make::Fresh(make),
        }
    }

    /// A factory making each process's service from its [`ServiceStart`] (a replica that
    /// recovers from its node's disk).
    pub fn with_start(
        name: &'static str,
        make: impl Fn(ServiceStart) -> Box<dyn SimulatedService> + Send + Sync + 'static,
    ) -> Self {
        ServiceFactory {
            name,
            make: Make::Start(Arc::new(make)),
        }
    }

    /// The service of a process starting as `start` says.
    pub fn make(&self, start: ServiceStart) -> Box<dyn SimulatedService> {
        match &self.make {
            Make::Fresh(make) => make(),
            Make::Start(make) => make(start),
        }
    }
}

impl fmt::Debug for ServiceFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Factories compare by name: two with one name make the same service.
impl PartialEq for ServiceFactory {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// The id a simulator payload starts with (0 if it has none).
pub fn id_of(payload: &[u8]) -> u64 {
    match payload.get(..8) {
        Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
        None => 0,
    }
}

/// Why a state cannot be restored: empty (the group's state replaced by nothing) or not
/// whole words.
fn bad_state(state: &[u8]) -> ServiceFault {
    ServiceFault::BadState(if state.is_empty() {
        "an empty state (the group's state replaced by nothing)".to_string()
    } else {
        format!("a malformed state of {} bytes", state.len())
    })
}

/// Little-endian words of a state made of whole words, or `None`.
fn words(state: &[u8]) -> Option<impl Iterator<Item = u64> + '_> {
    (!state.is_empty() && state.len() % 8 == 0).then(|| {
        state
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
    })
}

/// The log-like service: the ids it delivered (or restored) and a hash chain of its
/// total-order deliveries, streamed in chunks to joiners.
#[derive(Debug, Default)]
pub struct LogService {
    delivered: BTreeSet<u64>,
    total_chain: u64,
}

impl LogService {
    /// A fresh service, for a [`ServiceFactory`].
    pub fn boxed() -> Box<dyn SimulatedService> {
        Box::<LogService>::default()
    }
}

impl SimulatedService for LogService {
    fn request(&mut self, id: u64) -> Bytes {
        Bytes::copy_from_slice(&id.to_le_bytes())
    }

    fn handle(&mut self, event: &ServiceEvent) -> Result<(), ServiceFault> {
        match event {
            ServiceEvent::Deliver { message, .. } => {
                let id = id_of(&message.payload);
                let fresh = self.delivered.insert(id);
                if message.ordering == Ordering::Total {
                    self.total_chain = mix(self.total_chain ^ id);
                }
                if !fresh {
                    return Err(ServiceFault::Duplicate(id));
                }
            }
            // Every snapshot holds at least the chain, so an empty one means the group's
            // state was replaced by nothing.
            ServiceEvent::Restore { state, .. } => {
                let mut words = words(state).ok_or_else(|| bad_state(state))?;
                self.total_chain = words.next().expect("not empty");
                self.delivered = words.collect();
            }
            // The simulator's services have no clients.
            ServiceEvent::Block { .. }
            | ServiceEvent::ViewChange { .. }
            | ServiceEvent::Direct { .. }
            | ServiceEvent::Request(_) => {}
        }
        Ok(())
    }

    fn snapshot(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(8 * (self.delivered.len() + 1));
        bytes.extend_from_slice(&self.total_chain.to_le_bytes());
        for id in &self.delivered {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        Bytes::from(bytes)
    }

    fn ids(&self) -> &BTreeSet<u64> {
        &self.delivered
    }

    fn digest(&self) -> StateDigest {
        StateDigest {
            count: self.delivered.len() as u64,
            set_hash: self.delivered.iter().fold(0, |h, id| h ^ mix(*id)),
            total_chain: self.total_chain,
        }
    }
}

/// A replicated sum: each request adds an amount derived from its id (carried after the id
/// in the payload, so the service reads its own bytes), whatever the ordering. Its digest's
/// chain is the sum, which members agree on when they applied the same requests.
#[derive(Debug, Default)]
pub struct CounterService {
    applied: BTreeSet<u64>,
    sum: u64,
}

impl CounterService {
    /// A fresh service, for a [`ServiceFactory`].
    pub fn boxed() -> Box<dyn SimulatedService> {
        Box::<CounterService>::default()
    }

    /// The amount request `id` adds.
    pub fn amount(id: u64) -> u64 {
        mix(id) % 1000
    }
}

impl SimulatedService for CounterService {
    fn request(&mut self, id: u64) -> Bytes {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes.extend_from_slice(&Self::amount(id).to_le_bytes());
        Bytes::from(bytes)
    }

    fn handle(&mut self, event: &ServiceEvent) -> Result<(), ServiceFault> {
        match event {
            ServiceEvent::Deliver { message, .. } => {
                let id = id_of(&message.payload);
                let amount = message
                    .payload
                    .get(8..16)
                    .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
                if !self.applied.insert(id) {
                    return Err(ServiceFault::Duplicate(id));
                }
                self.sum = self.sum.wrapping_add(amount);
            }
            ServiceEvent::Restore { state, .. } => {
                let mut words = words(state).ok_or_else(|| bad_state(state))?;
                self.sum = words.next().expect("not empty");
                self.applied = words.collect();
            }
            // The simulator's services have no clients.
            ServiceEvent::Block { .. }
            | ServiceEvent::ViewChange { .. }
            | ServiceEvent::Direct { .. }
            | ServiceEvent::Request(_) => {}
        }
        Ok(())
    }

    fn snapshot(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(8 * (self.applied.len() + 1));
        bytes.extend_from_slice(&self.sum.to_le_bytes());
        for id in &self.applied {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        Bytes::from(bytes)
    }

    fn ids(&self) -> &BTreeSet<u64> {
        &self.applied
    }

    fn digest(&self) -> StateDigest {
        StateDigest {
            count: self.applied.len() as u64,
            set_hash: self.applied.iter().fold(0, |h, id| h ^ mix(*id)),
            total_chain: self.sum,
        }
    }
}

/// What the simulator keeps of a process's service, apart from the service itself: the
/// view it is in, what it delivered per sender there (a multicast's causal dependencies) and
/// how many requests it made.
#[derive(Debug, Default)]
pub(super) struct ServiceRecord {
    pub(super) view: Option<ViewId>,
    /// Per sender, the highest counter delivered in the current view.
    pub(super) last_counter: BTreeMap<ProcessId, u64>,
    pub(super) counter: u64,
    /// A stamped service's ids, kept by the simulator.
    pub(super) ledger: Ledger,
    /// The ledger as it was when the service took its snapshot for the joiners of a view:
    /// a delta for that view carries it (the ids of the state the delta ends at).
    pub(super) snapshot_ledger: Option<(ViewId, Ledger)>,
    /// What the service asked for and the simulator has yet to carry out, in order.
    pub(super) actions: VecDeque<ServiceAction>,
    /// The simulator is carrying out the actions (those asked meanwhile join the queue).
    pub(super) acting: bool,
    /// The service stopped (fail-stop): it handles nothing more, and its process is about to
    /// stop.
    pub(super) stopped: Option<String>,
}

/// The ids a stamped service's process holds (delivered or restored) and the hash chain of
/// its total-order deliveries: what [`LogService`] keeps for itself, kept by the simulator
/// for a service that knows nothing of ids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Ledger {
    pub(super) ids: BTreeSet<u64>,
    pub(super) total_chain: u64,
}

impl Ledger {
    /// `state` with the ledger in front: its id count, the ids and the chain (8 bytes each,
    /// little-endian).
    pub(super) fn wrap(&self, state: Bytes) -> Bytes {
        let mut bytes = Vec::with_capacity(16 + 8 * self.ids.len() + state.len());
        bytes.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for id in &self.ids {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        bytes.extend_from_slice(&self.total_chain.to_le_bytes());
        bytes.extend_from_slice(&state);
        Bytes::from(bytes)
    }

    /// The ledger in front of a wrapped state, and the service's state after it; `None` if
    /// `state` is not a wrapped state.
    pub(super) fn unwrap(state: &Bytes) -> Option<(Ledger, Bytes)> {
        let word = |k: usize| {
            state
                .get(8 * k..8 * k + 8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        let n = usize::try_from(word(0)?).ok()?;
        if n > state.len() / 8 {
            return None;
        }
        let ids = (1..=n).map(word).collect::<Option<BTreeSet<u64>>>()?;
        let total_chain = word(n + 1)?;
        Some((Ledger { ids, total_chain }, state.slice(8 * (n + 2)..)))
    }

    /// The digest of a process holding these ids whose service digests as `service`.
    pub(super) fn digest(&self, service: StateDigest) -> StateDigest {
        StateDigest {
            count: self.ids.len() as u64,
            set_hash: self
                .ids
                .iter()
                .fold(mix(service.set_hash), |h, id| h ^ mix(*id)),
            total_chain: mix(self.total_chain ^ mix(service.total_chain ^ service.count)),
        }
    }
}

impl Simulation {
    /// Hands an event from node `i`'s service edge to its service, and tells the checkers.
    /// A stamped service sees deliveries without their ids and states without the ledger;
    /// what it asks for is queued, to be carried out once the events at hand are handed over
    /// (as the node actor takes a service's requests after what its mailbox already holds).
    pub(super) fn hand_to_service(&mut self, i: usize, process: ProcessId, event: ServiceEvent) {
        let node = &mut self.nodes[i];
        if node.record.stopped.is_some() {
            // Stopped (fail-stop): the process is about to go; nothing more reaches it.
            return;
        }
        let seen = if node.stamped {
            match &event {
                ServiceEvent::Deliver { group, message } => {
                    let mut message = message.clone();
                    message.payload = message.payload.slice(message.payload.len().min(8)..);
                    Some(Ok(ServiceEvent::Deliver {
                        group: group.clone(),
                        message,
                    }))
                }
                ServiceEvent::Restore {
                    group,
                    view,
                    state,
                    since,
                } => Some(
                    Ledger::unwrap(state)
                        .map(|(ledger, state)| {
                            node.record.ledger = ledger;
                            ServiceEvent::Restore {
                                group: group.clone(),
                                view: *view,
                                state,
                                since: *since,
                            }
                        })
                        .ok_or_else(|| {
                            node.record.ledger = Ledger::default();
                            bad_state(state)
                        }),
                ),
                _ => None,
            }
        } else {
            None
        };
        let handled = match seen {
            None => node.service.act(&event),
            Some(Ok(seen)) => node.service.act(&seen),
            Some(Err(fault)) => Err(fault),
        };
        let handled = match handled {
            Ok(actions) => {
                node.record.actions.extend(actions);
                Ok(())
            }
            Err(ServiceFault::Failed(why)) => {
                self.fail_stop(i, why);
                Ok(())
            }
            Err(fault) => Err(fault),
        };
        let node = &mut self.nodes[i];
        match event {
            ServiceEvent::Deliver { message, .. } => {
                let id = id_of(&message.payload);
                let handled = if node.stamped {
                    let ledger = &mut node.record.ledger;
                    if message.ordering == Ordering::Total {
                        ledger.total_chain = mix(ledger.total_chain ^ id);
                    }
                    match ledger.ids.insert(id) {
                        true => handled,
                        false => Err(ServiceFault::Duplicate(id)),
                    }
                } else {
                    handled
                };
                node.record
                    .last_counter
                    .insert(message.sender, delivery_checker::counter_of(id));
                self.deliveries.on_deliver(process, id, &message);
                if self.config.trace_deliveries {
                    self.log(format!(
                        "{process} delivers {id:#x} ({}, {} seq {} of {})",
                        message.ordering, message.view, message.seq, message.sender
                    ));
                }
                if let Err(ServiceFault::Duplicate(id)) = handled {
                    self.checker_violation(
                        "no duplication",
                        format!("{process} delivered {id:#x}, already in its state"),
                    );
                }
            }
            ServiceEvent::ViewChange { change, .. } => {
                node.record.view = Some(change.view.id);
                node.record.last_counter.clear();
                let digest = node.digest();
                self.log(format!("{process} service enters {}", change.view));
                self.deliveries.on_view(process, change.view.id, digest);
            }
            ServiceEvent::Restore {
                view, state, since, ..
            } => {
                node.record.view = None;
                if let Err(ServiceFault::BadState(what)) = handled {
                    self.checker_violation("state transfer", format!("{process} got {what}"));
                }
                self.log(format!(
                    "{process} restores {} bytes for {view}",
                    state.len()
                ));
                self.observe_restore(process, view, since.is_some());
                let restored_ids = self.nodes[i].ids().iter().copied();
                self.deliveries
                    .on_restore(process, state.len(), restored_ids);
            }
            ServiceEvent::Block { .. } | ServiceEvent::Direct { .. } | ServiceEvent::Request(_) => {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_goes_in_front_of_a_state_and_comes_off_again() {
        let ledger = Ledger {
            ids: [3, 1 << 48, 7].into_iter().collect(),
            total_chain: 99,
        };
        for state in [Bytes::new(), Bytes::from_static(b"the service's own state")] {
            let wrapped = ledger.wrap(state.clone());
            assert_eq!(Ledger::unwrap(&wrapped), Some((ledger.clone(), state)));
        }
        // Not a wrapped state: empty, too short, a count past the end.
        assert_eq!(Ledger::unwrap(&Bytes::new()), None);
        assert_eq!(Ledger::unwrap(&Bytes::from_static(&[1, 0, 0])), None);
        let mut lying = ledger.wrap(Bytes::new()).to_vec();
        lying[0] = 200;
        assert_eq!(Ledger::unwrap(&Bytes::from(lying)), None);
        // The digest covers the ids, the chain and the service's own digest.
        let service = StateDigest {
            count: 1,
            set_hash: 2,
            total_chain: 3,
        };
        let other = StateDigest {
            total_chain: 4,
            ..service
        };
        assert_ne!(ledger.digest(service), ledger.digest(other));
        assert_ne!(ledger.digest(service), Ledger::default().digest(service));
    }
}
