//! The cut that ends a view: composing it from the promisers' reports, and delivering it.
//!
//! When a member promises in a view change it freezes: it delivers nothing beyond what it
//! held at that moment and sends nothing more in the view. The decided cut is, per stream,
//! the maximum any promiser held, so it covers everything any survivor delivered. Survivors
//! fetch what they lack of the cut, deliver exactly the cut (a fixed function of the cut's
//! contents, the same everywhere), then install the next view.

#[cfg(feature = "planted-bugs")]
use super::super::planted::{self, PlantedBug};
use super::output::MulticastOutput;
use super::view_stream::ViewStream;
use crate::proto::Time;
use crate::wire::{CutEntry, Decision, FlushReport, Rank, Seq};

/// A view ending: the old streams, and the cut to deliver before the next view.
#[derive(Debug)]
pub(super) struct Ending {
    /// The ending view's streams.
    pub(super) stream: ViewStream,
    /// The decided cut of the ending view.
    pub(super) cut: Vec<CutEntry>,
    /// The decision that ends it (the next view and its joiners).
    pub(super) decision: Decision,
    /// Since when the cut is awaited.
    pub(super) since: Time,
}

impl Ending {
    /// Whether this member holds every entry of the cut.
    pub(super) fn holds_cut(&self) -> bool {
        self.stream.holds(&self.cut)
    }

    /// Ends the view at the cut: delivers exactly the entries the cut determines, the same at
    /// every survivor whatever each had delivered before.
    pub(super) fn deliver_cut(&mut self, safe: bool, out: &mut Vec<MulticastOutput>) {
        let (stream, cut) = (&mut self.stream, &self.cut);
        debug_assert_eq!(
            cut.len(),
            stream.streams.len(),
            "a cut has a stream per member"
        );
        stream.limit = Some(cut.iter().map(|c| c.upto).collect());
        stream.flushing = true;
        stream.consume_records(safe);
        // Places given to entries past the cut are void.
        stream.order.void_past(cut);
        let mut appended_unordered = false;
        loop {
            stream.deliver(safe, out);
            if !appended_unordered {
                // Total-order entries of the cut that the sequencer never ordered follow the
                // ordered ones, by (rank, seq).
                appended_unordered = true;
                stream.order.append_unordered(&stream.streams, cut);
                continue;
            }
            // Still stuck: a head whose causal past lies beyond the cut, or the total order
            // waiting on such a stream. Abandon that stream (only a non-survivor's can be).
            let stuck = match stream.order.next_turn() {
                Some(r) if !stream.streams[r.index()].abandoned => Some(r),
                _ => (0..stream.streams.len())
                    .find(|&r| {
                        let s = &stream.streams[r];
                        !s.abandoned && s.delivered < cut[r].upto
                    })
                    .map(Rank::of),
            };
            let Some(rank) = stuck else { break };
            stream.streams[rank.index()].abandoned = true;
            stream.order.abandon(rank);
        }
    }
}

/// Composes the cut of a view change from the promisers' reports: per stream, the most any
/// promiser holds, and one promiser that holds it. `base_len` is the base view's size; each
/// report comes with its promiser's rank (position) in the base view.
pub fn compose_cut<'a>(
    base_len: usize,
    reports: impl Iterator<Item = (usize, &'a FlushReport)>,
) -> Vec<CutEntry> {
    #[cfg(feature = "planted-bugs")]
    if planted::active(PlantedBug::CutMinimum) {
        return planted::cut_minimum(base_len, reports);
    }
    let mut cut: Vec<CutEntry> = (0..base_len)
        .map(|r| CutEntry {
            upto: Seq::ZERO,
            holder: Rank::of(r),
        })
        .collect();
    for (rank, report) in reports {
        if report.received.len() != base_len {
            continue;
        }
        for (stream, &upto) in report.received.iter().enumerate() {
            if upto > cut[stream].upto {
                cut[stream] = CutEntry {
                    upto,
                    holder: Rank::of(rank),
                };
            }
        }
    }
    cut
}
