//! Every strategy under the nemesis, with a 3-member and a 5-member group: five concurrent
//! clients, each kind of fault at least once (a member killed and restarted, a member
//! stopped past the failure detector's timeout, the coordinator killed and restarted, the
//! whole group killed and restarted from its data directories), the history judged by the
//! strategy's model and every acknowledged write read back.

use crate::run::{nemesis_duration, nemesis_seed, run, RunConfig};
use crate::strategy::Strategy;
use std::time::Duration;

/// Both group sizes for `strategy`, with one seed (printed; `NEMESIS_SEED` replays it).
fn both_sizes(strategy: Strategy) {
    let seed = nemesis_seed();
    for members in [3, 5] {
        run(&RunConfig {
            pause: client_pause(strategy),
            ..RunConfig::new(strategy, members, seed)
        });
    }
}

/// Each client's pause between calls: the sequential-consistency search is exponential in
/// the clients' interleavings, so those histories are kept to some thousands of operations
/// (25 ms per call and client for runs of up to 40 s; longer runs pause longer, and the
/// nemesis goes on all the same).
pub fn client_pause(strategy: Strategy) -> Duration {
    match strategy.model() {
        crate::strategy::Model::Sequential => {
            let stretch = (nemesis_duration().as_secs_f64() / 40.0).max(1.0);
            Duration::from_millis(25).mul_f64(stretch)
        }
        _ => Duration::from_millis(5),
    }
}

#[test]
fn passive() {
    both_sizes(Strategy::Passive);
}

#[test]
fn passive_backup_reads() {
    both_sizes(Strategy::PassiveBackupReads);
}

#[test]
fn active() {
    both_sizes(Strategy::Active);
}

#[test]
fn active_local_reads() {
    both_sizes(Strategy::ActiveLocalReads);
}

#[test]
fn active_byzantine() {
    both_sizes(Strategy::ActiveByzantine);
}

#[test]
fn gossip() {
    both_sizes(Strategy::Gossip);
}
