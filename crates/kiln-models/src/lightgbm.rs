//! The LightGBM adapter (through `lightgbm3`): typed hyperparameters with LightGBM's defaults, `check()` into
//! [`CheckedLightGbm`], `fit` on a row-major f64 [`Matrix`], batch and single-row prediction in f64, raw scores and
//! SHAP contributions (LightGBM's own `predict_contrib`), and the LightGBM text model, which Python's
//! `lightgbm.Booster(model_str=...)` reads and predicts identically.
//!
//! Key decisions: every seed is set from `seed` and `deterministic` plus `force_row_wise` are on, so two fits give
//! the same model text; the booster sits behind a mutex so a fitted model is `Send + Sync` and can be shared by
//! serving threads. The rounds run on LightGBM's C API (the `train` submodule, the same calls as `lightgbm3`'s
//! `train_with_valid`), so that the metric LightGBM evaluates after every round on the validation rows, and after
//! about 100 of the rounds on the training rows, is kept as the fitted model's [`EvalCurve`]s. Not here:
//! dataset-construction parameters (`max_bin`, `min_data_in_bin`, ...), which `lightgbm3` 1.0 cannot pass to
//! LightGBM (its datasets are always built with LightGBM's defaults).

use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use kiln_domain::{Estimator, Matrix, Predictor};
use lightgbm3::{Booster, ImportanceType};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::ModelError;
use crate::checks::{self, LabelRules, bad, check_f64, check_labels, check_shape, py_float, yaml_float};
use crate::curve::EvalCurve;
use crate::kind::{FittedModel, ModelFormat, boosted_trees};
use crate::native::lightgbm::Forest;

mod train;

/// The LightGBM version that `lightgbm3` compiles, written into the bundle's `MLmodel`.
pub const LIGHTGBM_VERSION: &str = "4.7.0";

/// The learning task LightGBM optimizes (LightGBM's `objective`), limited to single-output objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LgbObjective {
    /// squared error
    #[serde(alias = "l2", alias = "regression_l2", alias = "mse")]
    Regression,
    /// absolute error
    #[serde(alias = "l1", alias = "mae")]
    RegressionL1,
    /// Huber loss, `alpha` is the threshold
    Huber,
    /// Fair loss, `fair_c` is its parameter
    Fair,
    /// quantile regression at quantile `alpha`
    Quantile,
    /// mean absolute percentage error
    Mape,
    /// Poisson regression (labels >= 0)
    Poisson,
    /// binary classification (labels 0 or 1); predictions are probabilities of 1
    Binary,
}

impl LgbObjective {
    /// LightGBM's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LgbObjective::Regression => "regression",
            LgbObjective::RegressionL1 => "regression_l1",
            LgbObjective::Huber => "huber",
            LgbObjective::Fair => "fair",
            LgbObjective::Quantile => "quantile",
            LgbObjective::Mape => "mape",
            LgbObjective::Poisson => "poisson",
            LgbObjective::Binary => "binary",
        }
    }

    /// The metric LightGBM evaluates when none is given.
    pub fn default_metric(self) -> LgbMetric {
        match self {
            LgbObjective::Regression => LgbMetric::L2,
            LgbObjective::RegressionL1 => LgbMetric::L1,
            LgbObjective::Huber => LgbMetric::Huber,
            LgbObjective::Fair => LgbMetric::Fair,
            LgbObjective::Quantile => LgbMetric::Quantile,
            LgbObjective::Mape => LgbMetric::Mape,
            LgbObjective::Poisson => LgbMetric::Poisson,
            LgbObjective::Binary => LgbMetric::BinaryLogloss,
        }
    }
}

/// The validation metric (LightGBM's `metric`); early stopping watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LgbMetric {
    #[serde(alias = "mae")]
    L1,
    #[serde(alias = "mse")]
    L2,
    Rmse,
    Huber,
    Fair,
    Quantile,
    Mape,
    Poisson,
    BinaryLogloss,
    BinaryError,
    Auc,
    AveragePrecision,
}

impl LgbMetric {
    /// LightGBM's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LgbMetric::L1 => "l1",
            LgbMetric::L2 => "l2",
            LgbMetric::Rmse => "rmse",
            LgbMetric::Huber => "huber",
            LgbMetric::Fair => "fair",
            LgbMetric::Quantile => "quantile",
            LgbMetric::Mape => "mape",
            LgbMetric::Poisson => "poisson",
            LgbMetric::BinaryLogloss => "binary_logloss",
            LgbMetric::BinaryError => "binary_error",
            LgbMetric::Auc => "auc",
            LgbMetric::AveragePrecision => "average_precision",
        }
    }

    /// Whether the metric only makes sense for a binary classifier.
    pub fn is_classification(self) -> bool {
        matches!(self, LgbMetric::BinaryLogloss | LgbMetric::BinaryError | LgbMetric::Auc | LgbMetric::AveragePrecision)
    }

    /// Whether a larger value is better (for early stopping, as `lightgbm3` decides it).
    pub fn maximize(self) -> bool {
        matches!(self, LgbMetric::Auc | LgbMetric::AveragePrecision)
    }
}

/// LightGBM's hyperparameters as a user writes them (`model.params` in the experiment YAML). Every field defaults to
/// LightGBM's own default, except the ones about reproducibility and logging: `seed` (42), `deterministic` (true),
/// `verbosity` (-1), and `num_threads`, which is every core of the machine when the experiment leaves it out (the
/// number is resolved by [`LightGbmParams::check`] and logged; a model is reproducible bit for bit for a fixed thread
/// count, so an experiment that must give the same bundle on every machine sets it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LightGbmParams {
    pub objective: LgbObjective,
    /// boosting rounds (the maximum when early stopping is on)
    pub num_iterations: u32,
    pub learning_rate: f64,
    pub num_leaves: u32,
    /// -1 means no limit
    pub max_depth: i32,
    pub min_data_in_leaf: u32,
    pub min_sum_hessian_in_leaf: f64,
    pub feature_fraction: f64,
    pub bagging_fraction: f64,
    /// bag every `bagging_freq` rounds; 0 turns bagging off
    pub bagging_freq: u32,
    pub lambda_l1: f64,
    pub lambda_l2: f64,
    pub min_gain_to_split: f64,
    pub extra_trees: bool,
    /// stop when the validation metric has not improved for this many rounds (needs a validation set)
    pub early_stopping_rounds: Option<u32>,
    /// the validation metric; the objective's own metric when absent
    pub metric: Option<LgbMetric>,
    /// Huber threshold, or the quantile for `quantile`
    pub alpha: f64,
    /// the Fair loss parameter
    pub fair_c: f64,
    /// weight of the positive class (binary only)
    pub scale_pos_weight: f64,
    /// reweight classes by their frequency (binary only)
    pub is_unbalance: bool,
    /// drives every LightGBM seed (bagging, feature fraction, data, extra trees, objective)
    pub seed: u64,
    pub deterministic: bool,
    /// LightGBM's OpenMP threads; `None`: every core ([`crate::default_threads`])
    pub num_threads: Option<u32>,
    pub verbosity: i32,
}

impl Default for LightGbmParams {
    fn default() -> Self {
        LightGbmParams {
            objective: LgbObjective::Regression,
            num_iterations: 100,
            learning_rate: 0.1,
            num_leaves: 31,
            max_depth: -1,
            min_data_in_leaf: 20,
            min_sum_hessian_in_leaf: 1e-3,
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            min_gain_to_split: 0.0,
            extra_trees: false,
            early_stopping_rounds: None,
            metric: None,
            alpha: 0.9,
            fair_c: 1.0,
            scale_pos_weight: 1.0,
            is_unbalance: false,
            seed: 42,
            deterministic: true,
            num_threads: None,
            verbosity: -1,
        }
    }
}

const I32_MAX: u64 = i32::MAX as u64;

fn check_u(param: &'static str, v: u64, min: u64, max: u64) -> Result<(), ModelError> {
    if v < min || v > max {
        let rule = if max == I32_MAX { format!("must be >= {min}") } else { format!("must be in {min}..={max}") };
        let rule = if v > I32_MAX { format!("must be <= {I32_MAX}") } else { rule };
        return Err(bad(param, v, rule));
    }
    Ok(())
}

impl LightGbmParams {
    /// Checks every value against LightGBM's documented range, and the combinations LightGBM would silently
    /// ignore (bagging without a frequency, class weights on a regression).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedLightGbm, ModelError> {
        let p = self;
        check_u("num_iterations", p.num_iterations.into(), 1, I32_MAX)?;
        check_f64("learning_rate", p.learning_rate, p.learning_rate > 0.0, "must be > 0")?;
        check_u("num_leaves", p.num_leaves.into(), 2, 131_072)?;
        if p.max_depth != -1 && p.max_depth < 1 {
            return Err(bad("max_depth", p.max_depth, "must be -1 (no limit) or >= 1"));
        }
        check_u("min_data_in_leaf", p.min_data_in_leaf.into(), 0, I32_MAX)?;
        check_f64(
            "min_sum_hessian_in_leaf",
            p.min_sum_hessian_in_leaf,
            p.min_sum_hessian_in_leaf >= 0.0,
            "must be >= 0",
        )?;
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        check_f64("feature_fraction", p.feature_fraction, fraction(p.feature_fraction), "must be in (0, 1]")?;
        check_f64("bagging_fraction", p.bagging_fraction, fraction(p.bagging_fraction), "must be in (0, 1]")?;
        check_u("bagging_freq", p.bagging_freq.into(), 0, I32_MAX)?;
        if p.bagging_fraction < 1.0 && p.bagging_freq == 0 {
            return Err(bad(
                "bagging_freq",
                0,
                format!(
                    "must be >= 1 when bagging_fraction is {} (LightGBM does not bag otherwise)",
                    yaml_float(p.bagging_fraction)
                ),
            ));
        }
        check_f64("lambda_l1", p.lambda_l1, p.lambda_l1 >= 0.0, "must be >= 0")?;
        check_f64("lambda_l2", p.lambda_l2, p.lambda_l2 >= 0.0, "must be >= 0")?;
        check_f64("min_gain_to_split", p.min_gain_to_split, p.min_gain_to_split >= 0.0, "must be >= 0")?;
        if let Some(rounds) = p.early_stopping_rounds {
            check_u("early_stopping_rounds", rounds.into(), 1, I32_MAX)?;
        }
        let metric = p.metric.unwrap_or(p.objective.default_metric());
        if metric.is_classification() && p.objective != LgbObjective::Binary {
            return Err(bad(
                "metric",
                metric.as_str(),
                format!("needs objective binary, not {}", p.objective.as_str()),
            ));
        }
        if p.objective == LgbObjective::Quantile {
            check_f64("alpha", p.alpha, p.alpha > 0.0 && p.alpha < 1.0, "must be in (0, 1) for objective quantile")?;
        } else {
            check_f64("alpha", p.alpha, p.alpha > 0.0, "must be > 0")?;
        }
        check_f64("fair_c", p.fair_c, p.fair_c > 0.0, "must be > 0")?;
        check_f64("scale_pos_weight", p.scale_pos_weight, p.scale_pos_weight > 0.0, "must be > 0")?;
        if p.objective != LgbObjective::Binary {
            if p.scale_pos_weight != 1.0 {
                return Err(bad(
                    "scale_pos_weight",
                    yaml_float(p.scale_pos_weight),
                    "only applies to objective binary",
                ));
            }
            if p.is_unbalance {
                return Err(bad("is_unbalance", true, "only applies to objective binary"));
            }
        } else if p.is_unbalance && p.scale_pos_weight != 1.0 {
            return Err(bad(
                "scale_pos_weight",
                yaml_float(p.scale_pos_weight),
                "cannot be combined with is_unbalance",
            ));
        }
        check_u("seed", p.seed, 0, I32_MAX)?;
        if let Some(threads) = p.num_threads {
            check_u("num_threads", threads.into(), 1, I32_MAX)?;
        }
        Ok(CheckedLightGbm { params: p.clone(), metric, threads: p.num_threads.unwrap_or_else(crate::default_threads) })
    }
}

/// Hyperparameters that passed [`LightGbmParams::check`]; they can fit a [`LightGbmModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedLightGbm {
    /// as given
    params: LightGbmParams,
    metric: LgbMetric,
    /// the threads the library trains with: `num_threads`, or every core when the experiment left it out
    threads: u32,
}

impl CheckedLightGbm {
    /// The checked values (as given: `None` where kiln chooses the threads).
    pub fn params(&self) -> &LightGbmParams {
        &self.params
    }

    /// The threads LightGBM trains with.
    pub fn threads(&self) -> u32 {
        self.threads
    }

    /// The same model on `threads` threads when kiln chose its thread count, for fits that run side by side (a
    /// backtest's folds); `None` when the experiment fixed `num_threads`, which is kept.
    pub fn with_threads(&self, threads: u32) -> Option<CheckedLightGbm> {
        self.params.num_threads.is_none().then(|| {
            let mut out = self.clone();
            out.threads = threads.max(1);
            out
        })
    }

    /// The metric LightGBM evaluates and early stopping watches (the objective's default when none was given).
    pub fn metric(&self) -> LgbMetric {
        self.metric
    }

    /// Everything passed to LightGBM, in its own names and value syntax, in a fixed order. The seeds that `seed`
    /// drives and the forced `force_row_wise` are included, so the list alone reproduces the fit.
    fn lightgbm_values(&self) -> Vec<(&'static str, Value)> {
        let p = &self.params;
        let mut v: Vec<(&'static str, Value)> = vec![
            ("objective", p.objective.as_str().into()),
            ("metric", self.metric.as_str().into()),
            ("num_iterations", p.num_iterations.into()),
            ("learning_rate", p.learning_rate.into()),
            ("num_leaves", p.num_leaves.into()),
            ("max_depth", p.max_depth.into()),
            ("min_data_in_leaf", p.min_data_in_leaf.into()),
            ("min_sum_hessian_in_leaf", p.min_sum_hessian_in_leaf.into()),
            ("feature_fraction", p.feature_fraction.into()),
            ("bagging_fraction", p.bagging_fraction.into()),
            ("bagging_freq", p.bagging_freq.into()),
            ("lambda_l1", p.lambda_l1.into()),
            ("lambda_l2", p.lambda_l2.into()),
            ("min_gain_to_split", p.min_gain_to_split.into()),
            ("extra_trees", p.extra_trees.into()),
        ];
        if let Some(rounds) = p.early_stopping_rounds {
            v.push(("early_stopping_rounds", rounds.into()));
        }
        match p.objective {
            LgbObjective::Huber | LgbObjective::Quantile => v.push(("alpha", p.alpha.into())),
            LgbObjective::Fair => v.push(("fair_c", p.fair_c.into())),
            LgbObjective::Binary => {
                v.push(("scale_pos_weight", p.scale_pos_weight.into()));
                v.push(("is_unbalance", p.is_unbalance.into()));
            }
            _ => {}
        }
        if (self.metric == LgbMetric::Huber || self.metric == LgbMetric::Quantile)
            && !v.iter().any(|(k, _)| *k == "alpha")
        {
            v.push(("alpha", p.alpha.into()));
        }
        for key in ["seed", "bagging_seed", "feature_fraction_seed", "data_random_seed", "extra_seed", "objective_seed"]
        {
            v.push((key, p.seed.into()));
        }
        v.extend([
            ("deterministic", p.deterministic.into()),
            ("force_row_wise", true.into()),
            // the metric on the training rows too, when the loop asks (the fitted model's curves)
            ("is_provide_training_metric", true.into()),
            ("num_threads", self.threads().into()),
            ("verbosity", p.verbosity.into()),
        ]);
        v
    }

    /// Every hyperparameter as `(name, value)` strings, for logging as MLflow params; an unset
    /// `early_stopping_rounds` is logged as `None`, as Python's MLflow does.
    pub fn as_params(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .lightgbm_values()
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Number(n) => n.as_f64().filter(|_| n.is_f64()).map_or_else(|| n.to_string(), py_float),
                    other => other.to_string(),
                };
                (k.to_string(), s)
            })
            .collect();
        if self.params.early_stopping_rounds.is_none() {
            out.push(("early_stopping_rounds".to_string(), "None".to_string()));
        }
        out
    }

    /// The parameters as LightGBM's C API takes them, written as `lightgbm3` writes them: `key=value` pairs with
    /// values in JSON syntax (LightGBM strips the quotes of strings), space separated, in
    /// [`CheckedLightGbm::lightgbm_values`]' order.
    fn lightgbm_param_string(&self) -> String {
        let map: Map<String, Value> = self.lightgbm_values().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        map.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    }

    /// The labels as LightGBM stores them (f32), after checking them for this objective.
    fn labels(&self, set: &str, x: &Matrix, y: &[f64]) -> Result<Vec<f32>, ModelError> {
        check_matrix(set, x).map_err(ModelError::Train)?;
        let objective = self.params.objective;
        let rules = LabelRules {
            f32: true,
            binary: (objective == LgbObjective::Binary).then_some("objective binary"),
            non_negative: (objective == LgbObjective::Poisson).then_some("objective poisson"),
        };
        check_labels(set, x, y, &rules)?;
        Ok(y.iter().map(|&v| v as f32).collect())
    }
}

fn check_matrix(set: &str, x: &Matrix) -> Result<(), String> {
    check_shape(set, x)?;
    if i32::try_from(x.n_rows).is_err() {
        return Err(format!("the {set} set has {} rows; LightGBM takes at most {}", x.n_rows, i32::MAX));
    }
    Ok(())
}

/// LightGBM writes feature names space-separated into the model text and refuses JSON punctuation in them.
fn check_feature_names(names: &[String]) -> Result<(), ModelError> {
    checks::check_feature_names(
        names,
        |c| c.is_whitespace() || "\",:[]{}\0".contains(c),
        "LightGBM does not allow whitespace or any of \",:[]{}",
    )
}

impl Estimator for CheckedLightGbm {
    type Fitted = LightGbmModel;
    type Error = ModelError;

    /// Fits on `x`/`y` (labels go to LightGBM as f32, as in Python). With `valid`, its dataset shares the training
    /// set's bins and, when `early_stopping_rounds` is set, training stops once the validation metric has not
    /// improved for that many rounds and the later rounds are dropped, so the model ends at its best round. The
    /// metric after every round run on `valid`, and after about 100 of the rounds on the training rows, is kept as
    /// [`LightGbmModel::eval_curves`].
    ///
    /// # Errors
    /// [`ModelError::Params`] when early stopping is asked for without a validation set; [`ModelError::Train`] for
    /// bad data (shape, non-finite or out-of-domain labels, unusable feature names) or a LightGBM failure.
    fn fit(&self, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> Result<LightGbmModel, ModelError> {
        self.fit_reusing(x, y, valid, None)
    }
}

/// LightGBM's binned datasets kept between fits on the same rows, for work that fits them again and again with
/// other hyperparameters: a tuning study fits every fold once per trial, and binning a fold's rows was a sixth of
/// each fit. A fit takes the sets made from rows, labels, feature names and thread count equal to its own (compared
/// bit for bit, never by a hash) out of the cache, boosts on them and gives them back; a fit that finds none bins
/// its own. No other parameter reaches a dataset (kiln gives LightGBM's datasets the thread count only), so the
/// trees are those of a fit on fresh datasets. At most [`FitCache::CAPACITY`] sets are kept, of rows taking at most
/// [`FitCache::BUDGET`] bytes in all (the rows are kept to compare), the oldest dropped first; larger rows are not
/// kept at all (their binning is a smaller share of their fit).
#[derive(Default)]
pub struct FitCache {
    entries: Mutex<Vec<(SetsKey, train::Sets)>>,
}

impl fmt::Debug for FitCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.entries.lock().map_or(0, |e| e.len());
        f.debug_struct("FitCache").field("sets", &n).finish()
    }
}

impl FitCache {
    /// The most sets kept (a study's folds, twice for two trials at a time, fit in a few dozen).
    pub const CAPACITY: usize = 32;
    /// The most bytes of rows kept to compare, all sets together.
    pub const BUDGET: usize = 256 << 20;

    fn take(&self, key: &SetsKey) -> Option<train::Sets> {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = entries.iter().position(|(k, _)| k == key)?;
        Some(entries.remove(at).1)
    }

    fn give_back(&self, key: SetsKey, sets: train::Sets) {
        if key.bytes() > Self::BUDGET {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while !entries.is_empty()
            && (entries.len() >= Self::CAPACITY
                || entries.iter().map(|(k, _)| k.bytes()).sum::<usize>() + key.bytes() > Self::BUDGET)
        {
            entries.remove(0);
        }
        entries.push((key, sets));
    }
}

/// What a dataset is made of: the rows and labels (as bits, so NaN equals NaN), the names, its parameters (the threads).
#[derive(PartialEq)]
struct SetsKey {
    dataset_params: String,
    names: Vec<String>,
    x: Vec<u64>,
    labels: Vec<u32>,
    valid: Option<(Vec<u64>, Vec<u32>)>,
}

impl SetsKey {
    fn bytes(&self) -> usize {
        let valid = self.valid.as_ref().map_or(0, |(x, l)| 8 * x.len() + 4 * l.len());
        8 * self.x.len() + 4 * self.labels.len() + valid
    }

    fn of(train: &train::Rows<'_>, valid: Option<&train::Rows<'_>>, names: &[String], params: &str) -> SetsKey {
        let bits = |rows: &train::Rows<'_>| {
            (rows.data.iter().map(|v| v.to_bits()).collect(), rows.labels.iter().map(|v| v.to_bits()).collect())
        };
        let (x, labels) = bits(train);
        SetsKey {
            dataset_params: train::dataset_params(params).into(),
            names: names.to_vec(),
            x,
            labels,
            valid: valid.map(bits),
        }
    }
}

impl CheckedLightGbm {
    /// [`Estimator::fit`], binning the rows once for many fits when given a [`FitCache`].
    ///
    /// # Errors
    /// As [`Estimator::fit`].
    pub fn fit_reusing(
        &self,
        x: &Matrix,
        y: &[f64],
        valid: Option<(&Matrix, &[f64])>,
        cache: Option<&FitCache>,
    ) -> Result<LightGbmModel, ModelError> {
        check_feature_names(&x.names)?;
        let labels = self.labels("training", x, y)?;
        let valid = match valid {
            None => {
                if let Some(rounds) = self.params.early_stopping_rounds {
                    return Err(bad("early_stopping_rounds", rounds, "needs a validation set, and none was given"));
                }
                None
            }
            Some((vx, vy)) => {
                if vx.names != x.names {
                    return Err(ModelError::Train(format!(
                        "the validation set's columns {:?} differ from the training set's {:?}",
                        vx.names, x.names
                    )));
                }
                let vlabels = self.labels("validation", vx, vy)?;
                Some((vx, vlabels))
            }
        };
        let params = self.lightgbm_param_string();
        let plan = train::Plan {
            params: &params,
            num_iterations: self.params.num_iterations as usize,
            early_stopping_rounds: self.params.early_stopping_rounds.map(|r| r as usize),
            maximize: self.metric.maximize(),
        };
        let train_rows = train::Rows { data: &x.data, labels: &labels };
        let valid_rows = valid.as_ref().map(|(vx, vlabels)| train::Rows { data: &vx.data, labels: vlabels });
        let key = cache.map(|_| SetsKey::of(&train_rows, valid_rows.as_ref(), &x.names, &params));
        let sets = match cache.zip(key.as_ref()).and_then(|(c, k)| c.take(k)) {
            Some(sets) => sets,
            None => train::Sets::new(&train_rows, valid_rows.as_ref(), &x.names, &params).map_err(ModelError::Train)?,
        };
        let trained = train::train(&sets, &plan);
        if let (Some(cache), Some(key)) = (cache, key) {
            cache.give_back(key, sets);
        }
        let trained = trained.map_err(ModelError::Train)?;
        if trained.rounds == 0 {
            return Err(ModelError::Train("lightgbm built no tree".to_string()));
        }
        let mut model = LightGbmModel::fitted(trained.model, trained.rounds, x.names.clone())?;
        model.curves = trained.curves;
        Ok(model)
    }
}

/// The booster, movable to another thread.
struct SendBooster(Booster);

/// `booster` made ready for single-row prediction (LightGBM's fast path, one thread).
fn ready(mut booster: Booster) -> Result<SendBooster, String> {
    booster
        .single_row_fast_init::<f64>(Some(&json!({ "num_threads": 1 })))
        .map_err(|e| format!("preparing single-row prediction: {e}"))?;
    Ok(SendBooster(booster))
}

// SAFETY: a LightGBM booster has no thread affinity: the C++ object is plain heap data, and the only thread-local
// state of the C API is the last-error message and the log level, which every call sets and reads on its own thread.
// `lightgbm3::Booster` is `!Send` only because it holds raw handles. It is never shared without synchronization:
// `LightGbmModel` keeps it in a `Mutex`, so exactly one thread calls into it at a time.
#[allow(unsafe_code)]
unsafe impl Send for SendBooster {}

/// A fitted LightGBM model (regression value or probability of class 1). Predictions (batch, raw, single row) run on
/// kiln's native trees (the `native` module), bit for bit LightGBM's, unless the model holds something they do not
/// evaluate (linear trees); SHAP contributions always run on LightGBM. `Send + Sync`: calls into a booster are
/// serialized by its mutex, each one single-threaded. Single-row prediction (serving) runs on a replica when the
/// main booster is busy: LightGBM's single-row fast path keeps per-call buffers in its handle, so one handle cannot
/// serve two threads at once, and a server with several workers would otherwise wait on one lock.
pub struct LightGbmModel {
    /// LightGBM's booster, read from the model text; made on first use for a fitted model whose predictions run
    /// on the native trees (a tuning trial's fold model never needs it), at once otherwise
    booster: OnceLock<Mutex<SendBooster>>,
    /// the model text a fit wrote, which the booster is made from when first needed (kept after that); empty for a
    /// model read from text, whose booster is made at once
    text: String,
    /// boosters read from the same model text, made on the first contended [`LightGbmModel::predict_row`]: one per
    /// further CPU (at most 7); empty when the machine has one CPU or they could not be made
    replicas: OnceLock<Vec<Mutex<SendBooster>>>,
    feature_names: Vec<String>,
    iterations: usize,
    curves: Vec<EvalCurve>,
    /// the trees for native evaluation (every prediction but SHAP); `None` when the model holds something only
    /// LightGBM evaluates (linear trees), and LightGBM predicts
    native: Option<Forest>,
}

impl fmt::Debug for LightGbmModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LightGbmModel")
            .field("feature_names", &self.feature_names)
            .field("iterations", &self.iterations)
            .field("native", &self.native.is_some())
            .finish_non_exhaustive()
    }
}

impl LightGbmModel {
    /// The model of `booster`, read from `text` (its model text) for native evaluation.
    fn from_booster(booster: Booster, text: &str, feature_names: Vec<String>) -> Result<LightGbmModel, ModelError> {
        if booster.num_classes() != 1 {
            return Err(ModelError::Load(format!(
                "the model has {} outputs per row; kiln supports single-output objectives only",
                booster.num_classes()
            )));
        }
        if usize::try_from(booster.num_features()).ok() != Some(feature_names.len()) {
            return Err(ModelError::Load(format!(
                "the model has {} features but names {} of them",
                booster.num_features(),
                feature_names.len()
            )));
        }
        let iterations = usize::try_from(booster.num_iterations())
            .map_err(|_| ModelError::Load(format!("the model reports {} iterations", booster.num_iterations())))?;
        let native = Forest::parse(text).filter(|f| f.n_features() == feature_names.len());
        Ok(LightGbmModel {
            booster: OnceLock::from(Mutex::new(ready(booster).map_err(ModelError::Load)?)),
            text: String::new(),
            replicas: OnceLock::new(),
            feature_names,
            iterations,
            curves: Vec::new(),
            native,
        })
    }

    /// The model a fit just wrote as `text` (`rounds` rounds of one output on `feature_names`). When the native
    /// trees evaluate it, LightGBM's booster is read from the text only when something needs it (SHAP values,
    /// feature importance, the text itself), so a tuning trial's fold model costs one parse, not two.
    fn fitted(text: String, rounds: usize, feature_names: Vec<String>) -> Result<LightGbmModel, ModelError> {
        let train_err = |e: ModelError| match e {
            ModelError::Load(m) => ModelError::Train(m),
            other => other,
        };
        match Forest::parse(&text) {
            Some(forest) if forest.n_features() == feature_names.len() && forest.n_trees() == rounds => {
                Ok(LightGbmModel {
                    booster: OnceLock::new(),
                    text,
                    replicas: OnceLock::new(),
                    feature_names,
                    iterations: rounds,
                    curves: Vec::new(),
                    native: Some(forest),
                })
            }
            _ => {
                let booster = Booster::from_string(&text)
                    .map_err(|e| ModelError::Train(format!("reading back the fitted model: {e}")))?;
                let model = LightGbmModel::from_booster(booster, &text, feature_names).map_err(train_err)?;
                if model.iterations != rounds {
                    return Err(ModelError::Train(format!(
                        "lightgbm trained {rounds} rounds but its model text holds {}",
                        model.iterations
                    )));
                }
                Ok(model)
            }
        }
    }

    /// The replicas for single-row prediction, made on first use (see [`LightGbmModel`]).
    fn replicas(&self) -> &[Mutex<SendBooster>] {
        self.replicas.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            let Ok(text) = self.to_model_string() else { return Vec::new() };
            (1..cpus.min(8)).map_while(|_| Some(Mutex::new(ready(Booster::from_string(&text).ok()?).ok()?))).collect()
        })
    }

    /// LightGBM's booster, read from the fit's model text on first use (see [`LightGbmModel::fitted`]).
    fn booster_cell(&self) -> Result<&Mutex<SendBooster>, ModelError> {
        if let Some(b) = self.booster.get() {
            return Ok(b);
        }
        let made = Booster::from_string(&self.text)
            .map_err(|e| e.to_string())
            .and_then(ready)
            .map_err(|e| ModelError::Predict(format!("reading the fitted model into LightGBM: {e}")))?;
        // another thread may have made it first: theirs is the same model, keep it
        Ok(self.booster.get_or_init(|| Mutex::new(made)))
    }

    /// The booster, locked (see [`LightGbmModel::booster_cell`]).
    fn booster(&self) -> Result<MutexGuard<'_, SendBooster>, ModelError> {
        // a panic while the lock was held cannot leave the booster half-changed: nothing mutates it after creation
        Ok(self.booster_cell()?.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The model in LightGBM's text format (what `Booster.save_model` writes; numbers at full precision).
    ///
    /// # Errors
    /// [`ModelError::Predict`] when LightGBM cannot read a fit's text back into a booster, [`ModelError::Train`]
    /// when it fails to serialize the model.
    pub fn to_model_string(&self) -> Result<String, ModelError> {
        self.booster()?.0.save_string().map_err(|e| ModelError::Train(format!("saving the model text: {e}")))
    }

    /// Reads a model written by [`LightGbmModel::to_model_string`] or by Python's `Booster.save_model`.
    ///
    /// # Errors
    /// [`ModelError::Load`] when the text is not a LightGBM model, has no feature names, or is multi-output.
    pub fn from_model_string(s: &str) -> Result<LightGbmModel, ModelError> {
        if s.contains('\0') {
            return Err(ModelError::Load("it contains a NUL byte".to_string()));
        }
        let names_line = s
            .lines()
            .take_while(|l| !l.starts_with("Tree="))
            .find_map(|l| l.strip_prefix("feature_names="))
            .ok_or_else(|| ModelError::Load("no feature_names line before the first tree".to_string()))?;
        let feature_names: Vec<String> = names_line.split(' ').map(str::to_string).collect();
        let booster = Booster::from_string(s).map_err(|e| ModelError::Load(e.to_string()))?;
        LightGbmModel::from_booster(booster, s, feature_names)
    }

    /// Per feature, in the model's order: `(name, total gain, number of splits)`.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when LightGBM fails.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError> {
        let booster = self.booster()?;
        let err = |e: lightgbm3::Error| ModelError::Predict(format!("feature importance: {e}"));
        let gain = booster.0.feature_importance(ImportanceType::Gain).map_err(err)?;
        let split = booster.0.feature_importance(ImportanceType::Split).map_err(err)?;
        Ok(self.feature_names.iter().zip(gain).zip(split).map(|((n, g), s)| (n.clone(), g, s)).collect())
    }

    /// Boosting rounds in the model. After early stopping this is the best round: later rounds were dropped.
    pub fn best_iteration(&self) -> usize {
        self.iterations
    }

    /// Trees in the model (one per round for the single-output objectives kiln supports).
    pub fn num_trees(&self) -> usize {
        self.iterations
    }

    /// The metric LightGBM evaluated while fitting ([`EvalCurve`]): on the training rows after about 100 of the
    /// rounds, then (when the fit had them) on the validation rows after every round; after early stopping, also
    /// the rounds that were dropped. Empty for a model read from text.
    pub fn eval_curves(&self) -> &[EvalCurve] {
        &self.curves
    }

    /// Checks that `x` holds the model's features in order; `None` when it has no rows, else the column count as
    /// LightGBM takes it.
    fn check_input(&self, x: &Matrix) -> Result<Option<i32>, ModelError> {
        checks::check_input(x, &self.feature_names)?;
        check_matrix("input", x).map_err(ModelError::Predict)?;
        if x.n_rows == 0 {
            return Ok(None);
        }
        i32::try_from(x.n_cols()).map(Some).map_err(|_| ModelError::Predict("too many feature columns".into()))
    }

    /// The untransformed score per row (LightGBM's raw score: the log-odds for `binary`, the value itself for the
    /// regression objectives other than `poisson`, whose raw score is the log); each row of
    /// [`LightGbmModel::contributions`] sums to it.
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_raw(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match &self.native {
            Some(forest) => self.predict_native(forest, x, true),
            None => self.predict_raw_library(x),
        }
    }

    fn predict_native(&self, forest: &Forest, x: &Matrix, raw: bool) -> Result<Vec<f64>, ModelError> {
        self.check_input(x)?;
        let mut out = vec![0.0; x.n_rows];
        forest.predict_into(&x.data, &mut out, raw);
        Ok(out)
    }

    /// [`LightGbmModel::predict_raw`] through LightGBM itself.
    pub(crate) fn predict_raw_library(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        let Some(n_cols) = self.check_input(x)? else { return Ok(Vec::new()) };
        let out = self
            .booster()?
            .0
            .raw_scores_with_params(&x.data, n_cols, true, "num_threads=1")
            .map_err(|e| ModelError::Predict(e.to_string()))?;
        if out.len() != x.n_rows {
            return Err(ModelError::Predict(format!("lightgbm returned {} scores for {} rows", out.len(), x.n_rows)));
        }
        Ok(out)
    }

    /// SHAP values by LightGBM's exact tree algorithm (`predict_contrib`, f64 features): one column per feature,
    /// named as the feature, and a last column `bias` (the expected value); each row sums to
    /// [`LightGbmModel::predict_raw`].
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn contributions(&self, x: &Matrix) -> Result<Matrix, ModelError> {
        let mut names = self.feature_names.clone();
        names.push("bias".into());
        let Some(n_cols) = self.check_input(x)? else { return Ok(Matrix { names, data: Vec::new(), n_rows: 0 }) };
        let data =
            self.booster()?.0.predict_contrib(&x.data, n_cols, true).map_err(|e| ModelError::Predict(e.to_string()))?;
        if data.len() != x.n_rows * names.len() {
            return Err(ModelError::Predict(format!(
                "lightgbm returned {} contributions for {} rows of {} columns",
                data.len(),
                x.n_rows,
                names.len()
            )));
        }
        Ok(Matrix { names, data, n_rows: x.n_rows })
    }

    /// One row's prediction (the native trees, else LightGBM's single-row fast path); equal to
    /// [`Predictor::predict`] bit for bit.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is not the model's feature count.
    pub fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        checks::check_width(row.len(), &self.feature_names)?;
        if let Some(forest) = &self.native {
            return Ok(forest.predict_row(row, false));
        }
        self.predict_row_library(row)
    }

    /// Whether predictions run on kiln's native trees ([`crate::native`]) rather than LightGBM's own predict: true
    /// unless the model holds something only LightGBM evaluates (linear trees). SHAP contributions always run on
    /// LightGBM.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// [`LightGbmModel::predict_row`] through LightGBM's single-row fast path, never the native trees (for comparisons and
    /// benchmarks).
    ///
    /// # Errors
    /// As `predict_row`.
    pub fn predict_row_library(&self, row: &[f64]) -> Result<f64, ModelError> {
        checks::check_width(row.len(), &self.feature_names)?;
        let predict = |b: MutexGuard<'_, SendBooster>| {
            b.0.predict_single_row_fast(row).map_err(|e| ModelError::Predict(e.to_string()))
        };
        let main = self.booster_cell()?;
        let out = match main.try_lock() {
            Ok(b) => predict(b)?,
            Err(_) => match self.replicas().iter().find_map(|r| r.try_lock().ok()) {
                Some(b) => predict(b)?,
                None => predict(main.lock().unwrap_or_else(PoisonError::into_inner))?,
            },
        };
        match out.as_slice() {
            [v] => Ok(*v),
            other => Err(ModelError::Predict(format!("lightgbm returned {} values for one row", other.len()))),
        }
    }
}

impl Predictor for LightGbmModel {
    type Error = ModelError;

    /// One prediction per row, from f64 features (LightGBM's `float64` path, as Python's `Booster.predict` on a
    /// float64 array), by the native trees when the model has them.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features, in order.
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match &self.native {
            Some(forest) => self.predict_native(forest, x, false),
            None => self.predict_library(x),
        }
    }

    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
}

impl LightGbmModel {
    /// [`Predictor::predict`] through LightGBM itself, never the native trees (for comparisons and benchmarks).
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_library(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        let Some(n_cols) = self.check_input(x)? else { return Ok(Vec::new()) };
        let out = self
            .booster()?
            .0
            .predict_with_params(&x.data, n_cols, true, "num_threads=1")
            .map_err(|e| ModelError::Predict(e.to_string()))?;
        if out.len() != x.n_rows {
            return Err(ModelError::Predict(format!("lightgbm returned {} values for {} rows", out.len(), x.n_rows)));
        }
        Ok(out)
    }
}

/// How LightGBM models sit in a bundle: LightGBM's text model, which `mlflow.lightgbm` loads.
const FORMAT: ModelFormat = ModelFormat {
    name: "lightgbm",
    model_file: "model.lgb",
    flavor: "lightgbm",
    flavor_checks: &[],
    pyfunc_loader: Some("mlflow.lightgbm"),
    load: |bytes| {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| ModelError::Load(format!("the LightGBM model is not UTF-8: {e}")))?;
        Ok(FittedModel::new(LightGbmModel::from_model_string(text)?))
    },
};

boosted_trees! {
    params: LightGbmParams,
    checked: CheckedLightGbm,
    fitted: LightGbmModel,
    kind: "lightgbm",
    format: FORMAT,
    is_classifier: |c| c.metric.is_classification(),
    native_bytes: |m| Ok(m.to_model_string()?.into_bytes()),
    fit: |c, data| c.fit_reusing(data.x, data.y, data.valid, data.cache),
    flavor: [("lgb_version", LIGHTGBM_VERSION), ("model_class", "lightgbm.basic.Booster")],
}
