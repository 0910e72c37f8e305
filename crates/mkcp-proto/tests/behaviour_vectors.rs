//! V2Ray behaviour vectors (categories `rtt` and `trace`, PROTOCOL.md §3.9-3.11) reproduced on
//! our estimator, send buffer and V2Ray-compatible ack list. Where our default engine
//! deliberately differs, the difference is named and checked too.

use mkcp_proto::internals::RttEstimator;
use mkcp_proto::internals::{AckBatch, V2rayAckList};
use mkcp_proto::internals::{SendBuffer, V2raySent};
use mkcp_proto::internals::{Seq, WireTime};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let text = include_str!("fixtures/vectors.json");
    let v: Value = serde_json::from_str(text).expect("vectors.json");
    v["vectors"].as_array().expect("vectors").clone()
}

fn vector(name: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("vector {name} missing"))
}

fn u(v: &Value) -> u32 {
    v.as_u64().expect("number") as u32
}

#[test]
fn every_rtt_and_trace_vector_is_checked_here() {
    let names: Vec<String> = vectors()
        .iter()
        .filter(|v| v["category"] == "rtt" || v["category"] == "trace")
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![
        "rtt_tti50",
        "rtt_tti10_small",
        "rtt_first_sample_zero",
        "rtt_peer_rto_adoption",
        "trace_sending_window",
        "trace_ack_list",
    ];
    expected.sort();
    let mut names = names;
    names.sort();
    assert_eq!(names, expected, "a new rtt/trace vector needs a test");
}

fn check_rtt_steps(name: &str) {
    let v = vector(name);
    // V2Ray's exact arithmetic: no RTO floor or ceiling.
    let mut r = RttEstimator::new(u(&v["min_rtt"]), 0, u32::MAX);
    for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
        r.update(u(&step["sample"]), WireTime::from(1000 + i as u32));
        assert_eq!(r.srtt(), u(&step["srtt"]), "{name} step {i} srtt");
        assert_eq!(
            r.variation(),
            u(&step["variation"]),
            "{name} step {i} variation"
        );
        assert_eq!(r.rto(), u(&step["rto"]), "{name} step {i} rto");
    }
}

#[test]
fn rtt_tti50() {
    check_rtt_steps("rtt_tti50");
}

#[test]
fn rtt_tti10_small() {
    check_rtt_steps("rtt_tti10_small");
}

#[test]
fn rtt_first_sample_zero() {
    check_rtt_steps("rtt_first_sample_zero");
}

/// Deliberate difference (PROTOCOL.md §5 item 20): V2Ray's RTO becomes 0 after a 0 ms first
/// sample; ours is floored at `min_rto`.
#[test]
fn rtt_first_sample_zero_differs_our_rto_is_never_zero() {
    let v = vector("rtt_first_sample_zero");
    let mut r = RttEstimator::new(u(&v["min_rtt"]), 30, 12_500);
    for step in v["steps"].as_array().unwrap() {
        r.update(u(&step["sample"]), WireTime::ZERO);
        assert!(r.rto() >= 30);
    }
}

#[test]
fn rtt_peer_rto_adoption() {
    let v = vector("rtt_peer_rto_adoption");
    let want: Vec<u32> = v["timeouts_after_each"]
        .as_array()
        .unwrap()
        .iter()
        .map(u)
        .collect();
    let mut r = RttEstimator::new(50, 0, u32::MAX);
    let mut got = Vec::new();
    r.update_peer_rto(777, WireTime::from(1000));
    got.push(r.rto());
    r.update_peer_rto(777, WireTime::from(3000));
    got.push(r.rto());
    r.update(100, WireTime::from(3500));
    got.push(r.rto());
    r.update_peer_rto(999, WireTime::from(6000));
    got.push(r.rto());
    r.update_peer_rto(999, WireTime::from(6500));
    got.push(r.rto());
    assert_eq!(got, want);
}

fn sent_json(sent: &[V2raySent]) -> Value {
    Value::Array(
        sent.iter()
            .map(|s| {
                serde_json::json!({
                    "number": s.number.get(), "timeout": s.timeout.get(),
                    "timestamp": s.timestamp.get(), "transmit": s.transmit
                })
            })
            .collect(),
    )
}

#[test]
fn trace_sending_window() {
    let v = vector("trace_sending_window");
    let steps = v["steps"].as_array().unwrap();
    let mut s = SendBuffer::new(1);
    for i in 0..6u8 {
        assert_eq!(s.write(&[i], false, 100, usize::MAX), 1);
    }
    let check = |s: &mut SendBuffer, step: usize, flush: Option<(u32, u32, usize)>| {
        let want = &steps[step];
        if let Some((now, rto, max)) = flush {
            let mut out = Vec::new();
            let rate = s.flush_v2ray(WireTime::from(now), rto, max, &mut out);
            assert_eq!(
                sent_json(&out),
                want["sent"],
                "step {step} ({}) sent",
                want["op"]
            );
            let rates: Vec<u32> = rate.into_iter().collect();
            assert_eq!(
                serde_json::json!(rates),
                want["loss_rates_reported"],
                "step {step} loss rates"
            );
        }
        assert_eq!(
            s.unacked_segments(),
            want["window_len"].as_u64().unwrap() as usize,
            "step {step} window length"
        );
    };
    check(&mut s, 0, Some((1000, 200, 4)));
    check(&mut s, 1, Some((1010, 200, 100)));
    assert!(s.ack_number(Seq::from(1)).is_some());
    assert!(s.ack_number(Seq::from(3)).is_some());
    check(&mut s, 2, None);
    s.fast_ack_v2ray(Seq::from(3), 200);
    s.fast_ack_v2ray(Seq::from(5), 200);
    check(&mut s, 3, None);
    check(&mut s, 4, Some((1100, 200, 100)));
    s.fast_ack_v2ray(Seq::from(5), 200);
    check(&mut s, 5, Some((1101, 200, 100)));
    s.ack_cumulative(Seq::from(4));
    check(&mut s, 6, None);
    assert_eq!(
        s.total_in_flight, 4,
        "Clear(una) does not reduce totalInFlight (PROTOCOL.md §5 item 17)"
    );
    check(&mut s, 7, Some((1300, 200, 100)));
}

fn batches_json(b: &[AckBatch]) -> Value {
    if b.is_empty() {
        return Value::Null;
    }
    Value::Array(
        b.iter()
            .map(|a| serde_json::json!({"numbers": a.numbers, "timestamp": a.timestamp.get()}))
            .collect(),
    )
}

#[test]
fn trace_ack_list() {
    let v = vector("trace_ack_list");
    let steps = v["steps"].as_array().unwrap();
    let mut a = V2rayAckList::new(10_000);
    let check = |a: &mut V2rayAckList, step: usize, now: u32, rto: u32| {
        let got = a.flush(WireTime::from(now), rto, 128);
        assert_eq!(
            batches_json(&got),
            steps[step]["acks_written"],
            "step {step} ({})",
            steps[step]["op"]
        );
    };
    a.add(Seq::from(5), WireTime::from(100));
    a.add(Seq::from(6), WireTime::from(110));
    a.add(Seq::from(8), WireTime::from(120));
    check(&mut a, 0, 200, 100);
    check(&mut a, 1, 220, 100);
    a.add(Seq::from(7), WireTime::from(130));
    check(&mut a, 2, 230, 100);
    a.clear(Seq::from(7));
    check(&mut a, 3, 240, 100);
    check(&mut a, 4, 250, 30);
    a.add(Seq::from(8), WireTime::from(140));
    check(&mut a, 5, 260, 30);
    for n in 100..230u32 {
        a.add(Seq::from(n), WireTime::from(1000 + n));
    }
    check(&mut a, 6, 2000, 30);
}
