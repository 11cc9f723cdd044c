//! `cargo +nightly fuzz run multicast_messages`: see viewsync_tests::fuzz_bodies::multicast_messages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::multicast_messages(data);
});
