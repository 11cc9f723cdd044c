//! `cargo +nightly fuzz run active_replica`: see viewsync_tests::fuzz_bodies::active_replica.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::active_replica(data);
});
