//! `chat`: a chat group on plain multicast (the service actor API, total order). Members join
//! and leave while they talk; every member sees the same messages in the same order, and the
//! same view changes between them.
//!
//! Alice founds the group, Bob and Carol join, everyone talks; Dave joins (he gets no
//! history: a chat keeps none) and talks; Bob leaves; the rest talk again. Each member prints
//! its transcript, and the example checks, for every two members and every view both were in,
//! that they saw the same messages in the same order in that view and the same membership.
//! Exit code 0 when that holds.
//!
//! ```sh
//! cargo run --release --example chat
//! ```

use actix::prelude::*;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use viewsync::config::NodeConfig;
use viewsync::runtime::{Node, NodeHandle, ServiceEvent, TakeSnapshot};
use viewsync::GroupName;

/// What a member's chat window shows, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    /// A new view: its epoch and its members' names.
    View(u64, Vec<String>),
    /// A message: who said what.
    Said(String),
}

/// One member's chat service: it only passes what the group delivers to the window.
struct Chat {
    name: &'static str,
    window: UnboundedSender<(&'static str, Line)>,
}

impl Actor for Chat {
    type Context = Context<Self>;
}

impl Handler<ServiceEvent> for Chat {
    type Result = ();

    fn handle(&mut self, event: ServiceEvent, _ctx: &mut Context<Self>) {
        let line = match event {
            ServiceEvent::ViewChange { change, .. } => Line::View(
                change.view.id.epoch,
                change
                    .view
                    .members
                    .iter()
                    .map(|m| name(m.id.node.0).to_string())
                    .collect(),
            ),
            ServiceEvent::Deliver { message, .. } => {
                Line::Said(String::from_utf8_lossy(&message.payload).into_owned())
            }
            _ => return,
        };
        let _ = self.window.send((self.name, line));
    }
}

/// A chat keeps no history: a joiner starts with an empty window.
impl Handler<TakeSnapshot> for Chat {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(Bytes::new())
    }
}

const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];

fn name(node: u64) -> &'static str {
    NAMES.get(node as usize - 1).copied().unwrap_or("someone")
}

/// Every member's window so far.
struct Room {
    heard: UnboundedReceiver<(&'static str, Line)>,
    windows: BTreeMap<&'static str, Vec<Line>>,
}

impl Room {
    /// Prints what members see until `done` holds (at most 20 s).
    async fn until(
        &mut self,
        what: &str,
        done: impl Fn(&BTreeMap<&'static str, Vec<Line>>) -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !done(&self.windows) {
            match tokio::time::timeout_at(deadline, self.heard.recv()).await {
                Ok(Some((who, line))) => {
                    match &line {
                        Line::View(epoch, members) => {
                            println!("[{who}] * view {epoch}: {}", members.join(", "))
                        }
                        Line::Said(text) => println!("[{who}] {text}"),
                    }
                    self.windows.entry(who).or_default().push(line);
                }
                _ => return Err(format!("timed out waiting for {what}")),
            }
        }
        Ok(())
    }
}

impl Room {
    /// Takes what arrives until nothing has for `quiet`.
    async fn drain(&mut self, quiet: Duration) {
        while let Ok(Some((who, line))) = tokio::time::timeout(quiet, self.heard.recv()).await {
            self.windows.entry(who).or_default().push(line);
        }
    }
}

/// Whether `who`'s last view has exactly `members`.
fn in_view(windows: &BTreeMap<&str, Vec<Line>>, who: &str, members: &[&str]) -> bool {
    let last = windows.get(who).and_then(|w| {
        w.iter().rev().find_map(|l| match l {
            Line::View(_, m) => Some(m),
            Line::Said(_) => None,
        })
    });
    last.is_some_and(|m| {
        m.len() == members.len() && members.iter().all(|n| m.contains(&n.to_string()))
    })
}

/// Whether `who` has seen `text`.
fn heard(windows: &BTreeMap<&str, Vec<Line>>, who: &str, text: &str) -> bool {
    windows
        .get(who)
        .is_some_and(|w| w.contains(&Line::Said(text.to_string())))
}

async fn join(
    id: u64,
    seeds: Vec<std::net::SocketAddr>,
    group: &GroupName,
    window: &UnboundedSender<(&'static str, Line)>,
) -> Result<NodeHandle, Box<dyn std::error::Error>> {
    let config = NodeConfig::builder(id)
        .bootstrap(seeds.is_empty())
        .seeds(seeds)
        .build()?;
    let node = Node::spawn(config).await?;
    let chat = Chat {
        name: name(id),
        window: window.clone(),
    }
    .start();
    node.register_service(group.clone(), chat).await?;
    node.join(group.clone()).await?;
    Ok(node)
}

async fn say(
    node: &NodeHandle,
    group: &GroupName,
    text: String,
) -> Result<String, Box<dyn std::error::Error>> {
    node.multicast(group.clone(), Bytes::from(text.clone()))
        .await?;
    Ok(text)
}

/// Per view epoch, the messages a window shows in that view, and the view's members.
fn by_view(window: &[Line]) -> BTreeMap<u64, (Vec<String>, Vec<String>)> {
    let mut views: BTreeMap<u64, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut current = None;
    for line in window {
        match line {
            Line::View(epoch, members) => {
                current = Some(*epoch);
                views.insert(*epoch, (members.clone(), Vec::new()));
            }
            Line::Said(text) => {
                if let Some(epoch) = current {
                    views
                        .get_mut(&epoch)
                        .expect("inserted")
                        .1
                        .push(text.clone());
                }
            }
        }
    }
    views
}

/// Every two members agree on every view both were in. The last view of a member that left
/// is compared only as far as it saw it (it stopped listening when it left).
fn check(windows: &BTreeMap<&'static str, Vec<Line>>, left: &str) -> Result<usize, String> {
    let mut compared = 0;
    let views: BTreeMap<&str, _> = windows.iter().map(|(n, w)| (*n, by_view(w))).collect();
    for (a, va) in &views {
        for (b, vb) in &views {
            if a >= b {
                continue;
            }
            for (epoch, (members_a, said_a)) in va {
                let Some((members_b, said_b)) = vb.get(epoch) else {
                    continue;
                };
                if members_a != members_b {
                    return Err(format!(
                        "{a} and {b} disagree on the members of view {epoch}"
                    ));
                }
                let last_of_leaver = |who: &str, v: &BTreeMap<u64, _>| {
                    who == left && v.keys().next_back() == Some(epoch)
                };
                let same = if last_of_leaver(a, va) {
                    said_b.starts_with(said_a)
                } else if last_of_leaver(b, vb) {
                    said_a.starts_with(said_b)
                } else {
                    said_a == said_b
                };
                if !same {
                    return Err(format!(
                        "{a} and {b} saw different messages in view {epoch}: {said_a:?} / {said_b:?}"
                    ));
                }
                compared += 1;
            }
        }
    }
    Ok(compared)
}

fn main() -> std::process::ExitCode {
    let result = actix::System::new().block_on(async {
        let group = GroupName::new("chat")?;
        let (window, inbox) = unbounded_channel();
        let mut room = Room {
            heard: inbox,
            windows: BTreeMap::new(),
        };
        let alice = join(1, vec![], &group, &window).await?;
        let seeds = vec![alice.me().addr];
        room.until("alice's view", |w| in_view(w, "alice", &["alice"]))
            .await?;
        let bob = join(2, seeds.clone(), &group, &window).await?;
        room.until("bob's view", |w| in_view(w, "bob", &["alice", "bob"]))
            .await?;
        let carol = join(3, seeds.clone(), &group, &window).await?;
        let trio = ["alice", "bob", "carol"];
        room.until("carol's view", |w| {
            trio.iter().all(|n| in_view(w, n, &trio))
        })
        .await?;
        let mut last = String::new();
        for round in 1..=2 {
            for (who, node) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
                last = say(node, &group, format!("<{who}> hello {round}")).await?;
            }
        }
        room.until("the first messages", |w| {
            trio.iter().all(|n| heard(w, n, &last))
        })
        .await?;
        let dave = join(4, seeds.clone(), &group, &window).await?;
        let four = ["alice", "bob", "carol", "dave"];
        room.until("dave's view", |w| four.iter().all(|n| in_view(w, n, &four)))
            .await?;
        for (who, node) in [("dave", &dave), ("bob", &bob)] {
            last = say(node, &group, format!("<{who}> hi dave")).await?;
        }
        room.until("dave's greeting", |w| {
            four.iter().all(|n| heard(w, n, &last))
        })
        .await?;
        println!("[main] bob leaves");
        bob.stop(Duration::from_secs(5)).await?;
        let rest = ["alice", "carol", "dave"];
        room.until("the view without bob", |w| {
            rest.iter().all(|n| in_view(w, n, &rest))
        })
        .await?;
        for (who, node) in [("carol", &carol), ("alice", &alice), ("dave", &dave)] {
            last = say(node, &group, format!("<{who}> bye bob")).await?;
        }
        room.until("the last messages", |w| {
            rest.iter().all(|n| heard(w, n, &last))
        })
        .await?;
        // Anything still on its way (there should be nothing).
        room.drain(Duration::from_millis(300)).await;
        let compared = check(&room.windows, "bob")?;
        println!(
            "[main] {compared} (member pair, view) comparisons: every two members saw the same \
             members and the same messages in the same order in every view both were in"
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
