//! View-synchronous multicast across real processes: each test starts `viewsync node`
//! processes on loopback (ports picked at run time) whose log service multicasts numbered
//! messages (`--send-count`), then crashes, stops, adds or bypasses members, and checks what
//! every member printed: its `deliver`, `block`, `service-view` and `restore` lines.
//!
//! The checks (see [`support::check_view_synchrony`]): members that go from a view to the same
//! next view delivered the same set of messages in it (total order: the same sequence); no
//! message is delivered twice or in two views; one sender's messages come in order and none
//! is lost while sender and receiver stay in the group; every member enters a view with the
//! same service state (`delivered=`/`chain=`), joiners by state transfer (`restore`)
//! included. The checker's own tests (`support::checker_finds_violations`) feed it made-up
//! logs with each kind of violation.
//!
//! Like the `membership` tests these run the `viewsync` binary next to the test executable,
//! which cargo does not build for this package; build it first, in the same profile:
//!
//! ```text
//! cargo build --release --bin viewsync && cargo test --release -p viewsync-tests --test multicast
//! ```
//!
//! `t07` is the exception: it runs real `NodeActor`s over the in-memory network in this
//! process (no binary, no sockets), with the network's seeded faults.
//!
//! The tests flood the machine and rely on the failure detector's timing, so all but the
//! light `t04` and `t06` take [`cluster::timing_exclusive`] and run one at a time. A failing
//! test prints every node's non-`deliver` stdout lines, its last deliveries and the tail of
//! its log.

mod t01_kill_during_traffic;
mod t02_orderings;
mod t03_join_during_traffic;
mod t04_send_by_group_name;
mod t05_stopped_member_bounded_memory;
mod t06_many_long_lived_clients;
mod t07_actors_over_memory_network;
mod t08_service_in_bursts;
