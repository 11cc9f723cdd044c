//! The replication strategies under test, and what each promises.

use viewsync_services::frontend::Routing;

/// A replication strategy (`[service] strategy = "…"`), with the key-value state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Primary-backup, every request at the primary.
    Passive,
    /// Primary-backup, reads at any member.
    PassiveBackupReads,
    /// Active replication, reads ordered like writes.
    Active,
    /// Active replication, reads answered locally.
    ActiveLocalReads,
    /// Active replication with signed replies (f = 1): needs 2f + 1 = 3 members at least.
    ActiveByzantine,
    /// The gossip architecture.
    Gossip,
}

/// The consistency model a strategy promises, which its histories are checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Linearizable, final reads included (so no acknowledged write may be lost).
    Linearizable,
    /// Sequentially consistent; updates (and the final reads) linearizable.
    Sequential,
    /// Causally consistent per front end, and the members converge.
    Causal,
}

impl Strategy {
    /// The configuration's name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Passive => "passive",
            Strategy::PassiveBackupReads => "passive-backup-reads",
            Strategy::Active => "active",
            Strategy::ActiveLocalReads => "active-local-reads",
            Strategy::ActiveByzantine => "active-byzantine",
            Strategy::Gossip => "gossip",
        }
    }

    /// What its histories must satisfy.
    pub fn model(self) -> Model {
        match self {
            Strategy::Passive | Strategy::Active | Strategy::ActiveByzantine => Model::Linearizable,
            Strategy::PassiveBackupReads | Strategy::ActiveLocalReads => Model::Sequential,
            Strategy::Gossip => Model::Causal,
        }
    }

    /// How its front ends route (unused by the Byzantine strategy's signed front ends).
    pub fn routing(self) -> Routing {
        match self {
            Strategy::Passive => Routing::Primary,
            Strategy::PassiveBackupReads => Routing::ReadsAnywhere,
            _ => Routing::Anywhere,
        }
    }

    /// What the coordinator is to the service: the role a coordinator kill takes away.
    pub fn coordinator_role(self) -> &'static str {
        match self {
            Strategy::Passive | Strategy::PassiveBackupReads => "primary",
            Strategy::Active | Strategy::ActiveLocalReads | Strategy::ActiveByzantine => {
                "sequencer"
            }
            Strategy::Gossip => "coordinator",
        }
    }

    /// Whether a front end given one member's address reads that member's own state, so
    /// the members' states can be compared one by one at the end (the passive strategy
    /// reads at the primary only; a Byzantine front end asks every member and takes the
    /// answer `f + 1` signed).
    pub fn reads_per_member(self) -> bool {
        matches!(
            self,
            Strategy::PassiveBackupReads
                | Strategy::Active
                | Strategy::ActiveLocalReads
                | Strategy::Gossip
        )
    }
}
