//! `passive-backup-reads`: reads served by the member each front end chose (backups
//! included), updates by the primary. Concurrent clients' histories are sequentially
//! consistent (checked), and each client sees its own writes (the front end's `after`
//! position). Linearizability is not promised: a backup may answer before it has applied
//! another client's acknowledged write (the replication core's unit tests show such a
//! history, and the checker rejecting it).

use super::fixture::*;
use rand::{Rng, SeedableRng};
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::{KvOp, KvStore};
use viewsync_tests::process::timing_shared;

#[test]
fn reads_at_backups_are_sequentially_consistent() {
    let _shared = timing_shared();
    let cluster = start_cluster(3, "passive-backup-reads", "kv", "grouped");
    let addrs = cluster.addrs();
    let key = key(&cluster);
    let recorder = Recorder::new();
    let workers: Vec<_> = (0..3usize)
        .map(|c| {
            // Each client's first seed is a different member: its reads go there.
            let mut seeds = addrs.clone();
            seeds.rotate_left(c % addrs.len());
            let (key, recorder) = (key.clone(), recorder.clone());
            std::thread::spawn(move || {
                runtime().block_on(async move {
                    let mut fe = front_end::<KvStore>(seeds, key, "kv", Routing::ReadsAnywhere);
                    let mut rng = rand::rngs::StdRng::seed_from_u64(40 + c as u64);
                    for n in 0..40 {
                        let k = ["a", "b"][rng.gen_range(0..2)];
                        let op = if rng.gen_bool(0.4) {
                            KvOp::put(k, format!("c{c}-{n}"))
                        } else {
                            KvOp::get(k)
                        };
                        recorder.call(&mut fe, op).await.expect("answered");
                    }
                })
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_sequentially_consistent(&cluster, "backup-reads-history.jsonl", &recorder.history());
}
