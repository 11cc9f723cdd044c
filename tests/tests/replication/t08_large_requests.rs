//! Requests near the size limit: the largest one a group takes is replicated (its update,
//! carrying the request and a response as large, still fits in one multicast), one byte over
//! is refused as too large before anything is executed, and the primary keeps serving.

use super::fixture::*;
use viewsync::proto::node::request_bytes_max;
use viewsync::wire::Refusal;
use viewsync_services::frontend::{FrontEndError, Routing};
use viewsync_services::state_machine::kv::{KvOp, KvOutput, KvStore};
use viewsync_tests::process::timing_shared;

#[test]
fn the_largest_request_is_replicated_and_a_larger_one_refused() {
    let _shared = timing_shared();
    let mut cluster = start_cluster(3, "passive", "kv", "grouped");
    let limit =
        request_bytes_max(viewsync::proto::multicast::MulticastConfig::default().payload_bytes_max);
    // The request's encoding adds the id, the machine name and the key around the value.
    let big = "x".repeat(limit - 200);
    let other = "y".repeat(limit - 200);
    runtime().block_on(async {
        let mut fe = front_end::<KvStore>(cluster.addrs(), key(&cluster), "kv", Routing::Primary);
        assert_eq!(
            fe.call(KvOp::put("big", big.clone())).await.unwrap(),
            KvOutput::Written
        );
        // A compare-and-swap that fails answers with the current value: a request and a
        // response of the largest size in one update.
        let out = fe
            .call(KvOp::cas("big", Some("nope"), other.clone()))
            .await
            .unwrap();
        assert_eq!(
            out,
            KvOutput::CasMismatch {
                current: Some(big.clone())
            }
        );
        match fe.call(KvOp::put("big", "z".repeat(limit + 1))).await {
            Err(FrontEndError::Refused(Refusal::TooLarge { .. })) => {}
            other => panic!("a request over the limit is refused as too large: {other:?}"),
        }
        assert_eq!(
            fe.call(KvOp::get("big")).await.unwrap(),
            KvOutput::value(&big)
        );
    });
    for id in [1, 2, 3] {
        assert!(cluster.node(id).is_running(), "node {id} keeps serving");
    }
}
