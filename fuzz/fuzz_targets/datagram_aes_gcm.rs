//! Fuzz: open + parse hostile datagrams, and seal/open round trips, under the
//! aes_gcm envelope with every header (see common.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mkcp_proto::wire::Security;

mod common;

fuzz_target!(|data: &[u8]| {
    common::run(
        &Security::AesGcm {
            seed: "some-seed".to_string(),
        },
        data,
    );
});
