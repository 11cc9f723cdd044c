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
