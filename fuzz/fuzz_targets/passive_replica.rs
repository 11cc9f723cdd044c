//! `cargo +nightly fuzz run passive_replica`: see viewsync_tests::fuzz_bodies::passive_replica.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::passive_replica(data);
});
