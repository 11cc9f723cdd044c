//! Authenticated frames whose view epoch or ballot round is past the protocol's counter limit
//! (a peer that would make the next epoch or round overflow) are refused as bad frames: a join
//! request claiming epoch `u64::MAX`, and a prepare with round `u64::MAX`. The group is
//! unchanged and the node keeps serving.

use crate::{codec, envelope, intruder, intruder_addr, send_expecting_refusal, Target};
use viewsync::wire::{Ballot, Body, PROTOCOL_COUNTER_MAX};
use viewsync_tests::process::GROUP;

#[test]
fn epochs_and_rounds_past_the_counter_limit_are_refused() {
    let mut target = Target::start();
    let sealed = codec(Some(target.key.clone()));
    let join = Body::JoinRequest {
        member: viewsync::Member {
            id: intruder(),
            addr: intruder_addr(),
        },
        last_epoch: u64::MAX,
    };
    let frame = sealed.seal(envelope(Some(GROUP), join)).expect("seal");
    send_expecting_refusal(&mut target, &frame, "past");

    // A prepare for the group's own view, with a round no counter can follow.
    let base = viewsync::View::of_voters(
        viewsync::GroupName::new(GROUP).expect("name"),
        target.view_id(),
        Vec::new(),
    );
    let prepare = Body::Prepare {
        base,
        ballot: Ballot {
            round: viewsync::wire::Round(PROTOCOL_COUNTER_MAX + 1),
            proposer: intruder(),
        },
        base_decided: None,
    };
    let frame = sealed.seal(envelope(Some(GROUP), prepare)).expect("seal");
    send_expecting_refusal(&mut target, &frame, "past");
    target.assert_unchanged();
}
