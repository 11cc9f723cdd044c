//! `cargo +nightly fuzz run failure_detector`: see viewsync_tests::fuzz_bodies::failure_detector.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::failure_detector(data);
});
