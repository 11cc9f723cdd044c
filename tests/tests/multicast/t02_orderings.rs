//! The other orderings and safe delivery, each with a crash during traffic (three members
//! multicasting 1500 messages each at 500/s, one SIGKILLed after about half a second in the
//! view of three):
//!
//! - `ordering = "fifo"` and `"causal"`: members that go from a view to the same next view
//!   delivered the same set of messages in it, each sender's in order; the survivors enter
//!   the view after the crash with the same `delivered=` count (the `chain=` is order
//!   dependent: FIFO and causal orders may interleave senders differently per member);
//! - `delivery = "safe"` with total order: the same sequences, and uniformity: what the victim
//!   delivered in its last view, before it died, is a prefix of what the survivors delivered
//!   there (safe delivery waits until every member holds a message, so the survivors' cut
//!   covers it). The victim is node 1, the sequencer.
//!
//! Every delivery must carry the configured `ordering=`, and at the end every survivor has
//! delivered every survivor's 1500 messages.

use std::time::Duration;
use viewsync_tests::process::timing_exclusive;
use viewsync_tests::service::{Group, Ordering, SendPlan, SERVICE_CONVERGE_TIMEOUT};

const COUNT: u64 = 1500;
const RATE: u64 = 500;

fn crash_during_traffic(extra: &str, ordering: Ordering, safe: bool, victim: u64) {
    let _timing = timing_exclusive();
    let (mut group, _) = Group::start(3, extra, SendPlan::new(COUNT, RATE));
    let all = [1, 2, 3];
    group.wait_delivered_in_view(&all, 300, SERVICE_CONVERGE_TIMEOUT);

    let survivors: Vec<u64> = all.into_iter().filter(|id| *id != victim).collect();
    let marks: Vec<usize> = survivors.iter().map(|id| group.node(*id).mark()).collect();
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
        after.push((line.text, v));
    }
    let shown: Vec<&str> = after.iter().map(|(t, _)| t.as_str()).collect();
    let same_state = after.iter().all(|(_, v)| {
        (v.epoch, v.delivered) == (after[0].1.epoch, after[0].1.delivered)
            && (ordering != Ordering::Total || v.chain == after[0].1.chain)
    });
    assert!(
        same_state,
        "the survivors entered the first view without node {victim} with different states: {shown:#?}"
    );
    let post_epoch = after[0].1.epoch;

    group.wait_all_sent_delivered(&survivors, &survivors, COUNT, Duration::from_secs(60));
    let summary = group.check(&survivors, ordering);
    assert!(
        summary.refused.is_empty(),
        "members refused multicasts of their send plans (the log service then skips them): {:?}",
        summary.refused
    );
    println!(
        "{} (safe: {safe}), node {victim} killed: {shown:?}; deliveries per view: {:?}",
        ordering.name(),
        summary.epochs
    );
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

    for id in &survivors {
        let orderings = group.node(*id).log().orderings.clone();
        assert_eq!(
            orderings.keys().collect::<Vec<_>>(),
            vec![ordering.name()],
            "node {id}: deliveries per ordering= {orderings:?}"
        );
    }

    if safe {
        let victim_seq = group.node(victim).deliveries_in(pre_epoch);
        let survivor_seq = group.node(survivors[0]).deliveries_in(pre_epoch);
        let agree = victim_seq
            .iter()
            .zip(&survivor_seq)
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            agree == victim_seq.len() && victim_seq.len() <= survivor_seq.len(),
            "safe delivery: node {victim} delivered {} messages in view {pre_epoch} before it \
             was killed; node {} delivered {} there; they agree on the first {agree} only \
             (victim's next: {:?}, survivor's next: {:?})",
            victim_seq.len(),
            survivors[0],
            survivor_seq.len(),
            victim_seq.get(agree),
            survivor_seq.get(agree)
        );
        println!(
            "safe: the victim delivered {} of the survivors' {} deliveries in view {pre_epoch}",
            victim_seq.len(),
            survivor_seq.len()
        );
    }
}

#[test]
fn fifo_sets_agree_per_view_across_a_crash() {
    crash_during_traffic(
        "[multicast]\nordering = \"fifo\"\n",
        Ordering::Fifo,
        false,
        3,
    );
}

#[test]
fn causal_sets_agree_per_view_across_a_crash() {
    crash_during_traffic(
        "[multicast]\nordering = \"causal\"\n",
        Ordering::Causal,
        false,
        2,
    );
}

#[test]
fn safe_total_order_is_uniform_across_a_sequencer_crash() {
    crash_during_traffic(
        "[multicast]\nordering = \"total\"\ndelivery = \"safe\"\n",
        Ordering::Total,
        true,
        1,
    );
}
