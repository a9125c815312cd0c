//! The Parzen estimator of TPE, as Optuna 4.9 builds it: a mixture over the observed trials plus one prior kernel,
//! each kernel a product over the parameters of a truncated (log-)normal, discretised for a step or an int, or a
//! categorical row. Sigmas follow Optuna's rules (neighbour gaps, or Scott's rule when multivariate; the magic
//! clip); weights are `default_weights` then the prior weight. Drawing and the log density are here; which trials
//! feed it is the sampler's business.

use super::space::Distribution;
use kiln_domain::NumpyRandomState;
use std::collections::HashMap;

use super::truncnorm::{log_gauss_mass, norm_pdf_log_c, ppf};

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
    /// a probability row per kernel (a single uniform row when there is no observation).
    Categorical {
        probs: Vec<Vec<f64>>,
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
        let n = obs.len();
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
        let dims = space
            .iter()
            .enumerate()
            .map(|(j, d)| {
                let column: Vec<f64> = obs.iter().map(|row| row[j]).collect();
                kernels(&column, d, params, space.len())
            })
            .collect();
        ParzenEstimator { weights, dims }
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
                Kernels::Categorical { probs } => {
                    for (row, &k) in out.iter_mut().zip(&active) {
                        let u = rng.next_f64();
                        let p = &probs[k.min(probs.len() - 1)];
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
        let mut seen: HashMap<Vec<u64>, usize> = HashMap::new();
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

    /// [`ParzenEstimator::log_pdf`] of every row.
    fn log_pdf_rows(&self, xs: &[&Vec<f64>]) -> Vec<f64> {
        let n_kernels = self.weights.len();
        let log_c = norm_pdf_log_c();
        let mut terms = vec![vec![0.0; n_kernels]; xs.len()];
        let mut cont: Option<Vec<Vec<f64>>> = None;
        for (j, dim) in self.dims.iter().enumerate() {
            match dim {
                Kernels::Categorical { probs } => {
                    let log_p: Vec<Vec<f64>> = probs.iter().map(|row| row.iter().map(|p| p.ln()).collect()).collect();
                    for (row, x) in terms.iter_mut().zip(xs) {
                        for (k, t) in row.iter_mut().enumerate() {
                            *t += log_p[k.min(log_p.len() - 1)][x[j] as usize];
                        }
                    }
                }
                Kernels::Numeric(num) => match num.step {
                    Some(step) => {
                        let (x_ids, x_uniq) = distinct(xs.iter().map(|x| x[j]));
                        let (k_ids, k_uniq) = distinct_pairs(&num.mus, &num.sigmas);
                        let mass: Vec<Vec<f64>> = x_uniq
                            .iter()
                            .map(|&x| {
                                let (lo, hi) = if num.log {
                                    ((x - step / 2.0).ln(), (x + step / 2.0).ln())
                                } else {
                                    (x - step / 2.0, x + step / 2.0)
                                };
                                k_uniq
                                    .iter()
                                    .map(|&(mu, sigma)| log_gauss_mass((lo - mu) / sigma, (hi - mu) / sigma))
                                    .collect()
                            })
                            .collect();
                        for (row, &xi) in terms.iter_mut().zip(&x_ids) {
                            for (k, t) in row.iter_mut().enumerate() {
                                *t += mass[xi][k_ids[k]];
                                *t -= num.log_mass[k];
                            }
                        }
                    }
                    None => {
                        let c = cont.get_or_insert_with(|| vec![vec![0.0; n_kernels]; xs.len()]);
                        // per kernel: the bounds in its units and ln(sigma), computed once
                        let per_kernel: Vec<(f64, f64, f64)> = num
                            .mus
                            .iter()
                            .zip(&num.sigmas)
                            .map(|(mu, sigma)| ((num.lo_t - mu) / sigma, (num.hi_t - mu) / sigma, sigma.ln()))
                            .collect();
                        for (row, x) in c.iter_mut().zip(xs) {
                            let xt = if num.log { x[j].ln() } else { x[j] };
                            for (k, t) in row.iter_mut().enumerate() {
                                let (a, b, ln_sigma) = per_kernel[k];
                                let z = (xt - num.mus[k]) / num.sigmas[k];
                                *t += if a == b {
                                    f64::NAN
                                } else if z < a || z > b {
                                    f64::NEG_INFINITY
                                } else {
                                    -(z * z) / 2.0 - log_c - num.log_mass[k] - ln_sigma
                                };
                            }
                        }
                    }
                },
            }
        }
        let log_w: Vec<f64> = self.weights.iter().map(|w| w.ln()).collect();
        terms
            .iter_mut()
            .enumerate()
            .map(|(i, row)| {
                for (k, t) in row.iter_mut().enumerate() {
                    if let Some(c) = &cont {
                        *t += c[i][k];
                    }
                    *t += log_w[k];
                }
                let mut max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if max == f64::NEG_INFINITY {
                    max = 0.0;
                }
                for t in row.iter_mut() {
                    // below -746 the exponential is exactly 0 (under half the smallest subnormal), so it is not
                    // computed: a far kernel's term costs no `exp`
                    let d = *t - max;
                    *t = if d < -746.0 { 0.0 } else { d.exp() };
                }
                np_sum(row).ln() + max
            })
            .collect()
    }
}

/// Each value's index among the distinct values, and the distinct values (by bits).
fn distinct(values: impl Iterator<Item = f64>) -> (Vec<usize>, Vec<f64>) {
    let mut seen: HashMap<u64, usize> = HashMap::new();
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
    let mut seen: HashMap<(u64, u64), usize> = HashMap::new();
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

/// One parameter's kernels over its observed internal values.
fn kernels(obs: &[f64], d: &Distribution, params: &ParzenParams, n_params: usize) -> Kernels {
    let (low, high, step, log) = match d {
        Distribution::Categorical { choices } => return categorical(obs, choices.len(), params.prior_weight),
        Distribution::Float { low, high, log, step } => (*low, *high, *step, *log),
        Distribution::Int { low, high, log, step } => (*low as f64, *high as f64, Some(*step as f64), *log),
    };
    let (mut lo, mut hi) = (low, high);
    if let Some(s) = step {
        lo -= s / 2.0;
        hi += s / 2.0;
    }
    let mut mus: Vec<f64> = obs.to_vec();
    if log {
        for m in &mut mus {
            *m = m.ln();
        }
        lo = lo.ln();
        hi = hi.ln();
    }
    let n = mus.len();
    let mut sigmas = if params.multivariate {
        let sigma = 0.2 * (n.max(1) as f64).powf(-1.0 / (n_params as f64 + 4.0)) * (hi - lo);
        vec![sigma; n]
    } else {
        neighbour_sigmas(&mus, lo, hi, params.consider_endpoints)
    };
    let max_sigma = hi - lo;
    let min_sigma = if params.consider_magic_clip { (hi - lo) / 100f64.min(1.0 + (n + 1) as f64) } else { 1e-12 };
    for s in &mut sigmas {
        *s = s.max(min_sigma).min(max_sigma);
    }
    mus.push(0.5 * (lo + hi));
    sigmas.push(hi - lo);
    let log_mass = mus.iter().zip(&sigmas).map(|(m, s)| log_gauss_mass((lo - m) / s, (hi - m) / s)).collect();
    Kernels::Numeric(Numeric { mus, sigmas, low, high, step, log, lo_t: lo, hi_t: hi, log_mass })
}

/// Each observation's sigma: the larger gap to its sorted neighbours (`lo`, `hi` at the ends); without
/// `consider_endpoints`, the outermost take their inner gap.
fn neighbour_sigmas(mus: &[f64], lo: f64, hi: f64, consider_endpoints: bool) -> Vec<f64> {
    let n = mus.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| mus[i].total_cmp(&mus[j]));
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
        return Kernels::Categorical { probs: vec![vec![1.0 / n_choices as f64; n_choices]] };
    }
    let n_kernels = obs.len() + 1;
    let mut probs = vec![vec![prior_weight / n_kernels as f64; n_choices]; n_kernels];
    for (row, &o) in probs.iter_mut().zip(obs) {
        row[o as usize] += 1.0;
    }
    for row in &mut probs {
        let sum = np_sum(row);
        if sum != 0.0 {
            for p in row.iter_mut() {
                *p /= sum;
            }
        }
    }
    Kernels::Categorical { probs }
}
