//! Membership settings.

use std::time::Duration;

/// Membership settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a joiner (or leaver) repeats its request.
    pub join_retry_interval: Duration,
    /// Whether this process may found the group (first start of a new cluster): after
    /// `bootstrap_timeout` without a seed that is a member, it creates the group's first view.
    /// Without it a process never founds a group: it keeps asking its seeds (and says so), so
    /// a restart during a partition can never start a second group beside the real one.
    /// Set by the top-level `bootstrap` key of the configuration file.
    pub bootstrap: bool,
    /// How long a founding process waits for a seed that is a member before it creates the
    /// group.
    pub bootstrap_timeout: Duration,
    /// How long a proposal may wait for a majority before it is retried with a higher ballot.
    pub view_change_timeout: Duration,
    /// How often a view's coordinator looks for other views of its group among its seeds.
    pub discovery_interval: Duration,
    /// How long a graceful leave waits for the view without the leaver before giving up.
    pub leave_timeout: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            join_retry_interval: Duration::from_millis(200),
            bootstrap: false,
            bootstrap_timeout: Duration::from_millis(1000),
            view_change_timeout: Duration::from_millis(400),
            discovery_interval: Duration::from_millis(1000),
            leave_timeout: Duration::from_millis(3000),
        }
    }
}
