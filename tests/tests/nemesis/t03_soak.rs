//! The soak: a steady load for a bounded time (`SOAK_DURATION` seconds, 30 by default) on
//! two groups of real processes: a passive key-value group serving five clients, and a
//! log-service group whose members multicast at a steady rate while `viewsync send`
//! multicasts into it from outside once a second. Every node's resident memory and open
//! descriptors are sampled every second and must stay flat (see `soak.rs`); no view may
//! change (nothing was killed: a view change would be a false suspicion); every call and
//! every outside multicast succeeds.

use crate::group::NemesisGroup;
use crate::record::{Clients, Recorder, Tally};
use crate::run::{env_secs, nemesis_seed, ONE_AT_A_TIME};
use crate::soak::{sample, Series};
use crate::strategy::Strategy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use viewsync_tests::process::{run_viewsync, GROUP};
use viewsync_tests::service::{Group, SendPlan};

/// Multicasts per second each log-service member sends.
const SEND_RATE: u64 = 20;

#[test]
fn a_steady_load_keeps_memory_and_descriptors_flat_without_false_suspicions() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let duration = env_secs("SOAK_DURATION").unwrap_or(Duration::from_secs(30));
    let mut replicas = NemesisGroup::start(Strategy::Passive, 3).unwrap_or_else(|e| panic!("{e}"));
    let plan = SendPlan::new(SEND_RATE * (duration.as_secs() + 120), SEND_RATE);
    let (mut log_group, _) = Group::start(3, "", plan);
    let ids = [1u64, 2, 3];
    // Where each node's views stand: any view after these is a change during the soak.
    let replica_marks: Vec<usize> = ids
        .iter()
        .map(|id| replicas.cluster.node(*id).mark())
        .collect();
    let log_views: Vec<usize> = ids
        .iter()
        .map(|id| log_group.node(*id).log().service_views().len())
        .collect();
    let delivered_before: Vec<usize> = ids
        .iter()
        .map(|id| log_group.node(*id).delivered())
        .collect();

    let recorder = Recorder::discarding();
    let clients = Clients::start(
        &replicas,
        5,
        nemesis_seed(),
        Duration::from_millis(10),
        &recorder,
        false,
    );
    // Outside multicasts, once a second, through each member in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, key, addrs) = (stop.clone(), log_group.key_file(), log_group.addrs());
        std::thread::spawn(move || {
            let (mut sent, mut failed) = (0u64, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let via = addrs[sent as usize % addrs.len()].to_string();
                let message = format!("outside-{sent}");
                let key = key.display().to_string();
                let args = ["send", GROUP, &message, "--via", &via, "--key-file", &key];
                let out = run_viewsync(&args, Duration::from_secs(20));
                if !out.status.success() {
                    failed.push(format!("{message}: {} {}", out.status, out.stderr.trim()));
                }
                sent += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            (sent, failed)
        })
    };

    let mut series: Vec<(u32, Series)> = Vec::new();
    for id in ids {
        series.push((
            replicas.cluster.node(id).pid(),
            Series {
                name: format!("replica node {id}"),
                samples: Vec::new(),
            },
        ));
    }
    for id in ids {
        series.push((
            log_group.node(id).pid(),
            Series {
                name: format!("log node {id}"),
                samples: Vec::new(),
            },
        ));
    }
    let start = Instant::now();
    let mut next = start;
    while start.elapsed() < duration {
        for (pid, s) in &mut series {
            let taken = sample(*pid).unwrap_or_else(|| panic!("{} (pid {pid}) is gone", s.name));
            s.samples.push(taken);
        }
        next += Duration::from_secs(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut calls = Tally::default();
    for tally in clients.stop() {
        calls += tally;
    }
    let (sent, send_failures) = sender.join().expect("the sender thread");

    println!(
        "soak: {:.0} s; replica calls: {} ok, {} failed, {} indeterminate; outside multicasts: {sent} ({} failed)",
        start.elapsed().as_secs_f64(),
        calls.ok,
        calls.failed,
        calls.indeterminate,
        send_failures.len()
    );
    for (i, id) in ids.iter().enumerate() {
        let node = log_group.node(*id);
        println!(
            "  log node {id}: {} deliveries during the soak",
            node.delivered() - delivered_before[i]
        );
    }
    for (_, s) in &series {
        println!("  {}", s.summary());
    }

    let mut problems = Vec::new();
    if let Err(e) = replicas.check_running() {
        problems.push(e);
    }
    for (i, id) in ids.iter().enumerate() {
        let views = replicas.cluster.node(*id).views_since(replica_marks[i]);
        if !views.is_empty() {
            let views: Vec<String> = views.iter().map(|(_, v)| v.to_string()).collect();
            problems.push(format!(
                "replica node {id} changed view with nothing killed (a false suspicion): {}",
                views.join("; ")
            ));
        }
        let node = log_group.node(*id);
        if let Some(status) = node.try_exit() {
            problems.push(format!("log node {id} exited: {status}"));
        }
        let views = node.log().service_views();
        if views.len() != log_views[i] {
            problems.push(format!(
                "log node {id} changed view with nothing killed (a false suspicion): {:?}",
                &views[log_views[i]..]
            ));
        }
        if node.delivered() <= delivered_before[i] {
            problems.push(format!("log node {id} delivered nothing during the soak"));
        }
    }
    if calls.ok == 0 || calls.failed > 0 || calls.indeterminate > 0 {
        problems.push(format!("the replica calls did not all succeed: {calls:?}"));
    }
    if sent == 0 || !send_failures.is_empty() {
        problems.push(format!(
            "outside multicasts: {sent} sent, failed: {send_failures:?}"
        ));
    }
    for (_, s) in &series {
        if let Err(e) = s.flat() {
            problems.push(e);
        }
    }
    assert!(
        problems.is_empty(),
        "the soak failed:\n- {}",
        problems.join("\n- ")
    );
}
