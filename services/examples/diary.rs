//! `diary`: the gossip architecture's disconnected operation. A shared diary (a key-value
//! store: slot -> entry) is replicated on three members: a desk computer, a server and a
//! laptop. The laptop disconnects; its owner keeps writing to it offline while the office
//! writes at the desk; when the laptop reconnects, the two sides reconcile and converge.
//!
//! How the laptop disconnects: it is stopped (the lid closed: no leave, the others exclude
//! it), then started again from its data directory with the network cut: its only way to the
//! others is a relay that refuses every connection. Under the gossip strategy a member that
//! cannot reach its group still answers its clients from its own state, so the laptop's owner
//! goes on writing. Reconnecting is opening the relay: the laptop joins through it, the state
//! it is given is merged with what it accepted offline, and gossip converges the members.
//!
//! ```sh
//! cargo run --release --example diary
//! ```
//!
//! Exit code 0 when, after the reconnection, the desk and the laptop hold the same diary
//! with every entry written on either side.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use viewsync::config::NodeConfig;
use viewsync::runtime::NodeHandle;
use viewsync::GroupName;
use viewsync_services::config::{ServiceConfig, Strategy};
use viewsync_services::frontend::{FrontEnd, FrontEndConfig, Routing};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_services::strategy::start_member;

type Error = Box<dyn std::error::Error>;

const SLOTS: [&str; 6] = ["mon-09", "mon-14", "tue-10", "wed-16", "thu-11", "fri-15"];

/// A relay to `target` that refuses every connection until it is opened: the laptop's
/// network link.
struct Link {
    addr: SocketAddr,
    open: Arc<AtomicBool>,
}

impl Link {
    async fn start(target: SocketAddr) -> Result<Link, Error> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let open = Arc::new(AtomicBool::new(false));
        let is_open = open.clone();
        actix::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // Dropped: the connection is closed at once.
                }
                actix::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Ok(Link { addr, open })
    }
}

/// A front end that talks to the member at `addr` only.
fn front_end(group: &GroupName, addr: SocketAddr) -> FrontEnd<KvStore> {
    let mut config = FrontEndConfig::new(group.clone(), vec![addr], "kv");
    config.routing = Routing::Anywhere;
    config.deadline = Duration::from_secs(20);
    FrontEnd::new(config)
}

/// The diary as the member at `addr` holds it now (a fresh front end: it has seen nothing,
/// so the member answers from its own state at once).
async fn diary_at(group: &GroupName, addr: SocketAddr) -> Result<BTreeMap<String, String>, Error> {
    let mut reader = front_end(group, addr);
    let mut diary = BTreeMap::new();
    for slot in SLOTS {
        if let KvOutput::Value(Some(entry)) = reader.call(KvOp::get(slot)).await? {
            diary.insert(slot.to_string(), entry);
        }
    }
    Ok(diary)
}

fn show(who: &str, diary: &BTreeMap<String, String>) {
    let entries: Vec<String> = diary.iter().map(|(s, e)| format!("{s}={e}")).collect();
    println!("[{who}] diary: {}", entries.join(", "));
}

async fn write(
    who: &str,
    front_end: &mut FrontEnd<KvStore>,
    slot: &str,
    entry: &str,
) -> Result<(), Error> {
    match front_end.call(KvOp::put(slot, entry)).await? {
        KvOutput::Written => {
            println!("[{who}] wrote {slot}={entry}");
            Ok(())
        }
        other => Err(format!("{who}: put {slot}: {other:?}").into()),
    }
}

async fn member(
    n: u64,
    seeds: Vec<SocketAddr>,
    dir: &std::path::Path,
    group: &GroupName,
    service: &ServiceConfig,
) -> Result<NodeHandle, Error> {
    let config = NodeConfig::builder(n)
        .bootstrap(n == 1)
        .seeds(seeds)
        .data_dir(dir.join(format!("node{n}")))
        .build()?;
    let name = ["desk", "server", "laptop"][n as usize - 1];
    Ok(start_member(config, group.clone(), service, move |line| {
        println!("[{name}] {line}")
    })
    .await?)
}

async fn run() -> Result<(), Error> {
    let group = GroupName::new("diary")?;
    let dirs = tempfile::tempdir()?;
    let service = ServiceConfig {
        strategy: Strategy::Gossip,
        ..ServiceConfig::default()
    };
    let desk = member(1, vec![], dirs.path(), &group, &service).await?;
    let server = member(2, vec![desk.me().addr], dirs.path(), &group, &service).await?;
    let laptop = member(3, vec![desk.me().addr], dirs.path(), &group, &service).await?;
    let (desk_addr, laptop_addr) = (desk.me().addr, laptop.me().addr);
    let mut at_desk = front_end(&group, desk_addr);
    let mut at_laptop = front_end(&group, laptop_addr);
    write("desk", &mut at_desk, "mon-09", "team meeting").await?;
    write("laptop", &mut at_laptop, "mon-14", "dentist").await?;

    println!("[main] the laptop disconnects (its lid is closed: it stops without leaving)");
    laptop.crash();
    let link = Link::start(desk_addr).await?;
    println!(
        "[main] the laptop starts again from its data directory, offline: its only way to the \
         others is {} (refusing connections)",
        link.addr
    );
    let laptop = member(3, vec![link.addr], dirs.path(), &group, &service).await?;
    let laptop_addr = laptop.me().addr;
    let mut at_laptop = front_end(&group, laptop_addr);
    // Both sides work: the office at the desk, the laptop's owner offline.
    write("desk", &mut at_desk, "tue-10", "budget review").await?;
    write("laptop", &mut at_laptop, "wed-16", "call the plumber").await?;
    write("desk", &mut at_desk, "thu-11", "interview").await?;
    write("laptop", &mut at_laptop, "fri-15", "train to Leeds").await?;
    // The laptop's owner moves the dentist; the desk never heard of it yet.
    write(
        "laptop",
        &mut at_laptop,
        "mon-14",
        "dentist (moved to 15:00)",
    )
    .await?;
    let offline_desk = diary_at(&group, desk_addr).await?;
    let offline_laptop = diary_at(&group, laptop_addr).await?;
    show("desk, laptop offline", &offline_desk);
    show("laptop, offline", &offline_laptop);
    if offline_desk == offline_laptop {
        return Err("the two sides should differ while the laptop is offline".into());
    }

    println!("[main] the laptop reconnects");
    link.open.store(true, Ordering::SeqCst);
    let expected: BTreeMap<String, String> = [
        ("mon-09", "team meeting"),
        ("mon-14", "dentist (moved to 15:00)"),
        ("tue-10", "budget review"),
        ("wed-16", "call the plumber"),
        ("thu-11", "interview"),
        ("fri-15", "train to Leeds"),
    ]
    .into_iter()
    .map(|(s, e)| (s.to_string(), e.to_string()))
    .collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    loop {
        let (at_desk, at_laptop) = (
            diary_at(&group, desk_addr).await?,
            diary_at(&group, laptop_addr).await?,
        );
        if at_desk == expected && at_laptop == expected {
            show("desk", &at_desk);
            show("laptop", &at_laptop);
            println!(
                "[main] converged {} ms after the reconnection: both sides hold all {} entries",
                started.elapsed().as_millis(),
                expected.len()
            );
            break;
        }
        if Instant::now() > deadline {
            show("desk", &at_desk);
            show("laptop", &at_laptop);
            return Err("the desk and the laptop did not converge in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for node in [&desk, &server, &laptop] {
        node.crash();
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match actix::System::new().block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("diary: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
