//! `viewsync-bench replication`: operations per second and latency of the replicated
//! key-value store under each strategy, and of etcd under the same workload in the same run.
//!
//! Each cell starts a fresh group of `viewsync node` processes (the product binary, the
//! configuration a user would write, data directories on the disk under `--out`), loads
//! `--keys` keys, then drives it from this process with `--clients` front ends
//! ([`viewsync_services::frontend::FrontEnd`], one TCP connection per member each):
//!
//! - closed loop (the default): each client keeps one request in flight, the next one sent
//!   when the last is answered;
//! - open loop (`--rate R`): requests are offered at `R` per second in all, whatever the
//!   answers, by a dispatcher that hands each one to a free client; latency is measured
//!   from the request's *intended* send time, so a queue building up in front of a busy
//!   group shows in the figures instead of slowing the offered load (no coordinated
//!   omission). The clients are the pool that bounds what is in flight.
//!
//! The etcd cells ([`etcd`]) run the same loops against an etcd cluster of the same size
//! started from the distribution's `etcd` binary, through its gRPC API.
//!
//! Results go to `replication.csv` (one row per cell, appended) and `replication.md` and
//! `replication-*.svg` (rewritten from the CSV file: the latest run of each cell).

pub mod etcd;
pub mod load;
pub mod nodes;
pub mod output;

use crate::BoxError;
use clap::Args;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use viewsync_services::config::{DurabilityMode, Strategy};

/// What a cell measures: a viewsync strategy, or etcd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// The replicated key-value store under this strategy.
    Viewsync(StrategyName),
    /// etcd, through its gRPC API.
    Etcd,
}

/// The replicated strategies, in the order reports list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StrategyName {
    /// `passive`.
    Passive,
    /// `passive-backup-reads`.
    PassiveBackupReads,
    /// `active`.
    Active,
    /// `active-local-reads`.
    ActiveLocalReads,
    /// `active-byzantine`.
    ActiveByzantine,
    /// `gossip`.
    Gossip,
}

impl StrategyName {
    /// Every replicated strategy but `naive` (which promises nothing worth measuring).
    pub const ALL: [StrategyName; 6] = [
        StrategyName::Passive,
        StrategyName::PassiveBackupReads,
        StrategyName::Active,
        StrategyName::ActiveLocalReads,
        StrategyName::ActiveByzantine,
        StrategyName::Gossip,
    ];

    /// The services crate's strategy.
    pub fn strategy(self) -> Strategy {
        match self {
            StrategyName::Passive => Strategy::Passive,
            StrategyName::PassiveBackupReads => Strategy::PassiveBackupReads,
            StrategyName::Active => Strategy::Active,
            StrategyName::ActiveLocalReads => Strategy::ActiveLocalReads,
            StrategyName::ActiveByzantine => Strategy::ActiveByzantine,
            StrategyName::Gossip => Strategy::Gossip,
        }
    }
}

impl Target {
    /// Every target: the strategies, then etcd.
    pub fn all() -> Vec<Target> {
        let mut all: Vec<Target> = StrategyName::ALL
            .into_iter()
            .map(Target::Viewsync)
            .collect();
        all.push(Target::Etcd);
        all
    }

    /// The name on the command line and in reports (`[service] strategy`, or `etcd`).
    pub fn name(self) -> &'static str {
        match self {
            Target::Viewsync(s) => s.strategy().name(),
            Target::Etcd => "etcd",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::all()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Target::all().iter().map(|t| t.name()).collect();
                format!("unknown target {s:?}: expected one of {}", names.join(", "))
            })
    }
}

/// How a cell's replicas reach the disk: `[service] durability`. etcd always syncs its
/// write-ahead log before it answers (batched across concurrent requests), which is
/// what `grouped` does; its cells run under that name only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Durability(pub DurabilityMode);

impl Durability {
    /// The three modes, strongest first.
    pub const ALL: [Durability; 3] = [
        Durability(DurabilityMode::Fsync),
        Durability(DurabilityMode::Grouped),
        Durability(DurabilityMode::Memory),
    ];

    /// The configuration value.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Durability::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown durability {s:?}: expected fsync, grouped or memory"))
    }
}

/// `viewsync-bench replication`'s options. Cell options take comma-separated lists and
/// every combination runs; with none given, the default matrix runs
/// ([`default_matrix`]).
#[derive(Debug, Args)]
pub struct ReplicationArgs {
    /// Strategies (`passive`, `passive-backup-reads`, `active`, `active-local-reads`,
    /// `active-byzantine`, `gossip`) and `etcd`.
    #[arg(long, value_delimiter = ',')]
    pub strategy: Vec<Target>,
    /// Concurrent clients (closed loop: requests in flight; open loop: the pool).
    #[arg(long, value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Percent of the requests that are reads (`get`); the rest are `put`s.
    #[arg(long, value_delimiter = ',')]
    pub reads: Vec<u8>,
    /// `[service] durability`: fsync, grouped, memory.
    #[arg(long, value_delimiter = ',')]
    pub durability: Vec<Durability>,
    /// Group sizes.
    #[arg(long, value_delimiter = ',')]
    pub members: Vec<usize>,
    /// Open loop: requests offered per second in all (a list: one cell per rate, a
    /// throughput–latency curve). Without it, closed loop.
    #[arg(long, value_delimiter = ',')]
    pub rate: Vec<f64>,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Seconds measured per cell.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    /// Seconds of load before the measurement starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Distinct keys (loaded before the measurement; requests pick one uniformly).
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// The `viewsync` binary (default: next to this one).
    #[arg(long)]
    pub viewsync: Option<PathBuf>,
    /// The `etcd` binary (default: `etcd` on the PATH).
    #[arg(long, default_value = "etcd")]
    pub etcd: PathBuf,
    /// Leave etcd out of the default matrix.
    #[arg(long)]
    pub no_etcd: bool,
    /// Every combination of every option's values, not the default matrix.
    #[arg(long)]
    pub full: bool,
    /// Print the cells and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Where results (and the cells' data directories, removed after each cell) go.
    #[arg(long, default_value = "bench-results")]
    pub out: PathBuf,
}

/// One measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// What is measured.
    pub target: Target,
    /// Group size.
    pub members: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Percent reads.
    pub reads: u8,
    /// Durability mode.
    pub durability: Durability,
    /// Open loop at this many requests per second in all; `None`: closed loop.
    pub rate: Option<f64>,
}

impl Cell {
    /// The cell's identity in the results file: rows with equal keys measure the same thing.
    pub fn key(&self) -> String {
        format!(
            "{}/{}m/{}c/{}r/{}/{}",
            self.target,
            self.members,
            self.clients,
            self.reads,
            self.durability,
            self.rate.map_or("closed".to_string(), |r| format!("{r}")),
        )
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target={} members={} clients={} reads={}% durability={} load={}",
            self.target,
            self.members,
            self.clients,
            self.reads,
            self.durability,
            self.rate
                .map_or("closed".to_string(), |r| format!("open@{r}/s")),
        )
    }
}

/// The default matrix (about 45 cells; about 8 minutes with 5 s cells):
///
/// - every strategy and etcd × 1, 8, 64 clients × writes only × grouped × 3 members;
/// - passive, active, gossip, etcd × 50% and 95% reads × 64 clients;
/// - passive and active × fsync and memory × 1 and 64 clients × writes only;
/// - passive, active, gossip, etcd × 5 members × 64 clients × writes only;
/// - passive, active, gossip, etcd × open loop at 1,000, 4,000 and 16,000 writes/s with a
///   pool of 64 clients (the throughput–latency curve).
pub fn default_matrix(with_etcd: bool) -> Vec<Cell> {
    let grouped = Durability(DurabilityMode::Grouped);
    let cell = |target, members, clients, reads, durability, rate| Cell {
        target,
        members,
        clients,
        reads,
        durability,
        rate,
    };
    let main: Vec<Target> = [
        StrategyName::Passive,
        StrategyName::Active,
        StrategyName::Gossip,
    ]
    .into_iter()
    .map(Target::Viewsync)
    .chain(with_etcd.then_some(Target::Etcd))
    .collect();
    let mut cells = Vec::new();
    for target in Target::all() {
        if target == Target::Etcd && !with_etcd {
            continue;
        }
        for clients in [1, 8, 64] {
            cells.push(cell(target, 3, clients, 0, grouped, None));
        }
    }
    for &target in &main {
        for reads in [50, 95] {
            cells.push(cell(target, 3, 64, reads, grouped, None));
        }
    }
    for strategy in [StrategyName::Passive, StrategyName::Active] {
        for durability in [DurabilityMode::Fsync, DurabilityMode::Memory] {
            for clients in [1, 64] {
                let target = Target::Viewsync(strategy);
                cells.push(cell(target, 3, clients, 0, Durability(durability), None));
            }
        }
    }
    for &target in &main {
        cells.push(cell(target, 5, 64, 0, grouped, None));
    }
    for &target in &main {
        for rate in [1_000.0, 4_000.0, 16_000.0] {
            cells.push(cell(target, 3, 64, 0, grouped, Some(rate)));
        }
    }
    cells
}

/// The cells `args` ask for: the default matrix when no cell option is given; else every
/// combination of the given values (options left out take one value: passive, 64 clients,
/// writes only, grouped, 3 members, closed loop).
pub fn matrix(args: &ReplicationArgs) -> Result<Vec<Cell>, BoxError> {
    let none_given = args.strategy.is_empty()
        && args.clients.is_empty()
        && args.reads.is_empty()
        && args.durability.is_empty()
        && args.members.is_empty()
        && args.rate.is_empty();
    if none_given && !args.full {
        return Ok(default_matrix(!args.no_etcd));
    }
    if let Some(reads) = args.reads.iter().find(|r| **r > 100) {
        return Err(format!("--reads {reads}: a percentage, 0 to 100").into());
    }
    if let Some(rate) = args.rate.iter().find(|r| !(**r > 0.0 && r.is_finite())) {
        return Err(format!("--rate {rate}: requests per second, above 0").into());
    }
    if args.clients.contains(&0) || args.members.contains(&0) {
        return Err("--clients and --members start at 1".into());
    }
    let or = |given: &[Target], full: Vec<Target>, one: Target| -> Vec<Target> {
        if !given.is_empty() {
            given.to_vec()
        } else if args.full {
            full
        } else {
            vec![one]
        }
    };
    let pick = |given: &[usize], full: &[usize], one: usize| -> Vec<usize> {
        if !given.is_empty() {
            given.to_vec()
        } else if args.full {
            full.to_vec()
        } else {
            vec![one]
        }
    };
    let targets = or(
        &args.strategy,
        Target::all()
            .into_iter()
            .filter(|t| *t != Target::Etcd || !args.no_etcd)
            .collect(),
        Target::Viewsync(StrategyName::Passive),
    );
    let clients = pick(&args.clients, &[1, 8, 64], 64);
    let members = pick(&args.members, &[3, 5], 3);
    let reads: Vec<u8> = match (args.reads.is_empty(), args.full) {
        (false, _) => args.reads.clone(),
        (true, true) => vec![0, 50, 95],
        (true, false) => vec![0],
    };
    let durability: Vec<Durability> = match (args.durability.is_empty(), args.full) {
        (false, _) => args.durability.clone(),
        (true, true) => Durability::ALL.to_vec(),
        (true, false) => vec![Durability(DurabilityMode::Grouped)],
    };
    let rates: Vec<Option<f64>> = if args.rate.is_empty() {
        vec![None]
    } else {
        args.rate.iter().map(|r| Some(*r)).collect()
    };
    let grouped = Durability(DurabilityMode::Grouped);
    let mut cells = Vec::new();
    for &target in &targets {
        for &members in &members {
            for &clients in &clients {
                for &reads in &reads {
                    for &durability in &durability {
                        // etcd has one durability: its WAL is synced before it answers.
                        if target == Target::Etcd && durability != grouped {
                            continue;
                        }
                        for &rate in &rates {
                            cells.push(Cell {
                                target,
                                members,
                                clients,
                                reads,
                                durability,
                                rate,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(cells)
}

/// The workload every cell of a run shares.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Value size in bytes.
    pub size: usize,
    /// Measured time.
    pub measure: Duration,
    /// Load before the measurement.
    pub warmup: Duration,
    /// Distinct keys.
    pub keys: usize,
}

/// Runs `viewsync-bench replication`: every cell, one line each on stdout, appended to
/// `replication.csv`; then rewrites `replication.md` and the plots. Returns the number of
/// failed cells (a skipped etcd cell is not a failure).
pub fn run(args: &ReplicationArgs) -> Result<usize, BoxError> {
    let cells = matrix(args)?;
    let workload = Workload {
        size: args.size,
        measure: Duration::from_secs_f64(args.secs),
        warmup: Duration::from_secs_f64(args.warmup),
        keys: args.keys.max(1),
    };
    if args.dry_run {
        for cell in &cells {
            println!("{cell}");
        }
        let per_cell = args.secs + args.warmup + 3.0;
        println!(
            "# {} cells, about {:.0} s",
            cells.len(),
            cells.len() as f64 * per_cell
        );
        return Ok(0);
    }
    let viewsync = match &args.viewsync {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or("no directory holds this executable")?
            .join("viewsync"),
    };
    if cells
        .iter()
        .any(|c| matches!(c.target, Target::Viewsync(_)))
        && !viewsync.exists()
    {
        return Err(format!(
            "{} not found: build it with `cargo build --release --bin viewsync` or pass --viewsync",
            viewsync.display()
        )
        .into());
    }
    std::fs::create_dir_all(&args.out)?;
    let data_root = args.out.join("replication-data");
    let info = crate::results::RunInfo::now();
    let mut failed = 0;
    let mut etcd_skip: Option<String> = None;
    for (i, cell) in cells.iter().enumerate() {
        eprintln!("[{}/{}] {cell}", i + 1, cells.len());
        if cell.target == Target::Etcd {
            if etcd_skip.is_none() {
                etcd_skip = etcd::unavailable(&args.etcd);
            }
            if let Some(reason) = &etcd_skip {
                println!("{cell} skipped: {reason}");
                continue;
            }
        }
        let dir = data_root.join(format!("cell-{i}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let measured = match cell.target {
            Target::Viewsync(strategy) => {
                nodes::measure(&viewsync, &dir, strategy, cell, &workload)
            }
            Target::Etcd => etcd::measure(&args.etcd, &dir, cell, &workload),
        };
        let _ = std::fs::remove_dir_all(&dir);
        match measured {
            Ok(measurement) => {
                let row = output::Row::new(&info, cell, &workload, &measurement);
                println!("{}", row.line());
                output::append(&args.out.join("replication.csv"), &row)?;
            }
            Err(error) => {
                failed += 1;
                println!("{cell} failed: {error}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&data_root);
    let written = output::rewrite(&args.out)?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_by_their_configuration_names() {
        for target in Target::all() {
            assert_eq!(target.name().parse::<Target>(), Ok(target));
        }
        let error = "paxos".parse::<Target>().unwrap_err();
        assert!(
            error.contains("passive") && error.contains("etcd"),
            "{error}"
        );
    }

    #[test]
    fn the_default_matrix_covers_every_strategy_and_etcd_and_has_distinct_cells() {
        let cells = default_matrix(true);
        for target in Target::all() {
            assert!(cells.iter().any(|c| c.target == target), "{target}");
        }
        let mut keys: Vec<String> = cells.iter().map(Cell::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), cells.len());
        assert!(!default_matrix(false)
            .iter()
            .any(|c| c.target == Target::Etcd));
    }
}
