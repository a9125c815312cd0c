//! Hyperparameter importances as Optuna 4.9's `PedAnovaImportanceEvaluator` computes them with its defaults
//! (`target_quantile = 0.1`, `region_quantile = 1.0`, `evaluate_on_local = True`, 50 grid steps, prior weight 1),
//! normalised to sum to 1 as `get_param_importances` returns them.
//!
//! Why PED-ANOVA and not fANOVA (Optuna's default evaluator): fANOVA fits a random forest (scikit-learn's, seeded
//! through numpy) and reads the variance decomposition off its trees; kiln cannot reproduce that forest bit for bit,
//! so its importances would only resemble Optuna's. PED-ANOVA is deterministic and closed-form (Parzen estimators of
//! the top 10 % of trials and of all trials on a grid, compared by Pearson divergence), it is Optuna's own fast
//! evaluator, and kiln gives the numbers Optuna gives for the same trials. What it measures: how much each
//! parameter's distribution among the best 10 % of trials departs from its distribution among all trials.
//!
//! As Optuna 4.9 (not the conditional PED-ANOVA of later versions): only parameters in the intersection search
//! space of the complete trials are assessed, so a conditional parameter (one model kind's, missing from the other
//! kind's trials) gets no importance at all. No drawing here: [`super::report`] turns these into a chart.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::parzen::np_sum;
use super::space::Distribution;
use super::trial::{Direction, FrozenTrial, TrialState};
use super::truncnorm::log_gauss_mass;

/// The share of the best trials whose parameter distribution is compared with all trials' (`target_quantile`).
const TARGET_QUANTILE: f64 = 0.1;
/// A numeric domain is cut into at most this many grid points (`_n_steps`).
const N_STEPS: usize = 50;
/// The weight of the prior kernel (`_prior_weight`).
const PRIOR_WEIGHT: f64 = 1.0;
/// The top trials are never fewer than this (`_min_n_top_trials`).
const MIN_N_TOP_TRIALS: usize = 2;

/// Each assessed parameter's importance, most important first, summing to 1, as
/// `optuna.importance.get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())` returns them for the
/// complete trials among `trials` (in trial-number order). Ties keep Optuna's order (the reverse of name order,
/// parameters with a single value last). Parameters whose distribution is the same in every complete trial are
/// assessed; with no parameter varying, or two complete trials with finite values or fewer, every parameter gets
/// an equal share (Optuna does the same).
///
/// Empty with fewer than two complete trials, where Optuna raises instead.
pub fn ped_anova_importances(trials: &[FrozenTrial], direction: Direction) -> Vec<(String, f64)> {
    let complete: Vec<&FrozenTrial> = trials.iter().filter(|t| t.state == TrialState::Complete).collect();
    if complete.len() < 2 {
        return Vec::new();
    }
    let space = intersection(&complete);
    let (non_single, single): (Vec<_>, Vec<_>) = space.iter().partition(|(_, d)| !d.single());
    let equal = |names: Vec<&String>| {
        let share = 1.0 / names.len() as f64;
        names.into_iter().map(|k| (k.clone(), share)).collect::<Vec<_>>()
    };
    if non_single.is_empty() {
        return equal(single.into_iter().map(|(k, _)| k).collect());
    }
    let finite: Vec<&FrozenTrial> = complete.into_iter().filter(|t| t.value.is_some_and(f64::is_finite)).collect();
    if finite.len() <= MIN_N_TOP_TRIALS {
        return equal(space.keys().collect());
    }
    let top = top_quantile(&finite, direction);
    let quantile = top.len() as f64 / finite.len() as f64;
    let mut importances: Vec<(String, f64)> = non_single
        .iter()
        .map(|(name, d)| ((*name).clone(), quantile.powi(2) * pearson_divergence(name, d, &top, &finite)))
        .collect();
    importances.extend(single.iter().map(|(name, _)| ((*name).clone(), 0.0)));
    // Optuna: dict(reversed(sorted(items, key=importance))), a stable sort then reversed
    importances.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(Ordering::Equal));
    importances.reverse();
    // get_param_importances: Python's sum, left to right, in that order
    let total = importances.iter().fold(0.0, |s, (_, v)| s + v);
    if total == 0.0 {
        let share = 1.0 / importances.len() as f64;
        return importances.into_iter().map(|(k, _)| (k, share)).collect();
    }
    importances.into_iter().map(|(k, v)| (k, v / total)).collect()
}

/// The parameters every complete trial has with the same distribution (Optuna's `intersection_search_space`).
fn intersection(complete: &[&FrozenTrial]) -> BTreeMap<String, Distribution> {
    let mut space = complete[0].distributions.clone();
    for t in &complete[1..] {
        space.retain(|k, d| t.distributions.get(k) == Some(d));
    }
    space
}

/// The trials whose loss (the value, negated when maximising) is at most the larger of the second smallest loss
/// and the `TARGET_QUANTILE` inverted-CDF quantile (Optuna's `_QuantileFilter`).
fn top_quantile<'a>(trials: &[&'a FrozenTrial], direction: Direction) -> Vec<&'a FrozenTrial> {
    let sign = if direction == Direction::Minimize { 1.0 } else { -1.0 };
    let loss: Vec<f64> = trials.iter().map(|t| sign * t.value.unwrap_or(f64::NAN)).collect();
    let mut sorted = loss.clone();
    sorted.sort_by(f64::total_cmp);
    let index = ((TARGET_QUANTILE * loss.len() as f64).ceil() as usize).saturating_sub(1);
    let cutoff = sorted[MIN_N_TOP_TRIALS - 1].max(sorted[index]);
    trials.iter().zip(&loss).filter(|(_, l)| **l <= cutoff).map(|(t, _)| *t).collect()
}

/// `sum(local * (top / local - 1)^2)` over the grid of `dist`, each density the Parzen estimator of the trials'
/// grid counts plus 1e-12.
fn pearson_divergence(name: &str, dist: &Distribution, top: &[&FrozenTrial], region: &[&FrozenTrial]) -> f64 {
    let pdf_top = grid_pdf(name, dist, top);
    let pdf_local = grid_pdf(name, dist, region);
    let terms: Vec<f64> = pdf_top
        .iter()
        .zip(&pdf_local)
        .map(|(t, l)| {
            let (t, l) = (t + 1e-12, l + 1e-12);
            l * ((t / l - 1.0) * (t / l - 1.0))
        })
        .collect();
    np_sum(&terms)
}

/// The density at each grid point of the Scott-rule Parzen estimator of the trials' values of `name`
/// (`_build_parzen_estimator(..).pdf(np.arange(n_steps))`).
fn grid_pdf(name: &str, dist: &Distribution, trials: &[&FrozenTrial]) -> Vec<f64> {
    let values: Vec<f64> = trials.iter().map(|t| t.params[name]).collect();
    let log_pdf = match dist {
        Distribution::Categorical { choices } => {
            let mut counts = vec![0.0; choices.len()];
            for v in &values {
                counts[*v as usize] += 1.0;
            }
            categorical_log_pdf(&counts)
        }
        _ => numeric_log_pdf(&grid_counts(dist, &values)),
    };
    log_pdf.into_iter().map(f64::exp).collect()
}

/// numpy's `linspace(start, stop, n)` for `n >= 2`.
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let div = (n - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut y: Vec<f64> =
        (0..n).map(|i| if step == 0.0 { i as f64 / div * delta + start } else { i as f64 * step + start }).collect();
    y[n - 1] = stop;
    y
}

/// How many values fall to each point of the numeric domain's grid (`_count_numerical_param_in_grid`): the grid
/// is `N_STEPS` points over `[low, high]` (in log space under `log`), fewer for an int or a step (one per value,
/// or per doubling for a log int); a value goes to the first point at or above `value - half a grid step`.
fn grid_counts(dist: &Distribution, values: &[f64]) -> Vec<f64> {
    let (low, high, log, n_steps) = match *dist {
        Distribution::Int { low, high, log: true, .. } => {
            let log2_size = (((high - low + 1) as f64).ln() / 2f64.ln()).ceil() as usize + 1;
            (low as f64, high as f64, true, log2_size.min(N_STEPS))
        }
        Distribution::Int { low, high, log: false, step } => {
            let n = ((high - low) as f64 / step as f64).round_ties_even() as usize + 1;
            (low as f64, high as f64, false, n.min(N_STEPS))
        }
        Distribution::Float { low, high, log, step: Some(step) } => {
            (low, high, log, (((high - low) / step).round_ties_even() as usize + 1).min(N_STEPS))
        }
        Distribution::Float { low, high, log, step: None } => (low, high, log, N_STEPS),
        Distribution::Categorical { .. } => unreachable!("categorical parameters are counted per choice"),
    };
    let scale = |x: f64| if log { x.ln() } else { x };
    let grid = linspace(scale(low), scale(high), n_steps);
    let half = (grid[1] - grid[0]) / 2.0;
    let mut counts = vec![0.0; grid.len()];
    for &v in values {
        // numpy's searchsorted (side left): the number of grid points below
        let i = grid.partition_point(|g| *g < scale(v) - half);
        counts[i.min(grid.len() - 1)] += 1.0;
    }
    counts
}

/// The mixture weights of a Scott Parzen estimator: each non-empty cell's count, then the prior, normalised.
fn mixture_weights(counts: &[f64]) -> Vec<f64> {
    let mut w: Vec<f64> = counts.iter().copied().filter(|c| *c > 0.0).collect();
    w.push(PRIOR_WEIGHT);
    let total = np_sum(&w);
    w.iter().map(|x| x / total).collect()
}

/// numpy's log-sum-exp of one row of weighted log densities, as `_MixtureOfProductDistribution.log_pdf` ends.
fn log_sum_exp(row: &[f64]) -> f64 {
    let mut max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        max = 0.0;
    }
    let e: Vec<f64> = row.iter().map(|t| (t - max).exp()).collect();
    np_sum(&e).ln() + max
}

/// The log mass at each grid index `0..n` of `_ScottParzenEstimator` over the grid counts: one discrete truncated
/// normal per non-empty cell with Scott's bandwidth (at least `0.5 / 1.64`), plus a prior kernel at the centre as
/// wide as the grid.
fn numeric_log_pdf(counts: &[f64]) -> Vec<f64> {
    let n = counts.len();
    let n_trials = np_sum(counts);
    let nonzero: Vec<(f64, f64)> =
        counts.iter().enumerate().filter(|(_, c)| **c > 0.0).map(|(i, c)| (i as f64, *c)).collect();
    let mean: f64 = np_sum(&nonzero.iter().map(|(m, c)| m * (c / n_trials)).collect::<Vec<_>>());
    let sq: f64 = np_sum(&nonzero.iter().map(|(m, c)| (m - mean) * (m - mean) * c).collect::<Vec<_>>());
    let sigma = (sq / 1f64.max(n_trials - 1.0)).sqrt();
    let mut cum = Vec::with_capacity(nonzero.len());
    let mut running = 0.0;
    for (_, c) in &nonzero {
        running += c;
        cum.push(running);
    }
    let q25 = (n_trials / 4.0).floor();
    let q75 = (n_trials * 3.0 / 4.0).floor();
    let i25 = cum.partition_point(|c| *c < q25);
    let i75 = cum.partition_point(|c| *c <= q75);
    let iqr = nonzero[i75.min(nonzero.len() - 1)].0 - nonzero[i25].0;
    let iqr_sigma = iqr / 1.34;
    let sigma = 1.059 * (if sigma < iqr_sigma { sigma } else { iqr_sigma }) * n_trials.powf(-0.2);
    let sigma_min = 0.5 / 1.64;
    let sigma = if sigma_min > sigma { sigma_min } else { sigma };
    let mut kernels: Vec<(f64, f64)> = nonzero.iter().map(|(m, _)| (*m, sigma)).collect();
    let high = (n - 1) as f64;
    kernels.push((0.5 * high, n as f64));
    let log_w: Vec<f64> = mixture_weights(counts).iter().map(|w| w.ln()).collect();
    let norm: Vec<f64> = kernels.iter().map(|(mu, s)| log_gauss_mass((-0.5 - mu) / s, (high + 0.5 - mu) / s)).collect();
    (0..n)
        .map(|x| {
            let x = x as f64;
            let row: Vec<f64> = kernels
                .iter()
                .zip(&norm)
                .zip(&log_w)
                .map(|(((mu, s), norm), lw)| log_gauss_mass((x - 0.5 - mu) / s, (x + 0.5 - mu) / s) - norm + lw)
                .collect();
            log_sum_exp(&row)
        })
        .collect()
}

/// The log probability of each choice under the Parzen estimator of the choice counts: one kernel per chosen
/// choice (its row `prior / n_kernels` everywhere plus 1 at the choice, normalised) and a uniform prior row.
fn categorical_log_pdf(counts: &[f64]) -> Vec<f64> {
    let n_choices = counts.len();
    let observed: Vec<usize> = (0..n_choices).filter(|&i| counts[i] > 0.0).collect();
    let n_kernels = observed.len() + 1;
    let mut rows = vec![vec![PRIOR_WEIGHT / n_kernels as f64; n_choices]; n_kernels];
    for (row, &o) in rows.iter_mut().zip(&observed) {
        row[o] += 1.0;
    }
    for row in &mut rows {
        let sum = np_sum(row);
        if sum != 0.0 {
            for p in row.iter_mut() {
                *p /= sum;
            }
        }
    }
    let log_w: Vec<f64> = mixture_weights(counts).iter().map(|w| w.ln()).collect();
    (0..n_choices)
        .map(|x| {
            let row: Vec<f64> = rows.iter().zip(&log_w).map(|(r, lw)| r[x].ln() + lw).collect();
            log_sum_exp(&row)
        })
        .collect()
}
