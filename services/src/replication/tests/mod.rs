//! A deterministic harness that plays the group for replication cores, and the cores' tests.
//!
//! The harness delivers every multicast to every member of the current view in one total
//! order (safe delivery: all or none), routes point-to-point sends as `Direct` events,
//! collects replies (failing the test if a request is answered twice), and changes views
//! the way view synchrony does: `Block`, the old view's messages delivered (those of crashed
//! or cut-off senders dropped), state transfer to joiners, `ViewChange`.

mod active;
mod gossip;
mod naive;
mod passive;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use viewsync::id::ConnectionId;
use viewsync::proto::multicast::Message as Delivered;
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{Ordering, Outcome, Seq};
use viewsync::{GroupName, Incarnation, Member, NodeId, ProcessId, View, ViewChange, ViewId};

use super::store::Recovered;
use super::{
    decode, encode, Action, MemoryLog, ReplicaCore, ReplicaLog, Reply, Request, RequestId,
    StoreError, TICK_INTERVAL,
};

/// Member `n` (incarnation 1).
pub(crate) fn pid(n: u64) -> ProcessId {
    ProcessId {
        node: NodeId(n),
        incarnation: Incarnation(1),
    }
}

/// Where member `n` listens.
pub(crate) fn addr(n: u64) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7000 + n as u16))
}

/// The group every test uses.
pub(crate) fn group() -> GroupName {
    GroupName::new("kv").expect("valid")
}

fn member(n: u64) -> Member {
    Member {
        id: pid(n),
        addr: addr(n),
    }
}

/// A [`MemoryLog`] the test keeps a handle on after handing it to a core; with
/// `per_record`, every append is synced at once (per-record fsync).
#[derive(Clone, Default)]
pub(crate) struct SharedLog(Arc<Mutex<MemoryLog>>, bool);

impl SharedLog {
    /// A log that syncs every record as it is appended.
    pub(crate) fn per_record() -> Self {
        SharedLog(Arc::default(), true)
    }

    /// What a replica restarting from this storage finds.
    pub(crate) fn recover(&self, power_loss: bool) -> Recovered {
        self.0.lock().unwrap().recover(power_loss)
    }

    /// A copy of the storage (to restart a replica on).
    pub(crate) fn memory(&self) -> MemoryLog {
        self.0.lock().unwrap().clone()
    }
}

impl ReplicaLog for SharedLog {
    fn append(&mut self, index: u64, record: &[u8]) -> Result<(), StoreError> {
        let mut log = self.0.lock().unwrap();
        log.append(index, record)?;
        if self.1 {
            log.sync()?;
        }
        Ok(())
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.0.lock().unwrap().sync()
    }
    fn needs_sync(&self) -> bool {
        self.0.lock().unwrap().needs_sync()
    }
    fn save_snapshot(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.0.lock().unwrap().save_snapshot(index, snapshot)
    }
    fn reset(&mut self, index: u64, snapshot: &[u8]) -> Result<(), StoreError> {
        self.0.lock().unwrap().reset(index, snapshot)
    }
}

/// A multicast handed to the group and not yet delivered.
struct Sent {
    sender: u64,
    payload: Bytes,
}

/// The group, played deterministically for cores of type `C`.
pub(crate) struct Harness<C> {
    /// The live members' cores, by node number.
    pub(crate) nodes: BTreeMap<u64, C>,
    view: Option<View>,
    machine: &'static str,
    /// Multicasts of the current view, in the total order.
    in_flight: VecDeque<Sent>,
    /// Multicasts that go out in the next view (sent while blocked, or `late`).
    next_view: Vec<Sent>,
    /// Multicasts handed over now reach the middleware only after the next `Block` (the
    /// shell and the node racing): they go out in the next view.
    pub(crate) late: bool,
    /// Members whose core returned an error (their shell would stop them), with the error.
    pub(crate) failed: BTreeMap<u64, crate::replication::StoreError>,
    blocked: bool,
    /// Cut off from the others: nothing they send arrives, nothing reaches them.
    isolated: BTreeSet<u64>,
    directs: VecDeque<(u64, u64, Bytes)>,
    replies: BTreeMap<ReplyTo, (u64, Outcome)>,
    seq: u64,
    tag: u64,
    /// The shells' clock.
    pub(crate) now: Duration,
    check: Box<dyn Fn(&C)>,
}

impl<C: ReplicaCore> Harness<C> {
    /// A group of `nodes` serving `machine`; `check` runs on a core after each of its events.
    pub(crate) fn new(
        machine: &'static str,
        nodes: impl IntoIterator<Item = (u64, C)>,
        check: impl Fn(&C) + 'static,
    ) -> Self {
        Harness {
            nodes: nodes.into_iter().collect(),
            view: None,
            machine,
            in_flight: VecDeque::new(),
            next_view: Vec::new(),
            late: false,
            failed: BTreeMap::new(),
            blocked: false,
            isolated: BTreeSet::new(),
            directs: VecDeque::new(),
            replies: BTreeMap::new(),
            seq: 0,
            tag: 0,
            now: Duration::ZERO,
            check: Box::new(check),
        }
    }

    /// The core of member `n`.
    pub(crate) fn node(&self, n: u64) -> &C {
        &self.nodes[&n]
    }

    /// Hands `event` to member `n` and carries out its actions.
    pub(crate) fn run(&mut self, n: u64, event: ServiceEvent) {
        let Some(core) = self.nodes.get_mut(&n) else {
            return;
        };
        match core.handle(&event) {
            Ok(actions) => {
                (self.check)(core);
                self.absorb(n, actions);
            }
            // The shell stops such a replica (fail-stop); tests look at why.
            Err(error) => {
                self.failed.insert(n, error);
            }
        }
    }

    fn absorb(&mut self, n: u64, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Multicast(payload) => {
                    let sent = Sent { sender: n, payload };
                    if self.isolated.contains(&n) {
                        // Cut off: no other member will ever hold it, so it is never
                        // delivered (safe delivery), not even to its sender.
                    } else if self.blocked || self.late {
                        self.next_view.push(sent);
                    } else {
                        self.in_flight.push_back(sent);
                    }
                }
                Action::Send { to, payload } => {
                    if !self.isolated.contains(&n) {
                        self.directs.push_back((n, to.node.0, payload));
                    }
                }
                Action::Reply { to, outcome } => {
                    let earlier = self.replies.insert(to, (n, outcome));
                    assert!(earlier.is_none(), "request {to:?} answered twice");
                }
            }
        }
    }

    /// A client request with id `(client, seq)` at member `n`; its reply handle.
    pub(crate) fn request<Op: Serialize>(
        &mut self,
        n: u64,
        client: u64,
        seq: u64,
        op: Op,
        after: u64,
    ) -> ReplyTo {
        self.causal_request(n, client, seq, op, after, None)
    }

    /// A client request carrying a gossip front end's `prev`.
    pub(crate) fn causal_request<Op: Serialize>(
        &mut self,
        n: u64,
        client: u64,
        seq: u64,
        op: Op,
        after: u64,
        causal: Option<super::CausalToken>,
    ) -> ReplyTo {
        let payload = encode(&Request {
            id: RequestId { client, seq },
            machine: self.machine.to_owned(),
            after,
            causal,
            op,
        });
        self.raw_request(n, client, payload)
    }

    /// A client request with arbitrary bytes.
    pub(crate) fn raw_request(&mut self, n: u64, client: u64, payload: Bytes) -> ReplyTo {
        self.tag += 1;
        let to = ReplyTo {
            connection: ConnectionId(self.tag),
            client: ProcessId {
                node: viewsync::id::CLIENT_NODE_ID,
                incarnation: Incarnation(client),
            },
            tag: self.tag,
        };
        self.run(
            n,
            ServiceEvent::Request(ClientRequest {
                group: group(),
                reply: to,
                payload,
            }),
        );
        to
    }

    /// The answer to `to`, if any yet.
    pub(crate) fn reply(&self, to: ReplyTo) -> Option<&Outcome> {
        self.replies.get(&to).map(|(_, outcome)| outcome)
    }

    /// The answer to `to` as a [`Reply`]; panics if it is missing or a refusal.
    pub(crate) fn ok<Out: DeserializeOwned>(&self, to: ReplyTo) -> Reply<Out> {
        match self.reply(to) {
            Some(Ok(bytes)) => decode(bytes).expect("a reply decodes"),
            other => panic!("expected a reply to {to:?}, got {other:?}"),
        }
    }

    /// Multicasts handed to the group and not yet delivered.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Delivers the next multicast to every member of the view, in view order.
    pub(crate) fn deliver_one(&mut self) -> bool {
        let Some(sent) = self.in_flight.pop_front() else {
            return false;
        };
        let view = self
            .view
            .clone()
            .expect("multicasts are delivered in a view");
        self.seq += 1;
        let message = Delivered {
            sender: pid(sent.sender),
            view: view.id,
            seq: Seq(self.seq),
            ordering: Ordering::Total,
            payload: sent.payload,
        };
        for m in view.member_ids() {
            let n = m.node.0;
            if !self.isolated.contains(&n) {
                self.run(
                    n,
                    ServiceEvent::Deliver {
                        group: group(),
                        message: message.clone(),
                    },
                );
            }
        }
        true
    }

    /// Delivers every multicast in flight (and those their delivery causes).
    pub(crate) fn deliver_all(&mut self) {
        while self.deliver_one() {}
    }

    /// Routes the point-to-point messages sent so far (and those they cause).
    pub(crate) fn route(&mut self) {
        while let Some((from, to, payload)) = self.directs.pop_front() {
            if !self.isolated.contains(&to) {
                self.run(
                    to,
                    ServiceEvent::Direct {
                        group: group(),
                        from: pid(from),
                        payload,
                    },
                );
            }
        }
    }

    /// Ticks member `n` (its shell's group commit).
    pub(crate) fn tick(&mut self, n: u64) {
        let Some(core) = self.nodes.get_mut(&n) else {
            return;
        };
        let actions = core
            .tick(self.now)
            .expect("the replica's storage does not fail");
        (self.check)(core);
        self.absorb(n, actions);
    }

    /// Advances the clock by one tick interval and ticks every member that is not cut off.
    pub(crate) fn tick_all(&mut self) {
        self.now += TICK_INTERVAL;
        let nodes: Vec<u64> = self.nodes.keys().copied().collect();
        for n in nodes {
            if !self.isolated.contains(&n) {
                self.tick(n);
            }
        }
    }

    /// Delivers, routes and ticks until nothing is left in flight.
    pub(crate) fn settle(&mut self) {
        for _ in 0..1000 {
            self.deliver_all();
            self.route();
            self.tick_all();
            if self.in_flight.is_empty() && self.directs.is_empty() {
                return;
            }
        }
        panic!("the group did not settle");
    }

    /// Member `n` crashes: what it sent and was not delivered is lost with it.
    pub(crate) fn crash(&mut self, n: u64) -> C {
        self.in_flight.retain(|s| s.sender != n);
        self.next_view.retain(|s| s.sender != n);
        self.directs.retain(|&(from, to, _)| from != n && to != n);
        self.nodes.remove(&n).expect("a live member")
    }

    /// Member `n` is cut off from the others (it keeps running, unaware).
    pub(crate) fn isolate(&mut self, n: u64) {
        self.isolated.insert(n);
        self.in_flight.retain(|s| s.sender != n);
        self.next_view.retain(|s| s.sender != n);
        self.directs.retain(|&(from, to, _)| from != n && to != n);
    }

    /// Member `n` can talk to the others again.
    pub(crate) fn reconnect(&mut self, n: u64) {
        self.isolated.remove(&n);
    }

    /// A view change begins at the members of the current view.
    pub(crate) fn block(&mut self) {
        self.blocked = true;
        let members: Vec<u64> = self
            .view
            .iter()
            .flat_map(|v| v.member_ids())
            .map(|p| p.node.0)
            .collect();
        for n in members {
            if !self.isolated.contains(&n) {
                self.run(n, ServiceEvent::Block { group: group() });
            }
        }
    }

    /// Installs the view `members` (oldest first): the old view's messages are delivered
    /// first, joiners get `restore_from`'s state, then every member gets the `ViewChange`.
    pub(crate) fn install(&mut self, members: &[u64], restore_from: Option<u64>) {
        self.blocked = true;
        self.deliver_all();
        let old = self.view.take();
        let epoch = old.as_ref().map_or(1, |v| v.id.epoch + 1);
        let view = View::of_voters(
            group(),
            ViewId {
                epoch,
                coordinator: pid(members[0]),
            },
            members.iter().map(|&n| member(n)).collect(),
        );
        if let (Some(old), Some(from)) = (&old, restore_from) {
            let state = self.nodes[&from].snapshot();
            for &n in members {
                if !old.contains(pid(n)) {
                    self.run(
                        n,
                        ServiceEvent::Restore {
                            group: group(),
                            view: view.id,
                            state: state.clone(),
                            since: None,
                        },
                    );
                }
            }
        }
        let change = ViewChange::between(old.as_ref(), view.clone());
        self.view = Some(view);
        self.blocked = false;
        self.in_flight.extend(self.next_view.drain(..));
        for &n in members {
            self.run(
                n,
                ServiceEvent::ViewChange {
                    group: group(),
                    change: change.clone(),
                },
            );
        }
    }

    /// `block` then `install`.
    pub(crate) fn change_view(&mut self, members: &[u64], restore_from: Option<u64>) {
        self.block();
        self.install(members, restore_from);
    }
}

/// The refusal `to` got; panics if it got none or an answer.
pub(crate) fn refusal<C: ReplicaCore>(h: &Harness<C>, to: ReplyTo) -> viewsync::wire::Refusal {
    match h.reply(to) {
        Some(Err(refusal)) => refusal.clone(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Every live replica that `in_view` says is in a view holds the same snapshot (state,
/// position and executed table).
pub(crate) fn assert_same_snapshots<C: ReplicaCore>(h: &Harness<C>, in_view: impl Fn(&C) -> bool) {
    let mut snapshots = h
        .nodes
        .iter()
        .filter(|(_, r)| in_view(r))
        .map(|(n, r)| (n, r.snapshot()));
    let (first, expected) = snapshots.next().expect("a replica");
    for (n, snapshot) in snapshots {
        assert_eq!(snapshot, expected, "replicas {first} and {n} differ");
    }
}

/// A request or message whose length prefix claims nearly `u64::MAX` bytes is a decode error,
/// checked before anything is allocated (it once asked the allocator for them and aborted the
/// process; found by the `passive_replica` fuzz target).
#[test]
fn an_absurd_length_prefix_is_an_error_not_an_allocation() {
    // A request id (client 1, seq 1), then a machine name claiming 2^63 - 1 bytes.
    let request = [1u8, 1, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
    let refused = super::decode_request::<crate::state_machine::kv::KvOp>(&request, "kv");
    assert!(matches!(
        refused,
        Err(viewsync::wire::Refusal::Malformed(_))
    ));
    let message: Result<Vec<String>, String> = super::decode(&request[2..]);
    assert!(message.is_err());
}
