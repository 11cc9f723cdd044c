//! Exact-output tests of the multicast core.

use super::*;
use crate::id::{GroupName, Incarnation, NodeId};
use std::net::SocketAddr;
use std::time::Duration;

fn member(n: u64) -> Member {
    Member {
        id: ProcessId {
            node: NodeId(n),
            incarnation: Incarnation(1),
        },
        addr: SocketAddr::from(([10, 0, 0, n as u8], 7000)),
    }
}

fn view(epoch: u64, members: &[u64]) -> View {
    View {
        group: GroupName::new("g").unwrap(),
        id: ViewId {
            epoch,
            coordinator: member(members[0]).id,
        },
        members: members.iter().map(|n| member(*n)).collect(),
        voters: members.len(),
    }
}

fn ms(n: u64) -> Time {
    Duration::from_millis(n)
}

fn config(ordering: Ordering) -> MulticastConfig {
    MulticastConfig {
        ordering,
        ..MulticastConfig::default()
    }
}

/// A core of member `me` already in `view` with the (empty) state.
fn core_in(me: u64, view: &View, config: MulticastConfig) -> Multicast {
    let mut core = Multicast::new(member(me).id, config);
    let mut out = Vec::new();
    core.install_created(view, &mut out);
    core
}

fn payload(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

fn delivered(out: &[MulticastOutput]) -> Vec<(u64, Bytes)> {
    out.iter()
        .filter_map(|o| match o {
            MulticastOutput::Deliver(m) => Some((m.sender.node.0, m.payload.clone())),
            _ => None,
        })
        .collect()
}

/// The `Data` bodies in `out` sent to member `to`.
fn data_to(out: &[MulticastOutput], to: u64) -> Vec<Body> {
    out.iter()
        .filter_map(|o| match o {
            MulticastOutput::Send { to: addr, body } if *addr == member(to).addr => {
                matches!(body, Body::Data { .. }).then(|| body.clone())
            }
            MulticastOutput::SendAll { to: addrs, body } if addrs.contains(&member(to).addr) => {
                matches!(body, Body::Data { .. }).then(|| body.clone())
            }
            _ => None,
        })
        .collect()
}

fn entry(seq: u64, ordering: Ordering, item: Item) -> Entry {
    Entry {
        seq: Seq(seq),
        ordering,
        clock: Vec::new(),
        item,
    }
}

#[test]
fn a_lost_entry_is_asked_for_and_delivery_stays_fifo() {
    let v = view(1, &[1, 2]);
    let mut a = core_in(1, &v, config(Ordering::Fifo));
    let mut b = core_in(2, &v, config(Ordering::Fifo));
    let mut out = Vec::new();
    a.multicast(ms(0), None, payload("one"), &mut out).unwrap();
    a.multicast(ms(0), None, payload("two"), &mut out).unwrap();
    assert_eq!(
        delivered(&out),
        vec![(1, payload("one")), (1, payload("two"))]
    );
    let mut out = Vec::new();
    a.flush(ms(0), &mut out);
    let one = entry(1, Ordering::Fifo, Item::Payload(payload("one")));
    let two = entry(2, Ordering::Fifo, Item::Payload(payload("two")));
    assert_eq!(
        data_to(&out, 2),
        vec![Body::Data {
            view: v.id,
            origin: Rank(0),
            entries: vec![one.clone(), two.clone()],
        }],
        "both entries in one batch"
    );
    // The first is lost: the second is held, not delivered.
    let mut out = Vec::new();
    let lossy = Body::Data {
        view: v.id,
        origin: Rank(0),
        entries: vec![two.clone()],
    };
    b.handle_message(ms(1), member(1), lossy, &mut out);
    assert_eq!(delivered(&out), vec![]);
    // The gap is asked for once the stream made no progress for `nak_interval`.
    let mut out = Vec::new();
    b.handle_tick(ms(2), &mut out);
    assert!(!out.iter().any(|o| matches!(
        o,
        MulticastOutput::Send {
            body: Body::Nak { .. },
            ..
        }
    )));
    let mut out = Vec::new();
    b.handle_tick(ms(102), &mut out);
    let nak = Body::Nak {
        view: v.id,
        origin: Rank(0),
        from: Seq(1),
        to: Seq(2),
    };
    assert!(out.contains(&MulticastOutput::Send {
        to: member(1).addr,
        body: nak.clone(),
    }));
    let mut out = Vec::new();
    a.handle_message(ms(3), member(2), nak, &mut out);
    assert_eq!(
        out,
        vec![MulticastOutput::Send {
            to: member(2).addr,
            body: Body::Data {
                view: v.id,
                origin: Rank(0),
                entries: vec![one, two.clone()],
            },
        }]
    );
    let mut out = Vec::new();
    let retransmitted = Body::Data {
        view: v.id,
        origin: Rank(0),
        entries: vec![entry(1, Ordering::Fifo, Item::Payload(payload("one"))), two],
    };
    b.handle_message(ms(4), member(1), retransmitted.clone(), &mut out);
    assert_eq!(
        delivered(&out),
        vec![(1, payload("one")), (1, payload("two"))]
    );
    // A duplicate changes nothing.
    let mut out = Vec::new();
    b.handle_message(ms(5), member(1), retransmitted, &mut out);
    assert_eq!(delivered(&out), vec![]);
    // "two" arrived twice in the retransmission, then both again.
    assert_eq!(b.stats().duplicates, 3);
}

#[test]
fn credit_runs_out_then_the_outbox_fills_then_acks_free_it() {
    let v = view(1, &[1, 2]);
    let cfg = MulticastConfig {
        window_messages: 2,
        outbox_messages: 1,
        payload_bytes_max: 8,
        ..config(Ordering::Fifo)
    };
    let mut a = core_in(1, &v, cfg);
    let mut out = Vec::new();
    for text in ["m1", "m2", "m3"] {
        a.multicast(ms(0), None, payload(text), &mut out).unwrap();
    }
    assert_eq!(delivered(&out).len(), 2, "two within the window");
    assert_eq!(a.outbox_len(), 1, "the third waits for credit");
    assert_eq!(
        a.multicast(ms(0), None, payload("m4"), &mut out),
        Err(MulticastError::Full(1))
    );
    assert_eq!(
        a.multicast(ms(0), None, payload("too large"), &mut out),
        Err(MulticastError::TooLarge { size: 9, max: 8 })
    );
    // Member 2 acknowledges both: they are stable, collected, and m3 goes out.
    let mut out = Vec::new();
    let ack = Body::Ack {
        view: v.id,
        received: vec![Seq(2), Seq(0)],
    };
    a.handle_message(ms(1), member(2), ack, &mut out);
    assert_eq!(delivered(&out), vec![(1, payload("m3"))]);
    assert_eq!(a.outbox_len(), 0);
    assert_eq!(
        a.buffered_entries(),
        1,
        "m1 and m2 collected, m3 kept until stable"
    );
}

#[test]
fn total_order_waits_for_the_sequencer() {
    let v = view(1, &[1, 2, 3]);
    let mut s = core_in(1, &v, config(Ordering::Total));
    let mut b = core_in(2, &v, config(Ordering::Total));
    let mut c = core_in(3, &v, config(Ordering::Total));
    let mut out = Vec::new();
    b.multicast(ms(0), None, payload("t"), &mut out).unwrap();
    assert_eq!(
        delivered(&out),
        vec![],
        "not even at its sender before it is ordered"
    );
    b.flush(ms(0), &mut out);
    let data = data_to(&out, 1).pop().unwrap();
    let mut c_out = Vec::new();
    c.handle_message(
        ms(1),
        member(2),
        data_to(&out, 3).pop().unwrap(),
        &mut c_out,
    );
    assert_eq!(delivered(&c_out), vec![]);
    let mut s_out = Vec::new();
    s.handle_message(ms(1), member(2), data, &mut s_out);
    s.flush(ms(1), &mut s_out);
    assert_eq!(delivered(&s_out), vec![(2, payload("t"))]);
    let record = Body::Data {
        view: v.id,
        origin: Rank(0),
        entries: vec![entry(
            1,
            Ordering::Fifo,
            Item::Order(vec![(Rank(1), Seq(1))]),
        )],
    };
    assert_eq!(data_to(&s_out, 3), vec![record.clone()]);
    c.handle_message(ms(2), member(1), record.clone(), &mut c_out);
    assert_eq!(delivered(&c_out), vec![(2, payload("t"))]);
    let mut b_out = Vec::new();
    b.handle_message(ms(2), member(1), record, &mut b_out);
    assert_eq!(delivered(&b_out), vec![(2, payload("t"))]);
}

#[test]
fn a_causal_message_waits_for_what_its_sender_had_delivered() {
    let v = view(1, &[1, 2, 3]);
    let mut a = core_in(1, &v, config(Ordering::Causal));
    let mut b = core_in(2, &v, config(Ordering::Causal));
    let mut c = core_in(3, &v, config(Ordering::Causal));
    let mut out = Vec::new();
    a.multicast(ms(0), None, payload("question"), &mut out)
        .unwrap();
    a.flush(ms(0), &mut out);
    let question = data_to(&out, 2).pop().unwrap();
    let mut b_out = Vec::new();
    b.handle_message(ms(1), member(1), question.clone(), &mut b_out);
    b.multicast(ms(1), None, payload("answer"), &mut b_out)
        .unwrap();
    b.flush(ms(1), &mut b_out);
    let answer = data_to(&b_out, 3).pop().unwrap();
    let Body::Data { entries, .. } = &answer else {
        unreachable!()
    };
    assert_eq!(
        entries[0].clock,
        vec![Seq(1), Seq(0), Seq(0)],
        "it had delivered the question"
    );
    let mut c_out = Vec::new();
    c.handle_message(ms(2), member(2), answer, &mut c_out);
    assert_eq!(
        delivered(&c_out),
        vec![],
        "the answer waits for the question"
    );
    c.handle_message(ms(3), member(1), question, &mut c_out);
    assert_eq!(
        delivered(&c_out),
        vec![(1, payload("question")), (2, payload("answer"))]
    );
}

/// Two survivors that delivered different amounts before the view change deliver the same
/// sequence in the view once the cut is applied, including a total-order message the
/// sequencer never ordered and a stream (of a member that crashed) whose tail is cut.
#[test]
fn the_cut_ends_a_view_the_same_way_everywhere() {
    let v = view(1, &[1, 2, 3]);
    let record = entry(1, Ordering::Fifo, Item::Order(vec![(Rank(2), Seq(1))]));
    let s_stream = vec![record];
    let c_stream = [
        entry(1, Ordering::Total, Item::Payload(payload("c1"))),
        entry(2, Ordering::Total, Item::Payload(payload("c2"))),
        entry(3, Ordering::Fifo, Item::Payload(payload("c3"))),
    ];
    let feed = |core: &mut Multicast, upto_c: usize, out: &mut Vec<MulticastOutput>| {
        core.handle_message(
            ms(1),
            member(1),
            Body::Data {
                view: v.id,
                origin: Rank(0),
                entries: s_stream.clone(),
            },
            out,
        );
        core.handle_message(
            ms(1),
            member(3),
            Body::Data {
                view: v.id,
                origin: Rank(2),
                entries: c_stream[..upto_c].to_vec(),
            },
            out,
        );
    };
    let mut b = core_in(2, &v, config(Ordering::Total));
    let mut b_before = Vec::new();
    feed(&mut b, 3, &mut b_before);
    assert_eq!(delivered(&b_before), vec![(3, payload("c1"))]);
    let mut d = core_in(2, &v, config(Ordering::Total));
    let mut d_before = Vec::new();
    b.freeze(v.id, &mut Vec::new());
    d.freeze(v.id, &mut Vec::new());
    feed(&mut d, 3, &mut d_before);
    assert_eq!(
        delivered(&d_before),
        vec![],
        "frozen before anything arrived"
    );
    // The cut keeps c1 and c2 of member 3's stream, not c3.
    let next = view(2, &[2]);
    let decision = Decision {
        view: next.clone(),
        cut: vec![
            CutEntry {
                upto: Seq(1),
                holder: Rank(0),
            },
            CutEntry {
                upto: Seq(0),
                holder: Rank(1),
            },
            CutEntry {
                upto: Seq(2),
                holder: Rank(1),
            },
        ],
        joiners: vec![],
    };
    let mut b_after = Vec::new();
    b.install_decided(ms(3), v.id, &decision, &mut b_after);
    let mut d_after = Vec::new();
    d.install_decided(ms(3), v.id, &decision, &mut d_after);
    let b_all = [delivered(&b_before), delivered(&b_after)].concat();
    let d_all = [delivered(&d_before), delivered(&d_after)].concat();
    assert_eq!(b_all, vec![(3, payload("c1")), (3, payload("c2"))]);
    assert_eq!(d_all, b_all);
    assert!(matches!(
        b_after.last(),
        Some(MulticastOutput::View(change)) if change.view == next
    ));
    assert!(b.is_ready());
}

#[test]
fn a_failed_snapshot_or_a_missing_holder_never_becomes_an_empty_state() {
    let first = view(1, &[1]);
    let mut next = view(2, &[1, 2]);
    next.voters = 1;
    let cfg = config(Ordering::Total);
    let decision = Decision {
        view: next.clone(),
        cut: vec![CutEntry {
            upto: Seq(0),
            holder: Rank(0),
        }],
        joiners: vec![member(2).id],
    };
    let mut provider = core_in(1, &first, cfg);
    let mut out = Vec::new();
    provider.freeze(first.id, &mut out);
    provider.install_decided(ms(1), first.id, &decision, &mut out);
    assert_eq!(out.last(), Some(&MulticastOutput::SnapshotWanted(next.id)));
    // The service could not take it: the provider stops vouching for the state.
    provider.handle_snapshot_failed(next.id);
    assert!(!provider.is_ready() && provider.needs_resync());
    assert_eq!(provider.stats().snapshots_failed, 1);
    let mut out = Vec::new();
    let request = Body::StateRequest {
        view: next.id,
        offset: 0,
        since: None,
    };
    provider.handle_message(ms(2), member(2), request, &mut out);
    assert_eq!(out, vec![], "no chunk of an invented state");

    // A decision naming no holder (never composed, but arriving anyway) is not followed
    // from nothing: the joiner restores nothing and waits for a later view change.
    let orphan = Decision {
        view: view(2, &[2]),
        cut: vec![CutEntry {
            upto: Seq(0),
            holder: Rank(0),
        }],
        joiners: vec![member(2).id],
    };
    let mut joiner = Multicast::new(member(2).id, cfg);
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &orphan, &mut out);
    assert!(
        !out.iter()
            .any(|o| matches!(o, MulticastOutput::Restore { .. })),
        "{out:?}"
    );
    assert!(!joiner.is_ready() && joiner.needs_resync());
}

/// A member ending a view whose cut it cannot get gives up after `flush_fetch_timeout` and
/// waits for a state transfer, when the next view has another holder of the state; when it is
/// the next view's only holder it keeps fetching, since giving up would leave nobody to
/// transfer the state from (sim seed 8850).
#[test]
fn a_cut_out_of_reach_is_given_up_only_when_another_holder_remains() {
    let v = view(1, &[1, 2, 3]);
    let cfg = config(Ordering::Fifo);
    let c_stream = vec![
        entry(1, Ordering::Fifo, Item::Payload(payload("c1"))),
        entry(2, Ordering::Fifo, Item::Payload(payload("c2"))),
    ];
    let cut = vec![
        CutEntry {
            upto: Seq(0),
            holder: Rank(0),
        },
        CutEntry {
            upto: Seq(0),
            holder: Rank(1),
        },
        CutEntry {
            upto: Seq(2),
            holder: Rank(2),
        },
    ];
    let ending = |joiners: Vec<ProcessId>| {
        let mut core = core_in(2, &v, cfg);
        let mut out = Vec::new();
        core.freeze(v.id, &mut out);
        let decision = Decision {
            view: view(2, &[2, 3]),
            cut: cut.clone(),
            joiners,
        };
        core.install_decided(ms(1), v.id, &decision, &mut out);
        assert!(delivered(&out).is_empty(), "the cut is not held yet");
        let late = ms(2) + cfg.flush_fetch_timeout;
        let mut out = Vec::new();
        core.handle_tick(late, &mut out);
        (core, out, late)
    };
    // Member 3 holds the state in the next view: member 2 gives up and waits for a transfer.
    let (core, _, _) = ending(vec![]);
    assert!(core.needs_resync() && !core.is_ready());
    // Member 2 is the next view's only holder: it keeps asking, and ends the view at the cut
    // once the entries come.
    let (mut core, out, late) = ending(vec![member(3).id]);
    assert!(!core.needs_resync(), "giving up would leave no holder");
    assert!(
        out.iter().any(|o| matches!(
            o,
            MulticastOutput::Send { .. } | MulticastOutput::SendAll { .. }
        )),
        "still fetching: {out:?}"
    );
    let mut out = Vec::new();
    core.handle_message(
        late,
        member(3),
        Body::Data {
            view: v.id,
            origin: Rank(2),
            entries: c_stream,
        },
        &mut out,
    );
    core.handle_tick(late + ms(1), &mut out);
    assert_eq!(
        delivered(&out),
        vec![(3, payload("c1")), (3, payload("c2"))]
    );
}

#[test]
fn a_lone_member_is_never_short_of_credit() {
    // No other member acknowledges: its own entries (and order records) are stable at
    // once, so a window of two never stops it, in any ordering, safe delivery included.
    let alone = view(1, &[1]);
    for ordering in [Ordering::Fifo, Ordering::Causal, Ordering::Total] {
        for delivery in [Delivery::Agreed, Delivery::Safe] {
            let cfg = MulticastConfig {
                ordering,
                delivery,
                window_messages: 2,
                outbox_messages: 4,
                ..MulticastConfig::default()
            };
            let mut core = core_in(1, &alone, cfg);
            let mut out = Vec::new();
            for _ in 0..20 {
                core.multicast(ms(0), None, payload("x"), &mut out).unwrap();
                // As the shell does after each burst: the sequencer orders what it has.
                core.flush(ms(0), &mut out);
            }
            assert_eq!(core.outbox_len(), 0, "{ordering} {delivery:?}");
            assert_eq!(delivered(&out).len(), 20, "{ordering} {delivery:?}");
            assert!(core.buffered_entries() <= 2, "{ordering} {delivery:?}");
        }
    }
}

#[test]
fn a_base_member_listed_as_a_learner_keeps_the_state_it_holds_by_the_install() {
    // Member 2 was still fetching the previous cut when it promised, so the decision lists
    // it as a learner; by the install it holds the state. Member 1, the decision's only
    // voter, may have lost its copy since (a failed snapshot): 2 keeps its own.
    let base = view(2, &[1, 2]);
    let mut next = view(3, &[1, 2]);
    next.voters = 1;
    let decision = Decision {
        view: next.clone(),
        cut: vec![
            CutEntry {
                upto: Seq(0),
                holder: Rank(0),
            },
            CutEntry {
                upto: Seq(1),
                holder: Rank(1),
            },
        ],
        joiners: vec![member(2).id],
    };
    let cfg = config(Ordering::Fifo);
    let mut promised = core_in(2, &base, cfg);
    let mut out = Vec::new();
    promised
        .multicast(ms(0), None, payload("mine"), &mut out)
        .unwrap();
    promised.freeze(base.id, &mut out);
    let mut out = Vec::new();
    promised.install_decided(ms(1), base.id, &decision, &mut out);
    assert!(promised.is_ready() && !promised.needs_resync());
    assert!(
        out.iter()
            .any(|o| matches!(o, MulticastOutput::View(c) if c.view == next)),
        "{out:?}"
    );
    assert!(!out.iter().any(|o| matches!(
        o,
        MulticastOutput::Send {
            body: Body::StateRequest { .. },
            ..
        }
    )));

    // One that never promised (its delivery was never stopped at what it reported) is a
    // joiner: it asks for the state, and still answers for what it held of the base,
    // which the cut may need from it alone.
    let mut silent = core_in(2, &base, cfg);
    let mut out = Vec::new();
    silent
        .multicast(ms(0), None, payload("mine"), &mut out)
        .unwrap();
    let mut out = Vec::new();
    silent.install_decided(ms(1), base.id, &decision, &mut out);
    assert!(!silent.is_ready());
    assert!(out.iter().any(|o| matches!(
        o,
        MulticastOutput::Send {
            body: Body::StateRequest { .. },
            ..
        }
    )));
    let nak = Body::Nak {
        view: base.id,
        origin: Rank(1),
        from: Seq(1),
        to: Seq(1),
    };
    let mut out = Vec::new();
    silent.handle_message(ms(2), member(1), nak, &mut out);
    assert_eq!(
        data_to(&out, 1),
        vec![Body::Data {
            view: base.id,
            origin: Rank(1),
            entries: vec![entry(1, Ordering::Fifo, Item::Payload(payload("mine")))],
        }]
    );
}

#[test]
fn a_base_member_listed_as_a_learner_whose_deliveries_the_cut_leaves_out_asks_for_the_state() {
    // Ring seed 16053: member 2 installed the base late, delivered two of its own multicasts
    // and promised to a ballot that lost; the decision's promisers had frozen before they
    // received them, so the cut leaves them out, and the decision lists 2 for its join
    // request only. Going on with its own state would keep two deliveries nobody else made.
    // (In total order a member delivers nothing of its own before the sequencer's order,
    // which the sequencer's report carries into the cut.)
    let base = view(2, &[1, 2]);
    let mut next = view(3, &[1, 2]);
    next.voters = 1;
    let cut_without = |upto: u64| Decision {
        view: next.clone(),
        cut: vec![
            CutEntry {
                upto: Seq(0),
                holder: Rank(0),
            },
            CutEntry {
                upto: Seq(upto),
                holder: Rank(1),
            },
        ],
        joiners: vec![member(2).id],
    };
    for ordering in [Ordering::Fifo, Ordering::Causal] {
        let cfg = config(ordering);
        let mut ahead = core_in(2, &base, cfg);
        let mut out = Vec::new();
        for text in ["first", "second"] {
            ahead
                .multicast(ms(0), None, payload(text), &mut out)
                .unwrap();
        }
        ahead.freeze(base.id, &mut out);
        let mut out = Vec::new();
        ahead.install_decided(ms(1), base.id, &cut_without(1), &mut out);
        assert!(!ahead.is_ready(), "{ordering}");
        assert!(
            !out.iter().any(|o| matches!(o, MulticastOutput::View(_))),
            "{ordering}: {out:?}"
        );
        assert!(
            out.iter().any(|o| matches!(
                o,
                MulticastOutput::Send {
                    body: Body::StateRequest { .. },
                    ..
                }
            )),
            "{ordering}: {out:?}"
        );

        // The same member with a cut that covers both goes on with its state.
        let mut covered = core_in(2, &base, cfg);
        let mut out = Vec::new();
        for text in ["first", "second"] {
            covered
                .multicast(ms(0), None, payload(text), &mut out)
                .unwrap();
        }
        covered.freeze(base.id, &mut out);
        let mut out = Vec::new();
        covered.install_decided(ms(1), base.id, &cut_without(2), &mut out);
        assert!(covered.is_ready(), "{ordering}");
    }
}

#[test]
fn a_joiner_gets_the_state_in_chunks_before_its_first_view() {
    let first = view(1, &[1]);
    let next = view(2, &[1, 2]);
    let cfg = MulticastConfig {
        state_chunk_bytes: 4,
        state_window_chunks: 2,
        ..config(Ordering::Total)
    };
    let mut provider = core_in(1, &first, cfg);
    let decision = Decision {
        view: next.clone(),
        cut: vec![CutEntry {
            upto: Seq(0),
            holder: Rank(0),
        }],
        joiners: vec![member(2).id],
    };
    let mut out = Vec::new();
    provider.freeze(first.id, &mut out);
    assert_eq!(out, vec![MulticastOutput::Block]);
    let mut out = Vec::new();
    provider.install_decided(ms(1), first.id, &decision, &mut out);
    assert_eq!(
        out.last(),
        Some(&MulticastOutput::SnapshotWanted(next.id)),
        "{out:?}"
    );
    provider.handle_snapshot(next.id, payload("0123456789"));
    let mut joiner = Multicast::new(member(2).id, cfg);
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &decision, &mut out);
    let request = |offset| MulticastOutput::Send {
        to: member(1).addr,
        body: Body::StateRequest {
            view: next.id,
            offset,
            since: None,
        },
    };
    assert_eq!(out, vec![request(0)]);
    assert!(!joiner.is_ready());
    let chunk = |offset: u64, bytes: &'static str| MulticastOutput::Send {
        to: member(2).addr,
        body: Body::StateChunk {
            view: next.id,
            offset,
            total: 10,
            since: None,
            bytes: payload(bytes),
        },
    };
    let mut out = Vec::new();
    let Some(MulticastOutput::Send { body, .. }) = [request(0)].into_iter().next() else {
        unreachable!()
    };
    provider.handle_message(ms(2), member(2), body, &mut out);
    assert_eq!(out, vec![chunk(0, "0123"), chunk(4, "4567")]);
    let mut joiner_out = Vec::new();
    for o in out {
        let MulticastOutput::Send { body, .. } = o else {
            unreachable!()
        };
        joiner.handle_message(ms(3), member(1), body, &mut joiner_out);
    }
    assert_eq!(joiner_out, vec![request(8)]);
    let mut out = Vec::new();
    let MulticastOutput::Send { body, .. } = request(8) else {
        unreachable!()
    };
    provider.handle_message(ms(4), member(2), body, &mut out);
    assert_eq!(out, vec![chunk(8, "89")]);
    let MulticastOutput::Send { body, .. } = out.pop().unwrap() else {
        unreachable!()
    };
    let mut joiner_out = Vec::new();
    joiner.handle_message(ms(5), member(1), body, &mut joiner_out);
    assert_eq!(
        joiner_out,
        vec![
            MulticastOutput::Restore {
                view: next.id,
                state: payload("0123456789"),
                since: None,
            },
            MulticastOutput::View(ViewChange::between(None, next)),
        ]
    );
    assert!(joiner.is_ready());
}

/// A provider (member 1) of `next`'s state with snapshot `state`, and the decision that has
/// member 2 join from `first`.
fn provider_with_snapshot(
    first: &View,
    next: &View,
    cfg: MulticastConfig,
    state: &'static str,
) -> (Multicast, Decision) {
    let mut provider = core_in(1, first, cfg);
    let decision = Decision {
        view: next.clone(),
        cut: vec![CutEntry {
            upto: Seq(0),
            holder: Rank(0),
        }],
        joiners: vec![member(2).id],
    };
    let mut out = Vec::new();
    provider.freeze(first.id, &mut out);
    let mut out = Vec::new();
    provider.install_decided(ms(1), first.id, &decision, &mut out);
    assert_eq!(out.last(), Some(&MulticastOutput::SnapshotWanted(next.id)));
    provider.handle_snapshot(next.id, payload(state));
    (provider, decision)
}

/// The bodies of the `Send`s in `out`.
fn bodies(out: Vec<MulticastOutput>) -> Vec<Body> {
    out.into_iter()
        .filter_map(|o| match o {
            MulticastOutput::Send { body, .. } => Some(body),
            _ => None,
        })
        .collect()
}

fn state_chunk(
    view: ViewId,
    offset: u64,
    total: u64,
    since: Option<u64>,
    bytes: &'static str,
) -> Body {
    Body::StateChunk {
        view,
        offset,
        total,
        since,
        bytes: payload(bytes),
    }
}

#[test]
fn a_joiner_with_a_position_catches_up_by_a_delta_served_in_chunks() {
    let (first, next) = (view(1, &[1]), view(2, &[1, 2]));
    let cfg = MulticastConfig {
        state_chunk_bytes: 4,
        state_window_chunks: 2,
        ..config(Ordering::Total)
    };
    let (mut provider, decision) = provider_with_snapshot(&first, &next, cfg, "0123456789");
    let mut joiner = Multicast::new(member(2).id, cfg);
    joiner.set_catch_up_from(Some(7));
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &decision, &mut out);
    let request = |offset, since| Body::StateRequest {
        view: next.id,
        offset,
        since,
    };
    assert_eq!(
        bodies(out),
        vec![request(0, Some(7))],
        "the joiner says where it is"
    );

    // The provider asks its service once, and keeps the joiner waiting meanwhile.
    let mut out = Vec::new();
    provider.handle_message(ms(2), member(2), request(0, Some(7)), &mut out);
    assert_eq!(
        out,
        vec![MulticastOutput::DeltaWanted {
            view: next.id,
            since: 7
        }]
    );
    let mut out = Vec::new();
    provider.handle_message(ms(3), member(2), request(0, Some(7)), &mut out);
    assert_eq!(
        out,
        vec![],
        "asked once per (view, position); nothing sent yet"
    );

    // The answer goes to the joiner at once, in chunks that say it is a delta from 7.
    let mut out = Vec::new();
    provider.handle_delta(next.id, 7, Some(payload("abcdef")), &mut out);
    let window = bodies(out);
    assert_eq!(
        window,
        vec![
            state_chunk(next.id, 0, 6, Some(7), "abcd"),
            state_chunk(next.id, 4, 6, Some(7), "ef"),
        ]
    );
    assert_eq!(provider.stats().deltas_served, 1);
    let mut out = Vec::new();
    for body in window {
        joiner.handle_message(ms(4), member(1), body, &mut out);
    }
    assert_eq!(
        out,
        vec![
            MulticastOutput::Restore {
                view: next.id,
                state: payload("abcdef"),
                since: Some(7),
            },
            MulticastOutput::View(ViewChange::between(None, next.clone())),
        ]
    );
    assert!(joiner.is_ready());
    assert_eq!(
        (
            joiner.stats().state_transfers,
            joiner.stats().delta_transfers
        ),
        (1, 1)
    );
    // Its state has moved: the position no longer says where it is.
    assert_eq!(joiner.catch_up_from(), None);
    joiner.set_catch_up_from(Some(3));
    assert_eq!(joiner.catch_up_from(), None, "ignored once the state moved");

    // A later request for the same position is served the same delta (a lost chunk).
    let mut out = Vec::new();
    provider.handle_message(ms(5), member(2), request(4, Some(7)), &mut out);
    assert_eq!(bodies(out), vec![state_chunk(next.id, 4, 6, Some(7), "ef")]);
}

#[test]
fn a_provider_whose_service_has_no_delta_serves_the_whole_snapshot() {
    let (first, next) = (view(1, &[1]), view(2, &[1, 2]));
    let cfg = MulticastConfig {
        state_chunk_bytes: 4,
        state_window_chunks: 4,
        ..config(Ordering::Fifo)
    };
    let (mut provider, decision) = provider_with_snapshot(&first, &next, cfg, "0123456789");
    let mut joiner = Multicast::new(member(2).id, cfg);
    joiner.set_catch_up_from(Some(7));
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &decision, &mut out);
    let Some(request) = bodies(out).pop() else {
        panic!("a request")
    };
    let mut out = Vec::new();
    provider.handle_message(ms(2), member(2), request.clone(), &mut out);
    assert!(matches!(
        out[..],
        [MulticastOutput::DeltaWanted { since: 7, .. }]
    ));
    let mut out = Vec::new();
    provider.handle_delta(next.id, 7, None, &mut out);
    let window = bodies(out);
    assert_eq!(
        window,
        vec![
            state_chunk(next.id, 0, 10, None, "0123"),
            state_chunk(next.id, 4, 10, None, "4567"),
            state_chunk(next.id, 8, 10, None, "89"),
        ]
    );
    assert_eq!(provider.stats().deltas_served, 0);
    // Asked again, it does not ask its service again: the whole snapshot.
    let mut out = Vec::new();
    provider.handle_message(ms(3), member(2), request, &mut out);
    assert_eq!(bodies(out), window);
    let mut out = Vec::new();
    for body in window {
        joiner.handle_message(ms(4), member(1), body, &mut out);
    }
    assert_eq!(
        out[0],
        MulticastOutput::Restore {
            view: next.id,
            state: payload("0123456789"),
            since: None,
        }
    );
    assert_eq!(
        (
            joiner.stats().state_transfers,
            joiner.stats().delta_transfers
        ),
        (1, 0)
    );

    // A provider without a position asks for nothing and serves the snapshot at once; one
    // whose snapshot failed asks for no delta either.
    let mut out = Vec::new();
    provider.handle_message(
        ms(5),
        member(2),
        Body::StateRequest {
            view: next.id,
            offset: 8,
            since: None,
        },
        &mut out,
    );
    assert_eq!(bodies(out), vec![state_chunk(next.id, 8, 10, None, "89")]);
    provider.handle_snapshot_failed(next.id);
    let mut out = Vec::new();
    provider.handle_message(
        ms(6),
        member(2),
        Body::StateRequest {
            view: next.id,
            offset: 0,
            since: Some(3),
        },
        &mut out,
    );
    assert_eq!(out, vec![]);
}

#[test]
fn chunks_of_a_delta_and_of_a_snapshot_are_never_mixed() {
    let (first, next) = (view(1, &[1]), view(2, &[1, 2]));
    let cfg = MulticastConfig {
        state_chunk_bytes: 4,
        state_window_chunks: 1,
        ..config(Ordering::Fifo)
    };
    let (_, decision) = provider_with_snapshot(&first, &next, cfg, "0123456789");
    let mut joiner = Multicast::new(member(2).id, cfg);
    joiner.set_catch_up_from(Some(7));
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &decision, &mut out);
    let mut out = Vec::new();
    joiner.handle_message(
        ms(2),
        member(1),
        state_chunk(next.id, 0, 6, Some(7), "abcd"),
        &mut out,
    );
    assert_eq!(
        bodies(out),
        vec![Body::StateRequest {
            view: next.id,
            offset: 4,
            since: Some(7),
        }]
    );
    // A snapshot's chunk at the next offset, and a delta's from another position: ignored.
    for stray in [
        state_chunk(next.id, 4, 10, None, "4567"),
        state_chunk(next.id, 4, 6, Some(3), "ef"),
        state_chunk(next.id, 4, 6, None, "ef"),
    ] {
        let mut out = Vec::new();
        joiner.handle_message(ms(3), member(1), stray, &mut out);
        assert_eq!(out, vec![]);
        assert!(!joiner.is_ready());
    }
    let mut out = Vec::new();
    joiner.handle_message(
        ms(4),
        member(1),
        state_chunk(next.id, 4, 6, Some(7), "ef"),
        &mut out,
    );
    assert!(matches!(
        &out[0],
        MulticastOutput::Restore { since: Some(7), state, .. } if *state == payload("abcdef")
    ));

    // A joiner without a position takes no delta at all.
    let mut plain = Multicast::new(member(2).id, cfg);
    let mut out = Vec::new();
    plain.install_decided(ms(1), first.id, &decision, &mut out);
    let mut out = Vec::new();
    plain.handle_message(
        ms(2),
        member(1),
        state_chunk(next.id, 0, 4, Some(7), "abcd"),
        &mut out,
    );
    assert_eq!(out, vec![]);
    plain.handle_message(
        ms(2),
        member(1),
        state_chunk(next.id, 0, 4, None, "0123"),
        &mut out,
    );
    assert!(matches!(
        &out[0],
        MulticastOutput::Restore { since: None, .. }
    ));
}

#[test]
fn a_delta_larger_than_the_joiner_takes_falls_back_to_the_snapshot() {
    let (first, next) = (view(1, &[1]), view(2, &[1, 2]));
    let cfg = MulticastConfig {
        state_bytes_max: 8,
        ..config(Ordering::Fifo)
    };
    let (_, decision) = provider_with_snapshot(&first, &next, cfg, "0123");
    let mut joiner = Multicast::new(member(2).id, cfg);
    joiner.set_catch_up_from(Some(7));
    let mut out = Vec::new();
    joiner.install_decided(ms(1), first.id, &decision, &mut out);
    let mut out = Vec::new();
    joiner.handle_message(
        ms(2),
        member(1),
        state_chunk(next.id, 0, 9, Some(7), "abcd"),
        &mut out,
    );
    assert_eq!(
        bodies(out),
        vec![Body::StateRequest {
            view: next.id,
            offset: 0,
            since: None,
        }]
    );
}

#[test]
fn a_provider_asks_for_a_bounded_number_of_deltas_per_view() {
    let (first, next) = (view(1, &[1]), view(2, &[1, 2]));
    let cfg = config(Ordering::Fifo);
    let (mut provider, _) = provider_with_snapshot(&first, &next, cfg, "0123");
    let mut asked = 0;
    for since in 1..=(transfer::DELTAS_PER_VIEW as u64 + 3) {
        let mut out = Vec::new();
        let request = Body::StateRequest {
            view: next.id,
            offset: 0,
            since: Some(since),
        };
        provider.handle_message(ms(2), member(2), request, &mut out);
        match &out[..] {
            [MulticastOutput::DeltaWanted { .. }] => asked += 1,
            other => assert_eq!(
                bodies(other.to_vec()),
                vec![state_chunk(next.id, 0, 4, None, "0123")]
            ),
        }
    }
    assert_eq!(asked, transfer::DELTAS_PER_VIEW);
    // An answer goes to the joiner that asked.
    let mut out = Vec::new();
    provider.handle_delta(next.id, 1, Some(payload("d1")), &mut out);
    assert_eq!(bodies(out), vec![state_chunk(next.id, 0, 2, Some(1), "d1")]);
    // They are forgotten with the snapshot: a late answer is dropped.
    provider.handle_snapshot_failed(next.id);
    let mut out = Vec::new();
    provider.handle_delta(next.id, 2, Some(payload("d2")), &mut out);
    assert_eq!(out, vec![]);
}

#[test]
fn a_created_view_or_a_restore_ends_the_catch_up() {
    let alone = view(1, &[1]);
    let mut core = Multicast::new(member(1).id, config(Ordering::Fifo));
    core.set_catch_up_from(Some(5));
    assert_eq!(core.catch_up_from(), Some(5));
    let mut out = Vec::new();
    core.install_created(&alone, &mut out);
    assert_eq!(core.catch_up_from(), None);
}

/// The places in the `Order` records among the `Data` bodies of `out` sent to member `to`.
fn places_to(out: &[MulticastOutput], to: u64) -> Vec<(Rank, Seq)> {
    data_to(out, to)
        .into_iter()
        .flat_map(|body| match body {
            Body::Data { entries, .. } => entries,
            _ => Vec::new(),
        })
        .flat_map(|e| match e.item {
            Item::Order(places) => places,
            Item::Payload(_) => Vec::new(),
        })
        .collect()
}

fn data_from(core_out: &[MulticastOutput], to: u64) -> Body {
    data_to(core_out, to).pop().expect("a Data body")
}

#[test]
fn the_sequencer_orders_by_arrival_and_its_own_once_a_member_holds_them() {
    let v = view(1, &[1, 2, 3]);
    let mut s = core_in(1, &v, config(Ordering::Total));
    let mut b = core_in(2, &v, config(Ordering::Total));
    let mut c = core_in(3, &v, config(Ordering::Total));
    // Member 3's multicast arrives first, then member 2's, then the sequencer multicasts.
    let mut c_out = Vec::new();
    c.multicast(ms(0), None, payload("c1"), &mut c_out).unwrap();
    c.flush(ms(0), &mut c_out);
    let mut b_out = Vec::new();
    b.multicast(ms(0), None, payload("b1"), &mut b_out).unwrap();
    b.flush(ms(0), &mut b_out);
    let mut s_out = Vec::new();
    s.handle_message(ms(1), member(3), data_from(&c_out, 1), &mut s_out);
    s.handle_message(ms(1), member(2), data_from(&b_out, 1), &mut s_out);
    s.multicast(ms(1), None, payload("s1"), &mut s_out).unwrap();
    s.flush(ms(1), &mut s_out);
    assert_eq!(
        places_to(&s_out, 2),
        vec![(Rank(2), Seq(1)), (Rank(1), Seq(1))],
        "arrival order, not rank order; its own waits until a member holds it"
    );
    assert_eq!(
        delivered(&s_out),
        vec![(3, payload("c1")), (2, payload("b1"))]
    );
    // Member 2 holds the sequencer's multicast and says so at once (not after
    // `ack_interval`): then it is ordered and delivered.
    let mut b_in = Vec::new();
    b.handle_message(ms(2), member(1), data_from(&s_out, 2), &mut b_in);
    b.flush(ms(2), &mut b_in);
    let ack = b_in
        .iter()
        .find_map(|o| match o {
            MulticastOutput::SendAll { to, body } if to.contains(&member(1).addr) => {
                matches!(body, Body::Ack { .. }).then(|| body.clone())
            }
            _ => None,
        })
        .expect("member 2 acknowledges the sequencer's multicast at its next flush");
    let mut s_out = Vec::new();
    s.handle_message(ms(3), member(2), ack, &mut s_out);
    s.flush(ms(3), &mut s_out);
    assert_eq!(places_to(&s_out, 3), vec![(Rank(0), Seq(1))]);
    assert_eq!(delivered(&s_out), vec![(1, payload("s1"))]);
}

#[test]
fn acks_wait_for_the_interval_unless_bytes_or_the_sequencer_urge_them() {
    let v = view(1, &[1, 2]);
    let cfg = MulticastConfig {
        ack_bytes: 100,
        ..config(Ordering::Fifo)
    };
    let mut b = core_in(2, &v, cfg);
    let acks = |out: &[MulticastOutput]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    MulticastOutput::SendAll {
                        body: Body::Ack { .. },
                        ..
                    }
                )
            })
            .count()
    };
    let mut out = Vec::new();
    b.flush(ms(0), &mut out);
    assert_eq!(acks(&out), 1, "the first ack of the view");
    let small = |seq, ordering| Body::Data {
        view: v.id,
        origin: Rank(0),
        entries: vec![entry(
            seq,
            ordering,
            Item::Payload(payload(
                "sixty bytes of fifo payload, well under the ack_bytes of 100",
            )),
        )],
    };
    let mut out = Vec::new();
    b.handle_message(ms(1), member(1), small(1, Ordering::Fifo), &mut out);
    b.flush(ms(1), &mut out);
    assert_eq!(acks(&out), 0, "60 bytes: waits for the interval");
    let mut out = Vec::new();
    b.handle_message(ms(2), member(1), small(2, Ordering::Fifo), &mut out);
    b.flush(ms(2), &mut out);
    assert_eq!(acks(&out), 1, "120 bytes since the last ack");
    let mut out = Vec::new();
    b.handle_message(ms(3), member(1), small(3, Ordering::Total), &mut out);
    b.flush(ms(3), &mut out);
    assert_eq!(acks(&out), 1, "the sequencer waits for a total-order entry");
}

/// A sender in a view of two whose byte window is between 1 KiB and 8 KiB, with a 5 ms
/// target, and 64 multicasts of 100 bytes waiting.
fn flow_sender() -> (View, Multicast) {
    let v = view(1, &[1, 2]);
    let cfg = MulticastConfig {
        window_min_bytes: 1024,
        window_bytes: 8192,
        window_target_latency: ms(5),
        outbox_messages: 64,
        ..config(Ordering::Fifo)
    };
    let mut a = core_in(1, &v, cfg);
    let mut out = Vec::new();
    for _ in 0..64 {
        a.multicast(ms(0), None, Bytes::from(vec![7u8; 100]), &mut out)
            .unwrap();
    }
    (v, a)
}

/// Member 2 acknowledges everything member 1 sent, at `at`; returns member 1's window.
fn ack_all(v: &View, a: &mut Multicast, at: Time) -> usize {
    let sent = a.current.as_ref().unwrap().next_seq().0 - 1;
    let ack = Body::Ack {
        view: v.id,
        received: vec![Seq(sent), Seq(0)],
    };
    a.handle_message(at, member(2), ack, &mut Vec::new());
    let view = a.current.as_ref().unwrap();
    view.window.limit(&a.config)
}

#[test]
fn the_byte_window_bounds_what_is_unstable_and_follows_the_stability_delay() {
    let (v, mut a) = flow_sender();
    let unstable = |a: &Multicast| a.current.as_ref().unwrap().unstable_bytes;
    // 124 bytes an entry: 8 fit the floor of 1 KiB, the rest wait.
    assert!(unstable(&a) <= 1024 && unstable(&a) > 1024 - 124);
    assert_eq!(a.outbox_len(), 64 - 8);
    // Stable within the target while the window held multicasts back: it grows by what
    // was freed, and never past what it allows.
    let grown = ack_all(&v, &mut a, ms(1));
    assert_eq!(grown, 1024 + 8 * 124);
    assert!(unstable(&a) <= grown);
    let grown = ack_all(&v, &mut a, ms(2));
    assert!(grown > 1024 + 8 * 124 && unstable(&a) <= grown);
    // Stable only 20 ms later: a quarter less, once per target interval.
    let cut = ack_all(&v, &mut a, ms(22));
    assert_eq!(cut, grown - grown / 4);
    assert!(unstable(&a) <= cut);
    let again = ack_all(&v, &mut a, ms(23));
    assert!(again >= cut, "no second cut within 5 ms of the first");
    // Slow acks while multicasts wait take it down to the floor, never below; it still
    // sends.
    for t in [40, 60, 80, 100, 120, 140, 160] {
        while a.outbox_len() < 64 {
            a.multicast(
                ms(t - 19),
                None,
                Bytes::from(vec![7u8; 100]),
                &mut Vec::new(),
            )
            .unwrap();
        }
        let window = ack_all(&v, &mut a, ms(t));
        assert!(window >= 1024);
        assert!(unstable(&a) <= window);
    }
    assert_eq!(a.current.as_ref().unwrap().window.limit(&a.config), 1024);
    assert!(unstable(&a) > 0, "still sending at the floor");
}

#[test]
fn a_window_that_holds_nothing_back_does_not_move_and_one_entry_always_goes() {
    let v = view(1, &[1, 2]);
    let cfg = MulticastConfig {
        window_min_bytes: 50,
        window_bytes: 50,
        ..config(Ordering::Fifo)
    };
    let mut a = core_in(1, &v, cfg);
    let mut out = Vec::new();
    // Larger than the whole window: sent alone, never stuck.
    a.multicast(ms(0), None, Bytes::from(vec![1u8; 200]), &mut out)
        .unwrap();
    a.multicast(ms(0), None, Bytes::from(vec![2u8; 200]), &mut out)
        .unwrap();
    assert_eq!(delivered(&out).len(), 1);
    assert_eq!(ack_all(&v, &mut a, ms(100)), 50);
    assert_eq!(
        a.outbox_len(),
        0,
        "the second went once the first was stable"
    );
    // Below saturation the window is never what holds a sender back: slow acks leave it.
    let (v, mut b) = flow_sender();
    let first = ack_all(&v, &mut b, ms(1));
    let mut out = Vec::new();
    while b.outbox_len() > 0 {
        let t = ms(2);
        ack_all(&v, &mut b, t);
        b.flush(t, &mut out);
    }
    let settled = ack_all(&v, &mut b, ms(500));
    assert!(
        settled >= first,
        "a slow ack with nothing waiting does not shrink it"
    );
}
