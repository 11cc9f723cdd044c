//! (d) Cutting off the coordinator behaves as cutting off any member: under `passive` node 1
//! is the view's coordinator and the primary, under `active` the total order's sequencer.
//! The other two install a view without it (a new coordinator, primary or sequencer) and
//! serve; it refuses with `no majority`; the history is linearizable; the heal gives one
//! view. The passive run takes the coordinator's own link down inside its host (its sends
//! fail at once), the active one its bridge port (its traffic vanishes).

use crate::harness::SETTLE;
use crate::scenario::{minority_refuses_majority_goes_on, Fault, Scenario, HOLD};
use viewsync_services::frontend::Routing;

#[test]
fn passive_primary_and_coordinator_unplugged_refuses_while_the_majority_serves() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "passive_primary_and_coordinator_unplugged_refuses_while_the_majority_serves",
        members: 3,
        strategy: "passive",
        routing: Routing::Primary,
        isolated: &[1],
        fault: Fault::Unplug,
        hold: HOLD,
        heal_within: SETTLE,
    });
}

#[test]
fn active_sequencer_cut_off_refuses_while_the_majority_serves() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "active_sequencer_cut_off_refuses_while_the_majority_serves",
        members: 3,
        strategy: "active",
        routing: Routing::Anywhere,
        isolated: &[1],
        fault: Fault::Cut,
        hold: HOLD,
        heal_within: SETTLE,
    });
}
