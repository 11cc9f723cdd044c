//! The line format a node prints on standard output, one event per line, `key=value` pairs,
//! so people can watch a group and tests and scripts can parse it.

use viewsync::runtime::GroupEvent;
use viewsync::{Member, View};

/// `listening node=1 incarnation=… addr=127.0.0.1:7701`
pub fn listening(me: &Member) -> String {
    format!(
        "listening node={} incarnation={} addr={}",
        me.id.node, me.id.incarnation.0, me.addr
    )
}

/// The member list of a view as node ids, comma separated.
pub fn member_list(view: &View) -> String {
    node_list(&view.members)
}

/// The learners of a view (members still waiting for their state, not yet voting) as node
/// ids, comma separated; empty when every member votes.
pub fn learner_list(view: &View) -> String {
    node_list(view.learners())
}

fn node_list(members: &[viewsync::Member]) -> String {
    members
        .iter()
        .map(|m| m.id.node.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per event; `None` for events not printed.
pub fn event_line(event: &GroupEvent) -> Option<String> {
    Some(match event {
        GroupEvent::ViewInstalled { group, change } => format!(
            "view group={group} epoch={} coordinator={} members={} learners={}",
            change.view.id.epoch,
            change.view.id.coordinator.node,
            member_list(&change.view),
            learner_list(&change.view)
        ),
        GroupEvent::Excluded { group, .. } => format!("excluded group={group}"),
        GroupEvent::Left { group } => format!("left group={group}"),
        GroupEvent::Suspected(p) => {
            format!("suspected node={} incarnation={}", p.node, p.incarnation.0)
        }
        GroupEvent::Unsuspected(p) => {
            format!(
                "unsuspected node={} incarnation={}",
                p.node, p.incarnation.0
            )
        }
        GroupEvent::RefusedBy {
            group,
            seed,
            reason,
        } => format!("refused group={group} seed={seed} reason={reason:?}"),
    })
}

/// The answer to `viewsync members`: the view id, then one member per line.
pub fn members(view: &View) -> String {
    let mut out = format!(
        "view group={} epoch={} coordinator={}\n",
        view.group, view.id.epoch, view.id.coordinator
    );
    for m in &view.members {
        out.push_str(&format!(
            "node={} incarnation={} addr={}\n",
            m.id.node, m.id.incarnation.0, m.addr
        ));
    }
    out
}

/// The line `viewsync members` prints for a blocked node, for example
/// `blocked: no majority of view 5@1.1 (reachable: 1 of voters 1,2,3; 2 needed) for 12 s`.
pub fn blocked(blocked: &viewsync::wire::Blocked) -> String {
    use viewsync::wire::BlockedReason;
    let view = match blocked.view {
        Some(view) => format!("view {view}"),
        None => "no view".to_string(),
    };
    let nodes = |ids: &[viewsync::ProcessId]| {
        ids.iter()
            .map(|p| p.node.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let what = match &blocked.reason {
        BlockedReason::NoMajority {
            voters,
            reachable,
            needed,
        } => format!(
            "no majority of {view} (reachable: {} of voters {}; {needed} needed)",
            nodes(reachable),
            nodes(voters)
        ),
        BlockedReason::NoStateHolder => {
            format!("no holder of the state in {view} (no reachable member holds it)")
        }
        BlockedReason::NoSeedAnswered => {
            "waiting for the group (no seed answered as a member; bootstrap is not set)".into()
        }
    };
    format!("blocked: {what} for {} s", blocked.blocked_ms / 1000)
}
