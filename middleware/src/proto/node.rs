//! The node core: one process's failure detector and the membership cores of every group it
//! belongs to, composed. The actor shell ([`crate::runtime`]) and the simulator ([`crate::sim`])
//! both drive exactly this composition, so what the simulator checks is what runs.

use super::failure_detector::{ring_peers, FailureDetector, FailureDetectorConfig, FdOutput};
use super::membership::{Membership, MembershipConfig, MembershipOutput};
use super::multicast::{MulticastConfig, MulticastError, MulticastOutput};
use super::service_edge::{ClientRequest, ReplyTo};
use super::Time;
use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::{Member, View, ViewChange};
use crate::wire::{Body, Envelope, Ordering, Outcome, Refusal, PROTOCOL_VERSION};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Kept here as well, where it was first defined, for code that names it through the core.
pub use crate::id::ConnectionId;

/// Protocol settings of a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeSettings {
    /// Failure detector settings.
    pub failure_detector: FailureDetectorConfig,
    /// Membership settings, shared by all groups.
    pub membership: MembershipConfig,
    /// Multicast settings of groups without their own.
    pub multicast: MulticastConfig,
}

/// What the node core asks its shell to do or tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutput {
    /// Seal and send `envelope` to the node listening at `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message (the codec stamps the frame counter).
        envelope: Envelope,
    },
    /// Seal `envelope` once and send the frame to each of `to`.
    SendAll {
        /// Destination addresses.
        to: Vec<SocketAddr>,
        /// The message.
        envelope: Envelope,
    },
    /// Answer on the inbound connection a request came from.
    Reply {
        /// The connection.
        connection: ConnectionId,
        /// The answer.
        envelope: Envelope,
    },
    /// A group installed a new view.
    ViewInstalled {
        /// The group.
        group: GroupName,
        /// The view and what changed.
        change: ViewChange,
    },
    /// This process accepted a view in a group's view change: a shell with a data directory
    /// records it durably before it carries out the outputs that follow (see
    /// [`MembershipOutput::ViewAccepted`]).
    ViewAccepted {
        /// The group.
        group: GroupName,
        /// The view and the view it succeeds.
        accepted: crate::wire::AcceptedView,
    },
    /// This process was removed from a group and is joining it again.
    Excluded {
        /// The group.
        group: GroupName,
        /// The view without this process, if known.
        by: Option<ViewId>,
    },
    /// This process left a group.
    Left {
        /// The group.
        group: GroupName,
    },
    /// The failure detector suspects a peer.
    Suspected(ProcessId),
    /// A suspected peer was heard from again (a false suspicion).
    Unsuspected(ProcessId),
    /// An event of a group's multicast for the service there (never a `Send`).
    Group {
        /// The group.
        group: GroupName,
        /// The event.
        event: MulticastOutput,
    },
    /// A client's request for a group's service, which the node takes (it is a member, not
    /// blocked, and the request is not too large); the service edge hands it to the service.
    Request(ClientRequest),
    /// A seed refused this process's frames while it was joining.
    RefusedBy {
        /// The group being joined.
        group: GroupName,
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
}

/// The service could not take the state snapshot a state transfer needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the service could not take a snapshot: {reason}")]
pub struct SnapshotFailed {
    /// Why, for the log.
    pub reason: String,
}

/// Why a join or leave request to the node core was refused. Neither changes any state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupRequestError {
    /// The process already belongs to (or is joining) the group.
    #[error("already a member of group {0} or joining it")]
    AlreadyJoined(GroupName),
    /// The process does not belong to the group.
    #[error("not a member of group {0}")]
    NotJoined(GroupName),
}

/// Why an operator's eviction ([`NodeCore::handle_evict`]) was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvictError {
    /// This process is not a member of the group.
    #[error("this node is not a member of group {0}")]
    NotMember(GroupName),
    /// The node is not in the installed view (already gone, or never there).
    #[error("node {node} is not in view {view}")]
    NotInView {
        /// The node asked for.
        node: crate::id::NodeId,
        /// The installed view.
        view: ViewId,
    },
    /// An operator asked a node to evict itself.
    #[error("a node does not evict itself: ask it to leave (`viewsync leave`)")]
    Itself,
}

/// One process's protocol state: failure detector plus a membership core per group.
#[derive(Debug)]
pub struct NodeCore {
    me: Member,
    seeds: Vec<SocketAddr>,
    settings: NodeSettings,
    failure_detector: FailureDetector,
    groups: BTreeMap<GroupName, Membership>,
    group_multicast: BTreeMap<GroupName, MulticastConfig>,
    /// Recovered positions of groups not joined yet, handed to their cores at the join.
    catch_up: BTreeMap<GroupName, u64>,
    /// Groups whose service answers clients while the group is blocked or this process
    /// rejoins (see [`NodeCore::set_available_while_blocked`]).
    available_while_blocked: BTreeSet<GroupName>,
    views_installed: u64,
}

impl NodeCore {
    /// A node core for process `me`, which joins groups through `seeds`.
    pub fn new(me: Member, seeds: Vec<SocketAddr>, settings: NodeSettings) -> Self {
        NodeCore {
            me,
            seeds,
            settings,
            failure_detector: FailureDetector::new(settings.failure_detector),
            groups: BTreeMap::new(),
            group_multicast: BTreeMap::new(),
            catch_up: BTreeMap::new(),
            available_while_blocked: BTreeSet::new(),
            views_installed: 0,
        }
    }

    /// Registers `group`'s service as *available while blocked*: client requests for it are
    /// handed to the service even while this member is blocked (no majority, no state
    /// holder) or rejoining after being excluded, instead of being refused `Blocked` or
    /// `Busy(Joining)`. Only for a service that answers from its own state without relying on
    /// agreed delivery (the gossip architecture); it decides itself what it can answer
    /// before it has ever had a view. Point-to-point messages to the members of the view it
    /// is blocked in flow as before; multicasts stay frozen. See docs/ARCHITECTURE.md
    /// (decision 31).
    pub fn set_available_while_blocked(&mut self, group: &GroupName, available: bool) {
        if available {
            self.available_while_blocked.insert(group.clone());
        } else {
            self.available_while_blocked.remove(group);
        }
    }

    /// This process.
    pub fn me(&self) -> Member {
        self.me
    }

    /// The installed view of `group`, if this process is a member.
    pub fn view(&self, group: &GroupName) -> Option<&View> {
        self.groups.get(group).and_then(|g| g.view())
    }

    /// The membership cores, by group.
    pub fn groups(&self) -> impl Iterator<Item = &Membership> {
        self.groups.values()
    }

    /// The failure detector (for its counters).
    pub fn failure_detector(&self) -> &FailureDetector {
        &self.failure_detector
    }

    /// Views installed so far, over all groups.
    pub fn views_installed(&self) -> u64 {
        self.views_installed
    }

    /// Starts joining `group`.
    pub fn handle_join(
        &mut self,
        now: Time,
        group: GroupName,
    ) -> Result<Vec<NodeOutput>, GroupRequestError> {
        if let Some(core) = self.groups.get(&group) {
            if *core.status() != super::membership::Status::Left {
                return Err(GroupRequestError::AlreadyJoined(group));
            }
        }
        // Joining again after a leave reuses the group's core: its last epoch and acceptor
        // state carry over.
        let multicast = self
            .group_multicast
            .get(&group)
            .copied()
            .unwrap_or(self.settings.multicast);
        let catch_up = self.catch_up.remove(&group);
        let core = self.groups.entry(group.clone()).or_insert_with(|| {
            let mut core = Membership::new(
                group.clone(),
                self.me,
                self.seeds.clone(),
                self.settings.membership,
                multicast,
            );
            core.set_catch_up_from(catch_up);
            core.set_monitors(self.settings.failure_detector.monitors);
            core
        });
        let outputs = core.handle_start(now);
        let mut out = Vec::new();
        self.absorb(now, &group, outputs, &mut out);
        Ok(out)
    }

    /// Uses `config` for `group`'s multicast instead of the node's default (before joining).
    pub fn set_group_multicast(&mut self, group: GroupName, config: MulticastConfig) {
        self.group_multicast.insert(group, config);
    }

    /// The service multicasts `payload` to `group` (with the group's ordering unless
    /// `ordering` overrides it). Nothing changes when it is refused.
    pub fn handle_multicast(
        &mut self,
        now: Time,
        group: &GroupName,
        ordering: Option<Ordering>,
        payload: Bytes,
    ) -> Result<Vec<NodeOutput>, MulticastError> {
        let core = self
            .groups
            .get_mut(group)
            .ok_or(MulticastError::NotMember)?;
        let (result, multicast, membership) =
            core.with_multicast(now, |m, o| m.multicast(now, ordering, payload, o));
        result?;
        let mut out = Vec::new();
        self.absorb_multicast(group, multicast, &mut out);
        self.absorb(now, group, membership, &mut out);
        Ok(out)
    }

    /// The service sends `payload` point-to-point to `to`, a member of `group`'s view.
    pub fn handle_send_direct(
        &mut self,
        now: Time,
        group: &GroupName,
        to: ProcessId,
        payload: Bytes,
    ) -> Result<Vec<NodeOutput>, MulticastError> {
        let core = self
            .groups
            .get_mut(group)
            .ok_or(MulticastError::NotMember)?;
        let (result, multicast, membership) =
            core.with_multicast(now, |m, o| m.send_direct(to, payload, o));
        result?;
        let mut out = Vec::new();
        self.absorb_multicast(group, multicast, &mut out);
        self.absorb(now, group, membership, &mut out);
        Ok(out)
    }

    /// Pauses (or resumes) delivery in `group` while its service is behind, at `now`. Returns
    /// what the group does on it (an acceptor waiting for its cut may answer), like every
    /// other input: the shell executes these outputs, it never drops them.
    pub fn set_delivery_paused(
        &mut self,
        now: Time,
        group: &GroupName,
        paused: bool,
    ) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let Some(core) = self.groups.get_mut(group) else {
            return out;
        };
        let (_, multicast, membership) = core.with_multicast(now, |m, _| m.set_paused(paused));
        self.absorb_multicast(group, multicast, &mut out);
        self.absorb(now, group, membership, &mut out);
        out
    }

    /// The service's state snapshot for the joiners of `view` of `group`, or the news that it
    /// could not take one (the service is gone or failed). A failed snapshot is never replaced
    /// by an empty state: this process stops vouching for the state and gets it again through
    /// a view change, and the joiners get it from another holder.
    pub fn handle_snapshot(
        &mut self,
        now: Time,
        group: &GroupName,
        view: ViewId,
        state: Result<Bytes, SnapshotFailed>,
    ) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let Some(core) = self.groups.get_mut(group) else {
            return out;
        };
        let (_, multicast, membership) = core.with_multicast(now, |m, _| match state {
            Ok(state) => m.handle_snapshot(view, state),
            Err(_) => m.handle_snapshot_failed(view),
        });
        self.absorb_multicast(group, multicast, &mut out);
        self.absorb(now, group, membership, &mut out);
        out
    }

    /// Sends what the groups' multicasts have waiting (batched). The shell calls it after a
    /// burst of inputs.
    pub fn handle_flush(&mut self, now: Time) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let names: Vec<GroupName> = self.groups.keys().cloned().collect();
        for group in names {
            let core = self.groups.get_mut(&group).expect("listed");
            let (_, multicast, membership) = core.with_multicast(now, |m, o| m.flush(now, o));
            self.absorb_multicast(&group, multicast, &mut out);
            self.absorb(now, &group, membership, &mut out);
        }
        out
    }

    /// An operator asks this process to remove `node` from `group` now (`viewsync evict`),
    /// without waiting for the failure detector's timeout: the failure detector suspects its
    /// process in the installed view at once ([`FailureDetector::handle_suspect_now`]), and
    /// everything follows as for any suspicion (the acting coordinator proposes a view
    /// without it; it counts as a suspicion; a process heard from again is unsuspected, as
    /// after any false suspicion, so a live process is not kept out by a stale one).
    /// Returns the process evicted and the outputs; refused, with nothing changed, when this process is not a member of the
    /// group, `node` is not in its view, or `node` is this process's own node (it leaves
    /// instead). Whether the view change starts here depends on who coordinates: the shell
    /// passes the command on to [`Membership::acting_coordinator`] when that is another
    /// member.
    pub fn handle_evict(
        &mut self,
        now: Time,
        group: &GroupName,
        node: crate::id::NodeId,
    ) -> Result<(ProcessId, Vec<NodeOutput>), EvictError> {
        let core = self
            .groups
            .get_mut(group)
            .ok_or_else(|| EvictError::NotMember(group.clone()))?;
        let view = core
            .view()
            .ok_or_else(|| EvictError::NotMember(group.clone()))?;
        if node == self.me.id.node {
            return Err(EvictError::Itself);
        }
        let process = view
            .members
            .iter()
            .find(|m| m.id.node == node)
            .map(|m| m.id)
            .ok_or(EvictError::NotInView {
                node,
                view: view.id,
            })?;
        let mut out = Vec::new();
        let suspected = self.failure_detector.handle_suspect_now(now, process);
        if suspected.is_empty() {
            // Not monitored, or suspected already: the group treats it as suspected anyway.
            let outputs = self
                .groups
                .get_mut(group)
                .expect("checked above")
                .handle_suspect(now, process);
            self.absorb(now, group, outputs, &mut out);
        } else {
            self.absorb_fd(now, suspected, &mut out);
        }
        Ok((process, out))
    }

    /// Leaves `group` gracefully.
    pub fn handle_leave(
        &mut self,
        now: Time,
        group: &GroupName,
    ) -> Result<Vec<NodeOutput>, GroupRequestError> {
        let core = self
            .groups
            .get_mut(group)
            .ok_or_else(|| GroupRequestError::NotJoined(group.clone()))?;
        let outputs = core.handle_leave(now);
        let mut out = Vec::new();
        self.absorb(now, group, outputs, &mut out);
        Ok(out)
    }

    /// A periodic tick (the shell calls it every few tens of milliseconds).
    pub fn handle_tick(&mut self, now: Time) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let fd_outputs = self.failure_detector.handle_tick(now);
        self.absorb_fd(now, fd_outputs, &mut out);
        let names: Vec<GroupName> = self.groups.keys().cloned().collect();
        for group in names {
            let outputs = self
                .groups
                .get_mut(&group)
                .expect("listed")
                .handle_tick(now);
            self.absorb(now, &group, outputs, &mut out);
        }
        out
    }

    /// A frame from `peer` came off its connection at `at` (the shell records this as frames
    /// arrive, so a node actor busy with a backlog still sees its peers alive).
    pub fn handle_heard(&mut self, at: Time, peer: ProcessId) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let outputs = self.failure_detector.handle_heard_from(at, peer);
        self.absorb_fd(at, outputs, &mut out);
        out
    }

    /// An envelope arrived (already authenticated and checked by the codec) on `connection`.
    pub fn handle_envelope(
        &mut self,
        now: Time,
        envelope: Envelope,
        connection: ConnectionId,
    ) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        if envelope.sender == self.me.id {
            return out;
        }
        let from = Member {
            id: envelope.sender,
            addr: envelope.sender_addr,
        };
        match envelope.body {
            Body::MembersRequest => {
                let view = envelope.group.as_ref().and_then(|g| self.view(g)).cloned();
                let blocked = envelope
                    .group
                    .as_ref()
                    .and_then(|g| self.groups.get(g))
                    .and_then(|g| g.blocked(now));
                out.push(NodeOutput::Reply {
                    connection,
                    envelope: self
                        .envelope(envelope.group, Body::MembersResponse { view, blocked }),
                });
                return out;
            }
            Body::Refused { reason } => {
                let names: Vec<GroupName> = self.groups.keys().cloned().collect();
                for group in names {
                    let outputs = self
                        .groups
                        .get_mut(&group)
                        .expect("listed")
                        .handle_refused(from.addr, reason.clone());
                    self.absorb(now, &group, outputs, &mut out);
                }
                return out;
            }
            Body::MembersResponse { .. } | Body::GroupSendResult { .. } | Body::Response { .. } => {
                return out
            }
            // Operators' requests are the shell's (`runtime`); a shell that hands one here
            // gets nothing done, and it is no sign of life of a peer.
            body if body.is_operator() => return out,
            Body::Request { tag, payload } => {
                let reply = ReplyTo {
                    connection,
                    client: from.id,
                    tag,
                };
                let Some(group) = envelope.group else {
                    out.push(self.response_unscoped(reply, Err(Refusal::NotMember)));
                    return out;
                };
                match self.admit_request(now, &group, payload.len()) {
                    Ok(()) => out.push(NodeOutput::Request(ClientRequest {
                        group,
                        reply,
                        payload,
                    })),
                    Err(refusal) => out.push(self.response(&group, reply, Err(refusal))),
                }
                return out;
            }
            Body::GroupSend { ordering, payload } => {
                // A process outside the group (or inside) asks this member to multicast for it.
                let group = envelope.group.clone();
                let result = match &group {
                    Some(group) => self.handle_multicast(now, group, ordering, payload),
                    None => Err(MulticastError::NotMember),
                };
                let error = match result {
                    Ok(outputs) => {
                        out.extend(outputs);
                        None
                    }
                    Err(e) => Some(e.to_string()),
                };
                out.push(NodeOutput::Reply {
                    connection,
                    envelope: self.envelope(group, Body::GroupSendResult { error }),
                });
                return out;
            }
            _ => {}
        }
        let fd_outputs = self.failure_detector.handle_heard_from(now, from.id);
        self.absorb_fd(now, fd_outputs, &mut out);
        match envelope.body {
            Body::Heartbeat { views } => {
                // Anti-entropy works from the process that is ahead: it answers a heartbeat
                // showing an older view. On a ring the process behind may never heartbeat
                // one that is ahead, so a heartbeat from a later view is answered with this
                // process's own views (ring seed 8822: a coordinator that missed the install
                // of its own view waited for ever).
                let mut behind = Vec::new();
                for (group, view_id) in views {
                    if let Some(core) = self.groups.get_mut(&group) {
                        if let Some(mine) = core.view().map(|v| v.id) {
                            if mine.epoch < view_id.epoch {
                                behind.push((group.clone(), mine));
                            }
                        }
                        let outputs = core.handle_peer_view(from, view_id);
                        self.absorb(now, &group, outputs, &mut out);
                    }
                }
                if !behind.is_empty() {
                    out.push(NodeOutput::Send {
                        to: from.addr,
                        envelope: self.envelope(None, Body::Heartbeat { views: behind }),
                    });
                }
            }
            Body::Probe => out.push(NodeOutput::Send {
                to: from.addr,
                envelope: self.envelope(None, Body::ProbeAck),
            }),
            Body::ProbeAck => {}
            body => {
                let Some(group) = envelope.group else {
                    return out;
                };
                let Some(core) = self.groups.get_mut(&group) else {
                    return out;
                };
                if is_multicast_traffic(&body) {
                    // Straight to the group's multicast core: membership has no use for it.
                    let (_, multicast, membership) =
                        core.with_multicast(now, |m, o| m.handle_message(now, from, body, o));
                    self.absorb_multicast(&group, multicast, &mut out);
                    self.absorb(now, &group, membership, &mut out);
                } else {
                    let outputs = core.handle_message(now, from, body);
                    self.absorb(now, &group, outputs, &mut out);
                }
            }
        }
        out
    }

    /// This node restarted as a former member of `group` whose service keeps durable state:
    /// see [`Membership::set_recovery`]. Does nothing for a group it has not joined.
    pub fn set_recovery(&mut self, group: &GroupName, claim: Option<crate::wire::RecoveryClaim>) {
        if let Some(core) = self.groups.get_mut(group) {
            core.set_recovery(claim);
        }
    }

    /// `group`'s service recovered a durable state at `position` (this process restarted):
    /// until this process installs a view of the group, a state transfer to it asks for a
    /// delta from there (see [`Membership::set_catch_up_from`]). For a group not joined yet,
    /// kept until it is.
    pub fn set_catch_up_from(&mut self, group: &GroupName, position: Option<u64>) {
        match self.groups.get_mut(group) {
            Some(core) => core.set_catch_up_from(position),
            None => match position {
                Some(position) => {
                    self.catch_up.insert(group.clone(), position);
                }
                None => {
                    self.catch_up.remove(group);
                }
            },
        }
    }

    /// The service's answer to [`MulticastOutput::DeltaWanted`] for `group`: the updates
    /// after `since` up to its snapshot for the joiners of `view`, or `None` (it cannot; the
    /// joiner gets the whole snapshot).
    pub fn handle_delta(
        &mut self,
        now: Time,
        group: &GroupName,
        view: ViewId,
        since: u64,
        delta: Option<Bytes>,
    ) -> Vec<NodeOutput> {
        let mut out = Vec::new();
        let Some(core) = self.groups.get_mut(group) else {
            return out;
        };
        let (_, multicast, membership) =
            core.with_multicast(now, |m, o| m.handle_delta(view, since, delta, o));
        self.absorb_multicast(group, multicast, &mut out);
        self.absorb(now, group, membership, &mut out);
        out
    }

    /// Whether this node takes a client's request of `size` bytes for `group` now: it must be
    /// a member holding the group's state and not blocked (a blocked member answers nothing
    /// from a view it may have lost), unless the group's service is available while blocked.
    fn admit_request(&self, now: Time, group: &GroupName, size: usize) -> Result<(), Refusal> {
        let Some(core) = self.groups.get(group) else {
            return Err(Refusal::NotMember);
        };
        let available = self.available_while_blocked.contains(group);
        if !available {
            if let Some(blocked) = core.blocked(now) {
                return Err(Refusal::Blocked(blocked));
            }
        }
        let limit = request_bytes_max(core.multicast().config().payload_bytes_max);
        if size > limit {
            return Err(Refusal::TooLarge {
                size: size as u64,
                limit: limit as u64,
            });
        }
        if !available && (core.view().is_none() || core.multicast().service_view().is_none()) {
            return Err(Refusal::Busy(crate::wire::BusyReason::Joining));
        }
        Ok(())
    }

    /// The largest client request this node takes for `group` (see [`request_bytes_max`]).
    pub fn request_bytes_max(&self, group: &GroupName) -> Option<usize> {
        self.groups
            .get(group)
            .map(|core| request_bytes_max(core.multicast().config().payload_bytes_max))
    }

    /// The answer `outcome` to a client's request for `group`, to hand the shell.
    pub fn response(&self, group: &GroupName, reply: ReplyTo, outcome: Outcome) -> NodeOutput {
        NodeOutput::Reply {
            connection: reply.connection,
            envelope: self.envelope(
                Some(group.clone()),
                Body::Response {
                    tag: reply.tag,
                    outcome,
                },
            ),
        }
    }

    fn response_unscoped(&self, reply: ReplyTo, outcome: Outcome) -> NodeOutput {
        NodeOutput::Reply {
            connection: reply.connection,
            envelope: self.envelope(
                None,
                Body::Response {
                    tag: reply.tag,
                    outcome,
                },
            ),
        }
    }

    fn envelope(&self, group: Option<GroupName>, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            sender: self.me.id,
            sender_addr: self.me.addr,
            seq: 0,
            group,
            body,
        }
    }

    /// The view installed in each group, as heartbeats carry them.
    fn installed_views(&self) -> Vec<(GroupName, ViewId)> {
        self.groups
            .values()
            .filter_map(|g| g.view().map(|v| (g.group().clone(), v.id)))
            .collect()
    }

    fn absorb_fd(&mut self, now: Time, outputs: Vec<FdOutput>, out: &mut Vec<NodeOutput>) {
        for output in outputs {
            match output {
                FdOutput::SendHeartbeat(to) => {
                    let views = self.installed_views();
                    out.push(NodeOutput::Send {
                        to,
                        envelope: self.envelope(None, Body::Heartbeat { views }),
                    });
                }
                FdOutput::SendProbe(to) => {
                    out.push(NodeOutput::Send {
                        to,
                        envelope: self.envelope(None, Body::Probe),
                    });
                    // A probed peer this process does not heartbeat learns its views too, so
                    // a peer in a later view repairs this one (anti-entropy answers older
                    // views only).
                    if !self.failure_detector.watchers_addrs().any(|a| a == to) {
                        let views = self.installed_views();
                        out.push(NodeOutput::Send {
                            to,
                            envelope: self.envelope(None, Body::Heartbeat { views }),
                        });
                    }
                }
                FdOutput::Suspect(peer) => {
                    out.push(NodeOutput::Suspected(peer));
                    let names: Vec<GroupName> = self.groups.keys().cloned().collect();
                    for group in names {
                        let outputs = self
                            .groups
                            .get_mut(&group)
                            .expect("listed")
                            .handle_suspect(now, peer);
                        self.absorb(now, &group, outputs, out);
                    }
                    // A suspected coordinator hands over: watch the next acting one.
                    self.refresh_monitored(now);
                }
                FdOutput::Unsuspect(peer) => {
                    out.push(NodeOutput::Unsuspected(peer));
                    for core in self.groups.values_mut() {
                        core.handle_unsuspect(now, peer);
                    }
                }
            }
        }
    }

    /// Turns a group's outputs into node outputs, and keeps the failure detector watching
    /// exactly the members of the installed views.
    fn absorb(
        &mut self,
        now: Time,
        group: &GroupName,
        outputs: Vec<MembershipOutput>,
        out: &mut Vec<NodeOutput>,
    ) {
        let mut membership_changed = false;
        for output in outputs {
            match output {
                MembershipOutput::Send { to, body } => out.push(NodeOutput::Send {
                    to,
                    envelope: self.envelope(Some(group.clone()), body),
                }),
                MembershipOutput::SendAll { to, body } => out.push(NodeOutput::SendAll {
                    to,
                    envelope: self.envelope(Some(group.clone()), body),
                }),
                MembershipOutput::ViewInstalled(change) => {
                    membership_changed = true;
                    self.views_installed += 1;
                    out.push(NodeOutput::ViewInstalled {
                        group: group.clone(),
                        change,
                    });
                }
                MembershipOutput::ViewAccepted(accepted) => out.push(NodeOutput::ViewAccepted {
                    group: group.clone(),
                    accepted,
                }),
                MembershipOutput::Excluded { by } => {
                    membership_changed = true;
                    out.push(NodeOutput::Excluded {
                        group: group.clone(),
                        by,
                    });
                }
                MembershipOutput::Left => {
                    membership_changed = true;
                    out.push(NodeOutput::Left {
                        group: group.clone(),
                    });
                }
                MembershipOutput::RefusedBy { seed, reason } => out.push(NodeOutput::RefusedBy {
                    group: group.clone(),
                    seed,
                    reason,
                }),
                MembershipOutput::Multicast(output) => {
                    out.push(self.multicast_output(group, output));
                }
            }
        }
        if membership_changed {
            self.refresh_monitored(now);
            self.suspect_again(now, group, out);
        }
    }

    /// Reports again to `group` the members of its new view that the failure detector still
    /// suspects. The detector reports a suspicion once, but installing a view may drop it from
    /// the group's pending changes (the suspect's own join was pending): the group would then
    /// wait for a crashed coordinator forever (sim seed 2924).
    fn suspect_again(&mut self, now: Time, group: &GroupName, out: &mut Vec<NodeOutput>) {
        let Some(core) = self.groups.get(group) else {
            return;
        };
        let forgotten: Vec<ProcessId> = core
            .view()
            .into_iter()
            .flat_map(|v| v.members.iter().map(|m| m.id))
            .filter(|id| self.failure_detector.is_suspected(*id) && !core.suspects(*id))
            .collect();
        for peer in forgotten {
            let outputs = self
                .groups
                .get_mut(group)
                .expect("listed")
                .handle_suspect(now, peer);
            self.absorb(now, group, outputs, out);
        }
    }

    /// Turns a group's multicast outputs into node outputs: sends become frames scoped to the
    /// group, everything else is an event for the group's service.
    fn absorb_multicast(
        &self,
        group: &GroupName,
        outputs: Vec<MulticastOutput>,
        out: &mut Vec<NodeOutput>,
    ) {
        out.extend(outputs.into_iter().map(|o| self.multicast_output(group, o)));
    }

    fn multicast_output(&self, group: &GroupName, output: MulticastOutput) -> NodeOutput {
        match output {
            MulticastOutput::Send { to, body } => NodeOutput::Send {
                to,
                envelope: self.envelope(Some(group.clone()), body),
            },
            MulticastOutput::SendAll { to, body } => NodeOutput::SendAll {
                to,
                envelope: self.envelope(Some(group.clone()), body),
            },
            event => NodeOutput::Group {
                group: group.clone(),
                event,
            },
        }
    }

    /// Points the failure detector at the installed views' members: per view, the members
    /// this process watches and those that watch it on the view's ring ([`ring_peers`]:
    /// everyone in a view of at most `monitors + 1` members). Every member also watches its
    /// acting coordinator, and the view's first member heartbeats every member: a crashed
    /// coordinator is noticed by all, so reports of suspicions always reach a live one (a
    /// later acting coordinator, which does not heartbeat everyone, answers their probes).
    fn refresh_monitored(&mut self, now: Time) {
        let monitors = self.settings.failure_detector.monitors;
        let mut watched = BTreeMap::new();
        let mut watchers = BTreeMap::new();
        for group in self.groups.values() {
            let Some(view) = group.view() else {
                continue;
            };
            let (to_watch, watching_me) = match view.members.iter().position(|m| m.id == self.me.id)
            {
                Some(0) => {
                    let (to_watch, _) = ring_peers(&view.members, 0, monitors);
                    (to_watch, view.members[1..].to_vec())
                }
                Some(at) => ring_peers(&view.members, at, monitors),
                // Not listed (never while a member): watch everyone, as before joining.
                None => (view.members.clone(), view.members.clone()),
            };
            watched.extend(to_watch.into_iter().map(|m| (m.id, m.addr)));
            watchers.extend(watching_me.into_iter().map(|m| (m.id, m.addr)));
            if let Some(coordinator) = group.acting_coordinator().filter(|c| c.id != self.me.id) {
                watched.insert(coordinator.id, coordinator.addr);
            }
            // A member suspected now stays watched while it is in the view, so the suspicion
            // holds until it is heard from again (or the view drops it). Suspecting the
            // coordinator moves the watch to the next acting one, and would otherwise forget
            // the suspicion the moment it was raised.
            for member in &view.members {
                if member.id != self.me.id && self.failure_detector.is_suspected(member.id) {
                    watched.insert(member.id, member.addr);
                }
            }
        }
        // A suspected peer the detector stops watching is forgotten without a word, and it
        // starts trusted if watched again: the groups' suspicions of it must go too, or a group
        // would act on a suspicion its detector no longer holds for ever (a live member
        // suspected again after every view change). A peer that is really down is suspected
        // again once watched again.
        let forgotten: Vec<ProcessId> = self
            .failure_detector
            .monitored()
            .filter(|id| !watched.contains_key(id) && self.failure_detector.is_suspected(*id))
            .collect();
        self.failure_detector.set_peers(now, watched, watchers);
        for peer in forgotten {
            for core in self.groups.values_mut() {
                core.handle_unsuspect(now, peer);
            }
        }
    }
}

/// Whether `body` belongs to a group's multicast core (streams, retransmission, state
/// transfer, point-to-point messages) rather than to its membership.
/// The largest client request a group with multicast payloads of at most `payload_bytes_max`
/// takes: under half of it, so that a strategy can always carry a request and its response
/// (a compare-and-swap's current value, say, itself at most a request's size) in one
/// multicast, with room for its own header. A request the group could take but its strategy
/// could not multicast would otherwise stop the replica that executed it.
pub fn request_bytes_max(payload_bytes_max: usize) -> usize {
    payload_bytes_max.saturating_sub(REQUEST_HEADROOM_BYTES) / 2
}

/// Room left in a multicast for a strategy's own fields around a request and its response.
pub const REQUEST_HEADROOM_BYTES: usize = 4096;

fn is_multicast_traffic(body: &Body) -> bool {
    matches!(
        body,
        Body::Data { .. }
            | Body::Ack { .. }
            | Body::Nak { .. }
            | Body::StateRequest { .. }
            | Body::StateChunk { .. }
            | Body::Direct { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};
    use crate::proto::multicast::Message;
    use crate::wire::{Entry, Item};

    fn group() -> GroupName {
        GroupName::new("g").unwrap()
    }

    fn member(n: u64) -> Member {
        Member {
            id: ProcessId {
                node: NodeId(n),
                incarnation: Incarnation(1),
            },
            addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
        }
    }

    /// An envelope from `from` about `group`.
    fn from_peer(from: u64, group: Option<GroupName>, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            sender: member(from).id,
            sender_addr: member(from).addr,
            seq: 1,
            group,
            body,
        }
    }

    /// Node 1, which founded group `g` alone (FIFO multicasts), at the time it did.
    fn founder() -> (NodeCore, Time) {
        let mut settings = NodeSettings::default();
        settings.membership.bootstrap = true;
        let mut core = NodeCore::new(member(1), Vec::new(), settings);
        core.set_group_multicast(
            group(),
            MulticastConfig {
                ordering: Ordering::Fifo,
                ..MulticastConfig::default()
            },
        );
        let out = core.handle_join(Time::ZERO, group()).unwrap();
        assert!(
            matches!(out[0], NodeOutput::ViewInstalled { .. }),
            "{out:?}"
        );
        assert_eq!(core.view(&group()).unwrap().members, vec![member(1)]);
        (core, Time::ZERO)
    }

    /// What the outputs are, in order, to whom, and which body they carry.
    fn shape(out: &[NodeOutput]) -> Vec<String> {
        fn body(b: &Body) -> String {
            format!("{b:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap()
                .to_string()
        }
        out.iter()
            .map(|o| match o {
                NodeOutput::Send { to, envelope } => format!("send {to} {}", body(&envelope.body)),
                NodeOutput::SendAll { to, envelope } => {
                    format!("send-all {to:?} {}", body(&envelope.body))
                }
                NodeOutput::Reply {
                    connection,
                    envelope,
                } => format!("reply {} {}", connection.0, body(&envelope.body)),
                NodeOutput::ViewInstalled { group, change } => {
                    format!("view {group} {}", change.view)
                }
                NodeOutput::ViewAccepted { group, accepted } => {
                    format!("accepted {group} {}", accepted.view)
                }
                NodeOutput::Group { group, event } => {
                    let event = format!("{event:?}");
                    format!("{group} {}", event.split([' ', '(']).next().unwrap())
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    /// A client request at a member blocked on its join (no seed answers): refused `Blocked`,
    /// unless the group's service registered as available while blocked.
    #[test]
    fn a_blocked_member_refuses_requests_unless_its_service_is_available_while_blocked() {
        let request = || {
            from_peer(
                9,
                Some(group()),
                Body::Request {
                    tag: 1,
                    payload: Bytes::from_static(b"op"),
                },
            )
        };
        let mut core = NodeCore::new(member(1), vec![member(2).addr], NodeSettings::default());
        core.handle_join(Time::ZERO, group()).unwrap();
        let later = Time::from_secs(600);
        assert!(core.groups().next().unwrap().blocked(later).is_some());
        let out = core.handle_envelope(later, request(), ConnectionId(7));
        assert!(
            matches!(&out[..], [NodeOutput::Reply { envelope, .. }]
                if matches!(&envelope.body, Body::Response { outcome: Err(Refusal::Blocked(_)), .. })),
            "{out:?}"
        );
        core.set_available_while_blocked(&group(), true);
        let out = core.handle_envelope(later, request(), ConnectionId(7));
        assert!(
            matches!(&out[..], [NodeOutput::Request(r)] if r.group == group()),
            "{out:?}"
        );
        core.set_available_while_blocked(&group(), false);
        let out = core.handle_envelope(later, request(), ConnectionId(7));
        assert!(matches!(&out[..], [NodeOutput::Reply { .. }]), "{out:?}");
    }

    #[test]
    fn a_join_request_from_a_peer_goes_to_the_groups_membership() {
        let (mut core, now) = founder();
        let join = Body::JoinRequest {
            member: member(2),
            last_epoch: 0,
        };
        let out = core.handle_envelope(now, from_peer(2, Some(group()), join), ConnectionId(7));
        // The founder tells the joiner the view it found, decides the next view alone (a
        // majority of one voter), installs it and tells the joiner, which is a learner that
        // gets the state from the founder's snapshot.
        assert_eq!(
            shape(&out),
            vec![
                "send 10.0.0.2:7000 DiscoverReply",
                "g Block",
                "accepted g g view 2@1.1 [1, 2~]",
                "send 10.0.0.2:7000 Install",
                "view g g view 2@1.1 [1, 2~]",
                "g View",
                "g SnapshotWanted",
            ],
        );
        let view = core.view(&group()).unwrap();
        assert_eq!(view.members, vec![member(1), member(2)]);
        assert_eq!(view.voters, 1);
        // The failure detector now watches the joiner: its next tick heartbeats it.
        let out = core.handle_tick(now + Time::from_secs(1));
        assert!(
            out.iter()
                .any(|o| matches!(o, NodeOutput::Send { to, envelope }
                if *to == member(2).addr && matches!(envelope.body, Body::Heartbeat { .. }))),
            "{out:?}"
        );
    }

    /// Member 5 in a view of six with two monitors each: it heartbeats only its watchers (6
    /// and 1) and watches only 4, 3 and the coordinator 1; when 4 falls silent it suspects it
    /// and reports it to the coordinator, which does not watch 4 itself.
    #[test]
    fn in_a_view_larger_than_monitors_plus_one_the_detector_follows_the_ring() {
        let mut settings = NodeSettings::default();
        settings.failure_detector.monitors = 2;
        let mut core = NodeCore::new(member(5), vec![member(1).addr], settings);
        core.handle_join(Time::ZERO, group()).unwrap();
        let members: Vec<Member> = (1..=6).map(member).collect();
        let view = View {
            group: group(),
            id: crate::id::ViewId {
                epoch: 3,
                coordinator: member(1).id,
            },
            voters: members.len(),
            members,
        };
        let install = Body::Install {
            base: None,
            ballot: crate::wire::Ballot {
                round: crate::wire::Round(0),
                proposer: member(1).id,
            },
            decision: crate::wire::Decision {
                view: view.clone(),
                cut: Vec::new(),
                joiners: Vec::new(),
            },
        };
        let now = Time::from_millis(10);
        core.handle_envelope(now, from_peer(1, Some(group()), install), ConnectionId(7));
        assert_eq!(core.view(&group()), Some(&view));
        let sent = |out: &[NodeOutput], kind: &str| -> BTreeSet<SocketAddr> {
            out.iter()
                .filter_map(|o| match o {
                    NodeOutput::Send { to, envelope } if envelope.body.kind() == kind => Some(*to),
                    _ => None,
                })
                .collect()
        };
        let out = core.handle_tick(now);
        assert_eq!(
            sent(&out, "heartbeat"),
            [member(6).addr, member(1).addr].into()
        );
        let watched: BTreeSet<ProcessId> = core.failure_detector().monitored().collect();
        assert_eq!(watched, [member(1).id, member(3).id, member(4).id].into());
        // Member 3 keeps heartbeating, member 4 falls silent: probed, then suspected and
        // reported to the coordinator.
        let mut reports = Vec::new();
        let mut views_to_4 = 0;
        for t in (20..1000).step_by(10) {
            let at = Time::from_millis(t);
            core.handle_heard(at, member(1).id);
            core.handle_heard(at, member(3).id);
            for o in core.handle_tick(at) {
                if let NodeOutput::Send { to, envelope } = o {
                    assert!(envelope.body.kind() != "probe" || to == member(4).addr);
                    if let Body::Suspicions { suspects, .. } = envelope.body {
                        reports.push((to, suspects));
                    } else if let Body::Heartbeat { views } = envelope.body {
                        // 4 is not a watcher: it hears this member's views only with a probe.
                        if to == member(4).addr {
                            assert_eq!(views, vec![(group(), view.id)]);
                            views_to_4 += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(reports[0], (member(1).addr, vec![member(4).id]));
        assert!(core.failure_detector().is_suspected(member(4).id));
        assert_eq!(core.failure_detector().suspicions(), 1);
        // The suspect is probed again while suspected, each probe with this member's views.
        assert!(
            views_to_4 >= 2,
            "{views_to_4} heartbeats to the probed member"
        );

        // A heartbeat from a later view is answered with this member's views, so the peer
        // ahead repairs it (anti-entropy answers older views); one from the same view is not.
        let later = crate::id::ViewId {
            epoch: 4,
            coordinator: member(1).id,
        };
        let answered = |core: &mut NodeCore, peer_view| {
            let beat = Body::Heartbeat {
                views: vec![(group(), peer_view)],
            };
            core.handle_envelope(Time::from_secs(2), from_peer(3, None, beat), ConnectionId(8))
                .into_iter()
                .any(|o| {
                    matches!(o, NodeOutput::Send { to, envelope: Envelope { body: Body::Heartbeat { views }, .. } }
                        if to == member(3).addr && views == vec![(group(), view.id)])
                })
        };
        assert!(answered(&mut core, later));
        assert!(!answered(&mut core, view.id));
    }

    #[test]
    fn data_goes_to_the_groups_multicast_and_is_delivered() {
        let (mut core, now) = founder();
        let join = Body::JoinRequest {
            member: member(2),
            last_epoch: 0,
        };
        core.handle_envelope(now, from_peer(2, Some(group()), join), ConnectionId(7));
        let view = core.view(&group()).unwrap().id;
        let data = Body::Data {
            view,
            origin: crate::wire::Rank(1),
            entries: vec![Entry {
                seq: crate::wire::Seq(1),
                ordering: Ordering::Fifo,
                clock: Vec::new(),
                item: Item::Payload(Bytes::from_static(b"hello")),
            }],
        };
        let out = core.handle_envelope(now, from_peer(2, Some(group()), data), ConnectionId(7));
        assert_eq!(
            out,
            vec![NodeOutput::Group {
                group: group(),
                event: MulticastOutput::Deliver(Message {
                    sender: member(2).id,
                    view,
                    seq: crate::wire::Seq(1),
                    ordering: Ordering::Fifo,
                    payload: Bytes::from_static(b"hello"),
                }),
            }]
        );
    }

    #[test]
    fn a_frame_for_a_group_this_process_is_not_in_is_ignored() {
        let (mut core, now) = founder();
        let other = GroupName::new("other").unwrap();
        let join = Body::JoinRequest {
            member: member(2),
            last_epoch: 0,
        };
        let out = core.handle_envelope(
            now,
            from_peer(2, Some(other.clone()), join),
            ConnectionId(7),
        );
        assert_eq!(out, vec![]);
        // A client asking for its members hears that there is no view here.
        let out = core.handle_envelope(
            now,
            from_peer(9, Some(other.clone()), Body::MembersRequest),
            ConnectionId(8),
        );
        assert_eq!(
            out,
            vec![NodeOutput::Reply {
                connection: ConnectionId(8),
                envelope: core.envelope(
                    Some(other),
                    Body::MembersResponse {
                        view: None,
                        blocked: None,
                    }
                ),
            }]
        );
    }

    #[test]
    fn a_members_request_is_answered_on_its_connection() {
        let (mut core, now) = founder();
        let out = core.handle_envelope(
            now,
            from_peer(9, Some(group()), Body::MembersRequest),
            ConnectionId(3),
        );
        let view = core.view(&group()).cloned();
        assert!(view.is_some());
        assert_eq!(
            out,
            vec![NodeOutput::Reply {
                connection: ConnectionId(3),
                envelope: core.envelope(
                    Some(group()),
                    Body::MembersResponse {
                        view,
                        blocked: None,
                    }
                ),
            }]
        );
    }

    /// Node 1's answer on connection 5 to client 9's request `tag` for `group`.
    fn refused(core: &NodeCore, group: GroupName, tag: u64, refusal: Refusal) -> NodeOutput {
        NodeOutput::Reply {
            connection: ConnectionId(5),
            envelope: core.envelope(
                Some(group),
                Body::Response {
                    tag,
                    outcome: Err(refusal),
                },
            ),
        }
    }

    #[test]
    fn a_client_request_goes_to_the_service_with_where_to_answer_it() {
        let (mut core, now) = founder();
        let request = Body::Request {
            tag: 41,
            payload: Bytes::from_static(b"put x 1"),
        };
        let out = core.handle_envelope(now, from_peer(9, Some(group()), request), ConnectionId(5));
        assert_eq!(
            out,
            vec![NodeOutput::Request(ClientRequest {
                group: group(),
                reply: ReplyTo {
                    connection: ConnectionId(5),
                    client: member(9).id,
                    tag: 41,
                },
                payload: Bytes::from_static(b"put x 1"),
            })]
        );
        // A client's request is not a sign of life of a member: nothing is monitored.
        assert!(core.failure_detector.monitored().next().is_none());
    }

    #[test]
    fn a_client_request_the_node_cannot_take_is_refused_typed_at_once() {
        let (mut core, now) = founder();
        let other = GroupName::new("other").unwrap();
        let request = |tag| Body::Request {
            tag,
            payload: Bytes::from_static(b"x"),
        };
        let out = core.handle_envelope(
            now,
            from_peer(9, Some(other.clone()), request(1)),
            ConnectionId(5),
        );
        assert_eq!(out, vec![refused(&core, other, 1, Refusal::NotMember)]);

        let limit = core.request_bytes_max(&group()).unwrap();
        let large = Body::Request {
            tag: 2,
            payload: Bytes::from(vec![0u8; limit + 1]),
        };
        let out = core.handle_envelope(now, from_peer(9, Some(group()), large), ConnectionId(5));
        let too_large = Refusal::TooLarge {
            size: limit as u64 + 1,
            limit: limit as u64,
        };
        assert_eq!(out, vec![refused(&core, group(), 2, too_large)]);

        // The service's answer goes back on the request's connection with its tag.
        let reply = ReplyTo {
            connection: ConnectionId(5),
            client: member(9).id,
            tag: 3,
        };
        let answer = core.response(
            &group(),
            reply,
            Err(Refusal::Busy(crate::wire::BusyReason::ViewChange)),
        );
        assert_eq!(
            answer,
            refused(
                &core,
                group(),
                3,
                Refusal::Busy(crate::wire::BusyReason::ViewChange)
            )
        );
    }

    #[test]
    fn a_probe_is_acknowledged_and_frames_from_itself_are_dropped() {
        let (mut core, now) = founder();
        let out = core.handle_envelope(now, from_peer(2, None, Body::Probe), ConnectionId(1));
        assert_eq!(
            out,
            vec![NodeOutput::Send {
                to: member(2).addr,
                envelope: core.envelope(None, Body::ProbeAck),
            }]
        );
        let out = core.handle_envelope(now, from_peer(1, None, Body::Probe), ConnectionId(1));
        assert_eq!(out, vec![]);
    }

    /// Sim seed 2924 reduced: node 2 suspects the coordinator 1, has 1's join pending (3
    /// forwarded it), and installs a view decided from a value accepted before, which still
    /// lists 1 as a voter: the group's core drops the suspicion with the join. The failure
    /// detector still suspects 1 and reports it again, so 2 proposes the view without it
    /// instead of waiting for 1 forever.
    #[test]
    fn a_suspicion_a_view_change_dropped_is_reported_again() {
        use crate::wire::{Ballot, CutEntry, Decision, Rank, Round, Seq};
        let view = |epoch| View {
            group: group(),
            id: ViewId {
                epoch,
                coordinator: member(1).id,
            },
            members: vec![member(1), member(2), member(3)],
            voters: 3,
        };
        let decision = |epoch| Decision {
            view: view(epoch),
            cut: (0..3)
                .map(|r| CutEntry {
                    upto: Seq(0),
                    holder: Rank(r),
                })
                .collect(),
            joiners: Vec::new(),
        };
        let ballot = |round, n| Ballot {
            round: Round(round),
            proposer: member(n).id,
        };
        let ms = Time::from_millis;
        let seeds = vec![member(1).addr, member(3).addr];
        let mut core = NodeCore::new(member(2), seeds, NodeSettings::default());
        core.handle_join(Time::ZERO, group()).unwrap();
        let install = Body::Install {
            base: None,
            ballot: ballot(0, 1),
            decision: decision(6),
        };
        core.handle_envelope(ms(1), from_peer(1, Some(group()), install), ConnectionId(1));
        assert_eq!(core.view(&group()).unwrap().id, view(6).id);
        // 1 falls silent; 3 does not.
        let mut suspected = false;
        for t in (50..=1000).step_by(50) {
            core.handle_heard(ms(t), member(3).id);
            let out = core.handle_tick(ms(t));
            suspected |= out.contains(&NodeOutput::Suspected(member(1).id));
        }
        assert!(suspected);
        let join = Body::JoinRequest {
            member: member(1),
            last_epoch: 6,
        };
        core.handle_envelope(ms(1010), from_peer(3, Some(group()), join), ConnectionId(3));
        let install = Body::Install {
            base: Some(view(6).id),
            ballot: ballot(7, 1),
            decision: decision(7),
        };
        let mut out = core.handle_envelope(
            ms(1020),
            from_peer(3, Some(group()), install),
            ConnectionId(3),
        );
        assert_eq!(core.view(&group()).unwrap().id, view(7).id);
        core.handle_heard(ms(1030), member(3).id);
        out.extend(core.handle_tick(ms(1030)));
        let prepared: Vec<SocketAddr> = out
            .iter()
            .filter_map(|o| match o {
                NodeOutput::Send { to, envelope } => match &envelope.body {
                    Body::Prepare { base, .. } if base.id == view(7).id => Some(*to),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(prepared, vec![member(1).addr, member(3).addr]);
    }

    /// Process `me` holding the installed view 6@1 of members 1, 2, 3 of group `g`.
    fn member_of_three(me: u64) -> NodeCore {
        use crate::wire::{Ballot, CutEntry, Decision, Rank, Round, Seq};
        let view = View {
            group: group(),
            id: ViewId {
                epoch: 6,
                coordinator: member(1).id,
            },
            members: vec![member(1), member(2), member(3)],
            voters: 3,
        };
        let decision = Decision {
            view,
            cut: (0..3)
                .map(|r| CutEntry {
                    upto: Seq(0),
                    holder: Rank(r),
                })
                .collect(),
            joiners: Vec::new(),
        };
        let seeds = (1..=3)
            .filter(|n| *n != me)
            .map(|n| member(n).addr)
            .collect();
        let mut core = NodeCore::new(member(me), seeds, NodeSettings::default());
        core.handle_join(Time::ZERO, group()).unwrap();
        let from = if me == 1 { 2 } else { 1 };
        let install = Body::Install {
            base: None,
            ballot: Ballot {
                round: Round(0),
                proposer: member(1).id,
            },
            decision,
        };
        core.handle_envelope(
            Time::from_millis(1),
            from_peer(from, Some(group()), install),
            ConnectionId(1),
        );
        assert_eq!(core.view(&group()).unwrap().id.epoch, 6);
        core
    }

    /// Where the outputs send `Prepare`s of a view change of view 6.
    fn prepares(out: &[NodeOutput]) -> Vec<SocketAddr> {
        let mut to: Vec<SocketAddr> = out
            .iter()
            .flat_map(|o| match o {
                NodeOutput::Send { to, envelope }
                    if matches!(envelope.body, Body::Prepare { .. }) =>
                {
                    vec![*to]
                }
                NodeOutput::SendAll { to, envelope }
                    if matches!(envelope.body, Body::Prepare { .. }) =>
                {
                    to.clone()
                }
                _ => Vec::new(),
            })
            .collect();
        to.sort();
        to
    }

    /// An operator's eviction at the coordinator starts a view change without the member at
    /// once (no failure detector timeout), and is not counted as a suspicion.
    #[test]
    fn an_eviction_at_the_coordinator_proposes_a_view_without_the_member() {
        let mut core = member_of_three(1);
        let now = Time::from_millis(5);
        let (evicted, out) = core.handle_evict(now, &group(), NodeId(3)).unwrap();
        assert_eq!(evicted, member(3).id);
        assert_eq!(
            prepares(&out),
            vec![member(2).addr, member(3).addr],
            "{out:?}"
        );
        let membership = core.groups().next().unwrap();
        assert!(membership.suspects(member(3).id));
        assert_eq!(membership.acting_coordinator(), Some(&member(1)));
        // The detector suspects it, as a timeout would; heard from again, it is unsuspected.
        assert_eq!(core.failure_detector().suspicions(), 1);
        let out = core.handle_heard(now, member(3).id);
        assert!(
            out.contains(&NodeOutput::Unsuspected(member(3).id)),
            "{out:?}"
        );
        assert!(!core.groups().next().unwrap().suspects(member(3).id));
    }

    /// At another member, evicting a member that does not coordinate changes who it asks
    /// nothing of (the shell passes the command to the coordinator); evicting the coordinator
    /// makes the next oldest member propose at once.
    #[test]
    fn an_eviction_elsewhere_proposes_only_where_it_makes_this_member_coordinator() {
        let mut core = member_of_three(2);
        let now = Time::from_millis(5);
        let (_, out) = core.handle_evict(now, &group(), NodeId(3)).unwrap();
        assert_eq!(prepares(&out), Vec::<SocketAddr>::new(), "{out:?}");
        assert_eq!(
            core.groups().next().unwrap().acting_coordinator(),
            Some(&member(1))
        );
        let mut core = member_of_three(2);
        let (evicted, out) = core.handle_evict(now, &group(), NodeId(1)).unwrap();
        assert_eq!(evicted, member(1).id);
        assert_eq!(
            core.groups().next().unwrap().acting_coordinator(),
            Some(&member(2))
        );
        assert!(!prepares(&out).is_empty(), "{out:?}");
    }

    /// Evictions the node cannot carry out are refused and change nothing.
    #[test]
    fn an_eviction_that_cannot_be_carried_out_is_refused() {
        let mut core = member_of_three(1);
        let now = Time::from_millis(5);
        assert_eq!(
            core.handle_evict(now, &group(), NodeId(1)).unwrap_err(),
            EvictError::Itself
        );
        assert!(matches!(
            core.handle_evict(now, &group(), NodeId(9)).unwrap_err(),
            EvictError::NotInView {
                node: NodeId(9),
                ..
            }
        ));
        let other = GroupName::new("other").unwrap();
        assert_eq!(
            core.handle_evict(now, &other, NodeId(2)).unwrap_err(),
            EvictError::NotMember(other)
        );
        let membership = core.groups().next().unwrap();
        assert!(!membership.suspects(member(2).id) && !membership.suspects(member(3).id));
    }

    /// Operators' requests never reach the cores (the shell answers them): nothing comes out,
    /// and they are no sign of life.
    #[test]
    fn operator_requests_are_left_to_the_shell() {
        let mut core = member_of_three(1);
        for body in [
            Body::StatusRequest,
            Body::MonitorRequest,
            Body::LeaveCommand,
            Body::EvictCommand { node: NodeId(2) },
        ] {
            let out = core.handle_envelope(
                Time::from_millis(5),
                from_peer(9, Some(group()), body),
                ConnectionId(4),
            );
            assert!(out.is_empty(), "{out:?}");
        }
        assert_eq!(core.view(&group()).unwrap().members.len(), 3);
    }
}
