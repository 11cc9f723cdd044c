//! `cargo +nightly fuzz run frame_decoder`: see viewsync_tests::fuzz_bodies::frame_decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::frame_decoder(data);
});
