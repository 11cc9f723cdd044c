//! Property checkers for membership. The simulator feeds them every view installed and every
//! consensus message sent, and calls [`MembershipChecker::check_step`] after every step.
//!
//! [`MembershipChecker`] reports, under these property names:
//!
//! - *self-inclusion*: a process installs only views that contain it;
//! - *monotonic views*: each process installs views of strictly increasing epochs;
//! - *view agreement*: every process that installs a view id installs the same members;
//! - *primary partition*: every view but a group's creation (a process's first view, with
//!   itself alone) was proposed in an `Accept` accepted by a majority of the proposal's base
//!   (the proposer and the senders of `Accepted`), or decided alone by the single member of
//!   its base (its `Install`);
//! - *unique successor*: every view has at most one decided successor: the views decided for
//!   one base (in `Install`s with a base, or proposed in an `Accept` accepted by a majority of
//!   the base) are all the same view;
//! - *promises kept*: an acceptor never answers a ballot below one it answered before in the
//!   same instance (a `Promise` or `Accepted` for a base, after a `Promise` or `Accepted` of a
//!   higher ballot for that base). This is Paxos' own invariant, seen on the wire; a broken
//!   promise rarely ends in two decided successors (both ballots must carry different views
//!   and reach a majority), so the end-to-end checks alone would almost never notice it.

use crate::id::{GroupName, ProcessId, ViewId};
use crate::view::View;
use crate::wire::{Ballot, Body, Envelope};
use std::collections::{BTreeMap, BTreeSet};

/// A violated property, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The property's name.
    pub property: &'static str,
    /// What happened.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

/// Records membership history and checks the membership properties.
#[derive(Debug, Default)]
pub struct MembershipChecker {
    /// Every view id seen installed, with its members.
    views: BTreeMap<(GroupName, ViewId), View>,
    /// Views installed by each process, in order.
    installed: BTreeMap<(GroupName, ProcessId), Vec<ViewId>>,
    /// `Accept` proposals sent: (base, ballot) -> (base view, proposed view, proposer).
    proposals: BTreeMap<(ViewId, Ballot), (View, View, ProcessId)>,
    /// `Accepted` answers sent: (base, ballot) -> acceptors.
    acceptances: BTreeMap<(ViewId, Ballot), BTreeSet<ProcessId>>,
    /// `Install` messages sent by a proposer: (base, ballot) -> (decided view, proposer).
    installs: BTreeMap<(ViewId, Ballot), (View, ProcessId)>,
    /// Views installed but not yet checked for a majority, with whether it was the
    /// installer's first view of the group (then it may be the group's creation).
    unchecked: Vec<(ProcessId, View, bool)>,
    /// The decided successor of each base view, with what showed it first.
    successors: BTreeMap<(GroupName, ViewId), (View, String)>,
    /// Bases already reported with two successors (reported once).
    split: BTreeSet<(GroupName, ViewId)>,
    /// The highest ballot each acceptor answered (`Promise` or `Accepted`) per base.
    answered: BTreeMap<(ProcessId, ViewId), Ballot>,
    violations: Vec<Violation>,
}

impl MembershipChecker {
    /// Observes a message a process sends (consensus messages are recorded).
    pub fn observe_send(&mut self, envelope: &Envelope) {
        match &envelope.body {
            Body::Accept {
                base,
                ballot,
                decision,
                ..
            } => {
                self.proposals
                    .entry((base.id, *ballot))
                    .or_insert_with(|| (base.clone(), decision.view.clone(), envelope.sender));
                self.check_proposal_decided(base.id, *ballot);
            }
            Body::Promise { base, ballot, .. } => {
                self.check_promise_kept(envelope.sender, *base, *ballot, "Promise");
            }
            Body::Accepted { base, ballot } => {
                self.check_promise_kept(envelope.sender, *base, *ballot, "Accepted");
                self.acceptances
                    .entry((*base, *ballot))
                    .or_default()
                    .insert(envelope.sender);
                self.check_proposal_decided(*base, *ballot);
            }
            Body::Install {
                base: Some(base),
                ballot,
                decision,
            } => {
                self.installs
                    .entry((*base, *ballot))
                    .or_insert_with(|| (decision.view.clone(), envelope.sender));
                let how = format!("an Install from {} (ballot {ballot:?})", envelope.sender);
                self.decided(*base, &decision.view, how);
            }
            _ => {}
        }
    }

    /// An acceptor answers no ballot below one it answered before for the same base: a
    /// `Promise` is a promise to ignore lower ballots, and accepting a ballot implies having
    /// promised it.
    fn check_promise_kept(
        &mut self,
        acceptor: ProcessId,
        base: ViewId,
        ballot: Ballot,
        what: &str,
    ) {
        let highest = self.answered.entry((acceptor, base)).or_insert(ballot);
        if ballot < *highest {
            let detail = format!(
                "{acceptor} sent {what} for ballot {ballot:?} of {base} after answering {:?}",
                *highest
            );
            self.violate("promises kept", detail);
        } else {
            *highest = ballot;
        }
    }

    /// Whether the proposal `(base, ballot)` is accepted by a majority of its base's voters,
    /// counting only the `Accepted` messages seen: then its view is decided. The proposer's
    /// own acceptance never crosses the wire (it accepts only once it holds the cut, which
    /// may be never), so it is not assumed; a value it decided shows in its `Install`.
    fn check_proposal_decided(&mut self, base: ViewId, ballot: Ballot) {
        let Some((base_view, proposed, _)) = self.proposals.get(&(base, ballot)) else {
            return;
        };
        let voters = self.acceptances.get(&(base, ballot));
        let acceptors: BTreeSet<&ProcessId> = voters.into_iter().flatten().collect();
        // Only the base's voters count; learners hold no state to vote with.
        if base_view.count_voters(acceptors) >= base_view.majority() {
            let proposed = proposed.clone();
            let how = format!("an Accept of ballot {ballot:?} accepted by a majority");
            self.decided(base, &proposed, how);
        }
    }

    /// `view` was decided as the successor of `base`, as `how` shows.
    fn decided(&mut self, base: ViewId, view: &View, how: String) {
        let key = (view.group.clone(), base);
        match self.successors.get(&key) {
            Some((known, known_how)) if known != view => {
                if self.split.insert(key) {
                    let detail = format!(
                        "{base} has two decided successors: {known} ({known_how}) and {view} ({how})"
                    );
                    self.violate("unique successor", detail);
                }
            }
            Some(_) => {}
            None => {
                self.successors.insert(key, (view.clone(), how));
            }
        }
    }

    /// Observes `process` installing `view`.
    pub fn observe_install(&mut self, process: ProcessId, view: &View) {
        let group = view.group.clone();
        if !view.contains(process) {
            self.violate(
                "self-inclusion",
                format!("{process} installed {view} without itself"),
            );
        }
        let history = self.installed.entry((group.clone(), process)).or_default();
        if let Some(last) = history.last() {
            if view.id.epoch <= last.epoch {
                let detail = format!("{process} installed {} after {}", view.id, last);
                self.violate("monotonic views", detail);
            }
        }
        let history = self
            .installed
            .get_mut(&(group.clone(), process))
            .expect("inserted");
        history.push(view.id);
        let first = history.len() == 1;
        match self.views.get(&(group.clone(), view.id)) {
            Some(known) if known.members != view.members => {
                let detail = format!("{process} installed {view}, others installed {known}");
                self.violate("view agreement", detail);
            }
            Some(_) => {}
            None => {
                self.views.insert((group, view.id), view.clone());
                self.unchecked.push((process, view.clone(), first));
            }
        }
    }

    /// Checks that each newly seen view was decided by a majority of its predecessor, or is a
    /// group's creation (a single member that installs it as its first view of the group).
    pub fn check_step(&mut self) {
        for (process, view, first) in std::mem::take(&mut self.unchecked) {
            // Whether it was the process's first view is taken at install time: it may have
            // installed a successor within the same step.
            let creation = first && view.members.len() == 1 && view.members[0].id == process;
            if creation {
                continue;
            }
            let decided =
                self.proposals
                    .iter()
                    .any(|((base, ballot), (base_view, proposed, proposer))| {
                        if *proposed != view {
                            return false;
                        }
                        let mut voters = self
                            .acceptances
                            .get(&(*base, *ballot))
                            .cloned()
                            .unwrap_or_default();
                        voters.insert(*proposer);
                        // Only the base's voters count; learners hold no state to vote with.
                        base_view.count_voters(voters.iter()) >= base_view.majority()
                    });
            // A one-member base is its own majority: its proposer decides alone, and the
            // only trace on the wire is the `Install` it sends.
            let decided_alone = self
                .installs
                .iter()
                .any(|((base, _), (installed, proposer))| {
                    *installed == view
                        && self
                            .views
                            .get(&(view.group.clone(), *base))
                            .is_some_and(|b| b.voters == 1 && b.members[0].id == *proposer)
                });
            if !decided && !decided_alone {
                self.violate(
                    "primary partition",
                    format!("{view} was installed (first by {process}) without a majority of its predecessor"),
                );
            }
        }
    }

    fn violate(&mut self, property: &'static str, detail: String) {
        self.violations.push(Violation { property, detail });
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Distinct views seen installed.
    pub fn views_seen(&self) -> usize {
        self.views.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Incarnation, NodeId};
    use crate::view::Member;
    use crate::wire::PROTOCOL_VERSION;

    fn pid(n: u64) -> ProcessId {
        ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        }
    }

    fn view(epoch: u64, members: &[u64]) -> View {
        View {
            group: GroupName::new("g").unwrap(),
            id: ViewId {
                epoch,
                coordinator: pid(members[0]),
            },
            members: members
                .iter()
                .map(|n| Member {
                    id: pid(*n),
                    addr: SocketAddr::from(([10, 0, 0, *n as u8], 1)),
                })
                .collect(),
            voters: members.len(),
        }
    }

    use std::net::SocketAddr;

    fn sent(from: u64, body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            sender: pid(from),
            sender_addr: SocketAddr::from(([10, 0, 0, from as u8], 1)),
            seq: 1,
            group: None,
            body,
        }
    }

    fn properties(checker: &MembershipChecker) -> Vec<&'static str> {
        checker.violations().iter().map(|v| v.property).collect()
    }

    #[test]
    fn a_history_decided_by_a_majority_passes() {
        let mut c = MembershipChecker::default();
        let base = view(1, &[1, 2, 3]);
        let next = view(2, &[1, 2]);
        let ballot = Ballot {
            round: crate::wire::Round(1),
            proposer: pid(1),
        };
        for n in 1..=3 {
            c.observe_install(pid(n), &base);
        }
        c.observe_send(&sent(
            1,
            Body::Accept {
                base: base.clone(),
                ballot,
                base_decided: None,
                decision: crate::wire::Decision {
                    view: next.clone(),
                    cut: Vec::new(),
                    joiners: Vec::new(),
                },
            },
        ));
        c.observe_send(&sent(
            2,
            Body::Accepted {
                base: base.id,
                ballot,
            },
        ));
        c.observe_install(pid(1), &next);
        c.observe_install(pid(2), &next);
        c.check_step();
        // `base` had no predecessor and three members: the checker flags it as not decided.
        assert_eq!(properties(&c), vec!["primary partition"]);
    }

    fn ballot(round: u64, proposer: u64) -> Ballot {
        Ballot {
            round: crate::wire::Round(round),
            proposer: pid(proposer),
        }
    }

    fn decision(view: &View) -> crate::wire::Decision {
        crate::wire::Decision {
            view: view.clone(),
            cut: Vec::new(),
            joiners: Vec::new(),
        }
    }

    fn accept(from: u64, base: &View, ballot: Ballot, next: &View) -> Envelope {
        let body = Body::Accept {
            base: base.clone(),
            ballot,
            base_decided: None,
            decision: decision(next),
        };
        sent(from, body)
    }

    fn accepted(from: u64, base: &View, ballot: Ballot) -> Envelope {
        let body = Body::Accepted {
            base: base.id,
            ballot,
        };
        sent(from, body)
    }

    fn promise(from: u64, base: &View, ballot: Ballot) -> Envelope {
        let body = Body::Promise {
            base: base.id,
            ballot,
            accepted: None,
            report: crate::wire::FlushReport::default(),
        };
        sent(from, body)
    }

    fn install(from: u64, base: &View, ballot: Ballot, next: &View) -> Envelope {
        let body = Body::Install {
            base: Some(base.id),
            ballot,
            decision: decision(next),
        };
        sent(from, body)
    }

    /// Process 1 creates the group, decides alone to admit 2 (a one-member base), and 1 and
    /// 2 then admit 3 by a majority of the two; everyone installs every view.
    fn good_history(c: &mut MembershipChecker) -> (View, View, View) {
        let v1 = view(1, &[1]);
        let v2 = view(2, &[1, 2]);
        let v3 = view(3, &[1, 2, 3]);
        c.observe_install(pid(1), &v1);
        c.check_step();
        c.observe_send(&install(1, &v1, ballot(1, 1), &v2));
        c.observe_install(pid(1), &v2);
        c.observe_install(pid(2), &v2);
        c.check_step();
        c.observe_send(&promise(2, &v2, ballot(1, 1)));
        c.observe_send(&accept(1, &v2, ballot(1, 1), &v3));
        c.observe_send(&accepted(2, &v2, ballot(1, 1)));
        c.observe_send(&install(1, &v2, ballot(1, 1), &v3));
        // A member resends the decision to a process still in the base: the same view.
        c.observe_send(&install(2, &v2, ballot(1, 1), &v3));
        for n in 1..=3 {
            c.observe_install(pid(n), &v3);
        }
        c.check_step();
        (v1, v2, v3)
    }

    #[test]
    fn a_good_history_reports_nothing() {
        let mut c = MembershipChecker::default();
        good_history(&mut c);
        assert_eq!(properties(&c), Vec::<&str>::new());
        assert_eq!(c.views_seen(), 3);
    }

    #[test]
    fn a_creation_and_its_successor_in_one_step_pass() {
        // The creation check used to look at the creator's history when the step ended, by
        // which time it could hold the successor too.
        let mut c = MembershipChecker::default();
        let v1 = view(1, &[1]);
        let v2 = view(2, &[1, 2]);
        c.observe_install(pid(1), &v1);
        c.observe_send(&install(1, &v1, ballot(1, 1), &v2));
        c.observe_install(pid(1), &v2);
        c.check_step();
        assert_eq!(properties(&c), Vec::<&str>::new());
    }

    #[test]
    fn self_inclusion_is_checked() {
        let mut c = MembershipChecker::default();
        let v1 = view(1, &[2]);
        let v2 = view(2, &[2, 3]);
        c.observe_install(pid(2), &v1);
        c.observe_send(&install(2, &v1, ballot(1, 2), &v2));
        c.observe_install(pid(2), &v2);
        c.observe_install(pid(3), &v2);
        c.observe_install(pid(1), &v2);
        c.check_step();
        assert_eq!(properties(&c), vec!["self-inclusion"]);
    }

    #[test]
    fn monotonic_views_are_checked() {
        let mut c = MembershipChecker::default();
        let (_, v2, _) = good_history(&mut c);
        c.observe_install(pid(2), &v2);
        c.check_step();
        assert_eq!(properties(&c), vec!["monotonic views"]);
    }

    #[test]
    fn view_agreement_is_checked() {
        let mut c = MembershipChecker::default();
        good_history(&mut c);
        // Process 4 installs view 3 (same id) with itself instead of 3.
        c.observe_install(pid(4), &view(3, &[1, 2, 4]));
        c.check_step();
        assert_eq!(properties(&c), vec!["view agreement"]);
    }

    #[test]
    fn primary_partition_is_checked() {
        // Only the proposer accepted: one of three.
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        let v4 = view(4, &[1, 2, 3, 4]);
        c.observe_send(&accept(1, &v3, ballot(1, 1), &v4));
        c.observe_install(pid(4), &v4);
        c.check_step();
        assert_eq!(properties(&c), vec!["primary partition"]);
        // Two of three accepted a different view, not this one.
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        c.observe_send(&accept(1, &v3, ballot(1, 1), &view(4, &[1, 2])));
        c.observe_send(&accepted(2, &v3, ballot(1, 1)));
        c.observe_install(pid(4), &v4);
        c.check_step();
        assert_eq!(properties(&c), vec!["primary partition"]);
        // Acceptances by processes outside the base do not count.
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        c.observe_send(&accept(1, &v3, ballot(1, 1), &v4));
        c.observe_send(&accepted(4, &v3, ballot(1, 1)));
        c.observe_send(&accepted(5, &v3, ballot(1, 1)));
        c.observe_install(pid(4), &v4);
        c.check_step();
        assert_eq!(properties(&c), vec!["primary partition"]);
        // A one-member base decides alone only through its member.
        let mut c = MembershipChecker::default();
        let v1 = view(1, &[1]);
        let v2 = view(2, &[1, 2]);
        c.observe_install(pid(1), &v1);
        c.observe_send(&install(2, &v1, ballot(1, 2), &v2));
        c.observe_install(pid(2), &v2);
        c.check_step();
        assert_eq!(properties(&c), vec!["primary partition"]);
        // A process's first view of itself alone is a creation; a later one is not.
        let mut c = MembershipChecker::default();
        good_history(&mut c);
        c.observe_install(pid(1), &view(9, &[1]));
        c.check_step();
        assert_eq!(properties(&c), vec!["primary partition"]);
    }

    #[test]
    fn a_unique_successor_is_checked_over_installs() {
        let mut c = MembershipChecker::default();
        let (_, v2, _) = good_history(&mut c);
        // Another ballot decides a different successor of view 2, and it is installed there:
        // each view was decided by a majority, but view 2 has two successors.
        let other = view(3, &[2, 1]);
        c.observe_send(&accept(2, &v2, ballot(2, 2), &other));
        c.observe_send(&accepted(1, &v2, ballot(2, 2)));
        c.observe_send(&install(2, &v2, ballot(2, 2), &other));
        c.check_step();
        assert_eq!(properties(&c), vec!["unique successor"]);
    }

    #[test]
    fn a_unique_successor_is_checked_over_majority_accepts() {
        // No `Install` seen for either decision: a majority of voters sent `Accepted` for
        // each, so both are decided. (The proposer's own acceptance never crosses the wire
        // and is not assumed.)
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        let first = view(4, &[1, 2]);
        let second = view(4, &[1, 3]);
        c.observe_send(&accept(1, &v3, ballot(2, 1), &first));
        c.observe_send(&accepted(2, &v3, ballot(2, 1)));
        assert_eq!(properties(&c), Vec::<&str>::new(), "one voter of three");
        c.observe_send(&accepted(3, &v3, ballot(2, 1)));
        c.observe_send(&accept(1, &v3, ballot(3, 1), &second));
        c.observe_send(&accepted(2, &v3, ballot(3, 1)));
        assert_eq!(properties(&c), Vec::<&str>::new(), "proposed, not decided");
        c.observe_send(&accepted(3, &v3, ballot(3, 1)));
        c.check_step();
        assert_eq!(properties(&c), vec!["unique successor"]);
        // Reported once per base.
        c.observe_send(&install(1, &v3, ballot(3, 1), &second));
        assert_eq!(properties(&c), vec!["unique successor"]);
    }

    #[test]
    fn promises_kept_is_checked() {
        // Accepting a ballot below the one promised.
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        let v4 = view(4, &[1, 2, 3]);
        c.observe_send(&promise(2, &v3, ballot(2, 1)));
        c.observe_send(&promise(3, &v3, ballot(2, 1)));
        c.observe_send(&accepted(2, &v3, ballot(1, 1)));
        assert_eq!(properties(&c), vec!["promises kept"]);
        // Promising a ballot below one accepted. Before that: the ballot of the previous
        // instance in this one, the same ballot twice, and a higher one are all fine.
        let mut c = MembershipChecker::default();
        let (_, _, v3) = good_history(&mut c);
        c.observe_send(&promise(2, &v3, ballot(1, 1)));
        c.observe_send(&accept(1, &v3, ballot(1, 1), &v4));
        c.observe_send(&accepted(2, &v3, ballot(1, 1)));
        c.observe_send(&accepted(2, &v3, ballot(1, 1)));
        c.observe_send(&promise(2, &v3, ballot(2, 3)));
        assert_eq!(properties(&c), Vec::<&str>::new());
        c.observe_send(&promise(2, &v3, ballot(1, 3)));
        assert_eq!(properties(&c), vec!["promises kept"]);
    }
}
