//! Group membership core: one instance per group a process belongs to.
//!
//! # How a view changes
//!
//! Each view change is one consensus instance among the members of the current view (the
//! *base*): single-decree Paxos whose value is the next view. The acting coordinator (the
//! oldest member of the base it does not suspect) collects the pending joins, leaves and
//! suspicions into one proposal, runs `Prepare`/`Promise` then `Accept`/`Accepted` with a
//! majority of the base, and sends `Install` of the decided view to everyone concerned.
//! Because every view is decided by a majority of its predecessor, a minority side cannot
//! install anything: it retries and blocks instead of splitting the brain, and two proposers
//! for the same base (a coordinator and the member that suspects it) can never decide
//! different views.
//!
//! # Properties (checked by the simulator after every step)
//!
//! - *self-inclusion*: a process installs only views that contain it;
//! - *monotonic views*: the epochs a process installs strictly increase;
//! - *view agreement*: views with the same id have the same members;
//! - *primary partition*: every view but a group's first was accepted by a majority of the
//!   view it succeeds;
//! - *eventual agreement*: once faults stop, all live members install the same view.
//!
//! # Joining, bootstrap and merging
//!
//! A joiner sends `JoinRequest` to its seeds; members forward it to the acting coordinator.
//! If after `bootstrap_timeout` no seed answered as a member, and the joiner has the lowest
//! process id among the joiners that answered, it creates the group as a singleton view. Two
//! nodes that still create two views of one group (seeds that do not see each other) find out
//! through `Discover`; the view with the lower epoch (then fewer members, then higher
//! coordinator id) yields and its members join the other. A joiner's next view has a higher epoch than any
//! it installed before, so epochs stay strictly increasing across a merge.

use super::multicast::{compose_cut, Multicast, MulticastConfig, MulticastOutput};
#[cfg(feature = "planted-bugs")]
use super::planted::{self, PlantedBug};
use super::Time;
use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::{Member, View, ViewChange};
use crate::wire::{Ballot, Blocked, BlockedReason, Body, Decision, FlushReport};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

/// Membership settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a joiner (or leaver) repeats its request.
    pub join_retry_interval: Duration,
    /// Whether this process may found the group (first start of a new cluster): after
    /// `bootstrap_timeout` without a seed that is a member, it creates the group's first view.
    /// Without it a process never founds a group: it keeps asking its seeds (and says so), so
    /// a restart during a partition can never start a second group beside the real one.
    /// Set by the top-level `bootstrap` key of the configuration file.
    pub bootstrap: bool,
    /// How long a founding process waits for a seed that is a member before it creates the
    /// group.
    pub bootstrap_timeout: Duration,
    /// How long a proposal may wait for a majority before it is retried with a higher ballot.
    pub view_change_timeout: Duration,
    /// How often a view's coordinator looks for other views of its group among its seeds.
    pub discovery_interval: Duration,
    /// How long a graceful leave waits for the view without the leaver before giving up.
    pub leave_timeout: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            join_retry_interval: Duration::from_millis(200),
            bootstrap: false,
            bootstrap_timeout: Duration::from_millis(1000),
            view_change_timeout: Duration::from_millis(400),
            discovery_interval: Duration::from_millis(1000),
            leave_timeout: Duration::from_millis(3000),
        }
    }
}

/// What the membership core asks its shell to do or tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipOutput {
    /// Send `body`, scoped to this group, to `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// The message.
        body: Body,
    },
    /// Send `body`, scoped to this group, to each of `to` (one frame, sealed once).
    SendAll {
        /// Destination addresses.
        to: Vec<SocketAddr>,
        /// The message.
        body: Body,
    },
    /// A new view is installed.
    ViewInstalled(ViewChange),
    /// This process was removed from the group (suspected, or its view yielded in a merge);
    /// it is joining again.
    Excluded {
        /// The view that excludes this process, if it is known.
        by: Option<ViewId>,
    },
    /// A graceful leave completed (or timed out); this process is no longer a member.
    Left,
    /// A seed refused this process's frames (wrong key or protocol); logged by the shell.
    RefusedBy {
        /// The seed.
        seed: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// An event of the group's multicast for the service (never `MulticastOutput::Send` or
    /// `SendAll`, which become [`MembershipOutput::Send`] and [`MembershipOutput::SendAll`]).
    Multicast(MulticastOutput),
}

/// Turns multicast outputs into membership outputs.
fn emit(out: &mut Vec<MembershipOutput>, outputs: Vec<MulticastOutput>) {
    out.extend(outputs.into_iter().map(|o| match o {
        MulticastOutput::Send { to, body } => MembershipOutput::Send { to, body },
        MulticastOutput::SendAll { to, body } => MembershipOutput::SendAll { to, body },
        other => MembershipOutput::Multicast(other),
    }));
}

/// Where a process stands in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Asking seeds to join.
    Joining {
        /// When this join attempt began.
        since: Time,
        /// A member address learned to be in the group; tried first.
        via: Option<SocketAddr>,
    },
    /// In the installed view.
    Member,
    /// Waiting for the view without this process.
    Leaving {
        /// When the leave began.
        since: Time,
    },
    /// Left the group.
    Left,
}

/// The promises a proposer collected: what each promiser accepted before, and its report.
type Promises = BTreeMap<ProcessId, (Option<(Ballot, Decision)>, FlushReport)>;

#[derive(Clone, Debug)]
enum Phase {
    Preparing {
        promises: Promises,
    },
    Accepting {
        decision: Decision,
        accepted: BTreeSet<ProcessId>,
    },
}

#[derive(Clone, Debug)]
struct Proposal {
    base: View,
    ballot: Ballot,
    started: Time,
    phase: Phase,
}

/// This member's acceptor state for the instance deciding the successor of `base`.
#[derive(Clone, Debug, Default)]
struct Acceptor {
    base: Option<ViewId>,
    promised: Option<Ballot>,
    accepted: Option<(Ballot, Decision)>,
}

/// A proposal this member will accept once it holds the cut. Until then it has only
/// promised: an acceptor that cannot get the cut (its holders crashed) never accepts it, so
/// a later proposer is never forced to adopt a cut nobody can deliver.
#[derive(Clone, Debug)]
struct AwaitingCut {
    proposer: Member,
    base: ViewId,
    ballot: Ballot,
    decision: Decision,
}

/// The membership core of one group at one process.
#[derive(Debug)]
pub struct Membership {
    group: GroupName,
    me: Member,
    seeds: Vec<SocketAddr>,
    config: MembershipConfig,
    status: Status,
    view: Option<View>,
    last_epoch: u64,
    acceptor: Acceptor,
    proposal: Option<Proposal>,
    highest_round: u64,
    pending_joins: BTreeMap<ProcessId, (Member, u64)>,
    pending_leaves: BTreeSet<ProcessId>,
    suspected: BTreeSet<ProcessId>,
    /// Joiners that answered our join request (also not members), with when they answered.
    joining_peers: BTreeMap<ProcessId, Time>,
    /// A seed answered as a member, or refused us: do not create the group.
    group_seen: bool,
    last_request: Option<Time>,
    last_discovery: Option<Time>,
    multicast: Multicast,
    /// The last decision this process installed, with its base: resent to a member still in
    /// the base, which needs the cut.
    last_decision: Option<(ViewId, Ballot, Decision)>,
    awaiting_cut: Option<AwaitingCut>,
    /// A member reported being blocked in this view: finish the view change even if no
    /// membership change is pending.
    force_change: bool,
    /// When this process first promised in its current view (it is blocked since).
    promised_since: Option<Time>,
    last_stall_notice: Option<Time>,
    /// Learners of the installed view that reported holding the state: the next view change
    /// promotes them to voters.
    pending_promotions: BTreeSet<ProcessId>,
    /// When this process last started a proposal.
    last_attempt: Option<Time>,
    /// Outbid by another proposer: no new proposal before this time.
    retry_not_before: Option<Time>,
    /// Since when the last proposal found no promiser holding the group's state: the view
    /// change waits (blocked) for a holder instead of deciding a view without the state.
    no_holder_since: Option<Time>,
    /// A later view that lists this process, heard of without its decision (from a member
    /// that installed it without the cut, or through discovery), and since when. A member
    /// holding the state waits up to a view change timeout for the decision (resent by the
    /// members that installed it, on this process's heartbeats) before installing the view
    /// without its cut: that would drop the state it holds and wait for a transfer, and if
    /// every holder did so the group's state would be gone.
    undecided_view: Option<(View, Time)>,
}

impl Membership {
    /// A membership core for `group` at process `me`, joining through `seeds`. Call
    /// [`Membership::handle_start`] to begin.
    pub fn new(
        group: GroupName,
        me: Member,
        seeds: Vec<SocketAddr>,
        config: MembershipConfig,
        multicast: MulticastConfig,
    ) -> Self {
        let seeds = seeds.into_iter().filter(|s| *s != me.addr).collect();
        Membership {
            group,
            me,
            seeds,
            config,
            status: Status::Left,
            view: None,
            last_epoch: 0,
            acceptor: Acceptor::default(),
            proposal: None,
            highest_round: 0,
            pending_joins: BTreeMap::new(),
            pending_leaves: BTreeSet::new(),
            suspected: BTreeSet::new(),
            joining_peers: BTreeMap::new(),
            group_seen: false,
            last_request: None,
            last_discovery: None,
            multicast: Multicast::new(me.id, multicast),
            last_decision: None,
            awaiting_cut: None,
            force_change: false,
            promised_since: None,
            last_stall_notice: None,
            pending_promotions: BTreeSet::new(),
            last_attempt: None,
            retry_not_before: None,
            no_holder_since: None,
            undecided_view: None,
        }
    }

    /// A one-line account of the view change in progress, for traces.
    pub fn describe(&self) -> String {
        let proposal = self.proposal.as_ref().map(|p| {
            let phase = match &p.phase {
                Phase::Preparing { promises } => {
                    format!("preparing {:?}", promises.keys().collect::<Vec<_>>())
                }
                Phase::Accepting { decision, accepted } => format!(
                    "accepting {} cut {:?} joiners {:?} accepted {:?}",
                    decision.view, decision.cut, decision.joiners, accepted
                ),
            };
            format!(
                "{} ballot {:?} started {:?} {phase}",
                p.base.id, p.ballot, p.started
            )
        });
        format!(
            "proposal {proposal:?} acceptor {:?}/{:?}/{:?} awaiting {:?} suspected {:?} pending joins {:?} leaves {:?} force {}",
            self.acceptor.base,
            self.acceptor.promised,
            self.acceptor.accepted.as_ref().map(|(b, d)| (b, d.view.id)),
            self.awaiting_cut.as_ref().map(|a| (a.base, a.ballot, &a.decision.cut)),
            self.suspected,
            self.pending_joins.keys().collect::<Vec<_>>(),
            self.pending_leaves,
            self.force_change
        )
    }

    /// The group's multicast core.
    pub fn multicast(&self) -> &Multicast {
        &self.multicast
    }

    /// Runs `f` on the multicast core and turns its outputs into membership outputs; then an
    /// accept waiting for the cut may be answerable.
    pub fn with_multicast<R>(
        &mut self,
        now: Time,
        f: impl FnOnce(&mut Multicast, &mut Vec<MulticastOutput>) -> R,
    ) -> (R, Vec<MembershipOutput>) {
        let mut outputs = Vec::new();
        let result = f(&mut self.multicast, &mut outputs);
        let mut out = Vec::new();
        emit(&mut out, outputs);
        self.answer_awaiting_cut(now, &mut out);
        (result, out)
    }

    /// Accepts a proposal waiting for its cut once this member holds it, and replies.
    fn answer_awaiting_cut(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        let Some(awaiting) = &self.awaiting_cut else {
            return;
        };
        let still_promised = self.acceptor.base == Some(awaiting.base)
            && self.acceptor.promised.is_some_and(|p| p <= awaiting.ballot);
        if !still_promised {
            self.awaiting_cut = None;
            return;
        }
        if !self.multicast.holds(awaiting.base, &awaiting.decision.cut) {
            return;
        }
        let awaiting = self.awaiting_cut.take().expect("checked");
        self.acceptor.promised = Some(awaiting.ballot);
        self.acceptor.accepted = Some((awaiting.ballot, awaiting.decision));
        let reply = Body::Accepted {
            base: awaiting.base,
            ballot: awaiting.ballot,
        };
        self.reply(now, awaiting.proposer, reply, out);
    }

    /// The highest epoch this process has installed in this group (0 if none).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// The group.
    pub fn group(&self) -> &GroupName {
        &self.group
    }

    /// The installed view, if this process is a member.
    pub fn view(&self) -> Option<&View> {
        match self.status {
            Status::Member | Status::Leaving { .. } => self.view.as_ref(),
            _ => None,
        }
    }

    /// Whether a value for the installed view's successor has been accepted here (by this
    /// process as an acceptor): a view change is under way, and its decision may already be
    /// chosen (so the next view's members and voters may be settled).
    pub fn successor_accepted(&self) -> bool {
        let current = self.view.as_ref().map(|v| v.id);
        current.is_some()
            && self.acceptor.base == current
            && (self.acceptor.accepted.is_some() || self.awaiting_cut.is_some())
    }

    /// Where this process stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether this process is blocked in the group, since when and on what: a view change
    /// has been under way (its multicast frozen) for twice the view change timeout, or it
    /// has been joining that long with no seed answering as a member and no `bootstrap`.
    pub fn blocked(&self, now: Time) -> Option<Blocked> {
        let patience = self.config.view_change_timeout * 2;
        match self.status {
            Status::Joining { since, .. } => {
                let waited = now.saturating_sub(since);
                // A process that may found the group is not waiting for anyone.
                let may_found = self.config.bootstrap && self.last_epoch == 0;
                let waiting = !(self.group_seen || may_found)
                    && waited >= self.config.bootstrap_timeout.max(patience);
                waiting.then_some(Blocked {
                    view: None,
                    blocked_ms: waited.as_millis() as u64,
                    reason: BlockedReason::NoSeedAnswered,
                })
            }
            Status::Member | Status::Leaving { .. } => {
                let view = self.view.as_ref()?;
                let since = self.promised_since?;
                let waited = now.saturating_sub(since);
                if waited < patience {
                    return None;
                }
                let reason = if self.no_holder_since.is_some() {
                    BlockedReason::NoStateHolder
                } else {
                    let voters: Vec<ProcessId> = view.voters().iter().map(|m| m.id).collect();
                    let reachable = voters
                        .iter()
                        .copied()
                        .filter(|p| *p == self.me.id || !self.suspected.contains(p))
                        .collect();
                    BlockedReason::NoMajority {
                        voters,
                        reachable,
                        needed: view.majority(),
                    }
                };
                Some(Blocked {
                    view: Some(view.id),
                    blocked_ms: waited.as_millis() as u64,
                    reason,
                })
            }
            Status::Left => None,
        }
    }

    /// The member this process treats as coordinator: the oldest member it does not suspect.
    pub fn acting_coordinator(&self) -> Option<&Member> {
        let view = self.view()?;
        view.members
            .iter()
            .find(|m| m.id == self.me.id || !self.suspected.contains(&m.id))
    }

    fn is_acting_coordinator(&self) -> bool {
        self.acting_coordinator()
            .is_some_and(|m| m.id == self.me.id)
    }

    /// Starts joining the group. With no seeds and `bootstrap` set, the group is created at
    /// once; with no seeds and no `bootstrap`, the process waits (there is nobody to ask).
    pub fn handle_start(&mut self, now: Time) -> Vec<MembershipOutput> {
        self.begin_joining(now, None);
        let mut out = Vec::new();
        if self.seeds.is_empty() {
            if self.config.bootstrap && self.last_epoch == 0 {
                self.create_group(&mut out);
            }
        } else {
            self.send_join_requests(now, &mut out);
        }
        out
    }

    /// Leaves the group gracefully: the coordinator installs a view without this process.
    pub fn handle_leave(&mut self, now: Time) -> Vec<MembershipOutput> {
        let mut out = Vec::new();
        match self.status {
            Status::Member => {
                self.status = Status::Leaving { since: now };
                // The first leave request goes out at once, not a retry interval after the join.
                self.last_request = None;
                self.pending_leaves.insert(self.me.id);
                let alone = self.view.as_ref().is_some_and(|v| v.members.len() == 1);
                if alone {
                    self.finish_leaving(&mut out);
                } else {
                    self.drive(now, &mut out);
                }
            }
            Status::Joining { .. } => self.finish_leaving(&mut out),
            Status::Leaving { .. } | Status::Left => {}
        }
        out
    }

    /// The failure detector suspects `peer`.
    pub fn handle_suspect(&mut self, now: Time, peer: ProcessId) -> Vec<MembershipOutput> {
        let mut out = Vec::new();
        if self.view().is_some_and(|v| v.contains(peer)) && peer != self.me.id {
            self.suspected.insert(peer);
            self.drive(now, &mut out);
        }
        out
    }

    /// The failure detector heard from a suspected `peer` again.
    pub fn handle_unsuspect(&mut self, _now: Time, peer: ProcessId) -> Vec<MembershipOutput> {
        self.suspected.remove(&peer);
        Vec::new()
    }

    /// A periodic tick: retries, timeouts, discovery.
    pub fn handle_tick(&mut self, now: Time) -> Vec<MembershipOutput> {
        let mut out = Vec::new();
        match self.status.clone() {
            Status::Joining { since, .. } => {
                self.joining_peers
                    .retain(|_, heard| now.saturating_sub(*heard) < self.config.bootstrap_timeout);
                // Only a process that was never a member may create the group: one that was
                // excluded or left waits for the group instead of starting a second one.
                let may_create = self.config.bootstrap
                    && !self.group_seen
                    && self.last_epoch == 0
                    && now.saturating_sub(since) >= self.config.bootstrap_timeout
                    && self.joining_peers.keys().all(|p| *p > self.me.id);
                if may_create {
                    self.create_group(&mut out);
                } else if self.request_due(now) {
                    self.send_join_requests(now, &mut out);
                }
            }
            Status::Member => {
                // No decision came for the view heard of: install it without one after all.
                let undecided = self.undecided_view.as_ref().filter(|(_, since)| {
                    now.saturating_sub(*since) >= self.config.view_change_timeout
                });
                if let Some((view, _)) = undecided.cloned() {
                    self.handle_decided_view(now, view, None, &mut out);
                    // Installed, or overtaken by a later install meanwhile.
                    let last_epoch = self.last_epoch;
                    self.undecided_view
                        .take_if(|(v, _)| v.id.epoch <= last_epoch);
                }
                self.drive(now, &mut out);
                self.discover(now, &mut out);
                self.tick_multicast(now, &mut out);
            }
            Status::Leaving { since } => {
                let alone = self.view.as_ref().is_some_and(|v| v.members == [self.me]);
                if alone || now.saturating_sub(since) >= self.config.leave_timeout {
                    self.finish_leaving(&mut out);
                } else {
                    self.drive(now, &mut out);
                    self.tick_multicast(now, &mut out);
                    if !self.is_acting_coordinator() && self.request_due(now) {
                        self.last_request = Some(now);
                        if let Some(coordinator) = self.acting_coordinator() {
                            out.push(MembershipOutput::Send {
                                to: coordinator.addr,
                                body: Body::LeaveRequest { member: self.me.id },
                            });
                        }
                    }
                }
            }
            Status::Left => {}
        }
        out
    }

    /// Multicast upkeep, and the two ways a member gets a stuck view change going: a member
    /// blocked too long tells the coordinator; a member without the state asks to be listed
    /// as a joiner of a new view.
    fn tick_multicast(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        let mut outputs = Vec::new();
        self.multicast.handle_tick(now, &mut outputs);
        emit(out, outputs);
        self.answer_awaiting_cut(now, out);
        let Some(view) = self.view().cloned() else {
            return;
        };
        let stalled = self
            .promised_since
            .is_some_and(|t| now.saturating_sub(t) >= self.config.view_change_timeout * 2);
        let notice_due = self
            .last_stall_notice
            .is_none_or(|t| now.saturating_sub(t) >= self.config.view_change_timeout);
        if stalled && notice_due && !self.is_acting_coordinator() {
            self.last_stall_notice = Some(now);
            if let Some(coordinator) = self.acting_coordinator() {
                out.push(MembershipOutput::Send {
                    to: coordinator.addr,
                    body: Body::ViewChangeStalled { base: view.id },
                });
            }
        }
        let ready_learner = self.status == Status::Member
            && !view.is_voter(self.me.id)
            && self.multicast.is_ready()
            && self
                .multicast
                .service_view()
                .is_some_and(|v| v.id == view.id);
        if ready_learner && self.request_due(now) {
            self.last_request = Some(now);
            if self.is_acting_coordinator() {
                self.pending_promotions.insert(self.me.id);
                self.drive(now, out);
            } else if let Some(coordinator) = self.acting_coordinator() {
                out.push(MembershipOutput::Send {
                    to: coordinator.addr,
                    body: Body::LearnerReady { view: view.id },
                });
            }
        }
        if self.multicast.needs_resync() && self.status == Status::Member && self.request_due(now) {
            self.last_request = Some(now);
            if self.is_acting_coordinator() {
                self.pending_joins
                    .insert(self.me.id, (self.me, self.last_epoch));
                self.drive(now, out);
            } else if let Some(coordinator) = self.acting_coordinator() {
                out.push(MembershipOutput::Send {
                    to: coordinator.addr,
                    body: Body::JoinRequest {
                        member: self.me,
                        last_epoch: self.last_epoch,
                    },
                });
            }
        }
    }

    /// A seed refused our frames.
    pub fn handle_refused(&mut self, from: SocketAddr, reason: String) -> Vec<MembershipOutput> {
        if matches!(self.status, Status::Joining { .. }) {
            self.group_seen = true;
            vec![MembershipOutput::RefusedBy { seed: from, reason }]
        } else {
            Vec::new()
        }
    }

    /// A peer's heartbeat said it has installed `peer_view` of this group. If this process
    /// knows a later view that contains the peer or excludes it, the peer is told.
    pub fn handle_peer_view(&mut self, from: Member, peer_view: ViewId) -> Vec<MembershipOutput> {
        // The peer is still in the base of the last decision this process knows (also after
        // leaving or being excluded by it): send that decision, with its cut.
        if let Some((base, ballot, decision)) = &self.last_decision {
            if *base == peer_view {
                return vec![MembershipOutput::Send {
                    to: from.addr,
                    body: Body::Install {
                        base: Some(*base),
                        ballot: *ballot,
                        decision: decision.clone(),
                    },
                }];
            }
        }
        // This process's leave timed out, and the peer still has the view listing it: tell the
        // peer it left, or the peer may wait for it for ever (as its coordinator: a process
        // that left still answers probes, so it is never suspected).
        let listed = self
            .view
            .as_ref()
            .is_some_and(|v| v.id == peer_view && v.contains(self.me.id));
        if self.status == Status::Left && listed {
            return vec![MembershipOutput::Send {
                to: from.addr,
                body: Body::LeaveRequest { member: self.me.id },
            }];
        }
        match self.view() {
            Some(view) if view.id.epoch > peer_view.epoch => {
                vec![MembershipOutput::Send {
                    to: from.addr,
                    body: self.newer_view_for(peer_view),
                }]
            }
            // A member of this view is in another view of the same epoch: two lineages share
            // it (a bootstrap race). Ask for its view; `consider_other_view` resolves it.
            Some(view)
                if view.id.epoch == peer_view.epoch
                    && view.id != peer_view
                    && view.contains(from.id) =>
            {
                vec![MembershipOutput::Send {
                    to: from.addr,
                    body: Body::Discover {
                        view: Some(view.clone()),
                    },
                }]
            }
            _ => Vec::new(),
        }
    }

    /// A group-scoped message from `from`.
    pub fn handle_message(&mut self, now: Time, from: Member, body: Body) -> Vec<MembershipOutput> {
        let mut out = Vec::new();
        match body {
            Body::JoinRequest { member, last_epoch } => {
                self.handle_join_request(now, from, member, last_epoch, &mut out)
            }
            Body::LeaveRequest { member } => self.handle_leave_request(now, from, member, &mut out),
            Body::Prepare {
                base,
                ballot,
                base_decided,
            } => self.handle_prepare(now, from, base, ballot, base_decided, &mut out),
            Body::Promise {
                base,
                ballot,
                accepted,
                report,
            } => self.handle_promise(now, from, base, ballot, accepted, report, &mut out),
            Body::Accept {
                base,
                ballot,
                base_decided,
                decision,
            } => self.handle_accept(now, from, base, ballot, base_decided, decision, &mut out),
            Body::Accepted { base, ballot } => {
                self.handle_accepted(now, from, base, ballot, &mut out)
            }
            Body::Rejected { base, promised } => self.handle_rejected(now, base, promised),
            Body::Install {
                base,
                ballot,
                decision,
            } => {
                let view = decision.view.clone();
                let decided = base.map(|base| (base, ballot, decision));
                self.handle_decided_view(now, view, decided, &mut out)
            }
            Body::Stale { view } => self.handle_decided_view(now, view, None, &mut out),
            Body::ViewChangeStalled { base } => {
                if self.view().is_some_and(|v| v.id == base) {
                    self.force_change = true;
                    self.drive(now, &mut out);
                }
            }
            Body::LearnerReady { view } => {
                let learner = self
                    .view()
                    .is_some_and(|v| v.id == view && v.contains(from.id) && !v.is_voter(from.id));
                if learner && self.is_acting_coordinator() {
                    self.pending_promotions.insert(from.id);
                    self.drive(now, &mut out);
                }
            }
            body @ (Body::Data { .. }
            | Body::Ack { .. }
            | Body::Nak { .. }
            | Body::StateRequest { .. }
            | Body::StateChunk { .. }
            | Body::Direct { .. }) => {
                let (_, outputs) =
                    self.with_multicast(now, |m, o| m.handle_message(now, from, body, o));
                out.extend(outputs);
            }
            Body::Discover { view } => self.handle_discover(now, from, view, &mut out),
            Body::DiscoverReply { view } => self.handle_discover_reply(now, from, view, &mut out),
            Body::MergeInto { target } => self.handle_merge_into(now, from, target, &mut out),
            Body::Heartbeat { .. }
            | Body::Probe
            | Body::ProbeAck
            | Body::MembersRequest
            | Body::MembersResponse { .. }
            | Body::GroupSend { .. }
            | Body::GroupSendResult { .. }
            | Body::Refused { .. } => {}
        }
        out
    }

    fn handle_join_request(
        &mut self,
        now: Time,
        from: Member,
        joiner: Member,
        last_epoch: u64,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(view) = self.view().cloned() else {
            if from.id == joiner.id && !matches!(self.status, Status::Left) {
                out.push(MembershipOutput::Send {
                    to: joiner.addr,
                    body: Body::DiscoverReply { view: None },
                });
            }
            return;
        };
        if from.id == joiner.id {
            out.push(MembershipOutput::Send {
                to: joiner.addr,
                body: Body::DiscoverReply {
                    view: Some(view.clone()),
                },
            });
        }
        if view.contains(joiner.id) && joiner.id != self.me.id {
            let is_coordinator = self.acting_coordinator().is_some_and(|c| c.id == joiner.id);
            if is_coordinator {
                // The member this process takes for coordinator is asking to join: it is not
                // acting as a member of this view, so stop waiting for it to coordinate.
                self.suspected.insert(joiner.id);
            }
        }
        if !self.is_acting_coordinator() {
            if let Some(coordinator) = self.acting_coordinator() {
                if from.id == joiner.id {
                    out.push(MembershipOutput::Send {
                        to: coordinator.addr,
                        body: Body::JoinRequest {
                            member: joiner,
                            last_epoch,
                        },
                    });
                }
            }
            return;
        }
        if view.contains(joiner.id)
            && last_epoch < view.id.epoch
            && !self.suspected.contains(&joiner.id)
        {
            // The joiner missed the install; send it again (with the decision if it is the
            // last one, so a joiner learns where its state comes from).
            let body = match &self.last_decision {
                Some((base, ballot, decision)) if decision.view == view => Body::Install {
                    base: Some(*base),
                    ballot: *ballot,
                    decision: decision.clone(),
                },
                _ => Body::Install {
                    base: None,
                    ballot: Ballot {
                        round: 0,
                        proposer: self.me.id,
                    },
                    decision: Decision {
                        view,
                        cut: Vec::new(),
                        joiners: Vec::new(),
                    },
                },
            };
            out.push(MembershipOutput::Send {
                to: joiner.addr,
                body,
            });
            return;
        }
        self.pending_joins.insert(joiner.id, (joiner, last_epoch));
        self.drive(now, out);
    }

    fn handle_leave_request(
        &mut self,
        now: Time,
        from: Member,
        leaver: ProcessId,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(view) = self.view() else { return };
        if !view.contains(leaver) {
            return;
        }
        // The member this process takes for coordinator says itself that it is leaving: it
        // gave up (a leaving coordinator proposes its own leave, it never asks), so stop
        // waiting for it to coordinate, as for a coordinator asking to join.
        let coordinator_left = from.id == leaver
            && leaver != self.me.id
            && self.acting_coordinator().is_some_and(|c| c.id == leaver);
        if coordinator_left {
            self.suspected.insert(leaver);
        }
        if self.is_acting_coordinator() {
            self.pending_leaves.insert(leaver);
            self.drive(now, out);
        } else if let Some(coordinator) = self.acting_coordinator() {
            out.push(MembershipOutput::Send {
                to: coordinator.addr,
                body: Body::LeaveRequest { member: leaver },
            });
        }
    }

    /// Installs `base` first if it is a decided view this process missed. Returns whether
    /// `base` is the last view this process installed, so that it votes on its successor.
    fn catch_up_to(
        &mut self,
        now: Time,
        base: &View,
        base_decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        if base.id.epoch > self.last_epoch && base.contains(self.me.id) {
            // With the decision that made `base`, this member ends its previous view at the
            // decided cut, as if the missed install had arrived.
            self.handle_decided_view(now, base.clone(), base_decided, out);
        }
        // Also while joining again or after leaving: the group may still list this process in
        // its last view and need its vote.
        if self.view.as_ref().is_some_and(|v| v.id == base.id) {
            // After yielding or leaving, its streams are gone: it still holds the cut it
            // accepts, so give it streams to fetch into (a member keeps its own).
            self.multicast.shadow(base);
            return true;
        }
        // A bootstrap race can list a joiner in two views of the same epoch; it installs one,
        // yields it to the other and joins that one. It never installed the other (epochs
        // must increase), but its vote is needed to move it on: it votes as a member without
        // state, and the next view lists it as a joiner.
        let rival_lineage = matches!(self.status, Status::Joining { .. })
            && base.contains(self.me.id)
            && base.id.epoch == self.last_epoch;
        // A process whose leave timed out may be listed in a view decided after it gave up
        // (a value accepted before the leave was known and adopted by a later proposer):
        // without its vote that view may never reach a majority again. It votes, and asks
        // to be removed in the same view change.
        let left_but_listed = self.status == Status::Left
            && base.contains(self.me.id)
            && base.id.epoch >= self.last_epoch;
        let votes = rival_lineage || left_but_listed;
        if votes {
            // It must hold the cut like any acceptor: give it streams to fetch into.
            self.multicast.shadow(base);
        }
        votes
    }

    /// How `view` was decided, if this process installed it through a decision.
    fn decided_of(&self, view: &View) -> Option<(ViewId, Ballot, Decision)> {
        self.last_decision
            .clone()
            .filter(|(_, _, decision)| decision.view == *view)
    }

    /// What to tell a member still in `its_view` about the later view installed here: the
    /// decision with its cut if `its_view` is its base, else just the view.
    fn newer_view_for(&self, its_view: ViewId) -> Body {
        match &self.last_decision {
            Some((base, ballot, decision))
                if *base == its_view && self.view.as_ref() == Some(&decision.view) =>
            {
                Body::Install {
                    base: Some(*base),
                    ballot: *ballot,
                    decision: decision.clone(),
                }
            }
            _ => Body::Stale {
                view: self.view.clone().expect("called with an installed view"),
            },
        }
    }

    /// Replies `Stale` if this process has installed a later view than `base`.
    fn reply_if_stale(
        &self,
        to: SocketAddr,
        base: ViewId,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        match self.view() {
            Some(view) if view.id.epoch > base.epoch => {
                out.push(MembershipOutput::Send {
                    to,
                    body: self.newer_view_for(base),
                });
                true
            }
            _ => false,
        }
    }

    /// Whether this process's acceptor already answered for the successor of a later view
    /// than `base`. Its state for `base` is gone then (an acceptor keeps one instance), so it
    /// must not answer for `base` again: a fresh promise there could go below one it made.
    /// (A member that installed a later view answers `Stale` instead; this covers a process
    /// that voted without installing, after it left.)
    fn answered_later_instance(&self, base: ViewId) -> bool {
        self.acceptor
            .base
            .is_some_and(|answered| answered.epoch > base.epoch)
    }

    fn acceptor_for(&mut self, base: ViewId) -> &mut Acceptor {
        if self.acceptor.base != Some(base) {
            self.acceptor = Acceptor {
                base: Some(base),
                ..Acceptor::default()
            };
        }
        &mut self.acceptor
    }

    fn handle_prepare(
        &mut self,
        now: Time,
        from: Member,
        base: View,
        ballot: Ballot,
        base_decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) {
        self.highest_round = self.highest_round.max(ballot.round);
        if self.reply_if_stale(from.addr, base.id, out)
            || self.answered_later_instance(base.id)
            || !self.catch_up_to(now, &base, base_decided, out)
        {
            return;
        }
        let reply = self.promise(now, base.id, ballot, out);
        self.reply(now, from, reply, out);
        if self.status == Status::Left && from.id != self.me.id {
            out.push(MembershipOutput::Send {
                to: from.addr,
                body: Body::LeaveRequest { member: self.me.id },
            });
        }
    }

    /// Promises `ballot` unless a higher one was promised. Promising freezes this member's
    /// multicast in `base`: what it reports is all it will deliver there.
    fn promise(
        &mut self,
        now: Time,
        base: ViewId,
        ballot: Ballot,
        out: &mut Vec<MembershipOutput>,
    ) -> Body {
        let acceptor = self.acceptor_for(base);
        if acceptor.promised.is_none_or(|p| ballot > p) {
            #[cfg(feature = "planted-bugs")]
            let forgotten = acceptor.promised;
            acceptor.promised = Some(ballot);
            #[cfg(feature = "planted-bugs")]
            if planted::active(PlantedBug::AcceptorForgetsPromise) {
                acceptor.promised = forgotten;
            }
            let accepted = acceptor.accepted.clone();
            self.promised_since.get_or_insert(now);
            let mut outputs = Vec::new();
            self.multicast.freeze(base, &mut outputs);
            emit(out, outputs);
            Body::Promise {
                base,
                ballot,
                accepted,
                report: self.multicast.report(base),
            }
        } else {
            Body::Rejected {
                base,
                promised: acceptor.promised.unwrap_or(ballot),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_accept(
        &mut self,
        now: Time,
        from: Member,
        base: View,
        ballot: Ballot,
        base_decided: Option<(ViewId, Ballot, Decision)>,
        decision: Decision,
        out: &mut Vec<MembershipOutput>,
    ) {
        self.highest_round = self.highest_round.max(ballot.round);
        if self.reply_if_stale(from.addr, base.id, out)
            || self.answered_later_instance(base.id)
            || !self.catch_up_to(now, &base, base_decided, out)
        {
            return;
        }
        self.accept(now, from, base.id, ballot, decision, out);
    }

    /// Accepts `decision` unless a higher ballot was promised. `Accepted` goes back only once
    /// this member holds every entry of the cut, so a decided cut is held by a majority.
    fn accept(
        &mut self,
        now: Time,
        proposer: Member,
        base: ViewId,
        ballot: Ballot,
        decision: Decision,
        out: &mut Vec<MembershipOutput>,
    ) {
        let acceptor = self.acceptor_for(base);
        if acceptor.promised.is_some_and(|p| ballot < p) {
            let reply = Body::Rejected {
                base,
                promised: acceptor.promised.unwrap_or(ballot),
            };
            return self.reply(now, proposer, reply, out);
        }
        acceptor.promised = Some(ballot);
        self.promised_since.get_or_insert(now);
        let mut outputs = Vec::new();
        self.multicast.freeze(base, &mut outputs);
        self.multicast.fetch(now, base, &decision.cut, &mut outputs);
        emit(out, outputs);
        self.awaiting_cut = Some(AwaitingCut {
            proposer,
            base,
            ballot,
            decision,
        });
        self.answer_awaiting_cut(now, out);
    }

    /// Sends an acceptor's reply, or feeds it straight to this process's own proposer.
    fn reply(&mut self, now: Time, to: Member, body: Body, out: &mut Vec<MembershipOutput>) {
        if to.id != self.me.id {
            out.push(MembershipOutput::Send { to: to.addr, body });
            return;
        }
        let me = self.me;
        match body {
            Body::Promise {
                base,
                ballot,
                accepted,
                report,
            } => self.handle_promise(now, me, base, ballot, accepted, report, out),
            Body::Accepted { base, ballot } => self.handle_accepted(now, me, base, ballot, out),
            Body::Rejected { base, promised } => self.handle_rejected(now, base, promised),
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_promise(
        &mut self,
        now: Time,
        from: Member,
        base: ViewId,
        ballot: Ballot,
        accepted: Option<(Ballot, Decision)>,
        report: FlushReport,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(proposal) = self.proposal.as_mut() else {
            return;
        };
        if proposal.base.id != base || proposal.ballot != ballot || !proposal.base.contains(from.id)
        {
            return;
        }
        let Phase::Preparing { promises } = &mut proposal.phase else {
            return;
        };
        promises.insert(from.id, (accepted, report));
        self.begin_accepting(now, out);
    }

    /// Moves a proposal to phase 2 once a majority promised and either every member this
    /// process trusts did, or the flush timeout passed (the silent ones are left out: every
    /// member of the next view that comes from the base must have promised, so that the cut
    /// covers whatever it delivered).
    fn begin_accepting(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        let Some(proposal) = self.proposal.as_ref() else {
            return;
        };
        let Phase::Preparing { promises } = &proposal.phase else {
            return;
        };
        if proposal.base.count_voters(promises.keys()) < proposal.base.majority() {
            return;
        }
        let everyone_trusted = proposal
            .base
            .members
            .iter()
            .filter(|m| !self.suspected.contains(&m.id))
            .all(|m| promises.contains_key(&m.id));
        let flush_timeout = self.config.view_change_timeout / 2;
        if !everyone_trusted && now.saturating_sub(proposal.started) < flush_timeout {
            return;
        }
        let previously_accepted = possibly_chosen(&proposal.base, promises);
        #[cfg(feature = "planted-bugs")]
        let previously_accepted =
            previously_accepted.filter(|_| !planted::active(PlantedBug::ProposerIgnoresAccepted));
        let base_view = proposal.base.clone();
        let ballot = proposal.ballot;
        let value = match previously_accepted {
            Some(decision) => decision,
            None => match self.compose_decision(&base_view, promises) {
                Some(decision) => decision,
                None => {
                    // No promiser holds the group's state: deciding a view now would start
                    // it from nothing. Wait for a holder to come back (reported as blocked).
                    self.proposal = None;
                    self.no_holder_since.get_or_insert(now);
                    return;
                }
            },
        };
        let proposal = self.proposal.as_mut().expect("checked above");
        proposal.phase = Phase::Accepting {
            decision: value.clone(),
            accepted: BTreeSet::new(),
        };
        for member in &base_view.members {
            if member.id != self.me.id {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::Accept {
                        base: base_view.clone(),
                        ballot,
                        base_decided: self.decided_of(&base_view),
                        decision: value.clone(),
                    },
                });
            }
        }
        self.accept(now, self.me, base_view.id, ballot, value, out);
    }

    /// The next view (members of the base that promised, minus leavers and suspects, plus
    /// joiners), the cut from the promisers' reports, and who needs a state transfer.
    ///
    /// The voters of the next view are the promisers that hold the group's state (voters and
    /// learners alike: a learner that restored its transfer is promoted); every other member
    /// is a learner that gets the state from a voter. `None` if no promiser holds the state:
    /// such a view would continue from nothing, so the view change waits instead.
    fn compose_decision(&self, base: &View, promises: &Promises) -> Option<Decision> {
        let promisers: BTreeSet<ProcessId> = promises.keys().copied().collect();
        let (members, epoch) = self.compose_next_members(base, Some(&promisers), true)?;
        let holds_state = |id: &ProcessId| {
            base.contains(*id)
                && !self.pending_joins.contains_key(id)
                && promises.get(id).is_some_and(|(_, report)| report.ready)
        };
        let (voters, learners): (Vec<Member>, Vec<Member>) =
            members.into_iter().partition(|m| holds_state(&m.id));
        if voters.is_empty() {
            return None;
        }
        #[cfg(feature = "planted-bugs")]
        let promises = &planted::without_report_of(promises, self.me.id);
        let cut = compose_cut(
            base.members.len(),
            promises
                .iter()
                .filter_map(|(id, (_, report))| base.rank_of(*id).map(|rank| (rank, report))),
        );
        let joiners = learners.iter().map(|m| m.id).collect();
        let voter_count = voters.len();
        let members: Vec<Member> = voters.into_iter().chain(learners).collect();
        let view = View {
            group: self.group.clone(),
            id: ViewId {
                // Epochs heard from peers are at most PROTOCOL_COUNTER_MAX (the codec refuses
                // more), so this never overflows.
                epoch: epoch
                    .checked_add(1)
                    .expect("epoch below the protocol counter limit"),
                coordinator: members[0].id,
            },
            members,
            voters: voter_count,
        };
        debug_assert!(
            view.is_well_formed(),
            "composed an ill-formed view {view:?}"
        );
        Some(Decision { view, cut, joiners })
    }

    fn handle_accepted(
        &mut self,
        now: Time,
        from: Member,
        base: ViewId,
        ballot: Ballot,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(proposal) = self.proposal.as_mut() else {
            return;
        };
        if proposal.base.id != base || proposal.ballot != ballot || !proposal.base.contains(from.id)
        {
            return;
        }
        let Phase::Accepting { decision, accepted } = &mut proposal.phase else {
            return;
        };
        accepted.insert(from.id);
        let votes = proposal.base.count_voters(accepted.iter());
        #[cfg(feature = "planted-bugs")]
        let votes = if planted::active(PlantedBug::MajorityCountsLearners) {
            accepted.len()
        } else {
            votes
        };
        if votes < proposal.base.majority() {
            return;
        }
        let decided = decision.clone();
        let base_view = proposal.base.clone();
        self.proposal = None;
        let mut told = BTreeSet::new();
        for member in decided.view.members.iter().chain(base_view.members.iter()) {
            if member.id != self.me.id && told.insert(member.id) {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::Install {
                        base: Some(base),
                        ballot,
                        decision: decided.clone(),
                    },
                });
            }
        }
        let view = decided.view.clone();
        self.handle_decided_view(now, view, Some((base, ballot, decided)), out);
    }

    fn handle_rejected(&mut self, now: Time, base: ViewId, promised: Ballot) {
        self.highest_round = self.highest_round.max(promised.round);
        let Some(proposal) = self
            .proposal
            .as_ref()
            .filter(|p| p.base.id == base && p.ballot < promised)
        else {
            return;
        };
        // Outbid: drop this attempt and retry above `promised` after a backoff, if this
        // process is still the acting coordinator then. Two proposers that retried at once
        // would outbid each other forever (both suspect the other, or a healed partition
        // left two acting coordinators): the backoff is jittered per process and round, and
        // a proposer outbid by an older member of the base waits a whole timeout longer,
        // so the older one finishes.
        let timeout = self.config.view_change_timeout;
        let older = proposal.base.rank_of(promised.proposer) < proposal.base.rank_of(self.me.id);
        let jitter = timeout.mul_f64(backoff_fraction(self.me.id, promised.round));
        let defer = if older { timeout } else { Duration::ZERO };
        self.retry_not_before = Some(now + timeout / 4 + jitter + defer);
        self.proposal = None;
    }

    /// A view decided by a majority of its predecessor arrived: with its base, ballot and
    /// decision (from an `Install`), or alone (the base unknown: no cut).
    fn handle_decided_view(
        &mut self,
        now: Time,
        view: View,
        decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) {
        if view.group != self.group || view.id.epoch <= self.last_epoch {
            return;
        }
        let decided = decided.filter(|(_, _, d)| d.view == view);
        if decided.is_none() && self.defers_undecided(now, &view) {
            return;
        }
        match self.status {
            Status::Left => {}
            Status::Joining { .. } => {
                if view.contains(self.me.id) {
                    self.install(now, view, decided, out);
                }
            }
            Status::Member | Status::Leaving { .. } => {
                if view.contains(self.me.id) {
                    self.install(now, view, decided, out);
                } else if matches!(self.status, Status::Leaving { .. }) {
                    self.last_epoch = view.id.epoch;
                    // Kept to pass on: a member that missed this install may hear of it only
                    // from this process.
                    self.last_decision = decided;
                    self.finish_leaving(out);
                } else {
                    let by = Some(view.id);
                    let via = view.coordinator().addr;
                    self.last_epoch = view.id.epoch;
                    self.last_decision = decided;
                    self.begin_joining(now, Some(via));
                    out.push(MembershipOutput::Excluded { by });
                }
            }
        }
    }

    fn handle_discover(
        &mut self,
        now: Time,
        from: Member,
        their_view: Option<View>,
        out: &mut Vec<MembershipOutput>,
    ) {
        out.push(MembershipOutput::Send {
            to: from.addr,
            body: Body::DiscoverReply {
                view: self.view().cloned(),
            },
        });
        if let Some(their_view) = their_view {
            self.consider_other_view(now, from, their_view, out);
        }
    }

    fn handle_discover_reply(
        &mut self,
        now: Time,
        from: Member,
        their_view: Option<View>,
        out: &mut Vec<MembershipOutput>,
    ) {
        match (&self.status, their_view) {
            (Status::Joining { since, .. }, None) => {
                let since = *since;
                self.joining_peers.insert(from.id, now);
                let _ = since;
            }
            (Status::Joining { since, .. }, Some(view)) => {
                self.group_seen = true;
                let since = *since;
                if view.contains(self.me.id) {
                    self.handle_decided_view(now, view, None, out);
                } else {
                    self.status = Status::Joining {
                        since,
                        via: Some(view.coordinator().addr),
                    };
                }
            }
            (Status::Member, Some(view)) => self.consider_other_view(now, from, view, out),
            _ => {}
        }
    }

    /// Another view of this group, learned through discovery. A later view that contains this
    /// process is installed; a view of another lineage that ranks higher absorbs this one.
    fn consider_other_view(
        &mut self,
        now: Time,
        from: Member,
        other: View,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(mine) = self.view().cloned() else {
            return;
        };
        if other.group != self.group || other.id == mine.id {
            return;
        }
        if other.contains(self.me.id) {
            self.handle_decided_view(now, other, None, out);
            return;
        }
        if mine.contains(from.id) {
            // A member of this view is in a view without this process, as late as this one or
            // later: a later view that excluded this process, or another lineage that took the
            // member over. Either way, follow it; a coordinator takes its members along.
            if other.id.epoch >= mine.id.epoch {
                let take_members_along = mine.coordinator().id == self.me.id;
                self.yield_to(now, &mine, take_members_along, from, other.id, out);
            }
            return;
        }
        if mine.coordinator().id != self.me.id {
            return;
        }
        // The later view wins: an older one is either a stale view a cut-off minority still
        // holds (it must never absorb the majority that moved on) or the other side of a
        // bootstrap race, where any fixed rule that both sides compute alike will do.
        let rank = |v: &View| {
            (
                v.id.epoch,
                v.members.len(),
                std::cmp::Reverse(v.id.coordinator),
            )
        };
        if rank(&other) > rank(&mine) {
            self.yield_to(now, &mine, true, from, other.id, out);
        }
    }

    /// Leaves `mine` for the view `from` belongs to (`other`) and joins through `from`; with
    /// `take_members_along`, tells the other members of `mine` to do the same.
    fn yield_to(
        &mut self,
        now: Time,
        mine: &View,
        take_members_along: bool,
        from: Member,
        other: ViewId,
        out: &mut Vec<MembershipOutput>,
    ) {
        if take_members_along {
            for member in mine
                .members
                .iter()
                .filter(|m| m.id != self.me.id && m.id != from.id)
            {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::MergeInto { target: from.addr },
                });
            }
        }
        self.begin_joining(now, Some(from.addr));
        out.push(MembershipOutput::Excluded { by: Some(other) });
        self.send_join_requests(now, out);
    }

    fn handle_merge_into(
        &mut self,
        now: Time,
        from: Member,
        target: SocketAddr,
        out: &mut Vec<MembershipOutput>,
    ) {
        let from_coordinator = self
            .view()
            .is_some_and(|v| v.coordinator().id == from.id && from.id != self.me.id);
        if from_coordinator && self.status == Status::Member {
            self.begin_joining(now, Some(target));
            out.push(MembershipOutput::Excluded { by: None });
            self.send_join_requests(now, out);
        }
    }

    /// Starts or advances a view change when this process is the acting coordinator and
    /// something changed; retries a proposal that timed out.
    fn drive(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        if !self.is_acting_coordinator() {
            self.proposal = None;
            return;
        }
        let Some(view) = self.view().cloned() else {
            return;
        };
        if let Some(proposal) = &self.proposal {
            let timed_out = now.saturating_sub(proposal.started) >= self.config.view_change_timeout;
            if proposal.base.id == view.id && !timed_out {
                self.begin_accepting(now, out);
                return;
            }
            self.proposal = None;
        }
        if self.retry_not_before.is_some_and(|t| now < t) {
            return;
        }
        // Once anyone promised in this view, members are blocked: the change must finish,
        // even with the same members.
        let flush_started = self.acceptor.base == Some(view.id) && self.acceptor.promised.is_some();
        if self.compose_next_members(&view, None, false).is_none()
            && !flush_started
            && !self.force_change
        {
            return;
        }
        // The last attempt found no holder of the state: retry at the view change timeout,
        // not at every tick.
        if self.no_holder_since.is_some_and(|_| {
            self.last_attempt
                .is_some_and(|t| now.saturating_sub(t) < self.config.view_change_timeout)
        }) {
            return;
        }
        self.last_attempt = Some(now);
        // Rounds heard from peers are at most PROTOCOL_COUNTER_MAX (the codec refuses more).
        self.highest_round = self
            .highest_round
            .checked_add(1)
            .expect("round below the protocol counter limit");
        let ballot = Ballot {
            round: self.highest_round,
            proposer: self.me.id,
        };
        self.proposal = Some(Proposal {
            base: view.clone(),
            ballot,
            started: now,
            phase: Phase::Preparing {
                promises: BTreeMap::new(),
            },
        });
        for member in &view.members {
            if member.id != self.me.id {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::Prepare {
                        base: view.clone(),
                        ballot,
                        base_decided: self.decided_of(&view),
                    },
                });
            }
        }
        let reply = self.promise(now, view.id, ballot, out);
        self.reply(now, self.me, reply, out);
    }

    /// The members of the next view from `base` with every pending change applied (base
    /// members first, in order, then joiners), keeping of the base only `promisers` (if
    /// given), and the epoch the next view follows; `None` if nothing changes (unless
    /// `force`) or nobody is left. Pending promotions count as a change.
    fn compose_next_members(
        &self,
        base: &View,
        promisers: Option<&BTreeSet<ProcessId>>,
        force: bool,
    ) -> Option<(Vec<Member>, u64)> {
        let replaced = |m: &Member| {
            self.pending_joins
                .keys()
                .any(|j| j.node == m.id.node && j.incarnation > m.id.incarnation)
        };
        let mut members: Vec<Member> = base
            .members
            .iter()
            .filter(|m| {
                // A promise in this very ballot proves the member alive and reachable both
                // ways: a suspicion (a slow or one-way link) does not remove it.
                let promised = promisers.is_some_and(|p| p.contains(&m.id));
                (!self.suspected.contains(&m.id) || promised)
                    && !self.pending_leaves.contains(&m.id)
                    && !replaced(m)
                    && promisers.is_none_or(|p| p.contains(&m.id))
            })
            .copied()
            .collect();
        let mut epoch = base.id.epoch;
        // A joiner that is suspected, or superseded by a newer incarnation of its node that
        // also asks to join, is not admitted.
        let superseded = |j: &Member| {
            self.suspected.contains(&j.id)
                || self
                    .pending_joins
                    .keys()
                    .any(|other| other.node == j.id.node && other.incarnation > j.id.incarnation)
        };
        for (joiner, last_epoch) in self.pending_joins.values() {
            if !superseded(joiner) && !members.iter().any(|m| m.id == joiner.id) {
                members.push(*joiner);
                epoch = epoch.max(*last_epoch);
            }
        }
        // A member that left (or gave up leaving) and asks to join again while still listed
        // needs a new view too: it must not install one it has installed before.
        let rejoining = self.pending_joins.keys().any(|j| base.contains(*j));
        for (joiner, last_epoch) in self.pending_joins.values() {
            if base.contains(joiner.id) {
                epoch = epoch.max(*last_epoch);
            }
        }
        let promoting = self
            .pending_promotions
            .iter()
            .any(|p| members.iter().any(|m| m.id == *p) && !base.is_voter(*p));
        let unchanged = !rejoining
            && !promoting
            && members.len() == base.members.len()
            && members.iter().zip(&base.members).all(|(a, b)| a == b);
        if (unchanged && !force) || members.is_empty() {
            return None;
        }
        Some((members, epoch))
    }

    /// Whether to wait for the decision of `view`, a later view listing this process heard of
    /// without it (see `undecided_view`).
    fn defers_undecided(&mut self, now: Time, view: &View) -> bool {
        let holds_state = self.status == Status::Member
            && self.multicast.holds_state()
            && view.contains(self.me.id)
            && self
                .view
                .as_ref()
                .is_some_and(|v| v.id.epoch < view.id.epoch);
        if !holds_state {
            return false;
        }
        match &self.undecided_view {
            Some((waiting, since)) if waiting.id.epoch >= view.id.epoch => {
                now.saturating_sub(*since) < self.config.view_change_timeout
            }
            _ => {
                self.undecided_view = Some((view.clone(), now));
                true
            }
        }
    }

    /// Installs `view`; `decided` carries its base, ballot and decision when known (a group's
    /// first view has none and is created here).
    fn install(
        &mut self,
        now: Time,
        view: View,
        decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) {
        let change = ViewChange::between(self.view.as_ref(), view.clone());
        self.last_epoch = view.id.epoch;
        // A suspected member admitted again by a join is trusted in the new view.
        for rejoined in self.pending_joins.keys().filter(|id| view.contains(**id)) {
            self.suspected.remove(rejoined);
        }
        self.pending_joins.retain(|id, _| !view.contains(*id));
        self.pending_leaves.retain(|id| view.contains(*id));
        self.suspected.retain(|id| view.contains(*id));
        if self.proposal.as_ref().is_some_and(|p| p.base.id != view.id) {
            self.proposal = None;
        }
        // Promises already made for this view's successor (as a listed voter before this
        // process installed it) stand: forgetting them could accept a lower ballot.
        if self.acceptor.base != Some(view.id) {
            self.acceptor = Acceptor::default();
        }
        if !matches!(self.status, Status::Leaving { .. }) {
            self.status = Status::Member;
        }
        self.force_change = false;
        self.promised_since = None;
        self.awaiting_cut = None;
        self.group_seen = true;
        self.pending_promotions.clear();
        self.no_holder_since = None;
        self.retry_not_before = None;
        self.undecided_view = None;
        out.push(MembershipOutput::ViewInstalled(change));
        let mut outputs = Vec::new();
        match &decided {
            Some((base, _, decision)) => {
                self.multicast
                    .install_decided(now, *base, decision, &mut outputs)
            }
            None => self.multicast.install_unverified(&view),
        }
        emit(out, outputs);
        self.last_decision = decided;
        self.view = Some(view);
    }

    fn create_group(&mut self, out: &mut Vec<MembershipOutput>) {
        let view = View::of_voters(
            self.group.clone(),
            ViewId {
                epoch: self.last_epoch + 1,
                coordinator: self.me.id,
            },
            vec![self.me],
        );
        let mut outputs = Vec::new();
        self.multicast.install_created(&view, &mut outputs);
        let change = ViewChange::between(None, view.clone());
        self.last_epoch = view.id.epoch;
        self.acceptor = Acceptor::default();
        self.status = Status::Member;
        self.view = Some(view);
        self.group_seen = true;
        self.last_decision = None;
        out.push(MembershipOutput::ViewInstalled(change));
        emit(out, outputs);
    }

    /// Starts (or restarts) joining. The last installed view and the acceptor state are kept:
    /// while the group still lists this process in that view, its vote may be needed to decide
    /// the next one, and a vote must never contradict a promise it made before.
    fn begin_joining(&mut self, now: Time, via: Option<SocketAddr>) {
        self.status = Status::Joining { since: now, via };
        self.proposal = None;
        self.pending_joins.clear();
        self.pending_leaves.clear();
        self.suspected.clear();
        self.joining_peers.clear();
        self.group_seen = via.is_some();
        self.last_request = None;
        self.awaiting_cut = None;
        self.force_change = false;
        self.promised_since = None;
        self.pending_promotions.clear();
        self.no_holder_since = None;
        self.multicast.leave_group(false);
    }

    fn finish_leaving(&mut self, out: &mut Vec<MembershipOutput>) {
        self.status = Status::Left;
        self.proposal = None;
        self.awaiting_cut = None;
        self.multicast.leave_group(true);
        out.push(MembershipOutput::Left);
    }

    fn request_due(&self, now: Time) -> bool {
        self.last_request
            .is_none_or(|t| now.saturating_sub(t) >= self.config.join_retry_interval)
    }

    fn send_join_requests(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        self.last_request = Some(now);
        let via = match self.status {
            Status::Joining { via, .. } => via,
            _ => None,
        };
        let body = Body::JoinRequest {
            member: self.me,
            last_epoch: self.last_epoch,
        };
        let targets = via.into_iter().chain(self.seeds.iter().copied());
        let mut sent = BTreeSet::new();
        for to in targets {
            if to != self.me.addr && sent.insert(to) {
                out.push(MembershipOutput::Send {
                    to,
                    body: body.clone(),
                });
            }
        }
    }

    fn discover(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        let Some(view) = self.view() else { return };
        if view.coordinator().id != self.me.id {
            return;
        }
        if self
            .last_discovery
            .is_some_and(|t| now.saturating_sub(t) < self.config.discovery_interval)
        {
            return;
        }
        let view = view.clone();
        self.last_discovery = Some(now);
        for seed in &self.seeds {
            if !view.members.iter().any(|m| m.addr == *seed) {
                out.push(MembershipOutput::Send {
                    to: *seed,
                    body: Body::Discover {
                        view: Some(view.clone()),
                    },
                });
            }
        }
    }
}

/// A fraction in `[0, 0.5)` that differs between processes and rounds, for a proposer's
/// backoff (cores take no randomness; a hash of who and when spreads retries just as well).
fn backoff_fraction(me: ProcessId, round: u64) -> f64 {
    let mut x = me.node.0 ^ me.incarnation.0.rotate_left(17) ^ round.rotate_left(41);
    // splitmix64's finaliser.
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % 1000) as f64 / 2000.0
}

/// The value a proposer must adopt from `promises` (Paxos phase 1b): the one accepted under
/// the highest ballot among those that may have been chosen.
///
/// A value was chosen only if a majority of the base's voters accepted it, and every proposal
/// after a choice carries the chosen value, so each of those voters still reports it as its
/// latest accepted value. A value that fewer than a majority of voters can report (counting
/// every voter that did not promise as one that might) was never chosen, and adopting it
/// would only be a liability: it was composed from promises that may no longer be true (its
/// only voter's snapshot may have failed since), and following it can block the group for
/// good. Learners' acceptances count for nothing, as in the decision itself.
fn possibly_chosen(base: &View, promises: &Promises) -> Option<Decision> {
    let silent_voters = base
        .voters()
        .iter()
        .filter(|m| !promises.contains_key(&m.id))
        .count();
    let reported_by_voters = |decision: &Decision| {
        promises
            .iter()
            .filter(|(id, (accepted, _))| {
                base.is_voter(**id) && accepted.as_ref().is_some_and(|(_, d)| d == decision)
            })
            .count()
    };
    promises
        .values()
        .filter_map(|(accepted, _)| accepted.as_ref())
        .filter(|(_, decision)| reported_by_voters(decision) + silent_voters >= base.majority())
        .max_by_key(|(ballot, _)| *ballot)
        .map(|(_, decision)| decision.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};

    fn member(n: u64) -> Member {
        Member {
            id: ProcessId {
                node: NodeId(n),
                incarnation: Incarnation(1),
            },
            addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
        }
    }

    fn group() -> GroupName {
        GroupName::new("g").unwrap()
    }

    fn view(epoch: u64, members: &[u64]) -> View {
        View {
            group: group(),
            id: ViewId {
                epoch,
                coordinator: member(members[0]).id,
            },
            members: members.iter().map(|n| member(*n)).collect(),
            voters: members.len(),
        }
    }

    /// A view of `voters` followed by `learners`.
    fn view_with_learners(epoch: u64, voters: &[u64], learners: &[u64]) -> View {
        let mut view = view(epoch, &[voters, learners].concat());
        view.voters = voters.len();
        view
    }

    /// Settings of the process that founds the group.
    fn founding() -> MembershipConfig {
        MembershipConfig {
            bootstrap: true,
            ..MembershipConfig::default()
        }
    }

    fn ms(n: u64) -> Time {
        Duration::from_millis(n)
    }

    fn ballot(round: u64, n: u64) -> Ballot {
        Ballot {
            round,
            proposer: member(n).id,
        }
    }

    /// A core of process `me` that has installed `installed` (through the protocol itself).
    fn core_with_view(me: u64, installed: &View) -> Membership {
        let seeds = installed.members.iter().map(|m| m.addr).collect();
        let mut core = Membership::new(
            group(),
            member(me),
            seeds,
            MembershipConfig::default(),
            MulticastConfig::default(),
        );
        core.handle_start(ms(0));
        let out = core.handle_message(
            ms(1),
            installed.coordinator().to_owned(),
            Body::Install {
                base: None,
                ballot: ballot(0, installed.members[0].id.node.0),
                decision: decided(installed, &[], &[]),
            },
        );
        assert!(matches!(
            out.as_slice(),
            [MembershipOutput::ViewInstalled(_)]
        ));
        core
    }

    /// A decision for `view` with the given cut (`upto`, holder rank) and joiners.
    fn decided(view: &View, cut: &[(u64, u32)], joiners: &[u64]) -> Decision {
        Decision {
            view: view.clone(),
            cut: cut
                .iter()
                .map(|&(upto, holder)| crate::wire::CutEntry { upto, holder })
                .collect(),
            joiners: joiners.iter().map(|n| member(*n).id).collect(),
        }
    }

    fn send(to: u64, body: Body) -> MembershipOutput {
        MembershipOutput::Send {
            to: member(to).addr,
            body,
        }
    }

    #[test]
    fn without_seeds_a_process_creates_the_group() {
        let mut core = Membership::new(
            group(),
            member(1),
            vec![],
            founding(),
            MulticastConfig::default(),
        );
        let change = ViewChange {
            view: view(1, &[1]),
            joined: vec![member(1)],
            left: vec![],
        };
        assert_eq!(
            core.handle_start(ms(0)),
            vec![
                MembershipOutput::ViewInstalled(change.clone()),
                MembershipOutput::Multicast(MulticastOutput::View(change)),
            ]
        );
        assert!(
            core.multicast().is_ready(),
            "the creator holds the (empty) state"
        );
        assert_eq!(core.status(), &Status::Member);
    }

    #[test]
    fn a_joiner_asks_every_seed_and_retries() {
        let seeds = vec![member(1).addr, member(2).addr];
        let mut core = Membership::new(
            group(),
            member(3),
            seeds,
            MembershipConfig::default(),
            MulticastConfig::default(),
        );
        let request = Body::JoinRequest {
            member: member(3),
            last_epoch: 0,
        };
        let expected = vec![send(1, request.clone()), send(2, request.clone())];
        assert_eq!(core.handle_start(ms(0)), expected);
        assert_eq!(core.handle_tick(ms(100)), vec![]);
        assert_eq!(core.handle_tick(ms(200)), expected);
    }

    #[test]
    fn a_joiner_that_hears_of_the_group_never_creates_another() {
        let mut core = Membership::new(
            group(),
            member(3),
            vec![member(1).addr],
            MembershipConfig::default(),
            MulticastConfig::default(),
        );
        core.handle_start(ms(0));
        core.handle_message(
            ms(10),
            member(1),
            Body::DiscoverReply {
                view: Some(view(4, &[1, 2])),
            },
        );
        let out = core.handle_tick(ms(5000));
        assert!(out
            .iter()
            .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))));
    }

    #[test]
    fn only_a_founding_process_creates_the_group() {
        // No seeds and no bootstrap: nobody to ask, and founding is never implicit.
        let mut alone = Membership::new(
            group(),
            member(1),
            vec![],
            MembershipConfig::default(),
            MulticastConfig::default(),
        );
        assert_eq!(alone.handle_start(ms(0)), vec![]);
        assert_eq!(alone.handle_tick(ms(60_000)), vec![]);
        assert!(matches!(alone.status(), Status::Joining { .. }));
        // Seeds that never answer: it keeps asking them, long after the bootstrap timeout.
        let mut joiner = Membership::new(
            group(),
            member(3),
            vec![member(1).addr],
            MembershipConfig::default(),
            MulticastConfig::default(),
        );
        joiner.handle_start(ms(0));
        let request = send(
            1,
            Body::JoinRequest {
                member: member(3),
                last_epoch: 0,
            },
        );
        assert_eq!(joiner.handle_tick(ms(60_000)), vec![request]);
        assert!(joiner.view().is_none());
        // The same process configured to found the group creates it after the timeout.
        let mut founder = Membership::new(
            group(),
            member(3),
            vec![member(1).addr],
            founding(),
            MulticastConfig::default(),
        );
        founder.handle_start(ms(0));
        let out = founder.handle_tick(ms(1000));
        assert!(matches!(
            out.first(),
            Some(MembershipOutput::ViewInstalled(_))
        ));
    }

    #[test]
    fn a_single_member_admits_a_joiner_alone() {
        let mut core = Membership::new(
            group(),
            member(1),
            vec![],
            founding(),
            MulticastConfig::default(),
        );
        core.handle_start(ms(0));
        let out = core.handle_message(
            ms(5),
            member(2),
            Body::JoinRequest {
                member: member(2),
                last_epoch: 0,
            },
        );
        // The joiner is a learner until it holds the state.
        let next = view_with_learners(2, &[1], &[2]);
        let change = ViewChange {
            view: next.clone(),
            joined: vec![member(2)],
            left: vec![],
        };
        assert_eq!(
            out,
            vec![
                send(
                    2,
                    Body::DiscoverReply {
                        view: Some(view(1, &[1]))
                    }
                ),
                // Promising blocks its own service until the next view.
                MembershipOutput::Multicast(MulticastOutput::Block),
                send(
                    2,
                    Body::Install {
                        base: Some(view(1, &[1]).id),
                        ballot: ballot(1, 1),
                        decision: decided(&next, &[(0, 0)], &[2]),
                    }
                ),
                MembershipOutput::ViewInstalled(change.clone()),
                // Nothing to flush: the service moves on and, as the oldest member that
                // holds the state, provides it to the joiner.
                MembershipOutput::Multicast(MulticastOutput::View(change)),
                MembershipOutput::Multicast(MulticastOutput::SnapshotWanted(next.id)),
            ]
        );
    }

    #[test]
    fn a_suspicion_runs_both_phases_with_a_majority_of_the_base() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(1, &base);
        assert_eq!(
            core.handle_suspect(ms(10), member(3).id),
            vec![
                send(
                    2,
                    Body::Prepare {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                    }
                ),
                send(
                    3,
                    Body::Prepare {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                    }
                ),
            ]
        );
        // This process joined through an install without a cut, so it does not hold the
        // state: the next view lists it as a learner, after member 2, the only voter.
        let next = view_with_learners(4, &[2], &[1]);
        // Member 2 holds two entries of member 3's stream; the cut takes them.
        let promise = Body::Promise {
            base: base.id,
            ballot: ballot(1, 1),
            accepted: None,
            report: FlushReport {
                received: vec![0, 0, 2],
                ready: true,
            },
        };
        // It gets the state from member 2.
        let decision = decided(&next, &[(0, 0), (0, 1), (2, 1)], &[1]);
        let out = core.handle_message(ms(11), member(2), promise);
        assert_eq!(
            out[..2],
            [
                send(
                    2,
                    Body::Accept {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                        decision: decision.clone(),
                    }
                ),
                send(
                    3,
                    Body::Accept {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                        decision: decision.clone(),
                    }
                ),
            ]
        );
        // It does not hold the cut yet: it asks for the missing entries and does not accept.
        assert!(out[2..].iter().all(|o| matches!(
            o,
            MembershipOutput::Send {
                body: Body::Nak {
                    origin: 2,
                    from: 1,
                    to: 2,
                    ..
                },
                ..
            }
        )));
        assert!(!out[2..].is_empty());
        let entries: Vec<crate::wire::Entry> = (1..=2)
            .map(|seq| crate::wire::Entry {
                seq,
                ordering: crate::wire::Ordering::Fifo,
                clock: vec![],
                item: crate::wire::Item::Payload(bytes::Bytes::from_static(b"m")),
            })
            .collect();
        let out = core.handle_message(
            ms(11),
            member(2),
            Body::Data {
                view: base.id,
                origin: 2,
                entries,
            },
        );
        // Holding the cut, it accepts its own proposal.
        assert_eq!(out, vec![]);
        let accepted = Body::Accepted {
            base: base.id,
            ballot: ballot(1, 1),
        };
        let install = Body::Install {
            base: Some(base.id),
            ballot: ballot(1, 1),
            decision,
        };
        let out = core.handle_message(ms(12), member(2), accepted);
        assert_eq!(
            out[..3],
            [
                send(2, install.clone()),
                send(3, install),
                MembershipOutput::ViewInstalled(ViewChange {
                    view: next.clone(),
                    joined: vec![],
                    left: vec![member(3)],
                }),
            ]
        );
        // As a joiner of the new view it asks member 2 for the state.
        assert_eq!(
            out[3..],
            [send(
                2,
                Body::StateRequest {
                    view: next.id,
                    offset: 0
                }
            )]
        );
    }

    #[test]
    fn a_minority_blocks_instead_of_installing() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(1, &base);
        core.handle_suspect(ms(10), member(2).id);
        core.handle_suspect(ms(10), member(3).id);
        for t in (20..5000).step_by(20) {
            let out = core.handle_tick(ms(t));
            assert!(out
                .iter()
                .all(|o| !matches!(o, MembershipOutput::ViewInstalled(_))));
        }
        assert_eq!(core.view(), Some(&base));
        // It kept retrying with ever higher ballots.
        let out = core.handle_tick(ms(5400));
        assert!(
            out.iter().any(|o| matches!(o,
            MembershipOutput::Send { body: Body::Prepare { ballot, .. }, .. } if ballot.round > 5))
        );
    }

    #[test]
    fn an_acceptor_refuses_lower_ballots_and_reports_what_it_accepted() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(2, &base);
        let proposal = view(4, &[1, 2]);
        assert_eq!(
            core.handle_message(
                ms(5),
                member(1),
                Body::Accept {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                    decision: decided(&proposal, &[(0, 0), (0, 1), (0, 2)], &[]),
                }
            ),
            vec![send(
                1,
                Body::Accepted {
                    base: base.id,
                    ballot: ballot(1, 1)
                }
            )]
        );
        // The next-oldest member, suspecting the coordinator, learns of the accepted value.
        assert_eq!(
            core.handle_message(
                ms(6),
                member(3),
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(2, 3),
                    base_decided: None,
                }
            ),
            vec![send(
                3,
                Body::Promise {
                    base: base.id,
                    ballot: ballot(2, 3),
                    accepted: Some((
                        ballot(1, 1),
                        decided(&proposal, &[(0, 0), (0, 1), (0, 2)], &[])
                    )),
                    report: FlushReport {
                        received: vec![0, 0, 0],
                        ready: false,
                    },
                }
            )]
        );
        assert_eq!(
            core.handle_message(
                ms(7),
                member(1),
                Body::Prepare {
                    base: base.clone(),
                    ballot: ballot(1, 1),
                    base_decided: None,
                }
            ),
            vec![send(
                1,
                Body::Rejected {
                    base: base.id,
                    promised: ballot(2, 3)
                }
            )]
        );
    }

    #[test]
    fn without_a_holder_of_the_state_no_view_is_decided_and_the_block_is_reported() {
        // This process installed its view without the cut (it does not hold the state), and
        // neither does member 2: a view of the two would start from nothing.
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(1, &base);
        core.handle_suspect(ms(0), member(3).id);
        let promise = Body::Promise {
            base: base.id,
            ballot: ballot(1, 1),
            accepted: None,
            report: FlushReport {
                received: vec![0, 0, 0],
                ready: false,
            },
        };
        let out = core.handle_message(ms(1), member(2), promise);
        let accepts = |out: &[MembershipOutput]| {
            out.iter().any(|o| {
                matches!(
                    o,
                    MembershipOutput::Send {
                        body: Body::Accept { .. },
                        ..
                    }
                )
            })
        };
        assert!(
            !accepts(&out),
            "a view without a holder was proposed: {out:?}"
        );
        // Not before the view change has been stuck for twice its timeout.
        assert_eq!(core.blocked(ms(100)), None);
        let blocked = core.blocked(ms(1000)).expect("blocked");
        assert_eq!(blocked.reason, BlockedReason::NoStateHolder);
        assert_eq!(blocked.view, Some(base.id));
        // Retried at the view change timeout, not at every tick, and still nothing decided.
        assert!(!accepts(&core.handle_tick(ms(20))));
    }

    #[test]
    fn a_member_without_a_majority_of_voters_reports_whom_it_waits_for() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(1, &base);
        core.handle_suspect(ms(0), member(2).id);
        core.handle_suspect(ms(0), member(3).id);
        let blocked = core.blocked(ms(900)).expect("blocked");
        assert_eq!(
            blocked.reason,
            BlockedReason::NoMajority {
                voters: vec![member(1).id, member(2).id, member(3).id],
                reachable: vec![member(1).id],
                needed: 2,
            }
        );
    }

    #[test]
    fn an_outbid_proposer_backs_off_and_defers_to_an_older_one() {
        // Member 2 suspects the coordinator and proposes; member 1 (older) is alive and
        // proposing too, and outbids it. Retrying at once would outbid 1 in turn, forever.
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(2, &base);
        let out = core.handle_suspect(ms(0), member(1).id);
        assert!(out.iter().any(|o| matches!(
            o,
            MembershipOutput::Send {
                body: Body::Prepare { .. },
                ..
            }
        )));
        core.handle_message(
            ms(10),
            member(3),
            Body::Rejected {
                base: base.id,
                promised: ballot(5, 1),
            },
        );
        let prepares = |out: &[MembershipOutput]| {
            out.iter()
                .filter_map(|o| match o {
                    MembershipOutput::Send {
                        body: Body::Prepare { ballot, .. },
                        ..
                    } => Some(ballot.round),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // A quarter timeout plus a whole one for deferring to the older member, at least.
        let mut first_retry = None;
        for t in (20..1400).step_by(20) {
            let rounds = prepares(&core.handle_tick(ms(t)));
            if !rounds.is_empty() {
                assert!(
                    rounds.iter().all(|r| *r > 5),
                    "above the ballot that won: {rounds:?}"
                );
                first_retry = Some(t);
                break;
            }
        }
        let t = first_retry.expect("it retries in the end (1 may be gone after all)");
        assert!((510..=710).contains(&t), "retried at {t} ms");
    }

    #[test]
    fn a_holder_waits_for_the_decision_of_a_view_it_hears_of_without_one() {
        let mut core = Membership::new(
            group(),
            member(1),
            vec![],
            founding(),
            MulticastConfig::default(),
        );
        core.handle_start(ms(0));
        assert!(core.multicast().holds_state());
        let installed = |out: &[MembershipOutput]| {
            out.iter()
                .any(|o| matches!(o, MembershipOutput::ViewInstalled(_)))
        };
        // A member that installed the next view without its cut says it is stale: installing
        // it the same way would drop the state this process holds.
        let next = view(2, &[1, 2]);
        let out = core.handle_message(ms(10), member(2), Body::Stale { view: next.clone() });
        assert!(!installed(&out), "{out:?}");
        assert!(core.multicast().holds_state());
        // The decision arrives (resent on a heartbeat): the view is installed with its cut.
        let mut waiting = core;
        let out = waiting.handle_message(
            ms(20),
            member(2),
            Body::Install {
                base: Some(view(1, &[1]).id),
                ballot: ballot(1, 1),
                decision: decided(&next, &[(0, 0)], &[2]),
            },
        );
        assert!(installed(&out), "{out:?}");
        assert!(waiting.multicast().is_ready(), "a survivor keeps the state");

        // Without a decision within a view change timeout, the view is installed without.
        let mut core = Membership::new(
            group(),
            member(1),
            vec![],
            founding(),
            MulticastConfig::default(),
        );
        core.handle_start(ms(0));
        core.handle_message(ms(10), member(2), Body::Stale { view: next.clone() });
        let timeout = MembershipConfig::default().view_change_timeout;
        assert!(!installed(&core.handle_tick(ms(10) + timeout / 2)));
        assert!(installed(&core.handle_tick(ms(10) + timeout)));
        assert_eq!(core.view(), Some(&next));
        assert!(core.multicast().needs_resync());
    }

    #[test]
    fn a_proposer_ignores_a_value_no_majority_of_voters_can_have_accepted() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(2, &base);
        core.handle_suspect(ms(5), member(1).id);
        // Every voter promises: only member 1 accepted the earlier value (the old
        // coordinator's own acceptance), so it was never chosen and need not be followed.
        let earlier = decided(&view(4, &[1, 2, 3, 4]), &[(5, 0), (0, 1), (0, 2)], &[4]);
        let promise = |accepted: Option<(Ballot, Decision)>| Body::Promise {
            base: base.id,
            ballot: ballot(1, 2),
            accepted,
            report: FlushReport {
                received: vec![5, 0, 0],
                ready: true,
            },
        };
        let out = core.handle_message(
            ms(6),
            member(1),
            promise(Some((ballot(1, 1), earlier.clone()))),
        );
        assert!(out.is_empty(), "waits for the trusted member 3: {out:?}");
        let out = core.handle_message(ms(7), member(3), promise(None));
        let proposed: Vec<&Decision> = out
            .iter()
            .filter_map(|o| match o {
                MembershipOutput::Send {
                    body: Body::Accept { decision, .. },
                    ..
                } => Some(decision),
                _ => None,
            })
            .collect();
        assert_eq!(proposed.len(), 2, "{out:?}");
        assert!(proposed
            .iter()
            .all(|d| **d != earlier && d.view.id.epoch == 4));
    }

    #[test]
    fn a_proposer_adopts_a_value_already_accepted() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(2, &base);
        core.handle_suspect(ms(5), member(1).id);
        // Its own promise is in; member 3 reports a value accepted under the old coordinator.
        let earlier = decided(&view(4, &[1, 2, 3, 4]), &[(5, 0), (0, 1), (0, 2)], &[4]);
        let out = core.handle_message(
            ms(6),
            member(3),
            Body::Promise {
                base: base.id,
                ballot: ballot(1, 2),
                accepted: Some((ballot(1, 1), earlier.clone())),
                report: FlushReport {
                    received: vec![5, 0, 0],
                    ready: true,
                },
            },
        );
        assert_eq!(
            out[..2],
            [
                send(
                    1,
                    Body::Accept {
                        base: base.clone(),
                        ballot: ballot(1, 2),
                        base_decided: None,
                        decision: earlier.clone(),
                    }
                ),
                send(
                    3,
                    Body::Accept {
                        base: base.clone(),
                        ballot: ballot(1, 2),
                        base_decided: None,
                        decision: earlier,
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_view_without_this_process_excludes_it_and_it_joins_again() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(3, &base);
        let out = core.handle_message(
            ms(5),
            member(1),
            Body::Install {
                base: Some(base.id),
                ballot: ballot(1, 1),
                decision: decided(&view(4, &[1, 2]), &[(0, 0), (0, 1), (0, 2)], &[]),
            },
        );
        assert_eq!(
            out,
            vec![MembershipOutput::Excluded {
                by: Some(view(4, &[1, 2]).id)
            }]
        );
        assert!(matches!(core.status(), Status::Joining { .. }));
        assert_eq!(core.last_epoch(), 4);
    }

    #[test]
    fn a_message_about_an_older_view_gets_the_newer_one() {
        let current = view(5, &[1, 2, 3]);
        let mut core = core_with_view(2, &current);
        let out = core.handle_message(
            ms(5),
            member(3),
            Body::Prepare {
                base: view(4, &[3, 2]),
                ballot: ballot(1, 3),
                base_decided: None,
            },
        );
        assert_eq!(
            out,
            vec![send(
                3,
                Body::Stale {
                    view: current.clone()
                }
            )]
        );
        assert_eq!(
            core.handle_peer_view(member(3), view(4, &[3, 2]).id),
            vec![send(3, Body::Stale { view: current })]
        );
    }

    #[test]
    fn a_process_whose_leave_timed_out_says_so_and_is_not_waited_for_as_coordinator() {
        let v = view(4, &[1, 2, 3]);
        // The coordinator leaves, nothing reaches it, and its leave times out.
        let mut leaver = core_with_view(1, &v);
        leaver.handle_leave(ms(10));
        let timeout = MembershipConfig::default().leave_timeout;
        assert!(leaver
            .handle_tick(ms(10) + timeout)
            .contains(&MembershipOutput::Left));
        // A member whose heartbeat still lists it in that view is told it left.
        let left = Body::LeaveRequest {
            member: member(1).id,
        };
        assert_eq!(
            leaver.handle_peer_view(member(3), v.id),
            vec![send(3, left.clone())]
        );
        // Member 3 suspects 2 and takes 1 (it answers probes) for its coordinator.
        let mut other = core_with_view(3, &v);
        other.handle_suspect(ms(20), member(2).id);
        assert_eq!(other.acting_coordinator(), Some(&member(1)));
        // A leave request about 1 forwarded by someone else is passed on, nothing more.
        let out = other.handle_message(ms(30), member(2), left.clone());
        assert_eq!(out, vec![send(1, left.clone())]);
        assert_eq!(other.acting_coordinator(), Some(&member(1)));
        // From 1 itself it means 1 gave up: 3 stops waiting for it and proposes the view
        // without it.
        let out = other.handle_message(ms(40), member(1), left);
        assert_eq!(other.acting_coordinator(), Some(&member(3)));
        assert!(out.iter().any(|o| matches!(
            o,
            MembershipOutput::Send {
                body: Body::Prepare { .. },
                ..
            }
        )));
    }

    #[test]
    fn a_graceful_leave_of_the_coordinator_installs_the_view_without_it() {
        let base = view(3, &[1, 2, 3]);
        let mut core = core_with_view(1, &base);
        let out = core.handle_leave(ms(5));
        assert_eq!(
            out,
            vec![
                send(
                    2,
                    Body::Prepare {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                    }
                ),
                send(
                    3,
                    Body::Prepare {
                        base: base.clone(),
                        ballot: ballot(1, 1),
                        base_decided: None,
                    }
                ),
            ]
        );
        for n in [2, 3] {
            core.handle_message(
                ms(6),
                member(n),
                Body::Promise {
                    base: base.id,
                    ballot: ballot(1, 1),
                    accepted: None,
                    report: FlushReport {
                        received: vec![0, 0, 0],
                        ready: true,
                    },
                },
            );
        }
        let out = core.handle_message(
            ms(7),
            member(3),
            Body::Accepted {
                base: base.id,
                ballot: ballot(1, 1),
            },
        );
        assert_eq!(out.last(), Some(&MembershipOutput::Left));
        assert_eq!(core.status(), &Status::Left);
    }
}
