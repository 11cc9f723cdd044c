//! `cargo +nightly fuzz run membership_messages`: see viewsync_tests::fuzz_bodies::membership_messages.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::membership_messages(data);
});
