//! The simulated replicated service: its state is the set of ids it delivered (or restored)
//! and a hash chain of its total-order deliveries, streamed in chunks to joiners.

use super::delivery_checker::{self, mix, StateDigest};
use super::Simulation;
use crate::id::{ProcessId, ViewId};
use crate::proto::multicast::MulticastOutput;
use crate::wire::Ordering;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Default)]
pub(super) struct SimService {
    pub(super) delivered: BTreeSet<u64>,
    pub(super) total_chain: u64,
    pub(super) view: Option<ViewId>,
    /// Per sender, the highest counter delivered in the current view.
    pub(super) last_counter: BTreeMap<ProcessId, u64>,
    pub(super) counter: u64,
}

impl SimService {
    pub(super) fn digest(&self) -> StateDigest {
        StateDigest {
            count: self.delivered.len() as u64,
            set_hash: self.delivered.iter().fold(0, |h, id| h ^ mix(*id)),
            total_chain: self.total_chain,
        }
    }

    pub(super) fn snapshot(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(8 * (self.delivered.len() + 1));
        bytes.extend_from_slice(&self.total_chain.to_le_bytes());
        for id in &self.delivered {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        Bytes::from(bytes)
    }

    /// Restores a snapshot; `false` if it is malformed. An empty state is malformed: every
    /// snapshot holds at least the chain, so an empty one means the group's state was
    /// replaced by nothing.
    fn restore(&mut self, state: &[u8]) -> bool {
        if state.is_empty() || state.len() % 8 != 0 {
            return false;
        }
        let mut words = state
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
        self.total_chain = words.next().expect("not empty");
        self.delivered = words.collect();
        true
    }
}

impl Simulation {
    /// Applies a multicast event to node `i`'s service; returns a snapshot it was asked for
    /// (taken now, after the deliveries before it, as a service actor takes it in mailbox
    /// order).
    pub(super) fn hand_to_service(
        &mut self,
        i: usize,
        process: ProcessId,
        event: MulticastOutput,
    ) -> Option<(ViewId, Bytes)> {
        let service = &mut self.nodes[i].service;
        match event {
            MulticastOutput::Deliver(message) => {
                let id = match message.payload.get(..8) {
                    Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("8 bytes")),
                    None => 0,
                };
                let fresh = service.delivered.insert(id);
                if message.ordering == Ordering::Total {
                    service.total_chain = mix(service.total_chain ^ id);
                }
                service
                    .last_counter
                    .insert(message.sender, delivery_checker::counter_of(id));
                self.deliveries.on_deliver(process, id, &message);
                if self.config.trace_deliveries {
                    self.log(format!(
                        "{process} delivers {id:#x} ({}, {} seq {} of {})",
                        message.ordering, message.view, message.seq, message.sender
                    ));
                }
                if !fresh {
                    self.checker_violation(
                        "no duplication",
                        format!("{process} delivered {id:#x}, already in its state"),
                    );
                }
            }
            MulticastOutput::View(change) => {
                service.view = Some(change.view.id);
                service.last_counter.clear();
                let digest = service.digest();
                self.log(format!("{process} service enters {}", change.view));
                self.deliveries.on_view(process, change.view.id, digest);
            }
            MulticastOutput::Restore { view, state } => {
                let restored = service.restore(&state);
                service.view = None;
                if !restored {
                    let what = if state.is_empty() {
                        "an empty state (the group's state replaced by nothing)".to_string()
                    } else {
                        format!("a malformed state of {} bytes", state.len())
                    };
                    self.checker_violation("state transfer", format!("{process} got {what}"));
                }
                self.log(format!(
                    "{process} restores {} bytes for {view}",
                    state.len()
                ));
                self.observe_restore(process, view);
                let restored_ids = self.nodes[i].service.delivered.iter().copied();
                self.deliveries
                    .on_restore(process, state.len(), restored_ids);
            }
            MulticastOutput::SnapshotWanted(view) => return Some((view, service.snapshot())),
            MulticastOutput::Block | MulticastOutput::Direct { .. } => {}
            MulticastOutput::Send { .. } | MulticastOutput::SendAll { .. } => {}
        }
        None
    }
}
