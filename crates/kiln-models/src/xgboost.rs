//! The XGBoost adapter (XGBoost 3.2.0, built from its source by `kiln-xgboost-sys`, called through the `capi`
//! module's safe wrapper): typed hyperparameters with
//! XGBoost's defaults, `check()` into [`CheckedXgBoost`], `fit` on a row-major f64 [`Matrix`] with an optional
//! validation set for early stopping, batch and single-row prediction, SHAP contributions, and XGBoost's JSON model
//! (`model.json`), which Python's `xgboost.Booster(model_file=...)` and `mlflow.xgboost.load_model` read and predict
//! identically.
//!
//! Key decisions:
//! - **kiln drives the rounds.** The booster is created with its parameters and the training and validation
//!   matrices in its prediction cache, and XGBoost's C API runs one round per call (`XGBoosterUpdateOneIter`, as
//!   Python's `xgboost.train` does). After every round XGBoost evaluates the metric on the validation rows, and on
//!   the training rows after the rounds [`crate::curve::train_due`] names; its evaluation lines are parsed at full
//!   precision into the fitted model's [`EvalCurve`]s. Early stopping is done here, as Python's `xgboost.train` does
//!   it: training stops once the validation metric has not strictly improved for `early_stopping_rounds` rounds.
//! - **The model ends at its best round.** After early stopping the model keeps the rounds up to the best one only
//!   (XGBoost's `XGBoosterSlice`, Python's `Booster[:n]`, into a booster of its own without the training matrices,
//!   which the fit's booster is dropped for); so the saved model predicts as the best round everywhere, including
//!   Python's `Booster.predict`, which uses every tree. The attributes `best_iteration` (0-based, as Python's
//!   `xgboost.train` writes it) and `best_score` are set as Python sets them. The JSON is the same byte for byte as
//!   cutting the trees out of the saved JSON and loading it back (what kiln did before, checked with Python's
//!   XGBoost 3.2.0), without writing, parsing and loading the model twice.
//! - **Feature names live in the model.** The names (and the type `float`) are set on the booster
//!   (`XGBoosterSetStrFeatureInfo`, as Python's `Booster.feature_names` setter), so the JSON model holds them in
//!   `learner.feature_names`/`feature_types`, where Python's `Booster.save_model` puts them; Python's XGBoost then
//!   checks a DataFrame's columns against them, and [`XgBoostModel::from_json_bytes`] reads them back.
//! - **f32 inside.** XGBoost stores features, thresholds and predictions as f32. Inputs are rounded from f64 to f32
//!   (as Python's `DMatrix` does with a float64 array; NaN is missing, a finite value too large for f32 is refused)
//!   and outputs are widened to f64 exactly. Labels go to XGBoost as f32.
//! - **Reproducible.** `tree_method` is `hist`, `seed` is explicit (42 by default) and `nthread` is every core
//!   unless the experiment sets it (resolved and logged; a model is reproducible bit for bit for a fixed count); XGBoost's
//!   random generator is per thread and seeded when the booster is first configured, so two fits give the same
//!   JSON. XGBoost's log is silenced (`verbosity` 0) unless asked for.
//!
//! Not here: tree methods other than `hist`, multi-output objectives, dart and gblinear boosters. A loaded model
//! predicts through XGBoost (SHAP, or a model the native trees do not cover) with XGBoost's default thread count.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};

use kiln_domain::{Estimator, Matrix, Predictor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ModelError;
use crate::checks::{self, LabelRules, bad, check_f64, check_labels, check_shape, param_opt, py_float, yaml_float};
use crate::curve::{EvalCurve, EvalData, push_round, train_due};
use crate::kind::{FittedModel, ModelFormat, boosted_trees};
use crate::native::xgboost::Forest;

mod capi;

use capi::{Booster, Data, Prediction};

/// The XGBoost version kiln links (`kiln-xgboost-sys`), written into the bundle's `MLmodel`.
pub const XGBOOST_VERSION: &str = kiln_xgboost_sys::VERSION;

/// The learning task XGBoost optimizes (XGBoost's `objective`), limited to single-output objectives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum XgbObjective {
    /// squared error
    #[serde(rename = "reg:squarederror")]
    SquaredError,
    /// absolute error (XGBoost refreshes each tree's leaves to the residuals' median)
    #[serde(rename = "reg:absoluteerror")]
    AbsoluteError,
    /// pseudo-Huber loss, `huber_slope` is its parameter
    #[serde(rename = "reg:pseudohubererror")]
    PseudoHuberError,
    /// binary classification (labels 0 or 1); predictions are probabilities of 1
    #[serde(rename = "binary:logistic")]
    BinaryLogistic,
}

impl XgbObjective {
    /// XGBoost's name.
    pub fn as_str(self) -> &'static str {
        match self {
            XgbObjective::SquaredError => "reg:squarederror",
            XgbObjective::AbsoluteError => "reg:absoluteerror",
            XgbObjective::PseudoHuberError => "reg:pseudohubererror",
            XgbObjective::BinaryLogistic => "binary:logistic",
        }
    }

    /// The metric XGBoost evaluates when none is given.
    pub fn default_metric(self) -> XgbMetric {
        match self {
            XgbObjective::SquaredError => XgbMetric::Rmse,
            XgbObjective::AbsoluteError => XgbMetric::Mae,
            XgbObjective::PseudoHuberError => XgbMetric::Mphe,
            XgbObjective::BinaryLogistic => XgbMetric::Logloss,
        }
    }
}

/// The validation metric (XGBoost's `eval_metric`); early stopping watches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XgbMetric {
    Rmse,
    Rmsle,
    Mae,
    Mape,
    /// mean pseudo-Huber error (uses `huber_slope`)
    Mphe,
    Logloss,
    /// classification error at threshold 0.5
    Error,
    /// area under the ROC curve (larger is better)
    Auc,
    /// area under the precision-recall curve (larger is better)
    Aucpr,
}

impl XgbMetric {
    /// XGBoost's name (also the name it reports the value under).
    pub fn as_str(self) -> &'static str {
        match self {
            XgbMetric::Rmse => "rmse",
            XgbMetric::Rmsle => "rmsle",
            XgbMetric::Mae => "mae",
            XgbMetric::Mape => "mape",
            XgbMetric::Mphe => "mphe",
            XgbMetric::Logloss => "logloss",
            XgbMetric::Error => "error",
            XgbMetric::Auc => "auc",
            XgbMetric::Aucpr => "aucpr",
        }
    }

    /// Whether the metric only makes sense for a binary classifier.
    pub fn is_classification(self) -> bool {
        matches!(self, XgbMetric::Logloss | XgbMetric::Error | XgbMetric::Auc | XgbMetric::Aucpr)
    }

    /// Whether a larger value is better (as Python's early stopping decides it: the AUCs).
    pub fn maximize(self) -> bool {
        matches!(self, XgbMetric::Auc | XgbMetric::Aucpr)
    }
}

/// How XGBoost grows trees. Only `hist` is accepted: it is the method kiln's determinism and speed were measured
/// with; `approx` and `exact` parse so that [`XgBoostParams::check`] can refuse them by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XgbTreeMethod {
    Hist,
    Approx,
    Exact,
}

impl XgbTreeMethod {
    /// XGBoost's name.
    pub fn as_str(self) -> &'static str {
        match self {
            XgbTreeMethod::Hist => "hist",
            XgbTreeMethod::Approx => "approx",
            XgbTreeMethod::Exact => "exact",
        }
    }
}

/// XGBoost's hyperparameters as a user writes them (`model.params` in the experiment YAML). Every field defaults to
/// XGBoost's own default, except the ones about reproducibility and logging: `seed` (42), `nthread` (every core,
/// resolved by [`XgBoostParams::check`]) and `verbosity` (0). Without `base_score` XGBoost estimates the intercept
/// from the training labels (the mean for squared error, as XGBoost >= 2.0 does; 1.6 started from 0.5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XgBoostParams {
    pub objective: XgbObjective,
    /// boosting rounds (the maximum when early stopping is on)
    pub num_boost_round: u32,
    /// learning rate
    pub eta: f64,
    pub max_depth: u32,
    pub min_child_weight: f64,
    /// fraction of rows sampled for each tree
    pub subsample: f64,
    /// fraction of columns sampled for each tree
    pub colsample_bytree: f64,
    /// L2 regularization of leaf weights
    pub lambda: f64,
    /// L1 regularization of leaf weights
    pub alpha: f64,
    /// minimum loss reduction to split (`min_split_loss`)
    pub gamma: f64,
    /// histogram bins per feature
    pub max_bin: u32,
    pub tree_method: XgbTreeMethod,
    /// weight of the positive class (binary only)
    pub scale_pos_weight: f64,
    /// the pseudo-Huber parameter (objective `reg:pseudohubererror` and metric `mphe`)
    pub huber_slope: f64,
    /// the validation metric; the objective's own metric when absent
    pub eval_metric: Option<XgbMetric>,
    /// stop when the validation metric has not improved for this many rounds (needs a validation set)
    pub early_stopping_rounds: Option<u32>,
    /// the initial prediction (a probability for `binary:logistic`); estimated from the labels when absent
    pub base_score: Option<f64>,
    /// XGBoost's OpenMP threads; `None`: every core ([`crate::default_threads`])
    pub nthread: Option<u32>,
    pub seed: u64,
    /// XGBoost's log level, 0 (silent) to 3 (debug); XGBoost applies it to the whole process
    pub verbosity: u32,
}

impl Default for XgBoostParams {
    fn default() -> Self {
        XgBoostParams {
            objective: XgbObjective::SquaredError,
            num_boost_round: 100,
            eta: 0.3,
            max_depth: 6,
            min_child_weight: 1.0,
            subsample: 1.0,
            colsample_bytree: 1.0,
            lambda: 1.0,
            alpha: 0.0,
            gamma: 0.0,
            max_bin: 256,
            tree_method: XgbTreeMethod::Hist,
            scale_pos_weight: 1.0,
            huber_slope: 1.0,
            eval_metric: None,
            early_stopping_rounds: None,
            base_score: None,
            nthread: None,
            seed: 42,
            verbosity: 0,
        }
    }
}

const I32_MAX: u64 = i32::MAX as u64;

fn check_range(param: &'static str, v: u64, min: u64, max: u64) -> Result<(), ModelError> {
    if v < min || v > max {
        let rule = if max == I32_MAX || max == i64::MAX as u64 {
            if v > max { format!("must be <= {max}") } else { format!("must be >= {min}") }
        } else {
            format!("must be in {min}..={max}")
        };
        return Err(bad(param, v, rule));
    }
    Ok(())
}

impl XgBoostParams {
    /// Checks every value against XGBoost's documented range, refuses what kiln does not run (`tree_method` other
    /// than `hist`), and the combinations XGBoost
    /// would silently ignore (class weights on a regression, a Huber slope without a Huber loss).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedXgBoost, ModelError> {
        let p = self;
        check_range("num_boost_round", p.num_boost_round.into(), 1, I32_MAX)?;
        check_f64("eta", p.eta, p.eta > 0.0 && p.eta <= 1.0, "must be in (0, 1]")?;
        check_range("max_depth", p.max_depth.into(), 1, I32_MAX)?;
        check_f64("min_child_weight", p.min_child_weight, p.min_child_weight >= 0.0, "must be >= 0")?;
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        check_f64("subsample", p.subsample, fraction(p.subsample), "must be in (0, 1]")?;
        check_f64("colsample_bytree", p.colsample_bytree, fraction(p.colsample_bytree), "must be in (0, 1]")?;
        check_f64("lambda", p.lambda, p.lambda >= 0.0, "must be >= 0")?;
        check_f64("alpha", p.alpha, p.alpha >= 0.0, "must be >= 0")?;
        check_f64("gamma", p.gamma, p.gamma >= 0.0, "must be >= 0")?;
        check_range("max_bin", p.max_bin.into(), 2, I32_MAX)?;
        if p.tree_method != XgbTreeMethod::Hist {
            return Err(bad("tree_method", p.tree_method.as_str(), "must be hist (the only method kiln runs)"));
        }
        let binary = p.objective == XgbObjective::BinaryLogistic;
        check_f64("scale_pos_weight", p.scale_pos_weight, p.scale_pos_weight > 0.0, "must be > 0")?;
        if !binary && p.scale_pos_weight != 1.0 {
            return Err(bad(
                "scale_pos_weight",
                yaml_float(p.scale_pos_weight),
                "only applies to objective binary:logistic",
            ));
        }
        let metric = p.eval_metric.unwrap_or(p.objective.default_metric());
        check_f64("huber_slope", p.huber_slope, p.huber_slope > 0.0, "must be > 0")?;
        if p.huber_slope != 1.0 && p.objective != XgbObjective::PseudoHuberError && metric != XgbMetric::Mphe {
            return Err(bad(
                "huber_slope",
                yaml_float(p.huber_slope),
                "only applies to objective reg:pseudohubererror or eval_metric mphe",
            ));
        }
        if metric.is_classification() && !binary {
            return Err(bad(
                "eval_metric",
                metric.as_str(),
                format!("needs objective binary:logistic, not {}", p.objective.as_str()),
            ));
        }
        if let Some(rounds) = p.early_stopping_rounds {
            check_range("early_stopping_rounds", rounds.into(), 1, I32_MAX)?;
        }
        if let Some(base) = p.base_score {
            if binary {
                check_f64("base_score", base, base > 0.0 && base < 1.0, "must be in (0, 1) for binary:logistic")?;
            } else {
                check_f64("base_score", base, true, "must be finite")?;
            }
        }
        if let Some(threads) = p.nthread {
            check_range("nthread", threads.into(), 1, I32_MAX)?;
        }
        check_range("seed", p.seed, 0, i64::MAX as u64)?;
        check_range("verbosity", p.verbosity.into(), 0, 3)?;
        Ok(CheckedXgBoost { params: p.clone(), metric, threads: p.nthread.unwrap_or_else(crate::default_threads) })
    }
}

/// Hyperparameters that passed [`XgBoostParams::check`]; they can fit an [`XgBoostModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedXgBoost {
    /// as given
    params: XgBoostParams,
    metric: XgbMetric,
    /// the threads the library trains with: `nthread`, or every core when the experiment left it out
    threads: u32,
}

impl CheckedXgBoost {
    /// The checked values (as given: `None` where kiln chooses the threads).
    pub fn params(&self) -> &XgBoostParams {
        &self.params
    }

    /// The threads XGBoost trains with.
    pub fn threads(&self) -> u32 {
        self.threads
    }

    /// The same model on `threads` threads when kiln chose its thread count, for fits that run side by side (a
    /// backtest's folds); `None` when the experiment fixed `nthread`, which is kept.
    pub fn with_threads(&self, threads: u32) -> Option<CheckedXgBoost> {
        self.params.nthread.is_none().then(|| {
            let mut out = self.clone();
            out.threads = threads.max(1);
            out
        })
    }

    /// The metric XGBoost evaluates and early stopping watches (the objective's default when none was given).
    pub fn metric(&self) -> XgbMetric {
        self.metric
    }

    /// Whether the model outputs the probability of class 1.
    pub fn is_classifier(&self) -> bool {
        self.params.objective == XgbObjective::BinaryLogistic
    }

    /// Everything passed to XGBoost, in its own names and value syntax, in a fixed order.
    fn xgboost_values(&self) -> Vec<(&'static str, String)> {
        let p = &self.params;
        let mut v: Vec<(&'static str, String)> = vec![
            ("booster", "gbtree".into()),
            ("objective", p.objective.as_str().into()),
            ("eval_metric", self.metric.as_str().into()),
            ("eta", py_float(p.eta)),
            ("max_depth", p.max_depth.to_string()),
            ("min_child_weight", py_float(p.min_child_weight)),
            ("subsample", py_float(p.subsample)),
            ("colsample_bytree", py_float(p.colsample_bytree)),
            ("lambda", py_float(p.lambda)),
            ("alpha", py_float(p.alpha)),
            ("gamma", py_float(p.gamma)),
            ("max_bin", p.max_bin.to_string()),
            ("tree_method", p.tree_method.as_str().into()),
        ];
        if p.objective == XgbObjective::BinaryLogistic {
            v.push(("scale_pos_weight", py_float(p.scale_pos_weight)));
        }
        if p.objective == XgbObjective::PseudoHuberError || self.metric == XgbMetric::Mphe {
            v.push(("huber_slope", py_float(p.huber_slope)));
        }
        if let Some(base) = p.base_score {
            v.push(("base_score", py_float(base)));
        }
        v.extend([
            ("nthread", self.threads().to_string()),
            ("seed", p.seed.to_string()),
            ("verbosity", p.verbosity.to_string()),
        ]);
        v
    }

    /// Every hyperparameter as `(name, value)` strings, for logging as MLflow params: what XGBoost is given, plus
    /// `num_boost_round` and `early_stopping_rounds` (`None` when unset, as Python's MLflow logs it).
    pub fn as_params(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.xgboost_values().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        out.push(("num_boost_round".into(), self.params.num_boost_round.to_string()));
        out.push(("early_stopping_rounds".into(), param_opt(self.params.early_stopping_rounds)));
        out
    }

    /// The labels as XGBoost stores them (f32), after checking them for this objective.
    fn labels(&self, set: &str, x: &Matrix, y: &[f64]) -> Result<Vec<f32>, ModelError> {
        check_matrix(set, x).map_err(ModelError::Train)?;
        let rules = LabelRules {
            f32: true,
            binary: self.is_classifier().then_some("objective binary:logistic"),
            non_negative: None,
        };
        check_labels(set, x, y, &rules)?;
        Ok(y.iter().map(|&v| v as f32).collect())
    }
}

fn check_matrix(set: &str, x: &Matrix) -> Result<(), String> {
    check_shape(set, x)?;
    if u32::try_from(x.n_cols()).is_err() {
        return Err(format!("the {set} set has {} columns; XGBoost takes at most {}", x.n_cols(), u32::MAX));
    }
    Ok(())
}

/// Python's XGBoost refuses `[`, `]` and `<` in feature names (its text dump uses them); names must be unique.
fn check_feature_names(names: &[String]) -> Result<(), ModelError> {
    checks::check_feature_names(
        names,
        |c| "[]<".contains(c) || c.is_control(),
        "XGBoost does not allow [, ], < or control characters",
    )
}

/// The features as XGBoost reads them: f32, NaN is missing. A finite value too large for f32 is refused (XGBoost
/// would otherwise see an infinity), and so is an infinity.
fn features_f32(data: &[f64], names: &[String]) -> Result<Vec<f32>, String> {
    data.iter()
        .enumerate()
        .map(|(i, &v)| {
            let f = v as f32;
            if v.is_nan() || f.is_finite() { Ok(f) } else { Err(not_f32(names, i, v)) }
        })
        .collect()
}

/// The check of [`features_f32`] without the copy.
fn check_f32(data: &[f64], names: &[String]) -> Result<(), String> {
    match data.iter().position(|&v| !v.is_nan() && !(v as f32).is_finite()) {
        None => Ok(()),
        Some(i) => Err(not_f32(names, i, data[i])),
    }
}

fn not_f32(names: &[String], i: usize, v: f64) -> String {
    let n_cols = names.len().max(1);
    format!(
        "feature '{}' at row {} is {}; XGBoost reads features as finite f32 (NaN for missing)",
        names[i % n_cols],
        i / n_cols,
        yaml_float(v)
    )
}

/// A dense row-major matrix for XGBoost without labels (`data` holds `n_rows` rows of `names.len()` values), built
/// as Python's `DMatrix(float32 array)` is.
fn dmatrix(data: &[f64], n_rows: usize, names: &[String], nthread: u32) -> Result<Data, String> {
    let values = features_f32(data, names)?;
    Data::new(&values, n_rows, names.len(), None, nthread)
}

impl Estimator for CheckedXgBoost {
    type Fitted = XgBoostModel;
    type Error = ModelError;

    /// Fits `num_boost_round` rounds on `x`/`y` (features and labels go to XGBoost as f32, as in Python). After
    /// every round XGBoost evaluates the metric on `valid`, and after about 100 of the rounds on the training rows;
    /// the values are kept as [`XgBoostModel::eval_curves`]. With `early_stopping_rounds`, training stops once the
    /// validation metric has not improved for that many rounds, and the model is cut back to its best round.
    ///
    /// # Errors
    /// [`ModelError::Params`] when early stopping is asked for without a validation set; [`ModelError::Train`] for
    /// bad data (shape, non-finite or out-of-domain labels, unusable feature names, values beyond f32), a validation
    /// metric that is NaN, or an XGBoost failure.
    fn fit(&self, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> Result<XgBoostModel, ModelError> {
        let p = &self.params;
        check_feature_names(&x.names)?;
        let labels = self.labels("training", x, y)?;
        let valid = match valid {
            None => {
                if let Some(rounds) = p.early_stopping_rounds {
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
        let train_err = |set: &'static str| move |e: String| ModelError::Train(format!("the {set} set: {e}"));
        let values = features_f32(&x.data, &x.names).map_err(train_err("training"))?;
        let dtrain =
            Data::new(&values, x.n_rows, x.n_cols(), Some(&labels), self.threads()).map_err(train_err("training"))?;
        let dvalid = match &valid {
            Some((vx, vlabels)) => {
                let values = features_f32(&vx.data, &vx.names).map_err(train_err("validation"))?;
                Some(
                    Data::new(&values, vx.n_rows, vx.n_cols(), Some(vlabels), self.threads())
                        .map_err(train_err("validation"))?,
                )
            }
            None => None,
        };

        // both matrices sit in the booster's prediction cache, so each round only adds the new tree's outputs
        let mut cached = vec![&dtrain];
        cached.extend(dvalid.as_ref());
        let mut booster = Booster::new(&cached, &self.xgboost_values()).map_err(ModelError::Train)?;
        let total = p.num_boost_round as usize;
        let mut best: Option<(usize, f64)> = None;
        let mut rounds = 0;
        let mut curves: Vec<EvalCurve> = Vec::new();
        let started = std::time::Instant::now();
        for round in 0..total {
            let iteration = i32::try_from(round).map_err(|_| ModelError::Train("too many rounds".into()))?;
            booster.update(iteration, &dtrain).map_err(ModelError::Train)?;
            rounds = round + 1;
            // the validation rows every round, the training rows when due
            let mut evals = match &dvalid {
                Some(d) => booster.eval(iteration, &[(d, EvalData::Valid)]).map_err(ModelError::Train)?,
                None => Vec::new(),
            };
            let mut stop = false;
            if let Some(patience) = p.early_stopping_rounds {
                let score = validation_score(&evals, self.metric, round)?;
                let improved = match best {
                    None => true,
                    Some((_, b)) if self.metric.maximize() => score > b,
                    Some((_, b)) => score < b,
                };
                if improved {
                    best = Some((round, score));
                } else {
                    stop = best.is_some_and(|(b, _)| round - b >= patience as usize);
                }
            }
            if train_due(round, total, stop) {
                let mut train = booster.eval(iteration, &[(&dtrain, EvalData::Train)]).map_err(ModelError::Train)?;
                train.append(&mut evals);
                evals = train;
            }
            push_round(&mut curves, round, evals, started).map_err(ModelError::Train)?;
            if stop {
                break;
            }
        }

        // the model kept: the rounds up to the best one after early stopping (so that it predicts as the best round
        // everywhere, Python's `Booster.predict` included, which uses every tree), with the features' names and the
        // attributes Python's `xgboost.train` sets, in a booster of its own without the training matrices (XGBoost's
        // `Booster[:n]`, the same JSON byte for byte as cutting the saved JSON and loading it back)
        let keep = best.map_or(rounds, |(b, _)| b + 1);
        let mut kept = booster.first_rounds(keep).map_err(ModelError::Train)?;
        drop(booster);
        kept.set_features(&x.names).map_err(ModelError::Train)?;
        if let Some((best_round, score)) = best {
            kept.set_attr("best_iteration", &best_round.to_string()).map_err(ModelError::Train)?;
            kept.set_attr("best_score", &format!("{score}")).map_err(ModelError::Train)?;
        }
        let mut model = XgBoostModel::with_booster(kept).map_err(ModelError::Train)?;
        if model.rounds != keep || model.trees != keep {
            return Err(ModelError::Train(format!(
                "the model has {} trees in {} rounds after keeping {keep} rounds; one tree per round was expected",
                model.trees, model.rounds
            )));
        }
        model.curves = curves;
        Ok(model)
    }
}

/// The validation metric after round `round`, as XGBoost evaluates it.
fn validation_score(evals: &[(EvalData, String, f64)], metric: XgbMetric, round: usize) -> Result<f64, ModelError> {
    let score =
        evals.iter().find(|(d, m, _)| *d == EvalData::Valid && m == metric.as_str()).map(|e| e.2).ok_or_else(|| {
            let reported: Vec<String> = evals.iter().map(|(d, m, _)| format!("{}-{m}", d.as_str())).collect();
            ModelError::Train(format!(
                "xgboost reported {reported:?} for round {}, not the validation {}",
                round + 1,
                metric.as_str()
            ))
        })?;
    if score.is_nan() {
        return Err(ModelError::Train(format!(
            "the validation {} is NaN at round {}; early stopping cannot compare it",
            metric.as_str(),
            round + 1
        )));
    }
    Ok(score)
}

/// What kiln reads from a JSON model besides the trees XGBoost runs.
struct Summary {
    feature_names: Vec<String>,
    rounds: usize,
    trees: usize,
    /// per feature: (total gain, number of splits)
    importance: Vec<(f64, f64)>,
}

fn str_param(v: &Value, pointer: &str) -> Result<i64, String> {
    let field = v.pointer(pointer).ok_or_else(|| format!("{} is missing", &pointer[1..].replace('/', ".")))?;
    let text = field.as_str().map(str::to_string).unwrap_or_else(|| field.to_string());
    text.trim().parse::<i64>().map_err(|_| format!("{} is '{text}', not an integer", &pointer[1..].replace('/', ".")))
}

fn int_array(tree: &Value, key: &str, t: usize) -> Result<Vec<i64>, String> {
    let values = tree.get(key).and_then(Value::as_array).ok_or_else(|| format!("tree {t} has no {key} array"))?;
    values.iter().map(|v| v.as_i64().ok_or_else(|| format!("tree {t}: {key} holds {v}, not an integer"))).collect()
}

fn summarize(json: &Value) -> Result<Summary, String> {
    let learner = json.get("learner").ok_or("there is no learner")?;
    let booster_name = learner.pointer("/gradient_booster/name").and_then(Value::as_str).unwrap_or("");
    if booster_name != "gbtree" {
        return Err(format!("the booster is '{booster_name}'; kiln reads gbtree models only"));
    }
    let num_class = str_param(learner, "/learner_model_param/num_class")?;
    if num_class > 1 {
        return Err(format!("the model has {num_class} classes; kiln supports single-output objectives only"));
    }
    let n_features = usize::try_from(str_param(learner, "/learner_model_param/num_feature")?)
        .map_err(|_| "learner_model_param.num_feature is negative".to_string())?;
    let feature_names: Vec<String> = match learner.get("feature_names").and_then(Value::as_array) {
        Some(names) if !names.is_empty() => names
            .iter()
            .map(|n| n.as_str().map(str::to_string).ok_or_else(|| format!("feature name {n} is not a string")))
            .collect::<Result<_, _>>()?,
        _ => return Err("it has no feature names (kiln writes them; train in Python on a DataFrame)".into()),
    };
    if feature_names.len() != n_features {
        return Err(format!("the model has {n_features} features but names {} of them", feature_names.len()));
    }
    let model = learner.pointer("/gradient_booster/model").ok_or("there is no gradient_booster.model")?;
    let num_trees = str_param(model, "/gbtree_model_param/num_trees")?;
    let parallel = match model.pointer("/gbtree_model_param/num_parallel_tree") {
        Some(_) => str_param(model, "/gbtree_model_param/num_parallel_tree")?.max(1),
        None => 1,
    };
    let trees = model.get("trees").and_then(Value::as_array).ok_or("there is no trees array")?;
    if usize::try_from(num_trees).ok() != Some(trees.len()) {
        return Err(format!("num_trees is {num_trees} but there are {} trees", trees.len()));
    }
    if trees.is_empty() {
        return Err("the model has no tree".into());
    }
    let mut importance = vec![(0.0_f64, 0.0_f64); n_features];
    for (t, tree) in trees.iter().enumerate() {
        let left = int_array(tree, "left_children", t)?;
        let split = int_array(tree, "split_indices", t)?;
        let gains =
            tree.get("loss_changes").and_then(Value::as_array).ok_or(format!("tree {t} has no loss_changes"))?;
        if split.len() != left.len() || gains.len() != left.len() {
            return Err(format!("tree {t}: its node arrays differ in length"));
        }
        for ((&l, &f), g) in left.iter().zip(&split).zip(gains) {
            if l == -1 {
                continue; // a leaf
            }
            let f = usize::try_from(f).ok().filter(|&f| f < n_features).ok_or(format!("tree {t} splits on {f}"))?;
            let g = g.as_f64().ok_or(format!("tree {t}: loss change {g} is not a number"))?;
            importance[f].0 += g;
            importance[f].1 += 1.0;
        }
    }
    let rounds = trees.len() / usize::try_from(parallel).unwrap_or(1).max(1);
    Ok(Summary { feature_names, rounds, trees: trees.len(), importance })
}

/// A fitted XGBoost model (regression value or probability of class 1). Predictions (batch, margins, single row)
/// run on kiln's native trees (the `native` module), bit for bit XGBoost's, unless the model holds something they
/// do not evaluate; SHAP contributions always run on XGBoost. `Send + Sync`: calls into XGBoost, which configures a
/// booster lazily on its first prediction, are serialized by a mutex.
pub struct XgBoostModel {
    booster: Mutex<Booster>,
    feature_names: Vec<String>,
    rounds: usize,
    trees: usize,
    importance: Vec<(String, f64, f64)>,
    curves: Vec<EvalCurve>,
    /// the trees for native evaluation (every prediction but SHAP); `None` when the model holds something only
    /// XGBoost evaluates (categorical splits, an objective kiln does not train), and XGBoost predicts
    native: Option<Forest>,
}

impl fmt::Debug for XgBoostModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XgBoostModel")
            .field("feature_names", &self.feature_names)
            .field("rounds", &self.rounds)
            .field("native", &self.native.is_some())
            .finish_non_exhaustive()
    }
}

impl XgBoostModel {
    fn booster(&self) -> MutexGuard<'_, Booster> {
        // a panic while the lock was held cannot leave the model half-changed: predictions do not change the trees
        self.booster.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The model in XGBoost's JSON format (what Python's `Booster.save_model("model.json")` writes).
    ///
    /// # Errors
    /// [`ModelError::Predict`] when XGBoost fails to serialize it.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.booster().save_json().map(String::into_bytes).map_err(ModelError::Predict)
    }

    /// Reads a JSON model written by [`XgBoostModel::to_json_bytes`] or by Python's `Booster.save_model` (a gbtree
    /// model with feature names and one output, from XGBoost 1.6 on: bundles kiln wrote before 3.2 load too).
    ///
    /// # Errors
    /// [`ModelError::Load`] when the bytes are not such a model.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<XgBoostModel, ModelError> {
        let json: Value = serde_json::from_slice(bytes).map_err(|e| ModelError::Load(format!("not JSON: {e}")))?;
        let summary = summarize(&json).map_err(ModelError::Load)?;
        let booster = Booster::load(bytes).map_err(ModelError::Load)?;
        Ok(XgBoostModel::assemble(booster, &json, summary))
    }

    /// A model around a booster just fitted, read from its own JSON.
    fn with_booster(booster: Booster) -> Result<XgBoostModel, String> {
        let json: Value = serde_json::from_str(&booster.save_json()?)
            .map_err(|e| format!("xgboost wrote a model that is not JSON: {e}"))?;
        let summary = summarize(&json)?;
        Ok(XgBoostModel::assemble(booster, &json, summary))
    }

    fn assemble(booster: Booster, json: &Value, summary: Summary) -> XgBoostModel {
        let importance = summary
            .feature_names
            .iter()
            .zip(&summary.importance)
            .map(|(n, (gain, splits))| (n.clone(), *gain, *splits))
            .collect();
        let native = Forest::from_json(json).filter(|f| f.n_features() == summary.feature_names.len());
        XgBoostModel {
            booster: Mutex::new(booster),
            native,
            feature_names: summary.feature_names,
            rounds: summary.rounds,
            trees: summary.trees,
            importance,
            curves: Vec::new(),
        }
    }

    /// Per feature, in the model's order: `(name, total gain, number of splits)`, as Python's
    /// `get_score(importance_type="total_gain")` and `"weight"` (0 for a feature no tree splits on).
    ///
    /// # Errors
    /// None today (the values are read when the model is built); the `Result` matches the other adapters.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError> {
        Ok(self.importance.clone())
    }

    /// Boosting rounds in the model. After early stopping this is the best round (1-based): later rounds were cut.
    pub fn best_iteration(&self) -> usize {
        self.rounds
    }

    /// Trees in the model (one per round for the objectives kiln fits).
    pub fn num_trees(&self) -> usize {
        self.trees
    }

    /// The metric XGBoost evaluated while fitting ([`EvalCurve`]): on the training rows after about 100 of the
    /// rounds, then (when the fit had them) on the validation rows after every round; after early stopping, also
    /// the rounds that were cut. Empty for a model read from JSON.
    pub fn eval_curves(&self) -> &[EvalCurve] {
        &self.curves
    }

    fn check_input(&self, x: &Matrix) -> Result<(), ModelError> {
        checks::check_input(x, &self.feature_names)?;
        check_matrix("input", x).map_err(ModelError::Predict)
    }

    fn input(&self, x: &Matrix) -> Result<Data, ModelError> {
        dmatrix(&x.data, x.n_rows, &x.names, 1).map_err(ModelError::Predict)
    }

    fn widen(out: Vec<f32>, expected: usize, what: &str) -> Result<Vec<f64>, ModelError> {
        if out.len() != expected {
            return Err(ModelError::Predict(format!("xgboost returned {} {what} for {expected}", out.len())));
        }
        Ok(out.into_iter().map(f64::from).collect())
    }

    /// One row's prediction; equal to [`Predictor::predict`] bit for bit (by the native trees; without them a
    /// one-row batch through XGBoost).
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is not the model's feature count or a value is beyond f32.
    pub fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        if let Some(forest) = &self.native {
            checks::check_width(row.len(), &self.feature_names)?;
            check_f32(row, &self.feature_names).map_err(ModelError::Predict)?;
            return Ok(forest.predict_row(row, false));
        }
        self.predict_row_library(row)
    }

    /// Whether predictions run on kiln's native trees ([`crate::native`]) rather than XGBoost's own predict: true
    /// unless the model holds something only XGBoost evaluates. SHAP contributions always run on XGBoost.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    fn predict_native(&self, forest: &Forest, x: &Matrix, raw: bool) -> Result<Vec<f64>, ModelError> {
        self.check_input(x)?;
        check_f32(&x.data, &x.names).map_err(ModelError::Predict)?;
        let mut out = vec![0.0; x.n_rows];
        forest.predict_into(&x.data, &mut out, raw);
        Ok(out)
    }

    /// [`XgBoostModel::predict_row`] through XGBoost itself, never the native trees (for comparisons and
    /// benchmarks).
    ///
    /// # Errors
    /// As `predict_row`.
    pub fn predict_row_library(&self, row: &[f64]) -> Result<f64, ModelError> {
        checks::check_width(row.len(), &self.feature_names)?;
        let input = dmatrix(row, 1, &self.feature_names, 1).map_err(ModelError::Predict)?;
        let (out, _) = self.booster().predict(&input, Prediction::Value).map_err(ModelError::Predict)?;
        match out.as_slice() {
            [v] => Ok(f64::from(*v)),
            other => Err(ModelError::Predict(format!("xgboost returned {} values for one row", other.len()))),
        }
    }

    /// The untransformed score per row (XGBoost's `output_margin`: the log-odds for `binary:logistic`, the value
    /// itself for regression); each row of [`XgBoostModel::contributions`] sums to it.
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_raw(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match &self.native {
            Some(forest) => self.predict_native(forest, x, true),
            None => self.predict_raw_library(x),
        }
    }

    /// [`XgBoostModel::predict_raw`] through XGBoost itself.
    pub(crate) fn predict_raw_library(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        self.check_input(x)?;
        if x.n_rows == 0 {
            return Ok(Vec::new());
        }
        let (out, _) = self.booster().predict(&self.input(x)?, Prediction::Margin).map_err(ModelError::Predict)?;
        Self::widen(out, x.n_rows, "margins")
    }

    /// SHAP values by XGBoost's exact tree algorithm (`pred_contribs`): one column per feature, named as the
    /// feature, and a last column `bias` (the expected value); each row sums to [`XgBoostModel::predict_raw`] up to
    /// f32 rounding.
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn contributions(&self, x: &Matrix) -> Result<Matrix, ModelError> {
        self.check_input(x)?;
        let mut names = self.feature_names.clone();
        names.push("bias".into());
        if x.n_rows == 0 {
            return Ok(Matrix { names, data: Vec::new(), n_rows: 0 });
        }
        let (out, _) =
            self.booster().predict(&self.input(x)?, Prediction::Contributions).map_err(ModelError::Predict)?;
        let data = Self::widen(out, x.n_rows * names.len(), "contributions")?;
        Ok(Matrix { names, data, n_rows: x.n_rows })
    }
}

impl Predictor for XgBoostModel {
    type Error = ModelError;

    /// One prediction per row, by the native trees when the model has them. The f64 features are rounded to f32
    /// (XGBoost's own type, as Python's `DMatrix` does with a float64 array) and the f32 predictions widened to f64
    /// exactly.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features, in order, or a value is beyond f32.
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

impl XgBoostModel {
    /// [`Predictor::predict`] through XGBoost itself, never the native trees (for comparisons and benchmarks).
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_library(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        self.check_input(x)?;
        if x.n_rows == 0 {
            return Ok(Vec::new());
        }
        let (out, _) = self.booster().predict(&self.input(x)?, Prediction::Value).map_err(ModelError::Predict)?;
        Self::widen(out, x.n_rows, "values")
    }
}

/// How XGBoost models sit in a bundle: XGBoost's JSON model, which `mlflow.xgboost` loads.
const FORMAT: ModelFormat = ModelFormat {
    name: "xgboost",
    model_file: "model.json",
    flavor: "xgboost",
    flavor_checks: &[("model_format", "json")],
    pyfunc_loader: Some("mlflow.xgboost"),
    load: |bytes| Ok(FittedModel::new(XgBoostModel::from_json_bytes(bytes)?)),
};

boosted_trees! {
    params: XgBoostParams,
    checked: CheckedXgBoost,
    fitted: XgBoostModel,
    kind: "xgboost",
    format: FORMAT,
    is_classifier: |c| CheckedXgBoost::is_classifier(c),
    native_bytes: |m| m.to_json_bytes(),
    fit: |c, data| kiln_domain::Estimator::fit(c, data.x, data.y, data.valid),
    flavor: [("model_class", "xgboost.core.Booster"), ("model_format", "json"), ("xgb_version", XGBOOST_VERSION)],
}

#[cfg(test)]
mod tests;
