//! (c) Five `passive` members, two of them taken off at once, the coordinator among them:
//! the three left install a view of themselves and serve, each member taken off refuses
//! with `no majority` (three needed), and after the heal the group is one view of all five.
//! Cut off one by one, or split off together: then the two reach each other (two of five
//! reachable) and still install nothing, the old primary with a backup it can talk to.

use crate::harness::SETTLE;
use crate::scenario::{minority_refuses_majority_goes_on, Fault, Scenario, HOLD};
use viewsync_services::frontend::Routing;

#[test]
fn five_members_two_cut_off_heal_into_one_view() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "five_members_two_cut_off_heal_into_one_view",
        members: 5,
        strategy: "passive",
        routing: Routing::Primary,
        isolated: &[1, 5],
        fault: Fault::Cut,
        hold: HOLD,
        heal_within: SETTLE,
    });
}

#[test]
fn five_members_split_two_three_heal_into_one_view() {
    minority_refuses_majority_goes_on(&Scenario {
        test: "five_members_split_two_three_heal_into_one_view",
        members: 5,
        strategy: "passive",
        routing: Routing::Primary,
        isolated: &[1, 2],
        fault: Fault::SplitOff,
        hold: HOLD,
        heal_within: SETTLE,
    });
}
