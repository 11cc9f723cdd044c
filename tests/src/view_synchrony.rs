//! The view-synchrony properties, checked over several members' parsed logs
//! ([`check_view_synchrony`]), and the checker's own tests on made-up logs.

use crate::stdout_log::{
    restore, service_view, Delivery, EventLine, Payload, Restore, ServiceView,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;

/// The ordering of a group, for [`check_view_synchrony`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ordering {
    /// Per-sender order.
    Fifo,
    /// Causal order (checked as FIFO: the log does not show causality).
    Causal,
    /// One order for all.
    Total,
}

impl Ordering {
    /// As printed in `ordering=` and configured.
    pub fn name(self) -> &'static str {
        match self {
            Ordering::Fifo => "fifo",
            Ordering::Causal => "causal",
            Ordering::Total => "total",
        }
    }
}

/// A copy of one member's parsed stdout.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The node.
    pub node: u64,
    /// Its deliveries.
    pub deliveries: Vec<Delivery>,
    /// Its other lines.
    pub events: Vec<EventLine>,
    /// Problems found line by line.
    pub problems: Vec<String>,
}

/// How a member's stay in a service view ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Still in it when the log was taken.
    Open,
    /// It went on to the next service view as a survivor: it delivered what the view's cut
    /// holds.
    Survived(u64),
    /// Its next service view came by state transfer (`restore`): excluded and rejoined, or
    /// resynchronized.
    Restored(u64),
}

/// One member's stay in one service view.
#[derive(Clone, Debug)]
pub struct Segment {
    /// The member.
    pub node: u64,
    /// Its `service-view` line, parsed.
    pub view: ServiceView,
    /// The line as printed.
    pub line: String,
    /// Its deliveries in the view: positions in the member's deliveries.
    pub range: Range<usize>,
    /// How it left.
    pub exit: Exit,
}

/// Per member, its stays in service views in order, and its `restore` lines.
fn segments(snapshot: &Snapshot) -> (Vec<Segment>, Vec<(Restore, String)>) {
    let mut segments: Vec<Segment> = Vec::new();
    let mut restores = Vec::new();
    let mut pending_restore: Option<u64> = None;
    for e in &snapshot.events {
        if let Some(restore) = restore(&e.text) {
            pending_restore = Some(restore.epoch);
            restores.push((restore, e.text.clone()));
        } else if let Some(view) = service_view(&e.text) {
            let restored = pending_restore.take() == Some(view.epoch);
            if let Some(last) = segments.last_mut() {
                last.range.end = e.pos;
                last.exit = if restored {
                    Exit::Restored(view.epoch)
                } else {
                    Exit::Survived(view.epoch)
                };
            }
            segments.push(Segment {
                node: snapshot.node,
                view,
                line: e.text.clone(),
                range: e.pos..snapshot.deliveries.len(),
                exit: Exit::Open,
            });
        }
    }
    (segments, restores)
}

/// What the checked logs held.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Per epoch: the members whose logs have it, and the most deliveries one made in it.
    pub epochs: BTreeMap<u64, (Vec<u64>, usize)>,
    /// Epochs where at least two members went on to the same next view (so their deliveries
    /// were compared in full), with how many deliveries each made there.
    pub compared_in_full: BTreeMap<u64, usize>,
    /// Per node, the send plan's multicasts it refused (filled by [`Group::check`](crate::service::Group::check)).
    pub refused: BTreeMap<u64, Vec<u64>>,
}

fn show(deliveries: &[Delivery], range: Range<usize>) -> String {
    let start = range.start;
    deliveries[range]
        .iter()
        .enumerate()
        .map(|(i, d)| format!("      #{} {d}", start + i))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Describes where two sequences part.
fn first_difference(a: &[Delivery], b: &[Delivery]) -> String {
    let i = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let lo = i.saturating_sub(3);
    format!(
        "they agree on {i} deliveries, then:\n    one has ({} in all):\n{}\n    the other has ({} in all):\n{}",
        a.len(),
        show(a, lo..(i + 4).min(a.len())),
        b.len(),
        show(b, lo..(i + 4).min(b.len()))
    )
}

type Key = (u32, u64);

fn keys(deliveries: &[Delivery]) -> BTreeSet<Key> {
    deliveries.iter().map(|d| (d.sender, d.seq)).collect()
}

/// Checks, over the logs of several members (processes that did not crash; a SIGKILLed
/// process is not bound by agreement):
///
/// 1. each log on its own: every delivery is made in the member's current service view (its
///    `view=` is the last `service-view`), `n=` counts on by one from the state, service view
///    epochs increase; no message (view, sender, seq) and no payload is delivered twice;
///    FIFO: per view and sender, `seq` increases; no loss: per sender, the send plan's `k`
///    goes up by one from delivery to delivery as long as the member and the sender stay in
///    the group (across views the member went through as a survivor, all with the sender);
/// 2. per view, every member entered it with the same state: the same `delivered=` (and,
///    with total order, the same `chain=`) in its `service-view` and `restore` lines;
/// 3. per view, members that went on to the same next view as survivors delivered the same
///    set of messages there (total order: the same sequence); a member still in the view
///    delivered a subset (total order: a prefix) of what one that left it delivered; two
///    members still in it, with total order: one sequence is a prefix of the other; any
///    other pair, with total order: the messages both delivered come in the same order;
///    no view has two different successors;
/// 4. a message is delivered in the same view by every member that delivers it.
///
/// `refused` lists per node the send plan's multicasts that its node refused (the log
/// service then skips them): they must not be delivered, and a gap in `k` made of them only
/// is not a loss.
///
/// Returns what was compared and the problems found.
pub fn check_view_synchrony(
    snapshots: &[Snapshot],
    ordering: Ordering,
    refused: &BTreeMap<u64, Vec<u64>>,
) -> (Summary, Vec<String>) {
    let refused: HashSet<(u32, u64)> = refused
        .iter()
        .flat_map(|(node, ks)| ks.iter().map(move |k| (*node as u32, *k)))
        .collect();
    // Whether the send plan of `node` multicast nothing between `prev` and `k`.
    let skipped_only =
        |node: u32, prev: u64, k: u64| (prev + 1..k).all(|x| refused.contains(&(node, x)));
    let mut problems: Vec<String> = Vec::new();
    let mut summary = Summary::default();
    let mut by_epoch: BTreeMap<u64, Vec<(Segment, &Snapshot)>> = BTreeMap::new();
    let mut restores_by_epoch: BTreeMap<u64, Vec<(u64, Restore, String)>> = BTreeMap::new();

    for snap in snapshots {
        let node = snap.node;
        problems.extend(snap.problems.iter().map(|p| format!("node {node}: {p}")));
        let (segs, restores) = segments(snap);
        for (restore, line) in restores {
            restores_by_epoch
                .entry(restore.epoch)
                .or_default()
                .push((node, restore, line));
        }
        // No duplicates.
        let mut seen_msgs: HashSet<(u32, u32, u64)> = HashSet::new();
        let mut seen_payloads: HashMap<&Payload, usize> = HashMap::new();
        for (i, d) in snap.deliveries.iter().enumerate() {
            if !seen_msgs.insert((d.epoch, d.sender, d.seq)) {
                problems.push(format!("node {node}: delivered twice: #{i} {d}"));
            }
            if let Some(first) = seen_payloads.insert(&d.payload, i) {
                problems.push(format!(
                    "node {node}: payload {} delivered twice: #{first} {} and #{i} {d}",
                    d.payload, snap.deliveries[first]
                ));
            }
        }
        // FIFO: per view and sender, `seq` increases. No loss: per sender, the send plan's
        // `k` goes up by one while the member and the sender both stay in the group (views
        // linked by survivor transitions, all with the sender as a member). A member that
        // leaves a view otherwise (excluded) loses what it sent past the cut, and a member
        // that rejoins does not deliver what it missed.
        let mut chain_k: HashMap<u32, (u64, usize)> = HashMap::new();
        for (si, seg) in segs.iter().enumerate() {
            if si == 0 || !matches!(segs[si - 1].exit, Exit::Survived(_)) {
                chain_k.clear();
            }
            chain_k.retain(|sender, _| seg.view.members.contains(&u64::from(*sender)));
            let mut last_seq: HashMap<u32, (u64, usize)> = HashMap::new();
            for i in seg.range.clone() {
                let d = &snap.deliveries[i];
                if let Some((seq, j)) = last_seq.get(&d.sender).copied() {
                    if d.seq <= seq {
                        problems.push(format!(
                            "node {node}: FIFO: #{i} {d} after #{j} {}",
                            snap.deliveries[j]
                        ));
                    }
                }
                last_seq.insert(d.sender, (d.seq, i));
                let Payload::Numbered { node: origin, k } = d.payload else {
                    continue;
                };
                if origin != d.sender {
                    problems.push(format!(
                        "node {node}: #{i} {d}: the payload of node {origin} delivered as sent by node {}",
                        d.sender
                    ));
                    continue;
                }
                if let Some((prev, j)) = chain_k.get(&origin).copied() {
                    if k <= prev || !skipped_only(origin, prev, k) {
                        problems.push(format!(
                            "node {node}: message {k} of node {origin} follows its message {prev} (#{j} {}, #{i} {d}){}",
                            snap.deliveries[j],
                            if k > prev { ": messages lost" } else { ": out of order" }
                        ));
                    }
                }
                chain_k.insert(origin, (k, i));
                if refused.contains(&(origin, k)) {
                    problems.push(format!(
                        "node {node}: delivered #{i} {d}, which node {origin} refused to multicast"
                    ));
                }
            }
        }
        for seg in segs {
            let entry = summary
                .epochs
                .entry(seg.view.epoch)
                .or_insert((Vec::new(), 0));
            entry.0.push(node);
            entry.1 = entry.1.max(seg.range.len());
            by_epoch
                .entry(seg.view.epoch)
                .or_default()
                .push((seg, snap));
        }
    }

    for (epoch, segs) in &by_epoch {
        // Same state on entry.
        let (first, _) = &segs[0];
        for (seg, _) in segs {
            let same = seg.view.delivered == first.view.delivered
                && (ordering != Ordering::Total || seg.view.chain == first.view.chain);
            let same_view = seg.view.members == first.view.members
                && seg.view.coordinator == first.view.coordinator;
            if !same || !same_view {
                problems.push(format!(
                    "view {epoch}: members entered it differently:\n    node {}: {}\n    node {}: {}",
                    first.node, first.line, seg.node, seg.line
                ));
            }
        }
        for (node, restore, line) in restores_by_epoch.get(epoch).into_iter().flatten() {
            let same = restore.delivered == first.view.delivered
                && (ordering != Ordering::Total || restore.chain == first.view.chain);
            if !same {
                problems.push(format!(
                    "view {epoch}: node {node} restored another state than members entered it with:\n    node {node}: {line}\n    node {}: {}",
                    first.node, first.line
                ));
            }
        }
        // Deliveries in the view, pairwise.
        for (i, (a, sa)) in segs.iter().enumerate() {
            for (b, sb) in &segs[i + 1..] {
                let da = &sa.deliveries[a.range.clone()];
                let db = &sb.deliveries[b.range.clone()];
                let who = format!("view {epoch}, nodes {} and {}", a.node, b.node);
                match (a.exit, b.exit) {
                    (Exit::Survived(x), Exit::Survived(y)) if x != y => problems.push(format!(
                        "{who}: view {epoch} has two successors: {x} and {y}"
                    )),
                    (Exit::Survived(x), Exit::Survived(_)) => {
                        let n = summary.compared_in_full.entry(*epoch).or_default();
                        *n = (*n).max(da.len()).max(db.len());
                        if ordering == Ordering::Total {
                            if da != db {
                                problems.push(format!(
                                    "{who}: both went on to view {x} but delivered different sequences; {}",
                                    first_difference(da, db)
                                ));
                            }
                        } else {
                            let (ka, kb) = (keys(da), keys(db));
                            if ka != kb {
                                problems.push(format!(
                                    "{who}: both went on to view {x} but delivered different sets: only node {}: {:?}; only node {}: {:?}",
                                    a.node,
                                    ka.difference(&kb).take(10).collect::<Vec<_>>(),
                                    b.node,
                                    kb.difference(&ka).take(10).collect::<Vec<_>>()
                                ));
                            }
                        }
                    }
                    (Exit::Open, Exit::Survived(_)) | (Exit::Survived(_), Exit::Open) => {
                        let (open, done, open_node, done_node) = if a.exit == Exit::Open {
                            (da, db, a.node, b.node)
                        } else {
                            (db, da, b.node, a.node)
                        };
                        if ordering == Ordering::Total {
                            if open.len() > done.len() || open != &done[..open.len()] {
                                problems.push(format!(
                                    "{who}: node {open_node} (still in the view) delivered a sequence that is not a prefix of the one of node {done_node} (which left it); {}",
                                    first_difference(open, done)
                                ));
                            }
                        } else {
                            let (ko, kd) = (keys(open), keys(done));
                            if !ko.is_subset(&kd) {
                                problems.push(format!(
                                    "{who}: node {open_node} (still in the view) delivered messages that node {done_node} did not deliver in it: {:?}",
                                    ko.difference(&kd).take(10).collect::<Vec<_>>()
                                ));
                            }
                        }
                    }
                    (Exit::Open, Exit::Open) => {
                        let n = da.len().min(db.len());
                        if ordering == Ordering::Total && da[..n] != db[..n] {
                            problems.push(format!(
                                "{who}: both still in the view; one sequence is not a prefix of the other; {}",
                                first_difference(da, db)
                            ));
                        }
                    }
                    _ => {
                        if ordering == Ordering::Total {
                            let (ka, kb) = (keys(da), keys(db));
                            let ca: Vec<&Delivery> = da
                                .iter()
                                .filter(|d| kb.contains(&(d.sender, d.seq)))
                                .collect();
                            let cb: Vec<&Delivery> = db
                                .iter()
                                .filter(|d| ka.contains(&(d.sender, d.seq)))
                                .collect();
                            if ca != cb {
                                let i = ca.iter().zip(&cb).take_while(|(x, y)| x == y).count();
                                problems.push(format!(
                                    "{who}: the messages both delivered come in another order: after {i} common ones, {} vs {}",
                                    ca.get(i).map_or("-".into(), |d| d.to_string()),
                                    cb.get(i).map_or("-".into(), |d| d.to_string())
                                ));
                            }
                        }
                    }
                }
            }
        }
    }

    // A message is delivered in one view, the same everywhere.
    let mut view_of: HashMap<&Payload, (u64, u32)> = HashMap::new();
    for snap in snapshots {
        for d in &snap.deliveries {
            match view_of.get(&d.payload) {
                Some((node, epoch)) if *epoch != d.epoch => problems.push(format!(
                    "payload {} delivered in view {epoch} by node {node} but in view {} by node {}",
                    d.payload, d.epoch, snap.node
                )),
                Some(_) => {}
                None => {
                    view_of.insert(&d.payload, (snap.node, d.epoch));
                }
            }
        }
    }
    if problems.len() > 60 {
        let more = problems.len() - 60;
        problems.truncate(60);
        problems.push(format!("… and {more} more"));
    }
    (summary, problems)
}

/// The checker itself, on made-up logs: it must find each kind of violation.
#[cfg(test)]
mod checker_finds_violations {
    use super::{check_view_synchrony, Ordering, Snapshot};
    use crate::stdout_log::StdoutLog;
    use std::collections::BTreeMap;
    use std::time::Instant;

    fn snap(node: u64, lines: &[String]) -> Snapshot {
        let mut log = StdoutLog::default();
        for line in lines {
            log.add(Instant::now(), line.clone());
        }
        Snapshot {
            node,
            deliveries: log.deliveries,
            events: log.events,
            problems: log.problems,
        }
    }

    fn view(epoch: u64, members: &str, delivered: u64, chain: &str) -> String {
        format!(
            "service-view group=demo epoch={epoch} coordinator=1 members={members} delivered={delivered} chain={chain}"
        )
    }

    /// `(sender, seq, k)` deliveries in view `epoch`, counting `n` on from `n0`.
    fn deliver(epoch: u64, n0: u64, msgs: &[(u64, u64, u64)]) -> Vec<String> {
        msgs.iter()
            .enumerate()
            .map(|(i, (sender, seq, k))| {
                format!(
                    "deliver group=demo view={epoch}@1 sender={sender} seq={seq} ordering=total n={} payload={sender}-{k}",
                    n0 + i as u64 + 1
                )
            })
            .collect()
    }

    /// A member's log: view 1 with `first`, then view 2 (entered with `state`).
    fn member(first: &[(u64, u64, u64)], state: (u64, &str)) -> Vec<String> {
        let mut lines = vec![view(1, "1,2", 0, "0")];
        lines.extend(deliver(1, 0, first));
        lines.push(view(2, "1,2", state.0, state.1));
        lines
    }

    fn problems(snaps: &[Snapshot], ordering: Ordering) -> Vec<String> {
        check_view_synchrony(snaps, ordering, &BTreeMap::new()).1
    }

    #[test]
    fn agreeing_logs_pass() {
        let msgs = [(1, 1, 1), (2, 1, 1), (1, 2, 2)];
        let a = snap(1, &member(&msgs, (3, "aa")));
        let b = snap(2, &member(&msgs, (3, "aa")));
        assert_eq!(problems(&[a, b], Ordering::Total), Vec::<String>::new());
    }

    #[test]
    fn another_order_fails_total_but_not_fifo() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let b = snap(2, &member(&[(2, 1, 1), (1, 1, 1)], (2, "bb")));
        let total = problems(&[a.clone(), b.clone()], Ordering::Total);
        assert!(
            total.iter().any(|p| p.contains("different sequences")),
            "{total:?}"
        );
        assert_eq!(problems(&[a, b], Ordering::Fifo), Vec::<String>::new());
    }

    #[test]
    fn another_set_fails() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let b = snap(2, &member(&[(1, 1, 1)], (1, "aa")));
        let found = problems(&[a, b], Ordering::Fifo);
        assert!(
            found.iter().any(|p| p.contains("different sets")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|p| p.contains("entered it differently")),
            "{found:?}"
        );
    }

    #[test]
    fn duplicates_gaps_and_fifo_breaks_fail() {
        let dup = snap(1, &member(&[(1, 1, 1), (1, 1, 1)], (2, "aa")));
        let found = problems(&[dup], Ordering::Total);
        assert!(found.iter().any(|p| p.contains("twice")), "{found:?}");
        let gap = snap(1, &member(&[(1, 1, 1), (1, 2, 3)], (2, "aa")));
        let found = problems(std::slice::from_ref(&gap), Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("messages lost")),
            "{found:?}"
        );
        let refused = BTreeMap::from([(1, vec![2])]);
        assert_eq!(
            check_view_synchrony(&[gap], Ordering::Total, &refused).1,
            Vec::<String>::new()
        );
        let reordered = snap(1, &member(&[(1, 2, 2), (1, 1, 1)], (2, "aa")));
        let found = problems(&[reordered], Ordering::Fifo);
        assert!(found.iter().any(|p| p.contains("FIFO")), "{found:?}");
        assert!(
            found.iter().any(|p| p.contains("out of order")),
            "{found:?}"
        );
        // Across views: a loss while both stay is found; a gap over a view without the
        // sender (it was excluded, and lost what it sent past the cut) is not a loss.
        let mut lines = member(&[(1, 1, 1), (2, 1, 1)], (2, "aa"));
        lines.extend(deliver(2, 2, &[(2, 1, 3)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("messages lost")),
            "{found:?}"
        );
        let mut lines = member(&[(1, 1, 1), (2, 1, 1)], (2, "aa"));
        lines[3] = view(2, "1", 2, "aa");
        lines.push(view(3, "1,2", 2, "aa"));
        lines.extend(deliver(3, 2, &[(2, 1, 3)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn a_delivery_outside_its_view_or_a_wrong_count_fails() {
        let mut lines = member(&[(1, 1, 1)], (1, "aa"));
        lines.extend(deliver(1, 1, &[(1, 2, 2)]));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("outside the service view")),
            "{found:?}"
        );
        let lines = member(&[(1, 1, 1)], (5, "aa"));
        let found = problems(&[snap(1, &lines)], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("state counts")),
            "{found:?}"
        );
    }

    #[test]
    fn a_restore_of_another_state_fails() {
        let a = snap(1, &member(&[(1, 1, 1)], (1, "aa")));
        let joiner = snap(
            3,
            &[
                "restore group=demo epoch=2 bytes=16 delivered=1 chain=ab".to_string(),
                view(2, "1,2", 1, "ab"),
            ],
        );
        let found = problems(&[a, joiner], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("entered it differently")),
            "{found:?}"
        );
    }

    #[test]
    fn an_open_view_must_be_a_prefix_of_a_closed_one() {
        let a = snap(1, &member(&[(1, 1, 1), (2, 1, 1)], (2, "aa")));
        let mut lines = vec![view(1, "1,2", 0, "0")];
        lines.extend(deliver(1, 0, &[(2, 1, 1)]));
        let b = snap(2, &lines);
        let found = problems(&[a, b], Ordering::Total);
        assert!(
            found.iter().any(|p| p.contains("not a prefix")),
            "{found:?}"
        );
    }
}
