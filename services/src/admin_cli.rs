//! The operator's commands: `viewsync status`, `viewsync monitor`, `viewsync leave` and
//! `viewsync evict` (see docs/OPERATIONS.md, "Reading status", "Watching events", "Leaving
//! and evicting").
//!
//! Exit codes, shared by the four:
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done (`status`: the node is not blocked in any group) |
//! | 1 | the node could not be reached, or its answer could not be read |
//! | 2 | bad arguments or key file; `evict`: asked, but no view without the node came in time |
//! | 3 | `status`: the node is blocked in a group; `leave`/`evict`: refused (no or wrong cluster key, or the node declined, naming why) |

use crate::report;
use clap::Args;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use viewsync::client::{query_group, Client, ClientError, Monitor};
use viewsync::wire::status::{GroupState, NodeEvent, NodeStatus, StampedEvent};
use viewsync::wire::{Blocked, BlockedReason, ClusterKey};
use viewsync::{GroupName, NodeId, ProcessId};

/// The exit code of `viewsync status` for a blocked node, as `viewsync members` uses.
pub const EXIT_BLOCKED: u8 = 3;
/// The exit code of `viewsync leave` and `evict` when the node refused or declined.
pub const EXIT_REFUSED: u8 = 3;

/// `viewsync status`.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The node's address.
    #[arg(long, value_name = "HOST:PORT")]
    pub via: SocketAddr,
    /// The cluster key file, to authenticate the query (optional: nodes answer this
    /// read-only query without it).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Print JSON (field names in docs/OPERATIONS.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// `viewsync monitor`.
#[derive(Args, Debug, Clone)]
pub struct MonitorArgs {
    /// The node's address.
    #[arg(long, value_name = "HOST:PORT")]
    pub via: SocketAddr,
    /// The cluster key file (optional: nodes stream their events without it).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// How long to wait for the connection, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// `viewsync leave`.
#[derive(Args, Debug, Clone)]
pub struct LeaveArgs {
    /// The node to ask.
    #[arg(long, value_name = "HOST:PORT")]
    pub via: SocketAddr,
    /// The cluster key file (required: a keyed node refuses the command without it).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// Leave only this group (the node keeps running); without it the node leaves every
    /// group and stops.
    #[arg(long)]
    pub group: Option<String>,
    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

/// `viewsync evict`.
#[derive(Args, Debug, Clone)]
pub struct EvictArgs {
    /// The node id to remove from the group.
    pub node: u64,
    /// The group.
    #[arg(long)]
    pub group: String,
    /// A member of the group to ask (it passes the request on to the coordinator).
    #[arg(long, value_name = "HOST:PORT")]
    pub via: SocketAddr,
    /// The cluster key file (required: a keyed node refuses the command without it).
    #[arg(long, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// How long to wait for a view without the node, in milliseconds (0: do not wait).
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

fn load_key(key_file: Option<PathBuf>) -> Result<Option<ClusterKey>, ExitCode> {
    key_file
        .map(|path| ClusterKey::load(&path))
        .transpose()
        .map_err(|error| {
            eprintln!("error: {error}");
            ExitCode::from(2)
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// An RFC 3339 timestamp (UTC, milliseconds) of `unix_ms`.
pub fn timestamp(unix_ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(unix_ms)).to_string()
}

/// Explains a refused command: the node closes the connection over an unauthenticated
/// command, naming the reason.
fn command_error(error: &ClientError, has_key: bool) -> (String, u8) {
    match error {
        ClientError::Refused { addr, reason } => {
            let hint = if has_key {
                "the key file is not this cluster's key"
            } else {
                "pass the cluster key with --key-file"
            };
            (
                format!("{addr} refused the command ({reason}): {hint}"),
                EXIT_REFUSED,
            )
        }
        ClientError::Declined { .. } => (error.to_string(), EXIT_REFUSED),
        _ => (error.to_string(), 1),
    }
}

/// `viewsync status`: prints the node's status; exit code 3 when it is blocked in a group.
pub fn status(args: StatusArgs) -> ExitCode {
    let key = match load_key(args.key_file) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let answer = runtime().block_on(viewsync::client::query_status(args.via, key, timeout));
    let status = match answer {
        Ok(status) => status,
        Err(error) => {
            eprintln!("error: node at {} unreachable: {error}", args.via);
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status_json(&status)).expect("JSON")
        );
    } else {
        print!("{}", status_text(&status));
    }
    if status.is_blocked() {
        ExitCode::from(EXIT_BLOCKED)
    } else {
        ExitCode::SUCCESS
    }
}

fn nodes(ids: &[ProcessId]) -> String {
    ids.iter()
        .map(|p| p.node.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn node_list(ids: &[ProcessId]) -> Vec<u64> {
    ids.iter().map(|p| p.node.0).collect()
}

/// The kind of a blocked reason, as `--json` names it.
fn blocked_kind(reason: &BlockedReason) -> &'static str {
    match reason {
        BlockedReason::NoMajority { .. } => "no_majority",
        BlockedReason::NoStateHolder => "no_state_holder",
        BlockedReason::NoSeedAnswered => "no_seed_answered",
        BlockedReason::AwaitingLastView { .. } => "awaiting_last_view",
    }
}

fn blocked_json(blocked: &Blocked) -> Value {
    json!({
        "kind": blocked_kind(&blocked.reason),
        "reason": blocked.reason.to_string(),
        "view": blocked.view.map(|v| v.to_string()),
        "blocked_ms": blocked.blocked_ms,
    })
}

fn group_json(g: &GroupState) -> Value {
    let view = g.view.as_ref();
    json!({
        "group": g.group.as_str(),
        "standing": g.standing.name(),
        "view": view.map(|v| v.id.to_string()),
        "epoch": view.map(|v| v.id.epoch),
        "members": view.map(|v| v.members.iter().map(|m| m.id.node.0).collect::<Vec<_>>()),
        "voters": view.map(|v| v.voters().iter().map(|m| m.id.node.0).collect::<Vec<_>>()),
        "member_addrs": view.map(|v| v.members.iter().map(|m| m.addr.to_string()).collect::<Vec<_>>()),
        "coordinator": g.coordinator.map(|p| p.node.0),
        "sequencer": g.sequencer.map(|p| p.node.0),
        "blocked": g.blocked.as_ref().map(blocked_json),
        "suspected": node_list(&g.suspected),
        "unstable_entries": g.unstable_entries,
        "outbox": g.outbox,
        "service": g.service.as_ref().map(|s| json!({
            "strategy": s.strategy,
            "applied": s.applied,
            "log_records": s.log_records,
            "data_dir": s.data_dir,
            "data_dir_bytes": s.data_dir_bytes,
        })),
    })
}

/// `viewsync status --json`: the field names docs/OPERATIONS.md lists.
pub fn status_json(status: &NodeStatus) -> Value {
    json!({
        "node": status.process.node.0,
        "incarnation": status.process.incarnation.0,
        "addr": status.addr.to_string(),
        "uptime_ms": status.uptime_ms,
        "blocked": status.is_blocked(),
        "groups": status.groups.iter().map(group_json).collect::<Vec<_>>(),
        "suspected": node_list(&status.suspected),
        "peers": status.peers.iter().map(|p| json!({
            "addr": p.addr.to_string(),
            "connected": p.connected,
            "queued_frames": p.queued_frames,
        })).collect::<Vec<_>>(),
        "counters": serde_json::to_value(&status.counters).expect("counters"),
    })
}

/// `viewsync status` as text.
pub fn status_text(status: &NodeStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {} incarnation {} at {}, up {} s",
        status.process.node,
        status.process.incarnation.0,
        status.addr,
        status.uptime_ms / 1000
    );
    for g in &status.groups {
        match &g.view {
            Some(view) => {
                let _ = writeln!(
                    out,
                    "group {}: {}, view {} epoch {} members {} (voters {})",
                    g.group,
                    g.standing.name(),
                    view.id,
                    view.id.epoch,
                    view.members
                        .iter()
                        .map(|m| m.id.node.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                    view.voters()
                        .iter()
                        .map(|m| m.id.node.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            None => {
                let _ = writeln!(out, "group {}: {}, no view", g.group, g.standing.name());
            }
        }
        let show = |p: Option<ProcessId>| p.map_or("-".to_string(), |p| p.node.to_string());
        let _ = writeln!(
            out,
            "  coordinator {}  sequencer {}",
            show(g.coordinator),
            show(g.sequencer)
        );
        match &g.blocked {
            Some(blocked) => {
                let _ = writeln!(out, "  {}", report::blocked(blocked));
            }
            None => {
                let _ = writeln!(out, "  not blocked");
            }
        }
        let suspected = if g.suspected.is_empty() {
            "none".to_string()
        } else {
            nodes(&g.suspected)
        };
        let _ = writeln!(
            out,
            "  suspected {suspected}  unstable entries {}  outbox {}",
            g.unstable_entries, g.outbox
        );
        if let Some(s) = &g.service {
            let mut line = format!("  service {}", s.strategy);
            if let Some(applied) = s.applied {
                let _ = write!(line, ", applied {applied}");
            }
            if let Some(records) = s.log_records {
                let _ = write!(line, ", log {records} records");
            }
            if let Some(dir) = &s.data_dir {
                let _ = write!(line, ", data dir {dir}");
            }
            if let Some(bytes) = s.data_dir_bytes {
                let _ = write!(line, " ({bytes} bytes)");
            }
            let _ = writeln!(out, "{line}");
        }
    }
    let suspected = if status.suspected.is_empty() {
        "none".to_string()
    } else {
        nodes(&status.suspected)
    };
    let _ = writeln!(out, "suspected peers: {suspected}");
    let _ = writeln!(out, "peers:");
    for p in &status.peers {
        let _ = writeln!(
            out,
            "  {} {}, {} frames queued",
            p.addr,
            if p.connected {
                "connected"
            } else {
                "not connected"
            },
            p.queued_frames
        );
    }
    let _ = writeln!(out, "counters:");
    if let Value::Object(counters) = serde_json::to_value(&status.counters).expect("counters") {
        for (name, value) in counters {
            let _ = writeln!(out, "  {name} {value}");
        }
    }
    out
}

/// One `viewsync monitor` line (without its timestamp).
pub fn event_text(event: &NodeEvent) -> String {
    match event {
        NodeEvent::View { view, joined, left } => format!(
            "view group={} epoch={} coordinator={} members={} joined={} left={}",
            view.group,
            view.id.epoch,
            view.id.coordinator.node,
            view.members
                .iter()
                .map(|m| m.id.node.to_string())
                .collect::<Vec<_>>()
                .join(","),
            nodes(joined),
            nodes(left)
        ),
        NodeEvent::Excluded { group } => format!("excluded group={group}"),
        NodeEvent::Left { group } => format!("left group={group}"),
        NodeEvent::Suspected(p) => {
            format!("suspected node={} incarnation={}", p.node, p.incarnation.0)
        }
        NodeEvent::Unsuspected(p) => {
            format!(
                "unsuspected node={} incarnation={}",
                p.node, p.incarnation.0
            )
        }
        NodeEvent::Blocked { group, blocked } => format!(
            "blocked group={group} kind={} reason={:?}",
            blocked_kind(&blocked.reason),
            report::blocked(blocked)
        ),
        NodeEvent::Unblocked { group } => format!("unblocked group={group}"),
        NodeEvent::StateTransferred { group, view } => {
            format!("state-transferred group={group} epoch={}", view.epoch)
        }
        NodeEvent::RefusedBy {
            group,
            seed,
            reason,
        } => format!("refused group={group} seed={seed} reason={reason:?}"),
        NodeEvent::EvictAsked { group, node } => format!("evict-asked group={group} node={node}"),
    }
}

/// The lines of one batch a monitor received.
pub fn batch_lines(dropped: u64, events: &[StampedEvent]) -> Vec<String> {
    let mut lines = Vec::new();
    if dropped > 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        lines.push(format!("{} dropped {dropped} events", timestamp(now)));
    }
    for e in events {
        lines.push(format!("{} {}", timestamp(e.unix_ms), event_text(&e.event)));
    }
    lines
}

/// `viewsync monitor`: prints the node's events until interrupted (exit 0) or the node
/// closes the connection (exit 1).
pub fn monitor(args: MonitorArgs) -> ExitCode {
    use std::io::Write as _;
    let key = match load_key(args.key_file) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    runtime().block_on(async move {
        let mut monitor = match Monitor::connect(args.via, key, timeout).await {
            Ok(monitor) => monitor,
            Err(error) => {
                eprintln!("error: node at {} unreachable: {error}", args.via);
                return ExitCode::FAILURE;
            }
        };
        loop {
            tokio::select! {
                batch = monitor.next() => match batch {
                    Some(Ok(batch)) => {
                        let mut out = std::io::stdout().lock();
                        for line in batch_lines(batch.dropped, &batch.events) {
                            let _ = writeln!(out, "{line}");
                        }
                        let _ = out.flush();
                    }
                    Some(Err(error)) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                    None => {
                        eprintln!("error: the node at {} closed the connection", args.via);
                        return ExitCode::FAILURE;
                    }
                },
                _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            }
        }
    })
}

/// `viewsync leave`.
pub fn leave(args: LeaveArgs) -> ExitCode {
    let group = match args.group.map(GroupName::new).transpose() {
        Ok(group) => group,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let key = match load_key(args.key_file) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let has_key = key.is_some();
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut client = Client::new(args.via, key, timeout);
    match runtime().block_on(client.leave(group)) {
        Ok(done) => {
            println!("{done}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            let (message, code) = command_error(&error, has_key);
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// `viewsync evict`: asks, then waits for a view without the node (as the asked node sees
/// it) and prints it.
pub fn evict(args: EvictArgs) -> ExitCode {
    let group = match GroupName::new(args.group) {
        Ok(group) => group,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let key = match load_key(args.key_file) {
        Ok(key) => key,
        Err(code) => return code,
    };
    let has_key = key.is_some();
    let node = NodeId(args.node);
    let wait = Duration::from_millis(args.timeout_ms);
    let answer_timeout = Duration::from_secs(3);
    runtime().block_on(async move {
        let mut client = Client::new(args.via, key.clone(), answer_timeout);
        match client.evict(group.clone(), node).await {
            Ok(done) => println!("{done}"),
            Err(error) => {
                let (message, code) = command_error(&error, has_key);
                eprintln!("error: {message}");
                return ExitCode::from(code);
            }
        }
        if wait.is_zero() {
            return ExitCode::SUCCESS;
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Ok(status) = query_group(args.via, &group, key.clone(), answer_timeout).await {
                if let Some(view) = status.view.filter(|v| !v.members.iter().any(|m| m.id.node == node)) {
                    print!("{}", report::members(&view));
                    return ExitCode::SUCCESS;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                eprintln!(
                    "error: asked, but {} installed no view of {group} without node {node} within {wait:?}",
                    args.via
                );
                return ExitCode::from(2);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use viewsync::Incarnation;

    /// The node's stdout lines carry a timestamp first; every parser reads past it, and a
    /// line without one reads as before.
    #[test]
    fn stamped_node_lines_parse_like_plain_ones() {
        let plain = "view group=demo epoch=3 coordinator=1 members=1,2,3";
        let stamped = report::stamped(plain);
        assert!(report::split_stamp(&stamped).0.is_some(), "{stamped}");
        assert_eq!(report::strip_stamp(&stamped), plain);
        assert_eq!(report::strip_stamp(plain), plain);
        assert_eq!(
            report::ViewLine::parse(&stamped),
            report::ViewLine::parse(plain)
        );
        assert!(report::ViewLine::parse(&stamped).is_some());
        let deliver = "deliver group=demo view=3@1 sender=2 seq=7 ordering=total n=9 payload=a b";
        assert_eq!(
            report::DeliverLine::parse(&report::stamped(deliver)),
            report::DeliverLine::parse(deliver)
        );
        assert!(report::DeliverLine::parse(deliver).is_some());
    }

    #[test]
    fn monitor_lines_are_timestamped_and_report_drops_first() {
        let event = StampedEvent {
            unix_ms: 1_764_669_799_123,
            event: NodeEvent::Suspected(ProcessId {
                node: NodeId(3),
                incarnation: Incarnation(9),
            }),
        };
        let lines = batch_lines(5, &[event]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" dropped 5 events"), "{lines:?}");
        assert_eq!(
            lines[1],
            "2025-12-02T10:03:19.123Z suspected node=3 incarnation=9"
        );
        assert_eq!(
            report::split_stamp(&lines[1]).1,
            "suspected node=3 incarnation=9"
        );
    }
}
