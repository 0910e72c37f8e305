//! Fuzz: an `Endpoint` and its connections under arbitrary sequences of forged and
//! garbage datagrams, time steps and application calls (see endpoint_driver.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

mod endpoint_driver;

fuzz_target!(|data: &[u8]| {
    endpoint_driver::run(data);
});
