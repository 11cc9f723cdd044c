//! The service edge: what a node does between its core and the services of its groups. The
//! node actor and the simulator both run it, so the policy they share is written once:
//!
//! - **Events in agreed order.** A group's multicast events become [`ServiceEvent`]s for the
//!   group's registered service; events of a group without a service are dropped (a service
//!   registers before it joins).
//! - **A service that falls behind pauses delivery.** The edge counts the events it handed to
//!   each service and the shell reports what the service has handled (it awaits one event in
//!   `checkpoint_events`). Past `backlog_events` unhandled, delivery in the group pauses, which
//!   withholds credit, so the group's senders wait instead of the mailbox growing; it resumes
//!   once the service has caught up.
//! - **The snapshot round trip.** A joiner's state comes from a service: the edge asks the
//!   shell for a snapshot ([`EdgeOutput::TakeSnapshot`]) and hands the answer back to the
//!   core. Without a registered service the core is told at once that there is none, so this
//!   member stops vouching for the state instead of inventing an empty one. A joiner that
//!   recovered a durable state may get a delta instead: the edge asks the shell for it
//!   ([`EdgeOutput::TakeDelta`]), and without a service the core is told at once there is
//!   none (the joiner gets the whole snapshot).
//! - **Parked multicasts.** A multicast that finds the outbox full waits, in order, up to
//!   `parked_multicasts`, and is retried on every tick and flush; its caller's answer comes
//!   back as [`EdgeOutput::Answer`] with the token the shell parked it with.
//!
//! Sans-IO like the cores: the shell passes `now` and the node core in, and carries out the
//! [`EdgeOutput`]s (frames through `shell::dispatch`, events to its services and subscribers).

use super::multicast::{Message as Delivered, MulticastError, MulticastOutput};
use super::node::{NodeCore, NodeOutput, SnapshotFailed};
use super::Time;
use crate::id::{ConnectionId, GroupName, ProcessId, ViewId};
use crate::view::ViewChange;
use crate::wire::{BusyReason, Ordering, Refusal};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// What a service receives from its group, in the group's agreed order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceEvent {
    /// A multicast delivered in the current view.
    Deliver {
        /// The group.
        group: GroupName,
        /// The multicast.
        message: Delivered,
    },
    /// A client's request ([`crate::wire::Body::Request`]), for the service to answer (at
    /// most once) through its [`ReplyTo`]: `NodeHandle::reply` in the actor. Not ordered
    /// with the multicasts: a strategy orders it itself (the primary multicasts it).
    Request(ClientRequest),
    /// A view change has begun: no deliveries until the next `ViewChange`, and multicasts
    /// sent now go out in the next view.
    Block {
        /// The group.
        group: GroupName,
    },
    /// The next view. Every multicast of the previous view this member delivers has been
    /// delivered; every member that also moves to this view delivered the same ones.
    ViewChange {
        /// The group.
        group: GroupName,
        /// The new view, who joined and who left (relative to the last view this service saw).
        change: ViewChange,
    },
    /// A point-to-point message from a member (not ordered with the multicasts).
    Direct {
        /// The group.
        group: GroupName,
        /// The sender.
        from: ProcessId,
        /// The message.
        payload: Bytes,
    },
    /// Replace the service state: this member joined and `state` is a member's state at the
    /// start of `view`. Always followed by the `ViewChange` into `view`.
    ///
    /// With `since: Some(p)`, `state` is instead a *delta* another member's service made
    /// ([`EdgeOutput::TakeDelta`]): what brings a state at position `p` (the position this
    /// service registered as recovered, and still at) to the start of `view`. Only a
    /// service that registered a position and whose group's services answer deltas sees one.
    Restore {
        /// The group.
        group: GroupName,
        /// The view the state is the start of.
        view: ViewId,
        /// The snapshot another member's service took (or the delta it made).
        state: Bytes,
        /// `Some(p)`: `state` is a delta from position `p`; `None`: a whole snapshot.
        since: Option<u64>,
    },
}

/// Where the answer to a client's request goes: the connection it came on and the client's
/// tag. Copyable, so a service may keep it while the request is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyTo {
    /// The inbound connection the request came on.
    pub connection: ConnectionId,
    /// The client (its identity and frame counter are its own).
    pub client: ProcessId,
    /// The client's tag for the request.
    pub tag: u64,
}

/// A client's request for a group's service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// The group.
    pub group: GroupName,
    /// Where its answer goes.
    pub reply: ReplyTo,
    /// The request, in the service's encoding.
    pub payload: Bytes,
}

/// The edge's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Events handed to a service and not yet handled, past which delivery to it pauses.
    pub backlog_events: u64,
    /// Every this many events to a service, one is a checkpoint whose handling the shell
    /// reports (with [`ServiceEdge::handle_handled`]).
    pub checkpoint_events: u64,
    /// Multicasts waiting for outbox room; past this a multicast fails with
    /// [`MulticastError::Full`] at once.
    pub parked_multicasts: usize,
}

impl EdgeLimits {
    /// The node actor's limits: a mailbox of 8192 events, one awaited per 256, 1024 parked
    /// callers.
    pub const NODE: EdgeLimits = EdgeLimits {
        backlog_events: 8192,
        checkpoint_events: 256,
        parked_multicasts: 1024,
    };
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits::NODE
    }
}

/// What the edge asks its shell to do. `T` is the shell's token for a parked multicast's
/// caller (a reply channel in the actor, a message id in the simulator).
#[derive(Debug, PartialEq, Eq)]
// Outputs pass through the shell once, by value, as `NodeOutput`s did before; boxing the
// large variant would cost an allocation per frame on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum EdgeOutput<T> {
    /// A node output for the shell: frames (`Send`, `SendAll`, `Reply`) and events for
    /// subscribers. Never [`NodeOutput::Group`]: those become the outputs below.
    Node(NodeOutput),
    /// Hand `event` to `group`'s service. With `checkpoint: Some(n)`, report with
    /// [`ServiceEdge::handle_handled`]`(group, n)` once the service has handled it.
    Service {
        /// The group.
        group: GroupName,
        /// The event.
        event: ServiceEvent,
        /// This is the service's `n`th event, and its handling is to be reported.
        checkpoint: Option<u64>,
    },
    /// Ask `group`'s service for its state (after everything handed to it before), for the
    /// joiners of `view`; answer with [`ServiceEdge::handle_snapshot`].
    TakeSnapshot {
        /// The group.
        group: GroupName,
        /// The view the joiners start in.
        view: ViewId,
    },
    /// Ask `group`'s service for the updates after position `since` up to the snapshot it
    /// took for the joiners of `view` (a joiner that recovered a state at `since` catches
    /// up with them); answer with [`ServiceEdge::handle_delta`], `None` when it cannot.
    TakeDelta {
        /// The group.
        group: GroupName,
        /// The view whose snapshot the delta ends at.
        view: ViewId,
        /// The joiner's position.
        since: u64,
    },
    /// A parked multicast was accepted (`Ok`) or refused: tell its caller.
    Answer {
        /// The token it was parked with.
        token: T,
        /// What became of it.
        result: Result<(), MulticastError>,
    },
    /// Delivery resumed: the shell flushes, so what waited goes out.
    Flush,
}

/// What became of a multicast handed to [`ServiceEdge::handle_multicast`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted<T> {
    /// Accepted now; carry out the outputs.
    Now(Vec<EdgeOutput<T>>),
    /// Parked: its answer comes later as [`EdgeOutput::Answer`].
    Parked,
}

/// How far behind a registered service is.
#[derive(Debug, Default)]
struct Backlog {
    sent: u64,
    handled: u64,
    paused: bool,
}

/// A multicast waiting for outbox room.
#[derive(Debug)]
struct Parked<T> {
    group: GroupName,
    ordering: Option<Ordering>,
    payload: Bytes,
    token: T,
}

/// The service policy of one node (see the module documentation).
#[derive(Debug)]
pub struct ServiceEdge<T> {
    limits: EdgeLimits,
    services: BTreeMap<GroupName, Backlog>,
    parked: VecDeque<Parked<T>>,
}

impl<T> ServiceEdge<T> {
    /// An edge with no service registered.
    pub fn new(limits: EdgeLimits) -> Self {
        ServiceEdge {
            limits,
            services: BTreeMap::new(),
            parked: VecDeque::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> EdgeLimits {
        self.limits
    }

    /// Registers a service for `group`. A service registered after the group's view reached
    /// the service level (a node that founded its group at start) is told of that view
    /// first; earlier deliveries are not replayed (register before joining).
    pub fn register(&mut self, core: &NodeCore, group: GroupName) -> Vec<EdgeOutput<T>> {
        self.services.insert(group.clone(), Backlog::default());
        let current = core
            .groups()
            .find(|g| g.group() == &group)
            .and_then(|g| g.multicast().service_view().cloned());
        let mut out = Vec::new();
        if let Some(view) = current {
            let event = ServiceEvent::ViewChange {
                group: group.clone(),
                change: ViewChange::between(None, view),
            };
            self.hand(group, event, &mut out);
        }
        out
    }

    /// Whether a service is registered for `group`.
    pub fn is_registered(&self, group: &GroupName) -> bool {
        self.services.contains_key(group)
    }

    /// Events handed to `group`'s service so far.
    pub fn handed(&self, group: &GroupName) -> u64 {
        self.services.get(group).map_or(0, |b| b.sent)
    }

    /// Whether delivery to `group`'s service is paused (it fell behind).
    pub fn is_paused(&self, group: &GroupName) -> bool {
        self.services.get(group).is_some_and(|b| b.paused)
    }

    /// Multicasts parked, waiting for outbox room.
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Turns the core's outputs into the shell's work: frames and node events pass through,
    /// group events go to the group's service, snapshot requests to the shell (or are
    /// refused to the core at once when no service is registered).
    pub fn absorb(
        &mut self,
        core: &mut NodeCore,
        now: Time,
        outputs: Vec<NodeOutput>,
    ) -> Vec<EdgeOutput<T>> {
        let mut out = Vec::with_capacity(outputs.len());
        let mut work = VecDeque::from(outputs);
        while let Some(output) = work.pop_front() {
            let (group, event) = match output {
                NodeOutput::Group { group, event } => (group, event),
                NodeOutput::Request(request) => {
                    // Not handed to a service that is not there, or that is so far behind
                    // that its group's delivery is paused: refused at once, typed.
                    let refusal = match self.services.get(&request.group) {
                        None => Some(Refusal::NoService),
                        Some(backlog) if backlog.paused => {
                            Some(Refusal::Busy(BusyReason::Overloaded))
                        }
                        Some(_) => None,
                    };
                    match refusal {
                        Some(refusal) => out.push(EdgeOutput::Node(core.response(
                            &request.group,
                            request.reply,
                            Err(refusal),
                        ))),
                        None => {
                            let group = request.group.clone();
                            self.hand(group, ServiceEvent::Request(request), &mut out);
                        }
                    }
                    continue;
                }
                output => {
                    out.push(EdgeOutput::Node(output));
                    continue;
                }
            };
            let registered = self.services.contains_key(&group);
            let event = match event {
                MulticastOutput::SnapshotWanted(view) if registered => {
                    out.push(EdgeOutput::TakeSnapshot { group, view });
                    continue;
                }
                MulticastOutput::SnapshotWanted(view) => {
                    // No service holds this group's state here: never hand joiners an
                    // invented (empty) one; they get it from another member.
                    let failed = SnapshotFailed {
                        reason: "no service registered for the group".into(),
                    };
                    let more = core.handle_snapshot(now, &group, view, Err(failed));
                    // In order, before anything the core said after asking.
                    for (k, output) in more.into_iter().enumerate() {
                        work.insert(k, output);
                    }
                    continue;
                }
                MulticastOutput::DeltaWanted { view, since } if registered => {
                    out.push(EdgeOutput::TakeDelta { group, view, since });
                    continue;
                }
                MulticastOutput::DeltaWanted { view, since } => {
                    // No service: no delta either; the joiner gets the whole snapshot (if
                    // this member has one).
                    let more = core.handle_delta(now, &group, view, since, None);
                    for (k, output) in more.into_iter().enumerate() {
                        work.insert(k, output);
                    }
                    continue;
                }
                _ if !registered => continue,
                MulticastOutput::Deliver(message) => ServiceEvent::Deliver {
                    group: group.clone(),
                    message,
                },
                MulticastOutput::Block => ServiceEvent::Block {
                    group: group.clone(),
                },
                MulticastOutput::View(change) => ServiceEvent::ViewChange {
                    group: group.clone(),
                    change,
                },
                MulticastOutput::Direct { from, payload } => ServiceEvent::Direct {
                    group: group.clone(),
                    from,
                    payload,
                },
                MulticastOutput::Restore { view, state, since } => ServiceEvent::Restore {
                    group: group.clone(),
                    view,
                    state,
                    since,
                },
                // The core sends its own frames; these never reach a service.
                MulticastOutput::Send { .. } | MulticastOutput::SendAll { .. } => continue,
            };
            self.hand(group, event, &mut out);
        }
        out
    }

    /// Hands `event` to `group`'s service, counting it.
    fn hand(&mut self, group: GroupName, event: ServiceEvent, out: &mut Vec<EdgeOutput<T>>) {
        let backlog = self.services.get_mut(&group).expect("registered");
        backlog.sent += 1;
        let checkpoint =
            (backlog.sent % self.limits.checkpoint_events.max(1) == 0).then_some(backlog.sent);
        out.push(EdgeOutput::Service {
            group,
            event,
            checkpoint,
        });
    }

    /// `group`'s service has handled its first `upto` events (a checkpoint, or everything a
    /// synchronous shell handed it). Call [`ServiceEdge::refresh`] afterwards.
    pub fn handle_handled(&mut self, group: &GroupName, upto: u64) {
        if let Some(backlog) = self.services.get_mut(group) {
            debug_assert!(
                upto <= backlog.sent,
                "a service handled more than it was handed"
            );
            backlog.handled = backlog.handled.max(upto);
        }
    }

    /// Pauses delivery to services that fell `backlog_events` behind and resumes it for
    /// those that caught up. Shells call it after handing over a batch of events and after
    /// reporting what was handled.
    pub fn refresh(&mut self, core: &mut NodeCore, now: Time) -> Vec<EdgeOutput<T>> {
        let mut changed = Vec::new();
        for (group, backlog) in &mut self.services {
            let paused = backlog.sent.saturating_sub(backlog.handled) >= self.limits.backlog_events;
            if paused != backlog.paused {
                backlog.paused = paused;
                changed.push((group.clone(), paused));
            }
        }
        let mut out = Vec::new();
        for (group, paused) in changed {
            let outputs = core.set_delivery_paused(now, &group, paused);
            out.extend(self.absorb(core, now, outputs));
            if !paused {
                out.push(EdgeOutput::Flush);
            }
        }
        out
    }

    /// The service's answer to [`EdgeOutput::TakeSnapshot`]: its state, or why it could not
    /// take one (the core then stops vouching for the state here; never empty bytes).
    pub fn handle_snapshot(
        &mut self,
        core: &mut NodeCore,
        now: Time,
        group: &GroupName,
        view: ViewId,
        state: Result<Bytes, SnapshotFailed>,
    ) -> Vec<EdgeOutput<T>> {
        let outputs = core.handle_snapshot(now, group, view, state);
        self.absorb(core, now, outputs)
    }

    /// The service's answer to [`EdgeOutput::TakeDelta`]: the delta, or `None` when it
    /// cannot make one (the joiner then gets the whole snapshot).
    pub fn handle_delta(
        &mut self,
        core: &mut NodeCore,
        now: Time,
        group: &GroupName,
        view: ViewId,
        since: u64,
        delta: Option<Bytes>,
    ) -> Vec<EdgeOutput<T>> {
        let outputs = core.handle_delta(now, group, view, since, delta);
        self.absorb(core, now, outputs)
    }

    /// The service multicasts `payload` to `group`. Refused at once (nothing queued) if the
    /// core refuses it for any reason but a full outbox; with the outbox full it is parked
    /// with the token `park` makes, behind any parked before it (FIFO per sender), unless
    /// `parked_multicasts` are waiting already.
    pub fn handle_multicast(
        &mut self,
        core: &mut NodeCore,
        now: Time,
        group: &GroupName,
        ordering: Option<Ordering>,
        payload: Bytes,
        park: impl FnOnce() -> T,
    ) -> Result<Admitted<T>, MulticastError> {
        let result = if self.parked.is_empty() {
            core.handle_multicast(now, group, ordering, payload.clone())
        } else {
            Err(MulticastError::Full(self.parked.len()))
        };
        match result {
            Ok(outputs) => Ok(Admitted::Now(self.absorb(core, now, outputs))),
            Err(MulticastError::Full(_)) if self.parked.len() < self.limits.parked_multicasts => {
                self.parked.push_back(Parked {
                    group: group.clone(),
                    ordering,
                    payload,
                    token: park(),
                });
                Ok(Admitted::Parked)
            }
            Err(error) => Err(error),
        }
    }

    /// Retries parked multicasts in order while the outboxes take them (shells call it on
    /// every tick and after every flush).
    pub fn retry_parked(&mut self, core: &mut NodeCore, now: Time) -> Vec<EdgeOutput<T>> {
        let mut out = Vec::new();
        while let Some(parked) = self.parked.pop_front() {
            match core.handle_multicast(now, &parked.group, parked.ordering, parked.payload.clone())
            {
                Ok(outputs) => {
                    out.push(EdgeOutput::Answer {
                        token: parked.token,
                        result: Ok(()),
                    });
                    out.extend(self.absorb(core, now, outputs));
                }
                Err(MulticastError::Full(_)) => {
                    self.parked.push_front(parked);
                    break;
                }
                Err(error) => out.push(EdgeOutput::Answer {
                    token: parked.token,
                    result: Err(error),
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
