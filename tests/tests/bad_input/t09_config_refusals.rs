//! Configurations a node must refuse at start: exit code 2 and a message naming the key.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;
use viewsync_tests::process::{config_text, new_key_hex, run_viewsync, TempDir};

/// Runs `viewsync node --config <path>`; returns (exit code, stderr).
fn run_node(config: &Path) -> (Option<i32>, String) {
    let args = [
        OsStr::new("node"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    let out = run_viewsync(&args, Duration::from_secs(10));
    assert!(out.stdout.is_empty(), "nothing starts: {}", out.stdout);
    (out.status.code(), out.stderr)
}

fn assert_refused(dir: &TempDir, name: &str, text: &str, needles: &[&str]) {
    let path = dir.write(name, text);
    let (code, stderr) = run_node(&path);
    assert_eq!(code, Some(2), "{name}: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{name}: expected {needle:?} in: {stderr}"
        );
    }
}

#[test]
fn a_keyless_node_must_listen_on_loopback() {
    let dir = TempDir::new("config");
    let text = config_text(1, &[], None, "").replace("127.0.0.1:0", "0.0.0.0:0");
    assert_refused(
        &dir,
        "open.toml",
        &text,
        &["`listen`", "loopback", "key_file"],
    );
}

#[test]
fn bad_values_are_refused_by_name() {
    let dir = TempDir::new("config");
    let key = dir.write("cluster.key", &new_key_hex());
    let short_key = dir.write("short.key", "abcd");
    let base = |extra: &str| config_text(1, &[], Some(&key), extra);
    assert_refused(
        &dir,
        "suspect.toml",
        &base("[failure_detector]\nsuspect_timeout_ms = 10\n"),
        &["failure_detector.suspect_timeout_ms"],
    );
    assert_refused(
        &dir,
        "frame.toml",
        &base("[transport]\nframe_bytes_max = 10\n"),
        &["transport.frame_bytes_max"],
    );
    assert_refused(
        &dir,
        "retry.toml",
        &base("[membership]\njoin_retry_interval_ms = 0\n"),
        &["membership.join_retry_interval_ms"],
    );
    assert_refused(
        &dir,
        "node0.toml",
        &config_text(0, &[], Some(&key), ""),
        &["node_id"],
    );
    assert_refused(
        &dir,
        "short-key.toml",
        &config_text(1, &[], Some(&short_key), ""),
        &["key_file", "32"],
    );
    assert_refused(
        &dir,
        "no-key-file.toml",
        &config_text(1, &[], Some(&dir.path().join("missing.key")), ""),
        &["key_file", "missing.key"],
    );
    assert_refused(
        &dir,
        "listen.toml",
        &base("").replace("127.0.0.1:0", "not an address"),
        &["listen"],
    );
    assert_refused(&dir, "unknown.toml", &base("gossip = 1\n"), &["gossip"]);
    assert_refused(
        &dir,
        "service-key.toml",
        &base("[service]\nstrategy = \"log\"\nfanout = 3\n"),
        &["service.fanout"],
    );
    assert_refused(
        &dir,
        "strategy.toml",
        &base("[service]\nstrategy = \"paxos\"\n"),
        &["service.strategy", "paxos"],
    );
    assert_refused(
        &dir,
        "duration.toml",
        &base("[membership]\nleave_timeout = \"3 fortnights\"\n"),
        &["membership.leave_timeout", "3 fortnights"],
    );
}

#[test]
fn a_missing_config_file_is_refused() {
    let dir = TempDir::new("config");
    let (code, stderr) = run_node(&dir.path().join("nowhere.toml"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
}
