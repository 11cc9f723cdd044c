//! A fourth member joins while three multicast 2000 messages a second each (total order).
//! The joiner gets the service state by state transfer: its `restore` line must carry exactly
//! the `delivered=`/`chain=` the three members printed on entering that view (everything
//! delivered before the join, in the same order), and its own `service-view` line the same.
//! Afterwards all four deliver the same sequence in that view, the joiner's own multicasts
//! included, and view synchrony holds over all four logs.

use std::time::Duration;
use viewsync_tests::process::timing_exclusive;
use viewsync_tests::service::{restore, Group, Ordering, SendPlan, SERVICE_CONVERGE_TIMEOUT};

const COUNT: u64 = 12_000;
const JOINER_COUNT: u64 = 4_000;
const RATE: u64 = 2_000;

#[test]
fn a_joiner_restores_the_state_of_the_view_it_joins() {
    let _timing = timing_exclusive();
    let (mut group, _) = Group::start(3, "", SendPlan::new(COUNT, RATE));
    group.wait_delivered_in_view(&[1, 2, 3], 1000, SERVICE_CONVERGE_TIMEOUT);
    let marks: Vec<usize> = (1..=3).map(|id| group.node(id).mark()).collect();

    let seeds = group.addrs();
    group.launch(4, &seeds, "", SendPlan::new(JOINER_COUNT, RATE));
    let line = group.node(4).wait_event(
        0,
        "`restore` line (state transfer on joining)",
        SERVICE_CONVERGE_TIMEOUT,
        |l| l.starts_with("restore "),
    );
    let restore =
        restore(&line.text).unwrap_or_else(|| panic!("unparsable restore line: {}", line.text));
    let (_, joined) =
        group
            .node(4)
            .wait_service_view(0, "`service-view` line", SERVICE_CONVERGE_TIMEOUT, |_| true);
    assert_eq!(
        joined.epoch, restore.epoch,
        "the joiner's first service view is the one its state is the start of: {} then {joined:?}",
        line.text
    );
    assert_eq!(joined.sorted_members(), vec![1, 2, 3, 4], "{joined:?}");
    assert_eq!(
        (joined.delivered, &joined.chain),
        (restore.delivered, &restore.chain),
        "{}",
        line.text
    );
    assert!(
        restore.delivered >= 1000,
        "the state covers what the group delivered before the join: {}",
        line.text
    );
    for (id, mark) in (1..=3).zip(marks) {
        let (text, view) = {
            let (l, v) = group.node(id).wait_service_view(
                mark,
                &format!("service-view of epoch {} (node 4 joins)", restore.epoch),
                SERVICE_CONVERGE_TIMEOUT,
                |v| v.epoch >= restore.epoch,
            );
            (l.text, v)
        };
        assert_eq!(
            view.epoch, restore.epoch,
            "node {id} skipped the view node 4 joined: {text}"
        );
        assert_eq!(
            (view.delivered, &view.chain),
            (restore.delivered, &restore.chain),
            "node {id} entered view {} with another state than node 4 restored:\n  node {id}: {text}\n  node 4: {}",
            restore.epoch,
            line.text
        );
    }
    println!("node 4 joined: {}", line.text);

    // Everyone's multicasts, the joiner's included, reach all four.
    let all = [1, 2, 3, 4];
    group.wait_all_sent_delivered(&all, &[1, 2, 3], COUNT, Duration::from_secs(60));
    group.wait_all_sent_delivered(&all, &[4], JOINER_COUNT, Duration::from_secs(60));
    let summary = group.check(&all, Ordering::Total);
    assert!(
        summary.refused.is_empty(),
        "members refused multicasts of their send plans (the log service then skips them): {:?}",
        summary.refused
    );
    println!("deliveries per view: {:?}", summary.epochs);

    // All traffic is delivered: in the view node 4 joined, all four delivered one sequence
    // (unless another view followed, in which case the check above compared it).
    let sequences: Vec<_> = all
        .iter()
        .map(|id| group.node(*id).deliveries_in(restore.epoch))
        .collect();
    let latest: Vec<u64> = all
        .iter()
        .map(|id| {
            group
                .node(*id)
                .log()
                .latest_service_view()
                .map_or(0, |v| v.epoch)
        })
        .collect();
    if latest.iter().all(|e| *e == restore.epoch) {
        for (id, seq) in all.iter().zip(&sequences) {
            assert!(
                seq == &sequences[0],
                "nodes 1 and {id} delivered different sequences in view {}: {} and {} deliveries",
                restore.epoch,
                sequences[0].len(),
                seq.len()
            );
        }
    }
    // Node 4 joined as a learner and is promoted to a voter by the next view change: count
    // its messages from the view it joined on.
    let last = latest.iter().copied().max().unwrap_or(restore.epoch);
    let from_joiner = (restore.epoch..=last)
        .map(|epoch| {
            group
                .node(4)
                .deliveries_in(epoch)
                .iter()
                .filter(|d| d.sender == 4)
                .count() as u64
        })
        .sum::<u64>();
    assert!(
        from_joiner >= JOINER_COUNT.min(1000),
        "node 4 multicast from the view it joined on: {from_joiner} of its messages delivered"
    );
    println!(
        "view {}: {} deliveries at each member, {from_joiner} from the joiner",
        restore.epoch,
        sequences[0].len()
    );
}
