//! Two-sample statistics, each equal to scipy 1.17's on the same samples (within 1e-9, `tests/test_drift.py`):
//! `ks_2samp` (two-sided, `method='auto'`: exact lattice-path p-value when both samples have at most 10,000 values,
//! else `kstwo.sf(D, round(n1*n2/(n1+n2)))`), `wasserstein_distance`, `jensenshannon` (natural log),
//! `chisquare` and `chi2_contingency`, and Evidently's two-proportion z-test. Ported from scipy's Python and
//! xsf's C++ (`kolmogorov.h`), written anew in Rust; where scipy computes in double-double (`smirnov`) this sums
//! logs in f64, which the tests show stays within the tolerance.

use crate::{EvalError, pairwise_sum};

/// A statistic and its p-value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct TestResult {
    pub statistic: f64,
    pub pvalue: f64,
}

fn check(name: &'static str, values: &[f64]) -> Result<(), EvalError> {
    if values.is_empty() {
        return Err(EvalError::Empty { input: name });
    }
    if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFinite { input: name, index, value });
    }
    Ok(())
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// numpy's `np.linspace(0, 1, n + 1)[i]`: `i * (1 / n)`, the last exactly 1.
fn linspace_unit(i: usize, n: usize) -> f64 {
    if i == n { 1.0 } else { i as f64 * (1.0 / n as f64) }
}

/// The largest size for which `method='auto'` computes the exact p-value (scipy's `MAX_AUTO_N`).
pub const KS_MAX_EXACT_N: usize = 10_000;

/// scipy's `ks_2samp(a, b)` (two-sided, `method='auto'`).
///
/// # Errors
/// An empty sample, or a non-finite value (drop missing values first).
pub fn ks_2samp(a: &[f64], b: &[f64]) -> Result<TestResult, EvalError> {
    check("reference sample", a)?;
    check("current sample", b)?;
    let (a, b) = (sorted(a), sorted(b));
    Ok(ks_2samp_sorted(&a, &b))
}

/// [`ks_2samp`] of two sorted samples of finite values, neither empty.
pub fn ks_2samp_sorted(a: &[f64], b: &[f64]) -> TestResult {
    let (n1, n2) = (a.len(), b.len());
    let (mut i, mut j) = (0usize, 0usize);
    let (mut max_diff, mut min_diff) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < n1 || j < n2 {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < n1 && a[i] == v {
            i += 1;
        }
        while j < n2 && b[j] == v {
            j += 1;
        }
        let diff = linspace_unit(i, n1) - linspace_unit(j, n2);
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    let min_s = (-min_diff).clamp(0.0, 1.0);
    let d = if min_s > max_diff { min_s } else { max_diff };
    TestResult { statistic: d, pvalue: ks_2samp_pvalue(d, n1, n2) }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// scipy's `_ks_2samp_prob` for the two-sided alternative and `mode='auto'`.
pub fn ks_2samp_pvalue(d: f64, n1: usize, n2: usize) -> f64 {
    let mut d_asymp = d;
    if n1.max(n2) <= KS_MAX_EXACT_N {
        let g = gcd(n1 as u64, n2 as u64);
        let lcm = (n1 as u64 / g) * n2 as u64;
        let h = (d * lcm as f64).round_ties_even() as u64;
        d_asymp = h as f64 / lcm as f64;
        if h == 0 {
            return 1.0;
        }
        let prob = if n1 == n2 {
            prob_outside_square(n1 as u64, h)
        } else {
            outer_prob_inside_method(n1 as u64, n2 as u64, g, h)
        };
        if prob.is_finite() && (0.0..=1.0).contains(&prob) {
            return prob;
        }
        // scipy falls back to the asymptotic p-value (with the rounded statistic) when the exact one fails
    }
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    kstwo_sf(d_asymp, en.round_ties_even() as u64).clamp(0.0, 1.0)
}

/// scipy's `_compute_prob_outside_square(n, h)`.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let mut k = (n as f64 / h as f64).floor() as i64;
    let (n, h) = (n as i64, h as i64);
    while k >= 0 {
        let mut p1 = 1.0;
        for j in 0..h {
            p1 = (n - k * h - j) as f64 * p1 / (n + k * h + j + 1) as f64;
        }
        p = p1 * (1.0 - p);
        k -= 1;
    }
    2.0 * p
}

/// scipy's `_compute_outer_prob_inside_method(m, n, g, h)` (Hodges; Viehmann's recursion for 1 - p).
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (m, n, g, h) = (m as i64, n as i64, g as i64, h as i64);
    let mg = m / g;
    let ng = n / g;
    let mut minj: i64 = 0;
    let mut maxj: i64 = ((h as f64 / mg as f64).ceil() as i64).min(n + 1);
    let mut curlen = maxj - minj;
    let len_a = (2 * maxj + 2).min(n + 1) as usize;
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *x = 0.0;
    }
    for i in 1..=m {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((((ng * i - h) as f64 / mg as f64).floor() as i64) + 1).max(0);
        minj = minj.min(n);
        maxj = (((ng * i + h) as f64 / mg as f64).ceil() as i64).min(n + 1);
        if maxj <= minj {
            return 1.0;
        }
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * i as f64 + val * j as f64) / (i + j) as f64;
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let start = (maxj - minj) as usize;
            let end = (start + (lastlen - curlen) as usize).min(a.len());
            for x in &mut a[start..end] {
                *x = 1.0;
            }
        }
    }
    a[(maxj - minj - 1) as usize]
}

// ---- kstwo: the distribution of the two-sided one-sample statistic D_n (scipy's _ksstats.py) ----

const E128: i32 = 128;
const MIN_LOG: f64 = -708.0;

fn ep128() -> f64 {
    libm::ldexp(1.0, E128)
}
fn em128() -> f64 {
    libm::ldexp(1.0, -E128)
}

/// scipy's `kstwo.sf(x, n)` (`kolmogn(n, x, cdf=False)`, Simard and L'Ecuyer's choice of method).
pub fn kstwo_sf(x: f64, n: u64) -> f64 {
    if n == 0 {
        return f64::NAN;
    }
    let nf = n as f64;
    if x >= 1.0 {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    let t = nf * x;
    if t <= 1.0 {
        if t <= 0.5 {
            return 1.0;
        }
        let prob = if n <= 140 {
            // np.prod(np.arange(1, n+1) * (1.0/n) * (2*t - 1))
            let mut p = 1.0;
            for i in 1..=n {
                p *= i as f64 * (1.0 / nf) * (2.0 * t - 1.0);
            }
            p
        } else {
            (log_nfactorial_div_n_pow_n(nf) + nf * (2.0 * t - 1.0).ln()).exp()
        };
        return (1.0 - prob).clamp(0.0, 1.0);
    }
    if t >= nf - 1.0 {
        return (2.0 * (1.0 - x).powf(nf)).clamp(0.0, 1.0);
    }
    if x >= 0.5 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let nxsquared = t * x;
    if n <= 140 {
        if nxsquared <= 0.754_693 {
            return (1.0 - kolmogn_dmtw(n, x)).clamp(0.0, 1.0);
        }
        if nxsquared <= 4.0 {
            return (1.0 - kolmogn_pomeranz(n, x)).clamp(0.0, 1.0);
        }
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    if nxsquared >= 370.0 {
        return 0.0;
    }
    if nxsquared >= 2.2 {
        return (2.0 * smirnov(n, x)).clamp(0.0, 1.0);
    }
    let cdf = if nxsquared >= 18.0 {
        1.0
    } else if n <= 100_000 && nf * x.powf(1.5) <= 1.4 {
        kolmogn_dmtw(n, x)
    } else {
        kolmogn_pelz_good(n, x)
    };
    (1.0 - cdf).clamp(0.0, 1.0)
}

// scipy's coefficients, as written there
#[allow(clippy::excessive_precision)]
fn log_nfactorial_div_n_pow_n(n: f64) -> f64 {
    const COEFFS: [f64; 8] = [
        -2.955065359477124183e-2,
        6.4102564102564102564e-3,
        -1.9175269175269175269e-3,
        8.4175084175084175084e-4,
        -5.952380952380952381e-4,
        7.9365079365079365079e-4,
        -2.7777777777777777778e-3,
        8.3333333333333333333e-2,
    ];
    let rn = 1.0 / n;
    let x = rn / n;
    let poly = COEFFS.iter().fold(0.0, |acc, c| acc * x + c);
    n.ln() / 2.0 - n + (2.0 * std::f64::consts::PI).ln() / 2.0 + rn * poly
}

/// Durbin's matrix algorithm as Marsaglia, Tsang and Wang compute it: Pr(D_n <= d).
fn kolmogn_dmtw(n: u64, d: f64) -> f64 {
    if d >= 1.0 {
        return 1.0;
    }
    let nd = n as f64 * d;
    if nd <= 0.5 {
        return 0.0;
    }
    let k = nd.ceil() as usize;
    let h = k as f64 - nd;
    let m = 2 * k - 1;
    let mut hm = vec![0.0f64; m * m];
    let mut v: Vec<f64> = (1..=m).map(|i| 1.0 - h.powi(i as i32)).collect();
    let mut w = vec![0.0f64; m];
    let mut fac = 1.0f64;
    for j in 1..=m {
        w[j - 1] = fac;
        fac /= j as f64;
        v[j - 1] *= fac;
    }
    let tt = (2.0 * h - 1.0).max(0.0).powi(m as i32) - 2.0 * h.powi(m as i32);
    v[m - 1] = (1.0 + tt) * fac;
    for i in 1..m {
        // H[i-1:, i] = w[:m-i+1]
        for (r, wv) in (i - 1..m).zip(w.iter()) {
            hm[r * m + i] = *wv;
        }
    }
    for r in 0..m {
        hm[r * m] = v[r];
    }
    for c in 0..m {
        hm[(m - 1) * m + c] = v[m - 1 - c];
    }
    let matmul = |x: &[f64], y: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; m * m];
        for i in 0..m {
            for l in 0..m {
                let xv = x[i * m + l];
                if xv == 0.0 {
                    continue;
                }
                for j in 0..m {
                    out[i * m + j] += xv * y[l * m + j];
                }
            }
        }
        out
    };
    let mut pwr = vec![0.0; m * m];
    for i in 0..m {
        pwr[i * m + i] = 1.0;
    }
    let mut nn = n;
    let mut expnt: i64 = 0;
    let mut hexpnt: i64 = 0;
    while nn > 0 {
        if nn % 2 == 1 {
            pwr = matmul(&pwr, &hm);
            expnt += hexpnt;
        }
        hm = matmul(&hm, &hm);
        hexpnt *= 2;
        if hm[(k - 1) * m + (k - 1)].abs() > ep128() {
            for x in &mut hm {
                *x /= ep128();
            }
            hexpnt += i64::from(E128);
        }
        nn /= 2;
    }
    let mut p = pwr[(k - 1) * m + (k - 1)];
    for i in 1..=n {
        p = i as f64 * p / n as f64;
        if p.abs() < em128() {
            p *= ep128();
            expnt -= i64::from(E128);
        }
    }
    if expnt != 0 {
        p = libm::ldexp(p, expnt as i32);
    }
    p.clamp(0.0, 1.0)
}

fn pomeranz_j1j2(i: i64, n: i64, ll: i64, ceilf: i64, roundf: i64) -> (i64, i64) {
    let (j1, j2) = if i == 0 {
        (-ll - ceilf - 1, ll + ceilf - 1)
    } else {
        let (ip1div2, ip1mod2) = ((i + 1) / 2, (i + 1) % 2);
        if ip1mod2 == 0 {
            if ip1div2 == n + 1 {
                (n - ll - ceilf - 1, n + ll + ceilf - 1)
            } else {
                (ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1)
            }
        } else {
            (ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1)
        }
    };
    ((j1 + 2).max(0), j2.min(n))
}

/// Pomeranz's recursion: Pr(D_n <= x).
fn kolmogn_pomeranz(n: u64, x: f64) -> f64 {
    let nf = n as f64;
    let n = n as i64;
    let t = nf * x;
    let ll = t.floor() as i64;
    let f = t - ll as f64;
    let g = f.min(1.0 - f);
    let ceilf = i64::from(f > 0.0);
    let roundf = i64::from(f > 0.5);
    let npwrs = (2 * (ll + 1)) as usize;
    let mut gpower = vec![1.0f64; npwrs];
    let mut twogpower = vec![1.0f64; npwrs];
    let mut onem2gpower = vec![1.0f64; npwrs];
    let (g_over_n, two_g_over_n, one_minus_two_g_over_n) = (g / nf, 2.0 * g / nf, (1.0 - 2.0 * g) / nf);
    for m in 1..npwrs {
        gpower[m] = gpower[m - 1] * g_over_n / m as f64;
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m as f64;
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m as f64;
    }
    let mut v0 = vec![0.0f64; npwrs];
    let mut v1 = vec![0.0f64; npwrs];
    v1[0] = 1.0;
    let (mut v0s, mut v1s): (i64, i64) = (0, 0);
    let mut expnt: i64 = 0;
    let (mut j1, _) = pomeranz_j1j2(0, n, ll, ceilf, roundf);
    for i in 1..(2 * n + 2) {
        let k1 = j1;
        std::mem::swap(&mut v0, &mut v1);
        std::mem::swap(&mut v0s, &mut v1s);
        v1.iter_mut().for_each(|x| *x = 0.0);
        let (next_j1, j2) = pomeranz_j1j2(i, n, ll, ceilf, roundf);
        j1 = next_j1;
        let pwrs = if i == 1 || i == 2 * n + 1 {
            &gpower
        } else if i % 2 == 1 {
            &twogpower
        } else {
            &onem2gpower
        };
        let ln2 = j2 - k1 + 1;
        if ln2 > 0 {
            let ln2 = ln2 as usize;
            let start = (k1 - v0s) as usize;
            let seg: Vec<f64> = (0..ln2).map(|q| v0.get(start + q).copied().unwrap_or(0.0)).collect();
            // np.convolve(seg, pwrs[:ln2]) (full), entries conv_start .. conv_start + conv_len
            let conv_start = (j1 - k1) as usize;
            let conv_len = (j2 - j1 + 1).max(0) as usize;
            for (out, idx) in (conv_start..conv_start + conv_len).enumerate() {
                let mut s = 0.0;
                for (q, sv) in seg.iter().enumerate() {
                    if idx >= q && idx - q < ln2 {
                        s += sv * pwrs[idx - q];
                    }
                }
                if out < v1.len() {
                    v1[out] = s;
                }
            }
            let maxv = v1.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if 0.0 < maxv && maxv < em128() {
                v1.iter_mut().for_each(|x| *x *= ep128());
                expnt -= i64::from(E128);
            }
            v1s = v0s + j1 - k1;
        }
    }
    let mut ans = v1[(n - v1s) as usize];
    for m in 1..=n {
        if ans.abs() > ep128() {
            ans *= em128();
            expnt += i64::from(E128);
        }
        ans *= m as f64;
    }
    if expnt != 0 {
        ans = libm::ldexp(ans, expnt as i32);
    }
    ans.clamp(0.0, 1.0)
}

/// The Pelz-Good approximation of Pr(D_n <= x).
fn kolmogn_pelz_good(n: u64, x: f64) -> f64 {
    use std::f64::consts::PI;
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let z = nf.sqrt() * x;
    let (zsquared, zthree, zfour, zsix) = (z * z, z * z * z, z.powi(4), z.powi(6));
    let pi2 = PI * PI;
    let qlog = -pi2 / 8.0 / zsquared;
    if qlog < MIN_LOG {
        return 0.0;
    }
    let q = qlog.exp();
    let k1a = -zsquared;
    let k1b = pi2 / 4.0;
    let k2a = 6.0 * zsix + 2.0 * zfour;
    let k2b = (2.0 * zfour - 5.0 * zsquared) * pi2 / 4.0;
    let k2c = pi2 * pi2 * (1.0 - 2.0 * zsquared) / 16.0;
    let k3d = pi2 * pi2 * pi2 * (5.0 - 30.0 * zsquared) / 64.0;
    let k3c = pi2 * pi2 * (-60.0 * zsquared + 212.0 * zfour) / 16.0;
    let k3b = pi2 * (135.0 * zfour - 96.0 * zsix) / 4.0;
    let k3a = -30.0 * zsix - 90.0 * z.powi(8);
    let mut k = [0.0f64; 4];
    let maxk = (16.0 * z / PI).ceil() as i64;
    for kk in (1..=maxk).rev() {
        let m = (2 * kk - 1) as f64;
        let (msq, m4, m6) = (m * m, m.powi(4), m.powi(6));
        let qpower = q.powf(8.0 * kk as f64);
        let coeffs = [1.0, k1a + k1b * msq, k2a + k2b * msq + k2c * m4, k3a + k3b * msq + k3c * m4 + k3d * m6];
        for (v, c) in k.iter_mut().zip(coeffs) {
            *v = *v * qpower + c;
        }
    }
    let sqrt2pi = (2.0 * PI).sqrt();
    let div = [z, 6.0 * zfour, 72.0 * z.powi(7), 6480.0 * z.powi(10)];
    for (v, d) in k.iter_mut().zip(div) {
        *v = *v * q * sqrt2pi / d;
    }
    let q2 = (-pi2 / 2.0 / zsquared).exp();
    let sqrt3z = 3f64.sqrt() * z;
    let mut k2extra_terms = Vec::new();
    let mut k3extra_terms = Vec::new();
    for kk in (1..=maxk).rev() {
        let ksq = (kk * kk) as f64;
        let qp = q2.powf(ksq);
        let kspi = PI * kk as f64;
        k2extra_terms.push(ksq * qp);
        k3extra_terms.push((sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp);
    }
    k[2] += pairwise_sum(&k2extra_terms) * pi2 * sqrt2pi / (-36.0 * zthree);
    k[3] += pairwise_sum(&k3extra_terms) * pi2 * sqrt2pi / (216.0 * zsix);
    for (i, v) in k.iter_mut().enumerate() {
        *v /= nf.powf(i as f64 / 2.0);
    }
    k.iter().sum()
}

/// The one-sided Smirnov survival function Pr(D+_n >= x) (xsf's `smirnov`), by the Birnbaum-Tingey sum
/// `x * sum_j C(n, j) (1 - x - j/n)^(n-j) (x + j/n)^(j-1)` for j up to floor(n(1-x)), summed in logs.
pub fn smirnov(n: u64, x: f64) -> f64 {
    if x.is_nan() || !(0.0..=1.0).contains(&x) || n == 0 {
        return f64::NAN;
    }
    let nf = n as f64;
    if n == 1 {
        return x;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x == 1.0 {
        return 0.0;
    }
    let nx = nf * x;
    let nxfl = nx.floor();
    let alpha = nx - nxfl;
    if nxfl == 0.0 || (nxfl == 1.0 && alpha == 0.0) {
        let cdf = x * (1.0 + x).powf(nf - 1.0);
        return 1.0 - cdf;
    }
    if -2.0 * nf * x * x < -708.396_418_532_264_1 {
        return 0.0;
    }
    if nxfl >= nf - 1.0 {
        return (1.0 - x).powf(nf);
    }
    if n > 1_000_000 {
        let logp = -(6.0 * nf * x + 1.0).powi(2) / 18.0 / nf;
        return if logp < -std::f64::consts::LN_2 { logp.exp() } else { 1.0 + libm::expm1(logp) };
    }
    // the terms j = 0 ..= n - floor(n x) - 1 (xsf's lower sum), stopped as xsf stops once the rest cannot matter
    let last = n - nxfl as u64 - 1;
    let mut terms = Vec::new();
    let mut log_c = 0.0f64; // ln C(n, j)
    let mut running = 0.0f64;
    for j in 0..=last {
        if j > 0 {
            log_c += ((nf - (j - 1) as f64) / j as f64).ln();
        }
        let jf = j as f64;
        let a = 1.0 - x - jf / nf;
        let b = x + jf / nf;
        if a <= 0.0 {
            break;
        }
        let term = (log_c + (nf - jf) * a.ln() + (jf - 1.0) * b.ln()).exp();
        terms.push(term);
        running += term;
        if term != 0.0 && 4.0 * (last - j) as f64 * term < f64::EPSILON * running && j != last {
            break;
        }
        if term == 0.0 && j > n / 2 {
            break;
        }
    }
    (x * pairwise_sum(&terms)).clamp(0.0, 1.0)
}

/// scipy's `wasserstein_distance(u, v)` (the 1-D earth mover's distance between the empirical distributions).
///
/// # Errors
/// An empty sample, or a non-finite value.
pub fn wasserstein_distance(u: &[f64], v: &[f64]) -> Result<f64, EvalError> {
    check("reference sample", u)?;
    check("current sample", v)?;
    Ok(wasserstein_sorted(&sorted(u), &sorted(v)))
}

/// [`wasserstein_distance`] of two sorted samples: the pooled values are walked in order (a merge, no sort), and
/// `|U(x) - V(x)| * (next - x)` summed pairwise, as scipy's `_cdf_distance` does over `np.diff` of the pooled values.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let total = u.len() + v.len();
    let (mut iu, mut iv) = (0usize, 0usize);
    // the pooled values in order: take from whichever side is smaller (ties: both count before the gap after them)
    let mut pooled = Vec::with_capacity(total);
    let (mut a, mut b) = (0usize, 0usize);
    while a < u.len() || b < v.len() {
        if b >= v.len() || (a < u.len() && u[a] <= v[b]) {
            pooled.push(u[a]);
            a += 1;
        } else {
            pooled.push(v[b]);
            b += 1;
        }
    }
    let mut terms = Vec::with_capacity(total.saturating_sub(1));
    for w in pooled.windows(2) {
        let x = w[0];
        while iu < u.len() && u[iu] <= x {
            iu += 1;
        }
        while iv < v.len() && v[iv] <= x {
            iv += 1;
        }
        terms.push((iu as f64 / nu - iv as f64 / nv).abs() * (w[1] - w[0]));
    }
    pairwise_sum(&terms)
}

/// scipy's `jensenshannon(p, q)`: the Jensen-Shannon distance (the square root of the divergence) of two vectors of
/// weights, each normalised to sum to 1, with natural logarithms (scipy's default, and Evidently's: it passes no
/// base), so the distance lies in [0, sqrt(ln 2)].
pub fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq) = (pairwise_sum(p), pairwise_sum(q));
    let p: Vec<f64> = p.iter().map(|x| x / sp).collect();
    let q: Vec<f64> = q.iter().map(|x| x / sq).collect();
    let rel_entr = |x: f64, y: f64| -> f64 {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let m: Vec<f64> = p.iter().zip(&q).map(|(a, b)| (a + b) / 2.0).collect();
    let left: Vec<f64> = p.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)).collect();
    let right: Vec<f64> = q.iter().zip(&m).map(|(a, b)| rel_entr(*a, *b)).collect();
    let js = pairwise_sum(&left) + pairwise_sum(&right);
    (js / 2.0).sqrt()
}

/// scipy's `chisquare(f_obs, f_exp)`: Pearson's statistic and its p-value with `k - 1` degrees of freedom.
///
/// # Errors
/// Lengths that differ or are below 2, or sums that differ by more than scipy's tolerance (sqrt of machine epsilon,
/// relative).
pub fn chisquare(f_obs: &[f64], f_exp: &[f64]) -> Result<TestResult, EvalError> {
    if f_obs.len() != f_exp.len() {
        return Err(EvalError::LengthMismatch { y_true: f_obs.len(), y_pred: f_exp.len() });
    }
    let (so, se) = (pairwise_sum(f_obs), pairwise_sum(f_exp));
    if (so - se).abs() / so.min(se) > f64::EPSILON.sqrt() {
        return Err(EvalError::InvalidSpec {
            key: "chisquare".into(),
            reason: format!("the observed counts sum to {so} and the expected to {se}"),
        });
    }
    let terms: Vec<f64> = f_obs.iter().zip(f_exp).map(|(o, e)| (o - e) * (o - e) / e).collect();
    let stat = pairwise_sum(&terms);
    Ok(TestResult { statistic: stat, pvalue: chi2_sf(stat, (f_obs.len() - 1) as f64) })
}

/// scipy's `chi2_contingency(observed)` (with Yates' correction when there is one degree of freedom): the statistic,
/// its p-value and the degrees of freedom. Rows are the samples, columns the categories.
///
/// # Errors
/// A ragged table, or a row or column summing to zero (scipy refuses a zero expected frequency).
pub fn chi2_contingency(observed: &[Vec<f64>]) -> Result<(TestResult, usize), EvalError> {
    let rows = observed.len();
    let cols = observed.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 || observed.iter().any(|r| r.len() != cols) {
        return Err(EvalError::InvalidSpec {
            key: "chi2_contingency".into(),
            reason: "a ragged or empty table".into(),
        });
    }
    let row_sums: Vec<f64> = observed.iter().map(|r| pairwise_sum(r)).collect();
    let col_sums: Vec<f64> =
        (0..cols).map(|j| pairwise_sum(&observed.iter().map(|r| r[j]).collect::<Vec<_>>())).collect();
    let all: Vec<f64> = observed.iter().flatten().copied().collect();
    let total = pairwise_sum(&all);
    if row_sums.iter().chain(&col_sums).any(|&s| s == 0.0) {
        return Err(EvalError::InvalidSpec {
            key: "chi2_contingency".into(),
            reason: "a row or column sums to zero, so an expected frequency is zero".into(),
        });
    }
    let dof = rows * cols - rows - cols + 1;
    if dof == 0 {
        return Ok((TestResult { statistic: 0.0, pvalue: 1.0 }, 0));
    }
    let mut terms = Vec::with_capacity(rows * cols);
    for (i, r) in observed.iter().enumerate() {
        for (j, &o) in r.iter().enumerate() {
            let e = row_sums[i] * col_sums[j] / total;
            let o = if dof == 1 {
                let diff = e - o;
                o + diff.abs().min(0.5) * diff.signum() * f64::from(diff != 0.0)
            } else {
                o
            };
            terms.push((o - e) * (o - e) / e);
        }
    }
    let stat = pairwise_sum(&terms);
    Ok((TestResult { statistic: stat, pvalue: chi2_sf(stat, dof as f64) }, dof))
}

/// Evidently's two-proportion z-test of a binary column: the share of rows that are not `first` (the smallest value)
/// in each sample; the two-sided p-value `2 (1 - Phi(|z|))`.
pub fn proportions_z_test(ref_ones: u64, ref_n: u64, cur_ones: u64, cur_n: u64) -> TestResult {
    let (n1, n2) = (ref_n as f64, cur_n as f64);
    let p1 = ref_ones as f64 / n1;
    let p2 = cur_ones as f64 / n2;
    let p = (p1 * n1 + p2 * n2) / (n1 + n2);
    let z = (p1 - p2) / (p * (1.0 - p) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let cdf = 0.5 * libm::erfc(-z.abs() / std::f64::consts::SQRT_2);
    TestResult { statistic: z, pvalue: 2.0 * (1.0 - cdf) }
}

/// The chi-square survival function: the regularised upper incomplete gamma `Q(df/2, x/2)` (scipy's `chdtrc`).
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

const MACHEP: f64 = 1.110_223_024_625_156_5e-16;
const BIG: f64 = 4.503_599_627_370_496e15;
const BIGINV: f64 = 2.220_446_049_250_313e-16;

/// The regularised upper incomplete gamma function Q(a, x) (cephes' `igamc`: the series for P when x < 1 or
/// x < a, else the continued fraction).
pub fn gamma_q(a: f64, x: f64) -> f64 {
    if x < 0.0 || a <= 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < 1.0 || x < a {
        return 1.0 - gamma_p_series(a, x);
    }
    let ax = a * x.ln() - x - libm::lgamma(a);
    if ax < MIN_LOG {
        return 0.0;
    }
    let ax = ax.exp();
    // continued fraction
    let mut y = 1.0 - a;
    let mut z = x + y + 1.0;
    let mut c = 0.0;
    let mut pkm2 = 1.0;
    let mut qkm2 = x;
    let mut pkm1 = x + 1.0;
    let mut qkm1 = z * x;
    let mut ans = pkm1 / qkm1;
    loop {
        c += 1.0;
        y += 1.0;
        z += 2.0;
        let yc = y * c;
        let pk = pkm1 * z - pkm2 * yc;
        let qk = qkm1 * z - qkm2 * yc;
        let t = if qk != 0.0 {
            let r = pk / qk;
            let t = ((ans - r) / r).abs();
            ans = r;
            t
        } else {
            1.0
        };
        pkm2 = pkm1;
        pkm1 = pk;
        qkm2 = qkm1;
        qkm1 = qk;
        if pk.abs() > BIG {
            pkm2 *= BIGINV;
            pkm1 *= BIGINV;
            qkm2 *= BIGINV;
            qkm1 *= BIGINV;
        }
        if t <= MACHEP || c > 10_000.0 {
            break;
        }
    }
    ans * ax
}

/// The regularised lower incomplete gamma P(a, x) by its power series (cephes' `igam`).
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let ax = a * x.ln() - x - libm::lgamma(a);
    if ax < MIN_LOG {
        return 0.0;
    }
    let ax = ax.exp();
    let mut r = a;
    let mut c = 1.0;
    let mut ans = 1.0;
    loop {
        r += 1.0;
        c *= x / r;
        ans += c;
        if c / ans <= MACHEP {
            break;
        }
    }
    ans * ax / a
}
