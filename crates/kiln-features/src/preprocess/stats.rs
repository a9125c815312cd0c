//! The statistics the steps learn, with numpy's and scikit-learn's definitions: compensated sums (numpy sums
//! pairwise; both are within a few ulps of the exact sum), the median as the mean of the two middle values, linear
//! quantiles with numpy's interpolation, and the mode with ties going to the smallest value.

use std::collections::BTreeMap;

/// Neumaier's compensated sum.
pub(crate) fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut total = 0.0_f64;
    let mut compensation = 0.0_f64;
    for v in values {
        let t = total + v;
        if total.abs() >= v.abs() {
            compensation += (total - t) + v;
        } else {
            compensation += (v - t) + total;
        }
        total = t;
    }
    total + compensation
}

/// The mean of non-empty `values`.
pub(crate) fn mean(values: &[f64]) -> f64 {
    sum(values.iter().copied()) / values.len() as f64
}

/// The population variance (ddof = 0) about `mean` with the correction term of the corrected two-pass algorithm
/// (Chan, Golub and LeVeque), as scikit-learn's `_incremental_mean_and_var` computes it for one batch.
pub(crate) fn variance(values: &[f64], mean: f64) -> f64 {
    let n = values.len() as f64;
    let correction = sum(values.iter().map(|&v| v - mean));
    let squares = sum(values.iter().map(|&v| (v - mean) * (v - mean)));
    (squares - correction * correction / n) / n
}

/// Values sorted ascending; `values` holds no NaN.
pub(crate) fn sorted(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    out.sort_by(f64::total_cmp);
    out
}

/// The median of non-empty sorted values: the middle one, or the mean of the two middle ones.
pub(crate) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The `q`-quantile (`0 <= q <= 1`) of non-empty sorted values with numpy's default `linear` method: virtual
/// index `(n - 1) q`, interpolated as numpy's `_lerp` does (from the upper value when the fraction is >= 0.5).
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (n - 1) as f64 * q;
    let below = virtual_index.floor();
    let t = virtual_index - below;
    let i = (below as usize).min(n - 1);
    let a = sorted[i];
    let b = sorted[(i + 1).min(n - 1)];
    if a == b {
        return a;
    }
    let diff = b - a;
    if t >= 0.5 { b - diff * (1.0 - t) } else { a + diff * t }
}

/// The most frequent of non-empty sorted values, the smallest among ties (scipy's `mode`).
pub(crate) fn mode(sorted: &[f64]) -> f64 {
    let mut best = sorted[0];
    let mut best_count = 0;
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end] == sorted[start] {
            end += 1;
        }
        if end - start > best_count {
            best_count = end - start;
            best = sorted[start];
        }
        start = end;
    }
    best
}

/// The most frequent of non-empty labels, the smallest (by code point) among ties, as scikit-learn's
/// `_most_frequent` breaks them for object arrays.
pub(crate) fn mode_label<'a>(labels: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for label in labels {
        *counts.entry(label).or_default() += 1;
    }
    let max = counts.values().copied().max()?;
    // BTreeMap iterates in ascending order, so the first label with the top count is the smallest
    counts.into_iter().find(|&(_, c)| c == max).map(|(label, _)| label)
}
