//! Operating a running cluster, on real processes: `viewsync status` (t01), the metrics
//! endpoint (t02), `viewsync monitor` and the timestamped event lines (t03), `viewsync leave`
//! and `viewsync evict` (t04).
//!
//! Like the other process tests, these run the `viewsync` binary next to the test executable:
//! `cargo build --release --bin viewsync` first. No test binds a fixed port: nodes listen on
//! port 0 and print the addresses they got (`listening`, `metrics`).

mod t01_status;
mod t02_metrics;
mod t03_monitor;
mod t04_leave_evict;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use viewsync_tests::process::{run_viewsync, CliOutput, NodeProcess};

/// How long a command may take on a loaded machine.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// `viewsync <command> --via <via> [--key-file <key>] <extra>`.
pub fn operator(command: &str, via: SocketAddr, key: Option<&Path>, extra: &[&str]) -> CliOutput {
    let mut args: Vec<String> = vec![command.into(), "--via".into(), via.to_string()];
    if let Some(key) = key {
        args.push("--key-file".into());
        args.push(key.display().to_string());
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    run_viewsync(&args, COMMAND_TIMEOUT)
}

/// Repeats `viewsync status` on `via` until `done` holds for its output; panics with the
/// last output after `timeout`.
pub fn status_until(
    via: SocketAddr,
    extra: &[&str],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&CliOutput) -> bool,
) -> CliOutput {
    let deadline = Instant::now() + timeout;
    loop {
        let out = operator("status", via, None, extra);
        if done(&out) {
            return out;
        }
        if Instant::now() >= deadline {
            panic!(
                "no status {what} within {timeout:?}; last ({}):\n{}\n{}",
                out.status, out.stdout, out.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address of `node`'s metrics endpoint, from the `metrics` line it prints at start.
pub fn metrics_addr(node: &mut NodeProcess) -> SocketAddr {
    let line = node.wait_line_from(0, "a `metrics` line", Duration::from_secs(10), |l| {
        l.starts_with("metrics ")
    });
    viewsync_services::report::Fields::parse(&line.text)
        .get("addr")
        .unwrap_or_else(|| panic!("no addr in {}", line.text))
}
