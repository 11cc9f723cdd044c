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
//!
//! # Files
//!
//! The roles are types of their own, owned by [`Membership`], which composes them:
//! `acceptor` (answers `Prepare`/`Accept`, keeps promises), `proposer` (drives one decision),
//! `compose` (the pending changes and the next view), `join` (the joiner), `requests`
//! (answering join and leave requests), `merge` (concurrent views), `config` and `output`.
//! They import one way: this file uses them, they use only `config`, `output` and each other
//! downwards. `install` holds the core's own install lifecycle (methods of [`Membership`]
//! that call only into the roles, never back into this file).

mod acceptor;
mod anti_entropy;
mod blocked;
mod compose;
mod config;
mod consensus;
mod install;
mod join;
mod merge;
mod output;
mod proposer;
mod requests;
#[cfg(test)]
mod tests;

pub use config::MembershipConfig;
pub use output::{MembershipOutput, Status};

use anti_entropy::Installed;
use blocked::Standing;
use compose::Changes;
use consensus::{Consensus, Context, Decided};
use join::Joiner;
use merge::{Discovery, Verdict};
use output::emit;
use requests::Requests;

use super::multicast::{Multicast, MulticastConfig, MulticastOutput};
use super::Time;
use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::{Member, View};
use crate::wire::{Ballot, Blocked, Body, Decision, RecoveryClaim};
use std::net::SocketAddr;

/// The membership core of one group at one process.
#[derive(Debug)]
pub struct Membership {
    group: GroupName,
    me: Member,
    config: MembershipConfig,
    status: Status,
    view: Option<View>,
    last_epoch: u64,
    consensus: Consensus,
    changes: Changes,
    joiner: Joiner,
    discovery: Discovery,
    last_request: Option<Time>,
    multicast: Multicast,
    /// The last decision this process installed, with its base: resent to a member still in
    /// the base, which needs the cut.
    last_decision: Option<(ViewId, Ballot, Decision)>,
    /// A member reported being blocked in this view: finish the view change even if no
    /// membership change is pending.
    force_change: bool,
    last_stall_notice: Option<Time>,
    /// A later view that lists this process, heard of without its decision (from a member
    /// that installed it without the cut, or through discovery), and since when. A member
    /// holding the state waits up to a view change timeout for the decision (resent by the
    /// members that installed it, on this process's heartbeats) before installing the view
    /// without its cut: that would drop the state it holds and wait for a transfer, and if
    /// every holder did so the group's state would be gone.
    undecided_view: Option<(View, Time)>,
    /// What this process recovered as a restarted former member with durable state, if so
    /// (see [`Membership::set_recovery`]).
    recovery: Option<RecoveryClaim>,
    /// How many members the failure detectors watch each member with (see
    /// [`Membership::set_monitors`]).
    monitors: usize,
    /// When this process last reported its suspicions to the acting coordinator.
    last_suspicion_report: Option<Time>,
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
        Membership {
            group,
            me,
            config,
            status: Status::Left,
            view: None,
            last_epoch: 0,
            consensus: Consensus::default(),
            changes: Changes::default(),
            joiner: Joiner::new(me, seeds),
            discovery: Discovery::default(),
            last_request: None,
            multicast: Multicast::new(me.id, multicast),
            last_decision: None,
            force_change: false,
            last_stall_notice: None,
            undecided_view: None,
            recovery: None,
            monitors: usize::MAX,
            last_suspicion_report: None,
        }
    }

    /// The failure detectors watch each member of a view larger than `monitors + 1` with only
    /// `monitors` others (a ring, `proto::failure_detector::ring_peers`), so the acting
    /// coordinator may not notice a crash itself: in such a view a member that is not the
    /// acting coordinator reports its suspicions there ([`Body::Suspicions`]), at once and
    /// then every `join_retry_interval` while they stand. Unset (the default), every member
    /// watches every other and nothing is reported.
    pub fn set_monitors(&mut self, monitors: usize) {
        self.monitors = monitors;
    }

    /// This process restarted as a former member whose service keeps durable state: `claim`
    /// is what it recovered (its last installed view and its state's position). While joining
    /// with no member answering, it may re-form the group with the others recovering (see
    /// `proto::membership::join`). `None` (the default) never re-forms: the process waits for a member.
    pub fn set_recovery(&mut self, claim: Option<RecoveryClaim>) {
        self.recovery = claim;
    }

    /// The service recovered a durable state at `position` (a restarted process): until this
    /// process installs a view, a state transfer to it asks for a delta from there instead
    /// of the whole state ([`Multicast::set_catch_up_from`]). Ignored once a view was
    /// installed (the service state has moved since, or will have by the transfer).
    pub fn set_catch_up_from(&mut self, position: Option<u64>) {
        if self.view.is_none() {
            self.multicast.set_catch_up_from(position);
        }
    }

    /// The recovery claim while it applies: only until this process installs a view (a
    /// member excluded later rejoins the group it knows exists).
    fn recovery_claim(&self) -> Option<&RecoveryClaim> {
        self.recovery.as_ref().filter(|_| self.view.is_none())
    }

    /// A one-line account of the view change in progress, for traces.
    pub fn describe(&self) -> String {
        format!(
            "{} {} suspected {:?} pending joins {:?} leaves {:?} force {}",
            self.consensus.proposer.describe(),
            self.consensus.acceptor.describe(),
            self.changes.suspected,
            self.changes.joins.keys().collect::<Vec<_>>(),
            self.changes.leaves,
            self.force_change
        )
    }

    /// The group's multicast core.
    pub fn multicast(&self) -> &Multicast {
        &self.multicast
    }

    /// Runs `f` on the multicast core (an input the node routes to it directly: multicast
    /// traffic, the service's multicasts and snapshots, flushes). Returns `f`'s result, the
    /// multicast's outputs, and then what membership does on it: an accept waiting for the
    /// cut may be answerable now.
    pub fn with_multicast<R>(
        &mut self,
        now: Time,
        f: impl FnOnce(&mut Multicast, &mut Vec<MulticastOutput>) -> R,
    ) -> (R, Vec<MulticastOutput>, Vec<MembershipOutput>) {
        let mut outputs = Vec::new();
        let result = f(&mut self.multicast, &mut outputs);
        let mut out = Vec::new();
        self.answer_awaiting_cut(now, &mut out);
        (result, outputs, out)
    }

    /// Accepts a proposal waiting for its cut once this member holds it, and replies.
    fn answer_awaiting_cut(&mut self, now: Time, out: &mut Vec<MembershipOutput>) {
        let (consensus, mut cx) = self.consensus();
        let decided = consensus.answer_awaiting_cut(now, &mut cx, out);
        self.install_decided(now, decided, out);
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
        self.view
            .as_ref()
            .is_some_and(|v| self.consensus.acceptor.accepted_in(v.id))
    }

    /// Where this process stands.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Whether this process is blocked in the group, since when and on what: a view change
    /// has been under way (its multicast frozen) for twice the view change timeout, or it
    /// has been joining that long with no seed answering as a member and no `bootstrap`.
    pub fn blocked(&self, now: Time) -> Option<Blocked> {
        blocked::blocked(
            now,
            &Standing {
                me: self.me.id,
                config: &self.config,
                status: &self.status,
                group_seen: self.joiner.group_seen(),
                last_epoch: self.last_epoch,
                view: self.view.as_ref(),
                suspected: &self.changes.suspected,
                promised_since: self.consensus.promised_since,
                waits_for_holder: self.consensus.proposer.waits_for_holder(),
                recovery: self
                    .recovery_claim()
                    .map(|claim| self.joiner.recovery(now, &self.config, self.me.id, claim)),
            },
        )
    }

    /// The member this process treats as coordinator: the oldest member it does not suspect.
    pub fn acting_coordinator(&self) -> Option<&Member> {
        requests::acting_coordinator(self.view()?, self.me.id, &self.changes)
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
        if self.joiner.seeds().is_empty() {
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
                self.changes.leaves.insert(self.me.id);
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
            self.changes.suspected.insert(peer);
            self.changes.reported.remove(&peer);
            self.drive(now, &mut out);
            self.report_suspicions(now, true, &mut out);
        }
        out
    }

    /// In a view watched as a ring, tells the acting coordinator (when that is another
    /// member) which members of the view after it this process suspects: when `now_anyway`,
    /// or when the last report is a retry interval old.
    fn report_suspicions(&mut self, now: Time, now_anyway: bool, out: &mut Vec<MembershipOutput>) {
        let Some(view) = self.view() else {
            return;
        };
        if view.members.len() <= self.monitors.saturating_add(1) {
            return;
        }
        let Some(coordinator) = self.acting_coordinator() else {
            return;
        };
        // Members before the acting coordinator are suspected already by everyone that
        // watched them as coordinator: no report for them (one member's false suspicion of
        // its coordinator would otherwise start a view change).
        let suspects: Vec<ProcessId> = view
            .members
            .iter()
            .map(|m| m.id)
            .skip_while(|id| *id != coordinator.id)
            .filter(|id| self.changes.suspected.contains(id))
            .collect();
        let due = self
            .last_suspicion_report
            .is_none_or(|t| now.saturating_sub(t) >= self.config.join_retry_interval);
        if suspects.is_empty() || !(now_anyway || due) {
            return;
        }
        let base = view.id;
        let Some(coordinator) = self.acting_coordinator().filter(|c| c.id != self.me.id) else {
            return;
        };
        let to = coordinator.addr;
        self.last_suspicion_report = Some(now);
        out.push(MembershipOutput::Send {
            to,
            body: Body::Suspicions { base, suspects },
        });
    }

    /// A member of this view reported its suspicions: they count as this process's own for
    /// the next view change (a live suspect that promises is kept, as with any suspicion),
    /// except those a view change kept less than [`compose::KEPT_SUSPECT_QUIET`] ago.
    fn handle_suspicions(
        &mut self,
        now: Time,
        from: Member,
        base: ViewId,
        suspects: Vec<ProcessId>,
        out: &mut Vec<MembershipOutput>,
    ) {
        let Some(view) = self.view().filter(|v| v.id == base && v.contains(from.id)) else {
            return;
        };
        let me = self.me.id;
        let changes = &self.changes;
        let quiet = |id: &ProcessId| {
            changes
                .kept
                .get(id)
                .is_some_and(|t| now.saturating_sub(*t) < compose::KEPT_SUSPECT_QUIET)
        };
        let fresh: Vec<ProcessId> = suspects
            .into_iter()
            .filter(|id| *id != me && view.contains(*id))
            .filter(|id| !changes.suspected.contains(id) && !quiet(id))
            .collect();
        if fresh.is_empty() {
            return;
        }
        self.changes.reported.extend(fresh.iter().copied());
        self.changes.suspected.extend(fresh);
        self.drive(now, out);
    }

    /// Whether the next view change treats `peer` as suspected.
    pub fn suspects(&self, peer: ProcessId) -> bool {
        self.changes.suspected.contains(&peer)
    }

    /// The failure detector heard from a suspected `peer` again.
    pub fn handle_unsuspect(&mut self, _now: Time, peer: ProcessId) -> Vec<MembershipOutput> {
        self.changes.suspected.remove(&peer);
        self.changes.reported.remove(&peer);
        Vec::new()
    }

    /// A periodic tick: retries, timeouts, discovery.
    pub fn handle_tick(&mut self, now: Time) -> Vec<MembershipOutput> {
        let mut out = Vec::new();
        match self.status.clone() {
            Status::Joining { since, .. } => {
                let may_create =
                    self.joiner
                        .may_found(now, since, &self.config, self.last_epoch, self.me.id);
                let recover = match self.recovery_claim().cloned() {
                    Some(claim) if !may_create => {
                        self.joiner
                            .may_recover(now, since, &self.config, self.me.id, &claim)
                    }
                    _ => None,
                };
                if may_create {
                    self.create_group(&mut out);
                } else if let Some(last_epoch) = recover {
                    // The view re-formed follows every view any claimant installed.
                    self.last_epoch = self.last_epoch.max(last_epoch);
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
                self.report_suspicions(now, false, &mut out);
                if let Some(view) = self.view() {
                    let view = view.clone();
                    let interval = self.config.discovery_interval;
                    let seeds = self.joiner.seeds();
                    self.discovery
                        .probe(now, interval, self.me.id, &view, seeds, &mut out);
                }
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
            .consensus
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
                self.changes.promotions.insert(self.me.id);
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
                self.changes
                    .joins
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
            self.joiner.saw_group();
            vec![MembershipOutput::RefusedBy { seed: from, reason }]
        } else {
            Vec::new()
        }
    }
    /// A peer's heartbeat said it has installed `peer_view` of this group. If this process
    /// knows a later view that contains the peer or excludes it, the peer is told.
    pub fn handle_peer_view(&mut self, from: Member, peer_view: ViewId) -> Vec<MembershipOutput> {
        self.installed().answer_peer_view(from, peer_view)
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
            } => {
                let (consensus, mut cx) = self.consensus();
                let decided = consensus.on_promise(
                    now,
                    from,
                    (base, ballot),
                    accepted,
                    report,
                    &mut cx,
                    &mut out,
                );
                self.install_decided(now, decided, &mut out);
            }
            Body::Accept {
                base,
                ballot,
                base_decided,
                decision,
            } => self.handle_accept(now, from, base, ballot, base_decided, decision, &mut out),
            Body::Accepted { base, ballot } => {
                let (consensus, mut cx) = self.consensus();
                let decided = consensus.on_accepted(now, from, base, ballot, &mut cx, &mut out);
                self.install_decided(now, decided, &mut out);
            }
            Body::Rejected { base, promised } => {
                let (consensus, cx) = self.consensus();
                consensus.on_rejected(now, base, promised, &cx);
            }
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
                    self.changes.promotions.insert(from.id);
                    self.drive(now, &mut out);
                }
            }
            Body::Discover { view } => self.handle_discover(now, from, view, &mut out),
            Body::DiscoverReply { view } => self.handle_discover_reply(now, from, view, &mut out),
            Body::Recovering {
                claim,
                answer,
                vote,
            } => {
                // Only a recovering joiner listens; members answer the join request that
                // came with the claim, which tells the claimant the group exists.
                if let (Status::Joining { .. }, Some(mine)) =
                    (&self.status, self.recovery_claim().cloned())
                {
                    self.joiner.heard_claim(from, claim, vote, now);
                    self.joiner
                        .update_vote(now, &self.config, self.me.id, &mine);
                    if answer {
                        out.push(MembershipOutput::Send {
                            to: from.addr,
                            body: Body::Recovering {
                                claim: mine,
                                answer: false,
                                vote: self.joiner.vote(),
                            },
                        });
                    }
                }
            }
            Body::MergeInto { target } => self.handle_merge_into(now, from, target, &mut out),
            Body::Suspicions { base, suspects } => {
                self.handle_suspicions(now, from, base, suspects, &mut out)
            }
            // Multicast traffic goes to the multicast core: the node routes it there itself
            // (`with_multicast`), membership has no use for it.
            Body::Data { .. }
            | Body::Ack { .. }
            | Body::Nak { .. }
            | Body::StateRequest { .. }
            | Body::StateChunk { .. }
            | Body::Direct { .. }
            | Body::Heartbeat { .. }
            | Body::Probe
            | Body::ProbeAck
            | Body::MembersRequest
            | Body::MembersResponse { .. }
            | Body::GroupSend { .. }
            | Body::GroupSendResult { .. }
            | Body::Request { .. }
            | Body::Response { .. }
            | Body::Refused { .. } => {}
            // The node's shell answers operators; they never reach a core.
            Body::StatusRequest
            | Body::StatusResponse { .. }
            | Body::MonitorRequest
            | Body::MonitorEvents { .. }
            | Body::LeaveCommand
            | Body::EvictCommand { .. }
            | Body::CommandResult { .. } => {}
        }
        out
    }

    /// What answering a join or leave request needs of this core.
    fn requests(&mut self) -> Requests<'_> {
        let view = match self.status {
            Status::Member | Status::Leaving { .. } => self.view.as_ref(),
            _ => None,
        };
        Requests {
            me: self.me,
            status: &self.status,
            view,
            changes: &mut self.changes,
            last_decision: &self.last_decision,
        }
    }

    fn handle_join_request(
        &mut self,
        now: Time,
        from: Member,
        joiner: Member,
        last_epoch: u64,
        out: &mut Vec<MembershipOutput>,
    ) {
        if self.requests().join_request(from, joiner, last_epoch, out) {
            self.drive(now, out);
        }
    }

    fn handle_leave_request(
        &mut self,
        now: Time,
        from: Member,
        leaver: ProcessId,
        out: &mut Vec<MembershipOutput>,
    ) {
        if self.requests().leave_request(from, leaver, out) {
            self.drive(now, out);
        }
    }

    /// What this process installed, as anti-entropy sees it.
    fn installed(&self) -> Installed<'_> {
        Installed {
            me: self.me.id,
            status: &self.status,
            view: self.view.as_ref(),
            last_decision: &self.last_decision,
        }
    }

    /// This process's consensus state and what a step of it needs of the rest of the core.
    fn consensus(&mut self) -> (&mut Consensus, Context<'_>) {
        let cx = Context {
            me: self.me,
            group: &self.group,
            config: &self.config,
            changes: &self.changes,
            multicast: &mut self.multicast,
            last_decision: &self.last_decision,
        };
        (&mut self.consensus, cx)
    }

    /// Installs what a consensus step decided, if anything.
    fn install_decided(
        &mut self,
        now: Time,
        decided: Option<Decided>,
        out: &mut Vec<MembershipOutput>,
    ) {
        if let Some((view, decided)) = decided {
            self.handle_decided_view(now, view, Some(decided), out);
        }
    }

    /// Whether this process answers a `Prepare` or `Accept` of `ballot` on `base`: not if it
    /// already installed a later view (the sender is told), answered a later instance, or
    /// `base` is not (after catching up to it) the last view it installed.
    fn may_vote(
        &mut self,
        now: Time,
        from: Member,
        base: &View,
        ballot: Ballot,
        base_decided: Option<(ViewId, Ballot, Decision)>,
        out: &mut Vec<MembershipOutput>,
    ) -> bool {
        self.consensus.proposer.heard(ballot.round);
        !(self.installed().reply_if_stale(from.addr, base.id, out)
            || self.consensus.acceptor.answered_later_instance(base.id)
            || !self.catch_up_to(now, base, base_decided, out))
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
        if !self.may_vote(now, from, &base, ballot, base_decided, out) {
            return;
        }
        let (consensus, mut cx) = self.consensus();
        let reply = consensus.promise(now, base.id, ballot, &mut cx, out);
        let decided = consensus.reply(now, from, reply, &mut cx, out);
        self.install_decided(now, decided, out);
        if self.status == Status::Left && from.id != self.me.id {
            out.push(MembershipOutput::Send {
                to: from.addr,
                body: Body::LeaveRequest { member: self.me.id },
            });
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
        if !self.may_vote(now, from, &base, ballot, base_decided, out) {
            return;
        }
        let (consensus, mut cx) = self.consensus();
        let decided = consensus.accept(now, from, base.id, ballot, decision, &mut cx, out);
        self.install_decided(now, decided, out);
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
            (Status::Joining { .. }, None) => self.joiner.heard_joiner(from.id, now),
            (Status::Joining { since, .. }, Some(view)) => {
                self.joiner.saw_group();
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

    /// Another view of this group, learned through discovery: see [`merge::judge`].
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
        match merge::judge(self.me.id, &mine, from.id, &other) {
            Verdict::Install => self.handle_decided_view(now, other, None, out),
            Verdict::Yield { take_members_along } => {
                if take_members_along {
                    merge::take_members_along(self.me.id, &mine, from, out);
                }
                self.begin_joining(now, Some(from.addr));
                out.push(MembershipOutput::Excluded { by: Some(other.id) });
                self.send_join_requests(now, out);
            }
            Verdict::Ignore => {}
        }
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
            self.consensus.proposer.abandon();
            return;
        }
        let Some(view) = self.view().cloned() else {
            return;
        };
        let timeout = self.config.view_change_timeout;
        if self.consensus.proposer.keep_live(now, view.id, timeout) {
            let (consensus, mut cx) = self.consensus();
            let decided = consensus.begin_accepting(now, &mut cx, out);
            self.install_decided(now, decided, out);
            return;
        }
        // Once anyone promised in this view, members are blocked: the change must finish,
        // even with the same members.
        let flush_started = self.consensus.acceptor.promised_in(view.id);
        let something_to_change = self.changes.next_members(&view, None, false).is_some()
            || flush_started
            || self.force_change;
        if !something_to_change || !self.consensus.proposer.may_start(now, timeout) {
            return;
        }
        let (consensus, mut cx) = self.consensus();
        let decided = consensus.propose(now, &view, &mut cx, out);
        self.install_decided(now, decided, out);
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
        let claim = self.recovery_claim().cloned();
        self.joiner
            .requests(self.me, via, self.last_epoch, claim.as_ref(), out);
    }
}
