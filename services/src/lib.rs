//! # viewsync-services
//!
//! Services built on the viewsync middleware, and the `viewsync` command-line tool
//! (`src/bin/viewsync.rs`): `node`, `members`, `send`, `demo`, `keygen`.
//!
//! - [`state_machine`]: the deterministic state machines replicated services run (the
//!   key-value store and the bank), with checksummed snapshots;
//! - [`history`]: recorded client histories (JSON lines) and the linearizability and
//!   sequential-consistency checkers that judge them;
//! - [`storage`]: durable storage for replica managers (a checksummed, segmented write-ahead
//!   log and an atomically replaced snapshot file, with three durability modes).

pub mod config;
pub mod demo;
pub mod history;
pub mod log_service;
pub mod replica;
pub mod replication;
pub mod report;
pub mod state_machine;
pub mod storage;
pub mod strategy;
