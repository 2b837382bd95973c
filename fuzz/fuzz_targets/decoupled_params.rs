#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockspire::fuzz::decoupled_params(data));
