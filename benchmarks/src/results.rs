//! The types the benchmark's parts share: the cells of a matrix, what a run measured, the rows
//! of the results files and their summaries. The parent (`orchestration`), the files and
//! tables (`report`) and the plots (`plots`) all import from here and none from another, so
//! the three import one way.

use crate::cli::{Event, Load, Mode, Order, Senders};
use crate::lines::ResultLine;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies a run of the harness in the CSV files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunInfo {
    /// Unix seconds at the start of the run (orders runs).
    pub run: u64,
    /// The checkout's commit (`git rev-parse --short HEAD`, `+dirty` with local changes), or
    /// `unknown`.
    pub commit: String,
}

impl RunInfo {
    /// The current time and commit.
    pub fn now() -> Self {
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = match git(&["rev-parse", "--short", "HEAD"]) {
            Some(commit) => match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(status) if !status.is_empty() => format!("{commit}+dirty"),
                _ => commit,
            },
            None => "unknown".to_string(),
        };
        RunInfo { run, commit }
    }
}

/// One cell of the multicast benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MulticastCell {
    /// Ordering and delivery.
    pub order: Order,
    /// Group size.
    pub members: usize,
    /// Payload bytes.
    pub size: usize,
    /// Who sends.
    pub senders: Senders,
    /// Flood or ping.
    pub mode: Mode,
}

impl fmt::Display for MulticastCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "order={} members={} size={} senders={} mode={}",
            self.order, self.members, self.size, self.senders, self.mode
        )
    }
}

/// One cell of the view-change benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ViewChangeCell {
    /// The event.
    pub event: Event,
    /// Group size before the event.
    pub members: usize,
    /// Traffic during the event.
    pub load: Load,
}

impl fmt::Display for ViewChangeCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event={} members={} load={}",
            self.event, self.members, self.load
        )
    }
}

/// Settings shared by the cells of a view-change run.
#[derive(Clone, Copy, Debug)]
pub struct ViewChangeSettings {
    /// Ordering of the group.
    pub order: Order,
    /// Payload size of the flood.
    pub size: usize,
    /// Seconds of flood before the event.
    pub settle_secs: f64,
    /// Flood pipeline depth.
    pub pipeline: usize,
}

/// What one view-change run measured. Times are milliseconds from the event: the SIGKILL,
/// the `leave` command, or the joiner's call to `join`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewChangeResult {
    /// Until the first member installed the new view.
    pub view_ms_min: f64,
    /// Until every member installed the new view (`GroupEvent::ViewInstalled`).
    pub view_ms_max: f64,
    /// Until every member's service received the new view (`ServiceEvent::ViewChange`), if
    /// all did.
    pub service_view_ms_max: Option<f64>,
    /// Until the first member suspected the killed one (kills only).
    pub detect_ms: Option<f64>,
    /// Most multicast entries a member held when the view change began (unstable or not
    /// yet delivered).
    pub unstable: u64,
    /// Suspicions over the surviving members during the run.
    pub suspicions: u64,
    /// False suspicions over the surviving members during the run.
    pub false_suspicions: u64,
    /// Each member's time to the new view, by node id.
    pub per_member_ms: Vec<(u64, f64)>,
}

/// One member's result in one cell of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct MulticastRow {
    /// The run (unix seconds).
    pub run: u64,
    /// Its commit.
    pub commit: String,
    /// The cell.
    pub cell: MulticastCell,
    /// Seconds of sending.
    pub secs: f64,
    /// The member's line.
    pub line: ResultLine,
}

/// Whether the members' delivery orders agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderCheck {
    /// Total order and every member hashed the same first deliveries.
    Same,
    /// Total order and the hashes differ (or cover different numbers of deliveries).
    Differs,
    /// The ordering does not promise one order.
    NotApplicable,
}

impl fmt::Display for OrderCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OrderCheck::Same => "same",
            OrderCheck::Differs => "DIFFERS",
            OrderCheck::NotApplicable => "n/a",
        })
    }
}

/// One cell's results over its members.
#[derive(Clone, Debug, PartialEq)]
pub struct CellSummary {
    /// The cell.
    pub cell: MulticastCell,
    /// The run it comes from (0 if not from a file).
    pub run: u64,
    /// The run's commit.
    pub commit: String,
    /// Members that reported.
    pub reported: usize,
    /// Mean over members of deliveries per second.
    pub rate_mean: f64,
    /// Lowest member's deliveries per second.
    pub rate_min: f64,
    /// Mean over members of payload MB/s delivered.
    pub mb_mean: f64,
    /// Mean over senders of their median own-delivery latency (µs).
    pub p50_us: Option<f64>,
    /// Mean over senders of their 99th percentile (µs).
    pub p99_us: Option<f64>,
    /// Highest latency seen (µs).
    pub max_us: Option<u64>,
    /// Mean over members of their median latency from another member's multicast to its
    /// delivery (µs).
    pub recv_p50_us: Option<f64>,
    /// Mean over members of the 99th percentile of that latency (µs).
    pub recv_p99_us: Option<f64>,
    /// Mean over members of frames sent per delivery.
    pub frames_per_deliv: f64,
    /// Mean over members of TCP bytes sent per delivery (if measured).
    pub bytes_per_deliv: Option<f64>,
    /// Mean over members of write calls per delivery.
    pub writes_per_deliv: f64,
    /// Mean over members of CPU seconds per 1000 deliveries.
    pub cpu_per_1000: f64,
    /// Whether the delivery orders agree.
    pub order: OrderCheck,
    /// Suspicions over all members.
    pub suspicions: u64,
    /// False suspicions over all members.
    pub false_suspicions: u64,
    /// Entries retransmitted over all members.
    pub retransmitted: u64,
    /// Frames dropped on full send queues over all members.
    pub dropped_frames: u64,
    /// Whether every member delivered the same number of multicasts, and each sender all
    /// its own.
    pub complete: bool,
    /// Multicasts accepted from a sender and not delivered at a member, as
    /// `(member, sender, count)` (from the lines' `per_sender`; empty when read from CSV).
    pub missing: Vec<(u64, u64, u64)>,
}

/// One view-change run.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewChangeRow {
    /// The run (unix seconds).
    pub run: u64,
    /// Its commit.
    pub commit: String,
    /// The cell.
    pub cell: ViewChangeCell,
    /// The ordering of the group.
    pub order: Order,
    /// The flood's payload size.
    pub size: usize,
    /// Which repetition.
    pub rep: usize,
    /// What it measured.
    pub result: ViewChangeResult,
}

/// The rows of the latest run of each view-change cell.
pub fn latest_view_change(rows: &[ViewChangeRow]) -> BTreeMap<ViewChangeCell, Vec<&ViewChangeRow>> {
    let mut latest: BTreeMap<ViewChangeCell, u64> = BTreeMap::new();
    for row in rows {
        let run = latest.entry(row.cell).or_insert(row.run);
        *run = (*run).max(row.run);
    }
    let mut by_cell: BTreeMap<ViewChangeCell, Vec<&ViewChangeRow>> = BTreeMap::new();
    for row in rows {
        if latest.get(&row.cell) == Some(&row.run) {
            by_cell.entry(row.cell).or_default().push(row);
        }
    }
    by_cell
}

/// One point of the throughput–latency curve: a cell run open loop, every sender offering
/// `rate` multicasts per second.
#[derive(Clone, Debug, PartialEq)]
pub struct RatePoint {
    /// The run (unix seconds).
    pub run: u64,
    /// Its commit.
    pub commit: String,
    /// The cell (its mode is [`Mode::Rate`]).
    pub cell: MulticastCell,
    /// Multicasts per second each sender offered.
    pub rate: f64,
    /// The flood peak per sender the rate was derived from (`--curve`), if any.
    pub peak: Option<f64>,
    /// Seconds of sending.
    pub secs: f64,
    /// Multicasts offered, over all senders.
    pub offered: u64,
    /// Of those, multicasts the nodes accepted.
    pub sent: u64,
    /// Mean over members of deliveries per second.
    pub deliv_msgs_s: f64,
    /// Highest over senders of their median own-delivery latency from the intended send
    /// time (µs).
    pub own_p50_us: Option<u64>,
    /// Highest over senders of their 99th percentile (µs).
    pub own_p99_us: Option<u64>,
    /// Highest over members of the 99th percentile from another member's intended send
    /// time to the delivery there (µs).
    pub recv_p99_us: Option<u64>,
    /// Whether every member delivered everything accepted (and orders agree where total).
    pub complete: bool,
}

impl RatePoint {
    /// The share of the offered load the senders could not place (0 to 1).
    pub fn lost(&self) -> f64 {
        if self.offered == 0 {
            0.0
        } else {
            1.0 - self.sent as f64 / self.offered as f64
        }
    }
}
