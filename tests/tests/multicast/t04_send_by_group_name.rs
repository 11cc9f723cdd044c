//! `viewsync send GROUP MESSAGE --via ADDR --key-file KEY` multicasts from outside the group:
//! every member delivers the message exactly once, in the same view and (total order) at the
//! same place in the sequence, while the members' own traffic goes on. Without the cluster
//! key (another key, or none) the command fails and nobody delivers the message.

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use viewsync_tests::process::{new_key_hex, run_viewsync, timing_shared, GROUP};
use viewsync_tests::service::{Group, Ordering, SendPlan, SERVICE_CONVERGE_TIMEOUT};

const COUNT: u64 = 1200;
const RATE: u64 = 200;

fn send(
    message: &str,
    via: &[std::net::SocketAddr],
    key: Option<&Path>,
) -> viewsync_tests::process::CliOutput {
    let mut args: Vec<String> = vec!["send".into(), GROUP.into(), message.into()];
    for addr in via {
        args.push("--via".into());
        args.push(addr.to_string());
    }
    if let Some(key) = key {
        args.push("--key-file".into());
        args.push(key.display().to_string());
    }
    run_viewsync(&args, Duration::from_secs(20))
}

#[test]
fn an_outsider_multicasts_by_group_name() {
    let _timing = timing_shared();
    let (mut group, _) = Group::start(3, "", SendPlan::new(COUNT, RATE));
    let all = [1, 2, 3];
    group.wait_delivered_in_view(&all, 100, SERVICE_CONVERGE_TIMEOUT);

    // With the cluster key, resolving the group through node 2.
    let key = group.key_file();
    let out = send("hello-outsider", &[group.node(2).addr], Some(&key));
    assert!(
        out.status.success(),
        "viewsync send: {}\nstdout: {}\nstderr: {}",
        out.status,
        out.stdout,
        out.stderr
    );
    let through: std::net::SocketAddr = out
        .stdout
        .trim()
        .strip_prefix(&format!("sent group={GROUP} via="))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected `viewsync send` output: {}", out.stdout));
    let through_node = all
        .into_iter()
        .find(|id| group.node(*id).addr == through)
        .unwrap_or_else(|| panic!("sent through {through}, not a member's address"));
    for id in all {
        group.node(id).wait_for(
            "delivery of hello-outsider",
            Duration::from_secs(10),
            |log| log.count_text("hello-outsider") >= 1,
        );
    }

    // With another key, and with none: refused, nothing delivered.
    let other_key = group
        .cluster
        .dir
        .write("other.key", &format!("{}\n", new_key_hex()));
    let via = group.addrs();
    let wrong = send("hello-wrong-key", &via, Some(&other_key));
    assert!(
        !wrong.status.success(),
        "viewsync send with another key must fail: {}\nstdout: {}\nstderr: {}",
        wrong.status,
        wrong.stdout,
        wrong.stderr
    );
    let none = send("hello-no-key", &via, None);
    assert!(
        !none.status.success(),
        "viewsync send without a key must fail: {}\nstdout: {}\nstderr: {}",
        none.status,
        none.stdout,
        none.stderr
    );
    println!(
        "refused sends: another key: {} / {}; no key: {} / {}",
        wrong.status,
        wrong.stderr.trim(),
        none.status,
        none.stderr.trim()
    );

    // Let the members' own traffic run out, so that anything in flight has arrived.
    group.wait_all_sent_delivered(&all, &all, COUNT, Duration::from_secs(60));
    let settle = Instant::now() + Duration::from_millis(500);
    while Instant::now() < settle {
        thread::sleep(Duration::from_millis(50));
    }
    for id in all {
        let log = group.node(id).log();
        let counts = (
            log.count_text("hello-outsider"),
            log.count_text("hello-wrong-key"),
            log.count_text("hello-no-key"),
        );
        drop(log);
        assert_eq!(
            counts,
            (1, 0, 0),
            "node {id}: deliveries of (hello-outsider, hello-wrong-key, hello-no-key)"
        );
    }
    // Same view, same place in the total order (also checked by `check`).
    let summary = group.check(&all, Ordering::Total);
    assert!(
        summary.refused.is_empty(),
        "members refused multicasts of their send plans (the log service then skips them): {:?}",
        summary.refused
    );
    println!("deliveries per view: {:?}", summary.epochs);
    let places: Vec<(u32, u32, usize)> = all
        .iter()
        .map(|id| {
            let log = group.node(*id).log();
            let (i, d) = log
                .deliveries
                .iter()
                .enumerate()
                .find(|(_, d)| d.payload.to_string() == "hello-outsider")
                .expect("delivered");
            let start = log
                .deliveries
                .iter()
                .position(|x| x.epoch == d.epoch)
                .expect("its view");
            (d.epoch, d.sender, i - start)
        })
        .collect();
    assert!(
        places.iter().all(|p| *p == places[0]),
        "hello-outsider (view, sender, place in the view) per member: {places:?}"
    );
    assert_eq!(
        u64::from(places[0].1),
        through_node,
        "the member it was sent through multicasts it: {places:?}"
    );
}
