//! The `viewsync` command-line tool.
//!
//! - `viewsync node --config FILE`: run a group member with the log service, which prints
//!   every delivery (stops gracefully on SIGINT/SIGTERM: it leaves its groups first);
//!   `--send-count N` makes it multicast N numbered messages;
//! - `viewsync members GROUP --via HOST:PORT`: print a group's current view through any node;
//! - `viewsync status|monitor|leave|evict --via HOST:PORT`: a node's status, its events as
//!   they happen, a graceful leave, the eviction of a dead member (`admin_cli`);
//! - `viewsync send GROUP --via HOST:PORT MESSAGE`: multicast to a group from outside it;
//! - `viewsync demo`: a local three-member group in one process, with a crash;
//!   `--strategy passive|passive-backup-reads|active|active-local-reads|active-byzantine|naive|gossip` (and `--state-machine kv|bank`) runs a
//!   replicated service there instead, crashes its primary and reads every acknowledged write
//!   back;
//! - `viewsync keygen`: print a new cluster key; `viewsync keygen --replica-key PATH` writes a
//!   replica manager's signing key (the Byzantine strategy) and prints its public key.

use clap::{Parser, Subcommand};
use rand::RngCore;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use viewsync::runtime::{GroupEvent, Node};
use viewsync::wire::ClusterKey;
use viewsync::GroupName;
use viewsync_services::client_cli::parse_address;
use viewsync_services::config::{MachineKind, ServiceFileConfig, Strategy};
use viewsync_services::strategy;
use viewsync_services::{demo, log_service, report};

#[derive(Parser)]
#[command(
    name = "viewsync",
    version,
    about = "View-synchronous group communication"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a group member from a TOML configuration file.
    Node {
        /// The configuration file (see docs/CONFIGURATION.md).
        #[arg(long)]
        config: PathBuf,
        /// Multicast this many numbered messages to each group once in a view.
        #[arg(long, default_value_t = 0)]
        send_count: u64,
        /// Messages per second (0: as fast as flow control allows).
        #[arg(long, default_value_t = 0)]
        send_rate: u64,
        /// Payload size in bytes.
        #[arg(long, default_value_t = 0)]
        send_size: usize,
    },
    /// Multicast MESSAGE to GROUP from outside it, through any node at --via.
    Send {
        /// The group name.
        group: String,
        /// The message.
        message: String,
        /// Addresses of nodes to resolve the group through (IP:PORT or HOST:PORT).
        #[arg(long, required = true, value_name = "HOST:PORT", value_parser = parse_address)]
        via: Vec<SocketAddr>,
        /// The cluster key file (required by keyed clusters).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// How long to wait for each answer.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Print the current view of GROUP as seen by the node at --via.
    Members {
        /// The group name.
        group: String,
        /// Any node's address (IP:PORT or HOST:PORT).
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_address)]
        via: SocketAddr,
        /// The cluster key file, to authenticate the query (optional: nodes answer this
        /// read-only query without it).
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// How long to wait for the answer.
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Call a replicated key-value store or bank through a front end.
    Client(viewsync_services::client_cli::ClientArgs),
    /// Print a node's status: its groups, views, blocks, peers and counters (exit code 3
    /// when it is blocked in a group, 1 when unreachable).
    Status(viewsync_services::admin_cli::StatusArgs),
    /// Print a node's events (views, blocks, suspicions, state transfers) as they happen,
    /// until interrupted.
    Monitor(viewsync_services::admin_cli::MonitorArgs),
    /// Ask a node to leave its groups gracefully and stop (or to leave one group).
    Leave(viewsync_services::admin_cli::LeaveArgs),
    /// Remove a member from a group at once, without waiting for failure detection.
    Evict(viewsync_services::admin_cli::EvictArgs),
    /// Start a local group of three members, then kill one; print every view. With a
    /// replicated --strategy, clients write meanwhile and every acknowledged write is read
    /// back at the end.
    Demo {
        /// The service the members run: `log` (multicasts in total order), or a replicated
        /// one: `passive`, `passive-backup-reads`, `naive` (the names of `[service]
        /// strategy`), whose primary is crashed while clients write.
        #[arg(long, default_value = "log", value_name = "NAME")]
        strategy: Strategy,
        /// The state machine a replicated strategy runs: `kv` (the default) or `bank`.
        #[arg(long, value_name = "NAME")]
        state_machine: Option<MachineKind>,
    },
    /// Print a new random cluster key (hex) for a key file; with `--replica-key`, make a
    /// replica manager's signing key instead.
    Keygen {
        /// Write a new Ed25519 signing key for a replica manager of the Byzantine strategy to
        /// PATH (readable by its owner only; an existing file is never overwritten) and
        /// print its public key, for `[service.replica_keys]`.
        #[arg(long, value_name = "PATH")]
        replica_key: Option<PathBuf>,
    },
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only on a terminal: logs written to a file or a pipe stay plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Node {
            config,
            send_count,
            send_rate,
            send_size,
        } => run_node(
            config,
            log_service::SendPlan {
                count: send_count,
                rate: send_rate,
                size: send_size,
            },
        ),
        Command::Send {
            group,
            message,
            via,
            key_file,
            timeout_ms,
        } => send(
            group,
            message,
            via,
            key_file,
            Duration::from_millis(timeout_ms),
        ),
        Command::Members {
            group,
            via,
            key_file,
            timeout_ms,
        } => members(group, via, key_file, Duration::from_millis(timeout_ms)),
        Command::Client(args) => viewsync_services::client_cli::run(args),
        Command::Status(args) => viewsync_services::admin_cli::status(args),
        Command::Monitor(args) => viewsync_services::admin_cli::monitor(args),
        Command::Leave(args) => viewsync_services::admin_cli::leave(args),
        Command::Evict(args) => viewsync_services::admin_cli::evict(args),
        Command::Demo {
            strategy,
            state_machine,
        } => {
            if strategy == Strategy::Log && state_machine.is_some() {
                // Ignored silently, a forgotten --strategy would run the log demo unnoticed.
                eprintln!("error: --state-machine needs a replicated --strategy (passive, passive-backup-reads, active, active-local-reads, active-byzantine, naive, gossip)");
                return ExitCode::from(2);
            }
            let system = actix::System::new();
            let result = match strategy {
                Strategy::Log => system.block_on(demo::run()).map_err(|e| e.to_string()),
                _ => system
                    .block_on(demo::replicated::run(
                        strategy,
                        state_machine.unwrap_or_default(),
                    ))
                    .map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keygen { replica_key: None } => {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            println!("{}", hex::encode(key));
            ExitCode::SUCCESS
        }
        Command::Keygen {
            replica_key: Some(path),
        } => {
            use viewsync_services::replication::signed;
            let key = signed::generate_signing_key();
            match signed::write_signing_key(&path, &key) {
                Ok(()) => {
                    println!("{}", signed::public_key_hex(&key.verifying_key()));
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn run_node(path: PathBuf, plan: log_service::SendPlan) -> ExitCode {
    let ServiceFileConfig {
        node: config,
        service,
    } = match ServiceFileConfig::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let system = actix::System::new();
    let node_data_dir = config.data_dir.clone();
    let result = system.block_on(async move {
        let groups = config.groups.clone();
        let leave_timeout = config.settings.membership.leave_timeout;
        // The node joins its groups as it starts; the services are registered before the
        // first view can be installed (the join takes at least one round trip).
        let node = Node::spawn(config).await.map_err(|e| e.to_string())?;
        for group in &groups {
            match service.strategy {
                Strategy::Log => {
                    log_service::LogService::start(&node, group.clone(), plan, |line| {
                        print_line(&line)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                }
                Strategy::Passive
                | Strategy::PassiveBackupReads
                | Strategy::Active
                | Strategy::ActiveLocalReads
                | Strategy::ActiveByzantine
                | Strategy::Naive
                | Strategy::Gossip => {
                    strategy::start_replica(
                        &node,
                        group.clone(),
                        &service,
                        node_data_dir.as_deref(),
                        |line| print_line(&line),
                        true,
                    )
                    .await
                    .map_err(|e| format!("group {group}: {e}"))?;
                }
            }
        }
        let mut events = node.subscribe().await.map_err(|e| e.to_string())?;
        if let Some(addr) = node.metrics_addr() {
            print_line(&format!("metrics node={} addr={addr}", node.me().id.node));
        }
        print_line(&report::listening(&node.me()));
        let stop_requested = node.stop_requested();
        tokio::pin!(stop_requested);
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| e.to_string())?;
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(event) => print_event(&event),
                    None => return Err("node stopped".to_string()),
                },
                _ = tokio::signal::ctrl_c() => break,
                _ = terminate.recv() => break,
                // `viewsync leave`: the node is leaving its groups already.
                _ = &mut stop_requested => break,
            }
        }
        // Graceful stop: leave every group, so the others install a view without this node
        // at once instead of waiting for the failure detector.
        let mut leaving: Vec<GroupName> = Vec::new();
        for group in groups {
            if node.leave(group.clone()).await.is_ok() {
                leaving.push(group);
            }
        }
        let deadline = tokio::time::Instant::now() + leave_timeout + Duration::from_millis(200);
        while !leaving.is_empty() {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(event)) => {
                    print_event(&event);
                    if let GroupEvent::Left { group } = &event {
                        leaving.retain(|g| g != group);
                    }
                }
                _ => break,
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn print_event(event: &GroupEvent) {
    if let Some(line) = report::event_line(event) {
        print_line(&line);
    }
}

/// Prints one of the node's event lines on standard output, after a timestamp (RFC 3339,
/// UTC; the line parsers skip it).
fn print_line(line: &str) {
    println!("{}", report::stamped(line));
}

/// What the client commands share: the group name and key file checked (exit code 2 with the
/// reason otherwise), and a runtime to run the request on.
fn client_setup(
    group: String,
    key_file: Option<PathBuf>,
) -> Result<(GroupName, Option<ClusterKey>, tokio::runtime::Runtime), ExitCode> {
    let group = GroupName::new(group).map_err(|error| {
        eprintln!("error: {error}");
        ExitCode::from(2)
    })?;
    let key = key_file
        .map(|path| ClusterKey::load(&path))
        .transpose()
        .map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(2)
        })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    Ok((group, key, runtime))
}

fn send(
    group: String,
    message: String,
    via: Vec<SocketAddr>,
    key_file: Option<PathBuf>,
    timeout: Duration,
) -> ExitCode {
    let (group, key, runtime) = match client_setup(group, key_file) {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    let payload = bytes::Bytes::from(message.into_bytes());
    match runtime.block_on(viewsync::client::send_to_group(
        &via, &group, payload, key, timeout,
    )) {
        Ok(member) => {
            println!("sent group={group} via={member}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code of `viewsync members` when the node is blocked in the group (it answers, but
/// cannot go on: no majority, no holder of the state, or no seed answered).
const EXIT_BLOCKED: u8 = 3;

fn members(
    group: String,
    via: SocketAddr,
    key_file: Option<PathBuf>,
    timeout: Duration,
) -> ExitCode {
    let (group, key, runtime) = match client_setup(group, key_file) {
        Ok(setup) => setup,
        Err(code) => return code,
    };
    match runtime.block_on(viewsync::client::query_group(via, &group, key, timeout)) {
        Ok(status) => {
            if let Some(view) = &status.view {
                print!("{}", report::members(view));
            }
            if let Some(blocked) = &status.blocked {
                println!("{}", report::blocked(blocked));
                return ExitCode::from(EXIT_BLOCKED);
            }
            if status.view.is_none() {
                eprintln!("error: the node at {via} is not a member of group {group}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
