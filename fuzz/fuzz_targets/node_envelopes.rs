//! `cargo +nightly fuzz run node_envelopes`: see viewsync_tests::fuzz_bodies::node_envelopes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::node_envelopes(data);
});
