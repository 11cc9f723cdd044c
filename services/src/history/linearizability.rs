//! Linearizability: is there one order of the operations, consistent with real time, in
//! which every result is what the sequential model returns?
//!
//! The search is Wing and Gong's, with Lowe's memoisation of `(operations linearized, state)`
//! pairs, as in Porcupine: walk the invocations and responses in time order; at an invocation,
//! try to linearize that operation now (the model accepts its result from the current state)
//! and restart from the earliest remaining event; at a response whose operation is not yet
//! linearized, backtrack. Linearizability is compositional (P-compositionality), so the
//! history is split into groups of operations whose keys connect ([`Model::keys`]) and each
//! group is searched alone, which keeps the search small for a key-value store.
//!
//! Pending operations (`info`, or no completion) respond at the end of time with any result:
//! the search may linearize them anywhere after their invocation, or last, after every
//! observed result, which is the same as never having taken effect.
//!
//! The search is exponential in the worst case; [`SearchLimits::max_steps`] bounds it per
//! group, and a group that exceeds it makes the answer [`Linearizability::Unknown`] (unless
//! another group fails, which is definite).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use super::{Model, Operation, SearchLimits};

/// The checker's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Linearizability<O, R> {
    /// Every group has a linearization.
    Linearizable {
        /// Independent groups checked.
        partitions: usize,
        /// Search steps spent in all.
        steps: u64,
    },
    /// A group has none; the counterexample says where the search got furthest.
    NotLinearizable(Box<Counterexample<O, R>>),
    /// A group exceeded the search limit (and none failed).
    Unknown {
        /// The keys of the group that was too large.
        keys: Vec<String>,
        /// Its number of operations.
        operations: usize,
        /// Steps spent on it.
        steps: u64,
    },
}

impl<O, R> Linearizability<O, R> {
    /// Whether the history was shown linearizable.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Linearizability::Linearizable { .. })
    }

    /// Whether the history was shown not linearizable.
    pub fn is_violation(&self) -> bool {
        matches!(self, Linearizability::NotLinearizable(_))
    }
}

/// Why a group of operations has no linearization: the longest linearizable prefix the search
/// found, and the operation that had to take effect next and could not.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterexample<O, R> {
    /// The keys of the failing group.
    pub keys: Vec<String>,
    /// All operations of the group, in invocation order.
    pub operations: Vec<Operation<O, R>>,
    /// The longest order the search could justify, first to last.
    pub longest_prefix: Vec<Operation<O, R>>,
    /// The model's state after that prefix (`Debug`).
    pub state_after_prefix: String,
    /// The operation that responded before any remaining candidate could be placed: it must
    /// take effect before its response, yet no order reaching it fits.
    pub blocked: Operation<O, R>,
    /// The operations that could have been placed next (invoked before `blocked` responded),
    /// none of which the model accepts in that state.
    pub candidates: Vec<Operation<O, R>>,
}

impl<O: fmt::Debug, R: fmt::Debug> fmt::Display for Counterexample<O, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: keys {:?} ({} operations)",
            self.keys,
            self.operations.len()
        )?;
        writeln!(
            f,
            "  longest linearizable prefix ({} operations):",
            self.longest_prefix.len()
        )?;
        for op in &self.longest_prefix {
            writeln!(f, "    {op}")?;
        }
        writeln!(f, "  state then: {}", self.state_after_prefix)?;
        writeln!(f, "  must take effect next, but cannot: {}", self.blocked)?;
        if !self.candidates.is_empty() {
            writeln!(f, "  none of these fits either:")?;
            for op in &self.candidates {
                writeln!(f, "    {op}")?;
            }
        }
        Ok(())
    }
}

/// Checks `operations` (from [`super::History::operations`]) against `model`.
pub fn check<M: Model>(
    model: &M,
    operations: &[Operation<M::Op, M::Output>],
    limits: SearchLimits,
) -> Linearizability<M::Op, M::Output> {
    let parts = partition(model, operations);
    let mut steps_total = 0;
    let mut unknown = None;
    for (keys, part) in &parts {
        match check_partition(model, part, limits) {
            PartResult::Ok { steps } => steps_total += steps,
            PartResult::Fail(mut c) => {
                c.keys = keys.clone();
                return Linearizability::NotLinearizable(c);
            }
            PartResult::TooLarge { steps } => {
                if unknown.is_none() {
                    unknown = Some(Linearizability::Unknown {
                        keys: keys.clone(),
                        operations: part.len(),
                        steps,
                    });
                }
            }
        }
    }
    unknown.unwrap_or(Linearizability::Linearizable {
        partitions: parts.len(),
        steps: steps_total,
    })
}

/// Splits operations into groups whose key sets connect (union-find over keys). Any operation
/// without keys puts everything in one group.
#[allow(clippy::type_complexity)]
fn partition<M: Model>(
    model: &M,
    operations: &[Operation<M::Op, M::Output>],
) -> Vec<(Vec<String>, Vec<Operation<M::Op, M::Output>>)> {
    let op_keys: Vec<Vec<String>> = operations.iter().map(|o| model.keys(&o.op)).collect();
    if op_keys.iter().any(Vec::is_empty) {
        let keys: BTreeSet<String> = op_keys.into_iter().flatten().collect();
        return vec![(keys.into_iter().collect(), operations.to_vec())];
    }
    let mut key_index: HashMap<&str, usize> = HashMap::new();
    for k in op_keys.iter().flatten() {
        let n = key_index.len();
        key_index.entry(k.as_str()).or_insert(n);
    }
    let mut parent: Vec<usize> = (0..key_index.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for keys in &op_keys {
        let first = find(&mut parent, key_index[keys[0].as_str()]);
        for k in &keys[1..] {
            let other = find(&mut parent, key_index[k.as_str()]);
            parent[other] = first;
        }
    }
    // Groups in order of first appearance, so reports are deterministic.
    let mut group_of_root: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<(BTreeSet<String>, Vec<Operation<M::Op, M::Output>>)> = Vec::new();
    for (op, keys) in operations.iter().zip(&op_keys) {
        let root = find(&mut parent, key_index[keys[0].as_str()]);
        let g = *group_of_root.entry(root).or_insert_with(|| {
            groups.push((BTreeSet::new(), Vec::new()));
            groups.len() - 1
        });
        groups[g].0.extend(keys.iter().cloned());
        groups[g].1.push(op.clone());
    }
    groups
        .into_iter()
        .map(|(k, ops)| (k.into_iter().collect(), ops))
        .collect()
}

enum PartResult<O, R> {
    Ok { steps: u64 },
    Fail(Box<Counterexample<O, R>>),
    TooLarge { steps: u64 },
}

const NONE: usize = usize::MAX;

struct Entry {
    call: bool,
    op: usize,
    /// The other entry of the same operation.
    other: usize,
}

/// The entries as a doubly linked list (with a head sentinel) from which linearized
/// operations are lifted and restored in LIFO order (dancing links).
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl List {
    fn unlink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = n;
        if n != NONE {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, e: usize) {
        let (p, n) = (self.prev[e], self.next[e]);
        self.next[p] = e;
        if n != NONE {
            self.prev[n] = e;
        }
    }
}

fn check_partition<M: Model>(
    model: &M,
    ops: &[Operation<M::Op, M::Output>],
    limits: SearchLimits,
) -> PartResult<M::Op, M::Output> {
    // Entries sorted by time; at equal times invocations first (concurrent: permissive);
    // pending operations respond at the end of time.
    let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke_ns, true, i));
        order.push((op.complete_ns.unwrap_or(u64::MAX), false, i));
    }
    order.sort_by_key(|&(t, call, i)| (t, !call, i));
    let mut entries: Vec<Entry> = order
        .iter()
        .map(|&(_, call, op)| Entry {
            call,
            op,
            other: NONE,
        })
        .collect();
    let mut call_entry = vec![NONE; ops.len()];
    let mut ret_entry = vec![NONE; ops.len()];
    for (e, entry) in entries.iter().enumerate() {
        if entry.call {
            call_entry[entry.op] = e;
        } else {
            ret_entry[entry.op] = e;
        }
    }
    for entry in &mut entries {
        entry.other = if entry.call {
            ret_entry[entry.op]
        } else {
            call_entry[entry.op]
        };
    }
    let n = entries.len();
    let head = n;
    let mut list = List {
        next: (1..=n).map(|i| if i == n { NONE } else { i }).collect(),
        prev: (0..n).map(|i| if i == 0 { head } else { i - 1 }).collect(),
        head,
    };
    list.next.push(if n == 0 { NONE } else { 0 });
    list.prev.push(NONE);

    let words = ops.len().div_ceil(64);
    let mut linearized = vec![0u64; words];
    let mut cache: HashSet<(Vec<u64>, M::State)> = HashSet::new();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut state = model.init();
    let mut steps = 0u64;
    let mut best: Option<(Vec<usize>, String, usize, Vec<usize>)> = None;
    let mut entry = list.next[head];

    while list.next[list.head] != NONE {
        steps += 1;
        if steps > limits.max_steps {
            return PartResult::TooLarge { steps };
        }
        let e = &entries[entry];
        if e.call {
            let op = &ops[e.op];
            if let Some(next_state) = model.step(&state, &op.op, op.result()) {
                let mut next_lin = linearized.clone();
                next_lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((next_lin.clone(), next_state.clone())) {
                    stack.push((entry, std::mem::replace(&mut state, next_state)));
                    linearized = next_lin;
                    list.unlink(entry);
                    list.unlink(e.other);
                    entry = list.next[list.head];
                    continue;
                }
            }
            entry = list.next[entry];
        } else {
            if best.as_ref().is_none_or(|b| stack.len() >= b.0.len()) {
                let prefix = stack.iter().map(|&(c, _)| entries[c].op).collect();
                let mut candidates = Vec::new();
                let mut c = list.next[list.head];
                while c != entry && c != NONE {
                    if entries[c].call && entries[c].op != e.op {
                        candidates.push(entries[c].op);
                    }
                    c = list.next[c];
                }
                best = Some((prefix, format!("{state:?}"), e.op, candidates));
            }
            let Some((call, previous)) = stack.pop() else {
                let (prefix, state_after, blocked, candidates) = best.expect("recorded just above");
                let pick = |i: &usize| ops[*i].clone();
                return PartResult::Fail(Box::new(Counterexample {
                    keys: Vec::new(),
                    operations: ops.to_vec(),
                    longest_prefix: prefix.iter().map(pick).collect(),
                    state_after_prefix: state_after,
                    blocked: ops[blocked].clone(),
                    candidates: candidates.iter().map(pick).collect(),
                }));
            };
            state = previous;
            let op = entries[call].op;
            linearized[op / 64] &= !(1 << (op % 64));
            list.relink(entries[call].other);
            list.relink(call);
            entry = list.next[call];
        }
    }
    PartResult::Ok { steps }
}
