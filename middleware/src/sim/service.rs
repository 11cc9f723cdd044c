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
//! - [`LogService`]: the log-like service every run uses by default: its state is the set of
//!   ids it delivered (or restored) and a hash chain of its total-order deliveries.
//! - [`CounterService`]: a second, small service (a replicated sum), to show a service core
//!   plugged in by [`SimConfig::service`](super::SimConfig::service).

use super::delivery_checker::{self, mix, StateDigest};
use super::Simulation;
use crate::id::{ProcessId, ViewId};
use crate::proto::service_edge::ServiceEvent;
use crate::wire::Ordering;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A service core under simulation: what a service actor does with its group's events,
/// without the actor.
pub trait SimulatedService: fmt::Debug {
    /// The payload of the simulator's multicast `id`: `id`'s 8 bytes (little-endian) first,
    /// then whatever the service adds.
    fn request(&mut self, id: u64) -> Bytes;
    /// Handles one event of its group, in agreed order. An error says which of the service's
    /// own invariants an event broke (a message applied twice, a state it cannot restore);
    /// the simulator reports it as a violation.
    fn handle(&mut self, event: &ServiceEvent) -> Result<(), ServiceFault>;
    /// Its state, for joiners (taken after every event handed to it before).
    fn snapshot(&self) -> Bytes;
    /// The simulator's message ids its state holds (delivered or restored).
    fn ids(&self) -> &BTreeSet<u64>;
    /// What the checkers compare between members entering the same view and at the end.
    fn digest(&self) -> StateDigest;
}

/// How an event broke a service's invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFault {
    /// Message `id` was delivered, and the state already held it.
    Duplicate(u64),
    /// A restored state could not be used; what it was.
    BadState(String),
}

/// Makes the service of each process (a fresh one at every start), with a name for traces
/// and comparisons.
#[derive(Clone, Copy)]
pub struct ServiceFactory {
    /// The service's name.
    pub name: &'static str,
    /// Makes a fresh service.
    pub make: fn() -> Box<dyn SimulatedService>,
}

impl ServiceFactory {
    /// The log-like service ([`LogService`]), the default.
    pub const LOG: ServiceFactory = ServiceFactory {
        name: "log",
        make: LogService::boxed,
    };
    /// The replicated sum ([`CounterService`]).
    pub const COUNTER: ServiceFactory = ServiceFactory {
        name: "counter",
        make: CounterService::boxed,
    };
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
}

impl Simulation {
    /// Hands an event from node `i`'s service edge to its service, and tells the checkers.
    pub(super) fn hand_to_service(&mut self, i: usize, process: ProcessId, event: ServiceEvent) {
        let node = &mut self.nodes[i];
        let handled = node.service.handle(&event);
        match event {
            ServiceEvent::Deliver { message, .. } => {
                let id = id_of(&message.payload);
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
                let digest = node.service.digest();
                self.log(format!("{process} service enters {}", change.view));
                self.deliveries.on_view(process, change.view.id, digest);
            }
            ServiceEvent::Restore { view, state, .. } => {
                node.record.view = None;
                if let Err(ServiceFault::BadState(what)) = handled {
                    self.checker_violation("state transfer", format!("{process} got {what}"));
                }
                self.log(format!(
                    "{process} restores {} bytes for {view}",
                    state.len()
                ));
                self.observe_restore(process, view);
                let restored_ids = self.nodes[i].service.ids().iter().copied();
                self.deliveries
                    .on_restore(process, state.len(), restored_ids);
            }
            ServiceEvent::Block { .. } | ServiceEvent::Direct { .. } | ServiceEvent::Request(_) => {
            }
        }
    }
}
