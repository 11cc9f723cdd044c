//! Seeds that once failed, replayed on every run (the scenario generator has changed since,
//! so each now draws another schedule; the patterns they found have their own unit tests):
//!
//! - 13051 and 29786: a node admitted to two groups' views (two founders after a partition at
//!   start) and two proposers outbidding each other forever. Founding is now explicit
//!   (`only_a_founding_process_creates_the_group`) and an outbid proposer backs off
//!   (`an_outbid_proposer_backs_off_and_defers_to_an_older_one`).
//! - 16310: a stale accepted value, adopted by a later proposer, decided a view holding a
//!   crashed member and one whose leave had timed out; the leaver no longer voted, so the view
//!   never reached a majority again. A process whose leave timed out now still votes on a view
//!   that lists it, and asks to be removed.
//! - 56, 92, 114, 201, 302: views entered from an empty state (`Restore` with no bytes) when
//!   every member of a new view waited for its state; joiners are now learners and no view is
//!   decided without a holder of the state.
//! - 4767: a departed voter's late `Prepare` was promised below an earlier answer; an acceptor
//!   now never answers for an instance older than one it answered for.
//! - 2904, 10560 (and 2760, 3042, 3250, 4196, 5770, 9571, 11651, 17125, 17367, 18773, 18953,
//!   19221, 19407, of the first 20,000-seed sweep): a value composed while its only voter held
//!   the state was adopted after that voter's snapshot failed, and the member that did hold the
//!   state, listed as a learner because it was still fetching the previous cut when it
//!   promised, dropped it. A proposer now adopts only a value that a majority of voters can
//!   have accepted (`a_proposer_ignores_a_value_no_majority_of_voters_can_have_accepted`), and
//!   a member of the base that holds the state by the install keeps it
//!   (`a_base_member_listed_as_a_learner_keeps_the_state_it_holds_by_the_install`).
//! - 8736: every holder installed a view it heard of without its decision (a `Stale` from a
//!   member that had installed it so) and dropped its state; a holder now waits for the
//!   decision (`a_holder_waits_for_the_decision_of_a_view_it_hears_of_without_one`).
//! - 2377, 8475: the simulator failed the snapshot of a view's voter while a successor keeping
//!   it as the only voter was already chosen (the other holders left out): the state was gone
//!   with it. Random snapshot failures now spare the last voter holding the state and any
//!   holder while a successor may be chosen, as crashes spare the last holders.
//! - 8850: a coordinator whose outgoing links were cut for 3.5 s gave up fetching the ending
//!   view's cut and asked for a state transfer, though every other member of its new view was
//!   a joiner: no holder was left. A member that is its next view's only holder now keeps
//!   fetching (`a_cut_out_of_reach_is_given_up_only_when_another_holder_remains`).
//! - 5654: the coordinator promised while it held the state, its snapshot for a joiner failed,
//!   and it composed the next view from its own earlier promise, as its only voter, holding
//!   nothing. A proposer now composes from its own state as it is
//!   (`a_proposer_whose_state_failed_after_its_promise_composes_itself_as_a_learner`).

use viewsync::sim::{SimConfig, Simulation};

#[test]
fn seeds_that_once_failed_pass() {
    for seed in [
        13051, 16310, 29786, 56, 92, 114, 201, 302, 4767, 2760, 2904, 3042, 3250, 4196, 5770, 8736,
        9571, 10560, 11651, 17125, 17367, 18773, 18953, 19221, 19407, 8850, 5654,
    ] {
        let report = Simulation::new(SimConfig::from_seed(seed)).run();
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}\n  replay: {}",
            report.violations,
            report.replay_command()
        );
    }
}
