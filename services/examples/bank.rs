//! `bank`: the reference notes' balance example (accounts x and y), first under naive
//! replication, where the anomaly appears, then under passive replication, where it cannot.
//!
//! Client 1 sets x = 1 at replica B, then y = 2 at replica A. Client 2, at A, reads y and
//! then x. Having seen y = 2, client 2 must see x = 1: client 1 set x before y. Under naive
//! replication (each replica applies an update at once and propagates it lazily) client 2
//! can read y = 2 and then x = 0: A has not yet heard of B's update. The linearizability
//! checker rejects that history. Under passive replication the same front ends, talking to
//! the same replicas, are sent to the primary, which orders every update: the anomaly cannot
//! appear, and the checker accepts the history.
//!
//! ```sh
//! cargo run --release --example bank
//! ```
//!
//! Exit code 0 when naive replication showed the anomaly (rejected by the checker) and
//! passive replication never did (accepted by the checker).

use std::time::{Duration, Instant};
use viewsync::config::NodeConfig;
use viewsync::runtime::NodeHandle;
use viewsync::GroupName;
use viewsync_services::config::{DurabilityMode, ServiceConfig, Strategy};
use viewsync_services::frontend::{FrontEnd, FrontEndConfig};
use viewsync_services::history::linearizability::{self, Linearizability};
use viewsync_services::history::model::StateMachineModel;
use viewsync_services::history::{History, SearchLimits};
use viewsync_services::state_machine::bank::{Bank, BankOp, BankOutput};
use viewsync_services::strategy::{routing, start_member};

type Error = Box<dyn std::error::Error>;

/// Rounds of the scenario, each on fresh accounts (the lazy propagation may outrun the
/// clients on a slow machine, hiding the anomaly in one round).
const ROUNDS: usize = 5;

/// A recorded history of calls by logical clients (one client may use several front ends).
struct Recorder {
    origin: Instant,
    history: History<BankOp, BankOutput>,
    seqs: [u64; 2],
}

impl Recorder {
    async fn call(
        &mut self,
        client: usize,
        front_end: &mut FrontEnd<Bank>,
        op: BankOp,
    ) -> Result<BankOutput, Error> {
        self.seqs[client - 1] += 1;
        let (id, seq) = (client as u64, self.seqs[client - 1]);
        let now = |origin: Instant| origin.elapsed().as_nanos() as u64;
        self.history.invoke(id, seq, op.clone(), now(self.origin));
        let output = front_end.call(op).await?;
        self.history.ok(id, seq, output.clone(), now(self.origin));
        Ok(output)
    }
}

/// Waits until both members are in a view of both.
async fn both_in_view(members: &[NodeHandle], group: &GroupName) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut sizes = Vec::new();
        for member in members {
            sizes.push(
                member
                    .view(group.clone())
                    .await?
                    .map_or(0, |v| v.members.len()),
            );
        }
        if sizes.iter().all(|n| *n == members.len()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the two replicas did not form a view".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the scenario under `strategy`; returns the round the anomaly appeared in (if it
/// did) and the checker's verdict on the whole history.
async fn scenario(strategy: Strategy) -> Result<(Option<usize>, bool), Error> {
    let group = GroupName::new(format!("bank-{}", strategy.name()))?;
    let service = ServiceConfig {
        strategy,
        state_machine: viewsync_services::config::MachineKind::Bank,
        // In memory: this example restarts nothing.
        durability: DurabilityMode::Memory,
        ..ServiceConfig::default()
    };
    let mut members = Vec::new();
    for n in 1..=2u64 {
        let config = NodeConfig::builder(n)
            .bootstrap(n == 1)
            .seeds(members.iter().map(|m: &NodeHandle| m.me().addr))
            .build()?;
        members.push(start_member(config, group.clone(), &service, |_| {}).await?);
    }
    both_in_view(&members, &group).await?;
    let (a, b) = (members[0].me().addr, members[1].me().addr);
    // Every front end is given one replica. Naive routing keeps it there; passive routing
    // sends every request to the primary whichever replica the front end was given.
    let at = |addr| {
        let mut config = FrontEndConfig::new(group.clone(), vec![addr], "bank");
        config.routing = routing(strategy).expect("replicated");
        FrontEnd::<Bank>::new(config)
    };
    let (mut setup, mut c1_at_b, mut c1_at_a, mut c2_at_a) = (at(a), at(b), at(a), at(a));
    let mut recorder = Recorder {
        origin: Instant::now(),
        history: History::new(),
        seqs: [0, 0],
    };
    let mut anomaly = None;
    for round in 0..ROUNDS {
        let (x, y) = (format!("x{round}"), format!("y{round}"));
        for account in [&x, &y] {
            recorder
                .call(1, &mut setup, BankOp::set(account.as_str(), 0))
                .await?;
        }
        // Both replicas hold the zeros before the scenario starts.
        tokio::time::sleep(Duration::from_millis(800)).await;
        recorder
            .call(1, &mut c1_at_b, BankOp::set(x.as_str(), 1))
            .await?;
        recorder
            .call(1, &mut c1_at_a, BankOp::set(y.as_str(), 2))
            .await?;
        let seen_y = recorder
            .call(2, &mut c2_at_a, BankOp::get(y.as_str()))
            .await?;
        let seen_x = recorder
            .call(2, &mut c2_at_a, BankOp::get(x.as_str()))
            .await?;
        println!(
            "[{}] round {round}: client 1 set {x}=1 at B, then {y}=2 at A; client 2 at A read \
             {y} -> {seen_y:?}, then {x} -> {seen_x:?}",
            strategy.name()
        );
        if seen_y == BankOutput::Balance(2) && seen_x == BankOutput::Balance(0) {
            println!(
                "[{}]   ANOMALY: client 2 saw the later update ({y}=2) but not the earlier one \
                 ({x}=1)",
                strategy.name()
            );
            anomaly.get_or_insert(round);
            if strategy == Strategy::Naive {
                break;
            }
        }
    }
    for member in &members {
        member.crash();
    }
    let operations = recorder.history.operations()?;
    let model = StateMachineModel::new(Bank::new());
    let verdict = linearizability::check(&model, &operations, SearchLimits::default());
    let linearizable = match &verdict {
        Linearizability::Linearizable { .. } => true,
        Linearizability::NotLinearizable(_) => false,
        Linearizability::Unknown { .. } => {
            return Err(format!("the checker could not decide: {verdict:?}").into())
        }
    };
    println!(
        "[{}] the linearizability checker, over the {} recorded operations: {}",
        strategy.name(),
        operations.len(),
        if linearizable {
            "linearizable"
        } else {
            "NOT linearizable"
        }
    );
    Ok((anomaly, linearizable))
}

async fn run() -> Result<(), Error> {
    println!("[main] naive replication: apply at once, propagate lazily");
    let (anomaly, linearizable) = scenario(Strategy::Naive).await?;
    match anomaly {
        Some(round) if !linearizable => {
            println!("[main] naive: the anomaly appeared in round {round}, and the checker rejects the history")
        }
        Some(_) => return Err("naive: the anomaly appeared but the checker accepted it".into()),
        None => {
            return Err(format!(
                "naive: the anomaly did not appear in {ROUNDS} rounds (lazy propagation won \
                 every race: try again)"
            )
            .into())
        }
    }
    println!("[main] passive replication: the same clients, the same replicas");
    let (anomaly, linearizable) = scenario(Strategy::Passive).await?;
    if let Some(round) = anomaly {
        return Err(format!("passive: the anomaly appeared in round {round}").into());
    }
    if !linearizable {
        return Err("passive: the checker rejects the history".into());
    }
    println!(
        "[main] passive: no anomaly in {ROUNDS} rounds, and the checker accepts the history: \
         the primary orders every update, and client 2's reads follow client 1's writes"
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    match actix::System::new().block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bank: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
