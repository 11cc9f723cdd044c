//! Summaries of the members' results and the markdown tables rewritten from the results
//! files (the latest run of each cell).

use crate::csv_files::per_member;
use crate::lines::{Latency, ResultLine};
use crate::results::{
    latest_view_change, CellSummary, MulticastCell, MulticastRow, OrderCheck, RatePoint, RunInfo,
    ViewChangeCell, ViewChangeResult, ViewChangeRow,
};
use crate::BoxError;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// `YYYY-MM-DD HH:MM` (UTC) of unix seconds.
pub fn utc_time(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

fn opt<T: fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Summarizes one cell's member lines.
pub fn summarize(cell: MulticastCell, lines: &[ResultLine]) -> CellSummary {
    let m = |f: fn(&ResultLine) -> f64| mean(lines.iter().map(f)).unwrap_or(0.0);
    let lat: Vec<Latency> = lines.iter().filter_map(|l| l.latency).collect();
    let order = if !cell.order.is_total() {
        OrderCheck::NotApplicable
    } else if lines
        .windows(2)
        .all(|w| w[0].hash_k == w[1].hash_k && w[0].order_hash == w[1].order_hash)
    {
        OrderCheck::Same
    } else {
        OrderCheck::Differs
    };
    CellSummary {
        cell,
        run: 0,
        commit: String::new(),
        reported: lines.len(),
        rate_mean: m(|l| l.deliv_msgs_s),
        rate_min: lines
            .iter()
            .map(|l| l.deliv_msgs_s)
            .reduce(f64::min)
            .unwrap_or(0.0),
        mb_mean: m(|l| l.deliv_mb_s),
        p50_us: mean(lat.iter().map(|l| l.p50 as f64)),
        p99_us: mean(lat.iter().map(|l| l.p99 as f64)),
        max_us: lat.iter().map(|l| l.max).max(),
        recv_p50_us: mean(
            lines
                .iter()
                .filter_map(|l| l.recv_latency)
                .map(|l| l.p50 as f64),
        ),
        recv_p99_us: mean(
            lines
                .iter()
                .filter_map(|l| l.recv_latency)
                .map(|l| l.p99 as f64),
        ),
        frames_per_deliv: m(|l| l.wire_frames_per_deliv),
        bytes_per_deliv: mean(lines.iter().filter_map(|l| l.wire_bytes_per_deliv)),
        writes_per_deliv: m(|l| l.writes_per_deliv),
        cpu_per_1000: m(|l| l.cpu_s_per_1000),
        order,
        suspicions: lines.iter().map(|l| l.suspicions).sum(),
        false_suspicions: lines.iter().map(|l| l.false_suspicions).sum(),
        retransmitted: lines.iter().map(|l| l.retransmitted).sum(),
        dropped_frames: lines.iter().map(|l| l.dropped_frames).sum(),
        complete: lines.windows(2).all(|w| w[0].delivered == w[1].delivered)
            && lines.iter().all(|l| l.own_deliv == l.sent),
        missing: missing(lines),
    }
}

/// `(member, sender, count)` for each sender whose accepted multicasts a member did not all
/// deliver.
fn missing(lines: &[ResultLine]) -> Vec<(u64, u64, u64)> {
    let mut missing = Vec::new();
    for member in lines {
        for sender in lines.iter().filter(|l| l.sent > 0) {
            let got = member
                .per_sender
                .iter()
                .find(|(node, _)| *node == sender.node)
                .map_or(0, |(_, n)| *n);
            if got < sender.sent && !member.per_sender.is_empty() {
                missing.push((member.node, sender.node, sender.sent - got));
            }
        }
    }
    missing
}

impl fmt::Display for CellSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary {} deliv_msgs/s_mean={:.0} deliv_msgs/s_min={:.0} deliv_MB/s_mean={:.2} own_lat_us_p50={} own_lat_us_p99={} recv_lat_us_p50={} recv_lat_us_p99={} wire_frames_per_deliv={:.3} wire_bytes_per_deliv={} cpu_s_per_1000={:.4} order={} complete={} missing={} false_suspicions={} retransmitted={} dropped_frames={}",
            self.cell,
            self.rate_mean,
            self.rate_min,
            self.mb_mean,
            opt(self.p50_us.map(|v| format!("{v:.0}"))),
            opt(self.p99_us.map(|v| format!("{v:.0}"))),
            opt(self.recv_p50_us.map(|v| format!("{v:.0}"))),
            opt(self.recv_p99_us.map(|v| format!("{v:.0}"))),
            self.frames_per_deliv,
            opt(self.bytes_per_deliv.map(|v| format!("{v:.0}"))),
            self.cpu_per_1000,
            self.order,
            self.complete,
            if self.missing.is_empty() {
                "none".to_string()
            } else {
                self.missing
                    .iter()
                    .map(|(m, s, n)| format!("{n}_from_{s}_at_{m}"))
                    .collect::<Vec<_>>()
                    .join(",")
            },
            self.false_suspicions,
            self.retransmitted,
            self.dropped_frames,
        )
    }
}

/// The summary of the latest run of each cell in `rows`, in matrix order.
pub fn latest_summaries(rows: &[MulticastRow]) -> Vec<CellSummary> {
    let mut by_cell: BTreeMap<MulticastCell, (u64, String, Vec<ResultLine>)> = BTreeMap::new();
    for row in rows {
        let entry = by_cell
            .entry(row.cell)
            .or_insert_with(|| (row.run, row.commit.clone(), Vec::new()));
        if row.run > entry.0 {
            *entry = (row.run, row.commit.clone(), Vec::new());
        }
        if row.run == entry.0 {
            entry.2.push(row.line.clone());
        }
    }
    let mut summaries: Vec<CellSummary> = by_cell
        .into_iter()
        .map(|(cell, (run, commit, lines))| CellSummary {
            run,
            commit,
            ..summarize(cell, &lines)
        })
        .collect();
    summaries.sort_by_key(|s| {
        (
            s.cell.mode,
            s.cell.senders,
            s.cell.order,
            s.cell.members,
            s.cell.size,
        )
    });
    summaries
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn runs_note(runs: impl Iterator<Item = (u64, String)>) -> String {
    let runs: BTreeMap<u64, String> = runs.collect();
    let notes: std::collections::BTreeSet<String> = runs
        .iter()
        .map(|(run, commit)| format!("{} (commit {commit})", utc_time(*run)))
        .collect();
    notes.into_iter().collect::<Vec<_>>().join("; ")
}

/// Writes the markdown table of `summaries`.
pub fn write_multicast_md(
    path: &Path,
    summaries: &[CellSummary],
    info: &RunInfo,
) -> Result<(), BoxError> {
    let mut md = String::new();
    md.push_str("# viewsync multicast benchmark\n\n");
    md.push_str(&format!(
        "Written by `viewsync-bench multicast` at {} from `multicast.csv` (the latest run of each cell). Machine: {}. Runs shown: {}.\n\n",
        utc_time(info.run),
        machine(),
        runs_note(summaries.iter().map(|s| (s.run, s.commit.clone())))
    ));
    md.push_str("Each member is a process on this machine, over loopback TCP. Rates are per member while the clock ran; own latency is a sender's multicast to its own delivery (mean over senders of their p50 and p99; a FIFO sender and the total-order sequencer deliver their own multicasts without waiting for the network), others' latency is another member's multicast to its delivery here (both ends read the same `CLOCK_MONOTONIC`; mean over members); wire figures are per multicast delivered at a member (frames it sealed, TCP bytes it sent by the kernel's socket counters, write calls of its transport); CPU is the member process's user+system time per 1000 deliveries. `order` compares the hashes of the first deliveries' ids (total orders only).\n\n");
    md.push_str("| mode | senders | order | members | size B | deliv/s per member (mean) | min | MB/s | own p50 µs | own p99 µs | others' p50 µs | others' p99 µs | frames/deliv | bytes/deliv | writes/deliv | CPU s/1000 | order | complete | retrans. | dropped | false susp. |\n");
    md.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|\n");
    for s in summaries {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.1} | {} | {} | {} | {} | {:.3} | {} | {:.4} | {:.4} | {} | {} | {} | {} | {} |\n",
            s.cell.mode,
            s.cell.senders,
            s.cell.order,
            s.cell.members,
            s.cell.size,
            s.rate_mean,
            s.rate_min,
            s.mb_mean,
            opt(s.p50_us.map(|v| format!("{v:.0}"))),
            opt(s.p99_us.map(|v| format!("{v:.0}"))),
            opt(s.recv_p50_us.map(|v| format!("{v:.0}"))),
            opt(s.recv_p99_us.map(|v| format!("{v:.0}"))),
            s.frames_per_deliv,
            opt(s.bytes_per_deliv.map(|v| format!("{v:.0}"))),
            s.writes_per_deliv,
            s.cpu_per_1000,
            s.order,
            if s.complete { "yes" } else { "no" },
            s.retransmitted,
            s.dropped_frames,
            s.false_suspicions,
        ));
    }
    std::fs::write(path, md)?;
    Ok(())
}

/// One open-loop cell's point of the curve, from its member lines.
pub fn rate_point(
    info: &RunInfo,
    cell: MulticastCell,
    rate: f64,
    peak: Option<f64>,
    secs: f64,
    lines: &[ResultLine],
) -> RatePoint {
    let summary = summarize(cell, lines);
    RatePoint {
        run: info.run,
        commit: info.commit.clone(),
        cell,
        rate,
        peak,
        secs,
        offered: lines.iter().map(|l| l.offered).sum(),
        sent: lines.iter().map(|l| l.sent).sum(),
        deliv_msgs_s: summary.rate_mean,
        own_p50_us: lines.iter().filter_map(|l| l.latency).map(|l| l.p50).max(),
        own_p99_us: lines.iter().filter_map(|l| l.latency).map(|l| l.p99).max(),
        recv_p99_us: lines
            .iter()
            .filter_map(|l| l.recv_latency)
            .map(|l| l.p99)
            .max(),
        complete: summary.complete && summary.order != OrderCheck::Differs,
    }
}

/// The line printed for one open-loop cell.
pub fn rate_line(p: &RatePoint) -> String {
    format!(
        "rate {} rate={:.0} peak={} offered={} sent={} lost={:.4} deliv_msgs/s={:.0} own_p50_us={} own_p99_us={} recv_p99_us={} complete={}",
        p.cell,
        p.rate,
        opt(p.peak.map(|v| format!("{v:.0}"))),
        p.offered,
        p.sent,
        p.lost(),
        p.deliv_msgs_s,
        opt(p.own_p50_us),
        opt(p.own_p99_us),
        opt(p.recv_p99_us),
        p.complete
    )
}

/// The points of the latest run that measured each (ordering, members, size, senders),
/// by rate.
pub fn latest_rate_points(points: &[RatePoint]) -> Vec<RatePoint> {
    let key = |p: &RatePoint| (p.cell.order, p.cell.members, p.cell.size, p.cell.senders);
    let mut latest = BTreeMap::new();
    for p in points {
        let run = latest.entry(key(p)).or_insert(p.run);
        *run = (*run).max(p.run);
    }
    let mut chosen: Vec<RatePoint> = points
        .iter()
        .filter(|p| latest.get(&key(p)) == Some(&p.run))
        .cloned()
        .collect();
    chosen.sort_by(|a, b| key(a).cmp(&key(b)).then(a.rate.total_cmp(&b.rate)));
    chosen
}

/// Writes the markdown table of the open-loop points.
pub fn write_rate_md(path: &Path, points: &[RatePoint], info: &RunInfo) -> Result<(), BoxError> {
    let mut md = String::new();
    md.push_str(
        "# viewsync multicast: latency at a given load

",
    );
    md.push_str(&format!(
        "Written by `viewsync-bench multicast --rate`/`--curve` at {} from `multicast-rate.csv` (the latest run of each ordering and group). Machine: {}. Runs shown: {}.

",
        utc_time(info.run),
        machine(),
        runs_note(points.iter().map(|p| (p.run, p.commit.clone())))
    ));
    md.push_str("Open loop: every sender offers `rate` multicasts per second on a fixed schedule and stamps each with its intended send time, so waiting anywhere (the sender, the outbox, the window, the network) counts. `lost` is the share of the offered load the senders could not place (the node's outbox full, or too many multicasts waiting for acceptance). Latencies are the worst member's: own p50/p99 from the intended send to the sender's own delivery, others' p99 from the intended send to delivery at another member. `peak` is the flood throughput per sender the rate is a fraction of (`--curve`).

");
    md.push_str("| order | members | size B | senders | rate/sender | peak/sender | fraction | lost | deliv/s per member | own p50 µs | own p99 µs | others' p99 µs | complete |
");
    md.push_str(
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|
",
    );
    for p in points {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {:.4} | {:.0} | {} | {} | {} | {} |
",
            p.cell.order,
            p.cell.members,
            p.cell.size,
            p.cell.senders,
            p.rate,
            opt(p.peak.map(|v| format!("{v:.0}"))),
            opt(p.peak.map(|v| format!("{:.2}", p.rate / v))),
            p.lost(),
            p.deliv_msgs_s,
            opt(p.own_p50_us),
            opt(p.own_p99_us),
            opt(p.recv_p99_us),
            if p.complete { "yes" } else { "no" },
        ));
    }
    std::fs::write(path, md)?;
    Ok(())
}

/// The line printed for one view-change run.
pub fn view_change_line(cell: ViewChangeCell, rep: usize, r: &ViewChangeResult) -> String {
    format!(
        "view-change {cell} rep={rep} view_ms_min={:.1} view_ms_max={:.1} service_view_ms_max={} detect_ms={} unstable={} suspicions={} false_suspicions={} per_member_ms={}",
        r.view_ms_min,
        r.view_ms_max,
        opt(r.service_view_ms_max.map(|v| format!("{v:.1}"))),
        opt(r.detect_ms.map(|v| format!("{v:.1}"))),
        r.unstable,
        r.suspicions,
        r.false_suspicions,
        per_member(&r.per_member_ms),
    )
}

/// Writes the markdown table of the latest run of each view-change cell (means over its
/// repetitions).
pub fn write_view_change_md(
    path: &Path,
    rows: &[ViewChangeRow],
    info: &RunInfo,
) -> Result<(), BoxError> {
    let latest = latest_view_change(rows);
    let mut md = String::new();
    md.push_str("# viewsync view-change benchmark\n\n");
    md.push_str(&format!(
        "Written by `viewsync-bench view-change` at {} from `view-change.csv` (the latest run of each cell, means over its repetitions). Machine: {}. Runs shown: {}.\n\n",
        utc_time(info.run),
        machine(),
        runs_note(latest.values().flatten().map(|r| (r.run, r.commit.clone())))
    ));
    md.push_str("Times are milliseconds from the event (the parent's SIGKILL, its `leave` command, or the joiner's call to `join`) to a member's `GroupEvent::ViewInstalled` of the new view, read from `CLOCK_MONOTONIC` in each process. Members use the default failure-detector settings. `unstable` is the most multicast entries a member held (`NodeStats::buffered_entries`) when the view change began; suspicions are summed over the members that stayed.\n\n");
    md.push_str("| event | members before | load | runs | view at every member ms (mean) | max | first member ms | service view ms | detection ms | unstable | suspicions | false susp. |\n");
    md.push_str("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (cell, rows) in &latest {
        let results: Vec<&ViewChangeResult> = rows.iter().map(|r| &r.result).collect();
        let m = |v: Vec<f64>| mean(v.into_iter()).map_or("-".into(), |v| format!("{v:.1}"));
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            cell.event,
            cell.members,
            cell.load,
            results.len(),
            m(results.iter().map(|r| r.view_ms_max).collect()),
            results
                .iter()
                .map(|r| r.view_ms_max)
                .reduce(f64::max)
                .map_or("-".into(), |v| format!("{v:.1}")),
            m(results.iter().map(|r| r.view_ms_min).collect()),
            m(results
                .iter()
                .filter_map(|r| r.service_view_ms_max)
                .collect()),
            m(results.iter().filter_map(|r| r.detect_ms).collect()),
            results.iter().map(|r| r.unstable).max().unwrap_or(0),
            results.iter().map(|r| r.suspicions).sum::<u64>(),
            results.iter().map(|r| r.false_suspicions).sum::<u64>(),
        ));
    }
    std::fs::write(path, md)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Event, Load, Mode, Order, Senders};
    use crate::csv_files::{
        append_multicast, append_view_change, read_multicast, read_view_change,
    };
    use crate::results::ViewChangeSettings;

    fn line(node: u64, hash: &str) -> ResultLine {
        ResultLine {
            node,
            mode: Some(Mode::Flood),
            size: 1024,
            secs: 3.0,
            members: 2,
            sent: 5,
            own_deliv: 5,
            delivered: 10,
            deliv_msgs_s: 100.0 * node as f64,
            deliv_mb_s: 0.1,
            latency: Some(Latency {
                p50: 10,
                p90: 20,
                p99: 30,
                max: 40,
            }),
            hash_k: 10,
            order_hash: hash.into(),
            ..Default::default()
        }
    }

    #[test]
    fn csv_rows_round_trip_and_the_latest_run_wins() {
        let dir = std::env::temp_dir().join(format!("vsb-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("multicast.csv");
        let _ = std::fs::remove_file(&csv);
        let cell = MulticastCell {
            order: Order::Total,
            members: 2,
            size: 1024,
            senders: Senders::All,
            mode: Mode::Flood,
        };
        let old = RunInfo {
            run: 1,
            commit: "a".into(),
        };
        let new = RunInfo {
            run: 2,
            commit: "b".into(),
        };
        append_multicast(&csv, &old, cell, 3.0, &[line(1, "x"), line(2, "y")]).unwrap();
        append_multicast(&csv, &new, cell, 3.0, &[line(1, "z"), line(2, "z")]).unwrap();
        let rows = read_multicast(&csv).unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].line.latency, line(1, "x").latency);
        let summaries = latest_summaries(&rows);
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].run, 2);
        assert_eq!(summaries[0].order, OrderCheck::Same);
        assert_eq!(summaries[0].rate_min, 100.0);
        assert_eq!(
            summarize(cell, &[line(1, "x"), line(2, "y")]).order,
            OrderCheck::Differs
        );
        write_multicast_md(&dir.join("multicast.md"), &summaries, &new).unwrap();
        let md = std::fs::read_to_string(dir.join("multicast.md")).unwrap();
        assert!(
            md.contains("| flood | all | total | 2 | 1024 | 150 |"),
            "{md}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn view_change_rows_round_trip() {
        let dir = std::env::temp_dir().join(format!("vsb-vc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("view-change.csv");
        let _ = std::fs::remove_file(&csv);
        let cell = ViewChangeCell {
            event: Event::KillCoord,
            members: 3,
            load: Load::Flood,
        };
        let settings = ViewChangeSettings {
            order: Order::Total,
            size: 1024,
            settle_secs: 1.0,
            pipeline: 8,
        };
        let result = ViewChangeResult {
            view_ms_min: 500.0,
            view_ms_max: 612.5,
            service_view_ms_max: None,
            detect_ms: Some(450.25),
            unstable: 77,
            suspicions: 2,
            false_suspicions: 0,
            per_member_ms: vec![(2, 500.0), (3, 612.5)],
        };
        let info = RunInfo {
            run: 5,
            commit: "c".into(),
        };
        append_view_change(&csv, &info, cell, &settings, 1, &result).unwrap();
        let rows = read_view_change(&csv).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].result, result);
        write_view_change_md(&dir.join("view-change.md"), &rows, &info).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn utc_times_are_civil() {
        assert_eq!(utc_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_time(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
