//! Pruners deciding from intermediate values whether a running trial stops, with Optuna 4.9's rules:
//! [`MedianPruner`] (a [`PercentilePruner`] at 50), [`ThresholdPruner`], [`SuccessiveHalvingPruner`]
//! (asynchronous successive halving, its rungs kept in the trial's `completed_rung_<k>` system attributes as Optuna
//! keeps them) and [`WilcoxonPruner`] (a signed-rank test against the best trial, fold by fold).

use super::TuneError;
use super::trial::{Direction, FrozenTrial, TrialState};
use super::truncnorm::ndtr_single;

/// A pruner as Optuna's `BasePruner`: called after a trial reports a value; `trial` is the running trial, and a
/// pruner may record its bookkeeping in the trial's system attributes.
pub trait Pruner {
    fn prune(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial, direction: Direction) -> bool;
}

/// Prunes a trial whose best value so far is worse than the median of the complete trials' values at the same
/// step (Optuna's `MedianPruner`). Defaults: 5 startup trials, no warm-up steps, every step, one trial at least.
#[derive(Clone, Copy, Debug)]
pub struct MedianPruner {
    n_startup_trials: usize,
    n_warmup_steps: i64,
    interval_steps: i64,
    n_min_trials: usize,
}

impl Default for MedianPruner {
    fn default() -> Self {
        MedianPruner { n_startup_trials: 5, n_warmup_steps: 0, interval_steps: 1, n_min_trials: 1 }
    }
}

impl MedianPruner {
    /// No pruning before `n_startup_trials` trials are complete nor before step `n_warmup_steps`; then only at the
    /// first report in each interval of `interval_steps` steps, and only at a step at least `n_min_trials`
    /// complete trials reported.
    ///
    /// # Errors
    /// A negative warm-up, an interval or a minimum below 1 (as Optuna refuses them).
    pub fn new(
        n_startup_trials: usize,
        n_warmup_steps: i64,
        interval_steps: i64,
        n_min_trials: usize,
    ) -> Result<Self, TuneError> {
        if n_warmup_steps < 0 || interval_steps < 1 || n_min_trials < 1 {
            return Err(TuneError::Pruner(format!(
                "the median pruner needs n_warmup_steps >= 0, interval_steps >= 1 and n_min_trials >= 1, but got \
                 {n_warmup_steps}, {interval_steps} and {n_min_trials}"
            )));
        }
        Ok(MedianPruner { n_startup_trials, n_warmup_steps, interval_steps, n_min_trials })
    }
}

impl Pruner for MedianPruner {
    fn prune(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial, direction: Direction) -> bool {
        percentile_prune(self, 50.0, history, trial, direction)
    }
}

/// Optuna's `_is_first_in_interval_step`: whether `step` is the trial's first report in its interval of
/// `interval_steps` steps counted from `n_warmup_steps`.
fn first_in_interval(trial: &FrozenTrial, step: i64, n_warmup_steps: i64, interval_steps: i64) -> bool {
    let nearest_lower = (step - n_warmup_steps).div_euclid(interval_steps) * interval_steps + n_warmup_steps;
    let second_last = trial.intermediate_values.keys().copied().filter(|&s| s != step).max().unwrap_or(-1);
    second_last < nearest_lower
}

/// Prunes a trial whose best value so far is worse than the given percentile of the complete trials' values at the
/// same step (Optuna's `PercentilePruner`; at 50 it is the [`MedianPruner`]). For a minimised metric the 25th
/// percentile keeps only trials in the best quarter, as in Optuna.
#[derive(Clone, Copy, Debug)]
pub struct PercentilePruner {
    percentile: f64,
    settings: MedianPruner,
}

impl PercentilePruner {
    /// The percentile (0 to 100) and the [`MedianPruner::new`] settings.
    ///
    /// # Errors
    /// A percentile outside `[0, 100]`, or settings the median pruner refuses (as Optuna refuses them).
    pub fn new(
        percentile: f64,
        n_startup_trials: usize,
        n_warmup_steps: i64,
        interval_steps: i64,
        n_min_trials: usize,
    ) -> Result<Self, TuneError> {
        if !(0.0..=100.0).contains(&percentile) {
            return Err(TuneError::Pruner(format!(
                "the percentile pruner needs a percentile between 0 and 100, but got {percentile}"
            )));
        }
        let settings = MedianPruner::new(n_startup_trials, n_warmup_steps, interval_steps, n_min_trials)?;
        Ok(PercentilePruner { percentile, settings })
    }
}

impl Pruner for PercentilePruner {
    fn prune(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial, direction: Direction) -> bool {
        percentile_prune(&self.settings, self.percentile, history, trial, direction)
    }
}

/// Prunes a trial whose latest value is NaN, below `lower` or above `upper` (Optuna's `ThresholdPruner`): a fold
/// score no usable model gives. Not before step `n_warmup_steps`, then at the first report in each interval of
/// `interval_steps` steps.
#[derive(Clone, Copy, Debug)]
pub struct ThresholdPruner {
    lower: f64,
    upper: f64,
    n_warmup_steps: i64,
    interval_steps: i64,
}

impl ThresholdPruner {
    /// # Errors
    /// Neither bound, `lower > upper`, a NaN bound, a negative warm-up or an interval below 1 (as Optuna refuses
    /// them).
    pub fn new(
        lower: Option<f64>,
        upper: Option<f64>,
        n_warmup_steps: i64,
        interval_steps: i64,
    ) -> Result<Self, TuneError> {
        let refuse = |why: String| Err(TuneError::Pruner(format!("the threshold pruner {why}")));
        if lower.is_none() && upper.is_none() {
            return refuse("needs `lower`, `upper` or both".into());
        }
        let (lower, upper) = (lower.unwrap_or(f64::NEG_INFINITY), upper.unwrap_or(f64::INFINITY));
        if lower.is_nan() || upper.is_nan() || lower > upper {
            return refuse(format!("needs lower <= upper, but got {lower} and {upper}"));
        }
        if n_warmup_steps < 0 || interval_steps < 1 {
            return refuse(format!(
                "needs n_warmup_steps >= 0 and interval_steps >= 1, but got {n_warmup_steps} and {interval_steps}"
            ));
        }
        Ok(ThresholdPruner { lower, upper, n_warmup_steps, interval_steps })
    }
}

impl Pruner for ThresholdPruner {
    fn prune(&mut self, _history: &[FrozenTrial], trial: &mut FrozenTrial, _direction: Direction) -> bool {
        let Some(step) = trial.last_step() else { return false };
        if step < self.n_warmup_steps || !first_in_interval(trial, step, self.n_warmup_steps, self.interval_steps) {
            return false;
        }
        let latest = trial.intermediate_values[&step];
        latest.is_nan() || latest < self.lower || latest > self.upper
    }
}

fn percentile_prune(
    p: &MedianPruner,
    percentile: f64,
    history: &[FrozenTrial],
    trial: &FrozenTrial,
    direction: Direction,
) -> bool {
    let complete: Vec<&FrozenTrial> = history.iter().filter(|t| t.state == TrialState::Complete).collect();
    if complete.is_empty() || complete.len() < p.n_startup_trials {
        return false;
    }
    let Some(step) = trial.last_step() else { return false };
    if step < p.n_warmup_steps {
        return false;
    }
    if !first_in_interval(trial, step, p.n_warmup_steps, p.interval_steps) {
        return false;
    }
    let values = trial.intermediate_values.values().copied().filter(|v| !v.is_nan());
    let best = match direction {
        Direction::Maximize => values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v)))),
        Direction::Minimize => values.fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.min(v)))),
    };
    let Some(best) = best else { return true };
    let at_step: Vec<f64> = complete.iter().filter_map(|t| t.intermediate_values.get(&step).copied()).collect();
    if at_step.len() < p.n_min_trials {
        return false;
    }
    let q = if direction == Direction::Maximize { 100.0 - percentile } else { percentile };
    let Some(threshold) = nan_percentile(&at_step, q) else { return false };
    match direction {
        Direction::Maximize => best < threshold,
        Direction::Minimize => best > threshold,
    }
}

/// numpy's `nanpercentile` (linear method) of the non-NaN values; `None` when there is none.
pub fn nan_percentile(values: &[f64], percentile: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let q = percentile / 100.0;
    let virtual_index = (n * q + (1.0 - q) - 1.0).clamp(0.0, n - 1.0);
    let lo = virtual_index.floor();
    let t = virtual_index - lo;
    let i = lo as usize;
    let a = v[i];
    let b = v[(i + 1).min(v.len() - 1)];
    let d = b - a;
    Some(if t >= 0.5 { b - d * (1.0 - t) } else { a + d * t })
}

/// Where the successive-halving rungs start: a fixed resource, or Optuna's `"auto"` estimate (the largest last
/// step of the complete trials / 100, at least 1), fixed the first time it can be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MinResource {
    Auto,
    Steps(i64),
}

/// Asynchronous successive halving (Optuna's `SuccessiveHalvingPruner`): at rung `r` (reached at step
/// `min_resource * reduction_factor^(min_early_stopping_rate + r)`) a trial goes on only if it is in the top
/// `1 / reduction_factor` of the values recorded at that rung. Defaults: `auto`, 4, 0, no bootstrap.
#[derive(Clone, Copy, Debug)]
pub struct SuccessiveHalvingPruner {
    min_resource: MinResource,
    reduction_factor: i64,
    min_early_stopping_rate: u32,
    bootstrap_count: usize,
    estimated: Option<i64>,
}

impl SuccessiveHalvingPruner {
    /// Rungs from `min_resource` growing by `reduction_factor`, the first `min_early_stopping_rate` skipped; a trial
    /// is pruned at a rung fewer than `bootstrap_count + 1` trials reached.
    ///
    /// # Errors
    /// A minimum resource below 1, a reduction factor below 2, a bootstrap count with `auto` (as Optuna refuses them).
    pub fn new(
        min_resource: MinResource,
        reduction_factor: i64,
        min_early_stopping_rate: u32,
        bootstrap_count: usize,
    ) -> Result<Self, TuneError> {
        let bad = |m: &str| Err(TuneError::Pruner(format!("successive halving: {m}")));
        if matches!(min_resource, MinResource::Steps(s) if s < 1) {
            return bad("`min_resource` must be 1 or more, or auto");
        }
        if reduction_factor < 2 {
            return bad("`reduction_factor` must be 2 or more");
        }
        if bootstrap_count > 0 && min_resource == MinResource::Auto {
            return bad("`bootstrap_count` > 0 needs a fixed `min_resource`");
        }
        Ok(SuccessiveHalvingPruner {
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
            bootstrap_count,
            estimated: None,
        })
    }
}

impl Default for SuccessiveHalvingPruner {
    fn default() -> Self {
        SuccessiveHalvingPruner {
            min_resource: MinResource::Auto,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
            estimated: None,
        }
    }
}

fn rung_key(rung: u32) -> String {
    format!("completed_rung_{rung}")
}

impl Pruner for SuccessiveHalvingPruner {
    fn prune(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial, direction: Direction) -> bool {
        let Some(step) = trial.last_step() else { return false };
        let mut rung = 0;
        while trial.system_attrs.contains_key(&rung_key(rung)) {
            rung += 1;
        }
        let value = trial.intermediate_values[&step];
        loop {
            let min_resource = match (self.min_resource, self.estimated) {
                (MinResource::Steps(s), _) => s,
                (MinResource::Auto, Some(s)) => s,
                (MinResource::Auto, None) => {
                    let last = history
                        .iter()
                        .filter(|t| t.state == TrialState::Complete)
                        .filter_map(FrozenTrial::last_step)
                        .max();
                    let Some(last) = last else { return false };
                    let s = (last.div_euclid(100)).max(1);
                    self.estimated = Some(s);
                    s
                }
            };
            let promotion_step = min_resource * self.reduction_factor.pow(self.min_early_stopping_rate + rung);
            if step < promotion_step {
                return false;
            }
            if value.is_nan() {
                return true;
            }
            let key = rung_key(rung);
            let number = trial.number;
            trial.system_attrs.insert(key.clone(), value_json(value));
            let mut competing: Vec<f64> = history
                .iter()
                .filter(|t| t.number != number)
                .filter_map(|t| t.system_attrs.get(&key).and_then(json_f64))
                .collect();
            competing.push(value);
            if competing.len() <= self.bootstrap_count {
                return true;
            }
            if !promotable(value, &mut competing, self.reduction_factor, direction) {
                return true;
            }
            rung += 1;
        }
    }
}

/// A rung value as Optuna's JSON keeps it (`NaN`, `Infinity` as Python writes them are not JSON numbers).
fn value_json(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or_else(|| serde_json::Value::String(format!("{v}")), serde_json::Value::Number)
}

fn json_f64(v: &serde_json::Value) -> Option<f64> {
    match v {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn promotable(value: f64, competing: &mut [f64], reduction_factor: i64, direction: Direction) -> bool {
    let idx = (competing.len() as i64 / reduction_factor - 1).max(0) as usize;
    competing.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match direction {
        Direction::Maximize => value >= competing[competing.len() - 1 - idx],
        Direction::Minimize => value <= competing[idx],
    }
}

/// Prunes a trial that a Wilcoxon signed-rank test says is worse than the best complete trial, step by step
/// (Optuna's `WilcoxonPruner`, made for scores over instances such as cross-validation folds: each step is a fold,
/// and the trial's fold scores are paired with the best trial's at the same folds). Not before `n_startup_steps`
/// paired folds (two at least); never a trial whose scores (or the best trial's) are not all finite; never while
/// the trial's mean score is as good as the best trial's. Defaults: `p_threshold` 0.1, 2 startup steps.
#[derive(Clone, Copy, Debug)]
pub struct WilcoxonPruner {
    p_threshold: f64,
    n_startup_steps: usize,
}

impl Default for WilcoxonPruner {
    fn default() -> Self {
        WilcoxonPruner { p_threshold: 0.1, n_startup_steps: 2 }
    }
}

impl WilcoxonPruner {
    /// # Errors
    /// A threshold outside `[0, 1]` (as Optuna refuses it).
    pub fn new(p_threshold: f64, n_startup_steps: usize) -> Result<Self, TuneError> {
        if !(0.0..=1.0).contains(&p_threshold) {
            return Err(TuneError::Pruner(format!(
                "the wilcoxon pruner needs p_threshold between 0 and 1, but got {p_threshold}"
            )));
        }
        Ok(WilcoxonPruner { p_threshold, n_startup_steps })
    }
}

impl Pruner for WilcoxonPruner {
    fn prune(&mut self, history: &[FrozenTrial], trial: &mut FrozenTrial, direction: Direction) -> bool {
        let values = &trial.intermediate_values;
        if values.is_empty() || values.values().any(|v| !v.is_finite()) {
            return false;
        }
        // the best complete trial, the first of equal ones (Optuna's `study.best_trial`)
        let mut best: Option<&FrozenTrial> = None;
        for t in history.iter().filter(|t| t.state == TrialState::Complete) {
            let Some(v) = t.value else { continue };
            let better = best.and_then(|b| b.value).is_none_or(|b| match direction {
                Direction::Minimize => v < b,
                Direction::Maximize => v > b,
            });
            if better {
                best = Some(t);
            }
        }
        let Some(best) = best else { return false };
        let best_values = &best.intermediate_values;
        if best_values.is_empty() || best_values.values().any(|v| !v.is_finite()) {
            return false;
        }
        let diffs: Vec<f64> = values.iter().filter_map(|(step, v)| best_values.get(step).map(|b| v - b)).collect();
        if diffs.len() < self.n_startup_steps.max(2) {
            return false;
        }
        let mean = |m: &std::collections::BTreeMap<i64, f64>| m.values().fold(0.0, |s, v| s + v) / m.len() as f64;
        let (average_is_best, greater) = match direction {
            Direction::Minimize => (mean(best_values) >= mean(values), true),
            Direction::Maximize => (mean(best_values) <= mean(values), false),
        };
        let p = wilcoxon_zsplit_p_value(&diffs, greater);
        // the test finds the trial worse, yet its mean is as good as the best's: not pruned, for safety (Optuna)
        p < self.p_threshold && !average_is_best
    }
}

/// The p-value of `scipy.stats.wilcoxon(d, zero_method="zsplit", alternative="greater" or "less")` (scipy 1.17,
/// method `auto`, no continuity correction), `d` finite: the signed-rank statistic `r+` (ranks of `|d|`, ties
/// averaged, a zero's rank split between the signs) against its exact distribution when there are no ties and no
/// zeros (up to 50 values), against all `2^n` sign flips when there are (up to 13), else against the normal
/// approximation with the tie correction.
pub fn wilcoxon_zsplit_p_value(d: &[f64], greater: bool) -> f64 {
    let n = d.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| d[a].abs().total_cmp(&d[b].abs()));
    let mut rank = vec![0.0; n];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && d[order[end]].abs() == d[order[start]].abs() {
            end += 1;
        }
        let average = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            rank[i] = average;
        }
        ties.push((end - start) as f64);
        start = end;
    }
    let zero_half = d.iter().zip(&rank).filter(|(v, _)| **v == 0.0).map(|(_, r)| r).sum::<f64>() / 2.0;
    let r_plus = d.iter().zip(&rank).filter(|(v, _)| **v > 0.0).map(|(_, r)| r).sum::<f64>() + zero_half;
    let has_ties = ties.iter().any(|&t| t > 1.0);
    let has_zeros = d.contains(&0.0);
    if n <= 50 && !has_ties && !has_zeros {
        // the number of subsets of the ranks 1..n with each sum, out of 2^n
        let top = n * (n + 1) / 2;
        let mut count = vec![0u64; top + 1];
        count[0] = 1;
        for k in 1..=n {
            for s in (k..=k * (k + 1) / 2).rev() {
                count[s] += count[s - k];
            }
        }
        let tail: u64 = if greater {
            count[(r_plus.floor() as usize).min(top + 1)..].iter().sum()
        } else {
            count[..=(r_plus.ceil() as usize).min(top)].iter().sum()
        };
        return tail as f64 / (1u64 << n) as f64;
    }
    if n <= 13 {
        // every sign flip: a nonzero value's rank counts in r+ with one of its two signs
        let nonzero: Vec<f64> = d.iter().zip(&rank).filter(|(v, _)| **v != 0.0).map(|(_, r)| *r).collect();
        let gamma = (r_plus * f64::EPSILON * 100.0).abs();
        let mut hits = 0u64;
        for mask in 0u64..(1 << nonzero.len()) {
            let stat =
                nonzero.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, r)| r).sum::<f64>() + zero_half;
            if if greater { stat >= r_plus - gamma } else { stat <= r_plus + gamma } {
                hits += 1;
            }
        }
        return hits as f64 / (1u64 << nonzero.len()) as f64;
    }
    let count = n as f64;
    let mean = count * (count + 1.0) * 0.25;
    let tie_correct: f64 = ties.iter().map(|t| t * t * t - t).sum();
    let se = ((count * (count + 1.0) * (2.0 * count + 1.0) - tie_correct / 2.0) / 24.0).sqrt();
    let z = (r_plus - mean) / se;
    if greater { ndtr_single(-z) } else { ndtr_single(z) }
}
