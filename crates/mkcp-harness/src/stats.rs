//! Medians and percentiles (nearest rank), one definition for every report.

/// Nearest-rank percentile (`p` in 0..=100, clamped) of values sorted in ascending order:
/// the smallest value such that at least `p` % of the values are less than or equal to
/// it. `None` if there are no values.
///
/// ```
/// use mkcp_harness::stats::percentile_sorted;
/// let v: Vec<u32> = (1..=10).collect();
/// assert_eq!(percentile_sorted(&v, 50.0), Some(5));
/// assert_eq!(percentile_sorted(&v, 0.0), Some(1));
/// assert_eq!(percentile_sorted(&v, 100.0), Some(10));
/// assert_eq!(percentile_sorted::<u32>(&[], 50.0), None);
/// ```
pub fn percentile_sorted<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The finite values, sorted.
fn finite_sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Nearest-rank percentile (`p` in 0..=100) of the finite values (see
/// [`percentile_sorted`]); `None` if there are none.
///
/// ```
/// use mkcp_harness::stats::percentile;
/// let v: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(percentile(&v, 50.0), Some(50.0));
/// assert_eq!(percentile(&v, 99.0), Some(99.0));
/// assert_eq!(percentile(&v, 100.0), Some(100.0));
/// assert_eq!(percentile(&[f64::NAN], 50.0), None);
/// ```
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    percentile_sorted(&finite_sorted(values), p)
}

/// Median of the finite values (the mean of the two middle ones for an even count);
/// `None` if there are none.
///
/// ```
/// use mkcp_harness::stats::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
/// assert_eq!(median(&[]), None);
/// ```
pub fn median(values: &[f64]) -> Option<f64> {
    let v = finite_sorted(values);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}
