//! The config importers never panic, and whatever they accept validates. Shared by the
//! `config_json` cargo-fuzz target and `crates/mkcp-proto/tests/fuzz_smoke.rs`.

use mkcp_proto::Config;

fn accepted(config: &Config) {
    config.validate().expect("imported config must validate");
    assert!(config.mss() > 0 && config.v2ray_mss() >= config.mss());
    assert!(config.sending_window() >= 8 && config.receiving_window() >= 8);
    let _ = config.send_buffer_segments();
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for result in [
        Config::from_kcp_settings_json(text),
        Config::from_stream_settings_json(text),
        Config::from_v2ray_config_json(text).map(|(c, _)| c),
        Config::from_json_any(text).map(|l| l.config),
    ] {
        match result {
            Ok(config) => accepted(&config),
            // Errors must render (every variant has a message).
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}
