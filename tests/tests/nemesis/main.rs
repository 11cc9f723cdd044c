//! Nemesis runs and a soak on real `viewsync node` processes over TCP with real data
//! directories (see docs/TESTING.md, "Nemesis and soak runs").
//!
//! - [`t01_strategies`]: for each replication strategy (except `naive`), a 3-member and a
//!   5-member group serve five concurrent front ends while a seeded nemesis SIGKILLs members
//!   and restarts them from their data directories, SIGSTOPs members for longer than the
//!   failure detector's timeout, kills the coordinator (the primary, or the total order's
//!   sequencer) and kills the whole group at once. The recorded history is judged by the
//!   strategy's promised model, and every acknowledged write is read back at the end.
//! - [`t02_checks_fire`]: the same verdict rejects a recorded history with a planted lost
//!   write or stale read.
//! - [`t03_soak`]: a steady load for a bounded time; memory and file descriptors stay flat
//!   and no view changes without a fault.
//!
//! `NEMESIS_SEED=N` replays a nemesis schedule, `NEMESIS_DURATION=SECS` and
//! `SOAK_DURATION=SECS` make the runs longer.

mod group;
mod record;
mod run;
mod soak;
mod strategy;
mod t01_strategies;
mod t02_checks_fire;
mod t03_soak;
mod verdict;
