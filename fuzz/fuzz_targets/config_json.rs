//! Fuzz: the V2Ray/Xray JSON importers never panic, and whatever they accept validates.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod config_driver;

fuzz_target!(|data: &[u8]| {
    config_driver::run(data);
});
