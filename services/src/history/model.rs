//! The sequential specification the checkers compare histories against.

use std::fmt::Debug;
use std::hash::Hash;

use crate::state_machine::StateMachine;

/// A sequential specification: from a state, can `op` return `output`, and to which state?
pub trait Model {
    /// Operations.
    type Op: Clone + Debug;
    /// Their results.
    type Output: Clone + Debug + PartialEq;
    /// The specification's state (hashed to memoise the search).
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `op` to `state`: `Some(next)` when `op` may return `output` there (any output
    /// when `output` is `None`, a pending operation), `None` when it cannot.
    fn step(
        &self,
        state: &Self::State,
        op: &Self::Op,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// The keys `op` touches; operations on disjoint keys are independent, so the
    /// linearizability checker checks each group of connected keys alone. An empty list means
    /// "anything": the history is then checked whole.
    fn keys(&self, op: &Self::Op) -> Vec<String> {
        let _ = op;
        Vec::new()
    }
}

/// A [`StateMachine`] as a [`Model`]: `step` clones the machine, applies the operation and
/// compares its output with the recorded one; `keys` is [`StateMachine::keys`].
#[derive(Debug, Clone, Default)]
pub struct StateMachineModel<M> {
    initial: M,
}

impl<M> StateMachineModel<M> {
    /// The model starting from `initial` (e.g. `Bank::with_accounts(["x", "y"])`).
    pub fn new(initial: M) -> Self {
        StateMachineModel { initial }
    }
}

impl<M> Model for StateMachineModel<M>
where
    M: StateMachine + Clone + Eq + Hash + Debug,
{
    type Op = M::Operation;
    type Output = M::Output;
    type State = M;

    fn init(&self) -> M {
        self.initial.clone()
    }

    fn step(&self, state: &M, op: &M::Operation, output: Option<&M::Output>) -> Option<M> {
        let mut next = state.clone();
        let actual = next.apply(op);
        match output {
            Some(expected) if *expected != actual => None,
            _ => Some(next),
        }
    }

    fn keys(&self, op: &M::Operation) -> Vec<String> {
        M::keys(op)
    }
}
