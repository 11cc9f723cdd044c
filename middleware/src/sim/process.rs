//! Driving the processes: starts, crashes, joins and leaves, the cores' inputs (frames,
//! ticks, multicasts) and carrying out their outputs, as the node actor does.

use super::coverage::Hit;
use super::service::{ServiceAction, ServiceFault, ServiceRecord, ServiceStart};
use super::world::Action;
use super::{Simulation, SIM_EDGE_LIMITS};
use crate::id::ProcessId;
use crate::proto::multicast::MulticastError;
use crate::proto::node::{NodeCore, NodeOutput};
use crate::proto::service_edge::{Admitted, EdgeOutput, ServiceEdge};
use crate::proto::TICK_INTERVAL;
use crate::shell::dispatch;
use crate::transport::memory::MemoryEndpoint;
use crate::view::Member;
use crate::wire::codec::FRAME_BYTES_MAX_DEFAULT;
use crate::wire::{BlockedReason, FrameCodec, FrameError, Ordering};
use bytes::BytesMut;
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::codec::Decoder;

impl Simulation {
    pub(super) fn start_node(&mut self, i: usize) {
        let seeds: Vec<SocketAddr> = self.nodes.iter().map(|n| n.addr).collect();
        let restart = self.nodes[i].incarnations > 0;
        self.nodes[i].incarnations += 1;
        let incarnation = self.choose_incarnation(i);
        if restart {
            self.coverage.hit(Hit::Restart);
            if self.network.borrow().has_cuts() {
                self.coverage.hit(Hit::RestartDuringPartition);
            }
        }
        let now = self.now;
        let clock_steps = self.config.world.clock_steps;
        let group = self.group.clone();
        let node = &mut self.nodes[i];
        let me = Member {
            id: ProcessId {
                node: node.node_id,
                incarnation,
            },
            addr: node.addr,
        };
        // A restarted process has a fresh codec: a new frame counter, an empty replay window.
        node.codec = FrameCodec::new(Some(self.key.clone()), FRAME_BYTES_MAX_DEFAULT);
        // Founding is explicit: node 1 is configured to bootstrap the group. A restarted
        // process never founds again once the group exists (as a node with a data directory
        // knows it was a member), or a restart during a partition would start a second group.
        let mut settings = self.config.settings;
        settings.membership.bootstrap = i == 0 && !self.group_formed;
        let core = NodeCore::new(me, seeds, settings);
        // The service registers before the node joins, so it sees the first view.
        node.edge = ServiceEdge::new(SIM_EDGE_LIMITS);
        let registered = node.edge.register(&core, group);
        debug_assert!(registered.is_empty(), "no view before joining");
        node.core = Some(core);
        let (disk, power_loss) = node
            .disk
            .take()
            .map_or((None, false), |(d, p)| (Some(d), p));
        node.service = self.config.service.make(ServiceStart {
            me,
            start: node.incarnations,
            disk,
            power_loss,
        });
        node.stamped = node.service.stamped();
        if node.service.available_while_blocked() {
            let core = node.core.as_mut().expect("just started");
            core.set_available_while_blocked(&self.group, true);
        }
        node.record = ServiceRecord::default();
        // A service that recovered a durable state asks its transfer for a delta from there,
        // as the node actor does when a durable service registers.
        if let Some(position) = node.service.position().filter(|p| *p > 0) {
            let core = node.core.as_mut().expect("just started");
            core.set_catch_up_from(&self.group, Some(position));
        }
        node.paused_until = None;
        node.service_paused = false;
        if node.next_tick >= super::NEVER {
            // Held back by a script until now.
            node.next_tick = now;
        }
        // The node actor's clock counts from its start.
        node.origin = if clock_steps {
            now
        } else {
            crate::proto::Time::ZERO
        };
        self.network.borrow_mut().restart(node.addr);
        self.log(format!("start {}", me.id));
        self.join(i);
        self.claim_recovery(i);
    }

    pub(super) fn join(&mut self, i: usize) {
        let now = self.local_now(i);
        let group = self.group.clone();
        let node = &mut self.nodes[i];
        let core = node.core.as_mut().expect("started");
        if let Ok(outputs) = core.handle_join(now, group) {
            node.in_group = true;
            self.execute(i, outputs);
        }
    }

    pub(super) fn crash(&mut self, i: usize) {
        self.crash_process(i, true);
    }

    /// Crashes node `i`'s process; what its service keeps on disk stays for the next start,
    /// having lost what it had not synced if `may_lose_power` and the seeded draw says so.
    fn crash_process(&mut self, i: usize, may_lose_power: bool) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let id = core.me().id;
        let before = self.latest_view();
        let view = core.view(&self.group).cloned();
        let held = view.is_some() && core.groups().all(|g| g.multicast().is_ready());
        self.coverage.hit(Hit::Crash);
        if let Some(view) = &view {
            if view.coordinator().id == id {
                self.coverage.hit(Hit::CrashCoordinator);
                let total = self.config.settings.multicast.ordering == Ordering::Total
                    || self.config.override_probability > 0.0;
                if total {
                    self.coverage.hit(Hit::CrashSequencer);
                }
            }
        }
        if self.observed.transferring(id) {
            self.coverage.hit(Hit::CrashDuringTransfer);
        }
        if let Some(disk) = self.nodes[i].service.crash() {
            let power_loss = may_lose_power
                && self
                    .aux_rng
                    .gen_bool(self.config.power_loss_probability.clamp(0.0, 1.0));
            if power_loss {
                self.clients_stats.power_losses += 1;
                self.log(format!(
                    "{id} loses power: its disk keeps only what it synced"
                ));
            }
            self.clients_stats.disks_kept += 1;
            self.nodes[i].disk = Some((disk, power_loss));
        }
        let node = &mut self.nodes[i];
        let core = node.core.take().expect("checked");
        // Multicasts parked in the process die with it, and so do its service's requests.
        node.record.actions.clear();
        node.edge = ServiceEdge::new(SIM_EDGE_LIMITS);
        node.paused_until = None;
        self.network.borrow_mut().crash(node.addr);
        self.count_core(&core);
        self.log(format!("crash {id}"));
        self.note_crash(id, before, held);
    }

    pub(super) fn leave(&mut self, i: usize) {
        let now = self.local_now(i);
        let group = self.group.clone();
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let id = core.me().id;
        if let Ok(outputs) = core.handle_leave(now, &group) {
            self.nodes[i].in_group = false;
            self.coverage.hit(Hit::Leave);
            self.log(format!("leave {id}"));
            self.execute(i, outputs);
        }
    }

    /// Adds a core's own counters to the coverage (when it crashes, and at the end).
    pub(super) fn count_core(&mut self, core: &NodeCore) {
        for g in core.groups() {
            let s = g.multicast().stats();
            self.coverage.add(Hit::Retransmitted, s.retransmitted);
            self.coverage.add(Hit::Duplicate, s.duplicates);
            self.coverage.add(Hit::OutboxFull, s.refused_full);
            self.coverage
                .add(Hit::SnapshotFailureTaken, s.snapshots_failed);
        }
        let fd = core.failure_detector();
        self.coverage.add(Hit::Suspicion, fd.suspicions());
        self.coverage
            .add(Hit::FalseSuspicion, fd.false_suspicions());
    }

    /// Carries out node `i`'s core outputs through its service edge, as the node actor does.
    pub(super) fn execute(&mut self, i: usize, outputs: Vec<NodeOutput>) {
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let work = match node.core.as_mut() {
            Some(core) => node.edge.absorb(core, now, outputs),
            None => outputs.into_iter().map(EdgeOutput::Node).collect(),
        };
        self.carry_out(i, work);
    }

    /// Carries out node `i`'s edge outputs: frames to the network, events to the service and
    /// the checkers, snapshots through the world's answer; then lets the edge pause or resume
    /// delivery for what the service reported handled.
    pub(super) fn carry_out(&mut self, i: usize, work: Vec<EdgeOutput<u64>>) {
        for output in &work {
            if let EdgeOutput::Node(
                NodeOutput::Send { envelope, .. }
                | NodeOutput::SendAll { envelope, .. }
                | NodeOutput::Reply { envelope, .. },
            ) = output
            {
                self.checker.observe_send(envelope);
                // Before the frames leave: a script may cut links first (joiners cut off
                // before the install reaches them).
                self.observe_send(envelope);
            }
        }
        let mut events = Vec::new();
        let node = &mut self.nodes[i];
        let process = node.core.as_ref().map(|c| c.me().id);
        dispatch(work, &node.codec, &mut node.endpoint, |e| events.push(e));
        let mut snapshots = Vec::new();
        let mut deltas = Vec::new();
        let mut flush = false;
        for event in events {
            match event {
                EdgeOutput::Service {
                    group,
                    event,
                    checkpoint,
                } => {
                    let process = process.expect("a live process has a service");
                    self.hand_to_service(i, process, event);
                    // A consuming service has handled it by now; a stopped one reports nothing.
                    let node = &mut self.nodes[i];
                    if let (Some(upto), false) = (checkpoint, node.service_paused) {
                        node.edge.handle_handled(&group, upto);
                    }
                }
                // Taken now, after the events before it, as a service actor takes it in
                // mailbox order.
                EdgeOutput::TakeSnapshot { view, .. } => {
                    let node = &mut self.nodes[i];
                    let state = node.service.snapshot_for(view);
                    let state = match node.stamped {
                        true => {
                            node.record.snapshot_ledger = Some((view, node.record.ledger.clone()));
                            node.record.ledger.wrap(state)
                        }
                        false => state,
                    };
                    snapshots.push((view, state));
                }
                // Made now, in mailbox order too; a stamped service's delta carries the ids of
                // the state it ends at (those of the snapshot for that view).
                EdgeOutput::TakeDelta { view, since, .. } => {
                    let node = &self.nodes[i];
                    let delta = node.service.delta(view, since);
                    let delta = match (node.stamped, &node.record.snapshot_ledger) {
                        (false, _) => delta,
                        (true, Some((at, ledger))) if *at == view => delta.map(|d| ledger.wrap(d)),
                        (true, _) => None,
                    };
                    deltas.push((view, since, delta));
                }
                EdgeOutput::Answer { token, result } => {
                    let process = process.expect("a live process parks multicasts");
                    self.answer_parked(i, process, token, result);
                }
                EdgeOutput::Flush => flush = true,
                EdgeOutput::Node(NodeOutput::ViewInstalled { group, change }) => {
                    let process = process.expect("a live process installs views");
                    self.nodes[i].last_views.insert(group, change.view.clone());
                    self.saw_install_recovering(i, process, &change.view);
                    self.group_formed = true;
                    self.checker.observe_install(process, &change.view);
                    self.log(format!("{process} installs {}", change.view));
                    self.observe_install(process, &change.view);
                }
                EdgeOutput::Node(NodeOutput::ViewAccepted { group, accepted }) => {
                    self.nodes[i].accepted_views.insert(group, accepted);
                }
                EdgeOutput::Node(NodeOutput::Excluded { by, .. }) => {
                    self.coverage.hit(Hit::Excluded);
                    self.log(format!("{} excluded by {by:?}", process.expect("live")));
                }
                EdgeOutput::Node(NodeOutput::Left { .. }) => {
                    let process = process.expect("live");
                    self.log(format!("{process} left"));
                    self.observe_left(i, process);
                }
                EdgeOutput::Node(NodeOutput::Suspected(p)) => {
                    self.log(format!("{} suspects {p}", process.expect("live")))
                }
                EdgeOutput::Node(_) => {}
            }
        }
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        if let Some(core) = node.core.as_mut() {
            let more = node.edge.refresh(core, now);
            if !more.is_empty() {
                self.carry_out(i, more);
            }
        }
        for (view, state) in snapshots {
            let Some(process) = process else {
                break;
            };
            let Some(answer) = self.answer_snapshot(i, process, view, state) else {
                continue;
            };
            let now = self.local_now(i);
            let group = self.group.clone();
            let node = &mut self.nodes[i];
            let Some(core) = node.core.as_mut() else {
                break;
            };
            let work = node.edge.handle_snapshot(core, now, &group, view, answer);
            self.carry_out(i, work);
        }
        for (view, since, delta) in deltas {
            if process.is_none() {
                break;
            }
            self.log(format!(
                "{} delta from {since} for {view}: {}",
                process.expect("checked"),
                match &delta {
                    Some(d) => format!("{} bytes", d.len()),
                    None => "none (the whole snapshot)".into(),
                }
            ));
            let now = self.local_now(i);
            let group = self.group.clone();
            let node = &mut self.nodes[i];
            let Some(core) = node.core.as_mut() else {
                break;
            };
            let work = node
                .edge
                .handle_delta(core, now, &group, view, since, delta);
            self.carry_out(i, work);
        }
        if flush {
            self.flush(i);
        }
        self.perform_actions(i);
    }

    /// A multicast of `process` accepted by its core: it must reach the group (the checkers
    /// hold it to that from now on).
    fn accepted(&mut self, process: ProcessId, id: u64) {
        self.deliveries.on_accepted(id);
        self.multicasts += 1;
        if self.quiet && self.now >= self.config.fault_time + std::time::Duration::from_secs(2) {
            self.quiet_multicasts.push((process, id));
        }
    }

    /// The answer to a multicast parked in `process`'s edge.
    fn answer_parked(
        &mut self,
        i: usize,
        process: ProcessId,
        id: u64,
        result: Result<(), MulticastError>,
    ) {
        match result {
            Ok(()) => self.accepted(process, id),
            Err(error) if self.nodes[i].stamped => self.fail_stop(
                i,
                format!("the node refused its multicast {id:#x}: {error}"),
            ),
            Err(error) => self.log(format!(
                "{process} parked multicast {id:#x} refused: {error}"
            )),
        }
    }

    /// Carries out what node `i`'s service asked for, in order, through the core and the
    /// edge as the service actor's shell does; then flushes, as the node actor does after a
    /// burst. Re-entrant calls (from the outputs carried out meanwhile) leave the queue to
    /// the outer one, so actions keep their order.
    pub(super) fn perform_actions(&mut self, i: usize) {
        if self.nodes[i].record.acting || self.nodes[i].record.actions.is_empty() {
            return;
        }
        self.nodes[i].record.acting = true;
        let mut sent = false;
        while let Some(action) = self.nodes[i].record.actions.pop_front() {
            if self.nodes[i].core.is_none() || self.nodes[i].record.stopped.is_some() {
                self.nodes[i].record.actions.clear();
                break;
            }
            sent = true;
            match action {
                ServiceAction::Multicast(payload) => self.service_multicast(i, payload),
                ServiceAction::Send { to, payload } => {
                    let now = self.local_now(i);
                    let group = self.group.clone();
                    let core = self.nodes[i].core.as_mut().expect("checked");
                    let me = core.me().id;
                    match core.handle_send_direct(now, &group, to, payload) {
                        Ok(outputs) => self.execute(i, outputs),
                        // Advisory, as in the replica shell: a lost one only delays an answer.
                        Err(error) => self.log(format!("{me} could not send to {to}: {error}")),
                    }
                }
                ServiceAction::Reply { to, outcome } => {
                    let core = self.nodes[i].core.as_ref().expect("checked");
                    let output = core.response(&self.group, to, outcome);
                    self.execute(i, vec![output]);
                }
            }
        }
        self.nodes[i].record.acting = false;
        if sent {
            self.flush(i);
        }
    }

    /// Names node `i`'s next multicast and tells the delivery checker of it, with what the
    /// sender had delivered of each stream; `None` while the node is down. The id names the
    /// node, its start (not its incarnation, which may be a clock reading) and the service's
    /// counter, which the caller advances once the multicast is accepted.
    fn announce_multicast(&mut self, i: usize, effective: Ordering) -> Option<(ProcessId, u64)> {
        let node = &self.nodes[i];
        let me = node.core.as_ref()?.me().id;
        let id = (me.node.0 << 48) | (node.incarnations << 32) | (node.record.counter + 1);
        let deps: Vec<(ProcessId, u64)> = node
            .record
            .last_counter
            .iter()
            .map(|(p, c)| (*p, *c))
            .collect();
        self.deliveries
            .on_multicast(id, me, effective, deps, node.record.view);
        Some((me, id))
    }

    /// A stamped service's multicast: the simulator's id in front of its payload, through the
    /// edge (parked if the outbox is full); refused, the process stops (fail-stop).
    fn service_multicast(&mut self, i: usize, payload: bytes::Bytes) {
        let now = self.local_now(i);
        let group = self.group.clone();
        let effective = self.config.settings.multicast.ordering;
        let Some((me, id)) = self.announce_multicast(i, effective) else {
            return;
        };
        let node = &mut self.nodes[i];
        let core = node.core.as_mut().expect("announced: the node is up");
        let mut stamped = Vec::with_capacity(8 + payload.len());
        stamped.extend_from_slice(&id.to_le_bytes());
        stamped.extend_from_slice(&payload);
        match node
            .edge
            .handle_multicast(core, now, &group, None, stamped.into(), || id)
        {
            Ok(Admitted::Now(work)) => {
                node.record.counter += 1;
                self.accepted(me, id);
                self.carry_out(i, work);
            }
            Ok(Admitted::Parked) => node.record.counter += 1,
            Err(error) => self.fail_stop(i, format!("the node refused its multicast: {error}")),
        }
    }

    /// Node `i`'s service stopped (fail-stop, as the replica shell stops its node): it handles
    /// nothing more, and its process crashes once the step at hand is done.
    pub(super) fn fail_stop(&mut self, i: usize, why: String) {
        let node = &mut self.nodes[i];
        let Some(process) = node.core.as_ref().map(|c| c.me().id) else {
            return;
        };
        if node.record.stopped.is_some() {
            return;
        }
        node.record.stopped = Some(why.clone());
        node.record.actions.clear();
        self.clients_stats.service_stops += 1;
        self.log(format!("{process} service stops (fail-stop): {why}"));
        self.stopping.push((i, process));
    }

    /// Crashes the processes whose services stopped, and restarts their nodes 0.5-2 s later
    /// (the operator, or a supervisor restarting `viewsync node`). Their disks stay as they
    /// were: the machine did not lose power.
    pub(super) fn stop_failed(&mut self) {
        for (i, process) in std::mem::take(&mut self.stopping) {
            if self.nodes[i].core.as_ref().map(|c| c.me().id) != Some(process) {
                continue;
            }
            self.crash_process(i, false);
            let at = self.now + Duration::from_millis(self.aux_rng.gen_range(500..2000));
            self.agenda.at(at, Action::Restart { node: i });
        }
    }

    /// Node `i`'s service's periodic tick, with the process's clock.
    fn tick_service(&mut self, i: usize) {
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        if node.core.is_none() || node.record.stopped.is_some() {
            return;
        }
        match node.service.tick(now) {
            Ok(actions) => {
                if actions.is_empty() {
                    return;
                }
                node.record.actions.extend(actions);
                self.perform_actions(i);
            }
            Err(ServiceFault::Failed(why)) => self.fail_stop(i, why),
            Err(fault) => {
                let process = node.core.as_ref().expect("checked").me().id;
                self.checker_violation("service", format!("{process} tick: {fault:?}"));
            }
        }
    }

    /// Node `i`'s service may multicast a fresh id.
    fn maybe_multicast(&mut self, i: usize) {
        if self.nodes[i].stamped {
            // It makes its own payloads: the simulator asks it for none.
            return;
        }
        let end = self.config.fault_time + self.config.quiet_time;
        // Traffic stops a while before the end, so everything sent can arrive.
        if self.now + Duration::from_secs(6) > end
            || !self.nodes[i].in_group
            || !self.rng.gen_bool(self.config.send_probability)
        {
            return;
        }
        let ordering = if self.rng.gen_bool(self.config.override_probability) {
            Some([Ordering::Fifo, Ordering::Causal, Ordering::Total][self.rng.gen_range(0..3)])
        } else {
            None
        };
        let now = self.local_now(i);
        let group = self.group.clone();
        let effective = ordering.unwrap_or(self.config.settings.multicast.ordering);
        let Some((me, id)) = self.announce_multicast(i, effective) else {
            return;
        };
        let node = &mut self.nodes[i];
        let core = node.core.as_mut().expect("announced: the node is up");
        let payload = node.service.request(id);
        match node
            .edge
            .handle_multicast(core, now, &group, ordering, payload, || id)
        {
            Ok(Admitted::Now(work)) => {
                node.record.counter += 1;
                self.accepted(me, id);
                self.carry_out(i, work);
                self.flush(i);
            }
            // Its answer comes when the outbox takes it (or the process dies first).
            Ok(Admitted::Parked) => node.record.counter += 1,
            Err(_) => {}
        }
    }

    /// What the shell does after a burst of inputs: send what the cores queued.
    /// Then retry parked multicasts, as the node actor does after its flush.
    pub(super) fn flush(&mut self, i: usize) {
        let now = self.local_now(i);
        if let Some(core) = self.nodes[i].core.as_mut() {
            let outputs = core.handle_flush(now);
            self.execute(i, outputs);
        }
        self.retry_parked(i);
    }

    /// Retries node `i`'s parked multicasts (after each tick and flush, as the actor does).
    fn retry_parked(&mut self, i: usize) {
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        if node.edge.parked() == 0 {
            return;
        }
        let work = node.edge.retry_parked(core, now);
        self.carry_out(i, work);
    }

    pub(super) fn deliver_one(&mut self) {
        let Some(datagram) = self.network.borrow_mut().pop_due(self.now) else {
            return;
        };
        let Some(i) = self.nodes.iter().position(|n| n.addr == datagram.to) else {
            return self.client_receive(datagram);
        };
        if self.nodes[i].core.is_none() {
            return;
        }
        let mut bytes = BytesMut::from(&datagram.frame[..]);
        let mut decoder = self.nodes[i].codec.decoder();
        let envelope = match decoder.decode(&mut bytes) {
            Ok(Some(envelope)) => envelope,
            // The network's duplicates are refused by the replay window, as a replayed frame
            // on a real connection would be.
            // Frames of a crashed incarnation still in flight after its restart are refused
            // as stale, like data from a killed process's socket arriving late.
            Err(FrameError::StaleIncarnation { .. }) => {
                self.coverage.hit(Hit::FrameStale);
                return;
            }
            // A frame delayed past the sender's replay window is refused, like a real
            // connection's frame arriving that late; the protocols retransmit what matters.
            Err(FrameError::TooOld { .. }) => {
                self.coverage.hit(Hit::FrameTooOld);
                return;
            }
            Err(FrameError::Replayed { .. }) => {
                self.replays_refused += 1;
                return;
            }
            other => {
                let detail = format!(
                    "frame from {} to {} refused: {other:?}",
                    datagram.from, datagram.to
                );
                self.checker_violation("frame integrity", detail);
                return;
            }
        };
        let connection = MemoryEndpoint::connection_of(datagram.from);
        let now = self.local_now(i);
        let outputs = self.nodes[i]
            .core
            .as_mut()
            .expect("checked")
            .handle_envelope(now, envelope, connection);
        self.execute(i, outputs);
        self.flush(i);
    }

    pub(super) fn tick_due_node(&mut self) {
        if let Some(at) = self.config.dump_at {
            if self.now >= at && !self.dumped {
                self.dumped = true;
                for line in self.describe_cores("DUMP ") {
                    self.log(line);
                }
            }
        }
        let i = (0..self.nodes.len())
            .min_by_key(|&i| self.nodes[i].next_tick)
            .expect("nodes");
        if let Some(until) = self.nodes[i].paused_until.filter(|t| *t > self.now) {
            // Stopped: the resume brings the next tick.
            self.nodes[i].next_tick = until;
            return;
        }
        let jitter = Duration::from_micros(self.rng.gen_range(0..2000));
        self.nodes[i].next_tick = self.now + TICK_INTERVAL + jitter;
        if self.nodes[i].core.is_none() {
            if self.nodes[i].incarnations == 0 {
                self.start_node(i);
            }
            return;
        }
        if self.quiet && !self.nodes[i].in_group {
            // A leave that was still under way when the faults stopped: join once it is done.
            self.join(i);
        }
        let now = self.local_now(i);
        let outputs = self.nodes[i].core.as_mut().expect("live").handle_tick(now);
        self.execute(i, outputs);
        self.retry_parked(i);
        self.observe_blocked(i);
        self.tick_service(i);
        self.maybe_multicast(i);
    }

    /// Notes the views node `i` reports being blocked in, and on what.
    fn observe_blocked(&mut self, i: usize) {
        let now = self.local_now(i);
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        for g in core.groups() {
            if let Some(blocked) = g.blocked(now) {
                if let Some(view) = blocked.view {
                    match blocked.reason {
                        BlockedReason::NoMajority { .. } => {
                            self.observed.blocked_no_majority.insert(view);
                        }
                        BlockedReason::NoStateHolder => {
                            self.observed.blocked_no_holder.insert(view);
                        }
                        BlockedReason::NoSeedAnswered | BlockedReason::AwaitingLastView { .. } => {}
                    }
                }
            }
        }
    }
}
