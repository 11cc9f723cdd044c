//! Every strategy under the nemesis, with a 3-member and a 5-member group: five concurrent
//! clients, each kind of fault at least once (a member killed and restarted, a member
//! stopped past the failure detector's timeout, the coordinator killed and restarted, the
//! whole group killed and restarted from its data directories), the history judged by the
//! strategy's model and every acknowledged write read back.

use crate::run::{nemesis_seed, run, RunConfig};
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
/// the clients' interleavings, so its histories are kept to some hundreds of operations.
pub fn client_pause(strategy: Strategy) -> Duration {
    match strategy.model() {
        crate::strategy::Model::Sequential => Duration::from_millis(25),
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
