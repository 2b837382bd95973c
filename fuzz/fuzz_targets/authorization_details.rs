#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lockspire::fuzz::authorization_details(data));
