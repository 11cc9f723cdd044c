//! `kv`: a replicated key-value store embedded in an application. Three members run in this
//! process over loopback TCP, each with a data directory of its own, and the application
//! talks to the store through a front end, exactly as a remote client would. The same code
//! runs under every replication strategy: `--strategy` picks one, nothing else changes.
//!
//! ```sh
//! cargo run --release --example kv                       # passive (primary-backup)
//! cargo run --release --example kv -- --strategy active  # or passive-backup-reads,
//!                     # active-local-reads, active-byzantine, gossip, naive
//! ```
//!
//! It writes keys, updates one with compare-and-swap, deletes one, and reads everything back,
//! checking each answer; then it stops one member gracefully (the one the front end was
//! talking to) and checks the store still answers with every write. Exit code 0 when every
//! answer was the expected one.

use clap::Parser;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use viewsync::config::NodeConfig;
use viewsync::runtime::NodeHandle;
use viewsync::GroupName;
use viewsync_services::config::{ServiceConfig, Strategy};
use viewsync_services::frontend::{FrontEnd, FrontEndConfig};
use viewsync_services::replication::signed;
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_services::strategy::{routing, start_member};

#[derive(Parser)]
#[command(about = "A replicated key-value store embedded in an application")]
struct Args {
    /// The replication strategy (a `[service] strategy` name).
    #[arg(long, default_value = "passive")]
    strategy: Strategy,
    /// Keys to write.
    #[arg(long, default_value_t = 20)]
    keys: u64,
}

type Error = Box<dyn std::error::Error>;

/// Checks one answer, printing the call and what came back.
fn expect(what: &str, got: KvOutput, expected: KvOutput) -> Result<(), Error> {
    if got != expected {
        return Err(format!("{what}: expected {expected:?}, got {got:?}").into());
    }
    println!("[app] {what} -> {got:?}");
    Ok(())
}

async fn run(args: Args) -> Result<(), Error> {
    if !args.strategy.is_replicated() {
        return Err("strategy log replicates no store: choose a replicated strategy".into());
    }
    let group = GroupName::new("kv")?;
    let dirs = tempfile::tempdir()?;
    let mut service = ServiceConfig {
        strategy: args.strategy,
        ..ServiceConfig::default()
    };
    // The Byzantine strategy: each member signs its replies with its own key, and front ends
    // trust the listed public keys (`viewsync keygen --replica-key` does the same on disk).
    let mut signing_keys = BTreeMap::new();
    if args.strategy == Strategy::ActiveByzantine {
        service.f = Some(1);
        for n in 1..=3u64 {
            let path = dirs.path().join(format!("node{n}.key"));
            let key = signed::generate_signing_key();
            signed::write_signing_key(&path, &key)?;
            let public = signed::public_key_hex(&key.verifying_key());
            service.replica_keys.insert(n.to_string(), public);
            signing_keys.insert(n, path);
        }
    }
    println!(
        "[app] starting three members of group {group} (strategy {}) in this process",
        args.strategy.name()
    );
    let mut members: Vec<NodeHandle> = Vec::new();
    for n in 1..=3u64 {
        let config = NodeConfig::builder(n)
            .bootstrap(n == 1)
            .seeds(members.iter().map(|m| m.me().addr))
            .data_dir(dirs.path().join(format!("node{n}")))
            .build()?;
        let mut service = service.clone();
        service.signing_key_file = signing_keys.get(&n).cloned();
        let node = start_member(config, group.clone(), &service, move |line| {
            println!("[node {n}] {line}")
        })
        .await?;
        members.push(node);
    }

    // The application's handle on the store: a front end that knows the members' addresses.
    let seeds: Vec<SocketAddr> = members.iter().map(|m| m.me().addr).collect();
    let mut config = FrontEndConfig::new(group.clone(), seeds, "kv");
    config.routing = routing(args.strategy).expect("a replicated strategy");
    config.signed_replies = service
        .signed_replies()
        .map_err(|(key, problem)| format!("{key}: {problem}"))?;
    config.deadline = Duration::from_secs(20);
    let mut store = FrontEnd::<KvStore>::new(config);

    for k in 0..args.keys {
        let put = KvOp::put(format!("key{k}"), format!("value{k}"));
        expect(
            &format!("put key{k}=value{k}"),
            store.call(put).await?,
            KvOutput::Written,
        )?;
    }
    let cas = KvOp::cas("key0", Some("value0"), "changed");
    expect(
        "cas key0 value0->changed",
        store.call(cas).await?,
        KvOutput::Swapped,
    )?;
    let deleted = store.call(KvOp::delete("key1")).await?;
    expect("delete key1", deleted, KvOutput::Deleted { existed: true })?;
    let expected = |k: u64| match k {
        0 => KvOutput::value("changed"),
        1 => KvOutput::Value(None),
        k => KvOutput::value(&format!("value{k}")),
    };
    for k in 0..args.keys {
        let got = store.call(KvOp::get(format!("key{k}"))).await?;
        expect(&format!("get key{k}"), got, expected(k))?;
    }

    // A member leaves; the store goes on with the other two, every write still there.
    if matches!(args.strategy, Strategy::Gossip | Strategy::Naive) {
        // Their members answer before the others hold an update, and spread it later (by
        // gossip, or lazily): give that a second, or what the leaving member alone holds
        // leaves with it (under gossip, a read that must see it would wait for its return).
        println!("[app] waiting a second for the updates to spread to every member");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let talking_to = store.policy().sticky().or(store.policy().primary());
    let leaving = members
        .iter()
        .position(|m| Some(m.me().addr) == talking_to)
        .unwrap_or(0);
    println!(
        "[app] stopping node {} (the member the front end talked to) gracefully",
        leaving + 1
    );
    members[leaving].stop(Duration::from_secs(5)).await?;
    for k in 0..args.keys {
        let got = store.call(KvOp::get(format!("key{k}"))).await?;
        if got != expected(k) {
            return Err(format!("after the stop, get key{k}: {got:?}").into());
        }
    }
    println!(
        "[app] after node {} left, the store still answered all {} reads as written",
        leaving + 1,
        args.keys
    );
    println!(
        "[app] strategy {}: every answer was the expected one",
        args.strategy.name()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match actix::System::new().block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kv: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
