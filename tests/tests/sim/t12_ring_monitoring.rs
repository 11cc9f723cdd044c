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
