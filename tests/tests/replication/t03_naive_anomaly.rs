//! The naive strategy (apply locally, propagate lazily) reproduces the reference notes' bank
//! anomaly on real processes, and the checkers reject the history: client 1 sets x=1 at B and
//! then y=2 at A; client 2, at A, reads y=2 and then x=0. This shows the checkers can fail on
//! a history recorded from the real system, and why passive replication exists.

use super::fixture::*;
use viewsync_services::frontend::Routing;
use viewsync_services::history::model::StateMachineModel;
use viewsync_services::history::{linearizability, sequential, SearchLimits};
use viewsync_services::state_machine::bank::{Bank, BankOp, BankOutput};
use viewsync_tests::process::timing_shared;

#[test]
fn the_naive_strategy_shows_the_bank_anomaly_and_the_checkers_reject_it() {
    let _shared = timing_shared();
    let cluster = start_cluster(2, "naive", "bank", "memory");
    let (a, b) = (cluster.addr(1), cluster.addr(2));
    let key = key(&cluster);
    let recorder = Recorder::new();
    let anomaly = runtime().block_on(async {
        // Every front end talks to one member only.
        let at = |addr| front_end::<Bank>(vec![addr], key.clone(), "bank", Routing::Anywhere);
        let (mut setup, mut c1_at_b, mut c1_at_a, mut c2_at_a) = (at(a), at(b), at(a), at(a));
        let (mut seq1, mut seq2) = (0, 0);
        // Lazy propagation may outrun us on a stalled machine: try a few rounds, each on
        // fresh accounts.
        for round in 0..5 {
            let (x, y) = (format!("x{round}"), format!("y{round}"));
            // Client 1 opens the accounts (so its program order puts the zeros first).
            for account in [&x, &y] {
                seq1 += 1;
                recorder
                    .call_as(1, seq1, &mut setup, BankOp::set(account.as_str(), 0))
                    .await
                    .unwrap();
            }
            // Both replicas hold the zeros before the scenario starts.
            tokio::time::sleep(std::time::Duration::from_millis(800)).await;
            seq1 += 1;
            recorder
                .call_as(1, seq1, &mut c1_at_b, BankOp::set(x.as_str(), 1))
                .await
                .unwrap();
            seq1 += 1;
            recorder
                .call_as(1, seq1, &mut c1_at_a, BankOp::set(y.as_str(), 2))
                .await
                .unwrap();
            seq2 += 1;
            let seen_y = recorder
                .call_as(2, seq2, &mut c2_at_a, BankOp::get(y.as_str()))
                .await
                .unwrap();
            seq2 += 1;
            let seen_x = recorder
                .call_as(2, seq2, &mut c2_at_a, BankOp::get(x.as_str()))
                .await
                .unwrap();
            if seen_y == BankOutput::Balance(2) && seen_x == BankOutput::Balance(0) {
                return Some(round);
            }
        }
        None
    });
    let round = anomaly.expect("client 2 saw y=2 and then x=0 in one of 5 rounds");
    eprintln!("the anomaly appeared in round {round}");
    let history = recorder.history();
    save_history(&cluster, "naive-history.jsonl", &history);
    let operations = history.operations().unwrap();
    let model = StateMachineModel::new(Bank::new());
    let lin = linearizability::check(&model, &operations, SearchLimits::default());
    assert!(lin.is_violation(), "linearizability rejects it: {lin:?}");
    let sc = sequential::check(&model, &operations, SearchLimits::default());
    assert!(
        matches!(sc, sequential::SequentialConsistency::NotConsistent(_)),
        "sequential consistency rejects it too: {sc:?}"
    );
    let _ = cluster.ids();
}
