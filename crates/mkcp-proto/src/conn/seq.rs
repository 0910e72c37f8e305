//! Wrap-aware order of sequence numbers and wire timestamps (PROTOCOL.md §2: both are 32-bit
//! counters that wrap). [`Seq`] is a segment number (a Data segment's number, `sendingNext`,
//! `receivingNext`, a window end), [`WireTime`] a 32-bit millisecond wire timestamp or a
//! due time on that clock. Every comparison of them in the connection goes through their
//! methods; nowhere else compares against half the number space. They convert from and
//! to `u32` where segments are decoded and encoded (the wire structs keep `u32`).
//!
//! `a` is before `b` when going forward from `a` reaches `b` in at most 2^31 steps
//! (serial number arithmetic). That order is not transitive, so neither type is `Ord`.
//! V2Ray compares some values with a slightly different boundary, or plainly; those
//! rules are named apart (`v2ray_*`) so that V2Ray mode reproduces them.

use std::fmt;
use std::ops::Add;

/// Distances of 2^31 or more forward count as backward.
const HALF: u32 = 0x8000_0000;

/// True when a difference of two counters (`x - y`, wrapping) is negative, i.e. `x`
/// came before `y`. For differences already taken as `u32` (an RTT sample).
pub(crate) fn negative(diff: u32) -> bool {
    diff >= HALF
}

/// A 32-bit segment number that wraps (wrap-aware order, no `Ord`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Seq(u32);

impl Seq {
    /// Number 0.
    pub const ZERO: Seq = Seq(0);

    /// The number `n` (as on the wire).
    pub const fn new(n: u32) -> Seq {
        Seq(n)
    }

    /// The wire value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// True when `self` comes before `other` (wrap-aware).
    pub fn before(self, other: Seq) -> bool {
        negative(self.0.wrapping_sub(other.0))
    }

    /// True when `self` comes after `other` (wrap-aware).
    pub fn after(self, other: Seq) -> bool {
        other.before(self)
    }

    /// True when `self` is `other` or comes after it (wrap-aware).
    pub fn at_or_after(self, other: Seq) -> bool {
        !self.before(other)
    }

    /// Steps forward from `self` to `later` (wrapping; `later - self`).
    pub fn distance_to(self, later: Seq) -> u32 {
        later.0.wrapping_sub(self.0)
    }

    /// The following number.
    pub fn next(self) -> Seq {
        self + 1
    }

    /// Slot of this number in a ring of `len` slots (`number mod len`); `len` > 0.
    pub fn ring_slot(self, len: u32) -> usize {
        (self.0 % len) as usize
    }

    /// V2Ray's plain (not wrap-aware) `self > other`.
    pub fn v2ray_above(self, other: Seq) -> bool {
        self.0 > other.0
    }

    /// V2Ray's plain (not wrap-aware) `self >= other`.
    pub fn v2ray_at_or_above(self, other: Seq) -> bool {
        self.0 >= other.0
    }
}

impl Add<u32> for Seq {
    type Output = Seq;

    /// `n` numbers further on (wrapping).
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl From<u32> for Seq {
    fn from(n: u32) -> Seq {
        Seq(n)
    }
}

impl From<Seq> for u32 {
    fn from(s: Seq) -> u32 {
        s.0
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A 32-bit millisecond wire timestamp (or a due time on that clock) that wraps
/// (wrap-aware order, no `Ord`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct WireTime(u32);

impl WireTime {
    /// Time 0 (also what V2Ray echoes in acks with no fresh entry).
    pub const ZERO: WireTime = WireTime(0);

    /// The timestamp `ms` (as on the wire).
    pub const fn new(ms: u32) -> WireTime {
        WireTime(ms)
    }

    /// The wire value.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// True when `self` comes before `other` (wrap-aware).
    pub fn before(self, other: WireTime) -> bool {
        negative(self.0.wrapping_sub(other.0))
    }

    /// True when `self` comes after `other` (wrap-aware).
    pub fn after(self, other: WireTime) -> bool {
        other.before(self)
    }

    /// True when `self` is `other` or comes after it (wrap-aware).
    pub fn at_or_after(self, other: WireTime) -> bool {
        !self.before(other)
    }

    /// Milliseconds from `earlier` to `self` (wrapping; `self - earlier`).
    pub fn since(self, earlier: WireTime) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// V2Ray's "timestamp `self` is not older than `cur`" (its signed difference is
    /// non-negative and not the largest positive value): picks the timestamp an ack echoes.
    pub fn v2ray_not_older(self, cur: WireTime) -> bool {
        self.since(cur) < HALF - 1
    }

    /// V2Ray's "`self` (now) has not reached `due`" for its retransmission times.
    pub fn v2ray_not_due(self, due: WireTime) -> bool {
        self.since(due) >= HALF - 1
    }

    /// V2Ray's plain (not wrap-aware) `self > other` (its ack list's flush times).
    pub fn v2ray_above(self, other: WireTime) -> bool {
        self.0 > other.0
    }

    /// V2Ray's fast-ack nudge of a due time: `step` ms earlier if it is (plainly)
    /// above `step`, else unchanged.
    pub fn v2ray_earlier_by(self, step: u32) -> WireTime {
        if self.0 > step {
            WireTime(self.0 - step)
        } else {
            self
        }
    }
}

impl Add<u32> for WireTime {
    type Output = WireTime;

    /// `ms` milliseconds later (wrapping).
    fn add(self, ms: u32) -> WireTime {
        WireTime(self.0.wrapping_add(ms))
    }
}

impl From<u32> for WireTime {
    fn from(ms: u32) -> WireTime {
        WireTime(ms)
    }
}

impl From<WireTime> for u32 {
    fn from(t: WireTime) -> u32 {
        t.0
    }
}

impl fmt::Debug for WireTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for WireTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Short constructors for the connection's unit tests.
#[cfg(test)]
pub(super) mod test_util {
    use super::{Seq, WireTime};

    /// Segment number `x`.
    pub(crate) fn n(x: u32) -> Seq {
        Seq::from(x)
    }

    /// Wire time `x` ms.
    pub(crate) fn ms(x: u32) -> WireTime {
        WireTime::from(x)
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::{ms as w, n as s};
    use super::*;
    use proptest::prelude::*;

    /// The free function every comparison went through before these types.
    fn old_before(a: u32, b: u32) -> bool {
        a.wrapping_sub(b) >= 0x8000_0000
    }

    #[test]
    fn seq_order_is_wrap_aware() {
        assert!(s(1).before(s(2)));
        assert!(!s(2).before(s(1)));
        assert!(s(2).after(s(1)));
        assert!(!s(5).before(s(5)));
        assert!(!s(5).after(s(5)));
        assert!(s(5).at_or_after(s(5)));
        assert!(s(u32::MAX).before(s(0)));
        assert!(s(0).after(s(u32::MAX)));
        assert!(!s(0).before(s(u32::MAX)));
        assert!(s(0).at_or_after(s(u32::MAX)));
    }

    #[test]
    fn seq_half_space_boundary() {
        // 2^31 - 1 steps forward is still forward; 2^31 counts as backward, both ways
        // (the one pair where `before` is not antisymmetric, kept as it always was).
        assert!(s(0).before(s(0x7FFF_FFFF)));
        assert!(!s(0x7FFF_FFFF).before(s(0)));
        assert!(s(0x8000_0000).before(s(0)));
        assert!(s(0).before(s(0x8000_0000)));
        assert!(s(u32::MAX).before(s(0x7FFF_FFFE)));
        assert!(s(u32::MAX).before(s(0x7FFF_FFFF)));
        assert!(s(0x7FFF_FFFF).before(s(u32::MAX)));
        assert!(!s(u32::MAX).before(s(0x8000_0000)));
    }

    #[test]
    fn seq_arithmetic_wraps() {
        assert_eq!(s(u32::MAX).next(), s(0));
        assert_eq!(s(u32::MAX - 1) + 3, s(1));
        assert_eq!(s(u32::MAX).distance_to(s(2)), 3);
        assert_eq!(s(2).distance_to(s(u32::MAX)), u32::MAX - 2);
        assert_eq!(s(7).distance_to(s(7)), 0);
        assert_eq!(s(u32::MAX).ring_slot(16), 15);
        assert_eq!(u32::from(s(9)), 9);
        assert_eq!(s(9).get(), 9);
        assert_eq!(format!("{} {:?}", s(9), s(10)), "9 10");
    }

    #[test]
    fn seq_v2ray_comparisons_are_plain() {
        assert!(!s(0).v2ray_above(s(u32::MAX)));
        assert!(s(u32::MAX).v2ray_above(s(0)));
        assert!(s(3).v2ray_at_or_above(s(3)));
        assert!(!s(0).v2ray_at_or_above(s(u32::MAX)));
    }

    #[test]
    fn wire_time_order_and_arithmetic_wrap() {
        assert!(w(u32::MAX).before(w(0)));
        assert!(w(0).after(w(u32::MAX)));
        assert!(w(10).at_or_after(w(10)));
        assert_eq!(w(5).since(w(u32::MAX)), 6);
        assert_eq!(w(u32::MAX) + 2, w(1));
        assert!(w(0).before(w(0x7FFF_FFFF)));
        assert!(w(0x8000_0000).before(w(0)));
    }

    #[test]
    fn v2ray_rules_differ_only_at_the_boundary() {
        assert!(w(10).v2ray_not_older(w(10)));
        assert!(w(11).v2ray_not_older(w(10)));
        assert!(!w(9).v2ray_not_older(w(10)));
        assert!(!w(0x7FFF_FFFF).v2ray_not_older(w(0)));
        assert!(w(0x7FFF_FFFE).v2ray_not_older(w(0)));
        assert!(w(0).v2ray_not_older(w(u32::MAX)));
        assert!(w(9).v2ray_not_due(w(10)));
        assert!(!w(10).v2ray_not_due(w(10)));
        assert!(w(0x7FFF_FFFF).v2ray_not_due(w(0)));
        assert!(!w(0x7FFF_FFFE).v2ray_not_due(w(0)));
        // Where the wrap-aware order differs from V2Ray's rules: exactly 2^31 - 1 ahead.
        assert!(w(0x7FFF_FFFF).at_or_after(w(0)));
    }

    #[test]
    fn v2ray_plain_time_rules() {
        assert!(w(5).v2ray_above(w(4)));
        assert!(!w(0).v2ray_above(w(u32::MAX)));
        assert_eq!(w(100).v2ray_earlier_by(33), w(67));
        assert_eq!(w(33).v2ray_earlier_by(33), w(33));
        assert_eq!(w(10).v2ray_earlier_by(33), w(10));
    }

    #[test]
    fn negative_differences() {
        assert!(negative(u32::MAX));
        assert!(negative(0x8000_0000));
        assert!(!negative(0x7FFF_FFFF));
        assert!(!negative(0));
    }

    proptest! {
        #[test]
        fn before_is_antisymmetric_and_agrees_with_the_old_function(a: u32, b: u32) {
            prop_assert!(!(s(a).before(s(b)) && s(b).before(s(a))) || a.wrapping_sub(b) == 0x8000_0000);
            prop_assert_eq!(s(a).before(s(b)), old_before(a, b));
            prop_assert_eq!(w(a).before(w(b)), old_before(a, b));
            prop_assert_eq!(s(a).at_or_after(s(b)), !old_before(a, b));
            prop_assert_eq!(s(a).after(s(b)), old_before(b, a));
            prop_assert_eq!(s(b) + s(b).distance_to(s(a)), s(a));
            prop_assert_eq!(w(b) + w(a).since(w(b)), w(a));
        }

        #[test]
        fn v2ray_rules_agree_with_the_old_functions(a: u32, b: u32) {
            prop_assert_eq!(w(a).v2ray_not_older(w(b)), a.wrapping_sub(b) < 0x7FFF_FFFF);
            prop_assert_eq!(w(a).v2ray_not_due(w(b)), a.wrapping_sub(b) >= 0x7FFF_FFFF);
        }
    }
}
