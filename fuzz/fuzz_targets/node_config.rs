//! `cargo +nightly fuzz run node_config`: see viewsync_tests::fuzz_bodies::node_config.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::node_config(data);
});
