//! Recorded client histories and the consistency checkers that judge them.
//!
//! A history is what clients saw: for each operation, when it was invoked, and whether and
//! when it returned, with what. It is stored as JSON lines, one [`Event`] per line, in the
//! order they were recorded:
//!
//! ```text
//! {"client":1,"id":1,"kind":"invoke","op":{"put":{"key":"x","value":"1"}},"time_ns":100}
//! {"client":1,"id":1,"kind":"ok","result":"written","time_ns":250}
//! {"client":2,"id":1,"kind":"invoke","op":{"get":{"key":"x"}},"time_ns":300}
//! {"client":2,"id":1,"kind":"info","error":"timeout","time_ns":900}
//! ```
//!
//! - `client` names one client session (a front end); it has at most one operation
//!   outstanding, so its operations are in program order. Concurrent threads are distinct
//!   clients.
//! - `id` is the request's sequence number at that client: `(client, id)` is the request id.
//! - `kind`: `invoke` (carries `op`), then exactly one of `ok` (carries `result`: the operation
//!   took effect once and returned it), `fail` (it certainly did not take effect, e.g. a typed
//!   refusal before execution) or `info` (unknown: a timeout, a crash of the client; it may or
//!   may not take effect, at any time after its invocation). An invocation with no completion
//!   by the end of the history counts as `info`.
//! - `time_ns`: a clock common to all clients (the simulator's, or one process's monotonic
//!   clock); only its order matters. At equal times an invocation counts as concurrent with a
//!   completion (the permissive choice).
//! - `error`: optional text on `fail` and `info`.
//!
//! `op` and `result` are the state machine's serde types ([`crate::state_machine`]).
//!
//! The checkers: [`linearizability::check`] (Wing–Gong search with Lowe's memoisation, as
//! Porcupine, split per key) and [`sequential::check`] (program order only), both over a
//! [`Model`] ([`StateMachineModel`] adapts any [`StateMachine`]), both bounded by
//! [`SearchLimits`] and answering "unknown" instead of running on; and [`causal::check`]
//! (causal consistency of a key-value history with unique written values: a graph check, no
//! search).
//!
//! [`StateMachine`]: crate::state_machine::StateMachine

pub mod causal;
pub mod linearizability;
pub mod model;
pub mod sequential;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use model::{Model, StateMachineModel};

/// What happened to an operation, as one line of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The client issued the operation.
    Invoke,
    /// It took effect and returned `result`.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown whether it took effect (timeout, crash).
    Info,
}

/// One line of a recorded history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event<O, R> {
    /// The client session.
    pub client: u64,
    /// The request's sequence number at that client.
    pub id: u64,
    /// What happened.
    pub kind: EventKind,
    /// The operation (on `invoke`; may be repeated on completions).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub op: Option<O>,
    /// The result (on `ok`).
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    pub result: Option<R>,
    /// Why, on `fail` and `info` (free text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When, on the clock shared by all clients of the history.
    pub time_ns: u64,
}

fn none<T>() -> Option<T> {
    None
}

/// Whether a completed operation's result is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    /// It took effect and returned this.
    Ok(R),
    /// It may or may not have taken effect (an `info` or no completion).
    Pending,
}

/// An operation of a history, its invocation paired with its completion. Operations that
/// failed (`fail`) are left out: they did not take effect.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation<O, R> {
    /// The client session.
    pub client: u64,
    /// The request's sequence number at that client.
    pub id: u64,
    /// The operation.
    pub op: O,
    /// Its outcome.
    pub outcome: Outcome<R>,
    /// When it was invoked.
    pub invoke_ns: u64,
    /// When it returned `ok`; `None` when pending.
    pub complete_ns: Option<u64>,
}

impl<O, R> Operation<O, R> {
    /// The result, when known.
    pub fn result(&self) -> Option<&R> {
        match &self.outcome {
            Outcome::Ok(r) => Some(r),
            Outcome::Pending => None,
        }
    }
}

impl<O: fmt::Debug, R: fmt::Debug> fmt::Display for Operation<O, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} #{} {:?}", self.client, self.id, self.op)?;
        match (&self.outcome, self.complete_ns) {
            (Outcome::Ok(r), Some(t)) => {
                write!(f, " -> {:?} [{}..{} ns]", r, self.invoke_ns, t)
            }
            _ => write!(f, " -> pending [{}.. ns]", self.invoke_ns),
        }
    }
}

/// A history that is not well formed. Nothing was checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// A line is not a valid event.
    #[error("line {line}: {message}")]
    Json {
        /// The line number (from 1).
        line: usize,
        /// The JSON error.
        message: String,
    },
    /// An `invoke` without `op`.
    #[error("event {index}: client {client} request {id}: invoke without op")]
    InvokeWithoutOp {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The request.
        id: u64,
    },
    /// An `ok` without `result`.
    #[error("event {index}: client {client} request {id}: ok without result")]
    OkWithoutResult {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The request.
        id: u64,
    },
    /// A request invoked twice.
    #[error("event {index}: client {client} request {id} invoked twice")]
    DuplicateInvoke {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The request.
        id: u64,
    },
    /// A client invoked while another of its requests was outstanding.
    #[error("event {index}: client {client} invoked request {id} while request {outstanding} was outstanding")]
    ConcurrentInvoke {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The new request.
        id: u64,
        /// The outstanding one.
        outstanding: u64,
    },
    /// A completion of a request not outstanding (never invoked, or completed already).
    #[error("event {index}: client {client} request {id} completed but not outstanding")]
    UnexpectedCompletion {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The request.
        id: u64,
    },
    /// A completion earlier than its invocation.
    #[error("event {index}: client {client} request {id} completed before it was invoked")]
    CompletedBeforeInvoked {
        /// The event's position (from 0).
        index: usize,
        /// The client.
        client: u64,
        /// The request.
        id: u64,
    },
}

/// A recorded history: events in the order they were recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct History<O, R> {
    /// The events.
    pub events: Vec<Event<O, R>>,
}

impl<O, R> Default for History<O, R> {
    fn default() -> Self {
        History { events: Vec::new() }
    }
}

impl<O: Clone, R: Clone> History<O, R> {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an invocation.
    pub fn invoke(&mut self, client: u64, id: u64, op: O, time_ns: u64) {
        self.events.push(Event {
            client,
            id,
            kind: EventKind::Invoke,
            op: Some(op),
            result: None,
            error: None,
            time_ns,
        });
    }

    /// Records a successful completion.
    pub fn ok(&mut self, client: u64, id: u64, result: R, time_ns: u64) {
        self.events.push(Event {
            client,
            id,
            kind: EventKind::Ok,
            op: None,
            result: Some(result),
            error: None,
            time_ns,
        });
    }

    /// Records that the operation certainly did not take effect.
    pub fn fail(&mut self, client: u64, id: u64, error: impl Into<String>, time_ns: u64) {
        self.completion(client, id, EventKind::Fail, error.into(), time_ns);
    }

    /// Records that the outcome is unknown (timeout, crash).
    pub fn info(&mut self, client: u64, id: u64, error: impl Into<String>, time_ns: u64) {
        self.completion(client, id, EventKind::Info, error.into(), time_ns);
    }

    fn completion(&mut self, client: u64, id: u64, kind: EventKind, error: String, time_ns: u64) {
        self.events.push(Event {
            client,
            id,
            kind,
            op: None,
            result: None,
            error: Some(error),
            time_ns,
        });
    }

    /// Pairs invocations with completions, checking that the history is well formed. `fail`ed
    /// operations are left out; `info` and unanswered ones are [`Outcome::Pending`]. The
    /// result is in invocation order (the events' order).
    pub fn operations(&self) -> Result<Vec<Operation<O, R>>, HistoryError> {
        let mut ops: Vec<Option<Operation<O, R>>> = Vec::new();
        // (client, id) -> index in ops; client -> outstanding id.
        let mut index_of: HashMap<(u64, u64), usize> = HashMap::new();
        let mut outstanding: HashMap<u64, u64> = HashMap::new();
        for (index, e) in self.events.iter().enumerate() {
            let (client, id) = (e.client, e.id);
            match e.kind {
                EventKind::Invoke => {
                    let op =
                        e.op.clone()
                            .ok_or(HistoryError::InvokeWithoutOp { index, client, id })?;
                    if index_of.contains_key(&(client, id)) {
                        return Err(HistoryError::DuplicateInvoke { index, client, id });
                    }
                    if let Some(&o) = outstanding.get(&client) {
                        return Err(HistoryError::ConcurrentInvoke {
                            index,
                            client,
                            id,
                            outstanding: o,
                        });
                    }
                    outstanding.insert(client, id);
                    index_of.insert((client, id), ops.len());
                    ops.push(Some(Operation {
                        client,
                        id,
                        op,
                        outcome: Outcome::Pending,
                        invoke_ns: e.time_ns,
                        complete_ns: None,
                    }));
                }
                EventKind::Ok | EventKind::Fail | EventKind::Info => {
                    if outstanding.get(&client) != Some(&id) {
                        return Err(HistoryError::UnexpectedCompletion { index, client, id });
                    }
                    outstanding.remove(&client);
                    let slot = index_of[&(client, id)];
                    let op = ops[slot].as_mut().expect("outstanding operations are kept");
                    if e.time_ns < op.invoke_ns {
                        return Err(HistoryError::CompletedBeforeInvoked { index, client, id });
                    }
                    match e.kind {
                        EventKind::Ok => {
                            let result = e.result.clone().ok_or(HistoryError::OkWithoutResult {
                                index,
                                client,
                                id,
                            })?;
                            op.outcome = Outcome::Ok(result);
                            op.complete_ns = Some(e.time_ns);
                        }
                        EventKind::Fail => ops[slot] = None,
                        _ => {}
                    }
                }
            }
        }
        Ok(ops.into_iter().flatten().collect())
    }
}

impl<O: Serialize, R: Serialize> History<O, R> {
    /// Writes the history as JSON lines.
    pub fn write_json_lines(&self, mut out: impl Write) -> std::io::Result<()> {
        for e in &self.events {
            serde_json::to_writer(&mut out, e)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// The history as JSON lines.
    pub fn to_json_lines(&self) -> String {
        let mut out = Vec::new();
        self.write_json_lines(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }
}

impl<O: DeserializeOwned, R: DeserializeOwned> History<O, R> {
    /// Reads JSON lines (blank lines are skipped). The error names the first bad line.
    pub fn from_json_lines(text: &str) -> Result<Self, HistoryError> {
        let mut events = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let event = serde_json::from_str(line).map_err(|e| HistoryError::Json {
                line: n + 1,
                message: e.to_string(),
            })?;
            events.push(event);
        }
        Ok(History { events })
    }
}

/// How much search a checker may spend before answering "unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchLimits {
    /// Search steps (one tried placement of one operation) per checked part: a partition for
    /// linearizability, the whole history for sequential consistency.
    pub max_steps: u64,
}

impl Default for SearchLimits {
    /// One million steps: well under a second for per-key histories of a simulator run.
    fn default() -> Self {
        SearchLimits {
            max_steps: 1_000_000,
        }
    }
}
