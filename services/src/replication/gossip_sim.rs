//! Gossip replica managers in the deterministic simulator: simulated key-value front ends
//! that keep `prev` (a [`CausalToken`]), send it with every request and merge every reply's,
//! pass tokens to one another (client-to-client messages, recorded so the causal checker
//! orders the operations they connect), and at the end read every key at every node (the
//! replicas' convergence, seen from outside).
//!
//! A front end uses one replica manager (its *home*, by its index) and sends a quarter of
//! its operations to another one picked at random, so queries regularly reach an RM that has
//! not yet heard of the front end's updates and must wait for gossip. On a refusal or a
//! timeout it retransmits the same request id to the next node after a backoff.

use super::{decode, encode, CausalToken, Reply, Request, RequestId};
use crate::history::causal::ClientMessage;
use crate::history::History;
use crate::state_machine::kv::{KvOp, KvOutput};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::Rng;
use std::any::Any;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use viewsync::sim::client::{ClientFactory, ClientStart, ClientStep, SimulatedClient};
use viewsync::wire::{Outcome, Refusal};

use super::sim::FrontEndConfig;

/// Where front ends leave their latest token for others to pick up: per client session, the
/// token and the last operation completed when it was posted.
pub type TokenBoard = Arc<Mutex<BTreeMap<u64, (CausalToken, u64)>>>;

/// `count` gossip front ends sharing one [`TokenBoard`].
pub fn gossip_clients(count: usize, config: FrontEndConfig) -> ClientFactory {
    let board = TokenBoard::default();
    ClientFactory::new("gossip-kv", count, move |start| {
        Box::new(GossipFrontEnd::new(start, config.clone(), board.clone()))
    })
}

/// What a gossip front end counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GossipFrontEndStats {
    /// Operations invoked.
    pub invoked: u64,
    /// Answered.
    pub ok: u64,
    /// Given up (`info`).
    pub given_up: u64,
    /// Attempts after the first.
    pub retransmissions: u64,
    /// Operations sent away from the home RM.
    pub elsewhere: u64,
    /// Tokens taken from another front end.
    pub messages: u64,
    /// Final reads answered.
    pub final_reads_ok: u64,
}

#[derive(Clone, Debug)]
struct Call {
    seq: u64,
    payload: Bytes,
    invoked: Duration,
    tag: u64,
    target: SocketAddr,
    attempts: u32,
}

/// A simulated gossip front end (see the [module documentation](self)).
#[derive(Debug)]
pub struct GossipFrontEnd {
    session: u64,
    client: u64,
    nodes: Vec<SocketAddr>,
    home: SocketAddr,
    config: FrontEndConfig,
    board: TokenBoard,
    token: CausalToken,
    history: History<KvOp, KvOutput>,
    seq: u64,
    call: Option<Call>,
    final_read: Option<(SocketAddr, String)>,
    final_reads: Option<Vec<(SocketAddr, String)>>,
    /// Per node and key, the value the final read returned.
    finals: BTreeMap<(SocketAddr, String), Option<String>>,
    messages: Vec<ClientMessage>,
    pending_message: Option<(u64, u64)>,
    next_tag: u64,
    not_before: Duration,
    think: bool,
    anomalies: Vec<String>,
    stats: GossipFrontEndStats,
}

fn ns(t: Duration) -> u64 {
    t.as_nanos() as u64
}

impl GossipFrontEnd {
    /// The front end of client `start`.
    pub fn new(start: ClientStart, config: FrontEndConfig, board: TokenBoard) -> Self {
        let home = start.nodes[start.index % start.nodes.len()];
        GossipFrontEnd {
            session: start.index as u64 + 1,
            client: start.id.incarnation.0,
            nodes: start.nodes,
            home,
            config,
            board,
            token: CausalToken::default(),
            history: History::new(),
            seq: 0,
            call: None,
            final_read: None,
            final_reads: None,
            finals: BTreeMap::new(),
            messages: Vec::new(),
            pending_message: None,
            next_tag: 0,
            not_before: Duration::ZERO,
            think: true,
            anomalies: Vec::new(),
            stats: GossipFrontEndStats::default(),
        }
    }

    /// The history it recorded.
    pub fn history(&self) -> &History<KvOp, KvOutput> {
        &self.history
    }

    /// Its history's client number.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// The tokens it took from other front ends, as happens-before edges.
    pub fn messages(&self) -> &[ClientMessage] {
        &self.messages
    }

    /// Per node and key, what its final read there returned.
    pub fn final_values(&self) -> &BTreeMap<(SocketAddr, String), Option<String>> {
        &self.finals
    }

    /// Final reads not answered (every node and key until they start).
    pub fn final_reads_left(&self) -> usize {
        match &self.final_reads {
            None => self.nodes.len() * self.config.keys.len(),
            Some(left) => left.len() + usize::from(self.final_read.is_some()),
        }
    }

    /// Replies that did not decode or answered another request.
    pub fn anomalies(&self) -> &[String] {
        &self.anomalies
    }

    /// What it counted.
    pub fn stats(&self) -> GossipFrontEndStats {
        self.stats
    }

    fn next_node(&self, addr: SocketAddr) -> SocketAddr {
        let i = self.nodes.iter().position(|n| *n == addr).unwrap_or(0);
        self.nodes[(i + 1) % self.nodes.len()]
    }

    fn random_op(&mut self, rng: &mut StdRng) -> KvOp {
        let key = self.config.keys[rng.gen_range(0..self.config.keys.len())].clone();
        let value = format!("{}.{}", self.session, self.seq + 1);
        match rng.gen_range(0..100) {
            0..=44 => KvOp::put(key, value),
            45..=89 => KvOp::get(key),
            _ => KvOp::delete(key),
        }
    }

    fn begin(&mut self, op: KvOp, target: SocketAddr, now: Duration) {
        self.seq += 1;
        if let Some(from) = self.pending_message.take() {
            self.messages.push(ClientMessage {
                from,
                to: (self.session, self.seq),
            });
        }
        let request = Request {
            id: RequestId {
                client: self.client,
                seq: self.seq,
            },
            machine: "kv".to_string(),
            after: 0,
            causal: Some(self.token.clone()),
            op: op.clone(),
        };
        self.history
            .invoke(self.session, self.seq, op.clone(), ns(now));
        self.stats.invoked += 1;
        self.call = Some(Call {
            seq: self.seq,
            payload: encode(&request),
            invoked: now,
            tag: 0,
            target,
            attempts: 0,
        });
    }

    /// Takes another front end's token from the board, if one is there.
    fn take_message(&mut self, rng: &mut StdRng) {
        let board = self.board.lock().unwrap_or_else(|e| e.into_inner());
        let others: Vec<(&u64, &(CausalToken, u64))> =
            board.iter().filter(|(s, _)| **s != self.session).collect();
        if others.is_empty() {
            return;
        }
        let (sender, (token, op)) = others[rng.gen_range(0..others.len())];
        let (sender, token, op) = (*sender, token.clone(), *op);
        drop(board);
        self.token.merge(&token);
        self.pending_message = Some((sender, op));
        self.stats.messages += 1;
    }

    fn end_call(&mut self) {
        self.call = None;
        self.final_read = None;
        self.think = true;
    }
}

impl SimulatedClient for GossipFrontEnd {
    fn next(&mut self, now: Duration, rng: &mut StdRng) -> ClientStep {
        if std::mem::take(&mut self.think) {
            let pause = rng.gen_range(0..=self.config.think_max.as_micros() as u64);
            self.not_before = self.not_before.max(now + Duration::from_micros(pause));
        }
        if now < self.not_before {
            return ClientStep::Wait(self.not_before - now);
        }
        if let Some(call) = &self.call {
            if now.saturating_sub(call.invoked) >= self.config.give_up_after {
                let seq = call.seq;
                self.history.info(self.session, seq, "given up", ns(now));
                self.stats.given_up += 1;
                self.end_call();
                return ClientStep::Wait(Duration::from_micros(1));
            }
        } else if now < self.config.ops_until {
            if rng.gen_range(0..10) == 0 {
                self.take_message(rng);
            }
            let op = self.random_op(rng);
            let target = if rng.gen_range(0..4) == 0 {
                self.stats.elsewhere += 1;
                self.nodes[rng.gen_range(0..self.nodes.len())]
            } else {
                self.home
            };
            self.begin(op, target, now);
        } else {
            if now < self.config.final_reads_at {
                return ClientStep::Wait(self.config.final_reads_at - now);
            }
            let reads = self.final_reads.get_or_insert_with(|| {
                let mut reads = Vec::new();
                for node in &self.nodes {
                    for key in &self.config.keys {
                        reads.push((*node, key.clone()));
                    }
                }
                reads.reverse();
                reads
            });
            let Some((node, key)) = reads.pop() else {
                return ClientStep::Done;
            };
            self.begin(KvOp::get(key.clone()), node, now);
            self.final_read = Some((node, key));
        }
        self.next_tag += 1;
        let tag = self.next_tag;
        let timeout = self.config.timeout;
        let call = self.call.as_mut().expect("in hand");
        call.tag = tag;
        call.attempts += 1;
        if call.attempts > 1 {
            self.stats.retransmissions += 1;
        }
        ClientStep::Request {
            to: call.target,
            tag,
            payload: call.payload.clone(),
            timeout,
        }
    }

    fn on_response(&mut self, now: Duration, from: SocketAddr, tag: u64, outcome: &Outcome) {
        let Some(call) = &self.call else { return };
        if call.tag != tag {
            return;
        }
        match outcome {
            Ok(bytes) => {
                let reply: Reply<KvOutput> = match decode(bytes) {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.anomalies
                            .push(format!("undecodable reply from {from}: {e}"));
                        return;
                    }
                };
                if reply.id.client != self.client || reply.id.seq != call.seq {
                    self.anomalies
                        .push(format!("reply for another request {}", reply.id));
                    return;
                }
                match &reply.causal {
                    Some(token) => self.token.merge(token),
                    None => self
                        .anomalies
                        .push(format!("gossip reply without a token from {from}")),
                }
                let seq = call.seq;
                if let Some((node, key)) = self.final_read.take() {
                    // A final read must have been answered by the node it asked.
                    let KvOutput::Value(v) = &reply.output else {
                        self.anomalies
                            .push(format!("final read answered {:?}", reply.output));
                        return;
                    };
                    if from == node {
                        self.finals.insert((node, key), v.clone());
                        self.stats.final_reads_ok += 1;
                    }
                }
                self.history.ok(self.session, seq, reply.output, ns(now));
                self.stats.ok += 1;
                self.board
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(self.session, (self.token.clone(), seq));
                self.end_call();
            }
            Err(refusal) => {
                let next = match refusal {
                    // A final read stays with its node; anything else tries the next one.
                    _ if self.final_read.is_some() => call.target,
                    Refusal::TooLarge { .. } | Refusal::Malformed(_) => {
                        self.anomalies
                            .push(format!("request {} refused: {refusal}", call.seq));
                        call.target
                    }
                    _ => self.next_node(from),
                };
                if let Some(call) = &mut self.call {
                    call.target = next;
                }
                self.not_before = now + self.config.backoff;
            }
        }
    }

    fn on_members(
        &mut self,
        _now: Duration,
        _from: SocketAddr,
        _view: Option<&viewsync::View>,
        _blocked: Option<&viewsync::wire::Blocked>,
    ) {
    }

    fn on_timeout(&mut self, now: Duration, to: SocketAddr, _tag: Option<u64>) {
        let next = match self.final_read {
            Some(_) => to,
            None => self.next_node(to),
        };
        if let Some(call) = &mut self.call {
            call.target = next;
        }
        self.not_before = now + self.config.backoff;
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// Whether every final read of `key` returned the same value at every node, over all
/// front ends: `Err` names the disagreement.
pub fn converged(front_ends: &[&GossipFrontEnd]) -> Result<usize, String> {
    let mut seen: BTreeMap<&str, (SocketAddr, u64, &Option<String>)> = BTreeMap::new();
    let mut reads = 0;
    for fe in front_ends {
        for ((node, key), value) in fe.final_values() {
            reads += 1;
            match seen.get(key.as_str()) {
                Some((other, session, v)) if *v != value => {
                    return Err(format!(
                        "key {key:?}: client {} read {value:?} at {node}, client {session} read {v:?} at {other}",
                        fe.session()
                    ))
                }
                Some(_) => {}
                None => {
                    seen.insert(key, (*node, fe.session(), value));
                }
            }
        }
    }
    Ok(reads)
}
