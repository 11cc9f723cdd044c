//! (a) A member of a three-member `passive` and of an `active` group is cut off (its bridge
//! port down, both directions lost): it installs no view and refuses with `no majority`
//! while the other two install a view without it and keep serving; the history across the
//! partition is linearizable; after the heal the group is one view of all three.

use crate::harness::SETTLE;
use crate::scenario::{minority_refuses_majority_goes_on, Fault, Scenario, HOLD};
use viewsync_services::frontend::Routing;

#[test]
fn passive_backup_cut_off_refuses_while_the_majority_serves() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "passive_backup_cut_off_refuses_while_the_majority_serves",
        members: 3,
        strategy: "passive",
        routing: Routing::Primary,
        isolated: &[3],
        fault: Fault::Cut,
        hold: HOLD,
        heal_within: SETTLE,
    });
}

#[test]
fn active_member_cut_off_refuses_while_the_majority_serves() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "active_member_cut_off_refuses_while_the_majority_serves",
        members: 3,
        strategy: "active",
        routing: Routing::Anywhere,
        isolated: &[3],
        fault: Fault::Cut,
        hold: HOLD,
        heal_within: SETTLE,
    });
}

/// A partition of about 35 s: the group must be one view again within 15 s of the heal (a
/// few detector periods and a state transfer), however long the cut lasted.
#[test]
fn after_a_long_cut_the_group_heals_promptly() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "after_a_long_cut_the_group_heals_promptly",
        members: 3,
        strategy: "passive",
        routing: Routing::Primary,
        isolated: &[3],
        fault: Fault::Cut,
        hold: std::time::Duration::from_secs(30),
        heal_within: std::time::Duration::from_secs(15),
    });
}
