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

use viewsync::sim::{SimConfig, Simulation};

#[test]
fn seeds_that_once_failed_pass() {
    for seed in [13051, 16310, 29786, 56, 92, 114, 201, 302] {
        let report = Simulation::new(SimConfig::from_seed(seed)).run();
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}\n  replay: {}",
            report.violations,
            report.replay_command()
        );
    }
}
