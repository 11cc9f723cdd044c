//! The changes waiting for the next view (joins, leaves, suspicions, promotions) and how the
//! acting coordinator composes the next view and its cut from them and the promises.

use super::super::Time;
use super::proposer::Promises;
use crate::id::{GroupName, ProcessId, ViewId};
use crate::proto::multicast::compose_cut;
#[cfg(feature = "planted-bugs")]
use crate::proto::planted;
use crate::view::{Member, View};
use crate::wire::Decision;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the next view change should apply, as this process knows it.
#[derive(Clone, Debug, Default)]
pub(super) struct Changes {
    /// Joiners, with the highest epoch each installed before.
    pub(super) joins: BTreeMap<ProcessId, (Member, u64)>,
    pub(super) leaves: BTreeSet<ProcessId>,
    pub(super) suspected: BTreeSet<ProcessId>,
    /// Learners of the installed view that reported holding the state: the next view change
    /// promotes them to voters.
    pub(super) promotions: BTreeSet<ProcessId>,
    /// Of `suspected`, those only other members reported (`Body::Suspicions`): they count
    /// for the next view change only.
    pub(super) reported: BTreeSet<ProcessId>,
    /// Reported suspects a view change kept (they promised, so they were alive), and when:
    /// further reports about them are ignored for [`KEPT_SUSPECT_QUIET`].
    pub(super) kept: BTreeMap<ProcessId, Time>,
}

/// How long reports about a suspect that a view change kept are ignored. A member that keeps
/// suspecting a live one (it cannot hear it) would otherwise start a view change after every
/// view change; a real crash of a kept member is acted on this much later at most.
pub(super) const KEPT_SUSPECT_QUIET: Duration = Duration::from_secs(1);

impl Changes {
    /// `view` is installed: what it applied is done, and what it does not concern is moot.
    pub(super) fn settle(&mut self, now: Time, view: &View) {
        // Reports count for one view change: a reported suspect still listed was kept.
        for id in std::mem::take(&mut self.reported) {
            self.suspected.remove(&id);
            if view.contains(id) {
                self.kept.insert(id, now);
            }
        }
        self.kept.retain(|id, _| view.contains(*id));
        // A suspected member admitted again by a join is trusted in the new view.
        for rejoined in self.joins.keys().filter(|id| view.contains(**id)) {
            self.suspected.remove(rejoined);
        }
        self.joins.retain(|id, _| !view.contains(*id));
        self.leaves.retain(|id| view.contains(*id));
        self.suspected.retain(|id| view.contains(*id));
    }

    /// The members of the next view from `base` with every pending change applied (base
    /// members first, in order, then joiners), keeping of the base only `promisers` (if
    /// given), and the epoch the next view follows; `None` if nothing changes (unless
    /// `force`) or nobody is left. Pending promotions count as a change.
    pub(super) fn next_members(
        &self,
        base: &View,
        promisers: Option<&BTreeSet<ProcessId>>,
        force: bool,
    ) -> Option<(Vec<Member>, u64)> {
        let replaced = |m: &Member| {
            self.joins
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
                    && !self.leaves.contains(&m.id)
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
                    .joins
                    .keys()
                    .any(|other| other.node == j.id.node && other.incarnation > j.id.incarnation)
        };
        for (joiner, last_epoch) in self.joins.values() {
            if !superseded(joiner) && !members.iter().any(|m| m.id == joiner.id) {
                members.push(*joiner);
                epoch = epoch.max(*last_epoch);
            }
        }
        // A member that left (or gave up leaving) and asks to join again while still listed
        // needs a new view too: it must not install one it has installed before.
        let rejoining = self.joins.keys().any(|j| base.contains(*j));
        for (joiner, last_epoch) in self.joins.values() {
            if base.contains(joiner.id) {
                epoch = epoch.max(*last_epoch);
            }
        }
        let promoting = self
            .promotions
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

    /// The next view (members of the base that promised, minus leavers and suspects, plus
    /// joiners), the cut from the promisers' reports, and who needs a state transfer.
    ///
    /// The voters of the next view are the promisers that hold the group's state (voters and
    /// learners alike: a learner that restored its transfer is promoted); every other member
    /// is a learner that gets the state from a voter. `None` if no promiser holds the state:
    /// such a view would continue from nothing, so the view change waits instead.
    pub(super) fn decision(
        &self,
        group: &GroupName,
        #[cfg_attr(not(feature = "planted-bugs"), allow(unused_variables))] me: ProcessId,
        base: &View,
        promises: &Promises,
    ) -> Option<Decision> {
        let promisers: BTreeSet<ProcessId> = promises.keys().copied().collect();
        let (members, epoch) = self.next_members(base, Some(&promisers), true)?;
        // A base member with a pending join asked for the state (a resync) or to come back;
        // it is a learner. But a join it sent before it installed the base (its last epoch
        // is earlier) is stale, when its promise for the base says it holds the state: such
        // a request can arrive late, forwarded by a member that held it through a stall, and
        // counting it could leave every composable view without a holder (active seed 2025:
        // the coordinator had lost its state, and the only holder was listed as a joiner by a
        // request from two views before, so no view could be decided).
        let asks_for_state = |id: &ProcessId| {
            self.joins
                .get(id)
                .is_some_and(|(_, last_epoch)| *last_epoch >= base.id.epoch)
        };
        let holds_state = |id: &ProcessId| {
            base.contains(*id)
                && promises.get(id).is_some_and(|(_, report)| report.ready)
                && !asks_for_state(id)
        };
        let (voters, learners): (Vec<Member>, Vec<Member>) =
            members.into_iter().partition(|m| holds_state(&m.id));
        if voters.is_empty() {
            return None;
        }
        #[cfg(feature = "planted-bugs")]
        let promises = &planted::without_report_of(promises, me);
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
            group: group.clone(),
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
        debug_assert_eq!(
            cut.len(),
            base.members.len(),
            "a cut has a stream per member"
        );
        Some(Decision { view, cut, joiners })
    }
}
