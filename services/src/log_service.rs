//! The log service: the simplest replicated service, used by `viewsync node` and the demo.
//!
//! It prints every event its group delivers, one `key=value` line each (see
//! [`crate::report`]), and its state is the number of multicasts delivered and a hash chain
//! over them in delivery order: under total order every member holds the same chain, and a
//! joiner receives it by state transfer. A [`SendPlan`] makes it multicast numbered messages.

use crate::report::{DeliverLine, RestoreLine, ServiceViewLine};
use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use viewsync::runtime::{NodeHandle, ServiceEvent, TakeSnapshot};
use viewsync::GroupName;

/// What the service multicasts once it is in a view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendPlan {
    /// How many messages (0: none).
    pub count: u64,
    /// Messages per second (0: as fast as flow control allows).
    pub rate: u64,
    /// Payload size in bytes (at least the text `<node>-<k>`).
    pub size: usize,
}

/// The service's replicated state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogState {
    /// Multicasts delivered since the group began.
    pub delivered: u64,
    /// FNV-1a chain over the delivered payloads, in delivery order.
    pub chain: u64,
}

impl LogState {
    fn apply(&mut self, payload: &[u8]) {
        self.delivered += 1;
        let mut hash = self.chain ^ 0xcbf2_9ce4_8422_2325;
        for byte in payload {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.chain = hash;
    }

    fn encode(&self) -> Bytes {
        let mut bytes = Vec::with_capacity(16);
        bytes.extend_from_slice(&self.delivered.to_le_bytes());
        bytes.extend_from_slice(&self.chain.to_le_bytes());
        Bytes::from(bytes)
    }

    fn decode(bytes: &[u8]) -> Self {
        let word = |i: usize| {
            bytes
                .get(i * 8..i * 8 + 8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        LogState {
            delivered: word(0),
            chain: word(1),
        }
    }
}

/// The log service actor.
pub struct LogService {
    group: GroupName,
    state: LogState,
    print: Box<dyn FnMut(String)>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
    /// To refuse client requests (set by [`LogService::start`]).
    node: Option<NodeHandle>,
}

impl LogService {
    /// A log service for `group` that hands each line to `print`.
    pub fn new(group: GroupName, print: impl FnMut(String) + 'static) -> Self {
        LogService {
            group,
            state: LogState::default(),
            print: Box::new(print),
            ready: None,
            node: None,
        }
    }

    /// Registers a new log service with `node` for `group`, and starts multicasting per
    /// `plan` once the service is in a view. Register before joining the group.
    pub async fn start(
        node: &NodeHandle,
        group: GroupName,
        plan: SendPlan,
        print: impl FnMut(String) + 'static,
    ) -> Result<Addr<LogService>, viewsync::error::NodeError> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut service = LogService::new(group.clone(), print);
        service.ready = Some(ready_tx);
        service.node = Some(node.clone());
        let addr = service.start();
        node.register_service(group.clone(), addr.clone()).await?;
        node.report_service_status(group.clone(), "log", None)
            .await?;
        if plan.count > 0 {
            let node = node.clone();
            actix::spawn(async move {
                if ready_rx.await.is_ok() {
                    send_plan(node, group, plan).await;
                }
            });
        }
        Ok(addr)
    }
}

/// Multicasts `plan.count` numbered messages, waiting for credit as flow control asks.
async fn send_plan(node: NodeHandle, group: GroupName, plan: SendPlan) {
    let me = node.me().id.node;
    let interval = (plan.rate > 0).then(|| Duration::from_secs_f64(1.0 / plan.rate as f64));
    let start = tokio::time::Instant::now();
    for k in 1..=plan.count {
        let mut text = format!("{me}-{k}").into_bytes();
        if text.len() < plan.size {
            text.resize(plan.size, b'.');
        }
        let payload = Bytes::from(text);
        // Message k is retried until accepted, so the numbering has no gaps.
        loop {
            match node.multicast(group.clone(), payload.clone()).await {
                Ok(()) => break,
                Err(viewsync::error::NodeError::Multicast(error)) => {
                    tracing::warn!(%error, k, "multicast refused; retrying");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(_) => return,
            }
        }
        if let Some(interval) = interval {
            tokio::time::sleep_until(start + interval * k as u32).await;
        }
    }
}

impl Actor for LogService {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Deliveries are the group's agreed order; a burst must not be lost to a full mailbox
        // (the node also holds back deliveries while this mailbox is far behind).
        ctx.set_mailbox_capacity(usize::MAX);
    }
}

fn node_ids(members: &[viewsync::Member]) -> Vec<u64> {
    members.iter().map(|m| m.id.node.0).collect()
}

impl Handler<ServiceEvent> for LogService {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Self::Context) {
        let line = match event {
            ServiceEvent::Request(request) => {
                // The log service multicasts what `viewsync send` hands it; it serves no
                // requests, and says so instead of leaving the client waiting.
                if let Some(node) = &self.node {
                    node.reply(
                        request.group.clone(),
                        request.reply,
                        Err(viewsync::wire::Refusal::Malformed(
                            "the log service takes no client requests (use `viewsync send`)".into(),
                        )),
                    );
                }
                format!(
                    "request group={} from={} refused",
                    request.group, request.reply.client
                )
            }
            ServiceEvent::Deliver { message, .. } => {
                self.state.apply(&message.payload);
                let text = String::from_utf8_lossy(&message.payload);
                let text = text.trim_end_matches('.');
                DeliverLine {
                    group: self.group.to_string(),
                    epoch: message.view.epoch,
                    coordinator: message.view.coordinator.node.0,
                    sender: message.sender.node.0,
                    seq: message.seq.0,
                    ordering: message.ordering.to_string(),
                    n: self.state.delivered,
                    payload: text.chars().take(64).collect(),
                }
                .to_string()
            }
            ServiceEvent::Block { group } => format!("block group={group}"),
            ServiceEvent::ViewChange { group, change } => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(());
                }
                ServiceViewLine {
                    group: group.to_string(),
                    epoch: change.view.id.epoch,
                    coordinator: change.view.id.coordinator.node.0,
                    members: node_ids(&change.view.members),
                    learners: node_ids(change.view.learners()),
                    delivered: self.state.delivered,
                    chain: format!("{:016x}", self.state.chain),
                }
                .to_string()
            }
            // Registered without a position, it is never handed a delta.
            ServiceEvent::Restore {
                group, view, state, ..
            } => {
                self.state = LogState::decode(&state);
                RestoreLine {
                    group: group.to_string(),
                    epoch: view.epoch,
                    bytes: state.len() as u64,
                    delivered: self.state.delivered,
                    chain: format!("{:016x}", self.state.chain),
                }
                .to_string()
            }
            ServiceEvent::Direct {
                group,
                from,
                payload,
            } => format!(
                "direct group={group} from={} payload={}",
                from.node,
                String::from_utf8_lossy(&payload)
            ),
        };
        (self.print)(line);
    }
}

impl Handler<TakeSnapshot> for LogService {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _msg: TakeSnapshot, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.encode())
    }
}
