//! Checker self-tests: each checker must accept good histories and fire on bad ones, saying
//! why.

use proptest::prelude::*;

use super::linearizability::{self, Linearizability};
use super::sequential::{self, SequentialConsistency};
use super::*;
use crate::state_machine::bank::{Bank, BankOp, BankOutput};
use crate::state_machine::kv::{KvOp, KvOutput, KvStore};
use crate::state_machine::StateMachine;

type KvHistory = History<KvOp, KvOutput>;

fn kv() -> StateMachineModel<KvStore> {
    StateMachineModel::new(KvStore::new())
}

/// Records one completed operation `[t0, t1]`.
fn done<O: Clone, R: Clone>(h: &mut History<O, R>, c: u64, id: u64, op: O, t0: u64, r: R, t1: u64) {
    h.invoke(c, id, op, t0);
    h.ok(c, id, r, t1);
}

fn lin<M: Model>(model: &M, h: &History<M::Op, M::Output>) -> Linearizability<M::Op, M::Output> {
    linearizability::check(model, &h.operations().unwrap(), SearchLimits::default())
}

fn sc<M: Model>(
    model: &M,
    h: &History<M::Op, M::Output>,
) -> SequentialConsistency<M::Op, M::Output> {
    sequential::check(model, &h.operations().unwrap(), SearchLimits::default())
}

fn none() -> KvOutput {
    KvOutput::Value(None)
}

// ---- the history format ----

#[test]
fn documented_json_lines_parse_and_round_trip() {
    let text = r#"{"client":1,"id":1,"kind":"invoke","op":{"put":{"key":"x","value":"1"}},"time_ns":100}
{"client":1,"id":1,"kind":"ok","result":"written","time_ns":250}
{"client":2,"id":1,"kind":"invoke","op":{"get":{"key":"x"}},"time_ns":300}

{"client":2,"id":1,"kind":"info","error":"timeout","time_ns":900}
"#;
    let h = KvHistory::from_json_lines(text).unwrap();
    assert_eq!(h.events.len(), 4);
    let ops = h.operations().unwrap();
    assert_eq!(ops.len(), 2);
    assert_eq!(ops[0].outcome, Outcome::Ok(KvOutput::Written));
    assert_eq!(ops[0].complete_ns, Some(250));
    assert_eq!(ops[1].outcome, Outcome::Pending);
    assert_eq!(ops[1].complete_ns, None);
    let again = KvHistory::from_json_lines(&h.to_json_lines()).unwrap();
    assert_eq!(again, h);
    assert!(h.to_json_lines().starts_with(
        r#"{"client":1,"id":1,"kind":"invoke","op":{"put":{"key":"x","value":"1"}},"time_ns":100}"#
    ));
}

#[test]
fn malformed_histories_are_refused() {
    let err = KvHistory::from_json_lines("{\"client\":1}\n{").unwrap_err();
    assert!(matches!(err, HistoryError::Json { line: 1, .. }), "{err}");

    let mut h = KvHistory::new();
    h.ok(1, 1, KvOutput::Written, 5);
    assert!(matches!(
        h.operations(),
        Err(HistoryError::UnexpectedCompletion { .. })
    ));

    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::get("x"), 0);
    h.invoke(1, 2, KvOp::get("x"), 1);
    assert!(matches!(
        h.operations(),
        Err(HistoryError::ConcurrentInvoke { outstanding: 1, .. })
    ));

    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::get("x"), 0, none(), 1);
    h.invoke(1, 1, KvOp::get("x"), 2);
    assert!(matches!(
        h.operations(),
        Err(HistoryError::DuplicateInvoke { .. })
    ));

    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::get("x"), 10);
    h.ok(1, 1, none(), 5);
    assert!(matches!(
        h.operations(),
        Err(HistoryError::CompletedBeforeInvoked { .. })
    ));

    let h = KvHistory::from_json_lines(
        r#"{"client":1,"id":1,"kind":"invoke","op":{"get":{"key":"x"}},"time_ns":1}
{"client":1,"id":1,"kind":"ok","time_ns":2}"#,
    )
    .unwrap();
    assert!(matches!(
        h.operations(),
        Err(HistoryError::OkWithoutResult { .. })
    ));
}

// ---- the reference notes' bank example ----

/// Section 7/8: client 1 sets x=1 then y=2 (at different replicas); client 2 reads y=2 and
/// then x=0. No single copy behaves like that: rejected by both checkers.
#[test]
fn bank_anomaly_is_rejected() {
    let model = StateMachineModel::new(Bank::with_accounts(["x", "y"]));
    let mut h = History::new();
    done(
        &mut h,
        1,
        1,
        BankOp::set("x", 1),
        0,
        BankOutput::BalanceSet,
        10,
    );
    done(
        &mut h,
        1,
        2,
        BankOp::set("y", 2),
        20,
        BankOutput::BalanceSet,
        30,
    );
    done(
        &mut h,
        2,
        1,
        BankOp::get("y"),
        40,
        BankOutput::Balance(2),
        50,
    );
    done(
        &mut h,
        2,
        2,
        BankOp::get("x"),
        60,
        BankOutput::Balance(0),
        70,
    );

    let Linearizability::NotLinearizable(c) = lin(&model, &h) else {
        panic!("the anomaly must be rejected");
    };
    // The failing key and the stale read are named.
    assert_eq!(c.keys, vec!["x"]);
    assert_eq!(c.blocked.op, BankOp::get("x"));
    assert_eq!(c.longest_prefix.len(), 1);
    assert_eq!(c.longest_prefix[0].op, BankOp::set("x", 1));
    let text = c.to_string();
    assert!(
        text.contains("GetBalance") && text.contains("Balance(0)"),
        "{text}"
    );

    let SequentialConsistency::NotConsistent(c) = sc(&model, &h) else {
        panic!("the anomaly is not sequentially consistent either");
    };
    assert!(!c.next.is_empty());
}

/// The same anomaly on the key-value store (a missing key reads as absent).
#[test]
fn bank_anomaly_on_the_kv_store_is_rejected() {
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("x", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 1, 2, KvOp::put("y", "2"), 20, KvOutput::Written, 30);
    done(&mut h, 2, 1, KvOp::get("y"), 40, KvOutput::value("2"), 50);
    done(&mut h, 2, 2, KvOp::get("x"), 60, none(), 70);
    assert!(lin(&kv(), &h).is_violation());
    assert!(sc(&kv(), &h).is_violation());
}

/// Section 9: client 2 reads y=0 then x=0 after client 1's writes completed. Sequentially
/// consistent (getY, getX, setX, setY) but not linearizable (the reads follow the writes in
/// real time).
#[test]
fn stale_reads_are_sequentially_consistent_but_not_linearizable() {
    let model = StateMachineModel::new(Bank::with_accounts(["x", "y"]));
    let mut h = History::new();
    done(
        &mut h,
        1,
        1,
        BankOp::set("x", 1),
        0,
        BankOutput::BalanceSet,
        10,
    );
    done(
        &mut h,
        1,
        2,
        BankOp::set("y", 2),
        20,
        BankOutput::BalanceSet,
        30,
    );
    done(
        &mut h,
        2,
        1,
        BankOp::get("y"),
        40,
        BankOutput::Balance(0),
        50,
    );
    done(
        &mut h,
        2,
        2,
        BankOp::get("x"),
        60,
        BankOutput::Balance(0),
        70,
    );
    assert!(lin(&model, &h).is_violation());
    let SequentialConsistency::Consistent { order, .. } = sc(&model, &h) else {
        panic!("sequentially consistent");
    };
    assert_eq!(order, vec![(2, 1), (2, 2), (1, 1), (1, 2)]);

    // One key: a read that returns the old value after a write completed.
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("k", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 2, 1, KvOp::get("k"), 20, none(), 30);
    assert!(lin(&kv(), &h).is_violation());
    assert!(sc(&kv(), &h).is_consistent());
}

// ---- good histories ----

#[test]
fn concurrent_histories_are_accepted() {
    let mut h = KvHistory::new();
    // A write overlapping two reads: one sees the old value, one the new.
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.invoke(2, 1, KvOp::get("x"), 5);
    h.invoke(3, 1, KvOp::get("x"), 6);
    h.ok(2, 1, KvOutput::value("1"), 20);
    h.ok(3, 1, none(), 21);
    h.ok(1, 1, KvOutput::Written, 30);
    // Two concurrent compare-and-swaps from the same value: exactly one wins.
    h.invoke(1, 2, KvOp::cas("x", Some("1"), "a"), 40);
    h.invoke(2, 2, KvOp::cas("x", Some("1"), "b"), 41);
    h.ok(2, 2, KvOutput::Swapped, 50);
    h.ok(
        1,
        2,
        KvOutput::CasMismatch {
            current: Some("b".into()),
        },
        51,
    );
    done(&mut h, 3, 2, KvOp::get("x"), 60, KvOutput::value("b"), 70);
    // Another key, independent.
    done(&mut h, 3, 3, KvOp::put("y", "7"), 80, KvOutput::Written, 90);
    done(
        &mut h,
        1,
        3,
        KvOp::delete("y"),
        95,
        KvOutput::Deleted { existed: true },
        99,
    );
    done(&mut h, 2, 3, KvOp::get("y"), 100, none(), 110);
    let result = lin(&kv(), &h);
    assert_eq!(
        result,
        Linearizability::Linearizable {
            partitions: 2,
            steps: match result {
                Linearizability::Linearizable { steps, .. } => steps,
                _ => 0,
            }
        }
    );
    assert!(sc(&kv(), &h).is_consistent());
}

#[test]
fn equal_times_count_as_concurrent() {
    // The read is invoked at the instant the write returns: either order is allowed.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.invoke(2, 1, KvOp::get("x"), 10);
    h.ok(1, 1, KvOutput::Written, 10);
    h.ok(2, 1, none(), 20);
    assert!(lin(&kv(), &h).is_linearizable());
}

#[test]
fn bank_transfers_are_checked_across_accounts() {
    let model = StateMachineModel::new(Bank::with_accounts(["x", "y", "z"]));
    let mut h = History::new();
    done(
        &mut h,
        1,
        1,
        BankOp::set("x", 10),
        0,
        BankOutput::BalanceSet,
        10,
    );
    h.invoke(1, 2, BankOp::transfer("x", "y", 4), 20);
    h.invoke(2, 1, BankOp::get("y"), 21);
    h.ok(2, 1, BankOutput::Balance(4), 30);
    h.ok(1, 2, BankOutput::Transferred, 31);
    done(
        &mut h,
        2,
        2,
        BankOp::get("x"),
        40,
        BankOutput::Balance(6),
        50,
    );
    done(
        &mut h,
        3,
        1,
        BankOp::transfer("z", "x", 1),
        40,
        BankOutput::InsufficientFunds {
            account: "z".into(),
            balance: 0,
            requested: 1,
        },
        45,
    );
    assert!(lin(&model, &h).is_linearizable());
    assert!(sc(&model, &h).is_consistent());

    // A transfer that debited without crediting (y read as 0 after it returned).
    done(
        &mut h,
        2,
        3,
        BankOp::get("y"),
        60,
        BankOutput::Balance(0),
        70,
    );
    let Linearizability::NotLinearizable(c) = lin(&model, &h) else {
        panic!("half a transfer must be rejected");
    };
    // x, y and z are one group: the transfers connect them.
    assert_eq!(c.keys, vec!["x", "y", "z"]);
    assert_eq!(c.blocked.op, BankOp::get("y"));
}

// ---- pending operations ----

#[test]
fn pending_write_may_or_may_not_take_effect() {
    // Took effect: a later read sees it.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.info(1, 1, "timeout", 100);
    done(&mut h, 2, 1, KvOp::get("x"), 200, KvOutput::value("1"), 210);
    assert!(lin(&kv(), &h).is_linearizable());
    assert!(sc(&kv(), &h).is_consistent());

    // Did not take effect: a later read does not see it.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.info(1, 1, "timeout", 100);
    done(&mut h, 2, 1, KvOp::get("x"), 200, none(), 210);
    assert!(lin(&kv(), &h).is_linearizable());
    assert!(sc(&kv(), &h).is_consistent());

    // Never answered at all (no completion line): same, and it may take effect late.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    done(&mut h, 2, 1, KvOp::get("x"), 200, none(), 210);
    done(&mut h, 2, 2, KvOp::get("x"), 300, KvOutput::value("1"), 310);
    assert!(lin(&kv(), &h).is_linearizable());
}

#[test]
fn pending_write_cannot_flicker_or_act_before_its_invocation() {
    // Seen, then gone: it took effect once, so it cannot be undone.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.info(1, 1, "timeout", 100);
    done(&mut h, 2, 1, KvOp::get("x"), 200, KvOutput::value("1"), 210);
    done(&mut h, 2, 2, KvOp::get("x"), 300, none(), 310);
    assert!(lin(&kv(), &h).is_violation());
    assert!(sc(&kv(), &h).is_violation());

    // Seen before it was invoked.
    let mut h = KvHistory::new();
    done(&mut h, 2, 1, KvOp::get("x"), 0, KvOutput::value("1"), 10);
    h.invoke(1, 1, KvOp::put("x", "1"), 20);
    h.info(1, 1, "crash", 30);
    let Linearizability::NotLinearizable(c) = lin(&kv(), &h) else {
        panic!("a value from the future");
    };
    assert_eq!(c.blocked.op, KvOp::get("x"));
}

#[test]
fn failed_operations_never_take_effect() {
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.fail(1, 1, "not primary", 10);
    done(&mut h, 2, 1, KvOp::get("x"), 20, none(), 30);
    assert!(lin(&kv(), &h).is_linearizable());

    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.fail(1, 1, "not primary", 10);
    done(&mut h, 2, 1, KvOp::get("x"), 20, KvOutput::value("1"), 30);
    assert!(lin(&kv(), &h).is_violation());
}

// ---- lost and duplicated writes ----

#[test]
fn lost_acknowledged_write_is_rejected() {
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("a", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 1, 2, KvOp::put("b", "1"), 20, KvOutput::Written, 30);
    // A primary crashed; the new one never heard of b=1.
    done(&mut h, 2, 1, KvOp::get("a"), 100, KvOutput::value("1"), 110);
    done(&mut h, 2, 2, KvOp::get("b"), 120, none(), 130);
    let Linearizability::NotLinearizable(c) = lin(&kv(), &h) else {
        panic!("a lost write must be rejected");
    };
    assert_eq!(c.keys, vec!["b"]);
    assert_eq!(c.operations.len(), 2);
    assert!(c.to_string().contains("keys [\"b\"]"));
}

#[test]
fn write_applied_twice_is_rejected() {
    // A retried compare-and-swap executed twice: the retry's mismatch shows the first took
    // effect, yet the value went back.
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("c", "0"), 0, KvOutput::Written, 10);
    done(
        &mut h,
        1,
        2,
        KvOp::cas("c", Some("0"), "1"),
        20,
        KvOutput::Swapped,
        30,
    );
    done(&mut h, 2, 1, KvOp::put("c", "0"), 40, KvOutput::Written, 50);
    // Applied again by a new primary that did not know the request id: c=1 again.
    done(&mut h, 2, 2, KvOp::get("c"), 60, KvOutput::value("1"), 70);
    assert!(lin(&kv(), &h).is_violation());
}

// ---- sequential consistency specifics ----

#[test]
fn program_order_is_enforced() {
    // Client 2 sees x=2 and then x=1, but client 1 wrote 1 before 2.
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("x", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 1, 2, KvOp::put("x", "2"), 20, KvOutput::Written, 30);
    done(&mut h, 2, 1, KvOp::get("x"), 0, KvOutput::value("2"), 100);
    done(&mut h, 2, 2, KvOp::get("x"), 110, KvOutput::value("1"), 120);
    let SequentialConsistency::NotConsistent(c) = sc(&kv(), &h) else {
        panic!("program order violated");
    };
    assert_eq!(c.next.len(), 1, "{c}");
    assert!(c.to_string().contains("no client's next operation fits"));
    // Reversed reads are fine.
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("x", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 1, 2, KvOp::put("x", "2"), 20, KvOutput::Written, 30);
    done(&mut h, 2, 1, KvOp::get("x"), 0, KvOutput::value("1"), 100);
    done(&mut h, 2, 2, KvOp::get("x"), 110, KvOutput::value("2"), 120);
    assert!(sc(&kv(), &h).is_consistent());
}

#[test]
fn sequential_consistency_is_not_checked_per_key() {
    // Each key alone is sequentially consistent, together they are not: client 1 writes x
    // then reads y=absent; client 2 writes y then reads x=absent (store buffering).
    let mut h = KvHistory::new();
    done(&mut h, 1, 1, KvOp::put("x", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 1, 2, KvOp::get("y"), 20, none(), 30);
    done(&mut h, 2, 1, KvOp::put("y", "1"), 0, KvOutput::Written, 10);
    done(&mut h, 2, 2, KvOp::get("x"), 20, none(), 30);
    assert!(sc(&kv(), &h).is_violation());
    assert!(lin(&kv(), &h).is_violation());
}

#[test]
fn pending_operation_does_not_hold_back_its_client() {
    // Client 1's put timed out and it moved on; client 2 sees the put after client 1's
    // later read saw nothing: allowed, the timed-out request ran late.
    let mut h = KvHistory::new();
    h.invoke(1, 1, KvOp::put("x", "1"), 0);
    h.info(1, 1, "timeout", 10);
    done(&mut h, 1, 2, KvOp::get("x"), 20, none(), 30);
    done(&mut h, 2, 1, KvOp::get("x"), 40, KvOutput::value("1"), 50);
    assert!(sc(&kv(), &h).is_consistent());
    assert!(lin(&kv(), &h).is_linearizable());
}

// ---- the search bound ----

#[test]
fn too_large_is_unknown_not_forever() {
    // Many fully concurrent writes and reads of one key with a tiny step budget.
    let mut h = KvHistory::new();
    for c in 0..12 {
        h.invoke(c, 1, KvOp::put("x", c.to_string()), 0);
    }
    for c in 0..12 {
        h.ok(c, 1, KvOutput::Written, 100);
    }
    for c in 0..12 {
        done(&mut h, c, 2, KvOp::get("x"), 200, KvOutput::value("3"), 300);
    }
    let ops = h.operations().unwrap();
    let tiny = SearchLimits { max_steps: 5 };
    assert!(matches!(
        linearizability::check(&kv(), &ops, tiny),
        Linearizability::Unknown { operations: 24, .. }
    ));
    assert!(matches!(
        sequential::check(&kv(), &ops, tiny),
        SequentialConsistency::Unknown { .. }
    ));
    // With the default budget the memoised search answers.
    assert!(linearizability::check(&kv(), &ops, SearchLimits::default()).is_linearizable());
    assert!(sequential::check(&kv(), &ops, SearchLimits::default()).is_consistent());
}

#[test]
fn a_failure_elsewhere_beats_unknown() {
    let mut h = KvHistory::new();
    for c in 0..12 {
        h.invoke(c, 1, KvOp::put("big", c.to_string()), 0);
    }
    for c in 0..12 {
        h.ok(c, 1, KvOutput::Written, 100);
    }
    for c in 0..12 {
        done(
            &mut h,
            c,
            2,
            KvOp::get("big"),
            200,
            KvOutput::value("3"),
            300,
        );
    }
    done(
        &mut h,
        20,
        1,
        KvOp::put("small", "1"),
        0,
        KvOutput::Written,
        10,
    );
    done(&mut h, 20, 2, KvOp::get("small"), 20, none(), 30);
    let ops = h.operations().unwrap();
    let limits = SearchLimits { max_steps: 10 };
    let Linearizability::NotLinearizable(c) = linearizability::check(&kv(), &ops, limits) else {
        panic!("the small key fails within the budget");
    };
    assert_eq!(c.keys, vec!["small"]);
}

// ---- property: atomic executions are always accepted ----

fn arb_kv_op() -> impl Strategy<Value = KvOp> {
    let key = prop::sample::select(vec!["a", "b"]).prop_map(str::to_owned);
    let val = prop::sample::select(vec!["1", "2"]).prop_map(str::to_owned);
    prop_oneof![
        (key.clone(), val.clone()).prop_map(|(k, v)| KvOp::Put { key: k, value: v }),
        key.clone().prop_map(|k| KvOp::Get { key: k }),
        key.clone().prop_map(|k| KvOp::Delete { key: k }),
        (key, prop::option::of(val.clone()), val).prop_map(|(k, e, n)| KvOp::Cas {
            key: k,
            expected: e,
            new: n
        }),
    ]
}

/// A history of a real atomic execution on one store: operation `i` takes effect at time
/// `100 (i + 1)`; its invocation is up to 300 ns earlier (overlapping earlier operations of
/// other clients), its response up to 99 ns later, and each of the four clients stays
/// sequential. Some operations end in `info` (pending) and took effect or not.
fn atomic_history(steps: &[(KvOp, u64, u64, u64, u8)]) -> (KvHistory, Vec<u64>) {
    let mut store = KvStore::new();
    let mut events: Vec<(u64, usize, Event<KvOp, KvOutput>)> = Vec::new();
    let mut last_complete = [0u64; 4];
    let mut gets = Vec::new();
    for (i, (op, client, before, after, fate)) in steps.iter().enumerate() {
        let point = 100 * (i as u64 + 1);
        let c = *client as usize;
        let invoke = point.saturating_sub(*before).max(last_complete[c] + 1);
        let complete = point + after;
        last_complete[c] = complete;
        // fate 0: pending, took effect; 1: pending, never took effect; else completed.
        let output = if *fate == 1 {
            None
        } else {
            Some(store.apply(op))
        };
        let id = i as u64;
        let event = |kind, op, result, time_ns| Event {
            client: *client,
            id,
            kind,
            op,
            result,
            error: None,
            time_ns,
        };
        events.push((
            invoke,
            events.len(),
            event(EventKind::Invoke, Some(op.clone()), None, invoke),
        ));
        if *fate >= 2 {
            if matches!(op, KvOp::Get { .. }) {
                gets.push(id);
            }
            events.push((
                complete,
                events.len(),
                event(EventKind::Ok, None, output, complete),
            ));
        } else {
            events.push((
                complete,
                events.len(),
                event(EventKind::Info, None, None, complete),
            ));
        }
    }
    events.sort_by_key(|(t, n, _)| (*t, *n));
    (
        History {
            events: events.into_iter().map(|(_, _, e)| e).collect(),
        },
        gets,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn atomic_executions_are_linearizable_and_sequentially_consistent(
        steps in prop::collection::vec((arb_kv_op(), 0u64..4, 0u64..300, 0u64..100, 0u8..8), 0..20)
    ) {
        let (h, _) = atomic_history(&steps);
        let ops = h.operations().unwrap();
        let l = linearizability::check(&kv(), &ops, SearchLimits::default());
        prop_assert!(l.is_linearizable(), "{:?}\n{}", l, h.to_json_lines());
        let s = sequential::check(&kv(), &ops, SearchLimits::default());
        prop_assert!(s.is_consistent(), "{:?}\n{}", s, h.to_json_lines());
    }

    #[test]
    fn a_read_of_a_value_never_written_is_rejected(
        steps in prop::collection::vec((arb_kv_op(), 0u64..4, 0u64..300, 0u64..100, 0u8..8), 1..20),
        pick in any::<prop::sample::Index>(),
    ) {
        let (mut h, gets) = atomic_history(&steps);
        prop_assume!(!gets.is_empty());
        let target = gets[pick.index(gets.len())];
        for e in &mut h.events {
            if e.id == target && e.kind == EventKind::Ok {
                e.result = Some(KvOutput::value("never"));
            }
        }
        let ops = h.operations().unwrap();
        prop_assert!(linearizability::check(&kv(), &ops, SearchLimits::default()).is_violation());
        // Rejected, or at worst unknown: never accepted.
        prop_assert!(!sequential::check(&kv(), &ops, SearchLimits::default()).is_consistent());
    }
}

// ---- causal consistency ----

mod causal_checks {
    use super::*;
    use crate::history::causal::{self, CausalViolation, Causality};

    fn judge(h: &KvHistory) -> Causality {
        causal::check_history(h).unwrap()
    }

    fn violations(h: &KvHistory) -> Vec<CausalViolation> {
        match judge(h) {
            Causality::NotConsistent(v) => v,
            ok => panic!("expected a violation, got {ok}"),
        }
    }

    #[test]
    fn accepts_reads_of_own_and_seen_writes() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(&mut h, 1, 2, KvOp::get("x"), 20, KvOutput::value("1.1"), 30);
        done(&mut h, 2, 1, KvOp::get("x"), 5, none(), 6);
        done(&mut h, 2, 2, KvOp::get("x"), 40, KvOutput::value("1.1"), 50);
        done(
            &mut h,
            2,
            3,
            KvOp::put("y", "2.3"),
            60,
            KvOutput::Written,
            70,
        );
        done(&mut h, 1, 3, KvOp::get("y"), 80, KvOutput::value("2.3"), 90);
        done(&mut h, 1, 4, KvOp::get("x"), 95, KvOutput::value("1.1"), 99);
        assert!(judge(&h).is_consistent(), "{}", judge(&h));
    }

    /// Two concurrent writes seen in opposite orders by two readers: causal, not sequential.
    #[test]
    fn accepts_concurrent_writes_seen_in_different_orders_which_is_not_sequential() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(
            &mut h,
            2,
            1,
            KvOp::put("x", "2.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(&mut h, 3, 1, KvOp::get("x"), 20, KvOutput::value("1.1"), 30);
        done(&mut h, 3, 2, KvOp::get("x"), 40, KvOutput::value("2.1"), 50);
        done(&mut h, 4, 1, KvOp::get("x"), 20, KvOutput::value("2.1"), 30);
        done(&mut h, 4, 2, KvOp::get("x"), 40, KvOutput::value("1.1"), 50);
        assert!(judge(&h).is_consistent(), "{}", judge(&h));
        assert!(sc(&kv(), &h).is_violation());
    }

    /// The reference notes' bank-style anomaly on a key-value store: client 2 sees y's later
    /// write, then x's value before client 1's earlier write of it.
    #[test]
    fn rejects_a_read_of_a_value_overwritten_in_its_causal_past() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(
            &mut h,
            1,
            2,
            KvOp::put("x", "1.2"),
            20,
            KvOutput::Written,
            30,
        );
        done(
            &mut h,
            1,
            3,
            KvOp::put("y", "1.3"),
            40,
            KvOutput::Written,
            50,
        );
        done(&mut h, 2, 1, KvOp::get("y"), 60, KvOutput::value("1.3"), 70);
        done(&mut h, 2, 2, KvOp::get("x"), 80, KvOutput::value("1.1"), 90);
        let v = violations(&h);
        match &v[0] {
            CausalViolation::Overwritten {
                write,
                overwrite,
                read,
            } => {
                assert_eq!((write.client, write.id), (1, 1));
                assert_eq!((overwrite.client, overwrite.id), (1, 2));
                assert_eq!((read.client, read.id), (2, 2));
            }
            other => panic!("{other:?}"),
        }
        assert!(judge(&h).to_string().contains("client 2 #2"));
    }

    #[test]
    fn rejects_a_session_that_goes_back_to_an_older_value() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 20, KvOutput::value("1.1"), 30);
        done(
            &mut h,
            2,
            2,
            KvOp::put("x", "2.2"),
            40,
            KvOutput::Written,
            50,
        );
        done(&mut h, 2, 3, KvOp::get("x"), 60, KvOutput::value("1.1"), 70);
        assert!(matches!(
            violations(&h)[0],
            CausalViolation::Overwritten { .. }
        ));
    }

    #[test]
    fn rejects_absent_after_a_causally_earlier_write() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(
            &mut h,
            1,
            2,
            KvOp::put("y", "1.2"),
            20,
            KvOutput::Written,
            30,
        );
        done(&mut h, 2, 1, KvOp::get("y"), 40, KvOutput::value("1.2"), 50);
        done(&mut h, 2, 2, KvOp::get("x"), 60, none(), 70);
        match &violations(&h)[0] {
            CausalViolation::AbsentAfterWrite { write, read } => {
                assert_eq!((write.client, write.id), (1, 1));
                assert_eq!((read.client, read.id), (2, 2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accepts_absent_after_a_write_when_a_concurrent_delete_may_explain_it() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(
            &mut h,
            3,
            1,
            KvOp::delete("x"),
            0,
            KvOutput::Deleted { existed: true },
            10,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 20, KvOutput::value("1.1"), 30);
        done(&mut h, 2, 2, KvOp::get("x"), 40, none(), 50);
        assert!(judge(&h).is_consistent(), "{}", judge(&h));
        // The same delete causally before the write can no longer explain it.
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::delete("x"),
            0,
            KvOutput::Deleted { existed: false },
            5,
        );
        done(
            &mut h,
            1,
            2,
            KvOp::put("x", "1.2"),
            6,
            KvOutput::Written,
            10,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 20, KvOutput::value("1.2"), 30);
        done(&mut h, 2, 2, KvOp::get("x"), 40, none(), 50);
        assert!(matches!(
            violations(&h)[0],
            CausalViolation::AbsentAfterWrite { .. }
        ));
    }

    #[test]
    fn rejects_a_cycle_of_reads_from_the_causal_future() {
        // Each client reads the other's later write before making its own.
        let mut h = KvHistory::new();
        done(&mut h, 1, 1, KvOp::get("y"), 0, KvOutput::value("2.2"), 10);
        done(
            &mut h,
            1,
            2,
            KvOp::put("x", "1.2"),
            20,
            KvOutput::Written,
            30,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 0, KvOutput::value("1.2"), 10);
        done(
            &mut h,
            2,
            2,
            KvOp::put("y", "2.2"),
            20,
            KvOutput::Written,
            30,
        );
        match &violations(&h)[0] {
            CausalViolation::Cycle(ops) => assert_eq!(ops.len(), 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_a_value_never_written() {
        let mut h = KvHistory::new();
        done(&mut h, 1, 1, KvOp::get("x"), 0, KvOutput::value("9.9"), 10);
        assert!(matches!(violations(&h)[0], CausalViolation::ThinAir { .. }));
    }

    #[test]
    fn a_write_whose_outcome_is_unknown_may_be_read_and_then_overwrites() {
        // Client 1's put times out; client 2 reads it, so it took effect.
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        h.invoke(1, 2, KvOp::put("x", "1.2"), 20);
        h.info(1, 2, "timeout", 30);
        done(&mut h, 1, 3, KvOp::get("x"), 40, KvOutput::value("1.1"), 50);
        assert!(judge(&h).is_consistent(), "{}", judge(&h));
        done(&mut h, 2, 1, KvOp::get("x"), 60, KvOutput::value("1.2"), 70);
        done(&mut h, 2, 2, KvOp::get("x"), 80, KvOutput::value("1.1"), 90);
        assert!(matches!(
            violations(&h)[0],
            CausalViolation::Overwritten { .. }
        ));
    }

    #[test]
    fn compare_and_swap_reads_its_expected_value() {
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(
            &mut h,
            1,
            2,
            KvOp::put("x", "1.2"),
            20,
            KvOutput::Written,
            30,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 40, KvOutput::value("1.2"), 50);
        // Swapped from the value 1.2 overwrote: a read of an overwritten value.
        done(
            &mut h,
            2,
            2,
            KvOp::cas("x", Some("1.1"), "2.2"),
            60,
            KvOutput::Swapped,
            70,
        );
        assert!(matches!(
            violations(&h)[0],
            CausalViolation::Overwritten { .. }
        ));
    }

    #[test]
    fn a_message_between_clients_orders_their_operations() {
        // Client 1 writes x and tells client 2, which then reads x as absent: fine without
        // the message (concurrent), a violation with it.
        let mut h = KvHistory::new();
        done(
            &mut h,
            1,
            1,
            KvOp::put("x", "1.1"),
            0,
            KvOutput::Written,
            10,
        );
        done(&mut h, 2, 1, KvOp::get("x"), 20, none(), 30);
        let ops = h.operations().unwrap();
        assert!(causal::check(&ops).is_consistent());
        let told = causal::ClientMessage {
            from: (1, 1),
            to: (2, 1),
        };
        assert!(!causal::check_with_messages(&ops, &[told]).is_consistent());
    }
}
