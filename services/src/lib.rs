//! # viewsync-services
//!
//! Services built on the viewsync middleware, and the `viewsync` command-line tool
//! (`src/bin/viewsync.rs`): `node`, `members`, `send`, `demo`, `keygen`.

pub mod config;
pub mod demo;
pub mod log_service;
pub mod report;
