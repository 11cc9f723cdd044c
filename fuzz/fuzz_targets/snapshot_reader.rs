//! `cargo +nightly fuzz run snapshot_reader`: see viewsync_tests::fuzz_bodies::snapshot_reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::snapshot_reader(data);
});
