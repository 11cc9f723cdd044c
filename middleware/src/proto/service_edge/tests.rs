use super::*;
use crate::id::{Incarnation, NodeId};
use crate::proto::node::NodeSettings;
use crate::view::{Member, View};

fn group() -> GroupName {
    GroupName::new("g").unwrap()
}

fn me() -> Member {
    Member {
        id: ProcessId {
            node: NodeId(1),
            incarnation: Incarnation(1),
        },
        addr: "10.0.0.1:7000".parse().unwrap(),
    }
}

/// A core that founded group `g` alone (ticked until it installed its view), with its edge
/// and every edge output on the way.
fn founded(
    limits: EdgeLimits,
    settings: NodeSettings,
    register: bool,
) -> (NodeCore, ServiceEdge<u32>, Time, Vec<EdgeOutput<u32>>) {
    let mut settings = settings;
    settings.membership.bootstrap = true;
    let mut core = NodeCore::new(me(), Vec::new(), settings);
    let mut edge = ServiceEdge::new(limits);
    if register {
        assert_eq!(edge.register(&core, group()), vec![]);
    }
    let mut now = Time::ZERO;
    let outputs = core.handle_join(now, group()).unwrap();
    let mut seen = edge.absorb(&mut core, now, outputs);
    while core.view(&group()).is_none() {
        now += crate::proto::TICK_INTERVAL;
        assert!(now < Time::from_secs(10), "founds its group");
        let outputs = core.handle_tick(now);
        seen.extend(edge.absorb(&mut core, now, outputs));
    }
    (core, edge, now, seen)
}

fn view_of(core: &NodeCore) -> View {
    core.view(&group()).cloned().unwrap()
}

/// The service events among `outputs`.
fn service_events<T>(outputs: &[EdgeOutput<T>]) -> Vec<(&ServiceEvent, Option<u64>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            EdgeOutput::Service {
                event, checkpoint, ..
            } => Some((event, *checkpoint)),
            _ => None,
        })
        .collect()
}

fn delivered(core: &NodeCore, seq: u64, payload: &'static [u8]) -> ServiceEvent {
    let view = view_of(core);
    ServiceEvent::Deliver {
        group: view.group.clone(),
        message: Delivered {
            sender: me().id,
            view: view.id,
            seq: crate::wire::Seq(seq),
            ordering: Ordering::Fifo,
            payload: Bytes::from_static(payload),
        },
    }
}

/// Multicasts `payload` and flushes, returning the edge's outputs.
fn multicast_and_flush(
    core: &mut NodeCore,
    edge: &mut ServiceEdge<u32>,
    now: Time,
    payload: &'static [u8],
) -> Vec<EdgeOutput<u32>> {
    let Ok(Admitted::Now(mut out)) = edge.handle_multicast(
        core,
        now,
        &group(),
        None,
        Bytes::from_static(payload),
        || unreachable!("room in the outbox"),
    ) else {
        panic!("accepted at once");
    };
    let flushed = core.handle_flush(now);
    out.extend(edge.absorb(core, now, flushed));
    out
}

/// FIFO order: a lone member's multicasts are numbered 1, 2, 3 (under total order the
/// sequencer's order records take numbers in between).
fn fifo() -> NodeSettings {
    let mut settings = NodeSettings::default();
    settings.multicast.ordering = Ordering::Fifo;
    settings
}

fn limits(backlog_events: u64, checkpoint_events: u64, parked_multicasts: usize) -> EdgeLimits {
    EdgeLimits {
        backlog_events,
        checkpoint_events,
        parked_multicasts,
    }
}

fn view_change(core: &NodeCore) -> ServiceEvent {
    ServiceEvent::ViewChange {
        group: group(),
        change: ViewChange::between(None, view_of(core)),
    }
}

#[test]
fn events_reach_the_registered_service_in_order_and_every_nth_is_a_checkpoint() {
    let (mut core, mut edge, now, seen) = founded(limits(100, 2, 4), fifo(), true);
    let installed = NodeOutput::ViewInstalled {
        group: group(),
        change: ViewChange::between(None, view_of(&core)),
    };
    assert_eq!(
        seen,
        vec![
            EdgeOutput::Node(installed),
            EdgeOutput::Service {
                group: group(),
                event: view_change(&core),
                checkpoint: None,
            },
        ]
    );
    let a = multicast_and_flush(&mut core, &mut edge, now, b"a");
    let b = multicast_and_flush(&mut core, &mut edge, now, b"b");
    let c = multicast_and_flush(&mut core, &mut edge, now, b"c");
    assert_eq!(
        service_events(&a),
        vec![(&delivered(&core, 1, b"a"), Some(2))]
    );
    assert_eq!(service_events(&b), vec![(&delivered(&core, 2, b"b"), None)]);
    assert_eq!(
        service_events(&c),
        vec![(&delivered(&core, 3, b"c"), Some(4))]
    );
    assert_eq!(edge.handed(&group()), 4);
    // Nothing handled yet, but 4 is below the backlog limit.
    assert_eq!(edge.refresh(&mut core, now), vec![]);
}

#[test]
fn a_group_without_a_service_drops_its_events() {
    let (mut core, mut edge, now, seen) = founded(limits(100, 1, 4), fifo(), false);
    assert!(matches!(
        seen[..],
        [EdgeOutput::Node(NodeOutput::ViewInstalled { .. })]
    ));
    assert_eq!(multicast_and_flush(&mut core, &mut edge, now, b"a"), vec![]);
    // Registered later, the service first hears of the view it is in.
    assert_eq!(
        edge.register(&core, group()),
        vec![EdgeOutput::Service {
            group: group(),
            event: view_change(&core),
            checkpoint: Some(1),
        }]
    );
}

#[test]
fn a_service_behind_pauses_delivery_until_it_catches_up() {
    let (mut core, mut edge, now, seen) = founded(limits(2, 1, 4), fifo(), true);
    assert_eq!(service_events(&seen), vec![(&view_change(&core), Some(1))]);
    assert_eq!(edge.refresh(&mut core, now), vec![]);
    let a = multicast_and_flush(&mut core, &mut edge, now, b"a");
    assert_eq!(
        service_events(&a),
        vec![(&delivered(&core, 1, b"a"), Some(2))]
    );
    // Two events handed, none handled: delivery pauses (the core has nothing to say).
    assert_eq!(edge.refresh(&mut core, now), vec![]);
    assert!(edge.is_paused(&group()));
    // Accepted, not delivered while paused.
    assert_eq!(multicast_and_flush(&mut core, &mut edge, now, b"b"), vec![]);
    // The first event handled: still one behind, below the limit of two: resumes.
    edge.handle_handled(&group(), 1);
    assert_eq!(edge.refresh(&mut core, now), vec![EdgeOutput::Flush]);
    assert!(!edge.is_paused(&group()));
    let flushed = core.handle_flush(now);
    let b = edge.absorb(&mut core, now, flushed);
    assert_eq!(
        service_events(&b),
        vec![(&delivered(&core, 2, b"b"), Some(3))]
    );
    // Handled reports only grow.
    edge.handle_handled(&group(), 3);
    edge.handle_handled(&group(), 2);
    assert_eq!(edge.refresh(&mut core, now), vec![]);
}

#[test]
fn a_snapshot_request_goes_to_the_service_or_fails_at_once_without_one() {
    let (mut core, mut edge, now, _) = founded(limits(100, 1, 4), fifo(), true);
    let view = view_of(&core).id;
    let wanted = |group: GroupName| NodeOutput::Group {
        group,
        event: MulticastOutput::SnapshotWanted(view),
    };
    assert_eq!(
        edge.absorb(&mut core, now, vec![wanted(group())]),
        vec![EdgeOutput::TakeSnapshot {
            group: group(),
            view
        }]
    );
    // Nothing registered for the group: refused to the core, nothing for the shell (the
    // core was not waiting for a snapshot of `view`, so it has nothing to say either).
    let other = GroupName::new("other").unwrap();
    assert_eq!(edge.absorb(&mut core, now, vec![wanted(other)]), vec![]);
    // The answer goes to the core; frames and node events come back through the edge.
    assert_eq!(
        edge.handle_snapshot(&mut core, now, &group(), view, Ok(Bytes::from_static(b"s"))),
        vec![]
    );
}

#[test]
fn a_delta_request_goes_to_the_service_or_is_answered_none_at_once_without_one() {
    let (mut core, mut edge, now, _) = founded(limits(100, 1, 4), fifo(), true);
    let view = view_of(&core).id;
    let wanted = |group: GroupName| NodeOutput::Group {
        group,
        event: MulticastOutput::DeltaWanted { view, since: 4 },
    };
    assert_eq!(
        edge.absorb(&mut core, now, vec![wanted(group())]),
        vec![EdgeOutput::TakeDelta {
            group: group(),
            view,
            since: 4
        }]
    );
    // Nothing registered: answered `None` to the core (which asked for nothing here).
    let other = GroupName::new("other").unwrap();
    assert_eq!(edge.absorb(&mut core, now, vec![wanted(other)]), vec![]);
    assert_eq!(
        edge.handle_delta(&mut core, now, &group(), view, 4, None),
        vec![]
    );
}

/// A core listed in a two-member view it learnt without its decision: it waits for a state
/// transfer and sends nothing meanwhile, so its outbox fills.
fn listed_without_state(
    limits: EdgeLimits,
    settings: NodeSettings,
) -> (NodeCore, ServiceEdge<u32>, Time) {
    let peer = Member {
        id: ProcessId {
            node: NodeId(2),
            incarnation: Incarnation(1),
        },
        addr: "10.0.0.2:7000".parse().unwrap(),
    };
    let mut core = NodeCore::new(me(), vec![peer.addr], settings);
    let mut edge = ServiceEdge::new(limits);
    edge.register(&core, group());
    let now = Time::ZERO;
    let outputs = core.handle_join(now, group()).unwrap();
    edge.absorb(&mut core, now, outputs);
    let view = View::of_voters(
        group(),
        crate::id::ViewId {
            epoch: 2,
            coordinator: peer.id,
        },
        vec![peer, me()],
    );
    let install = crate::wire::Envelope {
        version: crate::wire::PROTOCOL_VERSION,
        sender: peer.id,
        sender_addr: peer.addr,
        seq: 1,
        group: Some(group()),
        body: crate::wire::Body::Install {
            base: None,
            ballot: crate::wire::Ballot {
                round: crate::wire::Round(1),
                proposer: peer.id,
            },
            decision: crate::wire::Decision {
                view: view.clone(),
                cut: Vec::new(),
                joiners: Vec::new(),
            },
        },
    };
    let outputs = core.handle_envelope(now, install, crate::id::ConnectionId(1));
    edge.absorb(&mut core, now, outputs);
    assert_eq!(core.view(&group()), Some(&view));
    (core, edge, now)
}

#[test]
fn multicasts_park_in_order_when_the_outbox_is_full_and_are_answered_in_order() {
    let mut settings = NodeSettings::default();
    settings.multicast.outbox_messages = 2;
    let (mut core, mut edge, now) = listed_without_state(limits(100, 1, 2), settings);
    let send = |core: &mut NodeCore, edge: &mut ServiceEdge<u32>, k: u32| {
        let payload = Bytes::from(vec![b'a' + k as u8]);
        edge.handle_multicast(core, now, &group(), None, payload, || k)
    };
    assert_eq!(send(&mut core, &mut edge, 0), Ok(Admitted::Now(vec![])));
    assert_eq!(send(&mut core, &mut edge, 1), Ok(Admitted::Now(vec![])));
    assert_eq!(send(&mut core, &mut edge, 2), Ok(Admitted::Parked));
    assert_eq!(send(&mut core, &mut edge, 3), Ok(Admitted::Parked));
    assert_eq!(send(&mut core, &mut edge, 4), Err(MulticastError::Full(2)));
    assert_eq!(edge.parked(), 2);
    // Still full: nothing answered, the order kept.
    assert_eq!(edge.retry_parked(&mut core, now), vec![]);
    assert_eq!(edge.parked(), 2);
    // Left the group (the peer never answers: the leave ends at its timeout): each parked
    // multicast is refused, in order.
    let left = core.handle_leave(now, &group()).unwrap();
    edge.absorb(&mut core, now, left);
    let mut now = now;
    let leave_timeout = NodeSettings::default().membership.leave_timeout;
    while now <= leave_timeout {
        now += crate::proto::TICK_INTERVAL;
        let outputs = core.handle_tick(now);
        edge.absorb(&mut core, now, outputs);
    }
    let answers: Vec<_> = edge
        .retry_parked(&mut core, now)
        .into_iter()
        .filter(|o| matches!(o, EdgeOutput::Answer { .. }))
        .collect();
    assert_eq!(
        answers,
        vec![
            EdgeOutput::Answer {
                token: 2,
                result: Err(MulticastError::NotMember)
            },
            EdgeOutput::Answer {
                token: 3,
                result: Err(MulticastError::NotMember)
            },
        ]
    );
    assert_eq!(edge.parked(), 0);
}

#[test]
fn a_client_request_goes_to_the_service_or_is_refused_typed_without_one_or_while_paused() {
    let client = ProcessId {
        node: crate::id::CLIENT_NODE_ID,
        incarnation: Incarnation(7),
    };
    let request = |tag| ClientRequest {
        group: group(),
        reply: ReplyTo {
            connection: ConnectionId(4),
            client,
            tag,
        },
        payload: Bytes::from_static(b"op"),
    };
    let refusal = |core: &NodeCore, tag, refusal| {
        vec![EdgeOutput::Node(core.response(
            &group(),
            request(tag).reply,
            Err(refusal),
        ))]
    };

    // No service: refused at once, so the client is not left waiting.
    let (mut core, mut edge, now, _) = founded(limits(2, 1, 4), fifo(), false);
    let out = edge.absorb(&mut core, now, vec![NodeOutput::Request(request(1))]);
    assert_eq!(out, refusal(&core, 1, Refusal::NoService));

    // A service: handed over, counted like any event.
    let (mut core, mut edge, now, _) = founded(limits(2, 1, 4), fifo(), true);
    let out = edge.absorb(&mut core, now, vec![NodeOutput::Request(request(2))]);
    assert_eq!(
        service_events(&out),
        vec![(&ServiceEvent::Request(request(2)), Some(2))]
    );
    // Two events handed and none handled: paused, and a request now is refused as busy.
    assert_eq!(edge.refresh(&mut core, now), vec![]);
    assert!(edge.is_paused(&group()));
    let out = edge.absorb(&mut core, now, vec![NodeOutput::Request(request(3))]);
    assert_eq!(
        out,
        refusal(&core, 3, Refusal::Busy(BusyReason::Overloaded))
    );
}
