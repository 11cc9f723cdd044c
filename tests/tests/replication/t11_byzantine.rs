//! The Byzantine strategy on real processes (`strategy = "active-byzantine"`, f = 1, three
//! members, each with its own signing key): front ends send every request to every member
//! and take the reply two of them signed.
//!
//! - under load, the view's first member (the sequencer) killed with SIGKILL and restarted,
//!   and another member stopped (SIGSTOP) for longer than the failure detector's timeout:
//!   the history is linearizable and every acknowledged write is read back;
//! - a member that signs with a key the front ends do not list (it believes its own list: a
//!   replica that lies about who it is) is outvoted: its replies are counted as rejected and
//!   every result is the one the two others signed;
//! - two such members (more than f): no reply is trusted, and calls end unavailable instead
//!   of returning what one member alone signed;
//! - `viewsync client --replica-keys` talks to the group.

use super::fixture::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use viewsync::GroupName;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, FrontEndError, SignedReplies};
use viewsync_services::replication::signed;
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::{timing_shared, Cluster, NodeProcess, CONVERGE_TIMEOUT, GROUP};

/// Each member's signing key file and public key.
struct Keys {
    files: BTreeMap<u64, PathBuf>,
    public: BTreeMap<u64, String>,
}

impl Keys {
    /// A key per member of `ids`, written under `dir` with `tag` in the file names.
    fn new(dir: &Path, ids: &[u64], tag: &str) -> Keys {
        let mut keys = Keys {
            files: BTreeMap::new(),
            public: BTreeMap::new(),
        };
        for id in ids {
            let path = dir.join(format!("{tag}-node{id}.key"));
            let key = signed::generate_signing_key();
            signed::write_signing_key(&path, &key).expect("a new key file");
            keys.files.insert(*id, path);
            keys.public
                .insert(*id, signed::public_key_hex(&key.verifying_key()));
        }
        keys
    }

    /// The `[service.replica_keys]` table and `f`.
    fn toml(&self) -> String {
        let lines: String = self
            .public
            .iter()
            .map(|(id, key)| format!("{id} = \"{key}\"\n"))
            .collect();
        format!("f = 1\n[service.replica_keys]\n{lines}")
    }

    /// What a front end trusts.
    fn trusted(&self) -> SignedReplies {
        let keys = self
            .public
            .iter()
            .map(|(id, key)| {
                let key = signed::parse_public_key(key, "test key").unwrap();
                (viewsync::NodeId(*id), key)
            })
            .collect();
        SignedReplies {
            f: 1,
            keys: signed::ReplicaKeys::new(keys),
        }
    }
}

/// Node `id`'s configuration: the Byzantine strategy, signing with `keys`' key for it and
/// believing `keys`' list.
fn byzantine_config(cluster: &Cluster, id: u64, keys: &Keys) -> String {
    let service = service_config(cluster, id, "active-byzantine", "kv", "grouped");
    format!(
        "{service}signing_key_file = {:?}\n{}",
        keys.files[&id].display().to_string(),
        keys.toml()
    )
}

/// Starts nodes 1 to 3, node `id` configured with `keys_of(id)`, and waits for one view.
fn start<'k>(cluster: &mut Cluster, keys_of: impl Fn(u64) -> &'k Keys) {
    for id in 1..=3 {
        let seeds = cluster.addrs();
        let extra = byzantine_config(cluster, id, keys_of(id));
        cluster.launch(id, &seeds, &extra);
    }
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
}

/// Restarts node `id` (killed before) from its data directory, configured with `keys`.
fn restart_byzantine(cluster: &mut Cluster, id: u64, keys: &Keys) {
    let seeds: Vec<_> = cluster
        .ids()
        .into_iter()
        .filter(|n| *n != id)
        .map(|n| cluster.addr(n))
        .collect();
    let extra = byzantine_config(cluster, id, keys);
    let key = cluster.key_file.clone();
    let config = cluster.write_config(id, &seeds, Some(&key), &extra);
    cluster.add(NodeProcess::start(&config, id));
}

/// A front end trusting `keys`, through every member.
fn signed_front_end(cluster: &Cluster, keys: &Keys, deadline: Duration) -> FrontEnd<KvStore> {
    let mut config = FrontEndConfig::new(GroupName::new(GROUP).unwrap(), cluster.addrs(), "kv");
    config.key = Some(key(cluster));
    config.signed_replies = Some(keys.trusted());
    config.attempt_timeout = Duration::from_millis(1_000);
    config.deadline = deadline;
    FrontEnd::new(config)
}

/// Sends SIGSTOP or SIGCONT to `node`.
fn signal(node: &mut NodeProcess, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), node.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name}");
}

#[test]
fn a_byzantine_group_stays_linearizable_through_a_killed_sequencer_and_a_stopped_member() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let keys = Keys::new(cluster.dir.path(), &[1, 2, 3], "real");
    start(&mut cluster, |_| &keys);
    let recorder = Recorder::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            let mut fe = signed_front_end(&cluster, &keys, Duration::from_secs(20));
            let (recorder, stop) = (recorder.clone(), stop.clone());
            std::thread::spawn(move || {
                use rand::SeedableRng;
                let mut rng = rand::rngs::StdRng::seed_from_u64(c);
                runtime().block_on(async move {
                    let (mut k, mut acknowledged, mut rejected) = (0, 0u64, 0u64);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        k += 1;
                        if recorder
                            .call(&mut fe, mixed_op(c, k, &mut rng))
                            .await
                            .is_ok()
                        {
                            acknowledged += 1;
                        }
                        rejected = fe.rejected_replies();
                        tokio::time::sleep(Duration::from_millis(3)).await;
                    }
                    (acknowledged, rejected)
                })
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    // The sequencer (the view's first member), killed and restarted from its directory.
    cluster.node(1).sigkill();
    let _ = cluster.remove(1);
    cluster.wait_converged(&[2, 3], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(800));
    restart_byzantine(&mut cluster, 1, &keys);
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT);
    std::thread::sleep(Duration::from_millis(800));
    // Another member stopped for longer than the failure detector's timeout: the two others
    // go on (two signatures are enough), then it comes back.
    signal(cluster.node(3), "STOP");
    std::thread::sleep(Duration::from_millis(2_000));
    signal(cluster.node(3), "CONT");
    cluster.wait_converged(&[1, 2, 3], CONVERGE_TIMEOUT * 2);
    std::thread::sleep(Duration::from_millis(800));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let results: Vec<(u64, u64)> = clients
        .into_iter()
        .map(|t| t.join().expect("a client"))
        .collect();
    assert!(
        results.iter().all(|(acknowledged, _)| *acknowledged > 10),
        "every client made progress: {results:?}"
    );
    assert!(
        results.iter().all(|(_, rejected)| *rejected == 0),
        "honest members sign what verifies: {results:?}"
    );
    // The final reads, through a trusting front end, into the history.
    runtime().block_on(async {
        let mut fe = signed_front_end(&cluster, &keys, Duration::from_secs(20));
        for k in MIXED_KEYS {
            recorder
                .call(&mut fe, KvOp::get(k))
                .await
                .expect("the final reads are answered");
        }
    });
    assert_linearizable(&cluster, &recorder.history());
}

#[test]
fn a_member_signing_with_a_key_nobody_trusts_is_outvoted() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let keys = Keys::new(cluster.dir.path(), &[1, 2, 3], "real");
    // Node 3 signs with a key of its own and lists it for itself: its configuration is
    // consistent, so it starts and answers, but nobody else trusts that key.
    let impostor = Keys::new(cluster.dir.path(), &[1, 2, 3], "impostor");
    start(&mut cluster, |id| if id == 3 { &impostor } else { &keys });
    runtime().block_on(async {
        let mut fe = signed_front_end(&cluster, &keys, Duration::from_secs(20));
        for i in 0..30 {
            let key = format!("k{}", i % 5);
            let written = fe.call(KvOp::put(key.as_str(), format!("v{i}"))).await;
            assert_eq!(written.unwrap(), KvOutput::Written, "write {i}");
            let read = fe.call(KvOp::get(key.as_str())).await;
            assert_eq!(read.unwrap(), KvOutput::value(&format!("v{i}")), "read {i}");
        }
        // Every call asked all three; node 3's replies that arrived did not verify.
        assert!(
            fe.rejected_replies() > 0,
            "the impostor's replies reached the front end and were refused"
        );
    });
}

#[test]
fn with_more_than_f_impostors_no_reply_is_trusted() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let keys = Keys::new(cluster.dir.path(), &[1, 2, 3], "real");
    let impostors = Keys::new(cluster.dir.path(), &[1, 2, 3], "impostor");
    start(&mut cluster, |id| if id == 1 { &keys } else { &impostors });
    runtime().block_on(async {
        let mut fe = signed_front_end(&cluster, &keys, Duration::from_secs(3));
        match fe.call(KvOp::put("x", "1")).await {
            Err(error @ FrontEndError::Unavailable { .. }) => {
                assert!(error.outcome_unknown(), "{error}");
            }
            other => panic!("one trusted signature is not f + 1: {other:?}"),
        }
        assert!(fe.rejected_replies() >= 2, "{}", fe.rejected_replies());
    });
}

#[test]
fn the_client_command_takes_the_replica_keys_of_a_node_configuration() {
    let _shared = timing_shared();
    let mut cluster = Cluster::new();
    let keys = Keys::new(cluster.dir.path(), &[1, 2, 3], "real");
    start(&mut cluster, |_| &keys);
    let trust = cluster.dir.write("trust.toml", &keys.toml());
    let trust = trust.display().to_string();
    let client = |via: u64, args: &[&str]| {
        let mut all = vec!["--replica-keys", trust.as_str()];
        all.extend_from_slice(args);
        viewsync_client(&cluster, cluster.addr(via), &all)
    };
    let out = client(2, &["put", "colour", "blue"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "ok"),
        "{out:?}"
    );
    let out = client(3, &["get", "colour"]);
    assert_eq!(
        (out.status.code(), out.stdout.trim()),
        (Some(0), "value=blue"),
        "{out:?}"
    );
    // A trust file that cannot be used is named, and nothing is sent.
    let bad = cluster.dir.write(
        "bad-trust.toml",
        "f = 1
[replica_keys]
1 = \"zz\"
",
    );
    let out = viewsync_client(
        &cluster,
        cluster.addr(1),
        &[
            "--replica-keys",
            &bad.display().to_string(),
            "get",
            "colour",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stderr.contains("replica_keys"), "{out:?}");
}
