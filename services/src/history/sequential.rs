//! Sequential consistency: is there one order of the operations, consistent with each client's
//! program order (but not necessarily with real time), in which every result is what the
//! sequential model returns? (The reference notes' section 9.)
//!
//! The search interleaves the clients' sequences depth first, memoising `(position in each
//! client's sequence, pending operations placed, state)` so each reachable combination is
//! explored once: polynomial in the operations per client, exponential only in the number of
//! clients. Sequential consistency is not compositional (two keys each sequentially consistent
//! need not be together), so the history is checked whole, not per key; keep checked histories
//! to a few clients and some hundreds of operations, or raise [`SearchLimits::max_steps`].
//!
//! A pending operation (`info`, no completion) may be placed anywhere after its client's
//! earlier operations, or nowhere (it did not take effect); it does not hold back its client's
//! later operations, since a request that timed out may still be executed after the client
//! moved on.

use std::collections::HashSet;
use std::fmt;

use super::{Model, Operation, SearchLimits};

/// The checker's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum SequentialConsistency<O, R> {
    /// An order exists.
    Consistent {
        /// One such order, as `(client, id)` request ids (pending operations left out of it
        /// did not take effect).
        order: Vec<(u64, u64)>,
        /// Search steps spent.
        steps: u64,
    },
    /// No order exists; the counterexample says where the search got furthest.
    NotConsistent(Box<ScCounterexample<O, R>>),
    /// The search exceeded its limit.
    Unknown {
        /// The history's operations.
        operations: usize,
        /// Steps spent.
        steps: u64,
    },
}

impl<O, R> SequentialConsistency<O, R> {
    /// Whether the history was shown sequentially consistent.
    pub fn is_consistent(&self) -> bool {
        matches!(self, SequentialConsistency::Consistent { .. })
    }

    /// Whether the history was shown not sequentially consistent.
    pub fn is_violation(&self) -> bool {
        matches!(self, SequentialConsistency::NotConsistent(_))
    }
}

/// Where the search for a program-order interleaving got furthest.
#[derive(Debug, Clone, PartialEq)]
pub struct ScCounterexample<O, R> {
    /// The longest interleaving the search could justify, first to last.
    pub longest_prefix: Vec<Operation<O, R>>,
    /// The model's state after it (`Debug`).
    pub state_after_prefix: String,
    /// Each unfinished client's next completed operation: none fits that state.
    pub next: Vec<Operation<O, R>>,
}

impl<O: fmt::Debug, R: fmt::Debug> fmt::Display for ScCounterexample<O, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not sequentially consistent: longest interleaving in program order ({} operations):",
            self.longest_prefix.len()
        )?;
        for op in &self.longest_prefix {
            writeln!(f, "    {op}")?;
        }
        writeln!(f, "  state then: {}", self.state_after_prefix)?;
        writeln!(f, "  no client's next operation fits:")?;
        for op in &self.next {
            writeln!(f, "    {op}")?;
        }
        Ok(())
    }
}

struct Frame<S> {
    positions: Vec<u32>,
    placed: Vec<u64>,
    state: S,
    /// The next choice to try: clients first, then pending operations.
    choice: usize,
    /// The operation whose placement led here.
    applied: Option<usize>,
}

/// Checks `operations` (from [`super::History::operations`], in invocation order) against
/// `model`.
pub fn check<M: Model>(
    model: &M,
    operations: &[Operation<M::Op, M::Output>],
    limits: SearchLimits,
) -> SequentialConsistency<M::Op, M::Output> {
    // Per client, its completed operations in program order; pending ones with the number
    // of its completed operations before them.
    let mut clients: Vec<u64> = Vec::new();
    let mut sequences: Vec<Vec<usize>> = Vec::new();
    let mut pending: Vec<(usize, usize, u32)> = Vec::new(); // (client slot, op, after)
    for (i, op) in operations.iter().enumerate() {
        let slot = match clients.iter().position(|&c| c == op.client) {
            Some(s) => s,
            None => {
                clients.push(op.client);
                sequences.push(Vec::new());
                clients.len() - 1
            }
        };
        if op.result().is_some() {
            sequences[slot].push(i);
        } else {
            let after = u32::try_from(sequences[slot].len()).expect("fewer than 2^32 operations");
            pending.push((slot, i, after));
        }
    }
    let n_clients = clients.len();
    let words = pending.len().div_ceil(64);
    let done = |positions: &[u32]| {
        positions
            .iter()
            .zip(&sequences)
            .all(|(&p, s)| p as usize == s.len())
    };

    let root = Frame {
        positions: vec![0; n_clients],
        placed: vec![0; words],
        state: model.init(),
        choice: 0,
        applied: None,
    };
    let mut visited: HashSet<(Vec<u32>, Vec<u64>, M::State)> = HashSet::new();
    visited.insert((
        root.positions.clone(),
        root.placed.clone(),
        root.state.clone(),
    ));
    let mut stack = vec![root];
    let mut steps = 0u64;
    let mut best: Option<(Vec<usize>, String, Vec<usize>)> = None;

    loop {
        let top = stack
            .last_mut()
            .expect("the root is popped only at the end");
        if done(&top.positions) {
            let order = stack
                .iter()
                .filter_map(|f| f.applied)
                .map(|i| (operations[i].client, operations[i].id))
                .collect();
            return SequentialConsistency::Consistent { order, steps };
        }
        if top.choice >= n_clients + pending.len() {
            let depth = stack.len() - 1;
            if best.as_ref().is_none_or(|b| depth > b.0.len()) {
                let top = stack.last().expect("non-empty");
                let prefix = stack.iter().filter_map(|f| f.applied).collect();
                let next = (0..n_clients)
                    .filter_map(|c| sequences[c].get(top.positions[c] as usize).copied())
                    .collect();
                best = Some((prefix, format!("{:?}", top.state), next));
            }
            stack.pop();
            if stack.is_empty() {
                let (prefix, state_after, next) = best.expect("recorded just above");
                let pick = |i: &usize| operations[*i].clone();
                return SequentialConsistency::NotConsistent(Box::new(ScCounterexample {
                    longest_prefix: prefix.iter().map(pick).collect(),
                    state_after_prefix: state_after,
                    next: next.iter().map(pick).collect(),
                }));
            }
            continue;
        }
        let choice = top.choice;
        top.choice += 1;
        // Which operation this choice places, if it is available.
        let op_index = if choice < n_clients {
            match sequences[choice].get(top.positions[choice] as usize) {
                Some(&i) => i,
                None => continue,
            }
        } else {
            let p = choice - n_clients;
            let (slot, i, after) = pending[p];
            if top.placed[p / 64] & (1 << (p % 64)) != 0 || top.positions[slot] < after {
                continue;
            }
            i
        };
        steps += 1;
        if steps > limits.max_steps {
            return SequentialConsistency::Unknown {
                operations: operations.len(),
                steps,
            };
        }
        let op = &operations[op_index];
        let Some(state) = model.step(&top.state, &op.op, op.result()) else {
            continue;
        };
        let mut positions = top.positions.clone();
        let mut placed = top.placed.clone();
        if choice < n_clients {
            positions[choice] += 1;
        } else {
            let p = choice - n_clients;
            placed[p / 64] |= 1 << (p % 64);
        }
        if !visited.insert((positions.clone(), placed.clone(), state.clone())) {
            continue;
        }
        stack.push(Frame {
            positions,
            placed,
            state,
            choice: 0,
            applied: Some(op_index),
        });
    }
}
