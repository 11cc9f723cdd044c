//! Strategy by configuration: builds the replication core the `[service]` section names, on
//! the state machine it names, over the storage its durability mode asks for, and starts its
//! replica manager on a node. Changing `strategy = "..."` is the only change a deployment
//! makes to switch strategies; the front end and `viewsync client` stay the same.

use crate::config::{DurabilityMode, MachineKind, ServiceConfig, Strategy};
use crate::frontend::Routing;
use crate::replica::ReplicaService;
use crate::replication::active::{ActiveConfig, ActiveReads, ActiveReplica};
use crate::replication::gossip::{GossipConfig, GossipReplica};
use crate::replication::naive::{NaiveConfig, NaiveReplica};
use crate::replication::passive::{PassiveConfig, PassiveReplica, ReadPolicy};
use crate::replication::signed::SigningCore;
use crate::replication::store::{DiskLog, MemoryLog, Recovered};
use crate::replication::{ReplicaCore, ReplicaLog};
use crate::state_machine::bank::Bank;
use crate::state_machine::kv::KvStore;
use crate::state_machine::StateMachine;
use crate::storage::Durability;
use std::path::Path;
use viewsync::config::NodeConfig;
use viewsync::runtime::{Node, NodeHandle};
use viewsync::{GroupName, ProcessId};

/// Why a replica could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartReplicaError {
    /// The strategy is not a replicated one (`log`).
    #[error("strategy {0:?} runs no replica manager")]
    NotReplicated(&'static str),
    /// The replica's storage could not be opened or read back whole.
    #[error("{0}")]
    Storage(String),
    /// The Byzantine strategy's signing key cannot be used (missing, unreadable, or not
    /// the one `replica_keys` lists for this node).
    #[error("cannot sign replies: {0}")]
    Signing(String),
    /// The node refused the registration.
    #[error("cannot register the replica with the node: {0}")]
    Node(#[from] viewsync::error::NodeError),
}

/// Where the front ends of `strategy`'s clients send their requests (`None` for `log`, which
/// serves no client): passive to the primary (reads too, or reads to any member with
/// `passive-backup-reads`); active and naive to any one member, since every member takes
/// requests (ordered or local reads, as the strategy runs them).
pub fn routing(strategy: Strategy) -> Option<Routing> {
    Some(match strategy {
        Strategy::Log => return None,
        Strategy::Passive => Routing::Primary,
        Strategy::PassiveBackupReads => Routing::ReadsAnywhere,
        // The Byzantine strategy's front ends send to every member (`SignedReplies`).
        Strategy::Active
        | Strategy::ActiveLocalReads
        | Strategy::ActiveByzantine
        | Strategy::Naive
        | Strategy::Gossip => Routing::Anywhere,
    })
}

/// The storage mode of a durability setting.
pub fn durability(mode: DurabilityMode) -> Durability {
    match mode {
        DurabilityMode::Fsync => Durability::EveryRecord,
        DurabilityMode::Grouped => Durability::grouped(),
        DurabilityMode::Memory => Durability::MemoryOnly,
    }
}

/// Opens a replica's storage: the data directory's log and snapshot, or memory when the
/// durability mode is `memory` and no directory is configured.
pub fn open_storage(
    service: &ServiceConfig,
    dir: Option<&Path>,
) -> Result<(Box<dyn ReplicaLog>, Recovered), StartReplicaError> {
    match dir {
        Some(dir) => {
            let (log, recovered) = DiskLog::open(dir, durability(service.durability))
                .map_err(|e| StartReplicaError::Storage(format!("{}: {e}", dir.display())))?;
            Ok((Box::new(log), recovered))
        }
        None => Ok((Box::new(MemoryLog::new()), Recovered::default())),
    }
}

/// Builds the core of `service`'s strategy for `group` on the process `me`, from what its
/// storage recovered.
pub fn build_core(
    service: &ServiceConfig,
    me: ProcessId,
    group: GroupName,
    log: Box<dyn ReplicaLog>,
    recovered: Recovered,
) -> Result<Box<dyn ReplicaCore>, StartReplicaError> {
    match service.state_machine {
        MachineKind::Kv => build::<KvStore>(service, me, group, log, recovered),
        MachineKind::Bank => build::<Bank>(service, me, group, log, recovered),
    }
}

fn build<S>(
    service: &ServiceConfig,
    me: ProcessId,
    group: GroupName,
    log: Box<dyn ReplicaLog>,
    recovered: Recovered,
) -> Result<Box<dyn ReplicaCore>, StartReplicaError>
where
    S: StateMachine + Clone + Default + 'static,
{
    let machine = service.state_machine.name().to_string();
    let storage = |e: crate::replication::StoreError| StartReplicaError::Storage(e.to_string());
    Ok(match service.strategy {
        Strategy::Log => return Err(StartReplicaError::NotReplicated("log")),
        Strategy::Passive | Strategy::PassiveBackupReads => {
            let mut config = PassiveConfig::new(me, group, machine);
            config.reads = if service.strategy == Strategy::Passive {
                ReadPolicy::Primary
            } else {
                ReadPolicy::AnyReplica
            };
            config.quorum_durability = service.durability != DurabilityMode::Memory;
            Box::new(PassiveReplica::<S>::recover(config, log, recovered).map_err(storage)?)
        }
        Strategy::Active | Strategy::ActiveLocalReads | Strategy::ActiveByzantine => {
            let signer = service
                .signer(me.node, group.clone())
                .map_err(|(key, problem)| {
                    StartReplicaError::Signing(format!("{key}: {problem}"))
                })?;
            let mut config = ActiveConfig::new(me, group, machine);
            config.reads = if service.strategy == Strategy::ActiveLocalReads {
                ActiveReads::Local
            } else {
                ActiveReads::Ordered
            };
            config.quorum_durability = service.durability != DurabilityMode::Memory;
            let core =
                Box::new(ActiveReplica::<S>::recover(config, log, recovered).map_err(storage)?);
            match signer {
                Some(signer) => Box::new(SigningCore::new(core, signer)),
                None => core,
            }
        }
        Strategy::Gossip => {
            let settings = service.gossip.clone().unwrap_or_default();
            let mut config = GossipConfig::new(me, group, machine);
            config.gossip_interval = std::time::Duration::from_millis(settings.interval_ms);
            config.batch_max = settings.batch_max;
            config.read_only = settings.read_only.contains(&me.node.0);
            Box::new(
                GossipReplica::<S>::recover(config, log, recovered, S::default())
                    .map_err(storage)?,
            )
        }
        // The contrast keeps nothing: it starts from the initial state at every start.
        Strategy::Naive => {
            drop((log, recovered));
            Box::new(NaiveReplica::<S>::new(
                NaiveConfig::new(me, group, machine),
                S::default(),
            ))
        }
    })
}

/// Starts the replica manager of `group` on `node` as `service` says, recovering its state
/// from its data directory (`node_data_dir`'s `service/<group>`, or `[service] data_dir`).
/// Call before the node joins the group. With `exit_on_failure`, a replica that cannot go on
/// exits the process (see [`crate::replica`]).
pub async fn start_replica(
    node: &NodeHandle,
    group: GroupName,
    service: &ServiceConfig,
    node_data_dir: Option<&Path>,
    print: impl FnMut(String) + 'static,
    exit_on_failure: bool,
) -> Result<actix::Addr<ReplicaService>, StartReplicaError> {
    let dir = service.replica_dir(node_data_dir, &group);
    let (log, recovered) = open_storage(service, dir.as_deref())?;
    let records = recovered.records.len();
    let from = recovered.snapshot.as_ref().map(|(index, _)| *index);
    let position = recovered
        .records
        .last()
        .map(|(index, _)| *index)
        .or(from)
        .unwrap_or(0);
    let core = build_core(service, node.me().id, group.clone(), log, recovered)?;
    tracing::info!(
        %group,
        strategy = service.strategy.name(),
        machine = service.state_machine.name(),
        durability = service.durability.name(),
        dir = ?dir,
        snapshot_at = ?from,
        records,
        position,
        "replica recovered its state"
    );
    let mut replica = ReplicaService::new(group, node.clone(), core, print)
        .reporting(service.strategy.name(), dir.clone());
    if exit_on_failure {
        replica = replica.exit_on_failure();
    }
    if dir.is_some() && service.strategy != Strategy::Naive {
        replica = replica.durable(position);
    }
    Ok(replica.register().await?)
}

/// Why [`start_member`] could not start a member.
#[derive(Debug, thiserror::Error)]
pub enum StartMemberError {
    /// The node did not start (its address, its data directory).
    #[error("the node did not start: {0}")]
    Node(#[from] viewsync::error::StartError),
    /// Its replica did not start.
    #[error("the replica did not start: {0}")]
    Replica(#[from] StartReplicaError),
    /// The node stopped before it could join.
    #[error("the node stopped: {0}")]
    Stopped(#[from] viewsync::error::NodeError),
}

/// Starts a member of the replicated `group` in this process, as `viewsync node` runs one:
/// gives the group the delivery the strategy needs ([`crate::config::prepare_group`]),
/// starts the node, starts its replica manager (its state in `config.data_dir`'s
/// `service/<group>`, or in `service.data_dir`, or in memory when neither is set), and
/// joins the group. A replica that cannot go on stops its node (it does not exit the
/// process). The node founds the group if `config` says `bootstrap` and no seed answers.
/// Must run inside an actix system.
///
/// The node's [`NodeHandle`] is the application's to keep: [`NodeHandle::stop`] leaves
/// gracefully, [`NodeHandle::crash`] stops as a crash would. Clients reach the group through
/// the node's address ([`NodeHandle::me`]) with a
/// [`FrontEnd`](crate::frontend::FrontEnd) whose routing is [`routing`]`(strategy)`.
///
/// ```
/// use viewsync::config::NodeConfig;
/// use viewsync::GroupName;
/// use viewsync_services::config::{DurabilityMode, ServiceConfig, Strategy};
/// use viewsync_services::frontend::{FrontEnd, FrontEndConfig};
/// use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
/// use viewsync_services::strategy::{routing, start_member};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// actix::System::new().block_on(async {
///     let group = GroupName::new("kv")?;
///     let service = ServiceConfig {
///         strategy: Strategy::Passive,
///         durability: DurabilityMode::Memory,
///         ..ServiceConfig::default()
///     };
///     let config = NodeConfig::builder(1).bootstrap(true).build()?;
///     let node = start_member(config, group.clone(), &service, |line| println!("{line}")).await?;
///     let mut front_end = FrontEndConfig::new(group, vec![node.me().addr], "kv");
///     front_end.routing = routing(service.strategy).expect("a replicated strategy");
///     let mut kv = FrontEnd::<KvStore>::new(front_end);
///     kv.call(KvOp::put("colour", "blue")).await?;
///     assert_eq!(kv.call(KvOp::get("colour")).await?, KvOutput::value("blue"));
///     node.stop(std::time::Duration::from_secs(1)).await?;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })
/// # }
/// ```
pub async fn start_member(
    mut config: NodeConfig,
    group: GroupName,
    service: &ServiceConfig,
    print: impl FnMut(String) + 'static,
) -> Result<NodeHandle, StartMemberError> {
    if service.strategy.is_replicated() {
        crate::config::prepare_group(&mut config, &group, service.strategy.needs_total_order());
    }
    let data_dir = config.data_dir.clone();
    let node = Node::spawn(config).await?;
    if let Err(error) = start_replica(
        &node,
        group.clone(),
        service,
        data_dir.as_deref(),
        print,
        false,
    )
    .await
    {
        node.crash();
        return Err(error.into());
    }
    node.join(group).await?;
    Ok(node)
}
