//! Membership and multicast properties over many seeded scenarios, checked after every step:
//! self-inclusion, monotonic views, view agreement, primary partition, unique successor; no
//! creation, no duplication, sending-view and same-view delivery, FIFO, causal and total order,
//! view synchrony, state agreement after transfers, no empty restore. Once faults stop:
//! eventual agreement, liveness (every multicast made while quiet is delivered everywhere),
//! durability, uniform delivery (safe delivery), no state lost.

use std::ops::Range;
use std::time::Duration;
use viewsync::proto::planted::PlantedBug;
use viewsync::sim::{SimConfig, SimReport, Simulation};

fn seeds() -> Range<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.trim().parse().expect("SIM_SEED is a number");
        return seed..seed + 1;
    }
    let spec = std::env::var("SIM_SEEDS").unwrap_or_else(|_| "0..1000".into());
    let (a, b) = spec.split_once("..").expect("SIM_SEEDS looks like 0..500");
    a.trim().parse().expect("start")..b.trim().parse().expect("end")
}

/// The bug `SIM_PLANT` names, planted in every run (see `--test planted`).
fn planted() -> Option<PlantedBug> {
    let name = std::env::var("SIM_PLANT").ok()?;
    Some(name.parse().unwrap_or_else(|e| {
        let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        panic!("SIM_PLANT: {e}; one of {names:?}")
    }))
}

fn run(seed: u64) -> SimReport {
    let mut config = SimConfig::from_seed(seed);
    config.trace_deliveries = std::env::var("SIM_SEED").is_ok();
    config.dump_at = std::env::var("SIM_DUMP_AT")
        .ok()
        .map(|at| Duration::from_secs_f64(at.parse().expect("SIM_DUMP_AT is seconds")));
    config.planted = planted();
    Simulation::new(config).run()
}

#[test]
fn group_properties_hold_over_seeded_scenarios() {
    let seeds = seeds();
    let single = seeds.end - seeds.start == 1;
    let mut failures = Vec::new();
    let mut blocked = 0;
    let mut views = 0;
    let (mut multicasts, mut deliveries, mut transfers) = (0, 0, 0);
    for seed in seeds.clone() {
        let report = run(seed);
        views += report.views_seen;
        multicasts += report.multicasts;
        deliveries += report.deliveries;
        transfers += report.state_transfers;
        if !report.liveness_checked {
            blocked += 1;
        }
        if single {
            for line in &report.trace {
                println!("{line}");
            }
            println!("{:?}", report.network);
            println!(
                "{} multicasts, {} deliveries, {} state transfers",
                report.multicasts, report.deliveries, report.state_transfers
            );
        }
        if !report.violations.is_empty() {
            eprintln!("seed {seed}: {:?}", report.violations);
            let plant = planted()
                .map(|b| format!("SIM_PLANT={b} "))
                .unwrap_or_default();
            eprintln!("  replay: {plant}{}", report.replay_command());
            failures.push(seed);
        }
    }
    let total = seeds.end - seeds.start;
    println!(
        "{total} seeds, {views} views installed, {blocked} blocked by design, \
         {multicasts} multicasts, {deliveries} deliveries, {transfers} state transfers"
    );
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
    assert!(
        blocked * 10 <= total,
        "{blocked} of {total} runs blocked; the scenario should rarely lose a majority"
    );
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = run(42);
    let b = run(42);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.network, b.network);
}
