#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockspire::fuzz::protected_request(data));
