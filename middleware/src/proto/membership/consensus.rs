//! The consensus that decides each view change: this process's acceptor and proposer, and
//! the two phases between them. A step that decides a view returns it ([`Decided`]); the
//! membership core installs it, so nothing here calls back into the core.
//!
//! A process's own acceptor answers its own proposer directly (no frame to itself), so one
//! step may run both phases: a lone voter decides within the step that proposes.

use super::acceptor::Acceptor;
use super::compose::Changes;
use super::config::MembershipConfig;
use super::output::{emit, MembershipOutput};
use super::proposer::{Proposer, Value};
use crate::id::{GroupName, ViewId};
use crate::proto::multicast::Multicast;
use crate::proto::Time;
use crate::view::{Member, View};
use crate::wire::{Ballot, Body, Decision, FlushReport};
use std::collections::BTreeSet;

/// A view decided by a majority of its base, with its base, ballot and decision.
pub(super) type Decided = (View, (ViewId, Ballot, Decision));

/// What a consensus step reads of the rest of the membership core, and the multicast it
/// freezes and asks about the cut.
pub(super) struct Context<'a> {
    pub(super) me: Member,
    pub(super) group: &'a GroupName,
    pub(super) config: &'a MembershipConfig,
    pub(super) changes: &'a Changes,
    pub(super) multicast: &'a mut Multicast,
    /// The last decision this process installed, with its base.
    pub(super) last_decision: &'a Option<(ViewId, Ballot, Decision)>,
}

impl Context<'_> {
    /// How `view` was decided, if this process installed it through a decision.
    pub(super) fn decided_of(&self, view: &View) -> Option<(ViewId, Ballot, Decision)> {
        decided_of(self.last_decision, view)
    }
}

/// How `view` was decided according to `last_decision`, if that decision made it.
pub(super) fn decided_of(
    last_decision: &Option<(ViewId, Ballot, Decision)>,
    view: &View,
) -> Option<(ViewId, Ballot, Decision)> {
    last_decision
        .clone()
        .filter(|(_, _, decision)| decision.view == *view)
}

/// This process's part in deciding its group's views.
#[derive(Debug, Default)]
pub(super) struct Consensus {
    pub(super) acceptor: Acceptor,
    pub(super) proposer: Proposer,
    /// When this process first promised in its current view (it is blocked since).
    pub(super) promised_since: Option<Time>,
}

impl Consensus {
    /// Starts a proposal for the successor of `view` (the proposer may start, see
    /// [`Proposer::may_start`]): `Prepare` to the other members, and this process's own
    /// promise.
    pub(super) fn propose(
        &mut self,
        now: Time,
        view: &View,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        let ballot = self.proposer.start(now, view, cx.me.id);
        for member in &view.members {
            if member.id != cx.me.id {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::Prepare {
                        base: view.clone(),
                        ballot,
                        base_decided: cx.decided_of(view),
                    },
                });
            }
        }
        let reply = self.promise(now, view.id, ballot, cx, out);
        self.reply(now, cx.me, reply, cx, out)
    }

    /// Promises `ballot` unless a higher one was promised. Promising freezes this member's
    /// multicast in `base`: what it reports is all it will deliver there.
    pub(super) fn promise(
        &mut self,
        now: Time,
        base: ViewId,
        ballot: Ballot,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Body {
        match self.acceptor.on_prepare(base, ballot) {
            Ok(accepted) => {
                self.promised_since.get_or_insert(now);
                let mut outputs = Vec::new();
                cx.multicast.freeze(base, &mut outputs);
                emit(out, outputs);
                Body::Promise {
                    base,
                    ballot,
                    accepted,
                    report: cx.multicast.report(base),
                }
            }
            Err(promised) => Body::Rejected { base, promised },
        }
    }

    /// Accepts `decision` unless a higher ballot was promised. `Accepted` goes back only once
    /// this member holds every entry of the cut, so a decided cut is held by a majority.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn accept(
        &mut self,
        now: Time,
        proposer: Member,
        base: ViewId,
        ballot: Ballot,
        decision: Decision,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        let decision = match self.acceptor.on_accept(proposer, base, ballot, decision) {
            Ok(decision) => decision,
            Err(promised) => {
                let reply = Body::Rejected { base, promised };
                return self.reply(now, proposer, reply, cx, out);
            }
        };
        self.promised_since.get_or_insert(now);
        let mut outputs = Vec::new();
        cx.multicast.freeze(base, &mut outputs);
        cx.multicast.fetch(now, base, &decision.cut, &mut outputs);
        emit(out, outputs);
        self.answer_awaiting_cut(now, cx, out)
    }

    /// Accepts a proposal waiting for its cut once this member holds it, and replies.
    pub(super) fn answer_awaiting_cut(
        &mut self,
        now: Time,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        let multicast = &*cx.multicast;
        let (proposer, reply, accepted) = self
            .acceptor
            .answer_once_held(|base, cut| multicast.holds(base, cut))?;
        out.push(MembershipOutput::ViewAccepted(accepted));
        self.reply(now, proposer, reply, cx, out)
    }

    /// Sends an acceptor's reply, or feeds it straight to this process's own proposer.
    pub(super) fn reply(
        &mut self,
        now: Time,
        to: Member,
        body: Body,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        if to.id != cx.me.id {
            out.push(MembershipOutput::Send { to: to.addr, body });
            return None;
        }
        let me = cx.me;
        match body {
            Body::Promise {
                base,
                ballot,
                accepted,
                report,
            } => self.on_promise(now, me, (base, ballot), accepted, report, cx, out),
            Body::Accepted { base, ballot } => self.on_accepted(now, me, base, ballot, cx, out),
            Body::Rejected { base, promised } => {
                self.on_rejected(now, base, promised, cx);
                None
            }
            _ => None,
        }
    }

    /// A promise answering the proposal of `base` with `ballot`, if that is the one in progress.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_promise(
        &mut self,
        now: Time,
        from: Member,
        (base, ballot): (ViewId, Ballot),
        accepted: Option<(Ballot, Decision)>,
        report: FlushReport,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        if self
            .proposer
            .record_promise(from.id, base, ballot, accepted, report)
        {
            self.begin_accepting(now, cx, out)
        } else {
            None
        }
    }

    /// Moves a proposal to phase 2 once the proposer is ready (see
    /// [`Proposer::ready_to_accept`]), with the value it must adopt or one composed now.
    pub(super) fn begin_accepting(
        &mut self,
        now: Time,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        let flush_timeout = cx.config.view_change_timeout / 2;
        let (base, value) =
            self.proposer
                .ready_to_accept(now, &cx.changes.suspected, flush_timeout)?;
        let base_view = base.clone();
        let value = match value {
            Value::Adopt(decision) => Some(decision),
            Value::Compose(promises) => {
                // This process's own promise may predate the loss of its state (a failed
                // snapshot since): composing from it would make it a voter that holds nothing,
                // perhaps the only one (sim seed 5654: the view went on from nobody's state
                // while a live holder had not promised yet). Its own state is known now.
                let mut promises = promises.clone();
                if !cx.multicast.holds_state() {
                    if let Some((_, report)) = promises.get_mut(&cx.me.id) {
                        report.ready = false;
                    }
                }
                cx.changes
                    .decision(cx.group, cx.me.id, &base_view, &promises)
            }
        };
        let Some(value) = value else {
            // No promiser holds the group's state: deciding a view now would start it from
            // nothing. Wait for a holder to come back (reported as blocked).
            self.proposer.no_holder(now);
            return None;
        };
        let ballot = self.proposer.begin_accepting(value.clone());
        for member in &base_view.members {
            if member.id != cx.me.id {
                out.push(MembershipOutput::Send {
                    to: member.addr,
                    body: Body::Accept {
                        base: base_view.clone(),
                        ballot,
                        base_decided: cx.decided_of(&base_view),
                        decision: value.clone(),
                    },
                });
            }
        }
        self.accept(now, cx.me, base_view.id, ballot, value, cx, out)
    }

    /// An acceptance for the proposal in progress; with a majority of the base's voters the
    /// view is decided: `Install` goes to the next view's members and the base's.
    pub(super) fn on_accepted(
        &mut self,
        _now: Time,
        from: Member,
        base: ViewId,
        ballot: Ballot,
        cx: &mut Context<'_>,
        out: &mut Vec<MembershipOutput>,
    ) -> Option<Decided> {
        let (decided, base_view) = self.proposer.record_accepted(from.id, base, ballot)?;
        let mut told = BTreeSet::new();
        for member in decided.view.members.iter().chain(base_view.members.iter()) {
            if member.id != cx.me.id && told.insert(member.id) {
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
        Some((view, (base, ballot, decided)))
    }

    /// An acceptor preferred a higher ballot: see [`Proposer::outbid`].
    pub(super) fn on_rejected(
        &mut self,
        now: Time,
        base: ViewId,
        promised: Ballot,
        cx: &Context<'_>,
    ) {
        let timeout = cx.config.view_change_timeout;
        self.proposer.outbid(now, base, promised, cx.me.id, timeout);
    }
}
