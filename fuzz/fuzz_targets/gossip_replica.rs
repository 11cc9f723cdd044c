//! `cargo +nightly fuzz run gossip_replica`: see viewsync_tests::fuzz_bodies::gossip_replica.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::gossip_replica(data);
});
