//! The total-failure scenario with the log service, which keeps no durable state: after every
//! node crashed at once, the restarted nodes make no recovery claim, so the group is never
//! re-formed from nothing: no view is installed after the failure, every process ends joining
//! and blocked on `NoSeedAnswered`, and the scenario's record exempts liveness (see
//! `viewsync::sim::total_failure`; the passive core's recovery is in `t07`).

use crate::sweep::{configure, seeds, Sweep};
use viewsync::sim::{SimConfig, Simulation};

#[test]
fn total_failure_without_durable_state_stays_blocked() {
    let mut sweep = Sweep::default();
    let mut failed_totally = 0;
    for seed in seeds(0..200) {
        let mut config = SimConfig::total_failure_from_seed(seed);
        configure(&mut config);
        let mut report = Simulation::new(config).run();
        let total_failure = report.total_failure.take().expect("a total-failure run");
        assert!(
            total_failure.reformations.is_empty() && total_failure.first_install.is_none(),
            "seed {seed}: {total_failure:?}"
        );
        assert!(
            total_failure.restarts.iter().all(|r| r.claimed.is_none()),
            "seed {seed}: the log service claimed a durable state"
        );
        assert!(!report.liveness_checked, "seed {seed}");
        failed_totally += u64::from(total_failure.failed_at.is_some());
        sweep.add(report, &["total failure, log service".to_string()]);
    }
    println!("{sweep}");
    assert!(
        sweep.failures.is_empty(),
        "failing seeds: {:?}",
        sweep.failures
    );
    assert_eq!(failed_totally, sweep.runs);
}
