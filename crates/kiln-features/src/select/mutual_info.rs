//! Mutual information between each column and the target by scikit-learn's k-nearest-neighbour estimators:
//! Kraskov et al. (2004) for a continuous target (`mutual_info_regression`) and Ross (2014) for a discrete one
//! (`mutual_info_classif`), every column treated as continuous (scikit-learn's `discrete_features="auto"` on dense
//! data).
//!
//! Key decision: the preprocessing is scikit-learn's, step for step: each column is divided by its population
//! standard deviation (not centred), then `1e-10 · max(1, mean|x|)` times standard normal noise from numpy's
//! `RandomState(seed)` is added (columns row-major, then the target for regression), so ties are broken the same
//! way and `seed` means what scikit-learn's `random_state` means. Neighbour searches are exact (sorted scans and
//! binary searches instead of k-d trees), with the same strict radius (`nextafter(d_k, 0)`) and the same
//! inclusive counts.

use kiln_domain::Matrix;
use kiln_eval::pairwise_sum;

use super::stats::{check_xy, classes, digamma};
use crate::FeatureError;
use kiln_domain::NumpyRandomState;

/// The estimated mutual information (nats, clipped at 0) of each column of `x` with `y`; `discrete_target` picks
/// the classification estimator.
pub(crate) fn mutual_info_for(
    x: &Matrix,
    y: &[f64],
    discrete_target: bool,
    n_neighbors: usize,
    seed: u32,
    who: &str,
) -> Result<Vec<f64>, FeatureError> {
    let checked = check_xy(x, y, who, false)?;
    if n_neighbors < 1 {
        return Err(FeatureError::Selection { step: who.to_string(), reason: "n_neighbors must be >= 1".into() });
    }
    let n = y.len();
    if n <= n_neighbors {
        return Err(FeatureError::NotEnoughRows { what: who.to_string(), needed: n_neighbors + 1, given: n });
    }
    let n_cols = checked.columns.len();
    // numpy reduces axis 0 of a (n, m) array row after row, except when m == 1, where the column is contiguous
    // and summed pairwise; the 1-d target is always summed pairwise
    let column_sum = |v: &[f64]| if n_cols == 1 { pairwise_sum(v) } else { v.iter().fold(0.0, |acc, x| acc + x) };
    let mut columns = checked.columns;
    let mut noise_scale = Vec::with_capacity(n_cols);
    for col in &mut columns {
        scale_by_std(col, &column_sum);
        let mean_abs = column_sum(&col.iter().map(|v| v.abs()).collect::<Vec<_>>()) / n as f64;
        noise_scale.push(1e-10 * mean_abs.max(1.0));
    }
    let mut rng = NumpyRandomState::new(seed);
    for i in 0..n {
        for (col, scale) in columns.iter_mut().zip(&noise_scale) {
            col[i] += scale * rng.standard_normal();
        }
    }
    if discrete_target {
        let (values, class_of) = classes(y);
        let mi: Vec<f64> = columns.iter().map(|c| mi_cd(c, &class_of, values.len(), n_neighbors)).collect();
        if mi.iter().any(|v| v.is_nan()) {
            return Err(FeatureError::Selection {
                step: who.to_string(),
                reason: "every class of the target has a single row; mutual information is undefined".into(),
            });
        }
        Ok(mi)
    } else {
        let mut target = y.to_vec();
        scale_by_std(&mut target, &pairwise_sum);
        let mean_abs = pairwise_sum(&target.iter().map(|v| v.abs()).collect::<Vec<_>>()) / n as f64;
        let scale = 1e-10 * mean_abs.max(1.0);
        for v in &mut target {
            *v += scale * rng.standard_normal();
        }
        Ok(columns.iter().map(|c| mi_cc(c, &target, n_neighbors)).collect())
    }
}

/// scikit-learn's `scale(x, with_mean=False)`: divide by the population standard deviation (numpy's `nanstd`),
/// or by 1 when it is below `10 · ε`.
fn scale_by_std(values: &mut [f64], sum: &dyn Fn(&[f64]) -> f64) {
    let n = values.len() as f64;
    let mean = sum(values) / n;
    let squares: Vec<f64> = values.iter().map(|v| (v - mean) * (v - mean)).collect();
    let std = (sum(&squares) / n).sqrt();
    let std = if std < 10.0 * f64::EPSILON { 1.0 } else { std };
    for v in values {
        *v /= std;
    }
}

/// The largest double below `d` (numpy's `nextafter(d, 0)` for `d >= 0`).
fn below(d: f64) -> f64 {
    if d > 0.0 { d.next_down() } else { d }
}

/// How many values of the ascending `sorted` lie within `r` of `v` (inclusive), comparing the same differences a
/// k-d tree computes.
fn count_within(sorted: &[f64], v: f64, r: f64) -> usize {
    let left = sorted.partition_point(|&s| s < v && v - s > r);
    let right = sorted.partition_point(|&s| s <= v || s - v <= r);
    right - left
}

/// Inserts `d` into the ascending `best` (fixed length) if it is smaller than its last entry.
fn insert(best: &mut [f64], d: f64) {
    let last = best.len() - 1;
    if d >= best[last] {
        return;
    }
    let mut pos = last;
    while pos > 0 && best[pos - 1] > d {
        best[pos] = best[pos - 1];
        pos -= 1;
    }
    best[pos] = d;
}

/// `_compute_mi_cc`: both variables continuous; joint neighbours in the max-norm.
fn mi_cc(x: &[f64], y: &[f64], k: usize) -> f64 {
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let mut y_sorted = y.to_vec();
    y_sorted.sort_by(f64::total_cmp);
    let mut psi_nx = vec![0.0; n];
    let mut psi_ny = vec![0.0; n];
    let mut best = vec![f64::INFINITY; k];
    for p in 0..n {
        best.fill(f64::INFINITY);
        let (mut left, mut right) = (p, p + 1);
        loop {
            let dl = if left > 0 { xs[p] - xs[left - 1] } else { f64::INFINITY };
            let dr = if right < n { xs[right] - xs[p] } else { f64::INFINITY };
            // every later candidate on a side is at least this far in x, hence in the max-norm
            if dl.min(dr) >= best[k - 1] {
                break;
            }
            let (dx, q) = if dl <= dr {
                left -= 1;
                (dl, left)
            } else {
                right += 1;
                (dr, right - 1)
            };
            insert(&mut best, dx.max((ys[q] - ys[p]).abs()));
        }
        let radius = below(best[k - 1]);
        let i = order[p];
        let nx = count_within(&xs, xs[p], radius) - 1;
        let ny = count_within(&y_sorted, y[i], radius) - 1;
        psi_nx[i] = digamma(nx as f64 + 1.0);
        psi_ny[i] = digamma(ny as f64 + 1.0);
    }
    let nf = n as f64;
    let mi = digamma(nf) + digamma(k as f64) - pairwise_sum(&psi_nx) / nf - pairwise_sum(&psi_ny) / nf;
    mi.max(0.0)
}

/// `_compute_mi_cd`: a continuous variable against class labels; rows of single-row classes are left out. NaN
/// when no class has two rows.
fn mi_cd(c: &[f64], class_of: &[usize], n_classes: usize, k: usize) -> f64 {
    let n = c.len();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (i, &class) in class_of.iter().enumerate() {
        members[class].push(i);
    }
    let mut radius = vec![0.0; n];
    let mut k_all = vec![0usize; n];
    for rows in members.iter().filter(|rows| rows.len() > 1) {
        let kk = k.min(rows.len() - 1);
        let mut sorted: Vec<(f64, usize)> = rows.iter().map(|&i| (c[i], i)).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let values: Vec<f64> = sorted.iter().map(|s| s.0).collect();
        for (p, &(_, i)) in sorted.iter().enumerate() {
            let (mut left, mut right) = (p, p + 1);
            let mut d = 0.0;
            for _ in 0..kk {
                let dl = if left > 0 { values[p] - values[left - 1] } else { f64::INFINITY };
                let dr = if right < values.len() { values[right] - values[p] } else { f64::INFINITY };
                if dl <= dr {
                    d = dl;
                    left -= 1;
                } else {
                    d = dr;
                    right += 1;
                }
            }
            radius[i] = below(d);
            k_all[i] = kk;
        }
    }
    let kept: Vec<usize> = (0..n).filter(|&i| members[class_of[i]].len() > 1).collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let mut kept_sorted: Vec<f64> = kept.iter().map(|&i| c[i]).collect();
    kept_sorted.sort_by(f64::total_cmp);
    let psi_k: Vec<f64> = kept.iter().map(|&i| digamma(k_all[i] as f64)).collect();
    let psi_label: Vec<f64> = kept.iter().map(|&i| digamma(members[class_of[i]].len() as f64)).collect();
    let psi_m: Vec<f64> = kept.iter().map(|&i| digamma(count_within(&kept_sorted, c[i], radius[i]) as f64)).collect();
    let nf = kept.len() as f64;
    let mi = digamma(nf) + pairwise_sum(&psi_k) / nf - pairwise_sum(&psi_label) / nf - pairwise_sum(&psi_m) / nf;
    mi.max(0.0)
}
