//! The command line of `viewsync-bench`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// `viewsync-bench`: multicast and view-change benchmarks over real member processes.
#[derive(Debug, Parser)]
#[command(
    name = "viewsync-bench",
    version,
    about = "Benchmarks of viewsync's multicast and view changes, one OS process per member on loopback"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Multicast throughput and latency: one cell, or a matrix of cells (the default matrix
    /// when no cell option is given).
    Multicast(MulticastArgs),
    /// View-change time after a join, a leave or a SIGKILL; failure-detection time; false
    /// suspicions.
    ViewChange(ViewChangeArgs),
    /// Replicated key-value store throughput and latency under each strategy (and etcd, when
    /// built with the `etcd` feature and installed): closed loop, or open loop with `--rate`.
    Replication(crate::replication::ReplicationArgs),
    /// Rewrite the markdown tables and plots from the CSV files in `--out`, running nothing.
    Report(ReportArgs),
    /// Groups of 3 to 64 members started at once: time to one view, then time to a view
    /// without a SIGKILLed member; frames and bytes per member; false suspicions.
    Scale(crate::scale::ScaleArgs),
    /// One member process (internal: started by the other subcommands).
    #[command(hide = true)]
    Member(MemberArgs),
}

/// An ordering (and delivery guarantee) of the benchmark group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Order {
    /// FIFO per sender (the weakest ordering the middleware has: there is no reliable
    /// unordered multicast), agreed delivery.
    Fifo,
    /// Causal order, agreed delivery.
    Causal,
    /// Total order, agreed delivery.
    Total,
    /// Total order, safe delivery (delivered once every member holds the message).
    Safe,
}

impl Order {
    /// Every ordering, weakest first.
    pub const ALL: [Order; 4] = [Order::Fifo, Order::Causal, Order::Total, Order::Safe];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Order::Fifo => "fifo",
            Order::Causal => "causal",
            Order::Total => "total",
            Order::Safe => "safe",
        }
    }

    /// The `[multicast] ordering` value of the node configuration.
    pub fn ordering(self) -> &'static str {
        match self {
            Order::Fifo => "fifo",
            Order::Causal => "causal",
            Order::Total | Order::Safe => "total",
        }
    }

    /// The `[multicast] delivery` value of the node configuration.
    pub fn delivery(self) -> &'static str {
        match self {
            Order::Safe => "safe",
            _ => "agreed",
        }
    }

    /// Whether every member must deliver in the same order (so order hashes must agree).
    pub fn is_total(self) -> bool {
        matches!(self, Order::Total | Order::Safe)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Order::ALL
            .into_iter()
            .find(|o| o.name() == s)
            .ok_or_else(|| format!("unknown ordering {s:?}"))
    }
}

/// What a member does while the clock runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Mode {
    /// Multicast as fast as flow control allows.
    Flood,
    /// Keep one multicast in flight: send the next once this member delivered the last.
    Ping,
    /// Only receive (members beyond `--senders`).
    Recv,
    /// Open loop: offer `--rate` multicasts per second on a fixed schedule, whatever the
    /// group does; latency counts from each multicast's intended send time.
    Rate,
}

impl Mode {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Flood => "flood",
            Mode::Ping => "ping",
            Mode::Recv => "recv",
            Mode::Rate => "rate",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Mode::Flood, Mode::Ping, Mode::Recv, Mode::Rate]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mode {s:?}"))
    }
}

/// How many members send: all of them, or a number (the highest-numbered members send, so a
/// lone sender is not the coordinator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Senders {
    /// Every member sends.
    All,
    /// This many members send.
    Count(usize),
}

impl Senders {
    /// The number of senders in a group of `members`.
    pub fn count(self, members: usize) -> usize {
        match self {
            Senders::All => members,
            Senders::Count(n) => n.min(members),
        }
    }
}

impl fmt::Display for Senders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Senders::All => f.write_str("all"),
            Senders::Count(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Senders {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Senders::All);
        }
        match s.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "senders must be `all` or a positive number, not {s:?}"
            )),
            Ok(n) => Ok(Senders::Count(n)),
        }
    }
}

/// The membership event a view-change cell measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Event {
    /// SIGKILL the highest-numbered member (not the coordinator).
    Kill,
    /// SIGKILL the coordinator (the oldest member).
    KillCoord,
    /// The highest-numbered member leaves gracefully.
    Leave,
    /// A new member joins.
    Join,
}

impl Event {
    /// Every event.
    pub const ALL: [Event; 4] = [Event::Kill, Event::KillCoord, Event::Leave, Event::Join];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Event::Kill => "kill",
            Event::KillCoord => "kill-coord",
            Event::Leave => "leave",
            Event::Join => "join",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Event {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Event::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| format!("unknown event {s:?}"))
    }
}

/// The traffic running while a view changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum)]
pub enum Load {
    /// No multicasts.
    None,
    /// Every member floods (so messages are unstable when the view changes).
    Flood,
}

impl Load {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Load::None => "none",
            Load::Flood => "flood",
        }
    }
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Load {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Load::None),
            "flood" => Ok(Load::Flood),
            _ => Err(format!("unknown load {s:?}")),
        }
    }
}

/// Where results go and what is drawn.
#[derive(Clone, Debug, Args)]
pub struct OutputArgs {
    /// Directory of the CSV files, markdown tables, plots and member logs.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
    /// Do not draw the SVG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Print the cells that would run, and stop.
    #[arg(long)]
    pub dry_run: bool,
}

/// `viewsync-bench report`.
#[derive(Clone, Debug, Args)]
pub struct ReportArgs {
    /// Directory of the CSV files; the tables and plots are written there.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

/// `viewsync-bench multicast`. Every cell option takes a comma-separated list; the cells are
/// all combinations. Options left out take one value (3 members, total, 1024 bytes, all
/// sending, flood), except that with no cell option at all the default matrix runs (see
/// [`crate::orchestration::default_multicast_matrix`]); `--full` runs every combination of
/// the matrix.
#[derive(Clone, Debug, Args)]
pub struct MulticastArgs {
    /// Group sizes.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<usize>,
    /// Orderings: fifo, causal, total, safe (total order with safe delivery).
    #[arg(long, value_delimiter = ',')]
    pub order: Vec<Order>,
    /// Payload sizes in bytes (at least 24: sender, counter, timestamp).
    #[arg(long, value_delimiter = ',')]
    pub size: Vec<usize>,
    /// Senders: `all` or a number.
    #[arg(long, value_delimiter = ',')]
    pub senders: Vec<Senders>,
    /// Modes: flood, ping.
    #[arg(long, value_delimiter = ',')]
    pub mode: Vec<Mode>,
    /// Every combination of orderings × sizes (3, 5, 7) × sizes (100, 1024, 8192) × senders
    /// (1, all) × modes (flood, ping): 144 cells.
    #[arg(long, conflicts_with_all = ["members", "order", "size", "senders", "mode"])]
    pub full: bool,
    /// Seconds each cell sends for.
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Multicasts each flooding sender keeps waiting for acceptance at once.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Override `[multicast] window_messages` (flow-control window) of every member.
    #[arg(long)]
    pub window_messages: Option<u64>,
    /// Open loop: every sender offers this many multicasts per second (a list runs each
    /// rate in turn), latency counted from the intended send time. Results go to
    /// `multicast-rate.{csv,md,svg}`; `--mode` is ignored.
    #[arg(long, value_delimiter = ',', conflicts_with = "full")]
    pub rate: Vec<f64>,
    /// The throughput-latency curve: per ordering (default fifo and total), a flood cell
    /// measures the peak, then open-loop cells offer `--fractions` of it. Results go to
    /// `multicast-rate.{csv,md,svg}`.
    #[arg(long, conflicts_with_all = ["full", "rate", "mode"])]
    pub curve: bool,
    /// Extra `[multicast]` settings of every member, as TOML `key=value` (repeatable), e.g.
    /// `--multicast-setting window_min_bytes=16777216`.
    #[arg(long = "multicast-setting")]
    pub multicast_settings: Vec<String>,
    /// Fractions of the flood peak the curve offers.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.25,0.5,0.75,0.9,1.0"
    )]
    pub fractions: Vec<f64>,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `viewsync-bench view-change`. Cell options take comma-separated lists; with none the
/// default matrix runs (events kill, kill-coord, leave, join × members 3, 5, 7 × load none,
/// flood).
#[derive(Clone, Debug, Args)]
pub struct ViewChangeArgs {
    /// Group sizes before the event.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<usize>,
    /// Events: kill, kill-coord, leave, join.
    #[arg(long, value_delimiter = ',')]
    pub event: Vec<Event>,
    /// Traffic while the view changes: none, flood.
    #[arg(long, value_delimiter = ',')]
    pub load: Vec<Load>,
    /// Ordering of the group.
    #[arg(long, default_value = "total")]
    pub order: Order,
    /// Payload size of the flood.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Runs of each cell.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Seconds of flood before the event (with `--load flood`).
    #[arg(long, default_value_t = 1.0)]
    pub settle_secs: f64,
    /// Multicasts each flooding sender keeps waiting for acceptance at once.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Output options.
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `viewsync-bench member`: one member process. It speaks the line protocol of
/// [`crate::member`] on stdin and stdout.
#[derive(Clone, Debug, Args)]
pub struct MemberArgs {
    /// Node id (at least 1).
    #[arg(long)]
    pub node: u64,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Members to join through.
    #[arg(long = "seed")]
    pub seeds: Vec<SocketAddr>,
    /// Group size to wait for before reporting `ready`.
    #[arg(long)]
    pub members: usize,
    /// Ordering of the group.
    #[arg(long, default_value = "total")]
    pub order: Order,
    /// What to do once started.
    #[arg(long, default_value = "flood")]
    pub mode: Mode,
    /// Payload size in bytes (raised to 24 if smaller).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Seconds to send for after `start` (0: until `stop`).
    #[arg(long, default_value_t = 3.0)]
    pub secs: f64,
    /// Multicasts a flooding sender keeps waiting for acceptance at once.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,
    /// Override `[multicast] window_messages`.
    #[arg(long)]
    pub window_messages: Option<u64>,
    /// Multicasts per second offered in `--mode rate`.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Extra `[multicast]` settings, TOML `key=value` (repeatable).
    #[arg(long = "multicast-setting")]
    pub multicast_settings: Vec<String>,
    /// Deliveries hashed into `order_hash@K`.
    #[arg(long, default_value_t = 20_000)]
    pub hash_k: u64,
    /// Override `[failure_detector] monitors`.
    #[arg(long)]
    pub monitors: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn lists_and_senders_parse() {
        let cli = Cli::try_parse_from([
            "viewsync-bench",
            "multicast",
            "--members",
            "3,5",
            "--order",
            "total,safe",
            "--senders",
            "1,all",
        ])
        .unwrap();
        let Command::Multicast(args) = cli.command else {
            panic!("multicast")
        };
        assert_eq!(args.members, vec![3, 5]);
        assert_eq!(args.order, vec![Order::Total, Order::Safe]);
        assert_eq!(args.senders, vec![Senders::Count(1), Senders::All]);
        assert!("0".parse::<Senders>().is_err());
    }
}
