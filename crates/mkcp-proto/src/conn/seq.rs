//! Wrap-aware order of sequence numbers and wire timestamps (PROTOCOL.md §2: both are 32-bit
//! counters that wrap). Every comparison of them in the connection goes through here;
//! nowhere else compares against half the number space.
//!
//! `a` is before `b` when going forward from `a` reaches `b` in at most 2^31 steps
//! (serial number arithmetic). V2Ray compares some timestamps with a slightly
//! different boundary; those rules are named apart so that V2Ray mode reproduces it.

/// Distances of 2^31 or more forward count as backward.
const HALF: u32 = 0x8000_0000;

/// True when `a` comes before `b` (wrap-aware).
pub(crate) fn before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) >= HALF
}

/// True when `a` is `b` or comes after it (wrap-aware).
pub(crate) fn at_or_after(a: u32, b: u32) -> bool {
    !before(a, b)
}

/// True when a difference of two counters (`x - y`, wrapping) is negative, i.e. `x`
/// came before `y`.
pub(crate) fn negative(diff: u32) -> bool {
    diff >= HALF
}

/// V2Ray's "timestamp `t` is not older than `cur`" (its signed difference is
/// non-negative and not the largest positive value): picks the timestamp an ack echoes.
pub(crate) fn v2ray_ts_not_older(t: u32, cur: u32) -> bool {
    t.wrapping_sub(cur) < HALF - 1
}

/// V2Ray's "`now` has not reached `due`" for its retransmission times.
pub(crate) fn v2ray_not_due(now: u32, due: u32) -> bool {
    now.wrapping_sub(due) >= HALF - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn before_is_wrap_aware() {
        assert!(before(1, 2));
        assert!(!before(2, 1));
        assert!(!before(5, 5));
        assert!(before(u32::MAX, 0));
        assert!(!before(0, u32::MAX));
        assert!(before(0, 0x7FFF_FFFF));
        assert!(!before(0x7FFF_FFFF, 0));
        assert!(at_or_after(5, 5));
        assert!(at_or_after(0, u32::MAX));
    }

    #[test]
    fn v2ray_rules_differ_only_at_the_boundary() {
        assert!(v2ray_ts_not_older(10, 10));
        assert!(v2ray_ts_not_older(11, 10));
        assert!(!v2ray_ts_not_older(9, 10));
        assert!(!v2ray_ts_not_older(0x7FFF_FFFF, 0));
        assert!(v2ray_not_due(9, 10));
        assert!(!v2ray_not_due(10, 10));
        assert!(v2ray_not_due(0x7FFF_FFFF, 0));
    }
}
