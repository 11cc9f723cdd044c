//! The replication results: `replication.csv` (one row per cell, appended by every run),
//! and `replication.md` and the `replication-*.svg` plots, rewritten from it (the latest
//! row of each cell).

use super::load::Measurement;
use super::{Cell, Workload};
use crate::plots::{draw, Chart, Series};
use crate::results::RunInfo;
use crate::BoxError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One cell's results, as a CSV row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Unix seconds at the run's start.
    pub run: u64,
    /// The checkout's commit.
    pub commit: String,
    /// The cell's identity ([`Cell::key`]).
    pub cell: String,
    /// Strategy or `etcd`.
    pub target: String,
    /// Group size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Percent reads.
    pub reads: u8,
    /// Durability mode.
    pub durability: String,
    /// Value size, bytes.
    pub size: usize,
    /// Open loop: requests offered per second; 0 for closed loop.
    pub offered_per_s: f64,
    /// Measured seconds.
    pub secs: f64,
    /// Requests answered in the measured time.
    pub ops: u64,
    /// Answered per second.
    pub ops_per_s: f64,
    /// Failed requests.
    pub errors: u64,
    /// Open loop: offered and never answered within the drain.
    pub unfinished: u64,
    /// Latency percentiles of every request, microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Writes' median.
    pub write_p50_us: u64,
    /// Writes' 99th percentile.
    pub write_p99_us: u64,
    /// Reads' median (0 without reads).
    pub read_p50_us: u64,
    /// Reads' 99th percentile.
    pub read_p99_us: u64,
    /// Server CPU microseconds per answered request (all members together).
    pub cpu_us_per_op: f64,
    /// TCP segments sent on the machine per answered request.
    pub segments_per_op: f64,
    /// IP bytes sent on the machine per answered request.
    pub bytes_per_op: f64,
    /// The first error, if any.
    pub first_error: String,
}

impl Row {
    /// The row of `cell`'s `measurement`.
    pub fn new(info: &RunInfo, cell: &Cell, workload: &Workload, m: &Measurement) -> Row {
        let per_op = |x: f64| if m.ops == 0 { 0.0 } else { x / m.ops as f64 };
        let q = |h: &hdrhistogram::Histogram<u64>, q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Row {
            run: info.run,
            commit: info.commit.clone(),
            cell: cell.key(),
            target: cell.target.name().to_string(),
            members: cell.members,
            clients: cell.clients,
            reads: cell.reads,
            durability: cell.durability.name().to_string(),
            size: workload.size,
            offered_per_s: cell.rate.unwrap_or(0.0),
            secs: m.elapsed.as_secs_f64(),
            ops: m.ops,
            ops_per_s: m.ops_per_sec(),
            errors: m.errors,
            unfinished: m.unfinished,
            p50_us: q(&m.all, 0.5),
            p99_us: q(&m.all, 0.99),
            p999_us: q(&m.all, 0.999),
            max_us: if m.all.is_empty() { 0 } else { m.all.max() },
            write_p50_us: q(&m.writes, 0.5),
            write_p99_us: q(&m.writes, 0.99),
            read_p50_us: q(&m.reads, 0.5),
            read_p99_us: q(&m.reads, 0.99),
            cpu_us_per_op: per_op(m.server_cpu * 1e6),
            segments_per_op: per_op(m.tcp_segments as f64),
            bytes_per_op: per_op(m.ip_bytes as f64),
            first_error: m.first_error.clone().unwrap_or_default(),
        }
    }

    /// The line printed for the row.
    pub fn line(&self) -> String {
        let load = if self.offered_per_s > 0.0 {
            format!("open@{:.0}/s", self.offered_per_s)
        } else {
            "closed".into()
        };
        let mut line = format!(
            "target={} members={} clients={} reads={}% durability={} load={load} ops/s={:.0} \
             p50_us={} p99_us={} p99.9_us={} max_us={} errors={} cpu_us/op={:.0} \
             segments/op={:.1} bytes/op={:.0}",
            self.target,
            self.members,
            self.clients,
            self.reads,
            self.durability,
            self.ops_per_s,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors,
            self.cpu_us_per_op,
            self.segments_per_op,
            self.bytes_per_op,
        );
        if self.unfinished > 0 {
            let _ = write!(line, " unfinished={}", self.unfinished);
        }
        if !self.first_error.is_empty() {
            let _ = write!(line, " first_error={:?}", self.first_error);
        }
        line
    }

    fn open_loop(&self) -> bool {
        self.offered_per_s > 0.0
    }
}

/// Appends `row` to the CSV file at `path` (with a header when the file is new).
pub fn append(path: &Path, row: &Row) -> Result<(), BoxError> {
    let new = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    writer.serialize(row)?;
    writer.flush()?;
    Ok(())
}

/// Every row of the CSV file at `path` (none if there is no file).
pub fn read(path: &Path) -> Result<Vec<Row>, BoxError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for row in csv::Reader::from_path(path)?.deserialize() {
        rows.push(row?);
    }
    Ok(rows)
}

/// The latest row of each cell, in the order the cells were first measured.
pub fn latest(rows: &[Row]) -> Vec<Row> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_cell: BTreeMap<&str, &Row> = BTreeMap::new();
    for row in rows {
        if !by_cell.contains_key(row.cell.as_str()) {
            order.push(&row.cell);
        }
        let keep = by_cell
            .get(row.cell.as_str())
            .is_none_or(|kept| kept.run <= row.run);
        if keep {
            by_cell.insert(&row.cell, row);
        }
    }
    order.iter().map(|c| by_cell[c].clone()).collect()
}

fn ms(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0}", us as f64 / 1000.0)
    } else {
        format!("{:.2}", us as f64 / 1000.0)
    }
}

/// The markdown tables of `rows` (latest of each cell).
pub fn markdown(rows: &[Row]) -> String {
    let mut md = String::from(
        "# Replication benchmark\n\n\
         Written by `viewsync-bench replication` from `replication.csv` (the latest run of each \
         cell). Latency in milliseconds; open-loop latency counts from each request's intended \
         send time. CPU is the servers' (all members), segments and bytes are what the \
         machine sent (loopback), each per answered request.\n\n",
    );
    let header = "| target | members | clients | reads | durability | ops/s | p50 | p99 | p99.9 | write p50 | read p50 | errors | CPU µs/op | segments/op | bytes/op | commit |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    let line = |r: &Row| {
        format!(
            "| {} | {} | {} | {}% | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.0} | {:.1} | {:.0} | {} |\n",
            r.target,
            r.members,
            r.clients,
            r.reads,
            r.durability,
            r.ops_per_s,
            ms(r.p50_us),
            ms(r.p99_us),
            ms(r.p999_us),
            ms(r.write_p50_us),
            if r.reads > 0 { ms(r.read_p50_us) } else { "-".into() },
            r.errors,
            r.cpu_us_per_op,
            r.segments_per_op,
            r.bytes_per_op,
            r.commit,
        )
    };
    md.push_str("## Closed loop\n\n");
    md.push_str(header);
    for r in rows.iter().filter(|r| !r.open_loop()) {
        md.push_str(&line(r));
    }
    let open: Vec<&Row> = rows.iter().filter(|r| r.open_loop()).collect();
    if !open.is_empty() {
        md.push_str("\n## Open loop (offered rate)\n\n");
        md.push_str("| target | members | pool | reads | durability | offered/s | answered/s | p50 | p99 | p99.9 | max | unfinished | commit |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for r in open {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {}% | {} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {} |",
                r.target,
                r.members,
                r.clients,
                r.reads,
                r.durability,
                r.offered_per_s,
                r.ops_per_s,
                ms(r.p50_us),
                ms(r.p99_us),
                ms(r.p999_us),
                ms(r.max_us),
                r.unfinished,
                r.commit,
            );
        }
    }
    md
}

/// Rewrites `replication.md` and the plots in `dir` from `replication.csv`; returns the
/// files written.
pub fn rewrite(dir: &Path) -> Result<Vec<PathBuf>, BoxError> {
    let rows = latest(&read(&dir.join("replication.csv"))?);
    let mut written = Vec::new();
    if rows.is_empty() {
        return Ok(written);
    }
    let md = dir.join("replication.md");
    std::fs::write(&md, markdown(&rows))?;
    written.push(md);
    // Closed loop, writes only, 3 members, grouped: against the number of clients.
    let base =
        |r: &&Row| !r.open_loop() && r.reads == 0 && r.members == 3 && r.durability == "grouped";
    let mut targets: Vec<&str> = Vec::new();
    for r in &rows {
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    let series_of = |filter: &dyn Fn(&&Row) -> bool, point: &dyn Fn(&Row) -> (f64, f64)| {
        targets
            .iter()
            .map(|t| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.target == *t)
                    .filter(|r| filter(r))
                    .map(point)
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series {
                    name: t.to_string(),
                    points,
                }
            })
            .collect::<Vec<_>>()
    };
    let clients_x = |r: &Row| (r.clients as f64).log2();
    let plots: [(&str, Chart<'_>, Vec<Series>); 3] = [
        (
            "replication-throughput.svg",
            Chart {
                title: "1 KiB puts, 3 members, grouped sync: throughput",
                x_desc: "clients (log2)",
                y_desc: "operations/s",
                x_categories: None,
                scatter: false,
                log_y: false,
            },
            series_of(&base, &|r| (clients_x(r), r.ops_per_s)),
        ),
        (
            "replication-p99.svg",
            Chart {
                title: "1 KiB puts, 3 members, grouped sync: p99 latency",
                x_desc: "clients (log2)",
                y_desc: "p99 ms",
                x_categories: None,
                scatter: false,
                log_y: true,
            },
            series_of(&base, &|r| (clients_x(r), r.p99_us as f64 / 1000.0)),
        ),
        (
            "replication-rate.svg",
            Chart {
                title: "Open loop, 1 KiB puts, 3 members: p99 latency against answered load",
                x_desc: "answered operations/s",
                y_desc: "p99 ms (from the intended send)",
                x_categories: None,
                scatter: false,
                log_y: true,
            },
            series_of(
                &|r: &&Row| r.open_loop() && r.reads == 0 && r.members == 3,
                &|r| (r.ops_per_s, r.p99_us as f64 / 1000.0),
            ),
        ),
    ];
    for (name, chart, series) in plots {
        let path = dir.join(name);
        if draw(&path, &chart, &series)? {
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cell: &str, run: u64, ops_per_s: f64) -> Row {
        Row {
            run,
            commit: "abc".into(),
            cell: cell.into(),
            target: "passive".into(),
            members: 3,
            clients: 8,
            reads: 0,
            durability: "grouped".into(),
            size: 1024,
            offered_per_s: 0.0,
            secs: 5.0,
            ops: 100,
            ops_per_s,
            errors: 0,
            unfinished: 0,
            p50_us: 900,
            p99_us: 2_500,
            p999_us: 4_000,
            max_us: 9_000,
            write_p50_us: 900,
            write_p99_us: 2_500,
            read_p50_us: 0,
            read_p99_us: 0,
            cpu_us_per_op: 120.0,
            segments_per_op: 9.5,
            bytes_per_op: 5000.0,
            first_error: String::new(),
        }
    }

    #[test]
    fn rows_round_trip_and_the_latest_run_of_each_cell_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replication.csv");
        append(&path, &row("a", 1, 10.0)).unwrap();
        append(&path, &row("b", 1, 20.0)).unwrap();
        append(&path, &row("a", 2, 30.0)).unwrap();
        let rows = read(&path).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], row("a", 1, 10.0));
        let latest = latest(&rows);
        let got: Vec<(&str, f64)> = latest
            .iter()
            .map(|r| (r.cell.as_str(), r.ops_per_s))
            .collect();
        assert_eq!(got, vec![("a", 30.0), ("b", 20.0)]);
        let written = rewrite(dir.path()).unwrap();
        assert!(written.iter().any(|p| p.ends_with("replication.md")));
        let md = std::fs::read_to_string(dir.path().join("replication.md")).unwrap();
        assert!(
            md.contains("| passive | 3 | 8 | 0% | grouped | 30 |"),
            "{md}"
        );
    }
}
