//! (c) Five `passive` members, two of them cut off at once, the coordinator among them:
//! the three left install a view of themselves and serve, each cut-off member refuses with
//! `no majority` (two of five reachable at most, three needed), and after the heal the
//! group is one view of all five.

use crate::scenario::{minority_refuses_majority_goes_on, Fault, Scenario};
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
    });
}
