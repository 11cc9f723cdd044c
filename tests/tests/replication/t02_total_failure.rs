//! A whole group killed at once (SIGKILL of every member, as a power loss of the processes)
//! and restarted re-forms from its data directories once a majority of its last view is back,
//! from the most advanced state, with every acknowledged write.

use super::fixture::*;
use std::time::Duration;
use viewsync::runtime::data_dir;
use viewsync_services::frontend::Routing;
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::{timing_shared, CONVERGE_TIMEOUT, GROUP};

#[test]
fn a_group_killed_whole_and_restarted_keeps_every_acknowledged_write() {
    let _shared = timing_shared();
    for durability in ["fsync", "grouped"] {
        let mut cluster = start_cluster(3, "passive", "kv", durability);
        let key = key(&cluster);
        let writes = 60;
        runtime().block_on(async {
            let mut fe = front_end::<KvStore>(cluster.addrs(), key.clone(), "kv", Routing::Primary);
            for i in 0..writes {
                fe.call(KvOp::put(format!("k{i}"), format!("v{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("write {i} ({durability}): {e}"));
            }
        });
        // The coordinator accepted every view it proposed, and recorded the last one before
        // anything of the view change left (the record a total failure must not lose).
        let group = viewsync::GroupName::new(GROUP).unwrap();
        let data1 = cluster.dir.path().join("data1");
        let last = data_dir::recorded_last_view(&data1, &group).expect("readable");
        let accepted = data_dir::recorded_accepted_view(&data1, &group).expect("readable");
        assert!(
            last.is_some() && accepted.as_ref().map(|a| &a.view) == last.as_ref(),
            "node 1 recorded accepting its last view: {accepted:?} vs {last:?}"
        );
        // Every member at once.
        for id in [1, 2, 3] {
            cluster.node(id).sigkill();
        }
        for id in [1, 2, 3] {
            drop(cluster.remove(id));
        }
        // Restarted one by one, each knowing only those restarted before it.
        for id in [1, 2, 3] {
            restart(&mut cluster, id, "passive", "kv", durability);
        }
        cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT * 2);
        runtime().block_on(async {
            let mut fe = front_end::<KvStore>(cluster.addrs(), key, "kv", Routing::Primary);
            for i in 0..writes {
                let got = fe
                    .call(KvOp::get(format!("k{i}")))
                    .await
                    .unwrap_or_else(|e| panic!("read {i} ({durability}): {e}"));
                assert_eq!(
                    got,
                    KvOutput::value(&format!("v{i}")),
                    "acknowledged write k{i} after a total failure ({durability})"
                );
            }
        });
        let re_formed = [1, 2, 3].iter().any(|id| {
            cluster
                .node(*id)
                .stderr_lines()
                .iter()
                .any(|l| l.contains("may re-form the group"))
        });
        assert!(re_formed, "the restarted members recovered their claims");
        std::thread::sleep(Duration::from_millis(10));
    }
}
