//! Simulated clients: processes of the world that are not members. Each has a client
//! identity ([`CLIENT_NODE_ID`] with an incarnation drawn from the seed), an address of its
//! own on the memory network and a codec sealing with the cluster key, and talks to the nodes
//! as a real [`Client`](crate::client::Client) does: a [`Body::Request`] frame to a node,
//! answered by a [`Body::Response`] on that connection (the memory network routes a node's
//! `reply` to the connection's address, the client's), or a [`Body::MembersRequest`] answered
//! by the node's view. Its frames cross the same network under the same faults as the
//! members' (loss, delay, duplication, late frames, partitions: a client is on one side of
//! each partition, cut off from the nodes on the others).
//!
//! What a client does is a [`SimulatedClient`] the test provides (the simulator knows nothing
//! of the service's encoding): asked for its [`ClientStep`] whenever it is idle, told of every
//! answer and of the end of each wait. The simulator counts what happened ([`ClientStats`]).

use super::Simulation;
use crate::id::{Incarnation, ProcessId, CLIENT_NODE_ID};
use crate::proto::Time;
use crate::transport::memory::{Datagram, MemoryEndpoint};
use crate::transport::Transport;
use crate::view::View;
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{
    Blocked, Body, BusyReason, Envelope, FrameCodec, FrameError, Outcome, Refusal, PROTOCOL_VERSION,
};
use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::codec::Decoder;

/// What an idle client does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientStep {
    /// Send `payload` (in the service's encoding) as request `tag` to the node at `to`, and
    /// wait at most `timeout` for its answer.
    Request {
        /// The node.
        to: SocketAddr,
        /// The client's tag for this attempt (the answer carries it back).
        tag: u64,
        /// The request.
        payload: Bytes,
        /// How long to wait for the answer.
        timeout: Duration,
    },
    /// Ask the node at `to` for its view of the group, and wait at most `timeout`.
    Members {
        /// The node.
        to: SocketAddr,
        /// How long to wait for the answer.
        timeout: Duration,
    },
    /// Nothing for this long (virtual time); then it is asked again.
    Wait(Duration),
    /// The client is done for the run.
    Done,
}

/// A client's behaviour, provided by the test: a front end's policy. Times are the
/// simulation's virtual clock, common to all clients (a history's time stamps).
pub trait SimulatedClient: fmt::Debug {
    /// What to do now that the client is idle: at its start, after an answer that ended its
    /// wait, after a timeout, and when a [`ClientStep::Wait`] is over. `rng` is the client's
    /// own generator (seeded from the run's seed).
    fn next(&mut self, now: Time, rng: &mut StdRng) -> ClientStep;
    /// An answer from the node at `from` to the request tagged `tag`: the one waited for, or
    /// a late one (an earlier attempt's, answered after its wait ended).
    fn on_response(&mut self, now: Time, from: SocketAddr, tag: u64, outcome: &Outcome);
    /// The node at `from`'s view of the group (`None`: it is not a member), and whether it
    /// is blocked there.
    fn on_members(
        &mut self,
        now: Time,
        from: SocketAddr,
        view: Option<&View>,
        blocked: Option<&Blocked>,
    ) {
        let _ = (now, from, view, blocked);
    }
    /// No answer from the node at `to` came in time for the request tagged `tag` (`None`: a
    /// members query).
    fn on_timeout(&mut self, now: Time, to: SocketAddr, tag: Option<u64>);
    /// The client, for the test to take what it recorded after the run.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// What a client factory is told about the client it makes.
#[derive(Clone, Debug)]
pub struct ClientStart {
    /// The client's number in the run, from 0.
    pub index: usize,
    /// Its identity ([`CLIENT_NODE_ID`] and a seeded client id).
    pub id: ProcessId,
    /// Its address on the memory network.
    pub addr: SocketAddr,
    /// The nodes' addresses (the seeds a front end is configured with).
    pub nodes: Vec<SocketAddr>,
}

/// The simulated clients of a run: how many, and how each is made.
#[derive(Clone)]
pub struct ClientFactory {
    /// A name for traces and comparisons.
    pub name: &'static str,
    /// How many clients.
    pub count: usize,
    make: Arc<dyn Fn(ClientStart) -> Box<dyn SimulatedClient> + Send + Sync>,
}

impl ClientFactory {
    /// `count` clients, each made by `make`.
    pub fn new(
        name: &'static str,
        count: usize,
        make: impl Fn(ClientStart) -> Box<dyn SimulatedClient> + Send + Sync + 'static,
    ) -> Self {
        ClientFactory {
            name,
            count,
            make: Arc::new(make),
        }
    }
}

impl fmt::Debug for ClientFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} x{}", self.name, self.count)
    }
}

/// Factories compare by name and count.
impl PartialEq for ClientFactory {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.count == other.count
    }
}

/// What the clients did and what became of the services' processes in a run (or summed over
/// a sweep with [`ClientStats::add`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Request frames sent (retransmissions included).
    pub requests: u64,
    /// Answers `Ok` (the service's reply).
    pub ok: u64,
    /// Answers refused, by kind ([`refusal_kind`]).
    pub refused: BTreeMap<&'static str, u64>,
    /// Waits that ended without an answer.
    pub timeouts: u64,
    /// Answers that came after their wait ended (or a second time).
    pub late: u64,
    /// Members queries sent.
    pub members_requests: u64,
    /// Members answers received.
    pub members_answers: u64,
    /// Answer frames the client's codec refused as replays (the network's duplicates).
    pub replays_refused: u64,
    /// Services that stopped their process (fail-stop).
    pub service_stops: u64,
    /// Crashes after which a service's disk was kept for the next start.
    pub disks_kept: u64,
    /// Of those, crashes that lost power (unsynced writes gone).
    pub power_losses: u64,
}

/// A short name for the kind of a refusal (its variant, and a busy member's reason).
pub fn refusal_kind(refusal: &Refusal) -> &'static str {
    match refusal {
        Refusal::NotMember => "not a member",
        Refusal::NoService => "no service",
        Refusal::NotPrimary { .. } => "not the primary",
        Refusal::Blocked(_) => "blocked",
        Refusal::TooLarge { .. } => "too large",
        Refusal::Busy(BusyReason::ViewChange) => "busy: view change",
        Refusal::Busy(BusyReason::Overloaded) => "busy: overloaded",
        Refusal::Busy(BusyReason::Joining) => "busy: joining",
        Refusal::Malformed(_) => "malformed",
    }
}

impl ClientStats {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &ClientStats) {
        self.requests += other.requests;
        self.ok += other.ok;
        for (kind, n) in &other.refused {
            *self.refused.entry(kind).or_default() += n;
        }
        self.timeouts += other.timeouts;
        self.late += other.late;
        self.members_requests += other.members_requests;
        self.members_answers += other.members_answers;
        self.replays_refused += other.replays_refused;
        self.service_stops += other.service_stops;
        self.disks_kept += other.disks_kept;
        self.power_losses += other.power_losses;
    }

    /// Whether nothing was counted (a run without clients or disks).
    pub fn is_empty(&self) -> bool {
        *self == ClientStats::default()
    }
}

impl fmt::Display for ClientStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "clients: {} requests sent, {} answered ok, {} refused, {} timeouts, {} late answers, \
             {} members queries ({} answered), {} answer replays refused",
            self.requests,
            self.ok,
            self.refused.values().sum::<u64>(),
            self.timeouts,
            self.late,
            self.members_requests,
            self.members_answers,
            self.replays_refused
        )?;
        for (kind, n) in &self.refused {
            writeln!(f, "  refused, {kind:<40} {n:>10}")?;
        }
        write!(
            f,
            "services: {} fail-stops, {} crashes kept a disk ({} lost power)",
            self.service_stops, self.disks_kept, self.power_losses
        )
    }
}

/// What a client waits for.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    to: SocketAddr,
    /// The request's tag; `None` for a members query.
    tag: Option<u64>,
}

/// A client in the world.
pub(super) struct SimClient {
    id: ProcessId,
    addr: SocketAddr,
    codec: FrameCodec,
    endpoint: MemoryEndpoint,
    behaviour: Box<dyn SimulatedClient>,
    rng: StdRng,
    /// When it is next asked for a step (or its wait ends).
    pub(super) wake: Time,
    waiting: Option<Waiting>,
    pub(super) done: bool,
}

/// Salt of the clients' generators, apart from the scenario's and the world's.
const CLIENT_SALT: u64 = 0xc11e_a7f5;

impl Simulation {
    /// The clients `config.clients` asks for, at 10.0.1.k:9000, idle from the start.
    pub(super) fn make_clients(&mut self) {
        let Some(factory) = self.config.clients.clone() else {
            return;
        };
        let nodes: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        for index in 0..factory.count {
            let mut rng = StdRng::seed_from_u64(self.config.seed ^ CLIENT_SALT ^ index as u64);
            let id = ProcessId {
                node: CLIENT_NODE_ID,
                incarnation: Incarnation(rng.gen()),
            };
            let addr = SocketAddr::from(([10, 0, 1, (index + 1) as u8], 9000));
            let behaviour = (factory.make)(ClientStart {
                index,
                id,
                addr,
                nodes: nodes.clone(),
            });
            self.clients.push(SimClient {
                id,
                addr,
                codec: FrameCodec::new(Some(self.key.clone()), FRAME_BYTES_MAX_DEFAULT),
                endpoint: MemoryEndpoint::new(addr, self.network.clone()),
                behaviour,
                rng,
                wake: Time::ZERO,
                waiting: None,
                done: false,
            });
        }
    }

    /// The client whose wake time is due: its wait ends without an answer, or it is asked
    /// for its next step.
    pub(super) fn client_step(&mut self) {
        let now = self.now;
        let Some(k) = (0..self.clients.len())
            .filter(|&k| !self.clients[k].done)
            .min_by_key(|&k| self.clients[k].wake)
        else {
            return;
        };
        let client = &mut self.clients[k];
        if let Some(waiting) = client.waiting.take() {
            self.clients_stats.timeouts += 1;
            client.behaviour.on_timeout(now, waiting.to, waiting.tag);
        }
        let step = client.behaviour.next(now, &mut client.rng);
        let (to, body, timeout, tag) = match step {
            ClientStep::Request {
                to,
                tag,
                payload,
                timeout,
            } => {
                self.clients_stats.requests += 1;
                (to, Body::Request { tag, payload }, timeout, Some(tag))
            }
            ClientStep::Members { to, timeout } => {
                self.clients_stats.members_requests += 1;
                (to, Body::MembersRequest, timeout, None)
            }
            ClientStep::Wait(duration) => {
                // At least a microsecond, so a client that keeps waiting lets time pass.
                client.wake = now + duration.max(Duration::from_micros(1));
                return;
            }
            ClientStep::Done => {
                client.done = true;
                return;
            }
        };
        let envelope = Envelope {
            version: PROTOCOL_VERSION,
            sender: client.id,
            // A client does not listen: answers come back on the connection.
            sender_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            seq: 0,
            group: Some(self.group.clone()),
            body,
        };
        let frame = client.codec.seal(envelope).expect("a small request seals");
        let _ = client.endpoint.send(to, frame);
        client.waiting = Some(Waiting { to, tag });
        client.wake = now + timeout.max(Duration::from_micros(1));
    }

    /// A frame for a client's address: an answer from a node.
    pub(super) fn client_receive(&mut self, datagram: Datagram) {
        let Some(k) = self.clients.iter().position(|c| c.addr == datagram.to) else {
            return;
        };
        let now = self.now;
        let client = &mut self.clients[k];
        let mut bytes = BytesMut::from(&datagram.frame[..]);
        let envelope = match client.codec.decoder().decode(&mut bytes) {
            Ok(Some(envelope)) => envelope,
            Err(FrameError::Replayed { .. }) => {
                self.clients_stats.replays_refused += 1;
                return;
            }
            // A restarted node's earlier run answering late, or a frame past the window.
            Err(FrameError::StaleIncarnation { .. } | FrameError::TooOld { .. }) => return,
            other => {
                let detail = format!(
                    "answer from {} to client {} refused: {other:?}",
                    datagram.from, client.id
                );
                self.checker_violation("frame integrity", detail);
                return;
            }
        };
        let from = datagram.from;
        let waited = client.waiting.filter(|w| w.to == from);
        let ends_wait = match &envelope.body {
            Body::Response { tag, outcome } => {
                match outcome {
                    Ok(_) => self.clients_stats.ok += 1,
                    Err(refusal) => {
                        *self
                            .clients_stats
                            .refused
                            .entry(refusal_kind(refusal))
                            .or_default() += 1
                    }
                }
                client.behaviour.on_response(now, from, *tag, outcome);
                waited.is_some_and(|w| w.tag == Some(*tag))
            }
            Body::MembersResponse { view, blocked } => {
                self.clients_stats.members_answers += 1;
                client
                    .behaviour
                    .on_members(now, from, view.as_ref(), blocked.as_ref());
                waited.is_some_and(|w| w.tag.is_none())
            }
            _ => false,
        };
        if ends_wait {
            client.waiting = None;
            client.wake = now;
        } else {
            self.clients_stats.late += 1;
        }
    }

    /// The clients' addresses, each placed on a random side of a partition into `parts`.
    pub(super) fn client_sides(&mut self, parts: usize) -> Vec<(usize, SocketAddr)> {
        let addrs: Vec<SocketAddr> = self.clients.iter().map(|c| c.addr).collect();
        addrs
            .into_iter()
            .map(|a| (self.aux_rng.gen_range(0..parts.max(1)), a))
            .collect()
    }

    /// The clients' behaviours, at the end of the run, for the report.
    pub(super) fn take_clients(&mut self) -> Vec<Box<dyn SimulatedClient>> {
        std::mem::take(&mut self.clients)
            .into_iter()
            .map(|c| c.behaviour)
            .collect()
    }
}
