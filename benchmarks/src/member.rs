//! One member process (`viewsync-bench member`).
//!
//! It starts a viewsync node with a bench service on group [`crate::GROUP`], joins,
//! and then follows its parent's commands, one per line on stdin:
//!
//! - `start`: start the clock and, per `--mode`, flood or ping (or only receive) for
//!   `--secs` seconds (until `stop` when `--secs 0`);
//! - `stop`: stop sending now;
//! - `drain`: stop sending (if still sending) and print `progress` lines until `report`;
//! - `report`: print the result line;
//! - `leave`: leave the group gracefully;
//! - `stats`: print the node's counters (`stats t_ns=.. frames=.. bytes=.. suspicions=..
//!   false_suspicions=.. views=..`: frames and bytes sent since the start);
//! - `quit` (or the end of stdin): exit.
//!
//! It prints one line per event on stdout, each `kind key=value ...` with `t_ns` the
//! [`CLOCK_MONOTONIC`](crate::sys::now_ns) time of the event:
//!
//! - `listening addr=A node=N`: the node is up at `A`;
//! - `joining t_ns=..`: it asked to join;
//! - `sview t_ns=.. epoch=.. size=.. members=..`: its service received a view;
//! - `ready t_ns=..`: the first service view with at least `--members` members;
//! - `gview t_ns=.. epoch=.. size=.. members=.. joined=.. left=..`: the node installed a
//!   view (`GroupEvent::ViewInstalled`);
//! - `block t_ns=..` and `unstable t_ns=.. buffered=.. waiting=..`: a view change began, and
//!   the multicast entries the node held just then;
//! - `suspect t_ns=.. peer=..`, `unsuspect t_ns=.. peer=..`, `left t_ns=..`,
//!   `excluded t_ns=..`: failure-detector and membership events;
//! - `started t_ns=..`, `stopped t_ns=.. sent=..`: the clock started, the sending ended;
//! - `progress t_ns=.. delivered=.. own=.. sent=..` every 50 ms while draining;
//! - the result line ([`ResultLine`]) after `report`;
//! - `error msg=..` when something failed.
//!
//! Every multicast payload starts with the sender's node id, a counter and the send time
//! (`CLOCK_MONOTONIC` nanoseconds, little endian, 8 bytes each), so the sender measures the
//! time to its own delivery, every member the time from send to its delivery of the others'
//! multicasts (the clock is the same in every process on the machine), and every member
//! hashes the `(sender, counter)` ids of its first `--hash-k` deliveries into
//! `order_hash@K`.

use crate::cli::{MemberArgs, Mode};
use crate::lines::{Latency, ResultLine};
use crate::sys::{cpu_seconds, now_ns};
use crate::{BoxError, GROUP};
use actix::prelude::*;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use std::cell::{Cell, RefCell};
use std::io::BufRead;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use viewsync::config::NodeConfig;
use viewsync::error::NodeError;
use viewsync::runtime::{
    GroupEvent, Node, NodeHandle, NodeStats, ServiceEvent, ServiceEvents, TakeSnapshot,
};
use viewsync::{GroupName, View};

/// Bytes of the payload header: sender, counter, send time.
pub const HEADER_BYTES: usize = 24;

/// How often a draining member reports its deliveries.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// A command from the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    Start,
    Stop,
    Drain,
    Report,
    Leave,
    Stats,
    Quit,
}

impl Command {
    fn parse(line: &str) -> Option<Self> {
        Some(match line.trim() {
            "start" => Command::Start,
            "stop" => Command::Stop,
            "drain" => Command::Drain,
            "report" => Command::Report,
            "leave" => Command::Leave,
            "stats" => Command::Stats,
            "quit" => Command::Quit,
            _ => return None,
        })
    }
}

/// What the bench service counts.
struct Tally {
    me: u64,
    delivered: u64,
    delivered_bytes: u64,
    own_deliv: u64,
    latency_us: Histogram<u64>,
    recv_latency_us: Histogram<u64>,
    /// Deliveries per sender node id (index).
    per_sender: Vec<u64>,
    hash: u64,
    hashed: u64,
    hash_k: u64,
    ready_at: usize,
    ready: bool,
}

/// FNV-1a over `bytes`, continuing from `hash`.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The offset basis of FNV-1a.
const FNV_BASIS: u64 = 0xcbf2_9ce4_8422_2325;

fn word(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

impl Tally {
    fn new(me: u64, hash_k: u64, ready_at: usize) -> Self {
        Tally {
            me,
            delivered: 0,
            delivered_bytes: 0,
            own_deliv: 0,
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            recv_latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
            per_sender: Vec::new(),
            hash: FNV_BASIS,
            hashed: 0,
            hash_k,
            ready_at,
            ready: false,
        }
    }

    /// Counts one delivery; `true` if it was this member's own.
    fn deliver(&mut self, payload: &[u8]) -> bool {
        self.delivered += 1;
        self.delivered_bytes += payload.len() as u64;
        if payload.len() < HEADER_BYTES {
            return false;
        }
        if self.hashed < self.hash_k {
            self.hash = fnv(self.hash, &payload[..16]);
            self.hashed += 1;
        }
        let sender = word(payload, 0);
        if let Ok(i) = usize::try_from(sender) {
            if i < 4096 {
                if self.per_sender.len() <= i {
                    self.per_sender.resize(i + 1, 0);
                }
                self.per_sender[i] += 1;
            }
        }
        let micros = now_ns().saturating_sub(word(payload, 2)) / 1000;
        if sender != self.me {
            self.recv_latency_us.saturating_record(micros.max(1));
            return false;
        }
        self.own_deliv += 1;
        self.latency_us.saturating_record(micros.max(1));
        true
    }

    fn latency(&self) -> Option<Latency> {
        percentiles(&self.latency_us)
    }

    fn recv_latency(&self) -> Option<Latency> {
        percentiles(&self.recv_latency_us)
    }
}

fn percentiles(h: &Histogram<u64>) -> Option<Latency> {
    (!h.is_empty()).then(|| Latency {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    })
}

/// State shared by the service actor and the tasks of the member (one thread).
struct Shared {
    tally: RefCell<Tally>,
    /// Woken at each own delivery (ping mode).
    own: Notify,
}

fn member_list(view: &View) -> String {
    view.members
        .iter()
        .map(|m| m.id.node.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The bench service: counts and times deliveries, reports views and blocks.
struct BenchService {
    shared: Rc<Shared>,
    node: NodeHandle,
}

impl Actor for BenchService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Never drop a delivery: the node pauses delivery itself while this mailbox is far
        // behind.
        ctx.set_mailbox_capacity(usize::MAX);
    }
}

impl Handler<ServiceEvent> for BenchService {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Self::Context) {
        match event {
            ServiceEvent::Deliver { message, .. } => {
                if self.shared.tally.borrow_mut().deliver(&message.payload) {
                    self.shared.own.notify_one();
                }
            }
            ServiceEvent::ViewChange { change, .. } => {
                let t = now_ns();
                let view = &change.view;
                println!(
                    "sview t_ns={t} epoch={} size={} members={}",
                    view.id.epoch,
                    view.members.len(),
                    member_list(view)
                );
                let mut tally = self.shared.tally.borrow_mut();
                if !tally.ready && view.members.len() >= tally.ready_at {
                    tally.ready = true;
                    println!("ready t_ns={t}");
                }
            }
            ServiceEvent::Block { .. } => {
                println!("block t_ns={}", now_ns());
                let node = self.node.clone();
                actix::spawn(async move {
                    if let Ok(stats) = node.stats().await {
                        println!(
                            "unstable t_ns={} buffered={} waiting={}",
                            now_ns(),
                            stats.buffered_entries,
                            stats.waiting_multicasts
                        );
                    }
                });
            }
            ServiceEvent::Request(request) => self.node.reply(
                request.group,
                request.reply,
                Err(viewsync::wire::Refusal::Malformed(
                    "the multicast benchmark serves no requests".into(),
                )),
            ),
            ServiceEvent::Restore { .. } | ServiceEvent::Direct { .. } => {}
        }
    }
}

/// The node hands the events of each of its steps over at once (a burst), not one message
/// per delivery: the cheapest way in for a service under a flood.
impl Handler<ServiceEvents> for BenchService {
    type Result = ();

    fn handle(&mut self, events: ServiceEvents, ctx: &mut Self::Context) {
        for event in events.0 {
            <Self as Handler<ServiceEvent>>::handle(self, event, ctx);
        }
    }
}

impl Handler<TakeSnapshot> for BenchService {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        // The bench has no replicated state.
        MessageResult(Bytes::new())
    }
}

/// What a sender needs.
#[derive(Clone)]
struct Sender {
    node: NodeHandle,
    group: GroupName,
    shared: Rc<Shared>,
    me: u64,
    size: usize,
    pipeline: usize,
    rate: f64,
}

/// What a sender did while the clock ran.
#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    /// Multicasts the node accepted.
    accepted: u64,
    /// Open loop: multicasts the schedule offered (accepted or not).
    offered: u64,
}

impl Sender {
    fn payload(&self, counter: u64) -> Bytes {
        self.payload_at(counter, now_ns())
    }

    /// A payload stamped with `send_ns` as its send time.
    fn payload_at(&self, counter: u64, send_ns: u64) -> Bytes {
        let mut bytes = vec![0u8; self.size.max(HEADER_BYTES)];
        bytes[0..8].copy_from_slice(&self.me.to_le_bytes());
        bytes[8..16].copy_from_slice(&counter.to_le_bytes());
        bytes[16..24].copy_from_slice(&send_ns.to_le_bytes());
        Bytes::from(bytes)
    }

    /// Open loop: offers multicast `k` at `k / rate` seconds after the start, stamped with
    /// that intended time, so time spent waiting anywhere (in this process, the node's
    /// outbox, the network) counts in the latency. At most `pipeline` multicasts, or 50 ms
    /// of the schedule if more, wait for acceptance (so a busy node, not this process, sets
    /// what is lost); a multicast due while that many wait, or refused (the outbox is full),
    /// is offered load lost: it is counted, not retried, so the schedule never slips.
    async fn paced(self, mut stop: watch::Receiver<bool>) -> Sent {
        let rate = self.rate.max(1e-3);
        let waiting_max = self.pipeline.max((rate * 0.05) as usize);
        let start = Instant::now();
        let start_ns = now_ns();
        let mut waiting = FuturesUnordered::new();
        let mut sent = Sent::default();
        while !*stop.borrow() {
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            while sent.offered < due {
                sent.offered += 1;
                if waiting.len() >= waiting_max {
                    continue;
                }
                let intended = start_ns + (sent.offered as f64 / rate * 1e9) as u64;
                let payload = self.payload_at(sent.offered, intended);
                let node = self.node.clone();
                let group = self.group.clone();
                waiting.push(async move { node.multicast(group, payload).await });
            }
            let next = start + Duration::from_secs_f64((sent.offered + 1) as f64 / rate);
            tokio::select! {
                Some(result) = waiting.next(), if !waiting.is_empty() => match result {
                    Ok(()) => sent.accepted += 1,
                    Err(NodeError::Stopped) => return sent,
                    Err(error) => tracing::debug!(%error, "multicast refused"),
                },
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = stop.changed() => {}
            }
        }
        while let Some(result) = waiting.next().await {
            if result.is_ok() {
                sent.accepted += 1;
            }
        }
        sent
    }

    /// Multicasts as fast as flow control allows, keeping `pipeline` multicasts waiting for
    /// acceptance, until `stop`. Returns the multicasts accepted.
    async fn flood(self, mut stop: watch::Receiver<bool>) -> u64 {
        let mut waiting = FuturesUnordered::new();
        let mut counter = 0u64;
        let mut sent = 0u64;
        loop {
            let stopping = *stop.borrow();
            if !stopping {
                while waiting.len() < self.pipeline {
                    counter += 1;
                    let payload = self.payload(counter);
                    let node = self.node.clone();
                    let group = self.group.clone();
                    waiting.push(async move { node.multicast(group, payload).await });
                }
            }
            if waiting.is_empty() {
                return sent;
            }
            tokio::select! {
                result = waiting.next() => match result {
                    Some(Ok(())) => sent += 1,
                    Some(Err(NodeError::Stopped)) => return sent,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "multicast refused");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    None => {}
                },
                _ = stop.changed(), if !stopping => {}
            }
        }
    }

    /// Keeps one multicast in flight until `stop`. Returns the multicasts accepted.
    async fn ping(self, mut stop: watch::Receiver<bool>) -> u64 {
        let mut sent = 0u64;
        let mut counter = 0u64;
        while !*stop.borrow() {
            counter += 1;
            match self
                .node
                .multicast(self.group.clone(), self.payload(counter))
                .await
            {
                Ok(()) => sent += 1,
                Err(NodeError::Stopped) => return sent,
                Err(error) => {
                    tracing::debug!(%error, "multicast refused");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            }
            // Own multicasts are delivered in the order sent (FIFO at least).
            while self.shared.tally.borrow().own_deliv < sent {
                tokio::select! {
                    _ = self.shared.own.notified() => {}
                    _ = stop.changed() => return sent,
                }
            }
        }
        sent
    }
}

/// Counters at the start of the clock.
struct Baseline {
    cpu: f64,
    tcp_bytes: Option<u64>,
    stats: NodeStats,
}

/// What the clock's window measured.
#[derive(Clone, Copy, Debug, Default)]
struct Window {
    delivered: u64,
    bytes: u64,
    secs: f64,
    sent: u64,
    offered: u64,
}

fn config_text(args: &MemberArgs) -> String {
    let seeds = args
        .seeds
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // The member without seeds founds the group.
    let bootstrap = args.seeds.is_empty();
    let mut text = format!(
        "node_id = {}\nlisten = \"{}\"\nseeds = [{seeds}]\nbootstrap = {bootstrap}\n[multicast]\nordering = \"{}\"\ndelivery = \"{}\"\n",
        args.node,
        args.listen,
        args.order.ordering(),
        args.order.delivery()
    );
    if let Some(window) = args.window_messages {
        text.push_str(&format!("window_messages = {window}\n"));
    }
    for setting in &args.multicast_settings {
        text.push_str(setting);
        text.push('\n');
    }
    if let Some(monitors) = args.monitors {
        text.push_str(&format!("[failure_detector]\nmonitors = {monitors}\n"));
    }
    text
}

/// Reads commands from stdin on a thread of its own; the end of stdin is `quit`.
fn read_commands() -> mpsc::UnboundedReceiver<Command> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            match Command::parse(&line) {
                Some(command) => {
                    if tx.send(command).is_err() {
                        return;
                    }
                }
                None => eprintln!("unknown command {line:?}"),
            }
        }
        let _ = tx.send(Command::Quit);
    });
    rx
}

/// Runs a member until `quit`; exits the process.
pub fn run(args: MemberArgs) -> Result<(), BoxError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let system = actix::System::new();
    let result = system.block_on(member(args));
    if let Err(error) = &result {
        println!("error msg={}", error.to_string().replace(' ', "_"));
    }
    // Do not wait for the node's connections to wind down.
    std::process::exit(if result.is_ok() { 0 } else { 1 })
}

async fn member(args: MemberArgs) -> Result<(), BoxError> {
    let config = NodeConfig::parse(&config_text(&args), Path::new("viewsync-bench-member.toml"))?;
    let group = GroupName::new(GROUP)?;
    let node = Node::spawn(config).await?;
    let shared = Rc::new(Shared {
        tally: RefCell::new(Tally::new(args.node, args.hash_k, args.members)),
        own: Notify::new(),
    });
    let service = BenchService {
        shared: shared.clone(),
        node: node.clone(),
    }
    .start();
    node.register_service_in_bursts(group.clone(), service)
        .await?;
    let mut events = node.subscribe().await?;
    actix::spawn(async move {
        while let Some(event) = events.recv().await {
            print_event(&event);
        }
    });
    println!("listening addr={} node={}", node.me().addr, args.node);
    println!("joining t_ns={}", now_ns());
    node.join(group.clone()).await?;

    let sender = Sender {
        node: node.clone(),
        group: group.clone(),
        shared: shared.clone(),
        me: args.node,
        size: args.size,
        pipeline: args.pipeline.max(1),
        rate: args.rate,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Rc::new(stop_tx);
    let window: Rc<Cell<Option<Window>>> = Rc::new(Cell::new(None));
    let mut baseline: Option<Baseline> = None;
    let mut clock: Option<tokio::task::JoinHandle<()>> = None;
    let mut draining: Option<tokio::task::JoinHandle<()>> = None;
    let last_change_ms = Rc::new(Cell::new(0u64));
    let mut commands = read_commands();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Start if baseline.is_none() => {
                // Start sending first: the readings below take a few milliseconds (`ss`),
                // and the other members start now too.
                let cpu = cpu_seconds();
                println!("started t_ns={}", now_ns());
                clock = Some(actix::spawn(run_clock(
                    sender.clone(),
                    args.mode,
                    args.secs,
                    stop_tx.clone(),
                    stop_rx.clone(),
                    window.clone(),
                )));
                let stats = node.stats().await?;
                baseline = Some(Baseline {
                    cpu,
                    tcp_bytes: Some(stats.bytes_sent),
                    stats,
                });
            }
            Command::Start => {}
            Command::Stop => {
                let _ = stop_tx.send(true);
            }
            Command::Drain if draining.is_none() => {
                let _ = stop_tx.send(true);
                if let Some(clock) = clock.take() {
                    let _ = clock.await;
                }
                let sent = window.get().unwrap_or_default().sent;
                draining = Some(actix::spawn(progress(
                    shared.clone(),
                    sent,
                    last_change_ms.clone(),
                )));
            }
            Command::Drain => {}
            Command::Report => {
                if let Some(task) = draining.take() {
                    task.abort();
                }
                let Some(base) = &baseline else {
                    println!("error msg=report_before_start");
                    continue;
                };
                let window = window.get().unwrap_or_default();
                let drain_ms = last_change_ms.get();
                let line = result_line(&args, &node, &shared, base, window, drain_ms).await?;
                println!("{line}");
            }
            Command::Leave => {
                println!("leaving t_ns={}", now_ns());
                if let Err(error) = node.leave(group.clone()).await {
                    println!("error msg=leave:{}", error.to_string().replace(' ', "_"));
                }
            }
            Command::Stats => {
                let stats = node.stats().await?;
                println!(
                    "stats t_ns={} frames={} bytes={} suspicions={} false_suspicions={} views={}",
                    now_ns(),
                    stats.frames_sent,
                    stats.bytes_sent,
                    stats.suspicions,
                    stats.false_suspicions,
                    stats.views_installed
                );
            }
            Command::Quit => break,
        }
    }
    Ok(())
}

/// Sends per `mode` until `secs` pass (or `stop`), then records the window.
async fn run_clock(
    sender: Sender,
    mode: Mode,
    secs: f64,
    stop_tx: Rc<watch::Sender<bool>>,
    mut stop_rx: watch::Receiver<bool>,
    window: Rc<Cell<Option<Window>>>,
) {
    let started = Instant::now();
    let (delivered0, bytes0) = {
        let t = sender.shared.tally.borrow();
        (t.delivered, t.delivered_bytes)
    };
    let shared = sender.shared.clone();
    let closed = |accepted: u64| Sent {
        accepted,
        offered: 0,
    };
    let task = match mode {
        Mode::Flood => {
            let flood = sender.flood(stop_rx.clone());
            Some(actix::spawn(async move { closed(flood.await) }))
        }
        Mode::Ping => {
            let ping = sender.ping(stop_rx.clone());
            Some(actix::spawn(async move { closed(ping.await) }))
        }
        Mode::Rate => Some(actix::spawn(sender.paced(stop_rx.clone()))),
        Mode::Recv => None,
    };
    if secs > 0.0 {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(secs)) => {}
            _ = stop_rx.wait_for(|stop| *stop) => {}
        }
    } else {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }
    let _ = stop_tx.send(true);
    let elapsed = started.elapsed().as_secs_f64();
    let (delivered, bytes) = {
        let t = shared.tally.borrow();
        (t.delivered - delivered0, t.delivered_bytes - bytes0)
    };
    let sent = match task {
        Some(task) => task.await.unwrap_or_default(),
        None => Sent::default(),
    };
    window.set(Some(Window {
        delivered,
        bytes,
        secs: elapsed,
        sent: sent.accepted,
        offered: sent.offered,
    }));
    println!("stopped t_ns={} sent={}", now_ns(), sent.accepted);
}

/// Prints `progress t_ns=.. delivered=.. own=.. sent=..` every [`PROGRESS_INTERVAL`] until
/// aborted; `last_change_ms` is kept at the milliseconds from the start of the drain to the
/// last change of `delivered` seen.
async fn progress(shared: Rc<Shared>, sent: u64, last_change_ms: Rc<Cell<u64>>) {
    let began = Instant::now();
    let mut last = shared.tally.borrow().delivered;
    loop {
        let (delivered, own) = {
            let t = shared.tally.borrow();
            (t.delivered, t.own_deliv)
        };
        if delivered != last {
            last = delivered;
            last_change_ms.set(began.elapsed().as_millis() as u64);
        }
        println!(
            "progress t_ns={} delivered={delivered} own={own} sent={sent}",
            now_ns()
        );
        tokio::time::sleep(PROGRESS_INTERVAL).await;
    }
}

async fn result_line(
    args: &MemberArgs,
    node: &NodeHandle,
    shared: &Shared,
    base: &Baseline,
    window: Window,
    drain_ms: u64,
) -> Result<ResultLine, BoxError> {
    let stats = node.stats().await?;
    let cpu = cpu_seconds() - base.cpu;
    // Frame bytes the node sealed (length prefixes included), from its own counter.
    let tcp_bytes = base
        .tcp_bytes
        .map(|then| stats.bytes_sent.saturating_sub(then));
    let t = shared.tally.borrow();
    // Every delivery counts: nothing is multicast before the parent's `start`.
    let delivered = t.delivered;
    let per = |x: f64| {
        if delivered == 0 {
            0.0
        } else {
            x / delivered as f64
        }
    };
    let rate = |x: u64| {
        if window.secs > 0.0 {
            x as f64 / window.secs
        } else {
            0.0
        }
    };
    Ok(ResultLine {
        node: args.node,
        mode: Some(args.mode),
        size: args.size.max(HEADER_BYTES),
        secs: if args.secs > 0.0 {
            args.secs
        } else {
            (window.secs * 10.0).round() / 10.0
        },
        members: args.members,
        sent: window.sent,
        own_deliv: t.own_deliv,
        delivered,
        deliv_msgs_s: rate(window.delivered),
        deliv_mb_s: rate(window.bytes) / 1e6,
        latency: t.latency(),
        recv_latency: t.recv_latency(),
        per_sender: t
            .per_sender
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| (i as u64, *n))
            .collect(),
        hash_k: t.hashed,
        order_hash: format!("{:016x}", t.hash),
        wire_frames_per_deliv: per(stats.frames_sent.saturating_sub(base.stats.frames_sent) as f64),
        wire_bytes_per_deliv: tcp_bytes.map(|b| per(b as f64)),
        writes_per_deliv: per(stats.write_batches.saturating_sub(base.stats.write_batches) as f64),
        cpu_s_per_1000: per(cpu) * 1000.0,
        suspicions: stats.suspicions.saturating_sub(base.stats.suspicions),
        false_suspicions: stats
            .false_suspicions
            .saturating_sub(base.stats.false_suspicions),
        retransmitted: stats.retransmitted.saturating_sub(base.stats.retransmitted),
        dropped_frames: stats
            .frames_dropped_queue_full
            .saturating_sub(base.stats.frames_dropped_queue_full),
        duplicates: stats.duplicates.saturating_sub(base.stats.duplicates),
        drain_ms,
        offered: window.offered,
    })
}

fn print_event(event: &GroupEvent) {
    let t = now_ns();
    match event {
        GroupEvent::ViewInstalled { change, .. } => println!(
            "gview t_ns={t} epoch={} size={} members={} joined={} left={}",
            change.view.id.epoch,
            change.view.members.len(),
            member_list(&change.view),
            change.joined.len(),
            change.left.len()
        ),
        GroupEvent::Suspected(p) => println!("suspect t_ns={t} peer={}", p.node),
        GroupEvent::Unsuspected(p) => println!("unsuspect t_ns={t} peer={}", p.node),
        GroupEvent::Left { .. } => println!("left t_ns={t}"),
        GroupEvent::Excluded { .. } => println!("excluded t_ns={t}"),
        GroupEvent::RefusedBy { seed, .. } => println!("refused t_ns={t} seed={seed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_counted_timed_and_hashed() {
        let mut a = Tally::new(1, 2, 3);
        let mut b = Tally::new(2, 2, 3);
        let mut payload = vec![0u8; 100];
        payload[0..8].copy_from_slice(&1u64.to_le_bytes());
        payload[8..16].copy_from_slice(&7u64.to_le_bytes());
        assert!(a.deliver(&payload));
        assert!(!b.deliver(&payload));
        assert_eq!((a.own_deliv, b.own_deliv, a.delivered), (1, 0, 1));
        assert!(a.latency().is_some() && b.latency().is_none());
        assert_eq!(a.hash, b.hash);
        assert!(!a.deliver(b"short"));
        assert_eq!(a.delivered_bytes, 105);
    }

    #[test]
    fn the_config_names_ordering_and_delivery() {
        let args = MemberArgs {
            node: 2,
            listen: "127.0.0.1:0".parse().unwrap(),
            seeds: vec!["127.0.0.1:9".parse().unwrap()],
            members: 3,
            order: crate::cli::Order::Safe,
            mode: Mode::Flood,
            size: 100,
            secs: 1.0,
            pipeline: 8,
            window_messages: Some(1024),
            rate: 1000.0,
            multicast_settings: vec!["ack_bytes = 4096".into()],
            hash_k: 10,
            monitors: Some(3),
        };
        let config = NodeConfig::parse(&config_text(&args), Path::new("t.toml")).unwrap();
        assert_eq!(config.seeds.len(), 1);
        assert_eq!(config.settings.multicast.window_messages, 1024);
        assert_eq!(config.settings.multicast.ack_bytes, 4096);
        assert_eq!(config.settings.failure_detector.monitors, 3);
        assert_eq!(
            config.settings.multicast.delivery,
            viewsync::proto::multicast::Delivery::Safe
        );
    }
}
