//! Deterministic simulation of membership and view-synchronous multicast (see `docs/TESTING.md`).
//!
//! `SIM_SEED=N` replays one seed with its trace; `SIM_SEEDS=A..B` sweeps a range (default
//! `0..1000`, what CI runs); `SIM_PLANT=<bug>` plants a bug in every run (`--test planted`).

mod t01_group_properties;
mod t05_regression_seeds;
