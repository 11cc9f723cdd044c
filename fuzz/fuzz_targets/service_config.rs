//! `cargo +nightly fuzz run service_config`: see viewsync_tests::fuzz_bodies::service_config.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    viewsync_tests::fuzz_bodies::service_config(data);
});
