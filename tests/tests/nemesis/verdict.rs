//! The verdict on a recorded history: the strategy's promised model, checked by the
//! checkers of `viewsync_services::history`, and no acknowledged write lost.
//!
//! The history ends with the *final reads*: one fresh front end (the client `final_reader`)
//! reads every shared key and every fresh key once the nemesis has stopped and the group has
//! recovered.
//!
//! - `Linearizable`: the whole history, final reads included, is linearizable.
//! - `Sequential`: the clients' history is sequentially consistent, and its updates (every
//!   operation but the clients' reads, which a member may answer from its own state) with
//!   the final reads are linearizable: the updates go through the primary or the total
//!   order, so they are.
//! - `Causal`: the history is causally consistent with the final reader's session coming
//!   after every client's last answered operation (as if each client had handed it its
//!   causal token): a final read returning a value overwritten in its causal past, or
//!   "absent" after a write, is a lost write.
//!
//! And for every model, explicitly: each acknowledged put of a fresh key is read back with
//! its value; and (except for `Causal`, whose updates are not ordered in real time) no
//! acknowledged update of a shared key is *lost*: the final value of the key was written by
//! an update that completed before the lost one was invoked (so any order consistent with
//! real time puts the lost one later), or it is "absent" while every delete of the key
//! completed before the lost update was invoked.

use crate::record::{KvHistory, FRESH_PREFIX};
use crate::strategy::Model;
use std::collections::{BTreeMap, HashMap};
use viewsync_services::history::causal::{self, Causality, ClientMessage};
use viewsync_services::history::linearizability::{self, Linearizability};
use viewsync_services::history::model::StateMachineModel;
use viewsync_services::history::{sequential, Operation, Outcome, SearchLimits};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};

type KvOperation = Operation<KvOp, KvOutput>;

/// Lost writes named in a verdict at most.
const MAX_LOST_SHOWN: usize = 10;
/// Search steps the linearizability checker may spend per key.
const LINEARIZABILITY_STEPS: u64 = 20_000_000;
/// Search steps the sequential-consistency checker may spend on the whole history (its
/// memo grows with them: a million take some hundreds of megabytes)…
const SEQUENTIAL_STEPS: u64 = 1_000_000;
/// … which it tries only for histories of at most this many operations (five clients'
/// longer histories of stale reads exceed any budget that fits in memory).
const SEQUENTIAL_WHOLE_OPERATIONS: usize = 400;
/// … and on one key's operations, when the whole history is too much.
const PER_KEY_SEQUENTIAL_STEPS: u64 = 5_000_000;

/// Judges `history` by `model`; `Ok` with a one-line summary, `Err` naming every problem.
pub fn judge(model: Model, history: &KvHistory, final_reader: u64) -> Result<String, String> {
    let operations = history
        .operations()
        .map_err(|e| format!("the history is not well formed: {e}"))?;
    let mut problems = Vec::new();
    let consistency = match model {
        Model::Linearizable => linearizable(&operations, "the history"),
        Model::Sequential => {
            let clients: Vec<KvOperation> = operations
                .iter()
                .filter(|o| o.client != final_reader)
                .cloned()
                .collect();
            let updates: Vec<KvOperation> = operations
                .iter()
                .filter(|o| o.client == final_reader || !matches!(o.op, KvOp::Get { .. }))
                .cloned()
                .collect();
            sequentially_consistent(&clients).and_then(|sc| {
                linearizable(&updates, "the updates with the final reads")
                    .map(|lin| format!("{sc}; {lin}"))
            })
        }
        Model::Causal => causally_consistent(&operations, final_reader),
    };
    let consistency = consistency.unwrap_or_else(|e| {
        problems.push(e);
        String::new()
    });
    let (acknowledged, lost) = lost_writes(&operations, final_reader, model != Model::Causal);
    if lost.len() > MAX_LOST_SHOWN {
        problems.push(format!(
            "{} acknowledged writes lost; the first {MAX_LOST_SHOWN}:",
            lost.len()
        ));
    }
    problems.extend(lost.into_iter().take(MAX_LOST_SHOWN));
    if problems.is_empty() {
        Ok(format!(
            "{consistency}; none of {acknowledged} acknowledged writes lost"
        ))
    } else {
        Err(problems.join("\n"))
    }
}

fn linearizable(operations: &[KvOperation], what: &str) -> Result<String, String> {
    let model = StateMachineModel::new(KvStore::new());
    let limits = SearchLimits {
        max_steps: LINEARIZABILITY_STEPS,
    };
    match linearizability::check(&model, operations, limits) {
        Linearizability::Linearizable { partitions, steps } => Ok(format!(
            "{what}: linearizable ({} operations, {partitions} keys, {steps} steps)",
            operations.len()
        )),
        other => Err(format!("{what} is not shown linearizable: {other:#?}")),
    }
}

/// Sequential consistency of the clients' history: shown for the whole history when the
/// search finishes within [`SEQUENTIAL_STEPS`], and otherwise for each key's sub-history
/// (a necessary condition: sequential consistency is not compositional, so that is
/// reported as per key). A violation found either way fails.
fn sequentially_consistent(operations: &[KvOperation]) -> Result<String, String> {
    let model = StateMachineModel::new(KvStore::new());
    let limits = SearchLimits {
        max_steps: SEQUENTIAL_STEPS,
    };
    let whole = if operations.len() <= SEQUENTIAL_WHOLE_OPERATIONS {
        sequential::check(&model, operations, limits)
    } else {
        sequential::SequentialConsistency::Unknown {
            operations: operations.len(),
            steps: 0,
        }
    };
    match whole {
        sequential::SequentialConsistency::Consistent { steps, .. } => {
            return Ok(format!(
                "the clients' history: sequentially consistent ({} operations, {steps} steps)",
                operations.len()
            ))
        }
        sequential::SequentialConsistency::Unknown { .. } => {}
        other => {
            return Err(format!(
                "the clients' history is not sequentially consistent: {other:#?}"
            ))
        }
    }
    let mut by_key: BTreeMap<&str, Vec<KvOperation>> = BTreeMap::new();
    for o in operations {
        if !o.op.key().starts_with(FRESH_PREFIX) {
            by_key.entry(o.op.key()).or_default().push(o.clone());
        }
    }
    let mut steps = 0;
    for (key, ops) in &by_key {
        let limits = SearchLimits {
            max_steps: PER_KEY_SEQUENTIAL_STEPS,
        };
        match sequential::check(&model, ops, limits) {
            sequential::SequentialConsistency::Consistent { steps: s, .. } => steps += s,
            other => {
                return Err(format!(
                    "the clients' operations on {key} are not shown sequentially consistent: \
                     {other:#?}"
                ))
            }
        }
    }
    Ok(format!(
        "the clients' history: every key's operations sequentially consistent ({} operations, \
         {} keys, {steps} steps; the whole history is beyond the search's budget)",
        operations.len(),
        by_key.len()
    ))
}

fn causally_consistent(operations: &[KvOperation], final_reader: u64) -> Result<String, String> {
    let first_final = operations
        .iter()
        .find(|o| o.client == final_reader)
        .map(|o| (o.client, o.id));
    let mut last_answered: BTreeMap<u64, u64> = BTreeMap::new();
    for o in operations {
        if o.client != final_reader && matches!(o.outcome, Outcome::Ok(_)) {
            last_answered.insert(o.client, o.id);
        }
    }
    let messages: Vec<ClientMessage> = match first_final {
        Some(to) => last_answered
            .into_iter()
            .map(|(client, id)| ClientMessage {
                from: (client, id),
                to,
            })
            .collect(),
        None => Vec::new(),
    };
    match causal::check_with_messages(operations, &messages) {
        Causality::Consistent { operations, edges } => Ok(format!(
            "causally consistent ({operations} operations, {edges} edges, the final reads after every client)"
        )),
        bad => Err(format!("the history is not causally consistent: {bad}")),
    }
}

/// What an update writes to its key when it takes effect: `Some(value)`, or `None` for a
/// delete; not an update (a read, a compare-and-swap that did not match): no entry.
fn written(op: &KvOperation) -> Option<Option<&str>> {
    match (&op.op, &op.outcome) {
        (KvOp::Put { value, .. }, _) => Some(Some(value)),
        (KvOp::Delete { .. }, _) => Some(None),
        (KvOp::Cas { new, .. }, Outcome::Ok(KvOutput::Swapped) | Outcome::Pending) => {
            Some(Some(new))
        }
        _ => None,
    }
}

/// The acknowledged writes, and a line per one found lost (see the module documentation).
fn lost_writes(
    operations: &[KvOperation],
    final_reader: u64,
    real_time_order: bool,
) -> (usize, Vec<String>) {
    let mut finals: HashMap<&str, Option<&str>> = HashMap::new();
    for o in operations.iter().filter(|o| o.client == final_reader) {
        if let (KvOp::Get { key }, Outcome::Ok(KvOutput::Value(v))) = (&o.op, &o.outcome) {
            finals.insert(key, v.as_deref());
        }
    }
    let updates: Vec<&KvOperation> = operations
        .iter()
        .filter(|o| o.client != final_reader && written(o).is_some())
        .collect();
    let acknowledged: Vec<&KvOperation> = updates
        .iter()
        .copied()
        .filter(|o| matches!(o.outcome, Outcome::Ok(_)))
        .collect();
    let mut lost = Vec::new();
    for w in &acknowledged {
        let key = w.op.key();
        let Some(final_value) = finals.get(key) else {
            lost.push(format!("acknowledged write never read back: {w}"));
            continue;
        };
        if key.starts_with(FRESH_PREFIX) {
            if *final_value != written(w).flatten() {
                lost.push(format!(
                    "acknowledged write of a fresh key read back as {final_value:?}: {w}"
                ));
            }
            continue;
        }
        if !real_time_order {
            continue;
        }
        // The updates that may have produced the final value: its one writer (values are
        // unique), or for "absent" any delete (or the initial state, if nothing else took
        // effect). Lost if each of them completed before `w` was invoked.
        let explained = updates
            .iter()
            .filter(|u| u.op.key() == key && written(u) == Some(*final_value))
            .any(|u| !completed_before(u, w));
        if !explained {
            lost.push(format!(
                "acknowledged write lost: {w}; the key's final value {final_value:?} was written \
                 only by updates that completed before it was invoked"
            ));
        }
    }
    (acknowledged.len(), lost)
}

/// Whether `a` was answered before `b` was invoked.
fn completed_before(a: &KvOperation, b: &KvOperation) -> bool {
    a.complete_ns.is_some_and(|t| t < b.invoke_ns)
}
