//! The parent side: starting member processes, the start/stop/drain barriers, the cells of
//! each benchmark, the matrices, and the drivers of the two subcommands.
//!
//! Members are this same executable run as `viewsync-bench member`. The first member starts
//! alone and reports the address it listens on (port 0: the kernel picks a free port, so no
//! port is ever guessed); the others get that address as their seed. The parent waits until
//! every member's service has a view of the whole group (`ready`), sends `start` to all (so
//! they start sending within a few hundred microseconds of each other), waits until every
//! member's clock ran out (`stopped`), then sends `drain` to all, so no member judges its
//! deliveries complete while another is still sending.
//!
//! Times across processes are `CLOCK_MONOTONIC` nanoseconds ([`crate::sys::now_ns`]): the
//! members print the time of each event, and the parent reads the clock when it kills a
//! member or asks one to leave.

use crate::cli::{Event, Load, Mode, MulticastArgs, Order, Senders, ViewChangeArgs};
use crate::cluster::{Cluster, Line, MemberSpec};
use crate::lines::ResultLine;
use crate::report;
use crate::results::{
    MulticastCell, RunInfo, ViewChangeCell, ViewChangeResult, ViewChangeSettings,
};
use crate::sys::now_ns;
use crate::{csv_files, plots, BoxError};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Settings shared by the cells of a multicast run.
#[derive(Clone, Debug)]
pub struct MulticastSettings {
    /// Seconds of sending.
    pub secs: f64,
    /// Flood pipeline depth.
    pub pipeline: usize,
    /// Flow-control window override.
    pub window_messages: Option<u64>,
    /// Open loop: multicasts per second each sender offers (the senders run `Mode::Rate`).
    pub rate: Option<f64>,
    /// Extra `[multicast]` settings of every member.
    pub multicast_settings: Vec<String>,
}

/// The default matrix of `viewsync-bench multicast` (42 cells, about 5 minutes with 3 s
/// cells on a 2-core machine):
///
/// - every ordering × group sizes 3, 5, 7 × 1 KiB × all sending × flood (12);
/// - every ordering × 100 B and 8 KiB × 3 members × all sending × flood (8);
/// - every ordering × 3 members × 1 KiB × one sender × flood (4);
/// - every ordering × group sizes 3, 5, 7 × 1 KiB × all sending × ping (12);
/// - every ordering × 3 members × 1 KiB × one sender × ping (4);
/// - total order × 100 B and 8 KiB × 3 members × all sending × ping (2).
pub fn default_multicast_matrix() -> Vec<MulticastCell> {
    let mut cells = Vec::new();
    let cell = |order, members, size, senders, mode| MulticastCell {
        order,
        members,
        size,
        senders,
        mode,
    };
    for mode in [Mode::Flood, Mode::Ping] {
        for order in Order::ALL {
            for members in [3, 5, 7] {
                cells.push(cell(order, members, 1024, Senders::All, mode));
            }
            if mode == Mode::Flood {
                for size in [100, 8192] {
                    cells.push(cell(order, 3, size, Senders::All, mode));
                }
            }
            cells.push(cell(order, 3, 1024, Senders::Count(1), mode));
        }
    }
    for size in [100, 8192] {
        cells.push(cell(Order::Total, 3, size, Senders::All, Mode::Ping));
    }
    cells
}

/// Every combination of the matrix (144 cells).
pub fn full_multicast_matrix() -> Vec<MulticastCell> {
    let mut cells = Vec::new();
    for mode in [Mode::Flood, Mode::Ping] {
        for order in Order::ALL {
            for members in [3, 5, 7] {
                for size in [100, 1024, 8192] {
                    for senders in [Senders::Count(1), Senders::All] {
                        cells.push(MulticastCell {
                            order,
                            members,
                            size,
                            senders,
                            mode,
                        });
                    }
                }
            }
        }
    }
    cells
}

/// The cells `args` ask for.
pub fn multicast_matrix(args: &MulticastArgs) -> Result<Vec<MulticastCell>, BoxError> {
    if args.full {
        return Ok(full_multicast_matrix());
    }
    if args.members.is_empty()
        && args.order.is_empty()
        && args.size.is_empty()
        && args.senders.is_empty()
        && args.mode.is_empty()
    {
        return Ok(default_multicast_matrix());
    }
    if args.mode.contains(&Mode::Recv) {
        return Err("--mode takes flood or ping".into());
    }
    if args.members.iter().any(|m| *m < 2) {
        return Err("--members must be at least 2".into());
    }
    let mut cells = Vec::new();
    for mode in or(&args.mode, vec![Mode::Flood]) {
        for order in or(&args.order, vec![Order::Total]) {
            for members in or(&args.members, vec![3]) {
                for size in or(&args.size, vec![1024]) {
                    for senders in or(&args.senders, vec![Senders::All]) {
                        cells.push(MulticastCell {
                            order,
                            members,
                            size,
                            senders,
                            mode,
                        });
                    }
                }
            }
        }
    }
    Ok(cells)
}

/// `given`, or `default` when nothing was given.
fn or<T: Clone>(given: &[T], default: Vec<T>) -> Vec<T> {
    if given.is_empty() {
        default
    } else {
        given.to_vec()
    }
}

pub(crate) fn timeout_for_start(members: usize) -> Duration {
    Duration::from_secs(20 + 3 * members as u64)
}

/// Starts members `1..=n` (the first alone, the rest seeded with its address), and waits
/// until every one has a view of `ready_at` members. `spec(node)` gives each member's
/// arguments (its seeds are filled in here).
fn start_group(
    cluster: &mut Cluster,
    n: usize,
    spec: impl Fn(u64) -> MemberSpec,
) -> Result<Vec<u64>, BoxError> {
    let nodes: Vec<u64> = (1..=n as u64).collect();
    cluster.spawn(&spec(1))?;
    let seed = cluster.addr(1, Duration::from_secs(15))?;
    for node in &nodes[1..] {
        let mut s = spec(*node);
        s.seeds = vec![seed];
        cluster.spawn(&s)?;
    }
    cluster.wait_all(&nodes, "ready", 0, timeout_for_start(n))?;
    Ok(nodes)
}

/// Runs one multicast cell with members run from `exe`; `phase` is told what happens.
pub fn run_multicast_cell(
    exe: &Path,
    log_dir: &Path,
    cell: MulticastCell,
    settings: MulticastSettings,
    phase: &dyn Fn(&str),
) -> Result<Vec<ResultLine>, BoxError> {
    let mut cluster = Cluster::new(exe, log_dir);
    let n = cell.members;
    let senders = cell.senders.count(n) as u64;
    phase("starting members");
    let nodes = start_group(&mut cluster, n, |node| MemberSpec {
        node,
        seeds: Vec::new(),
        members: n,
        order: cell.order,
        // The highest-numbered members send: a lone sender is not the coordinator.
        mode: if node + senders > n as u64 {
            if settings.rate.is_some() {
                Mode::Rate
            } else {
                cell.mode
            }
        } else {
            Mode::Recv
        },
        size: cell.size,
        secs: settings.secs,
        pipeline: settings.pipeline,
        window_messages: settings.window_messages,
        rate: settings.rate,
        multicast_settings: settings.multicast_settings.clone(),
        monitors: None,
    })?;
    phase("running");
    let from = cluster.history.len();
    cluster.send_each(&nodes, "start")?;
    cluster.wait_all(
        &nodes,
        "stopped",
        from,
        Duration::from_secs_f64(settings.secs + 30.0),
    )?;
    phase("draining");
    let results = cluster.drain_and_report(&nodes)?;
    cluster.shutdown();
    Ok(results)
}

/// The view-change cells `args` ask for (with none: events × 3, 5, 7 members × both loads).
pub fn view_change_matrix(args: &ViewChangeArgs) -> Result<Vec<ViewChangeCell>, BoxError> {
    if args.members.iter().any(|m| *m < 2) {
        return Err("--members must be at least 2".into());
    }
    let mut cells = Vec::new();
    for load in or(&args.load, vec![Load::None, Load::Flood]) {
        for event in or(&args.event, Event::ALL.to_vec()) {
            for members in or(&args.members, vec![3, 5, 7]) {
                cells.push(ViewChangeCell {
                    event,
                    members,
                    load,
                });
            }
        }
    }
    Ok(cells)
}

/// Runs one view-change cell.
pub fn run_view_change_cell(
    exe: &Path,
    log_dir: &Path,
    cell: ViewChangeCell,
    settings: ViewChangeSettings,
    phase: &dyn Fn(&str),
) -> Result<ViewChangeResult, BoxError> {
    let mut cluster = Cluster::new(exe, log_dir);
    let n = cell.members;
    let mode = match cell.load {
        Load::None => Mode::Recv,
        Load::Flood => Mode::Flood,
    };
    let spec = |node: u64, members: usize| MemberSpec {
        node,
        seeds: Vec::new(),
        members,
        order: settings.order,
        mode,
        size: settings.size,
        secs: 0.0,
        pipeline: settings.pipeline,
        window_messages: None,
        rate: None,
        multicast_settings: Vec::new(),
        monitors: None,
    };
    phase("starting members");
    let nodes = start_group(&mut cluster, n, |node| spec(node, n))?;
    cluster.send_each(&nodes, "start")?;
    if cell.load == Load::Flood {
        phase("flooding");
        cluster.pump(Duration::from_secs_f64(settings.settle_secs))?;
    } else {
        cluster.pump(Duration::from_millis(200))?;
    }
    phase(cell.event.name());
    let from = cluster.history.len();
    let (victim, event_ns) = match cell.event {
        Event::Kill => (Some(n as u64), cluster.kill(n as u64)?),
        Event::KillCoord => (Some(1), cluster.kill(1)?),
        Event::Leave => {
            cluster.allow_exit(n as u64);
            let at = now_ns();
            cluster.send(n as u64, "leave")?;
            (Some(n as u64), at)
        }
        Event::Join => {
            let joiner = n as u64 + 1;
            let seed = cluster.addr(1, Duration::from_secs(1))?;
            let mut s = spec(joiner, n + 1);
            s.mode = Mode::Recv;
            s.seeds = vec![seed];
            let spawned = now_ns();
            cluster.spawn(&s)?;
            cluster.wait_for(Duration::from_secs(15), "the joiner to join", |h| {
                h.iter().any(|l| l.node == joiner && l.fields.is("joining"))
            })?;
            let at = cluster
                .history
                .iter()
                .find(|l| l.node == joiner && l.fields.is("joining"))
                .map_or(spawned, Line::t_ns);
            (None, at)
        }
    };
    let survivors: Vec<u64> = match cell.event {
        Event::Join => (1..=n as u64 + 1).collect(),
        _ => nodes
            .iter()
            .copied()
            .filter(|m| Some(*m) != victim)
            .collect(),
    };
    let size = survivors.len();
    let is_new_view = |l: &Line, kind: &str| {
        l.fields.is(kind)
            && l.fields.get::<usize>("size") == Some(size)
            && match victim {
                Some(v) => !l
                    .fields
                    .text("members")
                    .unwrap_or("")
                    .split(',')
                    .any(|m| m == v.to_string()),
                None => true,
            }
    };
    let first_time = |h: &[Line], node: u64, kind: &str| {
        h.iter()
            .skip(from)
            .find(|l| l.node == node && is_new_view(l, kind))
            .map(Line::t_ns)
    };
    phase("waiting for the new view");
    cluster.wait_for(
        Duration::from_secs(30),
        "the new view at every member",
        |h| {
            survivors
                .iter()
                .all(|m| first_time(h, *m, "gview").is_some())
        },
    )?;
    // The service views follow once the flush delivered what the old view owed.
    let _ = cluster.wait_for(Duration::from_secs(10), "service views", |h| {
        survivors
            .iter()
            .all(|m| first_time(h, *m, "sview").is_some())
    });
    let ms = |t: u64| t.saturating_sub(event_ns) as f64 / 1e6;
    let mut per_member_ms = Vec::new();
    for m in &survivors {
        if let Some(t) = first_time(&cluster.history, *m, "gview") {
            per_member_ms.push((*m, ms(t)));
        }
    }
    let service: Vec<f64> = survivors
        .iter()
        .filter_map(|m| first_time(&cluster.history, *m, "sview").map(ms))
        .collect();
    let detect_ms = victim
        .filter(|_| matches!(cell.event, Event::Kill | Event::KillCoord))
        .and_then(|v| {
            cluster
                .history
                .iter()
                .skip(from)
                .filter(|l| l.fields.is("suspect") && l.fields.get::<u64>("peer") == Some(v))
                .map(|l| ms(l.t_ns()))
                .reduce(f64::min)
        });
    let unstable = cluster
        .history
        .iter()
        .skip(from)
        .filter(|l| l.fields.is("unstable"))
        .filter_map(|l| l.fields.get::<u64>("buffered"))
        .max()
        .unwrap_or(0);
    phase("draining");
    let started: Vec<u64> = survivors
        .iter()
        .copied()
        .filter(|m| nodes.contains(m))
        .collect();
    let results = cluster.drain_and_report(&started)?;
    cluster.shutdown();
    let times: Vec<f64> = per_member_ms.iter().map(|(_, t)| *t).collect();
    Ok(ViewChangeResult {
        view_ms_min: times.iter().copied().fold(f64::INFINITY, f64::min),
        view_ms_max: times.iter().copied().fold(0.0, f64::max),
        service_view_ms_max: (service.len() == survivors.len())
            .then(|| service.iter().copied().fold(0.0, f64::max)),
        detect_ms,
        unstable,
        suspicions: results.iter().map(|r| r.suspicions).sum(),
        false_suspicions: results.iter().map(|r| r.false_suspicions).sum(),
        per_member_ms,
    })
}

pub(crate) fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30.cyan/blue}] {pos}/{len} cells (eta {eta}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The executable members are run from: this one.
pub fn member_exe() -> Result<PathBuf, BoxError> {
    Ok(std::env::current_exe()?)
}

/// `viewsync-bench multicast`: runs the cells, prints each member's line, appends to
/// `multicast.csv`, rewrites `multicast.md` and the plots. Returns the number of failed
/// cells.
pub fn run_multicast(args: &MulticastArgs, exe: &Path) -> Result<usize, BoxError> {
    if args.curve || !args.rate.is_empty() {
        return run_multicast_rate(args, exe);
    }
    let cells = multicast_matrix(args)?;
    if args.output.dry_run {
        for cell in &cells {
            println!("{cell}");
        }
        println!("# {} cells of {} s", cells.len(), args.secs);
        return Ok(0);
    }
    let out = &args.output.out;
    std::fs::create_dir_all(out)?;
    let info = RunInfo::now();
    let settings = MulticastSettings {
        secs: args.secs,
        pipeline: args.pipeline,
        window_messages: args.window_messages,
        rate: None,
        multicast_settings: args.multicast_settings.clone(),
    };
    let csv = out.join("multicast.csv");
    let bar = progress_bar(cells.len());
    let started = Instant::now();
    let mut failed = 0;
    for cell in &cells {
        bar.set_message(format!("{cell}"));
        let phase = |p: &str| bar.set_message(format!("{cell}: {p}"));
        let result = run_multicast_cell(exe, &out.join("logs"), *cell, settings.clone(), &phase);
        bar.suspend(|| match &result {
            Ok(lines) => {
                println!("# multicast {cell} secs={}", args.secs);
                for line in lines {
                    println!("{line}");
                }
                println!("# {}", report::summarize(*cell, lines));
            }
            Err(error) => {
                eprintln!("# multicast {cell}: FAILED: {error}");
            }
        });
        match result {
            Ok(lines) => csv_files::append_multicast(&csv, &info, *cell, args.secs, &lines)?,
            Err(_) => failed += 1,
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rows = csv_files::read_multicast(&csv)?;
    let summaries = report::latest_summaries(&rows);
    report::write_multicast_md(&out.join("multicast.md"), &summaries, &info)?;
    if !args.output.no_plots {
        for path in plots::multicast_plots(out, &summaries)? {
            eprintln!("plot: {}", path.display());
        }
    }
    eprintln!(
        "{} cells in {:.0} s ({failed} failed); results in {}",
        cells.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(failed)
}

/// The groups an open-loop run measures: every ordering × members × size × senders asked
/// for (orderings fifo and total, 3 members, 1 KiB, all sending when not given).
pub fn rate_groups(args: &MulticastArgs) -> Result<Vec<MulticastCell>, BoxError> {
    if args.members.iter().any(|m| *m < 2) {
        return Err("--members must be at least 2".into());
    }
    if args
        .rate
        .iter()
        .chain(&args.fractions)
        .any(|r| *r <= 0.0 || !r.is_finite())
    {
        return Err("--rate and --fractions take positive numbers".into());
    }
    let mut cells = Vec::new();
    for order in or(&args.order, vec![Order::Fifo, Order::Total]) {
        for members in or(&args.members, vec![3]) {
            for size in or(&args.size, vec![1024]) {
                for senders in or(&args.senders, vec![Senders::All]) {
                    cells.push(MulticastCell {
                        order,
                        members,
                        size,
                        senders,
                        mode: Mode::Rate,
                    });
                }
            }
        }
    }
    Ok(cells)
}

/// `viewsync-bench multicast --rate` or `--curve`: open-loop cells, one line each, appended
/// to `multicast-rate.csv`; rewrites `multicast-rate.md` and `multicast-rate.svg`. With
/// `--curve` each group first runs a flood cell for its peak, and the rates are
/// `--fractions` of it. Returns the number of failed cells.
pub fn run_multicast_rate(args: &MulticastArgs, exe: &Path) -> Result<usize, BoxError> {
    let groups = rate_groups(args)?;
    let steps = if args.curve {
        args.fractions.len() + 1
    } else {
        args.rate.len()
    };
    if args.output.dry_run {
        for cell in &groups {
            if args.curve {
                println!(
                    "{cell} flood, then fractions {:?} of its peak",
                    args.fractions
                );
            } else {
                println!("{cell} rates {:?}", args.rate);
            }
        }
        println!("# {} cells of {} s", groups.len() * steps, args.secs);
        return Ok(0);
    }
    let out = &args.output.out;
    std::fs::create_dir_all(out)?;
    let info = RunInfo::now();
    let csv = out.join("multicast-rate.csv");
    let bar = progress_bar(groups.len() * steps);
    let mut failed = 0;
    let logs = out.join("logs");
    for group in &groups {
        let settings = MulticastSettings {
            secs: args.secs,
            pipeline: args.pipeline,
            window_messages: args.window_messages,
            rate: None,
            multicast_settings: args.multicast_settings.clone(),
        };
        let senders = group.senders.count(group.members).max(1) as f64;
        let (peak, rates) = if args.curve {
            let flood = MulticastCell {
                mode: Mode::Flood,
                ..*group
            };
            let phase = |p: &str| bar.set_message(format!("{flood}: {p}"));
            let result = run_multicast_cell(exe, &logs, flood, settings.clone(), &phase);
            bar.inc(1);
            match result {
                Ok(lines) => {
                    let summary = report::summarize(flood, &lines);
                    bar.suspend(|| println!("# {summary}"));
                    // Every member delivers every sender's multicasts.
                    let peak = summary.rate_mean / senders;
                    let rates = args.fractions.iter().map(|f| f * peak).collect();
                    (Some(peak), rates)
                }
                Err(error) => {
                    bar.suspend(|| eprintln!("# multicast {flood}: FAILED: {error}"));
                    failed += 1;
                    bar.inc(args.fractions.len() as u64);
                    continue;
                }
            }
        } else {
            (None, args.rate.clone())
        };
        for rate in rates {
            let phase = |p: &str| bar.set_message(format!("{group} rate={rate:.0}: {p}"));
            let settings = MulticastSettings {
                rate: Some(rate),
                ..settings.clone()
            };
            let result = run_multicast_cell(exe, &logs, *group, settings, &phase);
            bar.inc(1);
            match result {
                Ok(lines) => {
                    let point = report::rate_point(&info, *group, rate, peak, args.secs, &lines);
                    bar.suspend(|| {
                        for line in &lines {
                            println!("{line}");
                        }
                        println!("# {}", report::rate_line(&point));
                    });
                    csv_files::append_rate(&csv, &point)?;
                }
                Err(error) => {
                    bar.suspend(|| eprintln!("# multicast {group} rate={rate}: FAILED: {error}"));
                    failed += 1;
                }
            }
        }
    }
    bar.finish_and_clear();
    rewrite_rate_reports(out, &info, !args.output.no_plots)?;
    Ok(failed)
}

/// Rewrites `multicast-rate.md` (and the plot, with `plots`) from `multicast-rate.csv`.
fn rewrite_rate_reports(out: &Path, info: &RunInfo, plots: bool) -> Result<(), BoxError> {
    let csv = out.join("multicast-rate.csv");
    if !csv.exists() {
        return Ok(());
    }
    let points = report::latest_rate_points(&csv_files::read_rate(&csv)?);
    report::write_rate_md(&out.join("multicast-rate.md"), &points, info)?;
    if plots {
        if let Some(path) = plots::rate_plot(out, &points)? {
            eprintln!("plot: {}", path.display());
        }
    }
    Ok(())
}

/// `viewsync-bench view-change`: runs the cells, prints one line per run, appends to
/// `view-change.csv`, rewrites `view-change.md` and the plots. Returns the number of failed
/// runs.
pub fn run_view_change(args: &ViewChangeArgs, exe: &Path) -> Result<usize, BoxError> {
    let cells = view_change_matrix(args)?;
    if args.output.dry_run {
        for cell in &cells {
            println!("{cell}");
        }
        println!("# {} cells × {} runs", cells.len(), args.repeat);
        return Ok(0);
    }
    let out = &args.output.out;
    std::fs::create_dir_all(out)?;
    let info = RunInfo::now();
    let settings = ViewChangeSettings {
        order: args.order,
        size: args.size,
        settle_secs: args.settle_secs,
        pipeline: args.pipeline,
    };
    let csv = out.join("view-change.csv");
    let runs = cells.len() * args.repeat.max(1);
    let bar = progress_bar(runs);
    let started = Instant::now();
    let mut failed = 0;
    for cell in &cells {
        for rep in 1..=args.repeat.max(1) {
            let phase = |p: &str| bar.set_message(format!("{cell} run {rep}: {p}"));
            phase("");
            let result = run_view_change_cell(exe, &out.join("logs"), *cell, settings, &phase);
            bar.suspend(|| match &result {
                Ok(r) => println!("{}", report::view_change_line(*cell, rep, r)),
                Err(error) => eprintln!("# view-change {cell} run {rep}: FAILED: {error}"),
            });
            match result {
                Ok(r) => csv_files::append_view_change(&csv, &info, *cell, &settings, rep, &r)?,
                Err(_) => failed += 1,
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let rows = csv_files::read_view_change(&csv)?;
    report::write_view_change_md(&out.join("view-change.md"), &rows, &info)?;
    if !args.output.no_plots {
        for path in plots::view_change_plots(out, &rows)? {
            eprintln!("plot: {}", path.display());
        }
    }
    eprintln!(
        "{runs} runs in {:.0} s ({failed} failed); results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(failed)
}

/// `viewsync-bench report`: rewrites `multicast.md`, `view-change.md` and the plots from
/// the CSV files in `out`.
pub fn rewrite_reports(out: &Path) -> Result<(), BoxError> {
    let info = RunInfo::now();
    let csv = out.join("multicast.csv");
    if csv.exists() {
        let summaries = report::latest_summaries(&csv_files::read_multicast(&csv)?);
        report::write_multicast_md(&out.join("multicast.md"), &summaries, &info)?;
        for path in plots::multicast_plots(out, &summaries)? {
            eprintln!("plot: {}", path.display());
        }
    }
    let csv = out.join("view-change.csv");
    if csv.exists() {
        let rows = csv_files::read_view_change(&csv)?;
        report::write_view_change_md(&out.join("view-change.md"), &rows, &info)?;
        for path in plots::view_change_plots(out, &rows)? {
            eprintln!("plot: {}", path.display());
        }
    }
    rewrite_rate_reports(out, &info, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_default_matrix_is_the_documented_one() {
        let cells = default_multicast_matrix();
        assert_eq!(cells.len(), 42);
        let unique: BTreeSet<_> = cells.iter().collect();
        assert_eq!(unique.len(), cells.len());
        let full = full_multicast_matrix();
        assert_eq!(full.len(), 144);
        assert!(cells.iter().all(|c| full.contains(c)));
    }
}
