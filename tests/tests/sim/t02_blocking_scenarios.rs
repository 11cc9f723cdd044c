//! What the normal scenario avoids, each with the outcome it states (see
//! `viewsync::sim::scenario::BlockingKind`): joiners cut off before they install their view
//! (the group goes on without them, then takes them in); a majority of a settled view's
//! voters crashed at once (the group stays blocked for good, and only the record of that
//! crash exempts liveness); no side holding a majority of the voters for a while, by pauses
//! or a partition into parts (nothing is decided meanwhile, then the group recovers); a leave
//! that times out; the only holder's snapshot failing (blocked on no holder, never an empty
//! state). All safety checks apply throughout.

use crate::sweep::{configure, seeds, Sweep};
use viewsync::sim::scenario::{BlockingKind, Scenario};
use viewsync::sim::{SimConfig, Simulation};

/// The variant in which the group needs the vote of a voter whose leave timed out.
fn departed_voter(kind: BlockingKind) -> bool {
    kind == BlockingKind::LeaveTimesOut { vote_needed: true }
}

fn sweep(select: impl Fn(BlockingKind) -> bool) -> Sweep {
    let mut sweep = Sweep::default();
    for seed in seeds(0..200) {
        let mut config = SimConfig::blocking_from_seed(seed);
        configure(&mut config);
        let Scenario::Blocking(kind) = config.scenario else {
            unreachable!("a blocking config");
        };
        if select(kind) {
            sweep.add(Simulation::new(config).run(), &[format!("{kind:?}")]);
        }
    }
    println!("{sweep}");
    sweep
}

#[test]
fn blocking_scenarios_end_as_stated() {
    let sweep = sweep(|kind| !departed_voter(kind));
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
}

/// Three voters: one paused for 9 s, one cut off while it leaves, so its leave times out. Once
/// the cut heals, the one voter left and the departed one are a majority, and the departed
/// voter's vote must move the group on before the paused one returns (decision 12).
#[test]
fn a_departed_voter_moves_the_group_on() {
    let sweep = sweep(departed_voter);
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
}
