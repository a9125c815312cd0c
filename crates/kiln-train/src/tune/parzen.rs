//! The Parzen estimator of TPE, as Optuna 4.9 builds it: a mixture over the observed trials plus one prior kernel,
//! each kernel a product over the parameters of a truncated (log-)normal, discretised for a step or an int, or a
//! categorical row. Sigmas follow Optuna's rules (neighbour gaps, or Scott's rule when multivariate; the magic
//! clip); weights are `default_weights` then the prior weight. Drawing and the log density are here; which trials
//! feed it is the sampler's business.

use super::space::Distribution;
use kiln_domain::NumpyRandomState;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiply-and-rotate hash of 64-bit words (the bits of floats): the maps below key on a few hundred bit
/// patterns per call, where SipHash's resistance to chosen keys buys nothing and costs most of the lookup.
#[derive(Default)]
struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        // a slice of words (a `Vec<u64>` key) arrives as its bytes: hashed a word at a time
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

use super::truncnorm::{log_gauss_masses, norm_pdf_log_c, ppf};

/// The settings Optuna's `_ParzenEstimatorParameters` carries (without the deprecated categorical distances).
#[derive(Clone, Copy, Debug)]
pub struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    pub multivariate: bool,
    /// the weight of each of `n` observations, oldest first (Optuna's `weights`).
    pub weights: fn(usize) -> Vec<f64>,
}

/// Optuna's `default_weights`: ones below 25 observations, else a linear ramp from `1/n` for the oldest `n - 25`
/// then 25 ones.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let num = n - 25;
    let start = 1.0 / n as f64;
    let mut w: Vec<f64> = if num > 1 {
        let step = (1.0 - start) / (num - 1) as f64;
        let mut w: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
        w[num - 1] = 1.0;
        w
    } else {
        vec![start; num]
    };
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// numpy's `sum` of a contiguous array: pairwise in blocks of 8 with 8 running sums, so that sums agree with
/// Optuna's to the bit (acquisition values of two categories can tie up to rounding).
pub(crate) fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |r, x| r + x);
    }
    if n <= 128 {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        for chunk in a[8..full].chunks_exact(8) {
            for (rj, x) in r.iter_mut().zip(chunk) {
                *rj += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[full..] {
            res += x;
        }
        return res;
    }
    let n2 = n / 2 - (n / 2) % 8;
    np_sum(&a[..n2]) + np_sum(&a[n2..])
}

/// One parameter's kernels (one per observation, then the prior).
#[derive(Clone, Debug)]
enum Kernels {
    /// the distinct probability rows (one per observed choice, and the prior's uniform row; a single uniform row
    /// when there is no observation) and each kernel's row: kernels of the same choice have the same row, bit for
    /// bit, so its logarithms are taken once.
    Categorical {
        rows: Vec<Vec<f64>>,
        row_of: Vec<usize>,
    },
    Numeric(Numeric),
}

/// Truncated normals in the sampling space (log space under `log`), discretised when `step` is set.
#[derive(Clone, Debug)]
struct Numeric {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    /// the distribution's own bounds and step.
    low: f64,
    high: f64,
    step: Option<f64>,
    log: bool,
    /// the truncation bounds in the sampling space (widened by half a step when discrete).
    lo_t: f64,
    hi_t: f64,
    /// each kernel's log mass over `[lo_t, hi_t]` in its own standard units.
    log_mass: Vec<f64>,
}

/// A Parzen estimator over an ordered list of parameters.
#[derive(Clone, Debug)]
pub struct ParzenEstimator {
    /// the mixture's weights, the prior's last.
    weights: Vec<f64>,
    dims: Vec<Kernels>,
}

impl ParzenEstimator {
    /// The estimator of the observations `obs` (one row per trial, internal values in the order of `space`),
    /// oldest first.
    pub fn new(obs: &[Vec<f64>], space: &[&Distribution], params: &ParzenParams) -> Self {
        let columns: Vec<Vec<f64>> = (0..space.len()).map(|j| obs.iter().map(|row| row[j]).collect()).collect();
        Self::from_columns(&columns, obs.len(), space, params)
    }

    /// [`ParzenEstimator::new`] of the observations given by parameter: `columns[j]` holds the `n` trials' values
    /// of `space[j]`, oldest first.
    pub fn from_columns(columns: &[Vec<f64>], n: usize, space: &[&Distribution], params: &ParzenParams) -> Self {
        let dims = space.iter().enumerate().map(|(j, d)| kernels(&columns[j], d, params, space.len())).collect();
        ParzenEstimator { weights: Self::mixture_weights(n, params), dims }
    }

    /// [`ParzenEstimator::from_columns`] of observations already in the sampling space: `dims[j]` holds the `n`
    /// trials' values of `space[j]` (oldest first) as [`Observed`] says. The same estimator, bit for bit.
    pub(crate) fn from_observed(dims: Vec<Observed>, n: usize, space: &[&Distribution], params: &ParzenParams) -> Self {
        let dims = dims
            .into_iter()
            .zip(space)
            .map(|(obs, d)| match obs {
                Observed::Values(values) => kernels(&values, d, params, space.len()),
                Observed::Means { mus, order } => numeric(mus, order.as_deref(), d, params, space.len()),
            })
            .collect();
        ParzenEstimator { weights: Self::mixture_weights(n, params), dims }
    }

    /// The weights of `n` observations' kernels and the prior's (last), normalised.
    fn mixture_weights(n: usize, params: &ParzenParams) -> Vec<f64> {
        let mut weights = if n == 0 {
            vec![1.0]
        } else {
            let mut w = (params.weights)(n);
            w.truncate(n);
            w.push(params.prior_weight);
            w
        };
        let total = np_sum(&weights);
        for w in &mut weights {
            *w /= total;
        }
        weights
    }

    /// The mixture weights (the prior's last).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Each numeric parameter's kernel means and sigmas (in the sampling space), `None` for a categorical one.
    pub fn mus_sigmas(&self) -> Vec<Option<(Vec<f64>, Vec<f64>)>> {
        self.dims
            .iter()
            .map(|k| match k {
                Kernels::Numeric(n) => Some((n.mus.clone(), n.sigmas.clone())),
                Kernels::Categorical { .. } => None,
            })
            .collect()
    }

    /// `size` draws (rows of internal values), consuming the generator as Optuna does: the kernels, then a
    /// uniform per draw for each categorical parameter in order, then one per draw for each numeric parameter.
    pub fn sample(&self, rng: &mut NumpyRandomState, size: usize) -> Vec<Vec<f64>> {
        let active = rng.choice_weighted(&self.weights, size);
        let mut out = vec![vec![0.0; self.dims.len()]; size];
        let mut numeric = Vec::new();
        for (j, dim) in self.dims.iter().enumerate() {
            match dim {
                Kernels::Categorical { rows, row_of } => {
                    for (row, &k) in out.iter_mut().zip(&active) {
                        let u = rng.next_f64();
                        let p = &rows[row_of[k.min(row_of.len() - 1)]];
                        let mut cum = 0.0;
                        let mut idx = 0;
                        for (c, &pc) in p.iter().enumerate() {
                            cum += pc;
                            let c_cum = if c + 1 == p.len() { 1.0 } else { cum };
                            if c_cum < u {
                                idx += 1;
                            }
                        }
                        row[j] = idx as f64;
                    }
                }
                Kernels::Numeric(num) => numeric.push((j, num)),
            }
        }
        if numeric.is_empty() {
            return out;
        }
        let (mut q, mut a, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for (_, num) in &numeric {
            for &k in &active {
                let (mu, sigma) = (num.mus[k], num.sigmas[k]);
                q.push(rng.next_f64());
                a.push((num.lo_t - mu) / sigma);
                b.push((num.hi_t - mu) / sigma);
            }
        }
        let x = ppf(&q, &a, &b);
        for (d, (j, num)) in numeric.iter().enumerate() {
            for (i, &k) in active.iter().enumerate() {
                let mut v = x[d * size + i] * num.sigmas[k] + num.mus[k];
                if num.log {
                    v = v.exp();
                }
                if let Some(step) = num.step {
                    v = (num.low + ((v - num.low) / step).round_ties_even() * step).clamp(num.low, num.high);
                }
                out[i][*j] = v;
            }
        }
        out
    }

    /// The log density (log mass for discrete parameters) of each row of internal values. A discrete parameter's
    /// masses are computed once per distinct value and distinct kernel (as Optuna does), the rest per pair; the
    /// floating-point operations are Optuna's, in its order.
    pub fn log_pdf(&self, xs: &[Vec<f64>]) -> Vec<f64> {
        // a row's density depends on that row alone: each distinct row (by bits) is computed once. An independent
        // draw of a categorical or integer parameter has few distinct candidates among its 24
        let mut seen: WordMap<Vec<u64>, usize> = WordMap::with_capacity_and_hasher(xs.len(), Default::default());
        let mut uniq: Vec<&Vec<f64>> = Vec::new();
        let ids: Vec<usize> = xs
            .iter()
            .map(|x| {
                *seen.entry(x.iter().map(|v| v.to_bits()).collect()).or_insert_with(|| {
                    uniq.push(x);
                    uniq.len() - 1
                })
            })
            .collect();
        let values = self.log_pdf_rows(&uniq);
        ids.iter().map(|&i| values[i]).collect()
    }

    /// [`ParzenEstimator::log_pdf`] of every row. What depends on the kernels alone (the categorical rows'
    /// logarithms, the discrete masses, each kernel's bounds in its units and the logarithms of the sigmas and the
    /// weights) is worked out once; then each candidate's row of terms is built, reduced and summed while it sits in
    /// the first-level cache (8 KiB at 1,000 kernels), each pass a plain loop over arrays on vector lanes. The
    /// floating-point operations on each term are Optuna's, in its order.
    fn log_pdf_rows(&self, xs: &[&Vec<f64>]) -> Vec<f64> {
        let nk = self.weights.len();
        let log_c = norm_pdf_log_c();
        let dims: Vec<DimTerms> = self
            .dims
            .iter()
            .enumerate()
            .map(|(j, dim)| match dim {
                Kernels::Categorical { rows, row_of } => DimTerms::Categorical {
                    j,
                    log_p: rows.iter().map(|row| row.iter().map(|p| p.ln()).collect()).collect(),
                    row_of,
                },
                Kernels::Numeric(num) => match num.step {
                    Some(step) => {
                        let (x_ids, x_uniq) = distinct(xs.iter().map(|x| x[j]));
                        let (k_ids, k_uniq) = distinct_pairs(&num.mus, &num.sigmas);
                        let mass = x_uniq
                            .iter()
                            .map(|&x| {
                                let (lo, hi) = if num.log {
                                    ((x - step / 2.0).ln(), (x + step / 2.0).ln())
                                } else {
                                    (x - step / 2.0, x + step / 2.0)
                                };
                                log_gauss_masses(
                                    k_uniq.iter().map(|&(mu, sigma)| ((lo - mu) / sigma, (hi - mu) / sigma)),
                                )
                            })
                            .collect();
                        DimTerms::Discrete { x_ids, mass, k_ids, log_mass: &num.log_mass }
                    }
                    None => DimTerms::Continuous {
                        j,
                        log: num.log,
                        a: num.mus.iter().zip(&num.sigmas).map(|(mu, s)| (num.lo_t - mu) / s).collect(),
                        b: num.mus.iter().zip(&num.sigmas).map(|(mu, s)| (num.hi_t - mu) / s).collect(),
                        ln_sigma: ln_repeated(&num.sigmas),
                        num,
                    },
                },
            })
            .collect();
        let has_cont = dims.iter().any(|d| matches!(d, DimTerms::Continuous { .. }));
        // two rows of kernels, kept per thread (allocated afresh for each parameter of each trial, the allocator
        // gave them back to the system and faulted them in again)
        let (mut row, mut cont) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        row.resize(nk, 0.0);
        cont.resize(nk, 0.0);
        let out = LOG_WEIGHTS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let log_w = log_weights(&mut cache, &self.weights);
            xs.iter()
                .enumerate()
                .map(|(i, x)| {
                    row.fill(0.0);
                    if has_cont {
                        cont.fill(0.0);
                    }
                    for dim in &dims {
                        match dim {
                            DimTerms::Categorical { j, log_p, row_of } => {
                                let choice = x[*j] as usize;
                                let column: Vec<f64> = log_p.iter().map(|r| r[choice]).collect();
                                for (k, t) in row.iter_mut().enumerate() {
                                    *t += column[row_of[k.min(row_of.len() - 1)]];
                                }
                            }
                            DimTerms::Discrete { x_ids, mass, k_ids, log_mass } => {
                                let mass = &mass[x_ids[i]];
                                for ((t, &ki), lm) in row.iter_mut().zip(k_ids).zip(*log_mass) {
                                    *t += mass[ki];
                                    *t -= lm;
                                }
                            }
                            DimTerms::Continuous { j, log, a, b, ln_sigma, num } => {
                                let kernels = GaussKernels {
                                    mus: &num.mus,
                                    sigmas: &num.sigmas,
                                    a,
                                    b,
                                    ln_sigma,
                                    log_mass: &num.log_mass,
                                };
                                let xt = if *log { x[*j].ln() } else { x[*j] };
                                add_gauss_log_pdf(&mut cont, xt, &kernels, log_c);
                            }
                        }
                    }
                    log_sum_exp_row(&mut row, has_cont.then_some(&cont[..]), log_w)
                })
                .collect()
        });
        SCRATCH.with(|s| *s.borrow_mut() = (row, cont));
        out
    }
}

/// What [`ParzenEstimator::log_pdf_rows`] works out once for a parameter, before the rows.
enum DimTerms<'a> {
    /// the logarithms of the distinct probability rows, and each kernel's row
    Categorical { j: usize, log_p: Vec<Vec<f64>>, row_of: &'a [usize] },
    /// the log masses of each distinct candidate value (`mass[x_ids[i]]` for candidate `i`) under each distinct
    /// kernel (`[k_ids[k]]` for kernel `k`), and the kernels' log masses over the bounds
    Discrete { x_ids: Vec<usize>, mass: Vec<Vec<f64>>, k_ids: Vec<usize>, log_mass: &'a [f64] },
    /// the kernels' bounds in their own units and the logarithms of their sigmas
    Continuous { j: usize, log: bool, a: Vec<f64>, b: Vec<f64>, ln_sigma: Vec<f64>, num: &'a Numeric },
}

/// The natural logarithm of each value, taken once for a run of equal values (the sigmas the magic clip raised to
/// its floor, or the single bandwidth of the multivariate estimator, repeat kernel after kernel).
fn ln_repeated(values: &[f64]) -> Vec<f64> {
    let mut last: Option<(u64, f64)> = None;
    values
        .iter()
        .map(|v| match last {
            Some((bits, ln)) if bits == v.to_bits() => ln,
            _ => {
                let ln = v.ln();
                last = Some((v.to_bits(), ln));
                ln
            }
        })
        .collect()
}

/// The logarithms of `weights`, from `cache` when they were taken last time or the time before: every parameter
/// of an independent draw has an estimator over the same trials, so the same weights.
fn log_weights<'c>(cache: &'c mut [(Vec<f64>, Vec<f64>); 2], weights: &[f64]) -> &'c [f64] {
    if cache[0].0 != weights {
        cache.swap(0, 1);
        if cache[0].0 != weights {
            cache[0] = (weights.to_vec(), weights.iter().map(|w| w.ln()).collect());
        }
    }
    &cache[0].1
}

thread_local! {
    /// [`ParzenEstimator::log_pdf`]'s two rows, kept between calls.
    static SCRATCH: std::cell::RefCell<(Vec<f64>, Vec<f64>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    /// the last two weight vectors and their logarithms (see [`log_weights`])
    static LOG_WEIGHTS: std::cell::RefCell<[(Vec<f64>, Vec<f64>); 2]> =
        const { std::cell::RefCell::new([(Vec::new(), Vec::new()), (Vec::new(), Vec::new())]) };
}

/// One candidate's log density from its `row` of per-kernel terms (the discrete and categorical parameters'),
/// `cont` (the continuous parameters' sum, when any) and the weights' logarithms, as Optuna's mixture ends:
/// `(t + c) + ln w` per kernel, then the log-sum-exp shifted by the row's largest term. `row` is overwritten. On
/// the widest vector lanes the CPU has, one pass after the other while the row is in cache.
#[allow(unsafe_code)]
fn log_sum_exp_row(row: &mut [f64], cont: Option<&[f64]>, log_w: &[f64]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above
            return unsafe { log_sum_exp_row_avx512(row, cont, log_w) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above
            return unsafe { log_sum_exp_row_avx2(row, cont, log_w) };
        }
    }
    log_sum_exp_row_lanes(row, cont, log_w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn log_sum_exp_row_avx512(row: &mut [f64], cont: Option<&[f64]>, log_w: &[f64]) -> f64 {
    log_sum_exp_row_lanes(row, cont, log_w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn log_sum_exp_row_avx2(row: &mut [f64], cont: Option<&[f64]>, log_w: &[f64]) -> f64 {
    log_sum_exp_row_lanes(row, cont, log_w)
}

#[inline(always)]
fn log_sum_exp_row_lanes(row: &mut [f64], cont: Option<&[f64]>, log_w: &[f64]) -> f64 {
    let n = row.len();
    let log_w = &log_w[..n];
    match cont {
        Some(cont) => {
            let cont = &cont[..n];
            for k in 0..n {
                row[k] = (row[k] + cont[k]) + log_w[k];
            }
        }
        None => {
            for k in 0..n {
                row[k] += log_w[k];
            }
        }
    }
    let mut max = row_max(row);
    if max == f64::NEG_INFINITY {
        max = 0.0;
    }
    exp_shifted_lanes(row, max);
    np_sum(row).ln() + max
}

/// The largest of `row` with NaN ignored (`f64::max` folded from `-inf`), in eight lanes: the same value in any
/// order, and a row whose largest is `-0.0` or `0.0` gives the same log density either way.
#[inline(always)]
fn row_max(row: &[f64]) -> f64 {
    let mut lanes = [f64::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (m, t) in lanes.iter_mut().zip(chunk) {
            *m = m.max(*t);
        }
    }
    rest.iter().chain(&lanes).copied().fold(f64::NEG_INFINITY, f64::max)
}

/// The per-kernel arrays of [`add_gauss_log_pdf`].
struct GaussKernels<'a> {
    mus: &'a [f64],
    sigmas: &'a [f64],
    a: &'a [f64],
    b: &'a [f64],
    ln_sigma: &'a [f64],
    log_mass: &'a [f64],
}

/// Adds each kernel's truncated normal log density at `xt` to `row`, as Optuna's `_log_pdf` of a truncated normal:
/// `-z^2/2 - ln sqrt(2 pi) - log mass - ln sigma` inside the bounds, `-inf` outside, NaN for an empty interval. On
/// the widest vector lanes the CPU has (the same operations on each element, so the same bits everywhere).
#[allow(unsafe_code)]
fn add_gauss_log_pdf(row: &mut [f64], xt: f64, kernels: &GaussKernels, log_c: f64) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above
            return unsafe { add_gauss_log_pdf_avx512(row, xt, kernels, log_c) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above
            return unsafe { add_gauss_log_pdf_avx2(row, xt, kernels, log_c) };
        }
    }
    add_gauss_log_pdf_lanes(row, xt, kernels, log_c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn add_gauss_log_pdf_avx512(row: &mut [f64], xt: f64, kernels: &GaussKernels, log_c: f64) {
    add_gauss_log_pdf_lanes(row, xt, kernels, log_c);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_gauss_log_pdf_avx2(row: &mut [f64], xt: f64, kernels: &GaussKernels, log_c: f64) {
    add_gauss_log_pdf_lanes(row, xt, kernels, log_c);
}

#[inline(always)]
fn add_gauss_log_pdf_lanes(row: &mut [f64], xt: f64, kernels: &GaussKernels, log_c: f64) {
    let GaussKernels { mus, sigmas, a, b, ln_sigma, log_mass } = *kernels;
    let n = row.len();
    let (mus, sigmas, a, b, ln_sigma, log_mass) =
        (&mus[..n], &sigmas[..n], &a[..n], &b[..n], &ln_sigma[..n], &log_mass[..n]);
    for k in 0..n {
        let z = (xt - mus[k]) / sigmas[k];
        let inside = -(z * z) / 2.0 - log_c - log_mass[k] - ln_sigma[k];
        let v = if (z < a[k]) | (z > b[k]) { f64::NEG_INFINITY } else { inside };
        row[k] += if a[k] == b[k] { f64::NAN } else { v };
    }
}

/// Replaces each term `t` of `row` by `exp(t - max)` (`max` is the row's largest, so every argument is at most 0).
#[inline(always)]
fn exp_shifted_lanes(row: &mut [f64], max: f64) {
    for t in row.iter_mut() {
        *t = exp_nonpositive(*t - max);
    }
}

/// `exp(d)` for `d <= 0` (NaN stays NaN), within one unit in the last place: Cody and Waite's reduction `d = k ln 2
/// + r` with `|r| <= ln 2 / 2`, the Taylor polynomial of degree 13 for `e^r` (its remainder is below 5e-18), times
/// `2^k` built in the exponent bits. Plain multiplies and adds, never fused, so every CPU gives the same bits.
///
/// Below -708 the result is 0. Such a term sits beside the row's largest, whose exponential is 1, and is under
/// 1e-307: added into a sum that is at least 1 it cannot change a bit of it, however the sum is grouped.
#[inline(always)]
pub(crate) fn exp_nonpositive(d: f64) -> f64 {
    // 1.5 * 2^52: adding it rounds to an integer, kept in the low bits of the mantissa
    const SHIFT: f64 = 6_755_399_441_055_744.0;
    // ln 2 split as fdlibm splits it: the high part has 32 trailing zero bits, so `k * LN2_HI` is exact
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const INV_FACT: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let y = d * std::f64::consts::LOG2_E + SHIFT;
    let k = y - SHIFT;
    let r = (d - k * LN2_HI) - k * LN2_LO;
    let mut p = INV_FACT[13];
    for c in INV_FACT[..13].iter().rev() {
        p = p * r + c;
    }
    let exponent = (y.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64).wrapping_add(1023);
    let scale = f64::from_bits((exponent as u64) << 52);
    if d < -708.0 { 0.0 } else { p * scale }
}

/// Each value's index among the distinct values, and the distinct values (by bits).
fn distinct(values: impl Iterator<Item = f64>) -> (Vec<usize>, Vec<f64>) {
    let mut seen: WordMap<u64, usize> = WordMap::with_capacity_and_hasher(values.size_hint().0, Default::default());
    let mut uniq = Vec::new();
    let ids = values
        .map(|v| {
            *seen.entry(v.to_bits()).or_insert_with(|| {
                uniq.push(v);
                uniq.len() - 1
            })
        })
        .collect();
    (ids, uniq)
}

/// As [`distinct`] for (mu, sigma) pairs.
fn distinct_pairs(mus: &[f64], sigmas: &[f64]) -> (Vec<usize>, Vec<(f64, f64)>) {
    let mut seen: WordMap<(u64, u64), usize> = WordMap::with_capacity_and_hasher(mus.len(), Default::default());
    let mut uniq = Vec::new();
    let ids = mus
        .iter()
        .zip(sigmas)
        .map(|(&m, &s)| {
            *seen.entry((m.to_bits(), s.to_bits())).or_insert_with(|| {
                uniq.push((m, s));
                uniq.len() - 1
            })
        })
        .collect();
    (ids, uniq)
}

/// One parameter's observations in the sampling space, for [`ParzenEstimator::from_observed`].
pub(crate) enum Observed {
    /// the internal values (a categorical parameter's, or a numeric one's to be put in the sampling space here).
    Values(Vec<f64>),
    /// a numeric parameter's means in the sampling space (the logarithms of the values under `log`), and their
    /// places sorted by value (as `total_cmp` orders them), ties by place: the order [`neighbour_sigmas`] sorts
    /// (`None`: sorted here when needed).
    Means { mus: Vec<f64>, order: Option<Vec<usize>> },
}

/// One parameter's kernels over its observed internal values.
fn kernels(obs: &[f64], d: &Distribution, params: &ParzenParams, n_params: usize) -> Kernels {
    match d {
        Distribution::Categorical { choices } => categorical(obs, choices.len(), params.prior_weight),
        Distribution::Float { log, .. } | Distribution::Int { log, .. } => {
            let mus = if *log { obs.iter().map(|m| m.ln()).collect() } else { obs.to_vec() };
            numeric(mus, None, d, params, n_params)
        }
    }
}

/// A numeric parameter's kernels over its means in the sampling space (`order`: their places sorted by value, ties
/// by place, when known).
fn numeric(
    mut mus: Vec<f64>,
    order: Option<&[usize]>,
    d: &Distribution,
    params: &ParzenParams,
    n_params: usize,
) -> Kernels {
    let (low, high, step, log) = match d {
        Distribution::Categorical { .. } => unreachable!("a categorical parameter has no means"),
        Distribution::Float { low, high, log, step } => (*low, *high, *step, *log),
        Distribution::Int { low, high, log, step } => (*low as f64, *high as f64, Some(*step as f64), *log),
    };
    let (mut lo, mut hi) = (low, high);
    if let Some(s) = step {
        lo -= s / 2.0;
        hi += s / 2.0;
    }
    if log {
        lo = lo.ln();
        hi = hi.ln();
    }
    let n = mus.len();
    let mut sigmas = if params.multivariate {
        let sigma = 0.2 * (n.max(1) as f64).powf(-1.0 / (n_params as f64 + 4.0)) * (hi - lo);
        vec![sigma; n]
    } else {
        match order {
            Some(order) => sigmas_in_order(&mus, order, lo, hi, params.consider_endpoints),
            None => neighbour_sigmas(&mus, lo, hi, params.consider_endpoints),
        }
    };
    let max_sigma = hi - lo;
    let min_sigma = if params.consider_magic_clip { (hi - lo) / 100f64.min(1.0 + (n + 1) as f64) } else { 1e-12 };
    for s in &mut sigmas {
        *s = s.max(min_sigma).min(max_sigma);
    }
    mus.push(0.5 * (lo + hi));
    sigmas.push(hi - lo);
    let log_mass = log_gauss_masses(mus.iter().zip(&sigmas).map(|(m, s)| ((lo - m) / s, (hi - m) / s)));
    Kernels::Numeric(Numeric { mus, sigmas, low, high, step, log, lo_t: lo, hi_t: hi, log_mass })
}

/// Each observation's sigma: the larger gap to its sorted neighbours (`lo`, `hi` at the ends); without
/// `consider_endpoints`, the outermost take their inner gap.
fn neighbour_sigmas(mus: &[f64], lo: f64, hi: f64, consider_endpoints: bool) -> Vec<f64> {
    // sorted by value (as `total_cmp` orders floats), ties in the order of the observations, as a stable sort
    // leaves them
    let mut keyed: Vec<(i64, usize)> = mus.iter().enumerate().map(|(i, m)| (total_order_key(*m), i)).collect();
    keyed.sort_unstable();
    let order: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    sigmas_in_order(mus, &order, lo, hi, consider_endpoints)
}

/// `f64::total_cmp`'s order as an integer: the bits, the negative values' flipped.
pub(crate) fn total_order_key(x: f64) -> i64 {
    let bits = x.to_bits() as i64;
    bits ^ (((bits >> 63) as u64) >> 1) as i64
}

/// [`neighbour_sigmas`] with the observations' `order` by value given.
fn sigmas_in_order(mus: &[f64], order: &[usize], lo: f64, hi: f64, consider_endpoints: bool) -> Vec<f64> {
    let n = mus.len();
    let mut s = Vec::with_capacity(n + 2);
    s.push(lo);
    s.extend(order.iter().map(|&i| mus[i]));
    s.push(hi);
    let mut sorted: Vec<f64> = (1..=n).map(|i| (s[i] - s[i - 1]).max(s[i + 1] - s[i])).collect();
    if !consider_endpoints && s.len() >= 4 {
        sorted[0] = s[2] - s[1];
        sorted[n - 1] = s[n] - s[n - 1];
    }
    let mut sigmas = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        sigmas[i] = sorted[rank];
    }
    sigmas
}

/// A categorical parameter's rows: each observation's row is `prior_weight / n_kernels` everywhere plus 1 at its
/// choice, normalised; the prior's row is uniform.
fn categorical(obs: &[f64], n_choices: usize, prior_weight: f64) -> Kernels {
    if obs.is_empty() {
        return Kernels::Categorical { rows: vec![vec![1.0 / n_choices as f64; n_choices]], row_of: vec![0] };
    }
    let n_kernels = obs.len() + 1;
    // rows 0..n_choices: an observation of that choice; row n_choices: the prior
    let mut rows = vec![vec![prior_weight / n_kernels as f64; n_choices]; n_choices + 1];
    for (c, row) in rows.iter_mut().take(n_choices).enumerate() {
        row[c] += 1.0;
    }
    for row in &mut rows {
        let sum = np_sum(row);
        if sum != 0.0 {
            for p in row.iter_mut() {
                *p /= sum;
            }
        }
    }
    let row_of = obs.iter().map(|&o| o as usize).chain([n_choices]).collect();
    Kernels::Categorical { rows, row_of }
}

#[cfg(test)]
mod exp_tests {
    use super::*;

    /// The distance in units in the last place between two positive floats.
    fn ulps(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }

    #[test]
    fn the_vector_exponential_is_within_one_ulp_of_libm() {
        let mut rng = NumpyRandomState::new(7);
        let mut worst = 0;
        let mut differ = 0;
        let n = 200_000;
        for i in 0..n {
            // uniform over [-708, 0], and more densely near 0, where a row's largest terms sit
            let d = if i % 2 == 0 { -708.0 * rng.next_f64() } else { -(rng.next_f64() * 20.0).powi(2) / 20.0 };
            let (ours, libm) = (exp_nonpositive(d), d.exp());
            worst = worst.max(ulps(ours, libm));
            differ += usize::from(ours != libm);
        }
        assert!(worst <= 1, "at most one ulp from libm's exp, saw {worst}");
        // about one in ten differs (by that one ulp)
        assert!(differ < n / 5, "most values equal libm's bit for bit: {differ} of {n} differ");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(-0.0), 1.0);
        assert_eq!(exp_nonpositive(-708.5), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
        // the row pass, on every lane width, gives the scalar functions' bits: `(t + c) + ln w`, the largest
        // term (NaN ignored), the shifted exponentials and numpy's sum
        let terms: Vec<f64> = (0..1001).map(|i| -(i as f64) * 0.731).chain([f64::NEG_INFINITY, 0.25]).collect();
        let cont: Vec<f64> = (0..terms.len()).map(|i| (i % 7) as f64 * -0.3).collect();
        let log_w: Vec<f64> = (0..terms.len()).map(|i| -((i + 1) as f64).ln()).collect();
        let summed: Vec<f64> = terms.iter().zip(&cont).zip(&log_w).map(|((t, c), w)| (t + c) + w).collect();
        let max = summed.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let shifted: Vec<f64> = summed.iter().map(|t| exp_nonpositive(t - max)).collect();
        let expected = np_sum(&shifted).ln() + max;
        let mut row = terms.clone();
        assert_eq!(log_sum_exp_row(&mut row, Some(&cont), &log_w).to_bits(), expected.to_bits());
        for (a, b) in row.iter().zip(&shifted) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
        // a NaN term is passed over by the largest and makes the density NaN, as numpy's does
        let mut row = terms.clone();
        row[17] = f64::NAN;
        assert!(log_sum_exp_row(&mut row, None, &log_w).is_nan());
        // a row of `-inf` (no kernel reaches the candidate) is `-inf`, not NaN
        let mut row = vec![f64::NEG_INFINITY; 9];
        assert_eq!(log_sum_exp_row(&mut row, None, &[0.0; 9]), f64::NEG_INFINITY);
    }

    #[test]
    fn terms_below_the_flush_cannot_change_a_sum_that_holds_a_one() {
        // the argument for flushing terms under e^-708 to 0: beside a 1 they vanish however numpy groups the sum
        let mut with: Vec<f64> = vec![1.0];
        with.extend((0..999).map(|i| if i % 3 == 0 { (-708.0 - i as f64 / 40.0).exp() } else { 1e-3 * i as f64 }));
        let without: Vec<f64> = with.iter().map(|&t| if t < 1e-300 { 0.0 } else { t }).collect();
        assert_eq!(np_sum(&with).to_bits(), np_sum(&without).to_bits());
    }
}
