//! Each planted bug ([`PlantedBug`]) is caught: sweeping the simulation from seed 0 with the
//! bug planted, some checker reports a violation within the bug's bound; and the same seeds
//! without a bug are clean, so the violation is the bug's.
//!
//! `-- --nocapture` prints, per bug, the seed that caught it and the properties violated.
//! `SIM_PLANT=<name>` checks one bug. The bounds come from the catch rates measured by the
//! ignored `measure_catch_rates` (`PLANTED_MEASURE=0..200`, the default): about three times
//! the seeds the sweep needed, and at least enough that a bug caught in a fraction `p` of the
//! seeds is missed by a fresh run of that many seeds with probability under 0.5%, so a change
//! that reshuffles the scenarios does not break the test by bad luck.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;
use viewsync::proto::planted::PlantedBug;
use viewsync::sim::{SimConfig, SimReport, Simulation};

/// The most seeds (from seed 0) the sweep may take to catch `bug`; see `docs/TESTING.md` for
/// the measured rates.
fn bound(bug: PlantedBug) -> u64 {
    match bug {
        PlantedBug::CutMinimum => 3,
        PlantedBug::ProposerIgnoresAccepted => 70,
        PlantedBug::JoinerDeliversBeforeRestore => 3,
        PlantedBug::AcceptorForgetsPromise => 65,
        PlantedBug::StabilityOffByOne => 3,
        PlantedBug::SequencerOrdersTwice => 25,
        PlantedBug::FlushIgnoresOwnReport => 6,
        PlantedBug::MajorityCountsLearners => 8,
    }
}

/// The bugs to check: the one `SIM_PLANT` names, or all.
fn bugs() -> Vec<PlantedBug> {
    match std::env::var("SIM_PLANT") {
        Ok(name) => vec![name.parse().expect("SIM_PLANT names a planted bug")],
        Err(_) => PlantedBug::ALL.to_vec(),
    }
}

fn run(seed: u64, bug: Option<PlantedBug>) -> SimReport {
    let mut config = SimConfig::from_seed(seed);
    config.planted = bug;
    Simulation::new(config).run()
}

/// The properties `report` shows violated, each once, in the order reported.
fn properties(report: &SimReport) -> Vec<&'static str> {
    let mut seen = Vec::new();
    for v in &report.violations {
        if !seen.contains(&v.property) {
            seen.push(v.property);
        }
    }
    seen
}

/// The first seed of `seeds` at which a checker catches `bug`, with its report.
fn first_catch(bug: PlantedBug, seeds: Range<u64>) -> Option<(u64, SimReport)> {
    seeds
        .map(|seed| (seed, run(seed, Some(bug))))
        .find(|(_, report)| !report.violations.is_empty())
}

#[test]
fn every_planted_bug_is_caught_within_its_bound() {
    let mut missed = Vec::new();
    for bug in bugs() {
        let started = Instant::now();
        match first_catch(bug, 0..bound(bug)) {
            Some((seed, report)) => {
                let first = &report.violations[0];
                let detail: String = first.detail.chars().take(160).collect();
                println!(
                    "{bug}: caught at seed {seed} ({} of at most {} seeds, {:.1?}) by {}: {detail}",
                    seed + 1,
                    bound(bug),
                    started.elapsed(),
                    properties(&report).join(", "),
                );
            }
            None => {
                println!("{bug}: NOT caught in seeds 0..{}", bound(bug));
                missed.push(bug);
            }
        }
    }
    assert!(missed.is_empty(), "planted bugs not caught: {missed:?}");
}

#[test]
fn the_same_seeds_are_clean_without_a_planted_bug() {
    let seeds = 0..PlantedBug::ALL.into_iter().map(bound).max().expect("bugs");
    let failing: Vec<(u64, Vec<&str>)> = seeds
        .clone()
        .map(|seed| (seed, run(seed, None)))
        .filter(|(_, report)| !report.violations.is_empty())
        .map(|(seed, report)| (seed, properties(&report)))
        .collect();
    assert!(
        failing.is_empty(),
        "seeds {seeds:?} fail without a planted bug: {failing:?}"
    );
}

/// Measures, per bug, how many seeds of `PLANTED_MEASURE` (default `0..200`) catch it, the
/// first one and which properties catch it; the bugs are spread over the available cores.
#[test]
#[ignore = "measures the bounds; slow"]
fn measure_catch_rates() {
    let spec = std::env::var("PLANTED_MEASURE").unwrap_or_else(|_| "0..200".into());
    let (a, b) = spec
        .split_once("..")
        .expect("PLANTED_MEASURE looks like 0..200");
    let seeds: Range<u64> = a.trim().parse().expect("start")..b.trim().parse().expect("end");
    let queue = std::sync::Mutex::new(bugs());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let Some(bug) = queue.lock().expect("queue").pop() else {
                    return;
                };
                let started = Instant::now();
                let mut caught = Vec::new();
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for seed in seeds.clone() {
                    let report = run(seed, Some(bug));
                    if !report.violations.is_empty() {
                        caught.push(seed);
                        for property in properties(&report) {
                            *by.entry(property).or_default() += 1;
                        }
                    }
                }
                let gap = caught
                    .windows(2)
                    .map(|w| w[1] - w[0])
                    .chain(caught.first().map(|s| s + 1 - seeds.start))
                    .max();
                println!(
                    "{bug}: caught in {} of {} seeds, first {:?}, longest run to a catch {gap:?}, \
                     by {by:?} ({:.1?})",
                    caught.len(),
                    seeds.end - seeds.start,
                    caught.first(),
                    started.elapsed()
                );
            });
        }
    });
}
