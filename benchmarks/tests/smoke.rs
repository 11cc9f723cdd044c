//! Smoke test of `viewsync-bench`: one short multicast cell with two member processes, and
//! one view change. Ports are picked by the kernel (members listen on port 0).

use std::path::PathBuf;
use std::process::Command;
use viewsync_benchmarks::lines::ResultLine;

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("viewsync-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_one_second_cell_prints_one_parsable_line_per_member() {
    let out = out_dir("smoke");
    let output = Command::new(env!("CARGO_BIN_EXE_viewsync-bench"))
        .args([
            "multicast",
            "--members",
            "2",
            "--order",
            "total",
            "--size",
            "100",
            "--senders",
            "all",
            "--mode",
            "flood",
            "--secs",
            "1",
            "--no-plots",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("viewsync-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<ResultLine> = stdout.lines().filter_map(ResultLine::parse).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for line in &lines {
        assert_eq!((line.members, line.size), (2, 100), "{stdout}");
        assert!(line.sent > 0 && line.delivered > 0, "{stdout}");
        assert!(line.latency.is_some(), "{stdout}");
    }
    // Total order: both members hashed the same first deliveries.
    assert_eq!(lines[0].order_hash, lines[1].order_hash, "{stdout}");
    let csv = std::fs::read_to_string(out.join("multicast.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(out.join("multicast.md").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_leave_gives_a_new_view_at_the_other_member() {
    let out = out_dir("leave");
    let output = Command::new(env!("CARGO_BIN_EXE_viewsync-bench"))
        .args([
            "view-change",
            "--members",
            "2",
            "--event",
            "leave",
            "--load",
            "none",
            "--no-plots",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("viewsync-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("view-change event=leave members=2"))
        .unwrap_or_else(|| panic!("no result: {stdout}\n{stderr}"));
    assert!(line.contains("per_member_ms=1:"), "{line}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Runs `viewsync-bench replication` with `args` into a fresh directory; returns its stdout
/// and the directory.
fn replication(name: &str, args: &[&str]) -> (String, PathBuf) {
    let out = out_dir(name);
    let output = Command::new(env!("CARGO_BIN_EXE_viewsync-bench"))
        .arg("replication")
        .args(args)
        .args(["--secs", "1", "--warmup", "0.3", "--keys", "20", "--out"])
        .arg(&out)
        .output()
        .expect("viewsync-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    (stdout, out)
}

/// The `key=value` field `name` of `line`.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn a_replication_cell_measures_a_real_group_and_etcd_is_measured_or_skipped_with_a_reason() {
    // Needs the `viewsync` binary next to this one (the README's test command builds it).
    let (stdout, out) = replication(
        "replication",
        &["--strategy", "passive,etcd", "--clients", "2"],
    );
    let passive = stdout
        .lines()
        .find(|l| l.starts_with("target=passive"))
        .unwrap_or_else(|| panic!("no passive line: {stdout}"));
    let ops: f64 = field(passive, "ops/s").unwrap().parse().unwrap();
    assert!(ops > 0.0, "{passive}");
    assert_eq!(field(passive, "errors"), Some("0"), "{passive}");
    assert!(
        field(passive, "p99_us").unwrap().parse::<u64>().unwrap() > 0,
        "{passive}"
    );
    let etcd = stdout
        .lines()
        .find(|l| l.starts_with("target=etcd"))
        .unwrap_or_else(|| panic!("no etcd line: {stdout}"));
    assert!(
        etcd.contains("skipped: ") || field(etcd, "ops/s").is_some(),
        "{etcd}"
    );
    let csv = std::fs::read_to_string(out.join("replication.csv")).unwrap();
    assert!(csv.lines().count() >= 2, "{csv}");
    assert!(out.join("replication.md").exists());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn an_open_loop_cell_offers_its_rate_and_counts_latency_from_the_intended_send() {
    let (stdout, out) = replication(
        "replication-open",
        &["--strategy", "active", "--clients", "4", "--rate", "200"],
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("target=active"))
        .unwrap_or_else(|| panic!("no active line: {stdout}"));
    assert_eq!(field(line, "load"), Some("open@200/s"), "{line}");
    let ops: f64 = field(line, "ops/s").unwrap().parse().unwrap();
    // 200 offered per second for one second: about 200 answered (the machine may be slow).
    assert!(ops > 50.0 && ops < 400.0, "{line}");
    let md = std::fs::read_to_string(out.join("replication.md")).unwrap();
    assert!(md.contains("Open loop"), "{md}");
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_multicast_curve_measures_the_peak_then_offers_fractions_of_it_open_loop() {
    let out = out_dir("multicast-curve");
    let output = Command::new(env!("CARGO_BIN_EXE_viewsync-bench"))
        .args([
            "multicast",
            "--curve",
            "--fractions",
            "0.1,0.5",
            "--members",
            "2",
            "--order",
            "total",
            "--secs",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .expect("viewsync-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let points: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("# rate "))
        .collect();
    assert_eq!(points.len(), 2, "{stdout}");
    let peak: f64 = field(points[0], "peak").unwrap().parse().unwrap();
    assert!(peak > 0.0, "{stdout}");
    for (point, fraction) in points.iter().zip([0.1, 0.5]) {
        let rate: f64 = field(point, "rate").unwrap().parse().unwrap();
        assert!((rate - fraction * peak).abs() <= 1.0, "{point}");
        let offered: u64 = field(point, "offered").unwrap().parse().unwrap();
        // Two senders for one second at `rate` each (the clock may run a little long).
        assert!(offered as f64 >= 1.5 * rate, "{point}");
        assert!(field(point, "own_p99_us").unwrap().parse::<u64>().unwrap() > 0);
    }
    // The members' lines say what was offered.
    let lines: Vec<ResultLine> = stdout.lines().filter_map(ResultLine::parse).collect();
    assert!(lines.iter().any(|l| l.offered > 0), "{stdout}");
    let csv = std::fs::read_to_string(out.join("multicast-rate.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "a header and two points: {csv}");
    let md = std::fs::read_to_string(out.join("multicast-rate.md")).unwrap();
    assert!(md.contains("Open loop"), "{md}");
    assert!(out.join("multicast-rate.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}

/// `scale` with four members watched as a ring of one watcher each: the group forms, the
/// middle member is killed and the survivors install the view without it (only its watcher
/// notices, and reports it); the CSV, table and plots are written.
#[test]
fn a_scale_run_forms_a_ring_watched_group_and_replaces_a_killed_member() {
    let out = out_dir("scale");
    let output = Command::new(env!("CARGO_BIN_EXE_viewsync-bench"))
        .args(["scale", "--members", "4", "--monitors", "1", "--out"])
        .arg(&out)
        .output()
        .expect("viewsync-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("scale members=4 monitors=1 rep=1"))
        .unwrap_or_else(|| panic!("no result: {stdout}\n{stderr}"));
    let field = |k: &str| -> f64 {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    assert!(
        field("form_ms") > 0.0 && field("kill_view_ms") > 0.0,
        "{line}"
    );
    assert!(field("form_frames_per_member") > 0.0, "{line}");
    assert!(field("suspicions") >= 1.0, "{line}");
    let rows = viewsync_benchmarks::scale::read_rows(&out.join("scale.csv")).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].members, rows[0].monitors), (4, 1));
    assert!(out.join("scale.md").exists() && out.join("scale-time.svg").exists());
    let _ = std::fs::remove_dir_all(&out);
}
