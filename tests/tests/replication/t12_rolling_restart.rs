//! A rolling restart of a 3-member passive key-value group under continuous client load: each
//! member in turn is stopped with SIGTERM (it leaves gracefully), started again from its
//! configuration and data directory at the same address, and waited for until it is back in
//! the view with the group's state; then the next. Several front ends write and read all the
//! while. No client request may fail (the front ends retry transparently), every
//! acknowledged write must be read back at the end, and the recorded history must be
//! linearizable. The procedure is the one docs/OPERATIONS.md gives ("Rolling restart").

use super::fixture::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use viewsync_services::frontend::Routing;
use viewsync_services::history::Outcome;
use viewsync_services::state_machine::kv::{KvOp, KvOutput};
use viewsync_tests::process::{config_text, timing_shared, Cluster, NodeProcess};

/// Concurrent clients, each with its own front end.
const CLIENTS: u64 = 4;
/// How long the clients run in the full group before the first restart and after each.
const SETTLE: Duration = Duration::from_millis(700);
/// How long a restarted member may take to be back in the view with the state.
const REJOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Client `c`'s `n`-th operation: a put of a key of its own (so every acknowledged write
/// can be read back), every third one a get of its latest key.
fn op(c: u64, n: u64, _: &mut rand::rngs::StdRng) -> KvOp {
    if n % 3 == 0 {
        KvOp::get(format!("c{c}-{}", n - 1))
    } else {
        KvOp::put(format!("c{c}-{n}"), format!("v{n}"))
    }
}

/// Starts node `id` again at `addr` (its old address, as a restart with an unchanged
/// configuration does), its data directory as before, joining through the live members.
fn restart_at(cluster: &mut Cluster, id: u64, addr: SocketAddr) {
    let seeds: Vec<SocketAddr> = cluster.ids().into_iter().map(|n| cluster.addr(n)).collect();
    let extra = service_config(cluster, id, "passive", "kv", "grouped");
    let key = cluster.key_file.clone();
    let text = config_text(id, &seeds, Some(&key), &extra)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
    let path = cluster
        .dir
        .write(&format!("node{id}-restarted-{}.toml", addr.port()), &text);
    cluster.add(NodeProcess::start(&path, id));
}

#[test]
fn a_rolling_restart_under_load_fails_no_request_and_loses_no_write() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "grouped");
    let recorder = Recorder::new();
    let clients = Clients::start(
        CLIENTS,
        cluster.addrs(),
        key(&cluster),
        &recorder,
        Duration::from_millis(5),
        op,
        Routing::Primary,
    );
    std::thread::sleep(SETTLE);
    // The primary (node 1) first: the hardest turn, a failover under load.
    for id in [1, 2, 3] {
        let addr = cluster.addr(id);
        let stopped_at = Instant::now();
        let mut node = cluster.remove(id);
        node.sigterm();
        let status = node.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "node {id} stopped gracefully: {status}");
        drop(node);
        let others = cluster.ids();
        cluster.wait_converged(&others, REJOIN_TIMEOUT);
        restart_at(&mut cluster, id, addr);
        cluster.wait_converged(&[1, 2, 3], REJOIN_TIMEOUT);
        eprintln!(
            "node {id} restarted and back in the view with the state {} ms after its SIGTERM",
            stopped_at.elapsed().as_millis()
        );
        std::thread::sleep(SETTLE);
    }
    let acknowledged = clients.stop();
    eprintln!("acknowledged per client: {acknowledged:?}");
    assert!(
        acknowledged.iter().all(|n| *n > 0),
        "every client got answers"
    );

    // No request failed or ended with an unknown outcome.
    let history = recorder.history();
    let path = save_history(&cluster, "rolling-restart.jsonl", &history);
    let lines = history.to_json_lines();
    let failed: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains("\"kind\":\"fail\"") || l.contains("\"kind\":\"info\""))
        .collect();
    assert!(
        failed.is_empty(),
        "{} client requests failed (history at {}):\n{}",
        failed.len(),
        path.display(),
        failed.join("\n")
    );

    // Every acknowledged write is read back, through a new front end, into the history.
    let written: Vec<(String, String)> = history
        .operations()
        .expect("a well-formed history")
        .into_iter()
        .filter_map(|o| match (&o.op, &o.outcome) {
            (KvOp::Put { key, value }, Outcome::Ok(KvOutput::Written)) => {
                Some((key.clone(), value.clone()))
            }
            _ => None,
        })
        .collect();
    let keys: Vec<String> = written.iter().map(|(k, _)| k.clone()).collect();
    read_back(&cluster, &recorder, &keys);
    let history = recorder.history();
    let read: std::collections::BTreeMap<String, Option<String>> = history
        .operations()
        .expect("a well-formed history")
        .into_iter()
        .filter_map(|o| match (&o.op, o.result()) {
            (KvOp::Get { key }, Some(KvOutput::Value(v))) => Some((key.clone(), v.clone())),
            _ => None,
        })
        .collect();
    let lost: Vec<&(String, String)> = written
        .iter()
        .filter(|(k, v)| read.get(k) != Some(&Some(v.clone())))
        .collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    eprintln!(
        "{} acknowledged writes, all read back after restarting every member",
        written.len()
    );
    assert_linearizable(&cluster, &history);
}
