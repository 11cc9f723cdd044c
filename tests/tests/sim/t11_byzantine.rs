//! The Byzantine strategy (`active-byzantine`) judged by its clients: the production active
//! core with ordered reads, each member's replies signed by its own key
//! (`replication::signed::SigningCore`), and simulated front ends that take the reply `f + 1`
//! members signed (`f = (n - 1) / 2` for the run's `n` members, asking the next member after
//! each reply until enough agree), under the seed's faults, every history checked for
//! linearizability and every key read at the end.
//!
//! - one lying member (the last node: it answers every request with a value nobody wrote,
//!   signed with its own, listed key) never makes a front end return its lie: every history
//!   stays linearizable, and the front ends saw replies disagree;
//! - a member that signs in another's name (its own key, the other's node id) is refused by
//!   every front end (its replies do not verify) and changes nothing;
//! - more liars than `f` telling the same lie are caught: a front end returns the lie, and the
//!   linearizability checker rejects the history (the checker fires; `f` is a real bound).
//!
//! `SIM_SEEDS=A..B` sweeps a range, `SIM_SEED=N` replays one seed with its trace.

use crate::sweep::seeds;
use crate::t07_replicated_services::{
    judge_report_as, replay_command, replicated_config_with, report_failure, Consistency, Summary,
};
use ed25519_dalek::SigningKey;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;
use viewsync::runtime::ServiceEvent;
use viewsync::sim::{SimConfig, Simulation};
use viewsync::{GroupName, NodeId};
use viewsync_services::frontend::SignedReplies;
use viewsync_services::replication::active::{ActiveConfig, ActiveReads, ActiveReplica};
use viewsync_services::replication::signed::{ReplicaKeys, ReplicaSigner, SigningCore};
use viewsync_services::replication::sim::{kv_clients, replica_factory, SimSignedReplies};
use viewsync_services::replication::{decode, encode, Action, ReplicaCore, Reply, StoreError};
use viewsync_services::state_machine::kv::{KvOutput, KvStore};

/// The group the simulated replicas sign for.
fn group() -> GroupName {
    GroupName::new("sim").expect("valid")
}

/// Node `node`'s signing key: derived from its id, so a seed replays the same keys.
fn key_of(node: u64) -> SigningKey {
    let mut bytes = [0x5a; 32];
    bytes[..8].copy_from_slice(&node.to_le_bytes());
    SigningKey::from_bytes(&bytes)
}

/// How a lying member lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lie {
    /// Every reply's output replaced by a value nobody wrote, signed with its own key.
    WrongOutput,
    /// The same lie, signed with its own key in node 1's name.
    InAnothersName,
}

/// The value liars answer with.
const LIE: &str = "forged";

/// The Byzantine strategy's cores: `liars` lie as `lie` says.
fn byzantine(liars: Vec<u64>, lie: Lie) -> viewsync::sim::service::ServiceFactory {
    replica_factory("active-byzantine", move |start| {
        let node = start.me.id.node.0;
        let mut config = ActiveConfig::new(start.me.id, group(), "kv");
        config.reads = ActiveReads::Ordered;
        let core: Box<dyn ReplicaCore> = Box::new(
            ActiveReplica::<KvStore>::recover(config, Box::new(start.log), start.recovered)
                .expect("a simulated disk always reads back"),
        );
        let lying = liars.contains(&node);
        let core: Box<dyn ReplicaCore> = if lying {
            Box::new(Liar { inner: core })
        } else {
            core
        };
        let signed_as = if lying && lie == Lie::InAnothersName {
            NodeId(1)
        } else {
            NodeId(node)
        };
        Box::new(SigningCore::new(
            core,
            ReplicaSigner::new(signed_as, group(), key_of(node)),
        ))
    })
}

/// A member that executes correctly (its state stays right) but answers every request with
/// [`LIE`].
struct Liar {
    inner: Box<dyn ReplicaCore>,
}

impl Liar {
    fn lie(actions: Vec<Action>) -> Vec<Action> {
        actions
            .into_iter()
            .map(|action| match action {
                Action::Reply {
                    to,
                    outcome: Ok(bytes),
                } => {
                    let mut reply: Reply<KvOutput> = decode(&bytes).expect("a kv reply");
                    reply.output = KvOutput::value(LIE);
                    Action::Reply {
                        to,
                        outcome: Ok(encode(&reply)),
                    }
                }
                other => other,
            })
            .collect()
    }
}

impl ReplicaCore for Liar {
    fn handle(&mut self, event: &ServiceEvent) -> Result<Vec<Action>, StoreError> {
        self.inner.handle(event).map(Liar::lie)
    }
    fn tick(&mut self, now: std::time::Duration) -> Result<Vec<Action>, StoreError> {
        self.inner.tick(now).map(Liar::lie)
    }
    fn snapshot(&self) -> bytes::Bytes {
        self.inner.snapshot()
    }
    fn needs_sync(&self) -> bool {
        self.inner.needs_sync()
    }
    fn snapshot_for(&mut self, view: viewsync::ViewId) -> bytes::Bytes {
        self.inner.snapshot_for(view)
    }
    fn delta(&self, view: viewsync::ViewId, since: u64) -> Option<bytes::Bytes> {
        self.inner.delta(view, since)
    }
    fn position(&self) -> Option<u64> {
        self.inner.position()
    }
}

/// The run of `seed` with `liars` lying as `lie`, front ends trusting `f` liars at most.
fn config(
    seed: u64,
    liars: impl Fn(u64) -> Vec<u64>,
    lie: Lie,
    f: impl Fn(u64) -> usize,
) -> SimConfig {
    let mut config = replicated_config_with(seed, byzantine(Vec::new(), lie), true);
    let n = config.nodes as u64;
    config.service = byzantine(liars(n), lie);
    let keys: BTreeMap<NodeId, _> = (1..=n)
        .map(|node| (NodeId(node), key_of(node).verifying_key()))
        .collect();
    let signed = SimSignedReplies {
        trusted: SignedReplies {
            f: f(n),
            keys: ReplicaKeys::new(keys),
        },
        group: group(),
    };
    let clients = config.clients.as_ref().map_or(2, |c| c.count);
    let fault_end = config.fault_time;
    let front_ends = viewsync_services::replication::sim::FrontEndConfig::new(
        fault_end + std::time::Duration::from_secs(4),
        fault_end + std::time::Duration::from_secs(10),
    )
    .signed(signed);
    config.clients = Some(kv_clients(clients, front_ends));
    config
}

/// What a sweep saw.
#[derive(Default)]
struct Sweep {
    summary: Summary,
    rejected: u64,
    quorum_waits: u64,
    disagreements: u64,
}

fn sweep(seeds: Range<u64>, lie: Lie, test: &str) -> Sweep {
    let started = Instant::now();
    let mut sweep = Sweep::default();
    for seed in seeds {
        // One liar, the last node; f for the run's members.
        let config = config(seed, |n| vec![n], lie, |n| (n as usize - 1) / 2);
        let verdict = judge_report_as(Simulation::new(config).run(), Consistency::Linearizable);
        report_failure(&verdict, "active-byzantine", test, false);
        sweep.rejected += verdict.front_ends.rejected_replies;
        sweep.quorum_waits += verdict.front_ends.quorum_waits;
        sweep.disagreements += verdict.front_ends.disagreements;
        sweep.summary.add(&verdict);
    }
    println!(
        "active-byzantine, one member lying ({lie:?}), {:.1} s:\n{}\nfront ends: {} replies rejected (did not verify), {} replies that did not yet make a quorum, {} calls whose members signed different replies",
        started.elapsed().as_secs_f64(),
        sweep.summary,
        sweep.rejected,
        sweep.quorum_waits,
        sweep.disagreements
    );
    assert!(
        sweep.summary.failing.is_empty(),
        "failing seeds: {:?}",
        sweep.summary.failing
    );
    sweep
}

#[test]
fn byzantine_one_lying_member_never_makes_a_front_end_return_its_lie() {
    let sweep = sweep(
        seeds(0..500),
        Lie::WrongOutput,
        "one_lying_member_never_makes_a_front_end_return_its_lie",
    );
    if sweep.summary.runs >= 20 {
        // The lie reached the front ends and was outvoted.
        assert!(sweep.disagreements > 0 && sweep.quorum_waits > 0);
    }
}

#[test]
fn byzantine_a_member_signing_in_anothers_name_is_refused() {
    let sweep = sweep(
        seeds(0..40),
        Lie::InAnothersName,
        "a_member_signing_in_anothers_name_is_refused",
    );
    if sweep.summary.runs >= 20 {
        assert!(sweep.rejected > 0);
    }
}

/// More liars than the front ends' `f`: two members tell the same lie and front ends trust
/// `f = 1`, so a lie gets two signatures; the linearizability checker must reject a history.
#[test]
fn byzantine_the_checker_catches_more_liars_than_f() {
    let test = "the_checker_catches_more_liars_than_f";
    let mut caught = None;
    for seed in seeds(0..40) {
        let config = config(seed, |n| vec![n - 1, n], Lie::WrongOutput, |_| 1);
        let verdict = judge_report_as(Simulation::new(config).run(), Consistency::Linearizable);
        if let Some(counterexample) = &verdict.counterexample {
            println!(
                "seed {seed}: two colluding liars are caught: {:?}\n{counterexample}",
                verdict.failures
            );
            println!("  replay: {}", replay_command(seed, test));
            caught = Some(seed);
            break;
        }
    }
    assert!(caught.is_some(), "no seed caught two liars with f = 1");
}
