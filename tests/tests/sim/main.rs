//! Deterministic simulation of membership and view-synchronous multicast (see `docs/TESTING.md`).
//!
//! `SIM_SEED=N` replays one seed with its trace; `SIM_SEEDS=A..B` sweeps a range (default
//! `0..1000` for the normal scenario, `0..200` for the blocking ones: what CI runs). Name the
//! test (`group_properties` or `blocking`) to run one family. `SIM_PLANT=<bug>` plants a bug
//! in every run (`--test planted`).

mod sweep;
mod t01_group_properties;
mod t02_blocking_scenarios;
mod t05_regression_seeds;
mod t06_any_service;
mod t07_replicated_services;
mod t08_total_failure;
mod t09_active_replication;
mod t10_gossip;
mod t11_byzantine;
mod t12_ring_monitoring;
