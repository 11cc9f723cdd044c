//! **A counter-example, not a replication strategy to use.** Naive replication: every
//! replica executes each request at once on its local state and answers at once, reads and
//! writes alike, at whichever member the client talks to; its updates reach the others
//! lazily, batched and multicast at most every `lazy` interval, and the others apply them
//! when delivered, in whatever order that leaves them.
//!
//! **It is neither linearizable nor sequentially consistent**, and it exists to show why
//! (the reference notes' section 7 bank example, discussed in sections 8 and 9). Accounts
//! `x` and `y` start at 0:
//!
//! - client 1 calls `setBalance(x, 1)` at replica B, then `setBalance(y, 2)` at replica A
//!   (B "failed", or was simply farther away);
//! - client 2 calls `getBalance(y)` at A and gets 2, then `getBalance(x)` at A and gets 0,
//!   because B's update has not reached A yet.
//!
//! No single copy ever held `y = 2` with `x = 0`, and no interleaving of the two clients'
//! programs produces these answers: client 2 saw the later write and missed the earlier one.
//! The tests replay exactly this history and the checkers of [`crate::history`] reject it.
//! Nothing waits for durability and nothing deduplicates retransmissions either: a request
//! sent twice is executed twice. Replicas converge only in the sense that every update
//! reaches everyone eventually, and updates that do not commute leave them different.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use viewsync::runtime::{ClientRequest, ServiceEvent};
use viewsync::wire::{BusyReason, Refusal};
use viewsync::{GroupName, ProcessId};

use super::{
    decode, decode_request, encode, Action, ReplicaCore, Reply, Request, RequestId, StoreError,
};
use crate::state_machine::StateMachine;

/// A naive replica's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaiveConfig {
    /// This member.
    pub me: ProcessId,
    /// The group it serves.
    pub group: GroupName,
    /// The state machine's name in requests (`"kv"` or `"bank"`).
    pub machine: String,
    /// Local updates are multicast at most this often (by [`ReplicaCore::tick`]).
    pub lazy: Duration,
}

impl NaiveConfig {
    /// The default propagation interval.
    pub const LAZY: Duration = Duration::from_millis(200);

    /// Propagation every 200 ms.
    pub fn new(me: ProcessId, group: GroupName, machine: impl Into<String>) -> Self {
        NaiveConfig {
            me,
            group,
            machine: machine.into(),
            lazy: Self::LAZY,
        }
    }
}

/// What naive replicas multicast.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NaiveMessage<Op> {
    /// Updates `origin` executed locally since its last batch, in its order.
    Updates {
        /// The replica that executed them (it skips its own batch when delivered).
        origin: ProcessId,
        /// The requests and their operations.
        updates: Vec<(RequestId, Op)>,
    },
}

/// The naive counter-example's core (see the module documentation).
pub struct NaiveReplica<S: StateMachine> {
    config: NaiveConfig,
    state: S,
    /// Operations applied here (local and remote): the `position` of replies, meaningful
    /// only at this replica.
    applied: u64,
    batch: Vec<(RequestId, S::Operation)>,
    last_flush: Duration,
    in_view: bool,
}

impl<S: StateMachine> NaiveReplica<S> {
    /// A replica starting from `initial` (e.g. `Bank::with_accounts(["x", "y"])`).
    pub fn new(config: NaiveConfig, initial: S) -> Self {
        NaiveReplica {
            config,
            state: initial,
            applied: 0,
            batch: Vec::new(),
            last_flush: Duration::ZERO,
            in_view: false,
        }
    }

    /// The local state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// Local updates not yet multicast.
    pub fn unpropagated(&self) -> usize {
        self.batch.len()
    }

    fn on_request(&mut self, request: &ClientRequest, out: &mut Vec<Action>) {
        let to = request.reply;
        let refusal = if request.group != self.config.group {
            Some(Refusal::NoService)
        } else if !self.in_view {
            Some(Refusal::Busy(BusyReason::Joining))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            return out.push(Action::Reply {
                to,
                outcome: Err(refusal),
            });
        }
        let request: Request<S::Operation> =
            match decode_request(&request.payload, &self.config.machine) {
                Ok(request) => request,
                Err(refusal) => {
                    return out.push(Action::Reply {
                        to,
                        outcome: Err(refusal),
                    })
                }
            };
        // The anomaly's cause: applied and answered here, propagated later.
        let output = self.state.apply(&request.op);
        if !S::is_read_only(&request.op) {
            self.applied += 1;
            self.batch.push((request.id, request.op));
        }
        out.push(Action::Reply {
            to,
            outcome: Ok(encode(&Reply {
                id: request.id,
                position: self.applied,
                output,
                causal: None,
            })),
        });
    }
}

impl<S: StateMachine> ReplicaCore for NaiveReplica<S> {
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        let mut out = Vec::new();
        match event {
            ServiceEvent::Request(request) => self.on_request(request, &mut out),
            ServiceEvent::Deliver { message, .. } => {
                match decode::<NaiveMessage<S::Operation>>(&message.payload) {
                    Ok(NaiveMessage::Updates { origin, updates }) => {
                        if origin != self.config.me {
                            for (_, op) in &updates {
                                self.state.apply(op);
                                self.applied += 1;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(sender = %message.sender, "naive batch does not decode: {e}")
                    }
                }
            }
            ServiceEvent::ViewChange { .. } => self.in_view = true,
            ServiceEvent::Restore { state, .. } => {
                self.state = S::restore(state)
                    .map_err(|e| StoreError(format!("naive replica state: {e}")))?;
            }
            ServiceEvent::Block { .. } | ServiceEvent::Direct { .. } => {}
        }
        Ok(out)
    }

    fn tick(&mut self, now: Duration) -> Result<Vec<Action>, StoreError> {
        if self.batch.is_empty() || now < self.last_flush + self.config.lazy {
            return Ok(Vec::new());
        }
        self.last_flush = now;
        let message = NaiveMessage::Updates {
            origin: self.config.me,
            updates: std::mem::take(&mut self.batch),
        };
        Ok(vec![Action::Multicast(encode(&message))])
    }

    fn snapshot(&self) -> Bytes {
        self.state.snapshot()
    }

    fn needs_sync(&self) -> bool {
        false
    }
}
