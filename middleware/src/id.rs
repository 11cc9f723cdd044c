//! Identifiers: nodes, process incarnations, groups and views.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's configured identity. Stable across restarts of the same node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

/// The node id every process outside the groups (a client) carries; no node has it (node
/// configurations refuse `node_id = 0`).
pub const CLIENT_NODE_ID: NodeId = NodeId(0);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One run of a node: chosen at start, so a restarted node is a new process to the group and
/// frames of its previous run are told apart. It comes from the clock (microseconds since the
/// Unix epoch) and, with a `data_dir`, is kept above every incarnation the node had before
/// (see [`Incarnation::after`]).
///
/// For a client ([`CLIENT_NODE_ID`]) the field holds its random client id instead (see
/// [`ProcessId::new_client`]): clients are told apart by it, not ordered by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation(pub u64);

impl Incarnation {
    /// The incarnation for a process starting now, by the clock alone.
    pub fn now() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(1);
        Incarnation(micros)
    }

    /// The incarnation for a run that starts at `clock` after a run of incarnation `last`:
    /// the later of the two, and always above `last`, so a clock stepped back still yields a
    /// larger incarnation. `None` if `last` is `u64::MAX` (nothing is larger).
    pub fn after(clock: Incarnation, last: Option<Incarnation>) -> Option<Incarnation> {
        match last {
            None => Some(clock),
            Some(last) => Some(clock.max(Incarnation(last.0.checked_add(1)?))),
        }
    }
}

/// A process: a node in one incarnation. Group members are processes, not nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProcessId {
    /// The node.
    pub node: NodeId,
    /// Its current run.
    pub incarnation: Incarnation,
}

impl ProcessId {
    /// A fresh client identity: [`CLIENT_NODE_ID`] with a random 64-bit client id in the
    /// incarnation field. Each client gets its own replay window at the nodes it talks to,
    /// so clients started in any order, or at the same moment, never collide.
    pub fn new_client() -> ProcessId {
        ProcessId {
            node: CLIENT_NODE_ID,
            incarnation: Incarnation(rand::random()),
        }
    }

    /// Whether this is a client (a process outside the groups), not a node.
    pub fn is_client(&self) -> bool {
        self.node == CLIENT_NODE_ID
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.node.0, self.incarnation.0)
    }
}

/// The longest group name accepted.
pub const GROUP_NAME_BYTES_MAX: usize = 64;

/// Identifies one inbound connection, so an answer to a client goes back where the question
/// came from (clients do not listen). Transports number their connections; the cores only
/// hand the number back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub u64);

/// A validated group name: 1 to 64 characters of `[A-Za-z0-9_.-]`.
///
/// Shared, not copied, when cloned: every delivery and every output of a group's core
/// carries its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct GroupName(std::sync::Arc<str>);

impl Serialize for GroupName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As the `String` it is read back from.
        serializer.serialize_str(&self.0)
    }
}

/// A group name that does not follow the rules of [`GroupName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid group name {0:?}: use 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', '-'")]
pub struct InvalidGroupName(pub String);

impl GroupName {
    /// Validates and wraps a group name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidGroupName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= GROUP_NAME_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if valid {
            Ok(GroupName(name.into()))
        } else {
            Err(InvalidGroupName(name))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for GroupName {
    type Error = InvalidGroupName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        GroupName::new(value)
    }
}

impl From<GroupName> for String {
    fn from(value: GroupName) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a view of one group. Ordered by epoch first, so later views compare greater.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ViewId {
    /// Increases with every view change.
    pub epoch: u64,
    /// The view's coordinator: its oldest member.
    pub coordinator: ProcessId,
}

impl fmt::Display for ViewId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.epoch, self.coordinator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_are_validated() {
        assert!(GroupName::new("demo").is_ok());
        assert!(GroupName::new("a.b-c_9").is_ok());
        assert!(GroupName::new("").is_err());
        assert!(GroupName::new("has space").is_err());
        assert!(GroupName::new("x".repeat(65)).is_err());
    }

    #[test]
    fn an_incarnation_after_a_run_is_above_it_whatever_the_clock() {
        let clock = Incarnation(1_000);
        assert_eq!(Incarnation::after(clock, None), Some(clock));
        assert_eq!(
            Incarnation::after(clock, Some(Incarnation(10))),
            Some(clock)
        );
        // The clock stepped back below the last run: one above it.
        assert_eq!(
            Incarnation::after(clock, Some(Incarnation(5_000))),
            Some(Incarnation(5_001))
        );
        assert_eq!(
            Incarnation::after(clock, Some(Incarnation(1_000))),
            Some(Incarnation(1_001))
        );
        assert_eq!(Incarnation::after(clock, Some(Incarnation(u64::MAX))), None);
    }

    #[test]
    fn clients_get_distinct_identities() {
        let a = ProcessId::new_client();
        let b = ProcessId::new_client();
        assert!(a.is_client() && b.is_client());
        assert_ne!(a, b);
        let node = ProcessId {
            node: NodeId(1),
            incarnation: Incarnation::now(),
        };
        assert!(!node.is_client());
    }

    #[test]
    fn view_ids_order_by_epoch_first() {
        let p = |n| ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        };
        let a = ViewId {
            epoch: 1,
            coordinator: p(9),
        };
        let b = ViewId {
            epoch: 2,
            coordinator: p(1),
        };
        assert!(a < b);
    }

    #[test]
    fn group_names_encode_as_the_string_they_were_read_from() {
        let config = bincode::config::standard();
        let name = GroupName::new("orders.eu-1").unwrap();
        let encoded = bincode::serde::encode_to_vec(&name, config).unwrap();
        let as_string = bincode::serde::encode_to_vec("orders.eu-1".to_string(), config).unwrap();
        assert_eq!(encoded, as_string);
        let (decoded, _): (GroupName, usize) =
            bincode::serde::decode_from_slice(&encoded, config).unwrap();
        assert_eq!(decoded, name);
        // An invalid name on the wire is refused, not accepted unchecked.
        let bad = bincode::serde::encode_to_vec("no spaces".to_string(), config).unwrap();
        assert!(bincode::serde::decode_from_slice::<GroupName, _>(&bad, config).is_err());
    }
}
