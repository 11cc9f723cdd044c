//! Replicated services on real `viewsync node` processes over TCP, with real crashes
//! (`kill -9`) and real data directories: front ends drive a group while members are killed
//! and restarted, every history is judged by the checkers, and no acknowledged write is lost.
//! Each test leaves its history (JSON lines) in the cluster's directory, kept if it fails.

mod fixture;
mod t01_primary_killed;
mod t02_total_failure;
mod t03_naive_anomaly;
mod t04_backup_reads;
mod t05_members_killed_repeatedly;
mod t06_client_cli;
mod t07_catch_up_by_delta;
mod t08_large_requests;
mod t09_active;
mod t10_gossip;
mod t11_byzantine;
mod t12_rolling_restart;
