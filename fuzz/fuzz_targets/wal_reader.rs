//! `cargo +nightly fuzz run wal_reader`: see viewsync_tests::fuzz_bodies::wal_reader.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::wal_reader(data);
});
