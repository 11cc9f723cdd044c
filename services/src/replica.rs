//! The replica manager actor: the thin shell that runs a replication core
//! ([`crate::replication::ReplicaCore`]) on a node.
//!
//! It hands the core every event of its group in order (client requests included), carries
//! out the core's actions (multicasts in order, point-to-point messages, answers to
//! clients), takes snapshots for joiners from the core (and deltas, for a restarted member
//! catching up from its recovered position), and ticks the core every
//! [`TICK_INTERVAL`] (group commit). Everything the strategy decides is in the core, which the
//! simulator runs too.
//!
//! **Fail-stop.** When the core's storage fails, or the node refuses one of the core's
//! multicasts (which its bounds are chosen to make impossible: a primary holds at most
//! `pending_max` requests, fewer than the node parks), the replica cannot go on safely: its
//! state may no longer match what the group delivers. It logs why, stops the node (to the
//! others it looks like a crash, and the group goes on without it) and, in `viewsync node`,
//! the process exits with [`EXIT_REPLICA_FAILED`]. Restarted, it recovers from its data directory and rejoins.

use crate::replication::{Action, ReplicaCore, StoreError, TICK_INTERVAL};
use actix::prelude::*;
use std::time::Instant;
use viewsync::runtime::{NodeHandle, QueryServiceStatus, ServiceEvent, TakeDelta, TakeSnapshot};
use viewsync::wire::status::ServiceState;
use viewsync::GroupName;

/// The exit code of a `viewsync node` whose replica stopped because it could not go on
/// safely (its storage failed).
pub const EXIT_REPLICA_FAILED: u8 = 4;

/// The replica manager of one group on one node.
pub struct ReplicaService {
    group: GroupName,
    node: NodeHandle,
    core: Box<dyn ReplicaCore>,
    origin: Instant,
    /// A [`SyncNow`] is queued or scheduled (group commit).
    sync_queued: bool,
    /// When the last sync ended and how long it took: the next may start
    /// [`SYNC_GAP_FACTOR`] times that duration later (see [`Self::schedule_sync`]).
    last_sync: Option<(Instant, std::time::Duration)>,
    /// Prints the replica's event lines (views, restores, failures).
    print: Box<dyn FnMut(String)>,
    /// Set when the replica stopped (fail-stop): nothing more is handled.
    failed: bool,
    /// Whether failing also exits the process (`viewsync node`) or only stops the node (a
    /// replica embedded in an application, or a test).
    exit_on_failure: bool,
    /// The position of the durable state recovered, for a replica with a data directory.
    durable_position: Option<u64>,
    /// What `viewsync status` shows of it: its strategy's name and its data directory.
    report: Option<(String, Option<std::path::PathBuf>)>,
}

impl ReplicaService {
    /// A replica manager running `core` for `group` on `node`.
    pub fn new(
        group: GroupName,
        node: NodeHandle,
        core: Box<dyn ReplicaCore>,
        print: impl FnMut(String) + 'static,
    ) -> Self {
        ReplicaService {
            group,
            node,
            core,
            origin: Instant::now(),
            sync_queued: false,
            last_sync: None,
            print: Box::new(print),
            failed: false,
            exit_on_failure: false,
            durable_position: None,
            report: None,
        }
    }

    /// Makes the replica report itself to `viewsync status` and the metrics, as running
    /// `strategy` with its files in `dir`: its position, its log's records, the size of
    /// `dir`.
    pub fn reporting(mut self, strategy: &str, dir: Option<std::path::PathBuf>) -> Self {
        self.report = Some((strategy.to_string(), dir));
        self
    }

    /// Marks the replica's state as durable, recovered up to `position`: registered so, the
    /// node may re-form the group from it after a total failure (see
    /// `NodeHandle::register_durable_service`).
    pub fn durable(mut self, position: u64) -> Self {
        self.durable_position = Some(position);
        self
    }

    /// Makes a failure exit the process with [`EXIT_REPLICA_FAILED`] (as a crash would,
    /// leaving the data directory to recover from) instead of only stopping the node.
    pub fn exit_on_failure(mut self) -> Self {
        self.exit_on_failure = true;
        self
    }

    /// Starts the replica manager and registers it with its node (before the node joins the
    /// group, so it sees the group's first view).
    pub async fn register(self) -> Result<Addr<ReplicaService>, viewsync::error::NodeError> {
        let node = self.node.clone();
        let group = self.group.clone();
        let durable = self.durable_position;
        let available = self.core.available_while_blocked();
        let report = self.report.as_ref().map(|(strategy, _)| strategy.clone());
        let addr = Actor::start(self);
        if let Some(strategy) = report {
            node.report_service_status(group.clone(), strategy, Some(addr.clone().recipient()))
                .await?;
        }
        if available {
            node.set_available_while_blocked(group.clone()).await?;
        }
        match durable {
            Some(position) => {
                node.register_durable_service(group, addr.clone(), position)
                    .await?
            }
            None => node.register_service(group, addr.clone()).await?,
        }
        Ok(addr)
    }

    fn carry_out(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Multicast(payload) => {
                    // Queued now, in order; only the answer is awaited.
                    let accepted = self
                        .node
                        .multicast_enqueued(self.group.clone(), None, payload);
                    let me = ctx.address();
                    actix::spawn(async move {
                        if let Err(error) = accepted.await {
                            me.do_send(Failed(format!(
                                "the node refused the replica's multicast ({error}): its \
                                 speculative state can no longer match the group's"
                            )));
                        }
                    });
                }
                Action::Send { to, payload } => {
                    let (node, group) = (self.node.clone(), self.group.clone());
                    actix::spawn(async move {
                        let send = node.send_to(group, to, payload);
                        // Point-to-point messages are advisory (durability reports are sent
                        // again at the next sync); a lost one only delays an answer.
                        if let Err(error) = send.await {
                            tracing::debug!(%error, "replica message not sent");
                        }
                    });
                }
                Action::Reply { to, outcome } => {
                    self.node.reply(self.group.clone(), to, outcome);
                }
            }
        }
    }

    fn fail(&mut self, why: String) {
        if self.failed {
            return;
        }
        self.failed = true;
        tracing::error!(group = %self.group, %why, "replica stopped: it cannot go on safely");
        (self.print)(format!(
            "replica-failed group={} reason={why:?}",
            self.group
        ));
        self.node.crash();
        if self.exit_on_failure {
            std::process::exit(i32::from(EXIT_REPLICA_FAILED));
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let syncs = self.core.needs_sync();
        let started = Instant::now();
        let result = self.core.tick(self.origin.elapsed());
        if syncs {
            let ended = Instant::now();
            self.last_sync = Some((ended, ended - started));
        }
        self.outcome(result, ctx);
    }

    /// Group commit without a fixed wait: records appended while the log is idle are synced
    /// once the events already in the mailbox are handled (actix polls a notified message
    /// after draining the mailbox), so a lone request does not wait for the next tick. Under
    /// load (the first append after a sync comes sooner than that sync took) syncs are spaced
    /// by [`SYNC_GAP_FACTOR`] times the last one's duration, so the
    /// single thread that also runs the node spends at most about a fifth of its time in
    /// fsync, each sync covering everything appended meanwhile; the tick is the backstop.
    fn schedule_sync(&mut self, ctx: &mut Context<Self>) {
        if self.failed || self.sync_queued || !self.core.needs_sync() {
            return;
        }
        self.sync_queued = true;
        // The first append after a sync schedules the next one. Arriving later than the last
        // sync took means the log was idle (a lone client's next request): sync at once.
        // Arriving sooner means requests keep coming: wait out the gap, so one sync covers
        // them all.
        let now = Instant::now();
        let earliest = self.last_sync.and_then(|(ended, took)| {
            let idle = now.saturating_duration_since(ended);
            (idle < took).then_some(ended + took * SYNC_GAP_FACTOR)
        });
        match earliest.and_then(|at| at.checked_duration_since(now)) {
            Some(wait) if !wait.is_zero() => {
                ctx.notify_later(SyncNow, wait);
            }
            _ => ctx.notify(SyncNow),
        }
    }

    fn outcome(&mut self, result: Result<Vec<Action>, StoreError>, ctx: &mut Context<Self>) {
        match result {
            Ok(actions) => self.carry_out(actions, ctx),
            Err(error) => self.fail(error.to_string()),
        }
    }
}

impl Actor for ReplicaService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Events are the group's agreed order and must not be dropped (the node pauses
        // delivery itself while this mailbox is far behind).
        ctx.set_mailbox_capacity(usize::MAX);
        ctx.run_interval(TICK_INTERVAL, |replica, ctx| {
            if replica.failed {
                return;
            }
            replica.tick(ctx);
        });
    }
}

impl Handler<ServiceEvent> for ReplicaService {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, ctx: &mut Self::Context) {
        if self.failed {
            return;
        }
        match &event {
            ServiceEvent::ViewChange { group, change } => (self.print)(format!(
                "replica-view group={group} epoch={} primary={} members={}",
                change.view.id.epoch,
                change.view.coordinator().id.node,
                change
                    .view
                    .members
                    .iter()
                    .map(|m| m.id.node.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )),
            ServiceEvent::Restore {
                group,
                view,
                state,
                since,
            } => (self.print)(format!(
                "replica-restore group={group} epoch={} bytes={} delta_from={}",
                view.epoch,
                state.len(),
                since.map_or_else(|| "none".to_string(), |p| p.to_string())
            )),
            _ => {}
        }
        let result = self.core.handle(&event);
        if let (ServiceEvent::Restore { since, .. }, Ok(_)) = (&event, &result) {
            let position = self.core.position().unwrap_or(0);
            match since {
                Some(since) => tracing::info!(
                    group = %self.group,
                    "replica caught up from position {since} to {position} by a delta of {} records",
                    position.saturating_sub(*since)
                ),
                None => tracing::info!(
                    group = %self.group,
                    "replica restored a full snapshot at {position}"
                ),
            }
        }
        self.outcome(result, ctx);
        // Per-record fsync has synced already; otherwise group commit.
        self.schedule_sync(ctx);
    }
}

impl Handler<TakeSnapshot> for ReplicaService {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.core.snapshot_for(msg.view))
    }
}

impl Handler<TakeDelta> for ReplicaService {
    type Result = MessageResult<TakeDelta>;

    /// The core's delta; none once this replica has failed (its state is not to be trusted).
    fn handle(&mut self, msg: TakeDelta, _ctx: &mut Self::Context) -> Self::Result {
        if self.failed {
            return MessageResult(None);
        }
        let delta = self.core.delta(msg.view, msg.since);
        match &delta {
            Some(bytes) => {
                tracing::info!(group = %self.group, since = msg.since, view = %msg.view, bytes = bytes.len(), "serving a joiner a delta from its position")
            }
            None => {
                tracing::info!(group = %self.group, since = msg.since, view = %msg.view, "no delta from the joiner's position (its records are no longer held): the whole snapshot")
            }
        }
        MessageResult(delta)
    }
}

/// Syncs are spaced by at least this many times the last sync's duration (group commit).
const SYNC_GAP_FACTOR: u32 = 4;

/// Sync the log now: queued by an event that appended records (group commit).
#[derive(Message)]
#[rtype(result = "()")]
struct SyncNow;

impl Handler<SyncNow> for ReplicaService {
    type Result = ();

    fn handle(&mut self, _msg: SyncNow, ctx: &mut Self::Context) {
        self.sync_queued = false;
        if !self.failed && self.core.needs_sync() {
            self.tick(ctx);
        }
    }
}

/// The replica cannot go on (see the module documentation).
#[derive(Message)]
#[rtype(result = "()")]
struct Failed(String);

impl Handler<Failed> for ReplicaService {
    type Result = ();

    fn handle(&mut self, msg: Failed, _ctx: &mut Self::Context) {
        self.fail(msg.0);
    }
}

impl Handler<QueryServiceStatus> for ReplicaService {
    type Result = MessageResult<QueryServiceStatus>;

    fn handle(&mut self, _msg: QueryServiceStatus, _ctx: &mut Self::Context) -> Self::Result {
        let (strategy, dir) = self.report.clone().unwrap_or_default();
        MessageResult(ServiceState {
            strategy,
            applied: self.core.position(),
            log_records: self.core.log_records(),
            data_dir_bytes: dir.as_deref().map(directory_bytes),
            data_dir: dir.map(|d| d.display().to_string()),
        })
    }
}

/// Bytes of the files in `dir` and its subdirectories (0 if it cannot be read).
pub fn directory_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => directory_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}
