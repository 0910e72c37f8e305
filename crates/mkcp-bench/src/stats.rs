//! Medians and percentiles.

/// Median of the finite values (the mean of the two middle ones for an even count);
/// `None` if there are none.
///
/// ```
/// use mkcp_bench::stats::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
/// assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
/// assert_eq!(median(&[]), None);
/// ```
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Nearest-rank percentile (`p` in 0..=100) of the finite values: the smallest value
/// such that at least `p` % of the values are less than or equal to it. `None` if there
/// are no values.
///
/// ```
/// use mkcp_bench::stats::percentile;
/// let v: Vec<f64> = (1..=100).map(f64::from).collect();
/// assert_eq!(percentile(&v, 50.0), Some(50.0));
/// assert_eq!(percentile(&v, 99.0), Some(99.0));
/// assert_eq!(percentile(&v, 100.0), Some(100.0));
/// ```
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let p = p.clamp(0.0, 100.0);
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    Some(v[rank.clamp(1, v.len()) - 1])
}
