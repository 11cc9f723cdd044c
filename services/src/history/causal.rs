//! Causal consistency of a key-value history whose written values are unique (every `put` and
//! compare-and-swap writes a value no other operation writes; `delete` writes "absent").
//!
//! *Happens-before* is each client's session order together with *reads-from* (an operation
//! that returned a value comes after the write of that value), transitively closed. The
//! history is causally consistent when:
//!
//! 1. happens-before has no cycle (a read returning a value from its own causal future);
//! 2. every value read was written by some operation (nothing out of thin air);
//! 3. no read returns a value *overwritten* in its causal past: write `w` → write `w'` to the
//!    same key → read `r`, with `r` returning `w`'s value;
//! 4. no read returns "absent" while a write of the key causally precedes it, unless a
//!    delete of the key that is not itself overwritten in the read's causal past may be what
//!    it saw (the initial state counts as a delete before everything).
//!
//! Concurrent writes may be seen in different orders by different clients, so a causally
//! consistent history need not be sequentially consistent (the tests show one).
//!
//! Operations whose outcome is unknown (`info`, no completion) are kept when they are writes:
//! a later read may return their value, which proves they took effect. They are ordered after
//! their client's earlier operations but not before its later ones (a request that timed out
//! may still take effect after the client moved on), and they count as overwriting writes
//! only once some read returned their value. Unknown reads say nothing and are left out.

use std::collections::HashMap;
use std::fmt;

use super::{History, HistoryError, Operation, Outcome};
use crate::state_machine::kv::{KvOp, KvOutput};

type KvOperation = Operation<KvOp, KvOutput>;

/// What an operation wrote, if anything (and may have, for one whose outcome is unknown).
fn written(op: &KvOperation) -> Option<Option<&str>> {
    let pending = op.result().is_none();
    match (&op.op, op.result()) {
        (KvOp::Put { value, .. }, _) => Some(Some(value.as_str())),
        (KvOp::Cas { new, .. }, Some(KvOutput::Swapped)) => Some(Some(new.as_str())),
        (KvOp::Cas { new, .. }, None) if pending => Some(Some(new.as_str())),
        (KvOp::Delete { .. }, _) => Some(None),
        _ => None,
    }
}

/// What an operation read, if it returned a value of its key: `Some(None)` is "absent".
fn read(op: &KvOperation) -> Option<Option<&str>> {
    match (&op.op, op.result()?) {
        (KvOp::Get { .. }, KvOutput::Value(v)) => Some(v.as_deref()),
        (KvOp::Cas { .. }, KvOutput::CasMismatch { current }) => Some(current.as_deref()),
        (KvOp::Cas { expected, .. }, KvOutput::Swapped) => Some(expected.as_deref()),
        _ => None,
    }
}

/// Why a history is not causally consistent. Each names the operations involved.
#[derive(Debug, Clone, PartialEq)]
pub enum CausalViolation {
    /// Happens-before has a cycle through these operations.
    Cycle(Vec<KvOperation>),
    /// A read returned a value no operation wrote.
    ThinAir {
        /// The read.
        read: KvOperation,
    },
    /// `read` returned `write`'s value although `overwrite` (same key) is causally between
    /// them.
    Overwritten {
        /// The write whose value was read.
        write: KvOperation,
        /// A later write of the same key, causally before the read.
        overwrite: KvOperation,
        /// The read.
        read: KvOperation,
    },
    /// `read` returned "absent" although `write` of its key causally precedes it and every
    /// delete of the key (and the initial state) is overwritten in its causal past.
    AbsentAfterWrite {
        /// A write of the key causally before the read.
        write: KvOperation,
        /// The read.
        read: KvOperation,
    },
}

impl fmt::Display for CausalViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CausalViolation::Cycle(ops) => {
                writeln!(f, "happens-before cycle through {} operations:", ops.len())?;
                for op in ops {
                    writeln!(f, "    {op}")?;
                }
                Ok(())
            }
            CausalViolation::ThinAir { read } => {
                writeln!(f, "read of a value never written:\n    {read}")
            }
            CausalViolation::Overwritten {
                write,
                overwrite,
                read,
            } => writeln!(
                f,
                "read returns an overwritten value:\n    write     {write}\n    overwrite {overwrite}\n    read      {read}"
            ),
            CausalViolation::AbsentAfterWrite { write, read } => writeln!(
                f,
                "read returns absent after a causally earlier write:\n    write {write}\n    read  {read}"
            ),
        }
    }
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Causality {
    /// Causally consistent.
    Consistent {
        /// Operations judged.
        operations: usize,
        /// Happens-before edges (session order and reads-from, before closure).
        edges: usize,
    },
    /// Not causally consistent: the first violations found (at most [`MAX_REPORTED`]).
    NotConsistent(Vec<CausalViolation>),
}

/// Violations reported at most (the check stops collecting after these).
pub const MAX_REPORTED: usize = 8;

impl Causality {
    /// Whether the history was shown causally consistent.
    pub fn is_consistent(&self) -> bool {
        matches!(self, Causality::Consistent { .. })
    }
}

impl fmt::Display for Causality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Causality::Consistent { operations, edges } => write!(
                f,
                "causally consistent ({operations} operations, {edges} edges)"
            ),
            Causality::NotConsistent(violations) => {
                writeln!(f, "not causally consistent:")?;
                for v in violations {
                    write!(f, "  {v}")?;
                }
                Ok(())
            }
        }
    }
}

/// Checks a recorded key-value history (see the [module documentation](self)).
pub fn check_history(history: &History<KvOp, KvOutput>) -> Result<Causality, HistoryError> {
    Ok(check(&history.operations()?))
}

/// A message between two clients (their front ends passed a causal token): the operation
/// `(client, id)` of `from` happens before the operation `to` of another client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientMessage {
    /// The last operation the sender had completed when it sent, `(client, id)`.
    pub from: (u64, u64),
    /// The first operation the receiver invoked after receiving, `(client, id)`.
    pub to: (u64, u64),
}

/// [`check`] with client-to-client messages as happens-before edges too (the reference
/// notes' section 21). A message naming an operation not in the history is ignored.
pub fn check_with_messages(operations: &[KvOperation], messages: &[ClientMessage]) -> Causality {
    check_edges(operations, messages)
}

/// A set of operation indices as a bitset.
#[derive(Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn union(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a |= b;
        }
    }
}

/// Checks operations (as [`History::operations`] pairs them; see the
/// [module documentation](self)).
pub fn check(operations: &[KvOperation]) -> Causality {
    check_edges(operations, &[])
}

fn check_edges(operations: &[KvOperation], messages: &[ClientMessage]) -> Causality {
    // Unknown reads say nothing; unknown writes may have taken effect.
    let ops: Vec<&KvOperation> = operations
        .iter()
        .filter(|o| o.result().is_some() || written(o).is_some())
        .collect();
    let n = ops.len();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Session order: each operation after its client's last known-complete one.
    let mut last_complete: HashMap<u64, usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(&p) = last_complete.get(&op.client) {
            preds[i].push(p);
        }
        if matches!(op.outcome, Outcome::Ok(_)) {
            last_complete.insert(op.client, i);
        }
    }
    // Messages between clients.
    let index: HashMap<(u64, u64), usize> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| ((o.client, o.id), i))
        .collect();
    for message in messages {
        if let (Some(&from), Some(&to)) = (index.get(&message.from), index.get(&message.to)) {
            preds[to].push(from);
        }
    }
    // Reads-from: the write of each (unique) value read.
    let mut writer: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(Some(value)) = written(op) {
            writer.insert((op.op.key(), value), i);
        }
    }
    let mut violations = Vec::new();
    let mut proven = vec![false; n];
    for (i, op) in ops.iter().enumerate() {
        proven[i] |= op.result().is_some();
        if let Some(Some(value)) = read(op) {
            match writer.get(&(op.op.key(), value)) {
                Some(&w) if w != i => {
                    preds[i].push(w);
                    proven[w] = true;
                }
                Some(_) => {}
                None => violations.push(CausalViolation::ThinAir {
                    read: (*op).clone(),
                }),
            }
        }
    }
    let edges = preds.iter().map(Vec::len).sum();
    // Topological order (Kahn); what is left over lies on or behind a cycle.
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for (i, ps) in preds.iter().enumerate() {
        for &p in ps {
            succs[p].push(i);
            indegree[i] += 1;
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    let mut next = 0;
    while next < order.len() {
        let i = order[next];
        next += 1;
        for &s in &succs[i] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                order.push(s);
            }
        }
    }
    if order.len() < n {
        violations.insert(
            0,
            CausalViolation::Cycle(find_cycle(&ops, &preds, &indegree)),
        );
        violations.truncate(MAX_REPORTED);
        return Causality::NotConsistent(violations);
    }
    // Causal past of each operation (strict), in topological order.
    let mut past: Vec<Bits> = vec![Bits::new(n); n];
    for &i in &order {
        let mut mine = Bits::new(n);
        for &p in &preds[i] {
            mine.union(&past[p]);
            mine.set(p);
        }
        past[i] = mine;
    }
    // Writes per key: index and value written (`None`: a delete).
    let mut writes_of: HashMap<&str, Vec<(usize, Option<&str>)>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Some(value) = written(op) {
            writes_of.entry(op.op.key()).or_default().push((i, value));
        }
    }
    for (r, op) in ops.iter().enumerate() {
        if violations.len() >= MAX_REPORTED {
            break;
        }
        let Some(value) = read(op) else { continue };
        let key = op.op.key();
        let writes = writes_of.get(key).map(Vec::as_slice).unwrap_or(&[]);
        // Writes that certainly happened, in the read's causal past.
        let before = |w: usize| w != r && past[r].has(w) && proven[w];
        match value {
            Some(value) => {
                let Some(&w) = writer.get(&(key, value)) else {
                    continue;
                };
                if let Some(&(w2, _)) = writes
                    .iter()
                    .find(|&&(w2, _)| w2 != w && before(w2) && past[w2].has(w))
                {
                    violations.push(CausalViolation::Overwritten {
                        write: ops[w].clone(),
                        overwrite: ops[w2].clone(),
                        read: (*op).clone(),
                    });
                }
            }
            None => {
                let puts = || writes.iter().filter(|(w, v)| v.is_some() && before(*w));
                let Some(&(w, _)) = puts().next() else {
                    continue;
                };
                // A delete the read may have seen: not overwritten in the read's past.
                let visible_delete = writes.iter().any(|&(d, v)| {
                    v.is_none()
                        && d != r
                        && !past[d].has(r)
                        && !puts().any(|&(w2, _)| past[w2].has(d))
                });
                if !visible_delete {
                    violations.push(CausalViolation::AbsentAfterWrite {
                        write: ops[w].clone(),
                        read: (*op).clone(),
                    });
                }
            }
        }
    }
    violations.truncate(MAX_REPORTED);
    if violations.is_empty() {
        Causality::Consistent {
            operations: n,
            edges,
        }
    } else {
        Causality::NotConsistent(violations)
    }
}

/// One cycle among the operations Kahn's algorithm could not order (`indegree > 0`).
fn find_cycle(ops: &[&KvOperation], preds: &[Vec<usize>], indegree: &[usize]) -> Vec<KvOperation> {
    // Walk predecessors inside the leftover set until a node repeats.
    let start = (0..ops.len())
        .find(|&i| indegree[i] > 0)
        .expect("a leftover node");
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = start;
    while let std::collections::hash_map::Entry::Vacant(e) = seen.entry(at) {
        e.insert(path.len());
        path.push(at);
        at = *preds[at]
            .iter()
            .find(|&&p| indegree[p] > 0)
            .expect("a node left over by Kahn's algorithm has a leftover predecessor");
    }
    let mut cycle: Vec<usize> = path[seen[&at]..].to_vec();
    cycle.reverse();
    cycle.into_iter().map(|i| ops[i].clone()).collect()
}
