//! The front end (the reference notes' FE, sections 4 and 5): what makes replication
//! transparent to an application. The application sees one object; it calls an operation and
//! gets exactly one result, whichever replica manager served it, however many times the
//! request had to be sent.
//!
//! A [`FrontEnd`] speaks to one group running one state machine:
//!
//! - **Request ids.** It picks a random 64-bit client id when it starts and numbers its calls
//!   1, 2, 3...; every request carries its [`RequestId`] `{ client, seq }`, and every
//!   retransmission of a call carries the same id, so a replica manager that executed it
//!   answers from its stored response instead of executing it twice. It also carries
//!   `after`, the highest [`Reply::position`] this front end has seen, so a backup serving
//!   reads first applies this front end's own updates.
//! - **`prev` for gossip.** It keeps a [`CausalToken`] (the gossip strategy's vector
//!   timestamp of the latest state seen), merges every reply's into it and sends it with
//!   every request; [`FrontEnd::causal_token`] / [`FrontEnd::observe`] pass it between front
//!   ends whose clients talk to each other. Other strategies never return one.
//! - **Resolution through any node.** It asks its seeds (and then the members it learnt of)
//!   for the group's view ([`Client::group_status`]); the view's first member is the primary.
//! - **Retransmission to the next candidate.** Refusals and silences are handled by the
//!   sans-IO [`policy`]: follow a `NotPrimary` hint at once; after `Busy`, `Blocked` and the
//!   like, wait a backoff and resolve the view again; after a timeout or a refused
//!   connection, suspect the member and go to the next candidate; give up at once on a
//!   request no member would take (too large, malformed); give up at the deadline.
//! - **One result per call.** The first reply to the call's request id is its result.
//!
//! It keeps one [`Client`] (one authenticated connection with an identity of its own) per
//! node address and reuses it for every call. Calls go one at a time (`&mut self`); for calls
//! in parallel, use one front end per concurrent caller (each is a client of its own in the
//! recorded histories).
//!
//! **Unknown outcomes.** A call that ends in [`FrontEndError::Unavailable`] (or
//! [`FrontEndError::BadReply`]) may or may not have been executed, and may still be: its
//! request may be on its way or in a member's hands. The caller must treat it as such
//! ([`FrontEndError::outcome_unknown`]); a recorded history writes it as `info`, never as
//! `fail`. A [`FrontEndError::Refused`] or [`FrontEndError::Rejected`] call was executed
//! nowhere (`fail`).
//!
//! ```no_run
//! use viewsync::GroupName;
//! use viewsync_services::frontend::{FrontEnd, FrontEndConfig};
//! use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = FrontEndConfig::new(
//!     GroupName::new("kv")?,
//!     vec!["127.0.0.1:7701".parse()?, "127.0.0.1:7702".parse()?],
//!     "kv",
//! );
//! let mut front_end = FrontEnd::<KvStore>::new(config);
//! front_end.call(KvOp::put("x", "1")).await?;
//! assert_eq!(front_end.call(KvOp::get("x")).await?, KvOutput::value("1"));
//! # Ok(())
//! # }
//! ```

pub mod policy;
mod quorum;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use viewsync::client::{Client, ClientError};
use viewsync::wire::{ClusterKey, Refusal};
use viewsync::GroupName;

use crate::replication::{decode, encode, CausalToken, Reply, Request, RequestId};
use crate::state_machine::StateMachine;

pub use policy::{
    Event, GiveUp, Policy, PolicyConfig, Routing, Step, ATTEMPT_TIMEOUT_DEFAULT, BACKOFF_MAX,
    BACKOFF_MIN, DEADLINE_DEFAULT,
};
pub use quorum::SignedReplies;

/// What a [`FrontEnd`] speaks to, and how.
#[derive(Clone)]
pub struct FrontEndConfig {
    /// The group.
    pub group: GroupName,
    /// Nodes to resolve the group through (any nodes that are members, or were).
    pub seeds: Vec<SocketAddr>,
    /// The cluster key (keyed clusters take no request without it).
    pub key: Option<ClusterKey>,
    /// The state machine the group runs (`"kv"`, `"bank"`): a group running another one
    /// refuses the requests as malformed.
    pub machine: String,
    /// Where requests go.
    pub routing: Routing,
    /// How long one exchange with a node waits for its answer (default 2 s).
    pub attempt_timeout: Duration,
    /// How long a call tries before it gives up with [`FrontEndError::Unavailable`]
    /// (default 30 s).
    pub deadline: Duration,
    /// Under the Byzantine strategy: send every request to every replica manager and take
    /// the reply `f + 1` of them signed (see [`SignedReplies`]); `routing` is then unused.
    /// `None` (the default): one replica manager's reply is the result.
    pub signed_replies: Option<SignedReplies>,
}

impl FrontEndConfig {
    /// A configuration with the defaults: no key, [`Routing::Primary`], attempts of
    /// [`ATTEMPT_TIMEOUT_DEFAULT`], calls of at most [`DEADLINE_DEFAULT`].
    pub fn new(group: GroupName, seeds: Vec<SocketAddr>, machine: impl Into<String>) -> Self {
        FrontEndConfig {
            group,
            seeds,
            key: None,
            machine: machine.into(),
            routing: Routing::Primary,
            attempt_timeout: ATTEMPT_TIMEOUT_DEFAULT,
            deadline: DEADLINE_DEFAULT,
            signed_replies: None,
        }
    }
}

impl std::fmt::Debug for FrontEndConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEndConfig")
            .field("group", &self.group)
            .field("seeds", &self.seeds)
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("machine", &self.machine)
            .field("routing", &self.routing)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline", &self.deadline)
            .field("signed_replies", &self.signed_replies)
            .finish()
    }
}

/// Why a call returned no result.
#[derive(Debug, thiserror::Error)]
pub enum FrontEndError {
    /// A member refused the request itself (too large, malformed, for another state
    /// machine): it was executed nowhere, and retrying it would not help.
    #[error("refused by the group: {0}")]
    Refused(Refusal),
    /// No member answered the call in time (none reachable, or all refusing for the time
    /// being: busy, blocked, changing view). **The outcome is unknown**: the request may have
    /// been executed (its reply lost), and may still be.
    #[error(
        "no member of group {group} reachable through {} ({attempts} attempts): {last} \
         (the request may or may not have been executed)",
        join(.tried)
    )]
    Unavailable {
        /// The group.
        group: GroupName,
        /// The nodes tried, in the order first tried.
        tried: Vec<SocketAddr>,
        /// How many exchanges (requests and view queries) were started.
        attempts: u32,
        /// The last problem met.
        last: String,
    },
    /// A node refused the request's frame (a wrong or missing cluster key): nothing was
    /// executed.
    #[error("{node} refused the request: {reason} (nothing was executed; check --key-file)")]
    Rejected {
        /// The node.
        node: SocketAddr,
        /// Its reason.
        reason: String,
    },
    /// A member's reply did not decode as this state machine's, or answered another
    /// request. **The outcome is unknown.**
    #[error(
        "unreadable reply from {from} to request {id}: {reason} \
         (the request may or may not have been executed)"
    )]
    BadReply {
        /// The member.
        from: SocketAddr,
        /// The request.
        id: RequestId,
        /// What was wrong.
        reason: String,
    },
}

impl FrontEndError {
    /// Whether the call may have been executed all the same (record it as `info` in a
    /// history); `false`: it certainly was not (`fail`).
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            FrontEndError::Unavailable { .. } | FrontEndError::BadReply { .. }
        )
    }
}

fn join(addrs: &[SocketAddr]) -> String {
    if addrs.is_empty() {
        return String::from("no address");
    }
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The front end of a replicated state machine `S` (see the [module documentation](self)).
pub struct FrontEnd<S: StateMachine> {
    config: FrontEndConfig,
    policy: Policy,
    /// One long-lived client per node address.
    clients: HashMap<SocketAddr, Client>,
    client_id: u64,
    /// The last call's sequence number (0 before the first).
    seq: u64,
    last_position: u64,
    /// The members of the last view learnt (for calls to every replica manager).
    members: Vec<viewsync::Member>,
    /// Signed replies that did not count (see [`FrontEnd::rejected_replies`]).
    rejected_replies: u64,
    /// The gossip strategy's `prev`: the latest state replies (and observed peers) showed.
    causal: CausalToken,
    epoch: tokio::time::Instant,
    machine: PhantomData<fn() -> S>,
}

impl<S: StateMachine> FrontEnd<S> {
    /// A front end with a fresh random client id. Connects with the first call.
    pub fn new(config: FrontEndConfig) -> Self {
        let policy = Policy::new(
            PolicyConfig {
                routing: config.routing,
                attempt_timeout: config.attempt_timeout,
                deadline: config.deadline,
                ..PolicyConfig::default()
            },
            config.seeds.clone(),
            rand::random(),
        );
        FrontEnd {
            config,
            policy,
            clients: HashMap::new(),
            client_id: rand::random(),
            seq: 0,
            last_position: 0,
            members: Vec::new(),
            rejected_replies: 0,
            causal: CausalToken::default(),
            epoch: tokio::time::Instant::now(),
            machine: PhantomData,
        }
    }

    /// This front end's client id (the `client` of its request ids).
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The highest position of the replicated sequence a reply has shown this front end (0
    /// before the first reply): sent as every request's `after`.
    pub fn last_position(&self) -> u64 {
        self.last_position
    }

    /// Under [`SignedReplies`]: how many replies did not count because they did not verify
    /// (an unlisted signer, a forged or altered signature, not a signed reply at all). A
    /// correct group gives none.
    pub fn rejected_replies(&self) -> u64 {
        self.rejected_replies
    }

    /// The causal token to hand another front end this client talks to (the gossip
    /// strategy's `prev`, merged over every reply): that front end [`FrontEnd::observe`]s it,
    /// and its later requests are causally after everything this one has seen. Empty under
    /// the other strategies.
    pub fn causal_token(&self) -> CausalToken {
        self.causal.clone()
    }

    /// Merges a token another front end passed ([`FrontEnd::causal_token`]) into this one's
    /// `prev`: client-to-client causality (the reference notes' section 21).
    pub fn observe(&mut self, token: &CausalToken) {
        self.causal.merge(token);
    }

    /// The id the next call's request will carry (for recording it in a history before the
    /// call).
    pub fn next_request_id(&self) -> RequestId {
        RequestId {
            client: self.client_id,
            seq: self.seq + 1,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FrontEndConfig {
        &self.config
    }

    /// The decision logic's state (the known view, the primary, the chosen member).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Calls `op` on the replicated object and returns its output: exactly one result per
    /// call, whatever the retransmissions. See [`FrontEndError`] for the failures; after
    /// [`FrontEndError::Unavailable`] the operation may or may not have been executed.
    pub async fn call(&mut self, op: S::Operation) -> Result<S::Output, FrontEndError> {
        self.seq += 1;
        let id = RequestId {
            client: self.client_id,
            seq: self.seq,
        };
        let read_only = S::is_read_only(&op);
        let payload = encode(&Request {
            id,
            machine: self.config.machine.clone(),
            after: self.last_position,
            op,
            causal: (self.causal != CausalToken::default()).then(|| self.causal.clone()),
        });
        if let Some(signed) = self.config.signed_replies.clone() {
            return self.call_signed(&signed, id, payload, read_only).await;
        }
        let group = self.config.group.clone();
        let mut step = self.policy.begin(self.now(), read_only);
        loop {
            let event = match step {
                Step::Send { to, timeout } => {
                    let client = self.client(to, timeout);
                    match client.call(&group, payload.clone()).await {
                        Ok(Ok(bytes)) => {
                            let done = self.policy.handle(self.now(), Event::Answered);
                            debug_assert_eq!(done, Step::Done);
                            return self.reply(to, id, &bytes);
                        }
                        Ok(Err(refusal)) => Event::Refused(refusal),
                        Err(error) => failure(error),
                    }
                }
                Step::Resolve { via, timeout } => {
                    match self.client(via, timeout).group_status(&group).await {
                        Ok(status) => Event::Status(status),
                        Err(error) => failure(error),
                    }
                }
                Step::Wait(duration) => {
                    tokio::time::sleep(duration).await;
                    Event::Waited
                }
                Step::Done => unreachable!("the policy ends a call only on its answer"),
                Step::GiveUp(give_up) => {
                    return Err(match give_up {
                        GiveUp::Refused { refusal, .. } => FrontEndError::Refused(refusal),
                        GiveUp::Rejected { node, reason } => {
                            FrontEndError::Rejected { node, reason }
                        }
                        GiveUp::Unavailable {
                            attempts,
                            tried,
                            last,
                        } => FrontEndError::Unavailable {
                            group,
                            tried,
                            attempts,
                            last,
                        },
                    })
                }
            };
            step = self.policy.handle(self.now(), event);
        }
    }

    /// Decodes the reply of `from` to request `id`.
    fn reply(
        &mut self,
        from: SocketAddr,
        id: RequestId,
        bytes: &[u8],
    ) -> Result<S::Output, FrontEndError> {
        let bad = |reason: String| FrontEndError::BadReply { from, id, reason };
        let reply: Reply<S::Output> = decode(bytes).map_err(bad)?;
        if reply.id != id {
            return Err(bad(format!("it answers request {}", reply.id)));
        }
        self.last_position = self.last_position.max(reply.position);
        if let Some(token) = &reply.causal {
            self.causal.merge(token);
        }
        Ok(reply.output)
    }

    /// The client of the node at `addr` (opened at first use), waiting at most `timeout`.
    fn client(&mut self, addr: SocketAddr, timeout: Duration) -> &mut Client {
        let key = &self.config.key;
        let client = self
            .clients
            .entry(addr)
            .or_insert_with(|| Client::new(addr, key.clone(), timeout));
        client.set_timeout(timeout);
        client
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
}

impl<S: StateMachine> std::fmt::Debug for FrontEnd<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontEnd")
            .field("config", &self.config)
            .field("client_id", &format_args!("{:016x}", self.client_id))
            .field("seq", &self.seq)
            .field("last_position", &self.last_position)
            .field("policy", &self.policy)
            .finish()
    }
}

/// The policy's event for a failed exchange: a refused frame is final (nothing executed, and
/// every node of the cluster would refuse it the same); anything else suspects the node.
fn failure(error: ClientError) -> Event {
    match error {
        ClientError::Refused { reason, .. } => Event::Rejected(reason),
        error => Event::Failed(error.to_string()),
    }
}
