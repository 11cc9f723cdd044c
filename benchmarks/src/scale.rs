//! `viewsync-bench scale`: how forming a group and replacing a crashed member cost grow with
//! the group's size.
//!
//! Each cell starts `n` member processes at once (the first founds the group, the others are
//! seeded with its address), and measures:
//!
//! - the time from the first spawn until every member installed one view of all `n`;
//! - the frames and bytes each member sent until then, and per second once the group is idle
//!   (heartbeats, acknowledgements);
//! - after a SIGKILL of a member in the middle of the view (neither the coordinator nor next
//!   to it, so on a ring only other members watch it), the time until every survivor installed
//!   the view without it, the first suspicion, and the frames each survivor sent from the
//!   kill until then beyond its idle rate;
//! - suspicions and false suspicions over the whole run, at every survivor.
//!
//! Results: `scale.csv` (one row per run, appended), `scale.md` (medians per size),
//! `scale-time.svg` and `scale-messages.svg`.

use crate::cli::{Mode, Order, OutputArgs};
use crate::cluster::{Cluster, Line, MemberSpec};
use crate::orchestration::{progress_bar, timeout_for_start};
use crate::plots::{draw, Chart, Series};
use crate::report::utc_time;
use crate::results::RunInfo;
use crate::sys::now_ns;
use crate::BoxError;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Group sizes measured when `--members` is not given.
pub const DEFAULT_SIZES: [usize; 6] = [3, 5, 9, 17, 33, 64];

/// How long the group idles while its steady traffic is measured.
const IDLE: Duration = Duration::from_secs(2);

/// `viewsync-bench scale`.
#[derive(Clone, Debug, Args)]
pub struct ScaleArgs {
    /// Group sizes (default 3, 5, 9, 17, 33, 64).
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<usize>,
    /// Runs of each size.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Override `[failure_detector] monitors` (a value of at least the largest size minus
    /// one watches all-to-all, as before rings).
    #[arg(long)]
    pub monitors: Option<usize>,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// One run of one size: a row of `scale.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleRow {
    /// Unix seconds at the start of the run of the command.
    pub run: u64,
    /// The checkout's commit.
    pub commit: String,
    /// Group size.
    pub members: usize,
    /// `[failure_detector] monitors` (0: the default).
    pub monitors: usize,
    /// Repetition number (from 1).
    pub rep: usize,
    /// From the first spawn to one view of all members at every member.
    pub form_ms: f64,
    /// Frames each member sent until then (mean).
    pub form_frames_per_member: f64,
    /// Bytes each member sent until then (mean).
    pub form_bytes_per_member: f64,
    /// Frames each member sends per second while the group idles (mean).
    pub idle_frames_per_member_s: f64,
    /// From the SIGKILL to the view without the victim at every survivor.
    pub kill_view_ms: f64,
    /// From the SIGKILL to the first suspicion of the victim.
    pub detect_ms: Option<f64>,
    /// Frames each survivor sent from the kill until every survivor had the view, beyond
    /// its idle rate (mean).
    pub kill_frames_per_member: f64,
    /// Bytes likewise (mean, beyond the idle rate).
    pub kill_bytes_per_member: f64,
    /// Suspicions raised by the survivors over the run.
    pub suspicions: u64,
    /// Of those, contradicted later (the suspect was alive).
    pub false_suspicions: u64,
    /// The 1-minute load average when the run ended.
    pub load: f64,
}

/// A member's counters from its `stats` line.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    t_ns: u64,
    frames: u64,
    bytes: u64,
    suspicions: u64,
    false_suspicions: u64,
}

/// Asks `nodes` for their counters and waits for them.
fn stats(cluster: &mut Cluster, nodes: &[u64]) -> Result<BTreeMap<u64, Stats>, BoxError> {
    let from = cluster.history.len();
    cluster.send_each(nodes, "stats")?;
    cluster.wait_all(nodes, "stats", from, Duration::from_secs(60))?;
    let mut out = BTreeMap::new();
    for line in cluster.history[from..]
        .iter()
        .filter(|l| l.fields.is("stats"))
    {
        let f = |k: &str| line.fields.get::<u64>(k).unwrap_or(0);
        out.entry(line.node).or_insert(Stats {
            t_ns: line.t_ns(),
            frames: f("frames"),
            bytes: f("bytes"),
            suspicions: f("suspicions"),
            false_suspicions: f("false_suspicions"),
        });
    }
    Ok(out)
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

/// The 1-minute load average (0 where `/proc/loadavg` is not there).
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Whether `line` is a view of `size` members without `victim`.
fn is_view(line: &Line, size: usize, victim: Option<u64>) -> bool {
    line.fields.is("gview")
        && line.fields.get::<usize>("size") == Some(size)
        && victim.is_none_or(|v| {
            !line
                .fields
                .text("members")
                .unwrap_or("")
                .split(',')
                .any(|m| m == v.to_string())
        })
}

/// When each of `nodes` first printed a view of `size` members without `victim` (after
/// history index `from`); `None` until every one did.
fn views_at(
    history: &[Line],
    from: usize,
    nodes: &[u64],
    size: usize,
    victim: Option<u64>,
) -> Option<Vec<u64>> {
    let mut first: BTreeMap<u64, u64> = BTreeMap::new();
    for line in &history[from..] {
        if nodes.contains(&line.node) && is_view(line, size, victim) {
            first.entry(line.node).or_insert_with(|| line.t_ns());
        }
    }
    (first.len() == nodes.len()).then(|| first.into_values().collect())
}

/// Runs one size: forms the group, idles, kills a member, waits for the view without it.
pub fn run_scale_cell(
    exe: &Path,
    log_dir: &Path,
    n: usize,
    monitors: Option<usize>,
    phase: &dyn Fn(&str),
) -> Result<ScaleRow, BoxError> {
    if n < 3 {
        return Err("a scale cell needs at least 3 members".into());
    }
    let mut cluster = Cluster::new(exe, log_dir);
    let spec = |node: u64| MemberSpec {
        node,
        seeds: Vec::new(),
        members: n,
        order: Order::Total,
        mode: Mode::Recv,
        size: 64,
        secs: 0.0,
        pipeline: 1,
        window_messages: None,
        rate: None,
        multicast_settings: Vec::new(),
        monitors,
    };
    let nodes: Vec<u64> = (1..=n as u64).collect();
    phase("starting members");
    let started = now_ns();
    cluster.spawn(&spec(1))?;
    let seed = cluster.addr(1, Duration::from_secs(15))?;
    for node in &nodes[1..] {
        let mut s = spec(*node);
        s.seeds = vec![seed];
        cluster.spawn(&s)?;
    }
    phase("forming");
    let mut formed = None;
    cluster.wait_for(timeout_for_start(n), "one view of every member", |h| {
        formed = views_at(h, 0, &nodes, n, None);
        formed.is_some()
    })?;
    let form_ms = formed
        .unwrap_or_default()
        .into_iter()
        .max()
        .unwrap_or(started)
        .saturating_sub(started) as f64
        / 1e6;
    let at_form = stats(&mut cluster, &nodes)?;
    phase("idling");
    cluster.pump(IDLE)?;
    let before_kill = stats(&mut cluster, &nodes)?;
    let idle_rate = |node: u64, field: fn(&Stats) -> u64| -> f64 {
        let (a, b) = (at_form[&node], before_kill[&node]);
        let secs = b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9;
        (field(&b) - field(&a).min(field(&b))) as f64 / secs.max(1e-3)
    };
    // A member in the middle of the view, so on a ring neither the coordinator nor the next in
    // line watches it: its crash is noticed by other members and reported.
    let victim = n as u64 / 2 + 1;
    let survivors: Vec<u64> = nodes.iter().copied().filter(|m| *m != victim).collect();
    phase("kill");
    let from = cluster.history.len();
    let killed = cluster.kill(victim)?;
    let mut installed = None;
    cluster.wait_for(
        Duration::from_secs(60),
        "the view without the killed member at every survivor",
        |h| {
            installed = views_at(h, from, &survivors, n - 1, Some(victim));
            installed.is_some()
        },
    )?;
    let installed_ns = installed
        .unwrap_or_default()
        .into_iter()
        .max()
        .unwrap_or(killed);
    let kill_view_ms = installed_ns.saturating_sub(killed) as f64 / 1e6;
    let detect_ms = cluster.history[from..]
        .iter()
        .filter(|l| l.fields.is("suspect") && l.fields.get::<u64>("peer") == Some(victim))
        .map(|l| l.t_ns().saturating_sub(killed) as f64 / 1e6)
        .reduce(f64::min);
    let after = stats(&mut cluster, &survivors)?;
    let excess = |field: fn(&Stats) -> u64| {
        mean(survivors.iter().map(|m| {
            let (a, b) = (before_kill[m], after[m]);
            let secs = b.t_ns.saturating_sub(a.t_ns) as f64 / 1e9;
            field(&b).saturating_sub(field(&a)) as f64 - idle_rate(*m, field) * secs
        }))
    };
    let row = ScaleRow {
        run: 0,
        commit: String::new(),
        members: n,
        monitors: monitors.unwrap_or(0),
        rep: 0,
        form_ms,
        form_frames_per_member: mean(at_form.values().map(|s| s.frames as f64)),
        form_bytes_per_member: mean(at_form.values().map(|s| s.bytes as f64)),
        idle_frames_per_member_s: mean(nodes.iter().map(|m| idle_rate(*m, |s| s.frames))),
        kill_view_ms,
        detect_ms,
        kill_frames_per_member: excess(|s| s.frames),
        kill_bytes_per_member: excess(|s| s.bytes),
        suspicions: after.values().map(|s| s.suspicions).sum(),
        false_suspicions: after.values().map(|s| s.false_suspicions).sum(),
        load: load_average(),
    };
    phase("stopping");
    cluster.shutdown();
    Ok(row)
}

/// The line printed for one run.
pub fn scale_line(row: &ScaleRow) -> String {
    format!(
        "scale members={} monitors={} rep={} form_ms={:.1} form_frames_per_member={:.0} idle_frames_per_member_s={:.1} kill_view_ms={:.1} detect_ms={} kill_frames_per_member={:.0} suspicions={} false_suspicions={} load={:.2}",
        row.members,
        row.monitors,
        row.rep,
        row.form_ms,
        row.form_frames_per_member,
        row.idle_frames_per_member_s,
        row.kill_view_ms,
        row.detect_ms.map_or("-".into(), |d| format!("{d:.1}")),
        row.kill_frames_per_member,
        row.suspicions,
        row.false_suspicions,
        row.load
    )
}

fn append_rows(path: &Path, rows: &[ScaleRow]) -> Result<(), BoxError> {
    let new = !path.exists() || std::fs::metadata(path)?.len() == 0;
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut writer = csv::WriterBuilder::new().has_headers(new).from_writer(file);
    for row in rows {
        writer.serialize(row)?;
    }
    writer.flush()?;
    Ok(())
}

/// The rows of `scale.csv` (none if it does not exist; rows that do not parse are skipped).
pub fn read_rows(path: &Path) -> Result<Vec<ScaleRow>, BoxError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_path(path)?;
    Ok(reader.deserialize().filter_map(Result::ok).collect())
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The runs of the latest command run for each (monitors, size), in that order.
fn latest(rows: &[ScaleRow]) -> BTreeMap<(usize, usize), Vec<&ScaleRow>> {
    let mut last_run: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for r in rows {
        let run = last_run.entry((r.monitors, r.members)).or_default();
        *run = (*run).max(r.run);
    }
    let mut cells: BTreeMap<(usize, usize), Vec<&ScaleRow>> = BTreeMap::new();
    for r in rows {
        if last_run[&(r.monitors, r.members)] == r.run {
            cells.entry((r.monitors, r.members)).or_default().push(r);
        }
    }
    cells
}

fn monitors_name(monitors: usize) -> String {
    if monitors == 0 {
        "default monitors".into()
    } else {
        format!("monitors {monitors}")
    }
}

/// Writes `scale.md`: medians per size of the latest runs.
pub fn write_md(path: &Path, rows: &[ScaleRow]) -> Result<(), BoxError> {
    let mut md = String::from(
        "# Scale: forming a group and replacing a SIGKILLed member\n\n\
         `viewsync-bench scale`; medians over the runs of each size (one process per member, \
         all on this machine). Frames and bytes are per member; \"kill\" frames are those sent \
         from the SIGKILL until every survivor installed the view without the victim, beyond \
         the member's idle rate. Suspicions are summed over the survivors.\n\n\
         | monitors | members | runs | view formed | frames to form | idle frames/s | kill → view everywhere | first suspicion | kill frames | kill bytes | suspicions | false | load |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    let mut notes = BTreeMap::new();
    for ((monitors, members), runs) in latest(rows) {
        let med = |f: fn(&ScaleRow) -> f64| median(runs.iter().map(|r| f(r)).collect());
        let show = |v: Option<f64>, unit: &str| v.map_or("-".into(), |v| format!("{v:.0}{unit}"));
        let detect = median(runs.iter().filter_map(|r| r.detect_ms).collect());
        md.push_str(&format!(
            "| {} | {members} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            monitors_name(monitors),
            runs.len(),
            show(med(|r| r.form_ms), " ms"),
            show(med(|r| r.form_frames_per_member), ""),
            show(med(|r| r.idle_frames_per_member_s), ""),
            show(med(|r| r.kill_view_ms), " ms"),
            show(detect, " ms"),
            show(med(|r| r.kill_frames_per_member), ""),
            show(med(|r| r.kill_bytes_per_member), ""),
            runs.iter().map(|r| r.suspicions).sum::<u64>(),
            runs.iter().map(|r| r.false_suspicions).sum::<u64>(),
            med(|r| r.load).map_or("-".into(), |l| format!("{l:.1}")),
        ));
        for r in runs {
            notes.insert(r.run, r.commit.clone());
        }
    }
    let runs: Vec<String> = notes
        .iter()
        .map(|(run, commit)| format!("{} (commit {commit})", utc_time(*run)))
        .collect();
    md.push_str(&format!("\nRuns: {}.\n", runs.join("; ")));
    std::fs::write(path, md)?;
    Ok(())
}

/// Draws `scale-time.svg` and `scale-messages.svg` from the latest runs.
pub fn plots(dir: &Path, rows: &[ScaleRow]) -> Result<Vec<PathBuf>, BoxError> {
    let cells = latest(rows);
    let by_monitors: BTreeMap<usize, Vec<(usize, Vec<&ScaleRow>)>> =
        cells
            .into_iter()
            .fold(BTreeMap::new(), |mut acc, ((monitors, members), runs)| {
                acc.entry(monitors)
                    .or_insert_with(Vec::new)
                    .push((members, runs));
                acc
            });
    let series = |name: &str, f: fn(&ScaleRow) -> f64| -> Vec<Series> {
        by_monitors
            .iter()
            .map(|(monitors, cells)| Series {
                name: format!("{name} ({})", monitors_name(*monitors)),
                points: cells
                    .iter()
                    .filter_map(|(members, runs)| {
                        median(runs.iter().map(|r| f(r)).collect()).map(|v| (*members as f64, v))
                    })
                    .collect(),
            })
            .collect()
    };
    let mut drawn = Vec::new();
    let path = dir.join("scale-time.svg");
    let mut time = series("view formed", |r| r.form_ms);
    time.extend(series("kill → view everywhere", |r| r.kill_view_ms));
    let chart = |title, y_desc| Chart {
        title,
        x_desc: "members",
        y_desc,
        x_categories: None,
        scatter: false,
        log_y: true,
    };
    if draw(&path, &chart("Time against group size", "ms"), &time)? {
        drawn.push(path);
    }
    let path = dir.join("scale-messages.svg");
    let mut messages = series("frames to form", |r| r.form_frames_per_member);
    messages.extend(series("idle frames/s", |r| r.idle_frames_per_member_s));
    messages.extend(series("kill frames", |r| r.kill_frames_per_member));
    if draw(
        &path,
        &chart("Frames sent per member against group size", "frames"),
        &messages,
    )? {
        drawn.push(path);
    }
    Ok(drawn)
}

/// Rewrites `scale.md` and the plots from `scale.csv` in `out` (nothing if there is none).
pub fn rewrite(out: &Path, no_plots: bool) -> Result<(), BoxError> {
    let rows = read_rows(&out.join("scale.csv"))?;
    if rows.is_empty() {
        return Ok(());
    }
    write_md(&out.join("scale.md"), &rows)?;
    if !no_plots {
        for path in plots(out, &rows)? {
            eprintln!("plot: {}", path.display());
        }
    }
    Ok(())
}

/// `viewsync-bench scale`. Returns the number of failed runs.
pub fn run(args: &ScaleArgs, exe: &Path) -> Result<usize, BoxError> {
    let sizes = if args.members.is_empty() {
        DEFAULT_SIZES.to_vec()
    } else {
        args.members.clone()
    };
    if sizes.iter().any(|n| *n < 3) {
        return Err("--members must be at least 3".into());
    }
    if args.monitors == Some(0) {
        return Err("--monitors must be at least 1".into());
    }
    if args.output.dry_run {
        for n in &sizes {
            println!("scale members={n} monitors={}", args.monitors.unwrap_or(0));
        }
        println!("# {} sizes × {} runs", sizes.len(), args.repeat.max(1));
        return Ok(0);
    }
    let out = &args.output.out;
    std::fs::create_dir_all(out)?;
    let info = RunInfo::now();
    let csv = out.join("scale.csv");
    let runs = sizes.len() * args.repeat.max(1);
    let bar = progress_bar(runs);
    let started = Instant::now();
    let mut failed = 0;
    for &n in &sizes {
        for rep in 1..=args.repeat.max(1) {
            let phase = |p: &str| bar.set_message(format!("{n} members run {rep}: {p}"));
            let result = run_scale_cell(exe, &out.join("logs"), n, args.monitors, &phase);
            match result {
                Ok(mut row) => {
                    row.run = info.run;
                    row.commit = info.commit.clone();
                    row.rep = rep;
                    bar.suspend(|| println!("{}", scale_line(&row)));
                    append_rows(&csv, &[row])?;
                }
                Err(error) => {
                    bar.suspend(|| eprintln!("# scale members={n} run {rep}: FAILED: {error}"));
                    failed += 1;
                }
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    rewrite(out, args.output.no_plots)?;
    eprintln!(
        "{runs} runs in {:.0} s ({failed} failed); results in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(failed)
}
