//! The group properties with views watched as a ring: every seed of the normal scenario
//! again, with `failure_detector.monitors` of 1 or 2 (so groups of 3 to 7 nodes are rings
//! with one or two watchers per member, and a crash is noticed only by its watchers, which
//! report it to the coordinator). Catches a crash nobody reports, a report the coordinator
//! ignores, or a ring that is not rebuilt after a view change: liveness (eventual agreement,
//! every quiet multicast delivered) fails in each.

use crate::sweep::{configure, seeds, Sweep};
use viewsync::sim::{SimConfig, Simulation};

#[test]
fn group_properties_hold_with_views_watched_as_a_ring() {
    let mut sweep = Sweep::default();
    let mut rings = 0;
    for seed in seeds(0..200) {
        let mut config = SimConfig::from_seed(seed);
        configure(&mut config);
        let monitors = 1 + (seed % 2) as usize;
        config.settings.failure_detector.monitors = monitors;
        if config.nodes > monitors + 1 {
            rings += 1;
        }
        let report = Simulation::new(config).run();
        if !report.violations.is_empty() {
            eprintln!(
                "  (monitors {monitors}) replay: SIM_SEED={seed} cargo test --release -p viewsync-tests --test sim group_properties_hold_with_views_watched_as_a_ring -- --nocapture"
            );
        }
        sweep.add(report, &[format!("monitors {monitors}")]);
    }
    println!("{sweep}");
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
    assert!(
        sweep.runs < 10 || rings * 2 >= sweep.runs,
        "only {rings} of {} runs had a view larger than monitors + 1",
        sweep.runs
    );
    assert!(
        sweep.exempted() * 20 <= sweep.runs,
        "{} of {} runs exempted",
        sweep.exempted(),
        sweep.runs
    );
}

/// Ring seeds that once failed (each pattern has its own unit test):
/// - 39: a member that suspected its coordinator moved its watch and dropped the suspicion
///   silently; the group acted on it for ever (985 views after the faults stopped).
/// - 708: a suspect that never heartbeats the suspecting member was never probed again, so
///   the coordinator suspected the only holder of the state for ever
///   (`a_suspect_that_sends_no_heartbeats_is_probed_until_it_answers`).
/// - 11588: the simulator drew a snapshot failure of the one holder besides a leaving one,
///   whose leave then timed out and took the state.
/// - 16053: a member stalled through a view change installed the old view late, delivered 48
///   of its own multicasts there, and went on with its state as a learner of the next view
///   although the cut left them out (view synchrony).
/// - 5578, 5683: the only holder of the state was listed as a joiner by a join request it had
///   sent before the base (`a_join_request_sent_before_the_base_does_not_make_a_holder_a_learner`).
/// - 8822, 10382, 15098, 18342, 18664: a member that missed an install heartbeats nobody
///   ahead of it on a ring, so anti-entropy (which answers older views) never repaired it; a
///   heartbeat from a later view is now answered with this member's views, and probes carry
///   them (`proto::node` test `in_a_view_larger_than_monitors_plus_one_the_detector_follows_the_ring`).
/// - 13154: that answer reached the only voter of a view from a joiner that had the view
///   without its decision, and the voter, cut off from the rest, installed it without the cut
///   and gave its state up; the only voter of a view now waits for its decision
///   (`a_holder_waits_for_the_decision_of_a_view_it_hears_of_without_one`).
#[test]
fn ring_seeds_that_once_failed_pass() {
    for seed in [
        39, 708, 11588, 16053, 5578, 5683, 8822, 10382, 15098, 18342, 18664, 13154,
    ] {
        let mut config = SimConfig::from_seed(seed);
        config.settings.failure_detector.monitors = 1 + (seed % 2) as usize;
        let report = Simulation::new(config).run();
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}\n  replay: SIM_SEED={seed} cargo test --release -p viewsync-tests --test sim group_properties_hold_with_views_watched_as_a_ring -- --nocapture",
            report.violations,
        );
    }
}
