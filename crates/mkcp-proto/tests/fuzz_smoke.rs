//! A bounded run of every fuzz target on stable Rust, for CI: each target's body (shared
//! with `fuzz/fuzz_targets`) over its committed seeds and a few thousand seeded random
//! inputs. Not coverage-guided; the long runs are cargo-fuzz's (`fuzz/run_all.sh`).

#[path = "../../../fuzz/fuzz_targets/common.rs"]
mod common;
#[cfg(feature = "json")]
#[path = "../../../fuzz/fuzz_targets/config_driver.rs"]
mod config_driver;
#[path = "../../../fuzz/fuzz_targets/endpoint_driver.rs"]
mod endpoint_driver;

use std::path::PathBuf;

use mkcp_proto::wire::Security;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push(bytes);
            }
        }
    }
    out
}

/// `count` random inputs of up to `max_len` bytes, some of them mutations of `seeds`.
fn inputs(seed: u64, count: usize, max_len: usize, seeds: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            if !seeds.is_empty() && rng.gen_bool(0.5) {
                let mut v = seeds[rng.gen_range(0..seeds.len())].clone();
                for _ in 0..rng.gen_range(1..8) {
                    if v.is_empty() {
                        break;
                    }
                    let i = rng.gen_range(0..v.len());
                    v[i] = rng.gen();
                }
                v
            } else {
                let mut v = vec![0u8; rng.gen_range(0..max_len)];
                rng.fill_bytes(&mut v);
                v
            }
        })
        .collect()
}

#[test]
fn datagram_targets_on_seeds_and_random_inputs() {
    for (target, security) in [
        ("datagram_legacy", Security::Legacy),
        ("datagram_aes_gcm", Security::AesGcm { seed: "s".into() }),
        ("datagram_raw", Security::Raw),
    ] {
        let s = seeds(target);
        for input in s.iter().chain(inputs(11, 3000, 2100, &s).iter()) {
            common::run(&security, input);
        }
    }
}

#[cfg(feature = "json")]
#[test]
fn config_target_on_seeds_and_random_inputs() {
    let s = seeds("config_json");
    assert!(!s.is_empty(), "the config seeds are missing");
    for input in s.iter().chain(inputs(12, 3000, 600, &s).iter()) {
        config_driver::run(input);
    }
}

#[test]
fn endpoint_target_on_random_inputs() {
    let s = seeds("endpoint");
    for input in s.iter().chain(inputs(13, 4000, 3000, &s).iter()) {
        endpoint_driver::run(input);
    }
}
