//! Group views: the agreed, ordered list of a group's members.

use crate::id::{GroupName, ProcessId, ViewId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;

/// A group member: a process and the address it listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The process.
    pub id: ProcessId,
    /// Where it accepts connections.
    pub addr: SocketAddr,
}

/// A view: the members of a group, voters first (oldest first among them), then learners.
/// The first member coordinates.
///
/// Only *voters* decide the next view: a member becomes a voter once it holds the group's
/// state (it delivered the cut of the previous view, or restored a state transfer and was
/// promoted by a view change). Learners (joiners still waiting for their state, as Raft's
/// non-voting members) receive and deliver like any member but count in no majority, so
/// members without the state can never decide a view, nor block one by being cut off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The group this view belongs to.
    pub group: GroupName,
    /// The view's identity; strictly increasing at each member.
    pub id: ViewId,
    /// Members: the voters, then the learners, each in order of joining, oldest first.
    pub members: Vec<Member>,
    /// How many of `members`, from the first, are voters (at least one).
    pub voters: usize,
}

impl View {
    /// The oldest member, which coordinates view changes while it is trusted.
    pub fn coordinator(&self) -> &Member {
        &self.members[0]
    }

    /// Whether `process` is a member of this view.
    pub fn contains(&self, process: ProcessId) -> bool {
        self.members.iter().any(|m| m.id == process)
    }

    /// The position of `process` in the member list (its rank), if it is a member.
    pub fn rank_of(&self, process: ProcessId) -> Option<usize> {
        self.members.iter().position(|m| m.id == process)
    }

    /// A view whose members all vote.
    pub fn of_voters(group: GroupName, id: ViewId, members: Vec<Member>) -> Self {
        let voters = members.len();
        View {
            group,
            id,
            members,
            voters,
        }
    }

    /// The number of voters that form a majority of this view.
    pub fn majority(&self) -> usize {
        self.voters / 2 + 1
    }

    /// The members that vote on the next view.
    pub fn voters(&self) -> &[Member] {
        &self.members[..self.voters.min(self.members.len())]
    }

    /// The members still waiting to be promoted to voters.
    pub fn learners(&self) -> &[Member] {
        &self.members[self.voters.min(self.members.len())..]
    }

    /// Whether `process` votes in this view.
    pub fn is_voter(&self, process: ProcessId) -> bool {
        self.voters().iter().any(|m| m.id == process)
    }

    /// How many of `processes` are voters of this view.
    pub fn count_voters<'a>(&self, processes: impl IntoIterator<Item = &'a ProcessId>) -> usize {
        processes.into_iter().filter(|p| self.is_voter(**p)).count()
    }

    /// Whether the view is well formed: members, at least one voter, no process twice.
    pub fn is_well_formed(&self) -> bool {
        let mut ids: Vec<ProcessId> = self.member_ids().collect();
        ids.sort();
        ids.dedup();
        !self.members.is_empty()
            && self.voters >= 1
            && self.voters <= self.members.len()
            && ids.len() == self.members.len()
            && self.id.coordinator == self.members[0].id
    }

    /// Member process ids in view order.
    pub fn member_ids(&self) -> impl Iterator<Item = ProcessId> + '_ {
        self.members.iter().map(|m| m.id)
    }
}

impl fmt::Display for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} view {} [", self.group, self.id)?;
        for (i, m) in self.members.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", m.id.node)?;
            if i >= self.voters {
                // A learner: in the view, not yet voting.
                f.write_str("~")?;
            }
        }
        f.write_str("]")
    }
}

/// A view change as delivered to subscribers: the new view and how it differs from the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewChange {
    /// The view now installed.
    pub view: View,
    /// Members of this view that were not in the previous view this process installed.
    pub joined: Vec<Member>,
    /// Members of the previous view this process installed that are not in this view.
    pub left: Vec<Member>,
}

impl ViewChange {
    /// Computes the change from `previous` (if any) to `view`.
    pub fn between(previous: Option<&View>, view: View) -> Self {
        let (joined, left) = match previous {
            None => (view.members.clone(), Vec::new()),
            Some(prev) => (
                view.members
                    .iter()
                    .filter(|m| !prev.contains(m.id))
                    .copied()
                    .collect(),
                prev.members
                    .iter()
                    .filter(|m| !view.contains(m.id))
                    .copied()
                    .collect(),
            ),
        };
        ViewChange { view, joined, left }
    }
}
