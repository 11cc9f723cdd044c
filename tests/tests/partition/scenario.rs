//! The partition scenario of the passive and active strategies: clients on both sides, some
//! members isolated, what each side answers, the heal, and the history judged.

use crate::harness::*;
use crate::replication::{assert_linearizable, mixed_op, Recorder, MIXED_KEYS};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use viewsync::wire::BlockedReason;
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, Routing};
use viewsync_services::state_machine::kv::{KvOp, KvStore};
use viewsync_tests::netns::say;
use viewsync_tests::process::GROUP;

/// How the isolated members are taken off the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Their bridge port goes down: their traffic vanishes both ways.
    Cut,
    /// They are moved to a bridge of their own: they reach each other, not the others.
    SplitOff,
    /// Their own link goes down inside their host: their sends fail at once.
    Unplug,
    /// What they send is dropped; they still receive.
    DropOutgoing,
    /// What is sent to them is dropped; they still send.
    DropIncoming,
}

/// One run of the scenario.
pub struct Scenario {
    /// The test's name (printed when it skips).
    pub test: &'static str,
    /// How many members.
    pub members: u64,
    /// `passive` or `active`.
    pub strategy: &'static str,
    /// How the clients route their requests.
    pub routing: Routing,
    /// The members taken off the network (a minority).
    pub isolated: &'static [u64],
    /// How.
    pub fault: Fault,
    /// How long the majority serves on once the isolated members refuse (the partition
    /// lasts about 5 s longer: detection, the refusal, the command-line checks).
    pub hold: Duration,
    /// The longest the group may take to be one view again after the heal.
    pub heal_within: Duration,
}

/// The usual [`Scenario::hold`].
pub const HOLD: Duration = Duration::from_secs(3);

const MAJORITY_CLIENTS: u64 = 3;

/// Runs the scenario: clients on the majority's side (on the client host, through every
/// member) and inside each isolated member (through it alone) run mixed key-value
/// operations; the isolated members are taken off; then, checked:
///
/// - each member of the majority installs a view of exactly the majority;
/// - each isolated member answers a request with `Blocked` for want of a majority (its
///   reachable voters fewer than needed), within the request's round trip, and `viewsync
///   client` / `viewsync members` inside its host say `no majority` (exit 2 and 3);
/// - the majority's clients get answers meanwhile; no call of an isolated member's clients
///   invoked once it refuses is answered with data, and each names the missing majority;
/// - no isolated member installs a view while it is off;
/// - after the heal every member is in one view of all of them, the isolated members'
///   clients are answered again, and the whole history, with a final read of every key, is
///   linearizable.
pub fn minority_refuses_majority_goes_on(s: &Scenario) {
    let Some(mut p) = Partitioned::start(s.test, s.members, s.strategy) else {
        return;
    };
    let majority: Vec<u64> = p
        .ids
        .iter()
        .copied()
        .filter(|id| !s.isolated.contains(id))
        .collect();
    assert!(majority.len() > s.isolated.len(), "isolate a minority");
    let (addrs, key) = (p.addrs(), p.key());
    let recorder = Recorder::new();
    let mut workers = Workers::default();
    let majority_config = WorkerConfig {
        routing: s.routing,
        attempt_timeout: Duration::from_secs(1),
        deadline: Duration::from_secs(20),
        pause: Duration::from_millis(10),
    };
    for c in 0..MAJORITY_CLIENTS {
        let mut seeds = addrs.clone();
        let len = seeds.len();
        seeds.rotate_left(c as usize % len);
        let key = key.clone();
        workers.start(
            &p.net,
            CLIENT_HOST,
            Side::Majority,
            c,
            seeds,
            key,
            &recorder,
            majority_config,
            mixed_op,
        );
    }
    // Inside each isolated member, a client talking to it alone (a short deadline: its
    // calls end in a few seconds whatever the member does; short attempts: after trying
    // the members it cannot reach, it comes back to its own within the call).
    let minority_config = WorkerConfig {
        attempt_timeout: Duration::from_millis(300),
        deadline: Duration::from_secs(2),
        pause: Duration::from_millis(50),
        ..majority_config
    };
    for (i, id) in s.isolated.iter().enumerate() {
        let addr = p.cluster.addr(*id);
        workers.start(
            &p.net,
            &host(*id),
            Side::Minority,
            MAJORITY_CLIENTS + i as u64,
            vec![addr],
            key.clone(),
            &recorder,
            minority_config,
            mixed_op,
        );
    }
    std::thread::sleep(Duration::from_secs(1));

    let marks: BTreeMap<u64, usize> = p
        .ids
        .clone()
        .into_iter()
        .map(|id| (id, p.cluster.node(id).mark()))
        .collect();
    let off_at = Instant::now();
    for id in s.isolated {
        let name = host(*id);
        let applied = match s.fault {
            Fault::Cut => {
                p.net.cut(&name);
                Ok(())
            }
            Fault::SplitOff => {
                p.net.split_off(&name);
                Ok(())
            }
            Fault::Unplug => {
                p.net.unplug(&name);
                Ok(())
            }
            Fault::DropOutgoing => p.net.drop_outgoing(&name),
            Fault::DropIncoming => p.net.drop_incoming(&name),
        };
        if let Err(reason) = applied {
            say(&format!(
                "SKIPPED: one-way loss unavailable: {reason} ({})",
                s.test
            ));
            workers.stop();
            return;
        }
    }
    eprintln!("{}: {:?} {:?}", s.test, s.fault, s.isolated);

    // The majority installs a view of exactly itself.
    for id in &majority {
        let (_, view) = p.cluster.node(*id).wait_view_from(
            marks[id],
            "a view of the majority alone",
            SETTLE,
            |v| v.sorted_members() == majority,
        );
        eprintln!(
            "node {id} installed {view:?} {:?} after the fault",
            off_at.elapsed()
        );
    }
    let majority_view_at = Instant::now();

    // Each isolated member refuses for want of a majority: a typed answer, at once.
    let mut refusing_at = Instant::now();
    for id in s.isolated {
        let (blocked, took) = p.wait_refuses_no_majority(*id, SETTLE);
        refusing_at = Instant::now();
        let BlockedReason::NoMajority {
            voters,
            reachable,
            needed,
        } = &blocked.reason
        else {
            unreachable!("waited for no majority");
        };
        eprintln!(
            "node {id} refuses {:?} after the fault ({took:?} to answer): {}",
            off_at.elapsed(),
            blocked.reason
        );
        assert_eq!(voters.len() as u64, s.members, "{blocked:?}");
        assert_eq!(*needed as u64, s.members / 2 + 1, "{blocked:?}");
        assert!(reachable.len() < *needed, "{blocked:?}");
        assert!(
            took < Duration::from_secs(2),
            "node {id} took {took:?} to refuse: an answer, not a timeout"
        );
        assert!(
            blocked.view.is_some(),
            "blocked in the view it had: {blocked:?}"
        );
    }

    // What a user sees inside the isolated host.
    let first = s.isolated[0];
    let via = p.cluster.addr(first).to_string();
    let client = p.cli_in(
        first,
        &[
            "client",
            "--group",
            GROUP,
            "--via",
            &via,
            "--timeout",
            "2s",
            "get",
            "a",
        ],
    );
    assert_eq!(client.status.code(), Some(2), "{client:?}");
    assert!(client.stderr.contains("no majority"), "{client:?}");
    let members = p.cli_in(first, &["members", GROUP, "--via", &via]);
    assert_eq!(members.status.code(), Some(3), "{members:?}");
    assert!(members.stdout.contains("no majority"), "{members:?}");

    // The majority keeps serving while the minority refuses.
    std::thread::sleep(s.hold);
    let heal_at = Instant::now();
    for id in s.isolated {
        let views = p.cluster.node(*id).views_since(marks[id]);
        assert!(
            views.is_empty(),
            "isolated node {id} installed a view: {:?}",
            views.iter().map(|(l, _)| &l.text).collect::<Vec<_>>()
        );
    }
    for id in s.isolated {
        p.net.heal(&host(*id));
    }
    let view = p.cluster.wait_converged(&p.ids.clone(), s.heal_within);
    eprintln!(
        "{}: one view of every member {:?} after the heal: {view:?}",
        s.test,
        heal_at.elapsed()
    );
    // The isolated members' clients are answered again.
    let deadline = Instant::now() + SETTLE;
    while !workers
        .calls()
        .iter()
        .any(|c| c.side == Side::Minority && c.invoked > heal_at && c.result.is_ok())
    {
        assert!(
            Instant::now() < deadline,
            "the isolated members' clients were not answered after the heal"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let calls = workers.stop();

    let during = |c: &&Call, from: Instant| c.invoked >= from && c.returned <= heal_at;
    let majority_ok = calls
        .iter()
        .filter(|c| c.side == Side::Majority && during(c, majority_view_at) && c.result.is_ok())
        .count();
    assert!(
        majority_ok > 0,
        "the majority answered nothing while the minority was off"
    );
    let refused: Vec<&Call> = calls
        .iter()
        .filter(|c| c.side == Side::Minority && during(c, refusing_at))
        .collect();
    assert!(!refused.is_empty(), "no minority call while it refused");
    for call in &refused {
        match &call.result {
            Ok(output) => panic!(
                "an isolated member answered {:?} with {output:?} while it had no majority",
                call.op
            ),
            // A front end goes to the members of the view it knows first: a call may end
            // before it asks its own member again. One that did ask it names why.
            Err(e) => assert!(
                !tried(e).contains(&call.seeds[0].to_string()) || e.contains("no majority"),
                "{:?}: {e}",
                call.op
            ),
        }
    }
    assert!(
        refused
            .iter()
            .any(|c| c.result.as_ref().is_err_and(|e| e.contains("no majority"))),
        "no minority call was told why: {refused:?}"
    );
    eprintln!(
        "{}: while off, the majority answered {majority_ok} calls; the isolated members refused {} (e.g. {:?})",
        s.test,
        refused.len(),
        refused[0].result
    );

    // Every key read at the end, into the history.
    let (addrs, key, reader) = (p.addrs(), p.key(), recorder.clone());
    let routing = s.routing;
    p.net
        .spawn_in(CLIENT_HOST, move || {
            runtime().block_on(async move {
                let mut config = FrontEndConfig::new(group(), addrs, "kv");
                config.key = Some(key);
                config.routing = routing;
                config.deadline = Duration::from_secs(30);
                let mut fe = FrontEnd::<KvStore>::new(config);
                for k in MIXED_KEYS {
                    reader
                        .call(&mut fe, KvOp::get(k))
                        .await
                        .expect("the final reads are answered");
                }
            })
        })
        .join()
        .expect("the final reads");
    assert_linearizable(&p.cluster, &recorder.history());
    for id in p.ids.clone() {
        let log = p.cluster.node(id).stderr_lines().join("\n");
        assert!(
            !log.contains("replica-failed") && !log.contains("replica stopped"),
            "node {id}: {log}"
        );
    }
}

/// The nodes a front end's `Unavailable` error says it tried ("... reachable through A, B
/// (N attempts) ...").
fn tried(error: &str) -> Vec<String> {
    error
        .split_once("reachable through ")
        .and_then(|(_, rest)| rest.split_once(" ("))
        .map(|(list, _)| list.split(", ").map(str::to_string).collect())
        .unwrap_or_default()
}
