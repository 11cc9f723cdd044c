//! Seed ranges and the sweep summary shared by the simulation tests.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use viewsync::proto::planted::PlantedBug;
use viewsync::sim::coverage::SweepCoverage;
use viewsync::sim::{SimConfig, SimReport};

/// The seeds to run: `SIM_SEED=N` replays one (with its trace), `SIM_SEEDS=A..B` sweeps a
/// range, else `default`.
pub fn seeds(default: Range<u64>) -> Range<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed: u64 = seed.trim().parse().expect("SIM_SEED is a number");
        return seed..seed + 1;
    }
    let Ok(spec) = std::env::var("SIM_SEEDS") else {
        return default;
    };
    let (a, b) = spec.split_once("..").expect("SIM_SEEDS looks like 0..500");
    a.trim().parse().expect("start")..b.trim().parse().expect("end")
}

/// Whether one seed is replayed (its trace is printed).
pub fn replaying() -> bool {
    std::env::var("SIM_SEED").is_ok()
}

/// Applies the environment to a run: its trace when replaying, `SIM_DUMP_AT=<secs>` (every
/// process's protocol state traced at that virtual time), `SIM_PLANT=<bug>` (see `--test
/// planted`).
pub fn configure(config: &mut SimConfig) {
    config.trace_deliveries = replaying();
    config.dump_at = std::env::var("SIM_DUMP_AT")
        .ok()
        .map(|at| Duration::from_secs_f64(at.parse().expect("SIM_DUMP_AT is seconds")));
    config.planted = planted();
}

/// The bug `SIM_PLANT` names, planted in every run.
pub fn planted() -> Option<PlantedBug> {
    let name = std::env::var("SIM_PLANT").ok()?;
    Some(name.parse().unwrap_or_else(|e| {
        let names: Vec<&str> = PlantedBug::ALL.iter().map(|b| b.name()).collect();
        panic!("SIM_PLANT: {e}; one of {names:?}")
    }))
}

/// What a sweep found.
#[derive(Default)]
pub struct Sweep {
    pub runs: u64,
    pub failures: Vec<u64>,
    /// Runs whose liveness the scenario's record exempted, by what the record says.
    pub exempt: BTreeMap<&'static str, u64>,
    /// Runs per scenario label (fault family or blocking kind), and those that failed.
    pub by_label: BTreeMap<String, (u64, u64)>,
    views: u64,
    multicasts: u64,
    deliveries: u64,
    transfers: u64,
    coverage: SweepCoverage,
}

impl Sweep {
    /// Adds one run, printing its trace when replaying and its violations when it failed.
    pub fn add(&mut self, report: SimReport, labels: &[String]) {
        let failed = !report.violations.is_empty();
        self.runs += 1;
        self.views += report.views_seen as u64;
        self.multicasts += report.multicasts;
        self.deliveries += report.deliveries;
        self.transfers += report.state_transfers;
        self.coverage.add(&report.coverage);
        if let Some(why) = &report.exemption {
            let kind = if why.contains("failed the snapshot") {
                "the last holder's snapshot failed"
            } else if why.contains("holding the state") {
                "the last holder of the state crashed"
            } else {
                "no majority of a view's voters left alive"
            };
            *self.exempt.entry(kind).or_default() += 1;
        }
        for label in labels {
            let entry = self.by_label.entry(label.clone()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(failed);
        }
        if replaying() {
            for line in &report.trace {
                println!("{line}");
            }
            println!("{:?}", report.network);
            println!("families: {:?}", report.world.names());
            println!(
                "{} multicasts, {} deliveries, {} state transfers",
                report.multicasts, report.deliveries, report.state_transfers
            );
            let mut one = SweepCoverage::default();
            one.add(&report.coverage);
            println!("{one}");
        }
        if failed {
            eprintln!("seed {}: {:?}", report.seed, report.violations);
            let plant = planted()
                .map(|b| format!("SIM_PLANT={b} "))
                .unwrap_or_default();
            eprintln!("  replay: {plant}{}", report.replay_command());
            self.failures.push(report.seed);
        }
    }

    /// Runs exempted from the liveness checks.
    pub fn exempted(&self) -> u64 {
        self.exempt.values().sum()
    }
}

impl fmt::Display for Sweep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} seeds, {} failing, {} views installed, {} multicasts, {} deliveries, {} state transfers",
            self.runs,
            self.failures.len(),
            self.views,
            self.multicasts,
            self.deliveries,
            self.transfers
        )?;
        let exempted = self.exempted();
        writeln!(
            f,
            "liveness exempted by the scenario's record: {exempted} runs ({:.1}%)",
            100.0 * exempted as f64 / self.runs.max(1) as f64
        )?;
        for (why, n) in &self.exempt {
            writeln!(f, "  {why}: {n}")?;
        }
        writeln!(f, "runs (failing) by family or kind:")?;
        for (label, (runs, failed)) in &self.by_label {
            writeln!(f, "  {label:<46} {runs:>6} ({failed})")?;
        }
        write!(f, "{}", self.coverage)
    }
}
