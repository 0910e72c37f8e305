//! What a link can carry at most, and how evenly flows share it: the pure arithmetic
//! the report prints next to the measured figures.

use mkcp_v2ray::KcpParams;

/// Bytes of an mKCP data segment's header (conv 2, cmd 1, opt 1, ts 4, sn 4, una 4,
/// len 2; PROTOCOL.md §2).
pub const SEGMENT_HEADER: usize = 18;
/// The legacy envelope's bytes in front of a segment (FNV-1a 4, length 2).
pub const LEGACY_ENVELOPE: usize = 6;
/// The AES-128-GCM envelope's bytes around a segment (nonce 12, tag 16).
pub const GCM_ENVELOPE: usize = 28;
/// What V2Ray subtracts from the mtu for the AES-GCM envelope when it sizes segments
/// (the tag only, not the nonce: PROTOCOL.md §3.3).
pub const GCM_MSS_OVERHEAD: usize = 16;

/// Payload bytes of a full data segment (the mss) under `kcp`:
/// mtu − header − envelope overhead − 18, as V2Ray computes it.
pub fn mss(kcp: &KcpParams) -> usize {
    let security = if kcp.seed.is_some() {
        GCM_MSS_OVERHEAD
    } else {
        LEGACY_ENVELOPE
    };
    (kcp.mtu as usize).saturating_sub(kcp.header.size() + security + SEGMENT_HEADER)
}

/// Bytes of a full data datagram under `kcp` (header, envelope, segment header, mss):
/// the mtu with the legacy envelope, 12 bytes more with a seed.
pub fn full_datagram(kcp: &KcpParams) -> usize {
    let envelope = if kcp.seed.is_some() {
        GCM_ENVELOPE
    } else {
        LEGACY_ENVELOPE
    };
    kcp.header.size() + envelope + SEGMENT_HEADER + mss(kcp)
}

/// The payload's share of a full data datagram under `kcp` (1326 / 1350 with V2Ray's
/// defaults).
pub fn payload_share(kcp: &KcpParams) -> f64 {
    let d = full_datagram(kcp);
    if d == 0 {
        return 0.0;
    }
    mss(kcp) as f64 / d as f64
}

/// Jain's fairness index of `x`: (Σx)² / (n·Σx²), 1 when all are equal, 1/n when one
/// flow has everything; `None` for no flows or all zero.
pub fn jain(x: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    let sum: f64 = x.iter().sum();
    let sq: f64 = x.iter().map(|v| v * v).sum();
    if x.is_empty() || sq <= 0.0 || !sq.is_finite() {
        return None;
    }
    Some(sum * sum / (n * sq))
}

/// `part` as a fraction of `whole`, `None` if `whole` is zero or either is missing.
pub fn fraction(part: Option<f64>, whole: Option<f64>) -> Option<f64> {
    match (part, whole) {
        (Some(p), Some(w)) if w > 0.0 && p.is_finite() => Some(p / w),
        _ => None,
    }
}
