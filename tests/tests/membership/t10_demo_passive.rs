//! `viewsync demo --strategy passive` (and `active`) runs to the end on a fresh machine: three
//! members run a replicated key-value store, clients write while the primary (under active
//! replication, the view's first member, the sequencer) is crashed, and every acknowledged
//! write is read back afterwards. An unknown strategy is refused, naming the
//! valid ones.

use std::time::Duration;
use viewsync_tests::process::{run_viewsync, timing_exclusive, timing_shared};

#[test]
fn the_passive_demo_crashes_the_primary_and_loses_no_acknowledged_write() {
    assert_demo_loses_nothing("passive", "[demo] crashing the primary, node 1");
}

#[test]
fn the_active_demo_crashes_the_sequencer_and_loses_no_acknowledged_write() {
    assert_demo_loses_nothing(
        "active",
        "[demo] crashing node 1, the view's first member and the total order's sequencer",
    );
}

/// `viewsync demo --strategy STRATEGY` succeeds, prints `crash_line`, and reads back every
/// acknowledged write, some acknowledged after the crash.
fn assert_demo_loses_nothing(strategy: &str, crash_line: &str) {
    let _timing = timing_exclusive();
    let out = run_viewsync(&["demo", "--strategy", strategy], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "demo failed: {}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    for needle in [
        "replica-restore group=kv epoch=",
        crash_line,
        "without node 1",
        "[demo] no acknowledged write lost: ",
    ] {
        assert!(
            out.stdout.contains(needle),
            "no `{needle}` in:\n{}",
            out.stdout
        );
    }
    // "N of N read back", with writes acknowledged on both sides of the crash (the demo
    // crashes the primary after 60 of its 120 writes).
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("no acknowledged write lost"))
        .expect("the verdict line");
    let counts: Vec<u64> = line
        .split(": ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(" read back"))
        .map(|rest| rest.split(" of ").filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default();
    assert!(
        counts.len() == 2 && counts[0] == counts[1] && counts[0] > 60,
        "{line}"
    );
    // The survivors' replicas print the view without the crashed primary.
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("[node 2] replica-view") && l.ends_with("members=2,3")),
        "{}",
        out.stdout
    );
}

#[test]
fn an_unknown_demo_strategy_is_refused_naming_the_valid_ones() {
    let _shared = timing_shared();
    let out = run_viewsync(&["demo", "--strategy", "paxos"], Duration::from_secs(10));
    assert!(!out.status.success(), "{}", out.stdout);
    for name in [
        "paxos",
        "log",
        "passive",
        "passive-backup-reads",
        "active",
        "active-local-reads",
        "naive",
        "gossip",
    ] {
        assert!(out.stderr.contains(name), "no `{name}` in:\n{}", out.stderr);
    }
}

/// `viewsync demo --strategy gossip`: members answer at once, the crashed member is restarted
/// from its data directory, and a reader that observed the clients' tokens reads back every
/// acknowledged write.
#[test]
fn the_gossip_demo_restarts_the_crashed_member_and_reads_everything_back() {
    let _timing = timing_exclusive();
    let out = run_viewsync(&["demo", "--strategy", "gossip"], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "demo failed: {}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    for needle in [
        "[demo] strategy gossip",
        "[demo] restarting node 1 from its data directory",
        "[demo] no acknowledged write lost: 120 of 120 read back",
    ] {
        assert!(
            out.stdout.contains(needle),
            "no `{needle}` in:\n{}",
            out.stdout
        );
    }
}
