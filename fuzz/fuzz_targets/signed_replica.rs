//! `cargo +nightly fuzz run signed_replica`: see viewsync_tests::fuzz_bodies::signed_replica.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::signed_replica(data);
});
