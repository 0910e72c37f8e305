//! Tests of the JSON import: every shape, V2Ray's rules, finalmask, and the failures.

use super::*;
use crate::config::MIB;
use crate::wire::header::HeaderError;
use crate::wire::{HeaderKind, Security};

fn kcp(json: &str) -> Result<Config, ConfigError> {
    Config::from_kcp_settings_json(json)
}

fn out_of_range(json: &str) -> (&'static str, u64) {
    match kcp(json) {
        Err(ConfigError::OutOfRange { field, value, .. }) => (field, value),
        other => panic!("{json}: expected OutOfRange, got {other:?}"),
    }
}

fn invalid_type_field(result: Result<Config, ConfigError>) -> String {
    match result.map_err(|e| e.innermost().clone()) {
        Err(ConfigError::InvalidType { field, .. }) => field,
        other => panic!("expected InvalidType, got {other:?}"),
    }
}

#[test]
fn empty_object_gives_v2ray_defaults() {
    let c = kcp("{}").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(
        (c.mtu, c.tti, c.uplink_capacity, c.downlink_capacity),
        (1350, 50, 5, 20)
    );
    assert_eq!(
        (c.read_buffer_size, c.write_buffer_size),
        (2 * MIB, 2 * MIB)
    );
    assert_eq!(c.security, Security::Legacy);
    assert_eq!(c.header, HeaderKind::None);
    assert!(!c.congestion);
}

#[test]
fn null_values_mean_default() {
    let c = kcp(r#"{"mtu":null,"tti":null,"congestion":null,"seed":null,"writeBufferSize":null}"#)
        .unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(kcp("null").unwrap(), Config::default());
}

#[test]
fn mtu_range_is_576_to_1460_inclusive() {
    assert_eq!(kcp(r#"{"mtu":576}"#).unwrap().mtu, 576);
    assert_eq!(kcp(r#"{"mtu":1460}"#).unwrap().mtu, 1460);
    assert_eq!(out_of_range(r#"{"mtu":575}"#), ("mtu", 575));
    assert_eq!(out_of_range(r#"{"mtu":1461}"#), ("mtu", 1461));
    assert_eq!(out_of_range(r#"{"mtu":0}"#), ("mtu", 0));
    assert_eq!(
        out_of_range(r#"{"mtu":4294967296}"#),
        ("mtu", 4_294_967_296)
    );
}

#[test]
fn tti_range_is_10_to_100_inclusive() {
    assert_eq!(kcp(r#"{"tti":10}"#).unwrap().tti, 10);
    assert_eq!(kcp(r#"{"tti":100}"#).unwrap().tti, 100);
    assert_eq!(out_of_range(r#"{"tti":9}"#), ("tti", 9));
    assert_eq!(out_of_range(r#"{"tti":101}"#), ("tti", 101));
}

#[test]
fn capacities_allow_zero_and_reject_overflowing_values() {
    let c = kcp(r#"{"uplinkCapacity":0,"downlinkCapacity":4095}"#).unwrap();
    assert_eq!((c.uplink_capacity, c.downlink_capacity), (0, 4095));
    assert_eq!(c.sending_window(), 8);
    assert_eq!(
        out_of_range(r#"{"uplinkCapacity":4096}"#),
        ("uplinkCapacity", 4096)
    );
    assert_eq!(
        out_of_range(r#"{"downlinkCapacity":4096}"#),
        ("downlinkCapacity", 4096)
    );
    let msg = kcp(r#"{"uplinkCapacity":4096}"#).unwrap_err().to_string();
    assert!(
        msg.contains("uplinkCapacity") && msg.contains("4096") && msg.contains("0 to 4095"),
        "{msg}"
    );
}

#[test]
fn buffer_sizes_are_mib_and_zero_means_512_kib() {
    let c = kcp(r#"{"readBufferSize":0,"writeBufferSize":3}"#).unwrap();
    assert_eq!(c.read_buffer_size, 512 * 1024);
    assert_eq!(c.write_buffer_size, 3 * MIB);
    let c = kcp(r#"{"readBufferSize":4095,"writeBufferSize":0}"#).unwrap();
    assert_eq!(c.read_buffer_size, 4095 * MIB);
    assert_eq!(c.write_buffer_size, 512 * 1024);
    assert_eq!(
        out_of_range(r#"{"readBufferSize":4096}"#),
        ("readBufferSize", 4096)
    );
    assert_eq!(
        out_of_range(r#"{"writeBufferSize":10000}"#),
        ("writeBufferSize", 10000)
    );
}

#[test]
fn congestion_is_a_bool() {
    assert!(kcp(r#"{"congestion":true}"#).unwrap().congestion);
    assert_eq!(invalid_type_field(kcp(r#"{"congestion":1}"#)), "congestion");
}

#[test]
fn wrong_json_types_and_negatives_are_errors_naming_the_field() {
    assert_eq!(invalid_type_field(kcp(r#"{"mtu":"1350"}"#)), "mtu");
    assert_eq!(invalid_type_field(kcp(r#"{"mtu":-1}"#)), "mtu");
    assert_eq!(invalid_type_field(kcp(r#"{"tti":50.5}"#)), "tti");
    assert_eq!(invalid_type_field(kcp(r#"{"tti":1e2}"#)), "tti");
    assert_eq!(
        invalid_type_field(kcp(r#"{"uplinkCapacity":-5}"#)),
        "uplinkCapacity"
    );
    assert_eq!(
        invalid_type_field(kcp(r#"{"readBufferSize":[]}"#)),
        "readBufferSize"
    );
    assert_eq!(invalid_type_field(kcp(r#"{"seed":5}"#)), "seed");
    assert_eq!(invalid_type_field(kcp(r#"[]"#)), "(top level)");
    let msg = kcp(r#"{"mtu":-1}"#).unwrap_err().to_string();
    assert!(
        msg.contains("mtu") && msg.contains("-1") && msg.contains("non-negative"),
        "{msg}"
    );
}

#[test]
fn malformed_json_is_a_json_error() {
    assert!(matches!(kcp("{"), Err(ConfigError::Json { .. })));
    assert!(matches!(kcp(""), Err(ConfigError::Json { .. })));
}

#[test]
fn unknown_keys_are_ignored() {
    let c = kcp(r#"{"mtu":1400,"cwndMultiplier":4,"whatever":{"x":1}}"#).unwrap();
    assert_eq!(c.mtu, 1400);
}

#[test]
fn keys_match_case_insensitively_like_go() {
    let c = kcp(r#"{"MTU":1400,"Tti":20,"UPLINKCAPACITY":1,"Seed":"x"}"#).unwrap();
    assert_eq!((c.mtu, c.tti, c.uplink_capacity), (1400, 20, 1));
    assert_eq!(c.security, Security::AesGcm { seed: "x".into() });
    // U+212A KELVIN SIGN folds to 'k' in Go's matching.
    let c = Config::from_stream_settings_json(
        "{\"network\":\"kcp\",\"\u{212A}cpSettings\":{\"mtu\":600}}",
    )
    .unwrap();
    assert_eq!(c.mtu, 600);
}

#[test]
fn a_key_given_twice_with_different_case_is_ambiguous() {
    match kcp(r#"{"mtu":1400,"MTU":1300}"#) {
        Err(ConfigError::AmbiguousKey { field, .. }) => assert_eq!(field, "mtu"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn seed_presence_selects_aes_gcm_even_when_empty() {
    assert_eq!(kcp(r#"{}"#).unwrap().security, Security::Legacy);
    assert_eq!(
        kcp(r#"{"seed":""}"#).unwrap().security,
        Security::AesGcm {
            seed: String::new()
        }
    );
    assert_eq!(
        kcp(r#"{"seed":"密码"}"#).unwrap().security,
        Security::AesGcm {
            seed: "密码".into()
        }
    );
}

#[test]
fn header_types_are_case_insensitive() {
    for (name, kind) in [
        ("none", HeaderKind::None),
        ("SRTP", HeaderKind::Srtp),
        ("uTP", HeaderKind::Utp),
        ("WeChat-Video", HeaderKind::WechatVideo),
        ("DTLS", HeaderKind::Dtls),
        ("wireguard", HeaderKind::Wireguard),
    ] {
        let c = kcp(&format!(r#"{{"header":{{"type":"{name}"}}}}"#)).unwrap();
        assert_eq!(c.header, kind, "{name}");
    }
}

#[test]
fn header_extra_keys_are_ignored() {
    let c = kcp(r#"{"header":{"type":"srtp","request":{"a":1},"domain":5}}"#).unwrap();
    assert_eq!(c.header, HeaderKind::Srtp);
}

#[test]
fn header_without_type_or_with_unknown_type_is_an_error() {
    assert_eq!(kcp(r#"{"header":{}}"#), Err(ConfigError::HeaderTypeMissing));
    assert_eq!(
        kcp(r#"{"header":null}"#),
        Err(ConfigError::HeaderTypeMissing)
    );
    // V2Ray's header loader looks `type` up exactly.
    assert_eq!(
        kcp(r#"{"header":{"Type":"srtp"}}"#),
        Err(ConfigError::HeaderTypeMissing)
    );
    for name in ["http", "", "wechat", "wechat_video"] {
        match kcp(&format!(r#"{{"header":{{"type":"{name}"}}}}"#)) {
            Err(ConfigError::Header(HeaderError::UnknownType { name: n, .. })) => {
                assert_eq!(n, name)
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(
        invalid_type_field(kcp(r#"{"header":{"type":3}}"#)),
        "header.type"
    );
    assert_eq!(invalid_type_field(kcp(r#"{"header":"srtp"}"#)), "header");
    let msg = kcp(r#"{"header":{"type":"http"}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("header") && msg.contains("http") && msg.contains("wechat-video"),
        "{msg}"
    );
}

#[test]
fn xray_dns_header_in_kcp_settings() {
    let c = kcp(r#"{"header":{"type":"dns"}}"#).unwrap();
    assert_eq!(
        c.header,
        HeaderKind::Dns {
            domain: "www.baidu.com".into()
        }
    );
    assert_eq!(c.header_size(), 31);
    let c = kcp(r#"{"header":{"type":"DNS","domain":"example.org"}}"#).unwrap();
    assert_eq!(
        c.header,
        HeaderKind::Dns {
            domain: "example.org".into()
        }
    );
    assert_eq!(c.header_size(), 29);
    let long = "a".repeat(64);
    assert!(matches!(
        kcp(&format!(
            r#"{{"header":{{"type":"dns","domain":"{long}.com"}}}}"#
        )),
        Err(ConfigError::Header(HeaderError::LabelTooLong {
            len: 64,
            ..
        }))
    ));
    assert!(matches!(
        kcp(r#"{"header":{"type":"dns","domain":"a..b"}}"#),
        Err(ConfigError::Header(HeaderError::BadDomain { .. }))
    ));
    assert_eq!(
        invalid_type_field(kcp(r#"{"header":{"type":"dns","domain":1}}"#)),
        "header.domain"
    );
}

#[test]
fn comments_are_allowed() {
    let c = kcp(
        "{ // line\n \"mtu\": 1400, /* block */ \"tti\": 20 # hash\n , \"seed\": \"a//b#c/*d*/\" }",
    )
    .unwrap();
    assert_eq!((c.mtu, c.tti), (1400, 20));
    assert_eq!(
        c.security,
        Security::AesGcm {
            seed: "a//b#c/*d*/".into()
        }
    );
    assert_eq!(strip_comments(r#"{"a":"x\"//y"}"#), r#"{"a":"x\"//y"}"#);
}

#[test]
fn stream_settings_take_kcp_settings_or_defaults() {
    let c = Config::from_stream_settings_json(r#"{"network":"mkcp","kcpSettings":{"mtu":1200}}"#)
        .unwrap();
    assert_eq!(c.mtu, 1200);
    let c = Config::from_stream_settings_json(r#"{"network":"KCP"}"#).unwrap();
    assert_eq!(c, Config::default());
}

#[test]
fn stream_settings_with_another_network_are_rejected() {
    match Config::from_stream_settings_json(r#"{"network":"ws","kcpSettings":{}}"#) {
        Err(ConfigError::NotMkcp { network, .. }) => assert_eq!(network, "ws"),
        other => panic!("{other:?}"),
    }
    match Config::from_stream_settings_json(r#"{"kcpSettings":{}}"#) {
        Err(ConfigError::NotMkcp { network, .. }) => assert_eq!(network, "tcp"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn stream_settings_errors_say_where() {
    let e = Config::from_stream_settings_json(r#"{"network":"kcp","kcpSettings":{"mtu":1}}"#)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "kcpSettings: mtu = 1 is out of range: allowed 576 to 1460"
    );
    assert!(matches!(
        e.innermost(),
        ConfigError::OutOfRange {
            field: "mtu",
            value: 1,
            ..
        }
    ));
}

fn stream(finalmask: &str) -> Result<Config, ConfigError> {
    Config::from_stream_settings_json(&format!(
        r#"{{"network":"kcp","kcpSettings":{{}},"finalmask":{finalmask}}}"#
    ))
}

#[test]
fn finalmask_without_envelope_mask_is_raw() {
    for fm in [r#"{}"#, r#"{"udp":[]}"#, r#"{"udp":null}"#] {
        let c = stream(fm).unwrap();
        assert_eq!(
            (c.header, c.security),
            (HeaderKind::None, Security::Raw),
            "{fm}"
        );
    }
    let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"header":"wechat"}}]}"#).unwrap();
    assert_eq!(
        (c.header, c.security),
        (HeaderKind::WechatVideo, Security::Raw)
    );
}

#[test]
fn finalmask_mkcp_legacy_envelopes() {
    let c = stream(r#"{"udp":[{"type":"mkcp-legacy"}]}"#).unwrap();
    assert_eq!(c.security, Security::Legacy);
    let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{}}]}"#).unwrap();
    assert_eq!(c.security, Security::Legacy);
    // An empty value is the legacy envelope, unlike V2Ray's "seed": "".
    let c =
        stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"","header":""}}]}"#).unwrap();
    assert_eq!(c.security, Security::Legacy);
    let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"pw"}}]}"#).unwrap();
    assert_eq!(c.security, Security::AesGcm { seed: "pw".into() });
}

#[test]
fn finalmask_envelope_then_header_is_the_v2ray_layout() {
    let c = stream(
        r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"pw"}},
                   {"type":"mkcp-legacy","settings":{"header":"DTLS","value":"ignored"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        (c.header, c.security),
        (HeaderKind::Dtls, Security::AesGcm { seed: "pw".into() })
    );
    let c = stream(
        r#"{"udp":[{"type":"mkcp-legacy"},{"type":"mkcp-legacy","settings":{"header":"dns","value":"example.org"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        c.header,
        HeaderKind::Dns {
            domain: "example.org".into()
        }
    );
    let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"header":"dns"}}]}"#).unwrap();
    assert_eq!(
        c.header,
        HeaderKind::Dns {
            domain: "www.baidu.com".into()
        }
    );
}

#[test]
fn finalmask_older_mask_names() {
    let c = stream(r#"{"udp":[{"type":"mkcp-original"},{"type":"header-wechat"}]}"#).unwrap();
    assert_eq!(
        (c.header, c.security),
        (HeaderKind::WechatVideo, Security::Legacy)
    );
    let c = stream(
        r#"{"udp":[{"type":"mkcp-aes128gcm","settings":{"password":"pw"}},{"type":"header-dns","settings":{"domain":"a.b"}}]}"#,
    )
    .unwrap();
    assert_eq!(
        (c.header, c.security),
        (
            HeaderKind::Dns {
                domain: "a.b".into()
            },
            Security::AesGcm { seed: "pw".into() }
        )
    );
    for (t, kind) in [
        ("header-srtp", HeaderKind::Srtp),
        ("header-utp", HeaderKind::Utp),
        ("header-dtls", HeaderKind::Dtls),
        ("header-wireguard", HeaderKind::Wireguard),
        (
            "header-dns",
            HeaderKind::Dns {
                domain: "www.baidu.com".into(),
            },
        ),
    ] {
        let c = stream(&format!(r#"{{"udp":[{{"type":"{t}"}}]}}"#)).unwrap();
        assert_eq!(c.header, kind, "{t}");
    }
}

#[test]
fn finalmask_rejects_other_masks_and_bad_headers() {
    for t in [
        "salamander",
        "noise",
        "xdns",
        "xicmp",
        "realm",
        "sudoku",
        "header-custom",
        "header-none",
    ] {
        match stream(&format!(r#"{{"udp":[{{"type":"{t}"}}]}}"#)) {
            Err(ConfigError::Unsupported { field, reason }) => {
                assert_eq!(field, "finalmask.udp[0].type");
                assert!(reason.contains(t), "{reason}");
            }
            other => panic!("{t}: {other:?}"),
        }
    }
    for h in ["wechat-video", "none", "http"] {
        let e = stream(&format!(
            r#"{{"udp":[{{"type":"mkcp-legacy","settings":{{"header":"{h}"}}}}]}}"#
        ))
        .unwrap_err();
        assert!(
            matches!(
                e.innermost(),
                ConfigError::Header(HeaderError::UnknownType { .. })
            ),
            "{h}: {e:?}"
        );
        assert!(e.to_string().contains("finalmask.udp[0].settings"), "{e}");
    }
    assert_eq!(
        invalid_type_field(stream(
            r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":1}}]}"#
        )),
        "finalmask.udp[0].settings.value"
    );
    assert_eq!(invalid_type_field(stream(r#"{"udp":{}}"#)), "finalmask.udp");
    assert_eq!(
        invalid_type_field(stream(r#"{"udp":[{}]}"#)),
        "finalmask.udp[0].type"
    );
}

#[test]
fn finalmask_layouts_mkcp_cannot_represent_are_rejected() {
    let two_envelopes =
        r#"{"udp":[{"type":"mkcp-original"},{"type":"mkcp-legacy","settings":{"value":"x"}}]}"#;
    let two_headers = r#"{"udp":[{"type":"header-srtp"},{"type":"header-utp"}]}"#;
    let header_inside = r#"{"udp":[{"type":"header-srtp"},{"type":"mkcp-original"}]}"#;
    for fm in [two_envelopes, two_headers, header_inside] {
        match stream(fm) {
            Err(ConfigError::Unsupported { field, .. }) => {
                assert_eq!(field, "finalmask.udp[1]")
            }
            other => panic!("{fm}: {other:?}"),
        }
    }
}

#[test]
fn finalmask_conflicts_with_kcp_header_or_seed() {
    for kcp in [r#"{"seed":"x"}"#, r#"{"header":{"type":"srtp"}}"#] {
        let json = format!(r#"{{"network":"kcp","kcpSettings":{kcp},"finalmask":{{"udp":[]}}}}"#);
        assert!(
            matches!(
                Config::from_stream_settings_json(&json),
                Err(ConfigError::Unsupported { .. })
            ),
            "{kcp}"
        );
    }
}

#[test]
fn whole_config_finds_first_mkcp_inbound_or_outbound() {
    let json = r#"{
        "inbounds": [
            {"protocol": "socks", "port": 1080},
            {"protocol": "vmess", "streamSettings": {"network": "ws"}},
            {"protocol": "vmess", "streamSettings": {"network": "mkcp", "kcpSettings": {"mtu": 1000}}}
        ],
        "outbounds": [{"protocol": "vmess", "streamSettings": {"network": "kcp", "kcpSettings": {"mtu": 900}}}]
    }"#;
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!((c.mtu, used.as_str()), (1000, "inbounds[2].streamSettings"));

    let json = r#"{"inbounds": [{"port": 1}], "outbounds": [{"protocol": "freedom"},
        {"streamSettings": {"network": "kcp", "kcpSettings": {"header": {"type": "utp"}}}}]}"#;
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!(
        (c.header, used.as_str()),
        (HeaderKind::Utp, "outbounds[1].streamSettings")
    );
}

#[test]
fn whole_config_uses_global_transport_settings() {
    let json = r#"{"transport": {"kcpSettings": {"tti": 20}},
        "outbounds": [{"streamSettings": {"network": "kcp"}}]}"#;
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!(c.tti, 20);
    assert_eq!(
        used,
        "outbounds[0].streamSettings (kcpSettings from transport.kcpSettings)"
    );

    let json =
        r#"{"transport": {"kcpSettings": {"tti": 20}}, "outbounds": [{"protocol": "freedom"}]}"#;
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!((c.tti, used.as_str()), (20, "transport.kcpSettings"));

    let json = r#"{"transport": {"kcpSettings": {"tti": 20}},
        "inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"tti": 30}}}]}"#;
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!((c.tti, used.as_str()), (30, "inbounds[0].streamSettings"));
}

#[test]
fn whole_config_reads_v3_style_keys_and_comments() {
    let json = "// v2ray 3 style\n{\"inbound\": {\"streamSettings\": {\"network\": \"kcp\", \"kcpSettings\": {\"seed\": \"\"}}}}";
    let (c, used) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!(
        (c.security, used.as_str()),
        (
            Security::AesGcm {
                seed: String::new()
            },
            "inbound.streamSettings"
        )
    );
}

#[test]
fn whole_config_errors_say_where() {
    let json =
        r#"{"inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"mtu": 9000}}}]}"#;
    let e = Config::from_v2ray_config_json(json).unwrap_err();
    assert_eq!(
        e.to_string(),
        "inbounds[0].streamSettings.kcpSettings: mtu = 9000 is out of range: allowed 576 to 1460"
    );
    let json = r#"{"transport": {"kcpSettings": {"tti": 1}}}"#;
    let e = Config::from_v2ray_config_json(json).unwrap_err();
    assert!(
        e.to_string().starts_with("transport.kcpSettings: tti = 1"),
        "{e}"
    );
    let json = r#"{"transport": {"kcpSettings": {"tti": 1}}, "inbounds":[{"streamSettings":{"network":"kcp"}}]}"#;
    let e = Config::from_v2ray_config_json(json).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("transport.kcpSettings (used by inbounds[0].streamSettings): tti = 1"),
        "{e}"
    );
}

#[test]
fn whole_config_without_mkcp_is_an_error() {
    for json in [
        r#"{}"#,
        r#"{"inbounds":[{"streamSettings":{"network":"tcp"}}]}"#,
        "null",
    ] {
        assert_eq!(
            Config::from_v2ray_config_json(json),
            Err(ConfigError::NoMkcpSettings),
            "{json}"
        );
    }
    assert!(matches!(
        Config::from_v2ray_config_json(r#"{"inbounds":{}}"#),
        Err(ConfigError::InvalidType { .. })
    ));
}

#[test]
fn whole_config_with_xray_finalmask() {
    let json = r#"{"outbounds": [{"protocol": "vless", "streamSettings": {"network": "kcp",
        "finalmask": {"udp": [{"type": "mkcp-legacy", "settings": {"value": "pw"}},
                              {"type": "mkcp-legacy", "settings": {"header": "srtp"}}]}}}]}"#;
    let (c, _) = Config::from_v2ray_config_json(json).unwrap();
    assert_eq!(
        (c.header, c.security),
        (HeaderKind::Srtp, Security::AesGcm { seed: "pw".into() })
    );
}

#[test]
fn every_imported_config_validates() {
    for json in [
        r#"{}"#,
        r#"{"mtu":576,"tti":10,"header":{"type":"wechat-video"},"seed":""}"#,
    ] {
        kcp(json).unwrap().validate().unwrap();
    }
}

// ------------------------------------------------------------- from_json_any (issue 14)

fn any(json: &str) -> Result<Loaded, ConfigError> {
    Config::from_json_any(json)
}

fn not_applied(json: &str) -> String {
    match any(json) {
        Err(e) => match e.innermost() {
            ConfigError::NotApplied { field, .. } => {
                // The outer locations are part of the path in the message.
                let msg = e.to_string();
                assert!(msg.contains("refusing to run"), "{msg}");
                let _ = field;
                msg
            }
            other => panic!("{json}: want NotApplied, got {other:?}"),
        },
        Ok(l) => panic!("{json}: accepted as {l:?}"),
    }
}

const AES_DTLS: (HeaderKind, &str) = (HeaderKind::Dtls, "aes-128-gcm");

fn security_of(l: &Loaded) -> (HeaderKind, &'static str) {
    (l.config.header.clone(), l.config.security.name())
}

#[test]
fn every_shape_keeps_the_seed_and_header() {
    let kcp = r#"{"seed": "topsecret", "header": {"type": "dtls"}}"#;
    let stream = format!(r#"{{"network": "kcp", "kcpSettings": {kcp}}}"#);
    let cases = [
        (kcp.to_string(), Shape::KcpSettings, "kcpSettings object"),
        (
            format!(r#"{{"kcpSettings": {kcp}}}"#),
            Shape::KcpSettingsWrapper,
            "kcpSettings",
        ),
        (
            stream.clone(),
            Shape::StreamSettings,
            "streamSettings object",
        ),
        (
            format!(r#"{{"streamSettings": {stream}}}"#),
            Shape::StreamSettingsWrapper,
            "streamSettings",
        ),
        (
            format!(r#"{{"protocol": "freedom", "tag": "out", "streamSettings": {stream}}}"#),
            Shape::StreamSettingsWrapper,
            "streamSettings",
        ),
        (
            format!(r#"{{"inbounds": [{{"port": 1, "streamSettings": {stream}}}]}}"#),
            Shape::WholeConfig,
            "inbounds[0].streamSettings",
        ),
        (
            format!(r#"{{"inboundDetour": [{{"streamSettings": {stream}}}]}}"#),
            Shape::WholeConfig,
            "inboundDetour[0].streamSettings",
        ),
        (
            format!(r#"{{"outbound": {{"streamSettings": {stream}}}}}"#),
            Shape::WholeConfig,
            "outbound.streamSettings",
        ),
        (
            format!(r#"{{"transport": {{"kcpSettings": {kcp}}}}}"#),
            Shape::WholeConfig,
            "transport.kcpSettings",
        ),
    ];
    for (json, shape, found) in cases {
        let l = any(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!((l.shape, l.found.as_str()), (shape, found), "{json}");
        assert_eq!(security_of(&l), AES_DTLS, "{json}");
        assert!(l.warnings.is_empty(), "{json}: {:?}", l.warnings);
    }
}

#[test]
fn xray_whole_config_with_finalmask_and_method_alias() {
    let json = r#"{"outbounds": [{"protocol": "vless", "streamSettings": {"method": "kcp",
        "finalmask": {"udp": [{"type": "mkcp-legacy", "settings": {"value": "pw"}},
                              {"type": "mkcp-legacy", "settings": {"header": "dtls"}}]}}}]}"#;
    let l = any(json).unwrap();
    assert_eq!(security_of(&l), AES_DTLS);
    assert_eq!(l.found, "outbounds[0].streamSettings");
    // `method` overrides `network` (Xray v26.7.11), with a warning when they differ.
    let e = any(r#"{"network": "kcp", "method": "ws"}"#).unwrap_err();
    assert!(matches!(e, ConfigError::NotMkcp { .. }), "{e:?}");
    let l = any(r#"{"network": "ws", "method": "mkcp"}"#).unwrap();
    assert!(
        matches!(&l.warnings[..], [Warning::NotApplied { path, .. }] if path == "network"),
        "{:?}",
        l.warnings
    );
    assert_eq!(l.finalmask_order, None);
}

#[test]
fn finalmask_order_follows_the_xray_version() {
    // The same list, read by each version's rule: only one of them is V2Ray's layout
    // (header outside the envelope).
    let envelope_then_header = r#"{"network": "kcp", "finalmask": {"udp": [
        {"type": "mkcp-legacy", "settings": {"value": "pw"}},
        {"type": "mkcp-legacy", "settings": {"header": "dtls"}}]}}"#;
    let header_then_envelope = r#"{"network": "kcp", "finalmask": {"udp": [
        {"type": "mkcp-legacy", "settings": {"header": "dtls"}},
        {"type": "mkcp-legacy", "settings": {"value": "pw"}}]}}"#;
    let current = Config::from_json_any(envelope_then_header).unwrap();
    assert_eq!(security_of(&current), AES_DTLS);
    assert_eq!(current.finalmask_order, Some(MaskOrder::LastOutermost));
    let old = Config::from_json_any_with(header_then_envelope, MaskOrder::FirstOutermost).unwrap();
    assert_eq!(security_of(&old), AES_DTLS);
    assert_eq!(old.finalmask_order, Some(MaskOrder::FirstOutermost));
    // The other way round puts the header inside the envelope, which mKCP cannot carry.
    for (json, order, field) in [
        (
            header_then_envelope,
            MaskOrder::LastOutermost,
            "finalmask.udp[1]",
        ),
        (
            envelope_then_header,
            MaskOrder::FirstOutermost,
            "finalmask.udp[0]",
        ),
    ] {
        match Config::from_json_any_with(json, order) {
            Err(ConfigError::Unsupported { field: f, reason }) => {
                assert_eq!(f, field);
                assert!(reason.contains(order.describe()), "{reason}");
            }
            other => panic!("{order:?}: {other:?}"),
        }
    }
}

#[test]
fn kcp_settings_wrapper_is_not_tcp() {
    // Issue 14: `{"kcpSettings": {...}}` used to say `network = "tcp" is not mKCP`.
    let l = any(r#"{"kcpSettings": {"mtu": 1200}}"#).unwrap();
    assert_eq!((l.shape, l.config.mtu), (Shape::KcpSettingsWrapper, 1200));
    let e = any(r#"{"kcpSettings": {"mtu": 1}}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "kcpSettings: mtu = 1 is out of range: allowed 576 to 1460"
    );
}

#[test]
fn seed_or_header_where_not_read_fails_closed() {
    for (json, path) in [
        (
            r#"{"network": "kcp", "kcpSettings": {"kcpSettings": {"seed": "s"}}}"#,
            "kcpSettings.kcpSettings",
        ),
        (r#"{"network": "kcp", "seed": "s"}"#, "seed"),
        (
            r#"{"network": "kcp", "header": {"type": "srtp"}}"#,
            "header",
        ),
        (
            r#"{"network": "kcp", "kcpSetting": {"seed": "s"}}"#,
            "kcpSetting",
        ),
        (r#"{"seeds": "s"}"#, "seeds"),
        (r#"{"Sede": "s"}"#, "Sede"),
        (
            r#"{"kcpSettings": {"mtu": 1400, "finalmask": {"udp": []}}}"#,
            "kcpSettings.finalmask",
        ),
        (
            r#"{"streamSettings": {"network": "kcp"}, "seed": "s"}"#,
            "seed",
        ),
        (
            r#"{"inbounds": [{"streamSettings": {"network": "kcp"}}], "kcpSettings": {"seed": "s"}}"#,
            "kcpSettings.seed",
        ),
        (
            r#"{"inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {}}}],
                "transport": {"kcpSettings": {"seed": "s"}}}"#,
            "transport.kcpSettings.seed",
        ),
        (
            r#"{"inbounds": [{"streamSettings": {"network": "kcp"}},
                             {"streamSettings": {"network": "tcp", "kcpSettings": {"header": {"type": "dtls"}}}}]}"#,
            "inbounds[1].streamSettings.kcpSettings.header",
        ),
        (
            r#"{"inbounds": [{"streamSettings": {"network": "kcp"}}], "seed": "x"}"#,
            "seed",
        ),
        (
            r#"{"network": "kcp", "finalmask": {"udp": [{"type": "mkcp-legacy", "settings": {"seed": "x"}}]}}"#,
            "finalmask.udp[0].settings.seed",
        ),
        (
            r#"{"network": "kcp", "finalmask": {"upd": [{"type": "mkcp-legacy"}]}}"#,
            "finalmask.upd",
        ),
    ] {
        let msg = not_applied(json);
        assert!(msg.contains(path), "{json}: {path:?} not in {msg}");
    }
    // A finalmask beside kcpSettings fields reads as a streamSettings without a network.
    assert!(matches!(
        any(r#"{"mtu": 1400, "finalmask": {"udp": []}}"#),
        Err(ConfigError::NotMkcp { .. })
    ));
}

#[test]
fn finalmask_of_another_transport_is_not_ours() {
    let json = r#"{"outbounds": [
        {"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "s"}}},
        {"streamSettings": {"network": "hysteria", "finalmask": {"udp": [{"type": "salamander"}]}}}]}"#;
    let l = any(json).unwrap();
    assert_eq!(l.config.security.name(), "aes-128-gcm");
}

#[test]
fn several_mkcp_streams_must_agree_on_security() {
    let json = r#"{"inbounds": [
        {"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "a", "mtu": 1200}}},
        {"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "b"}}}]}"#;
    match any(json) {
        Err(ConfigError::ConflictingMkcpSettings { first, other }) => assert_eq!(
            (first.as_str(), other.as_str()),
            ("inbounds[0].streamSettings", "inbounds[1].streamSettings")
        ),
        other => panic!("{other:?}"),
    }
    let json = r#"{"inbounds": [
        {"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "a", "mtu": 1200}}}],
        "outbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "a"}}}]}"#;
    let l = any(json).unwrap();
    assert_eq!(l.config.mtu, 1200);
    assert_eq!(
        l.warnings,
        vec![Warning::OtherStreamIgnored {
            path: "outbounds[0].streamSettings".into(),
            used: "inbounds[0].streamSettings".into()
        }]
    );
}

#[test]
fn unknown_keys_are_warned_with_a_suggestion() {
    let l = any(r#"{"mtuu": 1400, "colour": "red", "header": {"type": "srtp", "domian": "x"}}"#)
        .unwrap();
    let shown: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            // serde_json's maps are sorted by key.
            "unknown key colour is ignored",
            "unknown key mtuu is ignored (did you mean \"mtu\"?)",
            "unknown key header.domian is ignored (did you mean \"domain\"?)",
        ]
    );
    let l = any(r#"{"inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"tit": 20}, "sockopts": {}}}]}"#)
        .unwrap();
    let shown: Vec<String> = l.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "unknown key inbounds[0].streamSettings.sockopts is ignored (did you mean \"sockopt\"?)",
            "unknown key inbounds[0].streamSettings.kcpSettings.tit is ignored (did you mean \"tti\"?)",
        ]
    );
}

#[test]
fn xray_only_kcp_keys_are_reported_not_applied() {
    let l = any(r#"{"cwndMultiplier": 2, "maxSendingWindow": 1000}"#).unwrap();
    assert_eq!(l.warnings.len(), 2, "{:?}", l.warnings);
    for (w, key) in l
        .warnings
        .iter()
        .zip(["cwndMultiplier", "maxSendingWindow"])
    {
        assert!(
            matches!(w, Warning::NotApplied { path, .. } if path == key),
            "{w:?}"
        );
    }
}

#[test]
fn debug_of_config_and_security_redacts_the_seed() {
    let loaded = any(r#"{"seed": "topsecret-seed-value", "header": {"type": "dtls"}}"#).unwrap();
    for shown in [
        format!("{:?}", loaded.config.security),
        format!("{:?}", loaded.config),
        format!("{loaded:?}"),
        format!("{:#?}", loaded.config),
    ] {
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("AesGcm { seed: <redacted> }"), "{shown}");
    }
    let mask = any(
        r#"{"network": "kcp", "finalmask": {"udp": [{"type": "mkcp-aes128gcm", "settings": {"password": "topsecret"}}]}}"#,
    )
    .unwrap();
    assert!(!format!("{mask:?}").contains("topsecret"));
}
