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

/// A view: the members of a group, oldest first. The first member coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The group this view belongs to.
    pub group: GroupName,
    /// The view's identity; strictly increasing at each member.
    pub id: ViewId,
    /// Members in order of joining, oldest first.
    pub members: Vec<Member>,
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

    /// The number of members that form a majority of this view.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
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
