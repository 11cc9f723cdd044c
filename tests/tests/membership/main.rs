//! Real multi-process clusters: each test starts `viewsync node` processes on loopback (ports
//! picked at run time), reads their event lines on stdout, and kills, stops or restarts them.
//!
//! The tests run the `viewsync` binary found next to the test executable
//! (`target/<profile>/viewsync`). Cargo builds a package's binaries only for that package's
//! own integration tests, and `viewsync` belongs to `viewsync-services`, so neither
//! `cargo test -p viewsync-tests` nor `cargo test --workspace` builds it: build it first, in
//! the same profile:
//!
//! ```text
//! cargo build --bin viewsync && cargo test -p viewsync-tests --test membership
//! ```
//!
//! A missing binary fails every test with that instruction. `VIEWSYNC_TEST_RUST_LOG` sets the
//! nodes' log filter (default `info`); a failing test prints every node's stdout and the tail
//! of its log.
//!
//! Tests that measure latencies (`t01`, `t02`) take [`cluster::timing_exclusive`], the others
//! [`cluster::timing_shared`], so no other cluster of this binary competes for the CPU while a
//! latency is measured.

mod t01_three_join_and_kill;
mod t02_graceful_leave;
mod t03_restart_rejoins_with_new_incarnation;
mod t04_wrong_key_is_refused;
mod t05_members_cli;
mod t06_example_cluster_configs_load;
mod t07_demo_command;
mod t08_incarnation_from_data_dir;
mod t09_blocking_is_visible;
mod t10_demo_passive;
