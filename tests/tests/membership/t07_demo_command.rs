//! `viewsync demo` (the README's run command) runs to the end on a fresh machine: three members
//! join, each later one gets the state by transfer, one is killed while all multicast in total
//! order, and the demo's own comparison finds the same deliveries, in the same order, at every
//! member that moved on to the next view.

use std::time::Duration;
use viewsync_tests::process::{run_viewsync, timing_exclusive};

#[test]
fn the_demo_shows_the_same_total_order_at_every_member_across_a_crash() {
    let _timing = timing_exclusive();
    let out = run_viewsync(&["demo"], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "demo failed: {}\nstdout:\n{}",
        out.stderr,
        out.stdout
    );
    for needle in [
        "restore group=demo epoch=",
        "killing node 3",
        "nodes 1 and 2 went on to view",
        "total order and view synchrony held across the crash",
    ] {
        assert!(
            out.stdout.contains(needle),
            "no `{needle}` in:\n{}",
            out.stdout
        );
    }
    // Both survivors print the same service state when they enter the view after the crash
    // (the last two-member view; the first was before node 3 joined).
    let two_member: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("service-view") && l.contains("members=1,2 "))
        .map(|l| l.split("delivered=").nth(1).unwrap_or(""))
        .collect();
    assert!(two_member.len() >= 4, "{}", out.stdout);
    let after_crash = &two_member[two_member.len() - 2..];
    assert_eq!(after_crash[0], after_crash[1], "{}", out.stdout);
}
