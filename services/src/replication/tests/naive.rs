//! The naive counter-example reproduces the reference notes' bank anomaly; the same client
//! programs against passive replication stay linearizable.

use viewsync::runtime::ReplyTo;

use super::{pid, Harness, SharedLog};
use crate::history::{linearizability, sequential, History, SearchLimits, StateMachineModel};
use crate::replication::naive::{NaiveConfig, NaiveReplica};
use crate::replication::passive::{PassiveConfig, PassiveReplica};
use crate::replication::store::Recovered;
use crate::replication::ReplicaCore;
use crate::state_machine::bank::{Bank, BankOp, BankOutput};
use crate::state_machine::StateMachine;

/// Records one client call: invocation, the call, its completion.
struct Recorder {
    history: History<BankOp, BankOutput>,
    clock: u64,
}

impl Recorder {
    fn call<C: ReplicaCore>(
        &mut self,
        h: &mut Harness<C>,
        at: u64,
        client: u64,
        seq: u64,
        op: BankOp,
        settle: bool,
    ) -> BankOutput {
        self.clock += 1;
        self.history.invoke(client, seq, op.clone(), self.clock);
        let to: ReplyTo = h.request(at, client, seq, op, 0);
        if settle {
            h.settle();
        }
        let output = h.ok::<BankOutput>(to).output;
        self.clock += 1;
        self.history.ok(client, seq, output.clone(), self.clock);
        output
    }
}

fn model() -> StateMachineModel<Bank> {
    StateMachineModel::new(Bank::with_accounts(["x", "y"]))
}

#[test]
fn naive_replication_shows_the_bank_anomaly() {
    const A: u64 = 1;
    const B: u64 = 2;
    let replicas = [A, B, 3].map(|n| {
        let config = NaiveConfig::new(pid(n), super::group(), "bank");
        (
            n,
            NaiveReplica::new(config, Bank::with_accounts(["x", "y"])),
        )
    });
    let mut h = Harness::new("bank", replicas, |_: &NaiveReplica<Bank>| {});
    h.install(&[A, B, 3], None);
    let mut rec = Recorder {
        history: History::new(),
        clock: 0,
    };
    // Client 1 updates x at B, then (B "failed") y at A; each is answered at once.
    rec.call(&mut h, B, 1, 1, BankOp::set("x", 1), false);
    rec.call(&mut h, A, 1, 2, BankOp::set("y", 2), false);
    // Client 2 reads at A, after both writes completed.
    let y = rec.call(&mut h, A, 2, 1, BankOp::get("y"), false);
    let x = rec.call(&mut h, A, 2, 2, BankOp::get("x"), false);
    assert_eq!(
        (y, x),
        (BankOutput::Balance(2), BankOutput::Balance(0)),
        "the naive counter-example must reproduce the anomaly: client 2 sees y = 2, then x = 0"
    );
    let operations = rec.history.operations().expect("well formed");
    assert!(
        sequential::check(&model(), &operations, SearchLimits::default()).is_violation(),
        "naive replication: this history is not even sequentially consistent"
    );
    assert!(
        linearizability::check(&model(), &operations, SearchLimits::default()).is_violation(),
        "naive replication: this history is not linearizable"
    );
    // Lazily, after the propagation interval, every replica holds both writes.
    assert_eq!(h.node(B).unpropagated(), 1);
    h.now = NaiveConfig::LAZY;
    h.settle();
    for n in [A, B, 3] {
        let bank = h.node(n).state();
        assert_eq!(
            (bank.balance("x"), bank.balance("y")),
            (Some(1), Some(2)),
            "replica {n}"
        );
    }
}

#[test]
fn the_same_programs_on_passive_replication_are_linearizable() {
    const A: u64 = 1;
    let replicas = [A, 2, 3].map(|n| {
        let config = PassiveConfig::new(pid(n), super::group(), "bank");
        let core = PassiveReplica::<Bank>::recover(
            config,
            Box::new(SharedLog::default()),
            Recovered::default(),
        )
        .expect("empty");
        (n, core)
    });
    let mut h = Harness::new("bank", replicas, |_: &PassiveReplica<Bank>| {});
    h.install(&[A, 2, 3], None);
    // The accounts exist, as in the notes (the model starts from them).
    for (seq, account) in [(1, "x"), (2, "y")] {
        h.request(A, 99, seq, BankOp::set(account, 0), 0);
    }
    h.settle();
    assert_eq!(h.node(2).state(), &model_initial());
    let mut rec = Recorder {
        history: History::new(),
        clock: 0,
    };
    // Backups refuse, so every call is at the primary.
    rec.call(&mut h, A, 1, 1, BankOp::set("x", 1), true);
    rec.call(&mut h, A, 1, 2, BankOp::set("y", 2), true);
    let y = rec.call(&mut h, A, 2, 1, BankOp::get("y"), true);
    let x = rec.call(&mut h, A, 2, 2, BankOp::get("x"), true);
    assert_eq!((y, x), (BankOutput::Balance(2), BankOutput::Balance(1)));
    let operations = rec.history.operations().expect("well formed");
    assert!(
        linearizability::check(&model(), &operations, SearchLimits::default()).is_linearizable()
    );
}

fn model_initial() -> Bank {
    let mut bank = Bank::new();
    bank.apply(&BankOp::set("x", 0));
    bank.apply(&BankOp::set("y", 0));
    bank
}
