//! The bodies of the fuzz targets, shared by `cargo fuzz` (the `fuzz/` crate, nightly) and the
//! seeded stable driver (`--test fuzz`, in CI): each takes arbitrary bytes and must not panic,
//! whatever they hold. Bytes are read with [`arbitrary::Unstructured`] as a script of steps;
//! most steps take a valid message, file or text and damage it (so the fuzzer reaches past the
//! first check), the rest use the bytes as they are.
//!
//! - [`frame_decoder`]: the frame codec, over raw byte streams and damaged sealed frames;
//! - [`node_envelopes`], [`membership_messages`], [`multicast_messages`]: decoded, damaged
//!   envelopes fed to the node core of a member of a formed three-member group (the routing
//!   the node actor uses; the membership and multicast targets keep to their core's message
//!   kinds), with ticks and multicasts between them;
//! - [`failure_detector`]: the failure detector core driven directly;
//! - [`passive_replica`], [`active_replica`], [`gossip_replica`], [`signed_replica`]: each
//!   replication core in a three-member view, fed requests, deliveries and point-to-point
//!   messages (damaged copies of what the cores send, or raw bytes), view changes, restores;
//! - [`wal_reader`], [`snapshot_reader`]: the write-ahead log and snapshot readers over files
//!   written validly and then damaged;
//! - [`node_config`], [`service_config`]: the configuration parsers.

use arbitrary::Unstructured;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_util::codec::Decoder;
use viewsync::config::NodeConfig;
use viewsync::id::{ConnectionId, CLIENT_NODE_ID};
use viewsync::proto::failure_detector::{FailureDetector, FailureDetectorConfig};
use viewsync::proto::multicast::{Message, MulticastOutput};
use viewsync::proto::node::{NodeCore, NodeOutput, NodeSettings};
use viewsync::runtime::{ClientRequest, ReplyTo, ServiceEvent};
use viewsync::wire::{Body, ClusterKey, Envelope, FrameCodec, Ordering, Seq, PROTOCOL_VERSION};
use viewsync::{GroupName, Incarnation, Member, NodeId, ProcessId, View, ViewChange, ViewId};
use viewsync_services::config::{ServiceConfig, ServiceFileConfig, Strategy};
use viewsync_services::replication::active::{ActiveConfig, ActiveReplica};
use viewsync_services::replication::signed::{ReplicaKeys, ReplicaSigner, SigningCore};
use viewsync_services::replication::store::{DiskLog, Recovered};
use viewsync_services::replication::{
    encode, Action, CausalToken, MemoryLog, ReplicaCore, Request, RequestId,
};
use viewsync_services::state_machine::kv::{KvOp, KvStore};
use viewsync_services::storage::{Durability, SnapshotStore, WalOptions, SNAPSHOT_FILE};

/// A fuzz target's body.
pub type TargetBody = fn(&[u8]);

/// Every target, by name (the `fuzz/` crate has a binary of each name).
pub const TARGETS: &[(&str, TargetBody)] = &[
    ("frame_decoder", frame_decoder),
    ("node_envelopes", node_envelopes),
    ("membership_messages", membership_messages),
    ("multicast_messages", multicast_messages),
    ("failure_detector", failure_detector),
    ("passive_replica", passive_replica),
    ("active_replica", active_replica),
    ("gossip_replica", gossip_replica),
    ("signed_replica", signed_replica),
    ("wal_reader", wal_reader),
    ("snapshot_reader", snapshot_reader),
    ("node_config", node_config),
    ("service_config", service_config),
];

/// Steps of one input at most, so a long input cannot make one run slow.
const STEPS_MAX: usize = 64;
/// Frames a target's codec accepts (small, so the size checks are reached).
const FRAME_MAX: usize = 64 * 1024;

fn key() -> ClusterKey {
    ClusterKey::from_hex(&"5a".repeat(32)).expect("a valid key")
}

/// Damages `bytes` with up to eight edits chosen by `u`: overwritten, inserted or removed
/// bytes, a flipped bit, a cut, or a large varint written in (bincode's lengths and numbers).
pub fn damage(u: &mut Unstructured, bytes: &mut Vec<u8>, from: usize) {
    let edits = u.int_in_range(0..=8u8).unwrap_or(0);
    for _ in 0..edits {
        let len = bytes.len();
        let at = if len > from {
            from + u.choose_index(len - from).unwrap_or(0)
        } else {
            len
        };
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 if at < len => bytes[at] = u.arbitrary().unwrap_or(0),
            1 if at < len => bytes[at] ^= 1 << u.int_in_range(0..=7u8).unwrap_or(0),
            2 => bytes.insert(at, u.arbitrary().unwrap_or(0)),
            3 if at < len => {
                bytes.remove(at);
            }
            4 => bytes.truncate(at),
            _ => {
                // A u64 varint of nearly all ones: an absurd length or counter.
                let big = [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
                let at = at.min(bytes.len());
                bytes.splice(at..at, big);
            }
        }
    }
}

fn decode_stream(codec: &FrameCodec, bytes: &mut BytesMut) {
    let mut decoder = codec.decoder();
    // Each frame opened or the first error: a connection closes at its first bad frame.
    while let Ok(Some(_)) = decoder.decode(bytes) {}
}

/// The frame decoder over a raw stream (split where the first byte says, as if it came in two
/// reads), each payload opened directly, and sealed frames of every kind damaged.
pub fn frame_decoder(data: &[u8]) {
    let keyed = FrameCodec::new(Some(key()), FRAME_MAX);
    let plain = FrameCodec::new(None, FRAME_MAX);
    for codec in [&keyed, &plain] {
        let split = data.first().map_or(0, |b| *b as usize).min(data.len());
        let mut stream = BytesMut::from(&data[..split]);
        decode_stream(codec, &mut stream);
        stream.extend_from_slice(&data[split..]);
        decode_stream(codec, &mut stream);
        let _ = codec.open(data);
    }
    let mut u = Unstructured::new(data);
    let templates = templates();
    for _ in 0..STEPS_MAX {
        if u.is_empty() {
            break;
        }
        let Ok(index) = u.choose_index(templates.len()) else {
            break;
        };
        let sealer = if u.arbitrary().unwrap_or(false) {
            &keyed
        } else {
            &plain
        };
        let Ok(frame) = sealer.seal(templates[index].clone()) else {
            continue;
        };
        let mut bytes = frame.to_vec();
        damage(&mut u, &mut bytes, 0);
        for codec in [&keyed, &plain] {
            decode_stream(codec, &mut BytesMut::from(&bytes[..]));
            if bytes.len() > 4 {
                let _ = codec.open_frame(Bytes::copy_from_slice(&bytes[4..]));
            }
        }
    }
}

/// The group every node-core target forms.
const GROUP: &str = "fuzz";

fn group() -> GroupName {
    GroupName::new(GROUP).expect("a valid group name")
}

fn address(i: usize) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i as u8 + 1], 7000))
}

fn member(i: usize) -> Member {
    Member {
        id: ProcessId {
            node: NodeId(i as u64 + 1),
            incarnation: Incarnation(100 + i as u64),
        },
        addr: address(i),
    }
}

/// Node cores wired to each other in memory, in virtual time: every frame a core sends is
/// handed to its destination at once, in order. Deterministic.
pub struct CoreGroup {
    cores: Vec<NodeCore>,
    now: Duration,
    queue: VecDeque<(usize, Envelope)>,
    /// Envelopes carried so far (the first [`CoreGroup::RECORDED_MAX`]).
    pub recorded: Vec<Envelope>,
}

impl CoreGroup {
    /// Envelopes kept in [`CoreGroup::recorded`] at most.
    pub const RECORDED_MAX: usize = 4096;
    /// Envelopes carried per step at most (a damaged message may start an exchange that
    /// would go on for long).
    const CARRIED_PER_STEP: usize = 10_000;

    /// `n` cores in one view of all of them (node 1 founds the group, the others join
    /// through it), each having multicast a message.
    pub fn form(n: usize) -> CoreGroup {
        let mut group = CoreGroup {
            cores: Vec::new(),
            now: Duration::from_secs(1),
            queue: VecDeque::new(),
            recorded: Vec::new(),
        };
        for i in 0..n {
            let mut settings = NodeSettings::default();
            settings.membership.bootstrap = i == 0;
            let seeds = if i == 0 { vec![] } else { vec![address(0)] };
            let mut core = NodeCore::new(member(i), seeds, settings);
            let out = core
                .handle_join(group.now, self::group())
                .expect("a first join");
            group.cores.push(core);
            group.absorb(i, out);
            group.carry();
        }
        for _ in 0..3000 {
            if group.formed(n) {
                break;
            }
            group.advance(Duration::from_millis(10));
        }
        assert!(group.formed(n), "the fuzz group did not form");
        for i in 0..n {
            group.multicast(i, Bytes::from(format!("hello from {i}")));
        }
        group.advance(Duration::from_millis(200));
        group
    }

    fn formed(&self, n: usize) -> bool {
        self.cores.iter().all(|c| {
            c.view(&group())
                .is_some_and(|v| v.members.len() == n && v.voters == n)
        })
    }

    /// Advances virtual time by `by`, in ticks of 10 ms, carrying what the cores send.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        while self.now < end {
            self.now += Duration::from_millis(10);
            for i in 0..self.cores.len() {
                let out = self.cores[i].handle_tick(self.now);
                self.absorb(i, out);
            }
            self.carry();
        }
    }

    /// Core `i` multicasts `payload` (refusals ignored).
    pub fn multicast(&mut self, i: usize, payload: Bytes) {
        if let Ok(out) = self.cores[i].handle_multicast(self.now, &group(), None, payload) {
            self.absorb(i, out);
            self.carry();
        }
    }

    /// Hands `envelope` to core `i` as if it came off a connection, and carries the rest.
    pub fn deliver(&mut self, i: usize, envelope: Envelope) {
        let out = self.cores[i].handle_envelope(self.now, envelope, ConnectionId(1));
        self.absorb(i, out);
        self.carry();
    }

    fn index_of(&self, to: SocketAddr) -> Option<usize> {
        self.cores.iter().position(|c| c.me().addr == to)
    }

    fn absorb(&mut self, from: usize, outputs: Vec<NodeOutput>) {
        for output in outputs {
            match output {
                NodeOutput::Send { to, envelope } => {
                    if let Some(i) = self.index_of(to) {
                        self.queue.push_back((i, envelope));
                    }
                }
                NodeOutput::SendAll { to, envelope } => {
                    for to in to {
                        if let Some(i) = self.index_of(to) {
                            self.queue.push_back((i, envelope.clone()));
                        }
                    }
                }
                NodeOutput::Group { group, event } => match event {
                    MulticastOutput::SnapshotWanted(view) => {
                        let out = self.cores[from].handle_snapshot(
                            self.now,
                            &group,
                            view,
                            Ok(Bytes::from_static(b"state")),
                        );
                        self.absorb(from, out);
                    }
                    MulticastOutput::DeltaWanted { view, since } => {
                        let out =
                            self.cores[from].handle_delta(self.now, &group, view, since, None);
                        self.absorb(from, out);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }

    fn carry(&mut self) {
        let mut carried = 0;
        while let Some((to, envelope)) = self.queue.pop_front() {
            carried += 1;
            if carried > Self::CARRIED_PER_STEP {
                self.queue.clear();
                return;
            }
            if self.recorded.len() < Self::RECORDED_MAX {
                self.recorded.push(envelope.clone());
            }
            let out = self.cores[to].handle_envelope(self.now, envelope, ConnectionId(0));
            self.absorb(to, out);
        }
    }
}

/// Envelopes of every kind a forming, multicasting, failing and rejoining group sends (one
/// run, recorded once), plus client bodies: the valid messages the targets damage.
pub fn templates() -> &'static [Envelope] {
    static TEMPLATES: OnceLock<Vec<Envelope>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let mut group = CoreGroup::form(3);
        // Node 3 falls silent (a crash): suspicion, a view change without it.
        for _ in 0..100 {
            group.now += Duration::from_millis(10);
            for i in 0..2 {
                let out = group.cores[i].handle_tick(group.now);
                group.absorb(i, out);
            }
            group.queue.retain(|(to, _)| *to != 2);
            group.carry();
        }
        group.multicast(0, Bytes::from_static(b"after the crash"));
        group.advance(Duration::from_secs(1));
        let mut all: Vec<Envelope> = Vec::new();
        // One of each kind first, then the rest, so a small choice reaches every kind.
        let mut kinds = std::collections::BTreeSet::new();
        for e in &group.recorded {
            if kinds.insert(e.body.kind()) {
                all.push(e.clone());
            }
        }
        let client = |body: Body| Envelope {
            version: PROTOCOL_VERSION,
            sender: ProcessId {
                node: CLIENT_NODE_ID,
                incarnation: Incarnation(7),
            },
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            seq: 0,
            group: Some(self::group()),
            body,
        };
        all.push(client(Body::MembersRequest));
        all.push(client(Body::GroupSend {
            ordering: Some(Ordering::Total),
            payload: Bytes::from_static(b"client payload"),
        }));
        all.push(client(Body::Request {
            tag: 7,
            payload: Bytes::from_static(b"request"),
        }));
        all.extend(group.recorded.iter().take(512).cloned());
        all
    })
}

/// Damaged templates (kinds kept by `keep`) fed to a formed group's cores, with ticks and
/// multicasts between.
fn drive_node_cores(data: &[u8], keep: fn(&Body) -> bool) {
    let templates: Vec<&Envelope> = templates().iter().filter(|e| keep(&e.body)).collect();
    let plain = FrameCodec::new(None, FRAME_MAX);
    let mut group = CoreGroup::form(3);
    let mut u = Unstructured::new(data);
    for _ in 0..STEPS_MAX {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0..=3 => {
                let Ok(index) = u.choose_index(templates.len()) else {
                    break;
                };
                let mut envelope = templates[index].clone();
                // Now and then from a member that is not the one that sent it, or from an
                // outsider.
                if u.ratio(1, 4).unwrap_or(false) {
                    let who = u.int_in_range(0..=3usize).unwrap_or(0);
                    let m = member(who);
                    envelope.sender = m.id;
                    envelope.sender_addr = m.addr;
                }
                let Ok(frame) = plain.seal(envelope) else {
                    continue;
                };
                let mut bytes = frame[4..].to_vec();
                damage(&mut u, &mut bytes, 1);
                let Ok(opened) = plain.open(&bytes) else {
                    continue;
                };
                let to = u.choose_index(3).unwrap_or(0);
                group.deliver(to, opened);
            }
            4 => {
                let ms = u.int_in_range(1..=1000u64).unwrap_or(10);
                group.advance(Duration::from_millis(ms));
            }
            _ => {
                let from = u.choose_index(3).unwrap_or(0);
                let payload: Vec<u8> = u.arbitrary().unwrap_or_default();
                group.multicast(from, Bytes::from(payload));
            }
        }
    }
    group.advance(Duration::from_secs(2));
}

/// Every kind of envelope, to the whole node core.
pub fn node_envelopes(data: &[u8]) {
    drive_node_cores(data, |_| true);
}

/// The membership core's messages (joins, leaves, the view-change consensus, installs,
/// discovery and merges).
pub fn membership_messages(data: &[u8]) {
    drive_node_cores(data, |body| {
        matches!(
            body.kind(),
            "join_request"
                | "leave_request"
                | "prepare"
                | "promise"
                | "accept"
                | "accepted"
                | "rejected"
                | "install"
                | "view_change_stalled"
                | "learner_ready"
                | "recovering"
                | "stale"
                | "discover"
                | "discover_reply"
                | "merge_into"
        )
    });
}

/// The multicast core's messages (data, acknowledgements, retransmission requests, state
/// transfer, point-to-point) and the client's.
pub fn multicast_messages(data: &[u8]) {
    drive_node_cores(data, |body| {
        matches!(
            body.kind(),
            "data"
                | "ack"
                | "nak"
                | "state_request"
                | "state_chunk"
                | "direct"
                | "group_send"
                | "request"
                | "heartbeat"
        )
    });
}

/// The failure detector: peers monitored and forgotten, heard from (at times in any order),
/// ticks; the counters stay consistent.
pub fn failure_detector(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let config = FailureDetectorConfig {
        heartbeat_interval: Duration::from_millis(u.int_in_range(1..=500u64).unwrap_or(100)),
        suspect_timeout: Duration::from_millis(u.int_in_range(1..=2000u64).unwrap_or(400)),
        confirm_timeout: Duration::from_millis(u.int_in_range(0..=1000u64).unwrap_or(150)),
        ..FailureDetectorConfig::default()
    };
    let mut fd = FailureDetector::new(config);
    let mut now = Duration::ZERO;
    let peer = |n: u8| ProcessId {
        node: NodeId(u64::from(n % 8)),
        incarnation: Incarnation(u64::from(n / 8)),
    };
    for _ in 0..STEPS_MAX * 4 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0..=3u8).unwrap_or(0) {
            0 => {
                let peers: Vec<u8> = u.arbitrary().unwrap_or_default();
                fd.set_monitored(
                    now,
                    peers
                        .into_iter()
                        .take(16)
                        .map(|p| (peer(p), address(p as usize % 8))),
                );
            }
            1 => {
                // Evidence stamped at the socket may be older than the core's clock.
                let back = Duration::from_millis(u.int_in_range(0..=1000u64).unwrap_or(0));
                let _ = fd
                    .handle_heard_from(now.saturating_sub(back), peer(u.arbitrary().unwrap_or(0)));
            }
            2 => now += Duration::from_millis(u.int_in_range(0..=3000u64).unwrap_or(10)),
            _ => {
                let _ = fd.handle_tick(now);
            }
        }
        assert!(fd.false_suspicions() <= fd.suspicions());
    }
}

/// A request of the key-value machine, encoded as front ends send it.
fn kv_request(u: &mut Unstructured, seq: u64, causal: bool) -> Bytes {
    let key = format!("k{}", u.int_in_range(0..=3u8).unwrap_or(0));
    let op = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => KvOp::Put {
            key,
            value: format!("v{seq}"),
        },
        1 => KvOp::Get { key },
        2 => KvOp::Delete { key },
        _ => KvOp::Cas {
            key,
            expected: None,
            new: format!("c{seq}"),
        },
    };
    encode(&Request {
        id: RequestId {
            client: u.int_in_range(1..=3u64).unwrap_or(1),
            seq,
        },
        machine: "kv".into(),
        after: 0,
        op,
        causal: causal.then(CausalToken::default),
    })
}

fn view_of(epoch: u64, members: Vec<Member>) -> View {
    let voters = members.len();
    View {
        group: group(),
        id: ViewId {
            epoch,
            coordinator: members[0].id,
        },
        members,
        voters,
    }
}

/// A replication core as member `me` (0 is the view's first member: the primary, the
/// sequencer's side) of a three-member view, fed a script of events: client requests (valid
/// or damaged), deliveries and point-to-point messages (damaged copies of what the core sent,
/// or raw bytes, from any member), ticks, view changes and restores.
fn drive_replica(data: &[u8], causal: bool, build: fn(ProcessId) -> Box<dyn ReplicaCore>) {
    let mut u = Unstructured::new(data);
    let me_index = u.choose_index(3).unwrap_or(0);
    let me = member(me_index).id;
    let mut core = build(me);
    let members: Vec<Member> = (0..3).map(member).collect();
    let mut view = view_of(1, members.clone());
    let _ = core.handle(&ServiceEvent::ViewChange {
        group: group(),
        change: ViewChange::between(None, view.clone()),
    });
    let mut now = Duration::ZERO;
    let mut sent: Vec<Bytes> = Vec::new();
    let mut next_seq = [1u64; 3];
    let mut request_seq = 1;
    let record = |actions: Vec<Action>, sent: &mut Vec<Bytes>| {
        for action in actions {
            match action {
                Action::Multicast(payload) | Action::Send { payload, .. } => {
                    if sent.len() < 256 {
                        sent.push(payload);
                    }
                }
                Action::Reply { .. } => {}
            }
        }
    };
    for _ in 0..STEPS_MAX {
        if u.is_empty() {
            break;
        }
        let from = u.choose_index(view.members.len()).unwrap_or(0);
        let sender = view.members[from].id;
        let event = match u.int_in_range(0..=7u8).unwrap_or(0) {
            0 | 1 => {
                let mut payload = kv_request(&mut u, request_seq, causal).to_vec();
                request_seq += 1;
                if u.ratio(1, 3).unwrap_or(false) {
                    damage(&mut u, &mut payload, 0);
                }
                ServiceEvent::Request(ClientRequest {
                    group: group(),
                    reply: ReplyTo {
                        connection: ConnectionId(1),
                        client: ProcessId {
                            node: CLIENT_NODE_ID,
                            incarnation: Incarnation(request_seq),
                        },
                        tag: request_seq,
                    },
                    payload: Bytes::from(payload),
                })
            }
            2..=4 => {
                let mut payload = match u.choose(&sent) {
                    Ok(p) => p.to_vec(),
                    Err(_) => u.arbitrary().unwrap_or_default(),
                };
                if u.ratio(1, 2).unwrap_or(false) {
                    damage(&mut u, &mut payload, 0);
                }
                if u.arbitrary().unwrap_or(true) {
                    let slot = from.min(2);
                    let seq = next_seq[slot];
                    next_seq[slot] += 1;
                    ServiceEvent::Deliver {
                        group: group(),
                        message: Message {
                            sender,
                            view: view.id,
                            seq: Seq(seq),
                            ordering: Ordering::Total,
                            payload: Bytes::from(payload),
                        },
                    }
                } else {
                    ServiceEvent::Direct {
                        group: group(),
                        from: sender,
                        payload: Bytes::from(payload),
                    }
                }
            }
            5 => {
                now += Duration::from_millis(u.int_in_range(1..=2000u64).unwrap_or(10));
                let actions = core.tick(now).unwrap_or_default();
                record(actions, &mut sent);
                continue;
            }
            6 => {
                // A view change: block, then a view of a rotation of some of the members,
                // this one always among them.
                let _ = core.handle(&ServiceEvent::Block { group: group() });
                let rotate = u.choose_index(3).unwrap_or(0);
                let mut next: Vec<Member> = members.clone();
                next.rotate_left(rotate);
                if u.arbitrary().unwrap_or(false) {
                    next.retain(|m| m.id == me || m.id.node != NodeId(3));
                }
                let previous = view.clone();
                view = view_of(view.id.epoch + 1, next);
                next_seq = [1; 3];
                ServiceEvent::ViewChange {
                    group: group(),
                    change: ViewChange::between(Some(&previous), view.clone()),
                }
            }
            _ => {
                let mut state = core.snapshot().to_vec();
                damage(&mut u, &mut state, 0);
                let since = if u.arbitrary().unwrap_or(false) {
                    Some(u.arbitrary().unwrap_or(0))
                } else {
                    None
                };
                let _ = core.delta(view.id, u.arbitrary().unwrap_or(0));
                ServiceEvent::Restore {
                    group: group(),
                    view: view.id,
                    state: Bytes::from(state),
                    since,
                }
            }
        };
        if let Ok(actions) = core.handle(&event) {
            record(actions, &mut sent);
        }
    }
    let _ = core.snapshot();
    let _ = core.position();
}

fn built(strategy: Strategy, me: ProcessId) -> Box<dyn ReplicaCore> {
    let service = ServiceConfig {
        strategy,
        ..ServiceConfig::default()
    };
    viewsync_services::strategy::build_core(
        &service,
        me,
        group(),
        Box::new(MemoryLog::new()),
        Recovered::default(),
    )
    .unwrap_or_else(|e| panic!("building the {strategy:?} core: {e}"))
}

/// The passive (primary-backup) core.
pub fn passive_replica(data: &[u8]) {
    drive_replica(data, false, |me| built(Strategy::Passive, me));
}

/// The active (state machine replication) core.
pub fn active_replica(data: &[u8]) {
    drive_replica(data, false, |me| built(Strategy::Active, me));
}

/// The gossip core.
pub fn gossip_replica(data: &[u8]) {
    drive_replica(data, true, |me| built(Strategy::Gossip, me));
}

fn signing_key(node: u64) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[node as u8; 32])
}

/// The Byzantine strategy's signing core around the active core, and the front end's check of
/// signed replies over damaged copies of the replies it signs and over raw bytes.
pub fn signed_replica(data: &[u8]) {
    drive_replica(data, false, |me| {
        let active = ActiveReplica::<KvStore>::recover(
            ActiveConfig::new(me, group(), "kv"),
            Box::new(MemoryLog::new()),
            Recovered::default(),
        )
        .expect("an active core over memory");
        Box::new(SigningCore::new(
            Box::new(active),
            ReplicaSigner::new(me.node, group(), signing_key(me.node.0)),
        ))
    });
    let keys = ReplicaKeys::new(
        (1..=3)
            .map(|n| (NodeId(n), signing_key(n).verifying_key()))
            .collect(),
    );
    let _ = keys.verify(&group(), data);
    let signer = ReplicaSigner::new(NodeId(1), group(), signing_key(1));
    let mut u = Unstructured::new(data);
    let reply: Vec<u8> = u.arbitrary().unwrap_or_default();
    let signed = signer.sign(Bytes::from(reply));
    let mut bytes = encode(&signed).to_vec();
    damage(&mut u, &mut bytes, 0);
    let _ = keys.verify(&group(), &bytes);
}

/// A temporary directory for one run (removed when dropped).
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("viewsync-fuzz")
        .tempdir()
        .expect("a temporary directory")
}

/// Damages the files of `dir` as `u` says: bytes overwritten, files cut, grown or removed.
fn damage_files(u: &mut Unstructured, dir: &Path) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the scratch directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let edits = u.int_in_range(0..=4u8).unwrap_or(0);
    for _ in 0..edits {
        let Ok(path) = u.choose(&files).cloned() else {
            return;
        };
        let Ok(mut bytes) = std::fs::read(&path) else {
            continue;
        };
        if u.ratio(1, 8).unwrap_or(false) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        damage(u, &mut bytes, 0);
        std::fs::write(&path, &bytes).expect("rewrite a damaged file");
    }
}

/// The write-ahead log's reader over a log of small segments written validly, then damaged:
/// opening never panics; what opens keeps consecutive indices, takes the next record, and
/// reopens with the same records plus that one.
pub fn wal_reader(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let dir = scratch();
    let options = WalOptions::new(Durability::MemoryOnly).segment_bytes(128);
    {
        let (mut wal, _) = options.open(dir.path()).expect("a fresh log");
        let records = u.int_in_range(0..=12u64).unwrap_or(0);
        for index in 1..=records {
            let len = u.int_in_range(0..=60usize).unwrap_or(0);
            let payload = vec![index as u8; len];
            wal.append(index, &payload).expect("an append");
        }
        wal.sync().expect("a sync");
    }
    damage_files(&mut u, dir.path());
    let Ok((mut wal, recovery)) = options.open(dir.path()) else {
        return;
    };
    let indices: Vec<u64> = recovery.records.iter().map(|r| r.index).collect();
    assert!(
        indices.windows(2).all(|w| w[1] == w[0] + 1),
        "recovered indices are not consecutive: {indices:?}"
    );
    let next = wal.next_index().unwrap_or(1);
    if wal.append(next, b"after recovery").is_err() {
        return;
    }
    wal.sync().expect("a sync");
    drop(wal);
    let (_, again) = options
        .open(dir.path())
        .expect("a log that opened and took a record");
    let mut expected = recovery.records.clone();
    expected.push(viewsync_services::storage::Record {
        index: next,
        payload: Bytes::from_static(b"after recovery"),
    });
    assert_eq!(again.records, expected, "the reopened log differs");
    // The replica's storage over the same directory (log and snapshot) opens too.
    let _ = DiskLog::open(dir.path(), Durability::MemoryOnly);
}

/// The snapshot reader over a snapshot file written validly, then damaged: never a panic,
/// and an undamaged file reads back what was saved.
pub fn snapshot_reader(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let dir = scratch();
    let store = SnapshotStore::new(dir.path());
    let position: u64 = u.arbitrary().unwrap_or(0);
    let state: Vec<u8> = u.arbitrary().unwrap_or_default();
    store.save(position, &state).expect("a snapshot");
    let path = dir.path().join(SNAPSHOT_FILE);
    let before = std::fs::read(&path).expect("the snapshot file");
    damage_files(&mut u, dir.path());
    let after = std::fs::read(&path).ok();
    let loaded = store.load();
    if after.as_deref() == Some(&before[..]) {
        let loaded = loaded.expect("an undamaged snapshot loads");
        assert_eq!(loaded, Some((position, Bytes::from(state))));
    }
}

/// Text that names no device or kernel file (a key file of `/dev/zero` would be read
/// forever, which is the operator's doing, not the parser's).
fn harmless(text: &str) -> bool {
    !["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p))
}

const NODE_CONFIG: &str = "node_id = 1\nlisten = \"127.0.0.1:0\"\nseeds = [\"127.0.0.1:7001\"]\n\
groups = [\"demo\", \"other\"]\n[failure_detector]\nheartbeat_interval = \"100ms\"\n\
suspect_timeout_ms = 400\n[membership]\njoin_retry_interval_ms = 200\n[transport]\n\
frame_bytes_max = 65536\nmax_inbound_connections = 10\nauth_timeout = \"2s\"\n\
[multicast]\nordering = \"total\"\ndelivery = \"safe\"\npayload_bytes_max = 1000\n\
[group.demo]\nordering = \"fifo\"\n";

const SERVICE_CONFIG: &str = "node_id = 1\nlisten = \"127.0.0.1:0\"\nbootstrap = true\n\
groups = [\"demo\"]\n[service]\nstrategy = \"gossip\"\nstate_machine = \"bank\"\n\
durability = \"grouped:5ms\"\n[service.gossip]\ninterval_ms = 100\nbatch_max = 16\n\
read_only = [3]\n";

fn config_texts(data: &[u8], valid: &str) -> Vec<String> {
    let mut u = Unstructured::new(data);
    let mut damaged = valid.as_bytes().to_vec();
    damage(&mut u, &mut damaged, 0);
    [
        String::from_utf8_lossy(data).into_owned(),
        String::from_utf8_lossy(&damaged).into_owned(),
    ]
    .into_iter()
    .filter(|t| harmless(t))
    .collect()
}

/// The node configuration parser.
pub fn node_config(data: &[u8]) {
    for text in config_texts(data, NODE_CONFIG) {
        let _ = NodeConfig::parse(&text, Path::new("/nonexistent/fuzz.toml"));
    }
}

/// The service configuration parser (the node's sections and `[service]`).
pub fn service_config(data: &[u8]) {
    for text in config_texts(data, SERVICE_CONFIG) {
        let _ = ServiceFileConfig::parse(&text, Path::new("/nonexistent/fuzz.toml"));
    }
}
