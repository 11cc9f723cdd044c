//! Membership and multicast properties over many seeded scenarios, checked after every step:
//! self-inclusion, monotonic views, view agreement, primary partition, unique successor; no
//! creation, no duplication, sending-view and same-view delivery, FIFO, causal and total order,
//! view synchrony, state agreement after transfers, no empty restore. Once faults stop:
//! eventual agreement, liveness (every multicast made while quiet is delivered everywhere),
//! durability, uniform delivery (safe delivery), no state lost. Each seed draws the world's
//! fault families (see `viewsync::sim::world`).

use crate::sweep::{configure, seeds, Sweep};
use viewsync::sim::world::WorldFaults;
use viewsync::sim::{SimConfig, SimReport, Simulation};

fn run(config: SimConfig) -> SimReport {
    Simulation::new(config).run()
}

#[test]
fn group_properties_hold_over_seeded_scenarios() {
    let mut sweep = Sweep::default();
    for seed in seeds(0..1000) {
        let mut config = SimConfig::from_seed(seed);
        configure(&mut config);
        let mut labels: Vec<String> = config.world.names().iter().map(|n| n.to_string()).collect();
        if labels.is_empty() {
            labels.push("(no family)".into());
        }
        sweep.add(run(config), &labels);
    }
    println!("{sweep}");
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
    assert!(
        sweep.exempted() * 20 <= sweep.runs,
        "{} of {} runs exempted; the scenario should rarely take a majority away",
        sweep.exempted(),
        sweep.runs
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let mut every_family = SimConfig::from_seed(7);
    every_family.world = WorldFaults::all();
    every_family.faults.late_probability = 0.01;
    every_family.faults.late_delay_max = std::time::Duration::from_secs(2);
    for config in [
        SimConfig::from_seed(42),
        every_family,
        SimConfig::blocking_from_seed(5),
    ] {
        let a = run(config.clone());
        let b = run(config);
        assert_eq!(a.trace, b.trace);
        assert_eq!(a.network, b.network);
        assert_eq!(a.coverage, b.coverage);
    }
}
