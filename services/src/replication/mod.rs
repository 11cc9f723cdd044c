//! Replication strategies: how a group of replica managers (RMs) serves one object.
//!
//! Every strategy is a sans-IO core that implements [`ReplicaCore`]: it takes the clients'
//! requests and its group's events in agreed order, and answers with [`Action`]s (multicast an
//! update, send a member a message, answer a client). One actor shell
//! ([`crate::replica`]) runs any core on a node, and the simulator runs the same cores, so
//! what the checkers judge is what runs.
//!
//! What crosses the wire between a front end and a replica manager is defined here, once for
//! every strategy: a [`Request`] (the request's unique [`RequestId`], the state machine it is
//! for, the operation) and a [`Reply`] (the id and the output), both bincode-encoded inside the
//! middleware's `Request`/`Response` frames. Refusals are the middleware's typed
//! `Refusal`s ([`viewsync::wire::Refusal`]).
//!
//! - [`passive`]: primary-backup (the reference notes' sections 10 to 13), linearizable, and
//!   its `passive-backup-reads` variant (sequentially consistent);
//! - [`active`]: state machine replication (the reference notes' sections 14 to 16, crash
//!   mode): every member executes every request in the group's total order; linearizable
//!   with ordered reads, and its `active-local-reads` variant (sequentially consistent);
//! - [`gossip`]: the gossip architecture (the reference notes' sections 17 to 22): any
//!   replica manager answers at once, queries wait for the front end's `prev`, updates spread
//!   lazily by gossip; causally consistent, available while partitioned, convergent;
//! - [`naive`]: each replica applies locally and propagates lazily: the reference notes'
//!   counter-example, kept as a labelled contrast for tests and benchmarks;
//! - [`signed`]: replies signed by each replica manager's own key, and the front end's quorum
//!   of `f + 1` matching signed replies (the Byzantine strategy);
//! - `committed` (private): what the strategies that number their updates share (the
//!   committed state, executed table, log, snapshots and deltas, durable quorum);
//! - [`gossip_sim`]: gossip front ends for the simulator, whose histories the causal
//!   checker judges;
//! - [`sim`]: any core in the deterministic simulator, with simulated key-value front ends
//!   whose histories the linearizability checker judges.

pub mod active;
mod committed;
pub mod gossip;
pub mod gossip_sim;
pub mod naive;
pub mod passive;
pub mod signed;
pub mod sim;
pub mod store;
#[cfg(test)]
mod tests;

// Each strategy's module documents itself (see the list above).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use viewsync::runtime::{ReplyTo, ServiceEvent};
use viewsync::wire::{Outcome, Refusal};
use viewsync::{ProcessId, ViewId};

pub use store::{MemoryLog, ReplicaLog, StoreError};

/// A request's unique identity: the front end's client id and its sequence number. A front
/// end numbers its requests 1, 2, 3... and retransmits a request with the same id, so a
/// replica manager that executed it answers from the stored response instead of executing it
/// again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId {
    /// The front end (random, chosen when it starts).
    pub client: u64,
    /// Its request number, from 1.
    pub seq: u64,
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}/{}", self.client, self.seq)
    }
}

/// What a front end asks a replica manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request<Op> {
    /// The request's identity.
    pub id: RequestId,
    /// The state machine the front end speaks to (`"kv"`, `"bank"`): a request for another
    /// machine is refused as malformed instead of being misread.
    pub machine: String,
    /// For reads a backup may serve (`passive-backup-reads`): the position of the last update
    /// this front end saw, which the backup must have applied before it answers (so a client
    /// always sees its own writes). 0 otherwise.
    pub after: u64,
    /// The operation.
    pub op: Op,
    /// For the `gossip` strategy: the front end's `prev` (the latest state it has seen), which
    /// a query waits for and an update depends on. `None` for every other strategy.
    pub causal: Option<CausalToken>,
}

/// What a replica manager answers a front end's [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply<Out> {
    /// The request answered.
    pub id: RequestId,
    /// The position of the update in the replicated sequence (the log index it was applied
    /// at), or for a read the position of the state it read.
    pub position: u64,
    /// The operation's output.
    pub output: Out,
    /// For the `gossip` strategy: the timestamp of the state the answer reflects (a query's
    /// value timestamp, an update's own timestamp), which the front end merges into its
    /// `prev`. `None` for every other strategy.
    pub causal: Option<CausalToken>,
}

/// A vector timestamp: per replica manager (its stable [`viewsync::NodeId`], not the
/// process incarnation: a restarted or rejoining node is the same replica), how many updates
/// it accepted from front ends are covered. Missing entries are 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock(pub std::collections::BTreeMap<u64, u64>);

impl VectorClock {
    /// The entry of replica `node`.
    pub fn get(&self, node: u64) -> u64 {
        self.0.get(&node).copied().unwrap_or(0)
    }

    /// Sets the entry of replica `node`.
    pub fn set(&mut self, node: u64, value: u64) {
        if value == 0 {
            self.0.remove(&node);
        } else {
            self.0.insert(node, value);
        }
    }

    /// Whether every entry is at most `other`'s (`self <= other`).
    pub fn le(&self, other: &VectorClock) -> bool {
        self.0.iter().all(|(node, v)| *v <= other.get(*node))
    }

    /// Raises every entry to at least `other`'s.
    pub fn merge(&mut self, other: &VectorClock) {
        for (node, v) in &other.0 {
            if *v > self.get(*node) {
                self.0.insert(*node, *v);
            }
        }
    }

    /// The sum of the entries.
    pub fn sum(&self) -> u64 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for VectorClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, (node, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{node}:{v}")?;
        }
        f.write_str("]")
    }
}

/// What a gossip front end carries between requests (and what two front ends that talk pass
/// each other): the vector timestamp of the latest state seen (`prev`) and the largest
/// Lamport number of any update in it, so an update the front end issues next is ordered
/// after everything it depends on (see [`gossip`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CausalToken {
    /// The vector timestamp.
    pub prev: VectorClock,
    /// The largest Lamport number seen.
    pub lamport: u64,
}

impl CausalToken {
    /// Raises this token to cover `other` too.
    pub fn merge(&mut self, other: &CausalToken) {
        self.prev.merge(&other.prev);
        self.lamport = self.lamport.max(other.lamport);
    }
}

/// What a core asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Multicast `payload` to the group (its delivery comes back as a `Deliver` event).
    Multicast(Bytes),
    /// Send `payload` point-to-point to the member `to` (it arrives as a `Direct` event).
    Send {
        /// The member.
        to: ProcessId,
        /// The message.
        payload: Bytes,
    },
    /// Answer a client's request (once).
    Reply {
        /// Where the answer goes.
        to: ReplyTo,
        /// The encoded [`Reply`] or a refusal.
        outcome: Outcome,
    },
}

/// A replication strategy's core, sans IO. The shell hands it, in order, every event of its
/// group (including client requests) and carries out the actions it returns.
pub trait ReplicaCore {
    /// Handles one event of the group (a client request, a delivery, a block, a view, a
    /// point-to-point message, a state to restore). An error is the replica's storage
    /// failing: the replica manager cannot go on safely, and its shell stops it (fail-stop).
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError>;

    /// Called by the shell every [`TICK_INTERVAL`] (and at once when
    /// [`ReplicaCore::needs_sync`] after an event, in the per-request fsync mode): syncs the
    /// log if records wait (group commit, so one sync covers every record appended since the
    /// last), answers what waited for durability, and does the strategy's time-driven work.
    /// `now` is the time since the shell started (the simulator's clock in simulation).
    fn tick(&mut self, now: std::time::Duration) -> Result<Vec<Action>, StoreError>;

    /// The state for a member joining (the delivered state, never anything speculative), as
    /// of every event handled so far.
    fn snapshot(&self) -> Bytes;

    /// Whether records were appended and not yet synced (the shell syncs them).
    fn needs_sync(&self) -> bool;

    /// The snapshot for the joiners of `view` (the shell's answer to `TakeSnapshot`). By
    /// default [`ReplicaCore::snapshot`]; a core that answers deltas remembers the position
    /// it was taken at, where a delta for `view` ends.
    fn snapshot_for(&mut self, view: ViewId) -> Bytes {
        let _ = view;
        self.snapshot()
    }

    /// A delta for a joiner of `view` whose state is at position `since` (recovered from
    /// its log): what brings it to the snapshot taken for `view`
    /// ([`ReplicaCore::snapshot_for`]), which it receives as a `Restore` with
    /// `since: Some(since)`. `None` (the default) when the core cannot: the joiner then gets
    /// the whole snapshot.
    fn delta(&self, view: ViewId, since: u64) -> Option<Bytes> {
        let _ = (view, since);
        None
    }

    /// The position of the committed state (the log index of the last update applied), for
    /// a core whose updates are numbered; at start, the position of the state it recovered.
    /// `None` (the default): the core keeps no such position, and never catches up by a
    /// delta.
    fn position(&self) -> Option<u64> {
        None
    }

    /// Records in the core's log (after its last snapshot), for `viewsync status`; `None`
    /// (the default) for a core that keeps none.
    fn log_records(&self) -> Option<u64> {
        None
    }

    /// Whether this replica manager serves clients (and gossips with the members it can
    /// reach) while its group is blocked or while it rejoins: its node then hands it client
    /// requests it would otherwise refuse (`NodeHandle::register_service_available`). Only
    /// a strategy that never relies on agreed delivery to answer may say yes (gossip).
    /// `false` by default.
    fn available_while_blocked(&self) -> bool {
        false
    }

    /// What members entering the same view must agree on (the simulator's state-agreement
    /// check): by default the whole [`ReplicaCore::snapshot`]. A strategy whose replicas
    /// legitimately differ at a view boundary (gossip) returns nothing here and has its
    /// convergence checked otherwise.
    fn agreed_state(&self) -> Bytes {
        self.snapshot()
    }
}

/// How often a shell calls [`ReplicaCore::tick`]: the group-commit interval.
pub const TICK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);

/// Encodes a message of a replication protocol (bincode, standard configuration).
pub fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(
        bincode::serde::encode_to_vec(value, bincode::config::standard())
            .expect("in-memory encoding of a protocol message does not fail"),
    )
}

/// The encoding of [`encode`], with a limit on what a decoded message may claim: a length
/// prefix in a malformed message (a client's request, a damaged delivery) is checked against it
/// before anything is allocated, instead of asking the allocator for that many bytes and
/// aborting the process. Every message came in one frame, so none is larger.
const DECODE_CONFIG: bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<{ viewsync::wire::codec::FRAME_BYTES_LIMIT }>,
> = bincode::config::standard().with_limit::<{ viewsync::wire::codec::FRAME_BYTES_LIMIT }>();

/// Decodes a message of a replication protocol; every byte must be used.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (value, used): (T, usize) =
        bincode::serde::decode_from_slice(bytes, DECODE_CONFIG).map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a client's request for machine `machine`, or the refusal to answer it with.
pub fn decode_request<Op: DeserializeOwned>(
    payload: &[u8],
    machine: &str,
) -> Result<Request<Op>, Refusal> {
    // The header alone first, so a request for another machine is named as such even when
    // its operation does not decode as one of ours.
    #[derive(Deserialize)]
    struct Header {
        id: RequestId,
        machine: String,
    }
    let (header, _): (Header, usize) = bincode::serde::decode_from_slice(payload, DECODE_CONFIG)
        .map_err(|e| Refusal::Malformed(format!("not a viewsync service request: {e}")))?;
    if header.machine != machine {
        return Err(Refusal::Malformed(format!(
            "request {} is for the {:?} state machine; this group runs {machine:?}",
            header.id, header.machine
        )));
    }
    decode(payload).map_err(|e| Refusal::Malformed(format!("request {}: {e}", header.id)))
}
