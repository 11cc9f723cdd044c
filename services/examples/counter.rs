//! `counter`: the smallest replicated service written against the service actor API
//! (`viewsync::runtime::service`). Copy this file to start a service of your own.
//!
//! The service is a counter. A member adds to it by multicasting an increment to the group;
//! every member applies every increment it is delivered, in the group's total order, so all
//! members hold the same count. A member that joins later receives the count by state
//! transfer (the service's snapshot) and then the increments that follow.
//!
//! The example starts two members over loopback TCP in this process, makes each add, starts a
//! third member (which gets the count by state transfer) that adds too, and checks that all
//! three end with the same count: the sum of every increment. Exit code 0 when they agree.
//!
//! ```sh
//! cargo run --release --example counter
//! ```

use actix::prelude::*;
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::watch;
use viewsync::config::NodeConfig;
use viewsync::runtime::{Node, NodeHandle, ServiceEvent, TakeSnapshot};
use viewsync::GroupName;

/// The replicated state and the actor that holds it. One per member.
struct Counter {
    /// The state: the sum of every increment delivered (or restored) so far.
    count: u64,
    /// Which member this is, for the printed lines.
    name: String,
    /// Publishes (whether this member is in a view yet, the count) after every event, for
    /// `main` to watch: a member multicasts only once it is in a view.
    published: watch::Sender<(bool, u64)>,
    in_view: bool,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

/// What the group hands the service, in the same order at every member.
impl Handler<ServiceEvent> for Counter {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
        match event {
            // A multicast of any member (this one's too), in the agreed order. Apply it.
            ServiceEvent::Deliver { message, .. } => {
                let increment = decode(&message.payload);
                self.count += increment;
                println!("[{}] +{increment} -> {}", self.name, self.count);
            }
            // A joiner's first event: the state of a member at the start of its first view.
            // (`since` is for services with durable state; this one keeps none.)
            ServiceEvent::Restore { state, .. } => {
                self.count = decode(&state);
                println!("[{}] state transfer: count {}", self.name, self.count);
            }
            // A new view: members joined, left or were excluded. Deliveries before it were
            // delivered at every member that moves to it (view synchrony).
            ServiceEvent::ViewChange { change, .. } => {
                println!("[{}] view {}", self.name, change.view);
                self.in_view = true;
            }
            // The group is blocked (no majority, a view change in progress): nothing to do
            // here. A service answering clients (`Request`) replies through
            // `NodeHandle::reply`; `Direct` is a point-to-point message. Neither is used.
            ServiceEvent::Block { .. } | ServiceEvent::Request(_) | ServiceEvent::Direct { .. } => {
            }
        }
        let _ = self.published.send((self.in_view, self.count));
    }
}

/// The node asks for the state to hand to members joining. It arrives between two
/// deliveries, so the snapshot is exactly the state after the last one.
impl Handler<TakeSnapshot> for Counter {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(encode(self.count))
    }
}

fn encode(value: u64) -> Bytes {
    Bytes::copy_from_slice(&value.to_le_bytes())
}

fn decode(bytes: &[u8]) -> u64 {
    // Every payload of this group is 8 bytes (only this service sends to it).
    u64::from_le_bytes(bytes.try_into().expect("an 8-byte counter value"))
}

/// Starts member `id`: a node (founding the group when it has no seeds), the service
/// registered with it *before* it joins (so the service sees its first view), then the join;
/// returns once the member is in a view (multicasts are refused before).
async fn start_member(
    id: u64,
    seeds: Vec<std::net::SocketAddr>,
    group: &GroupName,
) -> Result<(NodeHandle, watch::Receiver<(bool, u64)>), Box<dyn std::error::Error>> {
    let config = NodeConfig::builder(id)
        .bootstrap(seeds.is_empty())
        .seeds(seeds)
        .build()?;
    let node = Node::spawn(config).await?;
    let (published, mut state) = watch::channel((false, 0));
    let counter = Counter {
        count: 0,
        name: format!("member {id}"),
        published,
        in_view: false,
    }
    .start();
    node.register_service(group.clone(), counter).await?;
    node.join(group.clone()).await?;
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|(in_view, _)| *in_view),
    )
    .await
    .map_err(|_| format!("member {id} is in no view after 20 s"))??;
    Ok((node, state))
}

/// Waits until every member's count is `expected`, for at most 20 seconds.
async fn agree(counts: &mut [watch::Receiver<(bool, u64)>], expected: u64) -> bool {
    let all = async {
        for count in counts.iter_mut() {
            if count.wait_for(|(_, c)| *c == expected).await.is_err() {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(Duration::from_secs(20), all)
        .await
        .unwrap_or(false)
}

fn main() -> std::process::ExitCode {
    let result = actix::System::new().block_on(async {
        let group = GroupName::new("counter")?;
        let (first, count1) = start_member(1, vec![], &group).await?;
        let (second, count2) = start_member(2, vec![first.me().addr], &group).await?;
        let mut counts = vec![count1, count2];
        for increment in 1..=5u64 {
            first.multicast(group.clone(), encode(increment)).await?;
            second
                .multicast(group.clone(), encode(increment * 10))
                .await?;
        }
        let mut expected = (1..=5).map(|i| i + i * 10).sum::<u64>();
        if !agree(&mut counts, expected).await {
            return Err(format!("members 1 and 2 did not both reach {expected}").into());
        }
        println!("[main] members 1 and 2 both count {expected}; member 3 joins");
        let (third, count3) = start_member(3, vec![first.me().addr], &group).await?;
        counts.push(count3);
        for increment in [100, 200] {
            third.multicast(group.clone(), encode(increment)).await?;
            expected += increment;
        }
        if !agree(&mut counts, expected).await {
            let seen: Vec<u64> = counts.iter().map(|c| c.borrow().1).collect();
            return Err(format!("the members disagree: {seen:?}, expected {expected}").into());
        }
        println!("[main] all three members count {expected}: the replicas agree");
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("counter: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
