//! A member crashes (SIGKILL) while all four members multicast (total order): the survivors
//! install a view without it and go on, and their logs satisfy view synchrony. The strong
//! check: the survivors enter the view after the crash with the same `delivered=` and
//! `chain=`, i.e. they delivered the same messages in the same order before it, including
//! whatever of the victim's last multicasts they delivered. Killing node 1 kills the
//! coordinator and the total-order sequencer at once: the survivors must then order the rest
//! of the old view's cut by themselves, the same way.
//!
//! Traffic: 3000 messages per node at 400/s (the crash comes about a second into the
//! view of four), so the senders are still sending when the view changes; at the end every
//! survivor must have delivered every survivor's 3000 messages, exactly once.

use std::time::Duration;
use viewsync_tests::process::timing_exclusive;
use viewsync_tests::service::{Group, Ordering, SendPlan, SERVICE_CONVERGE_TIMEOUT};

const COUNT: u64 = 3000;
const RATE: u64 = 400;

fn kill_during_traffic(victim: u64) {
    let _timing = timing_exclusive();
    let (mut group, view) = Group::start(4, "", SendPlan::new(COUNT, RATE));
    let all = [1, 2, 3, 4];
    assert_eq!(view.coordinator, 1, "node 1 created the group: {view:?}");
    // Traffic flows in the view of the four.
    group.wait_delivered_in_view(&all, 300, SERVICE_CONVERGE_TIMEOUT);

    let survivors: Vec<u64> = all.into_iter().filter(|id| *id != victim).collect();
    let marks: Vec<usize> = survivors.iter().map(|id| group.node(*id).mark()).collect();
    let victim_delivered = group.node(victim).delivered();
    group.node(victim).sigkill();
    group.node(victim).wait_exit(Duration::from_secs(5));

    let mut after = Vec::new();
    for (id, mark) in survivors.iter().zip(marks) {
        let (line, v) = group.node(*id).wait_service_view(
            mark,
            &format!("service-view without node {victim} (killed)"),
            SERVICE_CONVERGE_TIMEOUT,
            |v| !v.members.contains(&victim),
        );
        after.push((*id, line.text, v));
    }
    let shown: Vec<String> = after
        .iter()
        .map(|(id, text, _)| format!("node {id}: {text}"))
        .collect();
    let shown = shown.join("\n  ");
    println!("node {victim} killed after it delivered {victim_delivered}; survivors:\n  {shown}");
    assert!(
        after.iter().all(|(_, _, v)| v == &after[0].2),
        "the survivors entered the first view without node {victim} with different views or \
         states (delivered=/chain= must be identical: same history):\n  {shown}"
    );
    assert_eq!(after[0].2.sorted_members(), survivors, "{shown}");
    let post_epoch = after[0].2.epoch;

    // Traffic goes on: every survivor delivers every survivor's messages.
    group.wait_all_sent_delivered(&survivors, &survivors, COUNT, Duration::from_secs(60));

    let summary = group.check(&survivors, Ordering::Total);
    assert!(
        summary.refused.is_empty(),
        "members refused multicasts of their send plans (the log service then skips them): {:?}",
        summary.refused
    );
    println!(
        "deliveries per view (members, most by one): {:?}",
        summary.epochs
    );

    // The crash came during traffic: in the last view with the victim, the survivors
    // delivered messages of all four senders, and they went on after the crash.
    let pre_epoch = *summary
        .epochs
        .range(..post_epoch)
        .next_back()
        .expect("a view before the crash")
        .0;
    assert!(
        summary.compared_in_full.contains_key(&pre_epoch),
        "the survivors' view {pre_epoch} (before the crash) was not compared: {summary:?}"
    );
    let pre = group.node(survivors[0]).deliveries_in(pre_epoch);
    for sender in all {
        assert!(
            pre.iter().any(|d| u64::from(d.sender) == sender),
            "node {}: no delivery of node {sender} in view {pre_epoch}, the last before the crash",
            survivors[0]
        );
    }
    let post = group.node(survivors[0]).deliveries_in(post_epoch);
    assert!(
        post.len() >= 100,
        "node {}: only {} deliveries in view {post_epoch} after the crash",
        survivors[0],
        post.len()
    );
    let victim_msgs = pre.iter().filter(|d| u64::from(d.sender) == victim).count();
    println!(
        "view {pre_epoch}: {} deliveries at each survivor, {victim_msgs} of them from node {victim}; view {post_epoch}: {} and more",
        pre.len(),
        post.len()
    );
}

#[test]
fn sigkill_of_a_member_during_traffic() {
    kill_during_traffic(3);
}

#[test]
fn sigkill_of_the_coordinator_and_sequencer_during_traffic() {
    kill_during_traffic(1);
}
