//! The smartcore adapters (`smartcore` 0.7): random forest (regressor and binary classifier), linear regression,
//! ridge, lasso, elastic net and binary logistic regression. Typed hyperparameters with scikit-learn's defaults and
//! meanings -> `check()` into [`CheckedSmartcore`] -> `fit` on a row-major f64 [`Matrix`] -> a [`SmartcoreModel`]
//! that predicts in f64 and saves itself as kiln's own JSON (a header naming the kind and a format version).
//!
//! Key decisions, and where kiln deliberately differs from calling smartcore as it is:
//! - **Random forest classifier.** smartcore's `RandomForestClassifier` only returns majority votes and keeps its
//!   trees private, so it cannot give a probability. kiln fits smartcore's `RandomForestRegressor` on the 0/1
//!   labels instead: on 0/1 labels the squared-error impurity of a node is p(1-p), exactly half its Gini impurity,
//!   so every split is ranked as scikit-learn's Gini forest ranks it, and a leaf's mean is its share of class 1.
//!   The prediction, the mean of the trees' leaf shares, is what scikit-learn's `predict_proba[:, 1]` computes.
//!   Its bootstrap is plain sampling with replacement, as scikit-learn's (smartcore's classifier stratifies).
//! - **Forest parameters in scikit-learn's meaning.** `max_depth` counts split levels as scikit-learn does
//!   (smartcore counts node levels, so kiln passes `max_depth + 1`); `max_features` unset is scikit-learn's default
//!   (all features for the regressor, `floor(sqrt(p))` for the classifier; smartcore's is `floor(sqrt(p))` for
//!   both); only an integer count is accepted. Deviations that remain: smartcore counts bootstrap duplicates in
//!   `min_samples_leaf`/`min_samples_split` (scikit-learn counts distinct rows); a node becomes a leaf when none
//!   of its `max_features` drawn features can split it (scikit-learn draws further features until one can), so
//!   with few features and a small `max_features` smartcore's trees are shallower (on Telco churn with 3 features
//!   and the classifier's default of 1 this made the forest better, not worse); and its random numbers differ, so
//!   a forest is reproducible bit for bit from its seed but never equal to scikit-learn's.
//! - **Linear models fit on centered data**, as scikit-learn does: kiln subtracts the column means of `x` and the
//!   mean of `y`, lets smartcore solve for the coefficients, and sets the intercept to `mean(y) - mean(x)·w`.
//!   smartcore's own intercept handling is not usable as is: its ridge fits no intercept unless it also
//!   standardizes the features (`normalize`, on by default in smartcore, removed from scikit-learn), and its lasso
//!   without `normalize` centers `y` but not `x`. `normalize` is therefore always off; scale features in the
//!   pipeline instead. With the same data, `alpha` means what it means in scikit-learn:
//!   - `linear`: least squares by SVD (default) or QR of `[x, 1]`. `fit_intercept: false` is solved on the rows of
//!     `x` and `-x` with targets `y` and `-y`, whose best intercept is exactly 0 (smartcore always adds one).
//!   - `ridge`: `|y - Xw|² + alpha |w|²` (scikit-learn's `Ridge`), by Cholesky (default) or SVD of `XᵀX + alpha I`.
//!   - `lasso`: `|y - Xw|² / (2n) + alpha |w|₁` (scikit-learn's `Lasso`); smartcore's objective is
//!     `|y - Xw|² + alpha_s n |w|₁`, so kiln passes `alpha_s = 2 alpha`.
//!   - `elastic_net`: scikit-learn's `|y - Xw|² / (2n) + alpha l1_ratio |w|₁ + alpha (1 - l1_ratio) |w|² / 2`;
//!     smartcore's is `|y - Xw|² + alpha_s n (r_s |w|₁ + (1 - r_s) |w|²)`, so kiln passes
//!     `alpha_s = alpha (1 + l1_ratio)` and `r_s = 2 l1_ratio / (1 + l1_ratio)`. It always fits an intercept:
//!     smartcore's elastic net centers its augmented target, which is only right for a centered problem.
//!
//!   Lasso and elastic net are solved by smartcore's interior-point method (Koh, Kim, Boyd), not by coordinate
//!   descent: `tol` bounds the relative duality gap (scikit-learn's bounds the gap scaled by `|y|²`), a coefficient
//!   that scikit-learn sets to exactly 0 comes out tiny but not 0, and reaching `max_iter` is not reported. On
//!   ETTh1 the default `tol` (1e-4, scikit-learn's number) left coefficients up to 1.3e-2 (relative to the largest)
//!   from the optimum, where scikit-learn's default leaves 1.7e-3; `tol: 1e-8` gives ~1e-5 and `1e-12` ~1e-9, at
//!   0.1-0.25 s for 17k rows x 6 features.
//!   `l1_ratio` must be > 0 (smartcore's solver is unstable without an L1 term: use `ridge`).
//! - **Logistic regression** is binary (labels 0/1) with an L2 penalty on the coefficients, never on the intercept,
//!   as scikit-learn's `lbfgs`. scikit-learn minimizes `C · Σ logloss + |w|² / 2`; smartcore minimizes
//!   `Σ logloss + alpha |w|² / 2`, so kiln passes `alpha = 1 / C` (`C = .inf`: no penalty). smartcore predicts only
//!   labels; kiln keeps the coefficients and returns `sigmoid(w·x + b)`, the probability of class 1. Its L-BFGS
//!   settings are fixed by smartcore (at most 1000 iterations, stop at |gradient|∞ <= 1e-8 on the summed loss).
//! - **Missing values**: smartcore cannot take NaN. Fitting and predicting refuse any non-finite feature, naming
//!   the column and the row; the pipeline imputes before the model.
//! - **The saved model** is JSON: `{"format": "kiln-smartcore", "format_version": 1, "kind", "smartcore_version",
//!   "feature_names", "model"}`. A forest's `model` is smartcore's own serde form of the fitted
//!   `RandomForestRegressor`; a linear model's is `{"coefficients", "intercept"}` in the raw feature space (kiln
//!   computes those itself, so smartcore's linear structs are not stored). f64 values round-trip exactly, so a loaded
//!   model predicts bit for bit as the one saved.
//! - **Forests predict natively** ([`crate::native`]): the fitted trees are read once (on fit and on load) into kiln's
//!   flat node arrays and walked with smartcore's split rule and summation order, bit for bit smartcore's
//!   predictions at a fraction of the time; a forest they cannot read predicts through smartcore.
//! - Feature importance: a forest's is smartcore's mean impurity decrease, normalized to sum to 1 (scikit-learn's
//!   `feature_importances_`); a linear model's is `|coefficient|`, which depends on the features' scales.
//!
//! Not here: sample and class weights, multi-class and multi-output models, early stopping (`valid` is ignored).
//! Every fit is single-threaded and deterministic.

use std::fmt;

use kiln_domain::{Estimator, Matrix, Predictor};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::elastic_net::{ElasticNet, ElasticNetParameters};
use smartcore::linear::lasso::{Lasso, LassoParameters};
use smartcore::linear::linear_regression::{LinearRegression, LinearRegressionParameters, LinearRegressionSolverName};
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::linear::ridge_regression::{RidgeRegression, RidgeRegressionParameters, RidgeRegressionSolverName};

use crate::checks::{self, LabelRules, bad, check_labels, check_shape, param_opt, py_float};
use crate::kind::{Checked, FitData, Fitted, FittedModel, ModelFormat, ModelSpec};
use crate::kinds::KindParams;
use crate::native::forest::Forest as NativeForest;
use crate::{EvalCurve, ModelError};

/// The smartcore version kiln links, written into every saved model.
pub const SMARTCORE_VERSION: &str = "0.7.0";

const FILE_FORMAT: &str = "kiln-smartcore";
const FORMAT_VERSION: u32 = 1;

/// Which smartcore model a [`CheckedSmartcore`] fits and a [`SmartcoreModel`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmartcoreKind {
    RandomForestRegressor,
    /// binary: predicts the probability of class 1
    RandomForestClassifier,
    Linear,
    Ridge,
    Lasso,
    ElasticNet,
    /// binary: predicts the probability of class 1
    Logistic,
}

impl SmartcoreKind {
    /// The name in the saved model's header (`random_forest_regressor`, `ridge`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SmartcoreKind::RandomForestRegressor => "random_forest_regressor",
            SmartcoreKind::RandomForestClassifier => "random_forest_classifier",
            SmartcoreKind::Linear => "linear",
            SmartcoreKind::Ridge => "ridge",
            SmartcoreKind::Lasso => "lasso",
            SmartcoreKind::ElasticNet => "elastic_net",
            SmartcoreKind::Logistic => "logistic",
        }
    }

    /// The `model.kind` an experiment writes: both forests are `random_forest` (the task picks which).
    pub fn config_kind(self) -> &'static str {
        match self {
            SmartcoreKind::RandomForestRegressor | SmartcoreKind::RandomForestClassifier => "random_forest",
            other => other.as_str(),
        }
    }

    /// Whether predictions are probabilities of class 1.
    pub fn is_classifier(self) -> bool {
        matches!(self, SmartcoreKind::RandomForestClassifier | SmartcoreKind::Logistic)
    }

    fn is_forest(self) -> bool {
        matches!(self, SmartcoreKind::RandomForestRegressor | SmartcoreKind::RandomForestClassifier)
    }
}

impl fmt::Display for SmartcoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Random forest hyperparameters, scikit-learn's names aside from `n_trees` (`n_estimators`) and its defaults
/// aside from `seed` (42, where scikit-learn draws one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomForestParams {
    pub n_trees: u32,
    /// split levels from the root to the deepest leaf, as in scikit-learn; unset: grow until the leaves are pure
    pub max_depth: Option<u32>,
    pub min_samples_leaf: u32,
    pub min_samples_split: u32,
    /// features tried at each split; unset: scikit-learn's default (all for the regressor, `floor(sqrt(p))` for
    /// the classifier)
    pub max_features: Option<u32>,
    /// drives the bootstrap samples and the feature draws (tree `i` uses `seed + i`)
    pub seed: u64,
}

impl Default for RandomForestParams {
    fn default() -> Self {
        RandomForestParams {
            n_trees: 100,
            max_depth: None,
            min_samples_leaf: 1,
            min_samples_split: 2,
            max_features: None,
            seed: 42,
        }
    }
}

/// How least squares is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinearSolver {
    /// singular value decomposition: works for every matrix
    #[default]
    Svd,
    /// QR decomposition: faster, needs full column rank
    Qr,
}

/// Ordinary least squares (scikit-learn's `LinearRegression`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearParams {
    pub fit_intercept: bool,
    pub solver: LinearSolver,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams { fit_intercept: true, solver: LinearSolver::Svd }
    }
}

/// How the ridge system `(XᵀX + alpha I) w = Xᵀy` is solved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RidgeSolver {
    /// Cholesky decomposition (scikit-learn's choice for dense data)
    #[default]
    Cholesky,
    /// singular value decomposition: slower, also works when `alpha` is 0 and `XᵀX` is singular
    Svd,
}

/// L2-penalized least squares (scikit-learn's `Ridge`): minimizes `|y - Xw|² + alpha |w|²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RidgeParams {
    pub alpha: f64,
    pub fit_intercept: bool,
    pub solver: RidgeSolver,
}

impl Default for RidgeParams {
    fn default() -> Self {
        RidgeParams { alpha: 1.0, fit_intercept: true, solver: RidgeSolver::Cholesky }
    }
}

/// L1-penalized least squares (scikit-learn's `Lasso`): minimizes `|y - Xw|² / (2n) + alpha |w|₁`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LassoParams {
    pub alpha: f64,
    pub fit_intercept: bool,
    /// interior-point iterations at most
    pub max_iter: u32,
    /// stop when the relative duality gap is below this
    pub tol: f64,
}

impl Default for LassoParams {
    fn default() -> Self {
        LassoParams { alpha: 1.0, fit_intercept: true, max_iter: 1000, tol: 1e-4 }
    }
}

/// L1 + L2 penalized least squares (scikit-learn's `ElasticNet`): minimizes
/// `|y - Xw|² / (2n) + alpha l1_ratio |w|₁ + alpha (1 - l1_ratio) |w|² / 2`, always with an intercept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticNetParams {
    pub alpha: f64,
    pub l1_ratio: f64,
    /// interior-point iterations at most
    pub max_iter: u32,
    /// stop when the relative duality gap is below this
    pub tol: f64,
}

impl Default for ElasticNetParams {
    fn default() -> Self {
        ElasticNetParams { alpha: 1.0, l1_ratio: 0.5, max_iter: 1000, tol: 1e-4 }
    }
}

/// Binary logistic regression with an L2 penalty (scikit-learn's `LogisticRegression` with `lbfgs`), always with
/// an unpenalized intercept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogisticParams {
    /// inverse penalty strength, scikit-learn's `C` (smartcore's `alpha` is `1 / c`); `.inf` means no penalty
    #[serde(alias = "C")]
    pub c: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams { c: 1.0 }
    }
}

fn check_positive(param: &'static str, v: f64) -> Result<(), ModelError> {
    if v.is_finite() && v > 0.0 { Ok(()) } else { Err(bad(param, py_float(v), "must be a finite number > 0")) }
}

fn check_min(param: &'static str, v: u32, min: u32) -> Result<(), ModelError> {
    if v >= min { Ok(()) } else { Err(bad(param, v, format!("must be >= {min}"))) }
}

/// smartcore takes `max_depth` as node levels in a u16: kiln's (split levels) plus one.
const MAX_DEPTH_LIMIT: u32 = u16::MAX as u32 - 1;

impl RandomForestParams {
    /// Checks every value against scikit-learn's range; `classifier` picks the binary classifier (labels 0/1,
    /// predictions are probabilities of 1) over the regressor. `max_features` is checked against the number of
    /// features when fitting.
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    pub fn check(&self, classifier: bool) -> Result<CheckedSmartcore, ModelError> {
        check_min("n_trees", self.n_trees, 1)?;
        if let Some(d) = self.max_depth
            && !(1..=MAX_DEPTH_LIMIT).contains(&d)
        {
            return Err(bad("max_depth", d, format!("must be in 1..={MAX_DEPTH_LIMIT}, or unset for no limit")));
        }
        check_min("min_samples_leaf", self.min_samples_leaf, 1)?;
        check_min("min_samples_split", self.min_samples_split, 2)?;
        if let Some(m) = self.max_features {
            check_min("max_features", m, 1)?;
        }
        Ok(CheckedSmartcore { spec: Spec::Forest { params: self.clone(), classifier } })
    }
}

impl LinearParams {
    /// Every combination is valid; this only makes the estimator.
    ///
    /// # Errors
    /// None today; the signature matches the other families'.
    pub fn check(&self) -> Result<CheckedSmartcore, ModelError> {
        Ok(CheckedSmartcore { spec: Spec::Linear(self.clone()) })
    }
}

impl RidgeParams {
    /// Checks `alpha` (finite, >= 0; 0 is least squares).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedSmartcore, ModelError> {
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return Err(bad("alpha", py_float(self.alpha), "must be a finite number >= 0"));
        }
        Ok(CheckedSmartcore { spec: Spec::Ridge(self.clone()) })
    }
}

impl LassoParams {
    /// Checks `alpha` (> 0: without a penalty use `linear`), `max_iter` (>= 1) and `tol` (> 0).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedSmartcore, ModelError> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(bad("alpha", py_float(self.alpha), "must be a finite number > 0 (for no penalty use linear)"));
        }
        check_min("max_iter", self.max_iter, 1)?;
        check_positive("tol", self.tol)?;
        Ok(CheckedSmartcore { spec: Spec::Lasso(self.clone()) })
    }
}

impl ElasticNetParams {
    /// Checks `alpha` (> 0), `l1_ratio` (in (0, 1]: smartcore's solver needs an L1 term, use `ridge` for a pure L2
    /// penalty), `max_iter` (>= 1) and `tol` (> 0).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the first bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedSmartcore, ModelError> {
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(bad("alpha", py_float(self.alpha), "must be a finite number > 0 (for no penalty use linear)"));
        }
        if !(self.l1_ratio > 0.0 && self.l1_ratio <= 1.0) {
            return Err(bad(
                "l1_ratio",
                py_float(self.l1_ratio),
                "must be in (0, 1] (for a pure L2 penalty use ridge)",
            ));
        }
        check_min("max_iter", self.max_iter, 1)?;
        check_positive("tol", self.tol)?;
        Ok(CheckedSmartcore { spec: Spec::ElasticNet(self.clone()) })
    }
}

impl LogisticParams {
    /// Checks `c` (> 0; `.inf` for no penalty).
    ///
    /// # Errors
    /// [`ModelError::Params`] naming the bad parameter, its value and the allowed range.
    pub fn check(&self) -> Result<CheckedSmartcore, ModelError> {
        if self.c.is_nan() || self.c <= 0.0 {
            return Err(bad("c", py_float(self.c), "must be > 0 (.inf for no penalty)"));
        }
        Ok(CheckedSmartcore { spec: Spec::Logistic(self.clone()) })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Spec {
    Forest { params: RandomForestParams, classifier: bool },
    Linear(LinearParams),
    Ridge(RidgeParams),
    Lasso(LassoParams),
    ElasticNet(ElasticNetParams),
    Logistic(LogisticParams),
}

/// Hyperparameters that passed their `check()`; they can fit a [`SmartcoreModel`].
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSmartcore {
    spec: Spec,
}

impl CheckedSmartcore {
    /// The model this fits.
    pub fn kind(&self) -> SmartcoreKind {
        match &self.spec {
            Spec::Forest { classifier: false, .. } => SmartcoreKind::RandomForestRegressor,
            Spec::Forest { classifier: true, .. } => SmartcoreKind::RandomForestClassifier,
            Spec::Linear(_) => SmartcoreKind::Linear,
            Spec::Ridge(_) => SmartcoreKind::Ridge,
            Spec::Lasso(_) => SmartcoreKind::Lasso,
            Spec::ElasticNet(_) => SmartcoreKind::ElasticNet,
            Spec::Logistic(_) => SmartcoreKind::Logistic,
        }
    }

    /// The `model.kind` of the experiment YAML (`random_forest`, `linear`, `ridge`, ...).
    pub fn kind_str(&self) -> &'static str {
        self.kind().config_kind()
    }

    /// Whether the fitted model predicts probabilities of class 1.
    pub fn is_classifier(&self) -> bool {
        self.kind().is_classifier()
    }

    /// Every hyperparameter as `(name, value)` strings in kiln's names (scikit-learn's meaning), for logging as
    /// MLflow params; an unset option is logged as `None`, booleans as `True`/`False`, as Python's MLflow does.
    pub fn as_params(&self) -> Vec<(String, String)> {
        let opt = param_opt::<u32>;
        let flag = |b: bool| if b { "True" } else { "False" }.to_string();
        let solver = |s: &str| s.to_string();
        let v: Vec<(&str, String)> = match &self.spec {
            Spec::Forest { params: p, .. } => vec![
                ("n_trees", p.n_trees.to_string()),
                ("max_depth", opt(p.max_depth)),
                ("min_samples_leaf", p.min_samples_leaf.to_string()),
                ("min_samples_split", p.min_samples_split.to_string()),
                ("max_features", opt(p.max_features)),
                ("seed", p.seed.to_string()),
            ],
            Spec::Linear(p) => vec![
                ("fit_intercept", flag(p.fit_intercept)),
                (
                    "solver",
                    solver(match p.solver {
                        LinearSolver::Svd => "svd",
                        LinearSolver::Qr => "qr",
                    }),
                ),
            ],
            Spec::Ridge(p) => vec![
                ("alpha", py_float(p.alpha)),
                ("fit_intercept", flag(p.fit_intercept)),
                (
                    "solver",
                    solver(match p.solver {
                        RidgeSolver::Cholesky => "cholesky",
                        RidgeSolver::Svd => "svd",
                    }),
                ),
            ],
            Spec::Lasso(p) => vec![
                ("alpha", py_float(p.alpha)),
                ("fit_intercept", flag(p.fit_intercept)),
                ("max_iter", p.max_iter.to_string()),
                ("tol", py_float(p.tol)),
            ],
            Spec::ElasticNet(p) => vec![
                ("alpha", py_float(p.alpha)),
                ("l1_ratio", py_float(p.l1_ratio)),
                ("max_iter", p.max_iter.to_string()),
                ("tol", py_float(p.tol)),
            ],
            Spec::Logistic(p) => vec![("c", py_float(p.c))],
        };
        v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// smartcore's forest, with kiln's choice of types.
type Forest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

/// A linear model in the raw feature space: `intercept + coefficients · x` (logistic: its sigmoid).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinearFit {
    coefficients: Vec<f64>,
    intercept: f64,
}

enum Learned {
    Forest(Box<Forest>),
    Linear(LinearFit),
}

/// A fitted smartcore model: a regression value, or for the classifiers the probability of class 1. Plain data,
/// `Send + Sync`.
pub struct SmartcoreModel {
    kind: SmartcoreKind,
    feature_names: Vec<String>,
    fitted: Learned,
    /// a forest's trees for native evaluation; `None` for a linear model, or a forest they cannot read
    native: Option<NativeForest>,
}

impl fmt::Debug for SmartcoreModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("SmartcoreModel");
        s.field("kind", &self.kind).field("feature_names", &self.feature_names).field("native", &self.native.is_some());
        if let Learned::Linear(l) = &self.fitted {
            s.field("coefficients", &l.coefficients).field("intercept", &l.intercept);
        }
        s.finish_non_exhaustive()
    }
}

fn sc_err(what: &'static str) -> impl Fn(smartcore::error::Failed) -> ModelError {
    move |e| ModelError::Train(format!("smartcore {what}: {e}"))
}

/// Checks shape and finiteness of a feature matrix; `set` names it in messages ("training", "input").
fn check_features(set: &str, x: &Matrix) -> Result<(), String> {
    check_shape(set, x)?;
    if let Some(k) = x.data.iter().position(|v| !v.is_finite()) {
        let (row, col) = (k / x.n_cols(), k % x.n_cols());
        return Err(format!(
            "{set} feature '{}' is {} at row {row}; smartcore models take no missing or infinite values \
             (impute them in the pipeline)",
            x.names[col], x.data[k]
        ));
    }
    Ok(())
}

/// A row-major copy of `x` as smartcore's matrix.
fn dense(n_rows: usize, n_cols: usize, data: Vec<f64>) -> Result<DenseMatrix<f64>, String> {
    DenseMatrix::new(n_rows, n_cols, data, false).map_err(|e| e.to_string())
}

/// Column means of `x` and the mean of `y`, and both centered.
struct Centered {
    x_mean: Vec<f64>,
    y_mean: f64,
    x: DenseMatrix<f64>,
    y: Vec<f64>,
}

fn center(x: &Matrix, y: &[f64]) -> Result<Centered, ModelError> {
    let (n, p) = (x.n_rows, x.n_cols());
    let mut x_mean = vec![0.0; p];
    for i in 0..n {
        for (m, v) in x_mean.iter_mut().zip(x.row(i)) {
            *m += v;
        }
    }
    for m in &mut x_mean {
        *m /= n as f64;
    }
    let y_mean = y.iter().sum::<f64>() / n as f64;
    let mut data = x.data.clone();
    for row in data.chunks_exact_mut(p) {
        for (v, m) in row.iter_mut().zip(&x_mean) {
            *v -= m;
        }
    }
    let x = dense(n, p, data).map_err(ModelError::Train)?;
    Ok(Centered { x_mean, y_mean, x, y: y.iter().map(|v| v - y_mean).collect() })
}

impl Centered {
    /// The intercept in the raw space for coefficients fitted on the centered data.
    fn intercept(&self, w: &[f64]) -> f64 {
        self.y_mean - self.x_mean.iter().zip(w).map(|(m, w)| m * w).sum::<f64>()
    }
}

/// The `p x 1` coefficient matrix smartcore returns, as a vector.
fn column(m: &DenseMatrix<f64>, p: usize) -> Result<Vec<f64>, ModelError> {
    let shape = m.shape();
    if shape != (p, 1) && shape != (1, p) {
        return Err(ModelError::Train(format!("smartcore returned {shape:?} coefficients for {p} features")));
    }
    Ok((0..p).map(|j| if shape.0 == p { *m.get((j, 0)) } else { *m.get((0, j)) }).collect())
}

impl CheckedSmartcore {
    fn labels(&self, x: &Matrix, y: &[f64]) -> Result<(), ModelError> {
        check_features("training", x).map_err(ModelError::Train)?;
        let kind = self.kind();
        let rules =
            LabelRules { f32: false, binary: kind.is_classifier().then_some(kind.as_str()), non_negative: None };
        check_labels("training", x, y, &rules)
    }

    fn fit_forest(
        &self,
        p: &RandomForestParams,
        classifier: bool,
        x: &Matrix,
        y: &[f64],
    ) -> Result<Learned, ModelError> {
        let n_features = x.n_cols();
        let m = match p.max_features {
            Some(m) => {
                if m as usize > n_features {
                    return Err(bad("max_features", m, format!("must be <= the number of features ({n_features})")));
                }
                m as usize
            }
            None if classifier => ((n_features as f64).sqrt().floor() as usize).max(1),
            None => n_features,
        };
        let params = RandomForestRegressorParameters {
            // kiln's max_depth counts splits, smartcore's counts node levels; checked to fit in a u16
            max_depth: p.max_depth.map(|d| u16::try_from(d + 1).unwrap_or(u16::MAX)),
            min_samples_leaf: p.min_samples_leaf as usize,
            min_samples_split: p.min_samples_split as usize,
            n_trees: p.n_trees as usize,
            m: Some(m),
            keep_samples: false,
            seed: p.seed,
        };
        let xm = dense(x.n_rows, n_features, x.data.clone()).map_err(ModelError::Train)?;
        let forest = Forest::fit(&xm, &y.to_vec(), params).map_err(sc_err("random forest"))?;
        Ok(Learned::Forest(Box::new(forest)))
    }

    fn fit_linear(&self, x: &Matrix, y: &[f64]) -> Result<LinearFit, ModelError> {
        let (n, p) = (x.n_rows, x.n_cols());
        let fit = match &self.spec {
            Spec::Forest { .. } => return Err(ModelError::Train("a forest is not a linear model".to_string())),
            Spec::Linear(lp) => {
                let params = LinearRegressionParameters::default().with_solver(match lp.solver {
                    LinearSolver::Svd => LinearRegressionSolverName::SVD,
                    LinearSolver::Qr => LinearRegressionSolverName::QR,
                });
                if lp.fit_intercept {
                    let c = center(x, y)?;
                    let m = LinearRegression::fit(&c.x, &c.y, params).map_err(sc_err("least squares"))?;
                    let w = column(m.coefficients(), p)?;
                    // smartcore's own intercept on centered data is 0 up to rounding; keep it, it is part of the
                    // least-squares solution it found
                    let b0 = *m.intercept();
                    LinearFit { intercept: c.intercept(&w) + b0, coefficients: w }
                } else {
                    // smartcore always fits an intercept. On the rows of x and -x with targets y and -y the residuals
                    // of any w come in pairs r, -r, so the best intercept is exactly 0 and w is the least-squares
                    // solution without one, found with x's own conditioning (the normal equations would square it).
                    let mut data = x.data.clone();
                    data.extend(x.data.iter().map(|v| -v));
                    let mut yy = y.to_vec();
                    yy.extend(y.iter().map(|v| -v));
                    let xm = dense(2 * n, p, data).map_err(ModelError::Train)?;
                    let m = LinearRegression::fit(&xm, &yy, params).map_err(sc_err("least squares"))?;
                    LinearFit { coefficients: column(m.coefficients(), p)?, intercept: 0.0 }
                }
            }
            Spec::Ridge(rp) => {
                let params = RidgeRegressionParameters {
                    solver: match rp.solver {
                        RidgeSolver::Cholesky => RidgeRegressionSolverName::Cholesky,
                        RidgeSolver::Svd => RidgeRegressionSolverName::SVD,
                    },
                    alpha: rp.alpha,
                    normalize: false,
                };
                if rp.fit_intercept {
                    let c = center(x, y)?;
                    let m = RidgeRegression::fit(&c.x, &c.y, params).map_err(sc_err("ridge"))?;
                    let w = column(m.coefficients(), p)?;
                    LinearFit { intercept: c.intercept(&w), coefficients: w }
                } else {
                    let xm = dense(n, p, x.data.clone()).map_err(ModelError::Train)?;
                    let m = RidgeRegression::fit(&xm, &y.to_vec(), params).map_err(sc_err("ridge"))?;
                    LinearFit { coefficients: column(m.coefficients(), p)?, intercept: 0.0 }
                }
            }
            Spec::Lasso(lp) => {
                let params = LassoParameters {
                    alpha: 2.0 * lp.alpha,
                    normalize: false,
                    tol: lp.tol,
                    max_iter: lp.max_iter as usize,
                    fit_intercept: false,
                };
                if lp.fit_intercept {
                    let c = center(x, y)?;
                    let m = Lasso::fit(&c.x, &c.y, params).map_err(sc_err("lasso"))?;
                    let w = column(m.coefficients(), p)?;
                    LinearFit { intercept: c.intercept(&w), coefficients: w }
                } else {
                    let xm = dense(n, p, x.data.clone()).map_err(ModelError::Train)?;
                    let m = Lasso::fit(&xm, &y.to_vec(), params).map_err(sc_err("lasso"))?;
                    LinearFit { coefficients: column(m.coefficients(), p)?, intercept: 0.0 }
                }
            }
            Spec::ElasticNet(ep) => {
                let r = ep.l1_ratio;
                let params = ElasticNetParameters {
                    alpha: ep.alpha * (1.0 + r),
                    l1_ratio: 2.0 * r / (1.0 + r),
                    normalize: false,
                    tol: ep.tol,
                    max_iter: ep.max_iter as usize,
                };
                let c = center(x, y)?;
                let m = ElasticNet::fit(&c.x, &c.y, params).map_err(sc_err("elastic net"))?;
                let w = column(m.coefficients(), p)?;
                LinearFit { intercept: c.intercept(&w), coefficients: w }
            }
            Spec::Logistic(lp) => {
                let (mut zeros, mut ones) = (0usize, 0usize);
                let labels: Vec<i32> = y
                    .iter()
                    .map(|&v| {
                        if v == 1.0 {
                            ones += 1;
                            1
                        } else {
                            zeros += 1;
                            0
                        }
                    })
                    .collect();
                if zeros == 0 || ones == 0 {
                    let only = if ones == 0 { 0 } else { 1 };
                    return Err(ModelError::Train(format!(
                        "every training label is {only}; logistic regression needs both classes"
                    )));
                }
                let params = LogisticRegressionParameters::default().with_alpha(1.0 / lp.c);
                let xm = dense(n, p, x.data.clone()).map_err(ModelError::Train)?;
                let m = LogisticRegression::fit(&xm, &labels, params).map_err(sc_err("logistic regression"))?;
                if m.classes().as_slice() != [0, 1] {
                    return Err(ModelError::Train(format!("smartcore found classes {:?}, not [0, 1]", m.classes())));
                }
                LinearFit { coefficients: column(m.coefficients(), p)?, intercept: *m.intercept().get((0, 0)) }
            }
        };
        if let Some(j) = fit.coefficients.iter().position(|w| !w.is_finite()) {
            return Err(ModelError::Train(format!(
                "smartcore returned coefficient {} for feature '{}'; the features may be collinear or constant",
                fit.coefficients[j], x.names[j]
            )));
        }
        if !fit.intercept.is_finite() {
            return Err(ModelError::Train(format!("smartcore returned intercept {}", fit.intercept)));
        }
        Ok(fit)
    }
}

impl Estimator for CheckedSmartcore {
    type Fitted = SmartcoreModel;
    type Error = ModelError;

    /// Fits on `x`/`y`. `valid` is ignored: no smartcore model stops early.
    ///
    /// # Errors
    /// [`ModelError::Train`] for bad data (shape, a non-finite feature, naming its column and row, non-finite
    /// labels, labels other than 0/1 for a classifier, a single class for logistic regression) or when smartcore
    /// fails; [`ModelError::Params`] when `max_features` exceeds the number of features.
    fn fit(&self, x: &Matrix, y: &[f64], _valid: Option<(&Matrix, &[f64])>) -> Result<SmartcoreModel, ModelError> {
        self.labels(x, y)?;
        let fitted = match &self.spec {
            Spec::Forest { params, classifier } => self.fit_forest(params, *classifier, x, y)?,
            _ => Learned::Linear(self.fit_linear(x, y)?),
        };
        Ok(SmartcoreModel::new(self.kind(), x.names.clone(), fitted))
    }
}

/// The saved model's header, read first to refuse anything that is not a kiln smartcore model of a known version.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    format_version: Option<u32>,
    kind: Option<String>,
    #[serde(rename = "model")]
    _model: Option<IgnoredAny>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<M> {
    format: String,
    format_version: u32,
    kind: SmartcoreKind,
    smartcore_version: String,
    feature_names: Vec<String>,
    model: M,
}

impl SmartcoreModel {
    /// The model of `fitted`, with its forest's native trees read once.
    fn new(kind: SmartcoreKind, feature_names: Vec<String>, fitted: Learned) -> SmartcoreModel {
        let native = match &fitted {
            Learned::Forest(f) => NativeForest::from_smartcore(f, feature_names.len()),
            Learned::Linear(_) => None,
        };
        SmartcoreModel { kind, feature_names, fitted, native }
    }

    /// Whether a forest predicts on kiln's native trees ([`crate::native`]) rather than smartcore's own predict: true
    /// for every forest smartcore 0.7 fits; false for the linear models.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// smartcore's forest (for tests that read its trees).
    #[cfg(test)]
    pub(crate) fn forest(&self) -> Option<&Forest> {
        match &self.fitted {
            Learned::Forest(f) => Some(f),
            Learned::Linear(_) => None,
        }
    }

    /// The model's kind.
    pub fn kind(&self) -> SmartcoreKind {
        self.kind
    }

    /// The linear model's coefficients, one per feature in the model's order, in the raw feature space (logistic:
    /// on the log-odds of class 1); `None` for a forest.
    pub fn coefficients(&self) -> Option<&[f64]> {
        match &self.fitted {
            Learned::Linear(l) => Some(&l.coefficients),
            Learned::Forest(_) => None,
        }
    }

    /// The linear model's intercept (0 when fitted without one); `None` for a forest.
    pub fn intercept(&self) -> Option<f64> {
        match &self.fitted {
            Learned::Linear(l) => Some(l.intercept),
            Learned::Forest(_) => None,
        }
    }

    /// Per feature, in the model's order: `(name, importance)`. A forest's is its mean impurity decrease,
    /// normalized to sum to 1; a linear model's is `|coefficient|`, which depends on the feature's scale.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when smartcore fails.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64)>, ModelError> {
        let values = match &self.fitted {
            Learned::Linear(l) => l.coefficients.iter().map(|w| w.abs()).collect(),
            Learned::Forest(f) => {
                f.compute_feature_importances().map_err(|e| ModelError::Predict(format!("feature importance: {e}")))?
            }
        };
        if values.len() != self.feature_names.len() {
            return Err(ModelError::Predict(format!(
                "smartcore returned {} importances for {} features",
                values.len(),
                self.feature_names.len()
            )));
        }
        Ok(self.feature_names.iter().cloned().zip(values).collect())
    }

    /// The model as kiln's JSON (see the module docs), which [`SmartcoreModel::from_bytes`] reads back.
    ///
    /// # Errors
    /// [`ModelError::Train`] when serialization fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        match &self.fitted {
            Learned::Forest(f) => self.envelope_bytes(f.as_ref()),
            Learned::Linear(l) => self.envelope_bytes(l),
        }
    }

    fn envelope_bytes<M: Serialize>(&self, model: M) -> Result<Vec<u8>, ModelError> {
        let envelope = Envelope {
            format: FILE_FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            kind: self.kind,
            smartcore_version: SMARTCORE_VERSION.to_string(),
            feature_names: self.feature_names.clone(),
            model,
        };
        serde_json::to_vec(&envelope)
            .map_err(|e| ModelError::Train(format!("serializing the {} model: {e}", self.kind)))
    }

    /// Reads a model written by [`SmartcoreModel::to_bytes`].
    ///
    /// # Errors
    /// [`ModelError::Load`] when the bytes are not JSON, not a kiln smartcore model, of another format version or
    /// unknown kind, or when the model does not match its feature names.
    pub fn from_bytes(bytes: &[u8]) -> Result<SmartcoreModel, ModelError> {
        let load = |m: String| ModelError::Load(format!("smartcore model: {m}"));
        let header: Header = serde_json::from_slice(bytes).map_err(|e| load(format!("not a JSON object: {e}")))?;
        if header.format.as_deref() != Some(FILE_FORMAT) {
            return Err(load(format!(
                "format is {}, expected '{FILE_FORMAT}'",
                header.format.map_or_else(|| "missing".to_string(), |f| format!("'{f}'"))
            )));
        }
        if header.format_version != Some(FORMAT_VERSION) {
            return Err(load(format!(
                "format_version is {}, this kiln reads version {FORMAT_VERSION}",
                header.format_version.map_or_else(|| "missing".to_string(), |v| v.to_string())
            )));
        }
        let kind_name = header.kind.unwrap_or_default();
        let kind: SmartcoreKind = serde_json::from_value(Value::String(kind_name.clone())).map_err(|_| {
            load(format!(
                "unknown kind '{kind_name}' (known: random_forest_regressor, random_forest_classifier, linear, ridge, \
                 lasso, elastic_net, logistic)"
            ))
        })?;
        let body_err = |e: serde_json::Error| load(format!("the {kind} model does not parse: {e}"));
        let (feature_names, fitted, version) = if kind.is_forest() {
            let e: Envelope<Forest> = serde_json::from_slice(bytes).map_err(body_err)?;
            (e.feature_names, Learned::Forest(Box::new(e.model)), e.smartcore_version)
        } else {
            let e: Envelope<LinearFit> = serde_json::from_slice(bytes).map_err(body_err)?;
            (e.feature_names, Learned::Linear(e.model), e.smartcore_version)
        };
        if version != SMARTCORE_VERSION {
            return Err(load(format!("written by smartcore {version}, this kiln links smartcore {SMARTCORE_VERSION}")));
        }
        if feature_names.is_empty() {
            return Err(load("it names no features".to_string()));
        }
        let model = SmartcoreModel::new(kind, feature_names, fitted);
        let width = match &model.fitted {
            Learned::Linear(l) => l.coefficients.len(),
            // smartcore's forest reads `{}` as an unfitted forest; it cannot compute importances then
            Learned::Forest(f) => f
                .compute_feature_importances()
                .map_err(|_| load(format!("the {kind} model holds no fitted forest")))?
                .len(),
        };
        if width != model.feature_names.len() {
            return Err(load(format!(
                "the model has {width} features but names {} of them",
                model.feature_names.len()
            )));
        }
        Ok(model)
    }

    fn linear_value(&self, l: &LinearFit, row: &[f64]) -> f64 {
        let z = l.coefficients.iter().zip(row).map(|(w, v)| w * v).sum::<f64>() + l.intercept;
        if self.kind == SmartcoreKind::Logistic { 1.0 / (1.0 + (-z).exp()) } else { z }
    }

    /// One row's prediction; equal to [`Predictor::predict`] bit for bit.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is not the model's feature count or a value is not finite.
    pub fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        checks::check_width(row.len(), &self.feature_names)?;
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::Predict(format!(
                "input feature '{}' is {}; smartcore models take no missing or infinite values (impute them in the \
                 pipeline)",
                self.feature_names[j], row[j]
            )));
        }
        if let Some(forest) = &self.native {
            return Ok(forest.predict_row(row));
        }
        match &self.fitted {
            Learned::Linear(l) => Ok(self.linear_value(l, row)),
            Learned::Forest(f) => {
                let xm = dense(1, row.len(), row.to_vec()).map_err(ModelError::Predict)?;
                let out = f.predict(&xm).map_err(|e| ModelError::Predict(e.to_string()))?;
                match out.as_slice() {
                    [v] => Ok(*v),
                    other => Err(ModelError::Predict(format!("smartcore returned {} values for one row", other.len()))),
                }
            }
        }
    }
}

impl Predictor for SmartcoreModel {
    type Error = ModelError;

    /// One prediction per row: the regression value, or the probability of class 1 for the classifiers.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features, in order, or a value is not finite
    /// (naming its column and row).
    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        checks::check_input(x, &self.feature_names)?;
        check_features("input", x).map_err(ModelError::Predict)?;
        if x.n_rows == 0 {
            return Ok(Vec::new());
        }
        if let Some(forest) = &self.native {
            let mut out = vec![0.0; x.n_rows];
            forest.predict_into(&x.data, &mut out);
            return Ok(out);
        }
        self.predict_library_checked(x)
    }

    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
}

impl SmartcoreModel {
    /// [`Predictor::predict`] through smartcore itself (a linear model: kiln's own formula), never the native trees
    /// (for comparisons and benchmarks).
    ///
    /// # Errors
    /// As [`Predictor::predict`].
    pub fn predict_library(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        checks::check_input(x, &self.feature_names)?;
        check_features("input", x).map_err(ModelError::Predict)?;
        if x.n_rows == 0 {
            return Ok(Vec::new());
        }
        self.predict_library_checked(x)
    }

    /// The predictions of `x`, checked to hold the model's features, all finite, in at least one row.
    fn predict_library_checked(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        match &self.fitted {
            Learned::Linear(l) => Ok((0..x.n_rows).map(|i| self.linear_value(l, x.row(i))).collect()),
            Learned::Forest(f) => {
                let xm = dense(x.n_rows, x.n_cols(), x.data.clone()).map_err(ModelError::Predict)?;
                let out = f.predict(&xm).map_err(|e| ModelError::Predict(e.to_string()))?;
                if out.len() != x.n_rows {
                    return Err(ModelError::Predict(format!(
                        "smartcore returned {} values for {} rows",
                        out.len(),
                        x.n_rows
                    )));
                }
                Ok(out)
            }
        }
    }
}

/// How smartcore models sit in a bundle: kiln's own JSON, with kiln's own flavor (MLflow has no loader for them).
const FORMAT: ModelFormat = ModelFormat {
    name: "smartcore",
    model_file: "model.smartcore.json",
    flavor: "kiln_smartcore",
    flavor_checks: &[],
    pyfunc_loader: None,
    load: |bytes| Ok(FittedModel::new(SmartcoreModel::from_bytes(bytes)?)),
};

impl Checked for CheckedSmartcore {
    fn kind(&self) -> &'static str {
        self.kind_str()
    }

    fn params(&self) -> Vec<(String, String)> {
        self.as_params()
    }

    fn is_classifier(&self) -> bool {
        CheckedSmartcore::is_classifier(self)
    }

    fn importance_label(&self) -> &'static str {
        "importance"
    }

    fn without_early_stopping(&self) -> Result<ModelSpec, ModelError> {
        Ok(ModelSpec::new(self.clone()))
    }

    fn fit_model(&self, data: &FitData<'_>) -> Result<FittedModel, ModelError> {
        Ok(FittedModel::new(Estimator::fit(self, data.x, data.y, None)?))
    }
}

impl Fitted for SmartcoreModel {
    fn format(&self) -> &'static ModelFormat {
        &FORMAT
    }

    fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        SmartcoreModel::predict_row(self, row)
    }

    fn eval_curves(&self) -> &[EvalCurve] {
        &[]
    }

    /// One importance per feature (|coef| or the forest's); no split counts.
    fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError> {
        Ok(SmartcoreModel::feature_importance(self)?.into_iter().map(|(name, v)| (name, v, f64::NAN)).collect())
    }

    fn to_native_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.to_bytes()
    }

    /// Whether a forest predicts on the native trees; `None` for a linear model (no trees).
    fn native_trees(&self) -> Option<bool> {
        self.kind.is_forest().then(|| self.is_native())
    }

    fn flavor_fields(&self) -> Vec<(&'static str, String)> {
        vec![("smartcore_version", SMARTCORE_VERSION.into()), ("model", self.kind.as_str().into())]
    }
}

macro_rules! smartcore_kinds {
    ($($params:ty),+) => {$(
        impl KindParams for $params {
            const FORMAT: &'static ModelFormat = &FORMAT;

            fn check_kind(&self, _classification: bool) -> Result<ModelSpec, ModelError> {
                Ok(ModelSpec::new(self.check()?))
            }
        }
    )+};
}

smartcore_kinds!(LinearParams, RidgeParams, LassoParams, ElasticNetParams, LogisticParams);

impl KindParams for RandomForestParams {
    const FORMAT: &'static ModelFormat = &FORMAT;

    /// The task picks the forest: a classifier for a classification, a regressor otherwise.
    fn check_kind(&self, classification: bool) -> Result<ModelSpec, ModelError> {
        Ok(ModelSpec::new(self.check(classification)?))
    }
}

#[cfg(test)]
mod tests;
