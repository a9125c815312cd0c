//! Feature selection inside the pipeline: a YAML `selection:` list of steps ([`SelectorSpec`]) applied in order,
//! each seeing only the columns the previous one kept, fitted by [`Selector::fit`] into a [`FittedSelection`] (the
//! kept column names plus every score, for the model bundle and the run's artifacts).
//!
//! Key decisions:
//! - Selection is learned from the rows the caller passes and nothing else; the caller passes the training part,
//!   so selection is relearned at every retrain and every walk-forward fold and never sees validation or test rows.
//! - Scores and selections are scikit-learn's: `VarianceThreshold`, `SelectKBest` with `f_regression`,
//!   `f_classif`, `chi2` and `mutual_info_*` (same k-NN estimator and, for a given seed, the same noise),
//!   `SelectFromModel`, `RFE` and `RFECV`, including their tie-breaking.
//! - Model-based steps take the model through the [`ImportanceModel`] trait; this crate knows no model library.
//!   Its errors carry the stable code of their cause ([`ImportanceError`]).
//! - `rfecv` folds with kiln-eval's splitters and scores with kiln-eval's [`Metric`]s, so a `scoring:` value means
//!   the same metric as everywhere else in kiln.
//!
//! It does not impute, scale or encode (that is preprocessing), and refuses NaN where scikit-learn does (the
//! univariate scores); `variance_threshold` ignores NaN as scikit-learn's does.

mod cv;
mod mutual_info;
mod stats;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use kiln_domain::{Code, Matrix};
use kiln_eval::{EvalError, Metric, pairwise_sum};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::FeatureError;
pub use cv::{CvKind, cv_folds};
/// The task decides which scores make sense and how `rfecv` stratifies; it is kiln-eval's, re-exported for the
/// callers of the selectors.
pub use kiln_eval::Task;

/// One entry of the YAML `selection:` list. Externally tagged, so YAML reads `- k_best: {k: 5, score: f_regression}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SelectorSpec {
    /// keep features whose population variance (NaN ignored) is above `threshold`; with the default 0, a feature
    /// is dropped when it is constant (scikit-learn's `VarianceThreshold`, which also compares the peak-to-peak
    /// range then)
    VarianceThreshold {
        #[serde(default)]
        threshold: f64,
    },
    /// keep the `k` best features by a univariate score (scikit-learn's `SelectKBest`: a stable ascending sort by
    /// score, the last `k` kept, so among tied scores the later column wins; NaN scores rank lowest).
    /// `n_neighbors` (default 3) and `seed` (default 0, scikit-learn's `random_state`) apply to `mutual_info` only
    KBest {
        k: usize,
        score: KBestScore,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        n_neighbors: Option<usize>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seed: Option<u32>,
    },
    /// keep features whose model importance is `>= threshold` (scikit-learn's `SelectFromModel`); with
    /// `max_features`, at most that many, the most important first (ties: the earlier column)
    Importance {
        #[serde(default)]
        threshold: ImportanceThreshold,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_features: Option<usize>,
    },
    /// recursive feature elimination (scikit-learn's `RFE`): fit, drop the `step` least important features (ties:
    /// the earlier column), refit, until `n_features` remain
    Rfe {
        n_features: usize,
        #[serde(default = "one")]
        step: usize,
    },
    /// `rfe` with the number of features chosen by cross-validation (scikit-learn's `RFECV`): in each of `cv`
    /// folds, eliminate down to `min_features` scoring every stage on the validation rows by `scoring` (a metric
    /// of the task, as named in YAML: `rmse`, `roc_auc`, ...); keep the count with the best total score (ties: the
    /// fewest features), then eliminate to it on all rows given
    Rfecv {
        #[serde(default = "one")]
        min_features: usize,
        #[serde(default = "one")]
        step: usize,
        cv: usize,
        scoring: Metric,
    },
}

fn one() -> usize {
    1
}

/// The univariate score of `k_best`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KBestScore {
    /// F statistic of a univariate linear regression (regression)
    FRegression,
    /// one-way ANOVA F statistic across the classes (classification)
    FClassif,
    /// chi-squared statistic of non-negative features against the classes (classification)
    Chi2,
    /// k-NN mutual information; the task picks the regression or classification estimator
    MutualInfo,
}

impl KBestScore {
    /// The snake_case name, as in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            KBestScore::FRegression => "f_regression",
            KBestScore::FClassif => "f_classif",
            KBestScore::Chi2 => "chi2",
            KBestScore::MutualInfo => "mutual_info",
        }
    }

    /// The task the score requires, `None` when it works for both.
    pub fn task(self) -> Option<Task> {
        match self {
            KBestScore::FRegression => Some(Task::Regression),
            KBestScore::FClassif | KBestScore::Chi2 => Some(Task::Classification),
            KBestScore::MutualInfo => None,
        }
    }
}

/// The importance threshold of an `importance` step: a number, or the `mean` (default) or `median` of the
/// importances. YAML: `threshold: 0.01`, `threshold: median`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum ImportanceThreshold {
    #[default]
    Mean,
    Median,
    Value(f64),
}

impl Serialize for ImportanceThreshold {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ImportanceThreshold::Mean => serializer.serialize_str("mean"),
            ImportanceThreshold::Median => serializer.serialize_str("median"),
            ImportanceThreshold::Value(v) => serializer.serialize_f64(*v),
        }
    }
}

impl<'de> Deserialize<'de> for ImportanceThreshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ThresholdVisitor;
        impl Visitor<'_> for ThresholdVisitor {
            type Value = ImportanceThreshold;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, `mean` or `median`")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(ImportanceThreshold::Value(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(ImportanceThreshold::Value(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ImportanceThreshold::Value(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "mean" => Ok(ImportanceThreshold::Mean),
                    "median" => Ok(ImportanceThreshold::Median),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(ThresholdVisitor)
    }
}

/// What a model-based step (`importance`, `rfe`, `rfecv`) needs from a model; `kiln-train` implements it with the
/// real estimators. Both methods fit a fresh model on the rows given: one call, one independent fit.
pub trait ImportanceModel {
    /// Fits on `x`/`y` and returns one finite, non-negative importance per column of `x`, in column order (a tree
    /// model's gain or split importance; `|coef|` for a linear model on standardized features).
    ///
    /// # Errors
    /// An [`ImportanceError`] with the stable code of the cause and a message saying why the model could not be
    /// fitted.
    fn fit_importance(&self, x: &Matrix, y: &[f64]) -> Result<Vec<f64>, ImportanceError>;

    /// Fits on the training rows and returns the importances (as [`ImportanceModel::fit_importance`]) together
    /// with `scoring` computed on the validation rows, in the metric's natural units (an rmse, not its negative);
    /// [`Metric::compute`] computes it from the validation labels and predictions.
    ///
    /// # Errors
    /// An [`ImportanceError`] with the stable code of the cause and a message saying why the model could not be
    /// fitted or scored (an [`EvalError`] converts into one).
    fn fit_score(
        &self,
        train: (&Matrix, &[f64]),
        valid: (&Matrix, &[f64]),
        scoring: Metric,
    ) -> Result<ScoredFit, ImportanceError>;
}

/// Why an [`ImportanceModel`] could not fit or score: the stable [`Code`] of the cause (`model_train` for a fit
/// that failed, `data_shape` for labels a metric refuses, ...) and its message. The selector wraps it into
/// [`FeatureError::Model`], which keeps the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ImportanceError {
    code: Code,
    message: String,
}

impl ImportanceError {
    /// An error with the code of its cause and a message (lowercase, no trailing period).
    pub fn new(code: Code, message: impl Into<String>) -> ImportanceError {
        ImportanceError { code, message: message.into() }
    }

    /// The stable code of the cause.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message, without the step that met it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<EvalError> for ImportanceError {
    fn from(e: EvalError) -> ImportanceError {
        ImportanceError::new(e.code(), e.to_string())
    }
}

/// The result of [`ImportanceModel::fit_score`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredFit {
    pub importances: Vec<f64>,
    pub score: f64,
}

/// The selection steps of an experiment, applied in order (the YAML `selection:` list itself; empty keeps every
/// feature).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Selector {
    pub steps: Vec<SelectorSpec>,
}

/// Everything a fitted selection learned; stored in the model bundle and logged as a run artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedSelection {
    /// the columns the selection was fitted on, in order
    pub input: Vec<String>,
    /// the columns kept, in input order
    pub selected: Vec<String>,
    /// one entry per step and per feature that reached that step
    pub scores: Vec<FeatureScore>,
    /// `rfecv` only: the validation scores of every feature count
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cv_scores: Vec<CvScore>,
}

/// The score one step gave one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureScore {
    pub name: String,
    /// the step's criterion: the variance, the univariate score, or the model importance (for `rfe`/`rfecv`, from
    /// the last fit the feature took part in). NaN (undefined, e.g. `f_classif` of a constant feature) is stored
    /// as `null`; an infinite score as `±f64::MAX`
    #[serde(with = "nan_as_null")]
    pub score: f64,
    /// the p-value of `f_regression`, `f_classif` and `chi2`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// `rfe`/`rfecv`: scikit-learn's `ranking_` (1 = kept, 2 = eliminated last, ...)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    pub kept: bool,
    /// the key path of the step, e.g. `selection[1].k_best`
    pub step: String,
}

/// The cross-validated score of one feature count in `rfecv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CvScore {
    pub step: String,
    pub n_features: usize,
    /// the metric on each fold's validation rows, in its natural units
    pub fold_scores: Vec<f64>,
    pub mean: f64,
    /// whether this count was chosen
    pub chosen: bool,
}

mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() { serializer.serialize_none() } else { serializer.serialize_f64(*v) }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
    }
}

// ---------------------------------------------------------------------------------------------------------------
// the univariate scores, public for callers that want them without a selector
// ---------------------------------------------------------------------------------------------------------------

/// scikit-learn's `f_regression(x, y)` (`center=True`): the F statistic of each column's univariate linear
/// regression on `y` and its p-value. A constant column scores 0 (p = 1), a perfectly correlated one `f64::MAX`
/// (p = 0), as scikit-learn's `force_finite`.
///
/// # Errors
/// [`FeatureError::InvalidValue`] for a non-finite value, [`FeatureError::Selection`] when `y` does not match the
/// rows, [`FeatureError::NotEnoughRows`] below 3 rows.
pub fn f_regression(x: &Matrix, y: &[f64]) -> Result<(Vec<f64>, Vec<f64>), FeatureError> {
    stats::f_regression_for(x, y, "f_regression")
}

/// scikit-learn's `f_classif(x, y)`: the one-way ANOVA F statistic of each column across the classes of `y` and its
/// p-value; NaN for a constant column.
///
/// # Errors
/// As [`f_regression`], and [`FeatureError::Selection`] for a target with fewer than 2 classes.
pub fn f_classif(x: &Matrix, y: &[f64]) -> Result<(Vec<f64>, Vec<f64>), FeatureError> {
    stats::f_classif_for(x, y, "f_classif")
}

/// scikit-learn's `chi2(x, y)`: the chi-squared statistic of each non-negative column against the classes of `y`
/// and its p-value.
///
/// # Errors
/// As [`f_classif`], and [`FeatureError::InvalidValue`] naming the first column with a negative value.
pub fn chi2(x: &Matrix, y: &[f64]) -> Result<(Vec<f64>, Vec<f64>), FeatureError> {
    stats::chi2_for(x, y, "chi2")
}

/// scikit-learn's `mutual_info_regression(x, y, n_neighbors=n_neighbors, random_state=seed)`, in nats.
///
/// # Errors
/// As [`f_regression`]; [`FeatureError::NotEnoughRows`] unless there are more rows than `n_neighbors`.
pub fn mutual_info_regression(x: &Matrix, y: &[f64], n_neighbors: usize, seed: u32) -> Result<Vec<f64>, FeatureError> {
    mutual_info::mutual_info_for(x, y, false, n_neighbors, seed, "mutual_info_regression")
}

/// scikit-learn's `mutual_info_classif(x, y, n_neighbors=n_neighbors, random_state=seed)` with every column
/// continuous, in nats.
///
/// # Errors
/// As [`mutual_info_regression`], and [`FeatureError::Selection`] when no class has two rows.
pub fn mutual_info_classif(x: &Matrix, y: &[f64], n_neighbors: usize, seed: u32) -> Result<Vec<f64>, FeatureError> {
    mutual_info::mutual_info_for(x, y, true, n_neighbors, seed, "mutual_info_classif")
}

// ---------------------------------------------------------------------------------------------------------------
// the selector
// ---------------------------------------------------------------------------------------------------------------

impl SelectorSpec {
    /// The snake_case name of the variant, as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            SelectorSpec::VarianceThreshold { .. } => "variance_threshold",
            SelectorSpec::KBest { .. } => "k_best",
            SelectorSpec::Importance { .. } => "importance",
            SelectorSpec::Rfe { .. } => "rfe",
            SelectorSpec::Rfecv { .. } => "rfecv",
        }
    }

    /// Whether the step fits a model.
    pub fn needs_model(&self) -> bool {
        matches!(self, SelectorSpec::Importance { .. } | SelectorSpec::Rfe { .. } | SelectorSpec::Rfecv { .. })
    }

    fn validate(&self, index: usize, task: Task) -> Result<(), FeatureError> {
        let at = |field: &str| format!("selection[{index}].{}.{field}", self.kind());
        let at_least = |value: usize, min: usize, field: &str| {
            if value < min {
                Err(FeatureError::spec(at(field), format!("must be >= {min}, got {value}")))
            } else {
                Ok(())
            }
        };
        match self {
            SelectorSpec::VarianceThreshold { threshold } => {
                if !(threshold.is_finite() && *threshold >= 0.0) {
                    return Err(FeatureError::spec(
                        at("threshold"),
                        format!("must be a finite number >= 0, got {threshold}"),
                    ));
                }
                Ok(())
            }
            SelectorSpec::KBest { k, score, n_neighbors, seed } => {
                at_least(*k, 1, "k")?;
                if let Some(needed) = score.task()
                    && needed != task
                {
                    return Err(FeatureError::spec(
                        at("score"),
                        format!("{} needs a {} task, but this is {}", score.as_str(), needed.as_str(), task.as_str()),
                    ));
                }
                if *score != KBestScore::MutualInfo {
                    let field = if n_neighbors.is_some() {
                        Some("n_neighbors")
                    } else if seed.is_some() {
                        Some("seed")
                    } else {
                        None
                    };
                    if let Some(field) = field {
                        return Err(FeatureError::spec(
                            at(field),
                            format!("applies to score mutual_info only, not {}", score.as_str()),
                        ));
                    }
                }
                if let Some(n) = n_neighbors {
                    at_least(*n, 1, "n_neighbors")?;
                }
                Ok(())
            }
            SelectorSpec::Importance { threshold, max_features } => {
                if let ImportanceThreshold::Value(v) = threshold
                    && !v.is_finite()
                {
                    return Err(FeatureError::spec(at("threshold"), format!("must be finite, got {v}")));
                }
                if let Some(m) = max_features {
                    at_least(*m, 1, "max_features")?;
                }
                Ok(())
            }
            SelectorSpec::Rfe { n_features, step } => {
                at_least(*n_features, 1, "n_features")?;
                at_least(*step, 1, "step")
            }
            SelectorSpec::Rfecv { min_features, step, cv, scoring } => {
                at_least(*min_features, 1, "min_features")?;
                at_least(*step, 1, "step")?;
                at_least(*cv, 2, "cv")?;
                if scoring.task() != task {
                    return Err(FeatureError::spec(
                        at("scoring"),
                        format!(
                            "{} is a {} metric, but this is {}",
                            scoring.as_str(),
                            scoring.task().as_str(),
                            task.as_str()
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// What one step decided about the features that reached it.
struct StepOutcome {
    keep: Vec<bool>,
    scores: Vec<f64>,
    p_values: Vec<f64>,
    ranks: Option<Vec<usize>>,
    cv: Vec<CvScore>,
}

impl StepOutcome {
    fn new(keep: Vec<bool>, scores: Vec<f64>) -> StepOutcome {
        let p_values = vec![f64::NAN; keep.len()];
        StepOutcome { keep, scores, p_values, ranks: None, cv: Vec::new() }
    }
}

impl Selector {
    /// The steps, in the order they run.
    pub fn new(steps: Vec<SelectorSpec>) -> Selector {
        Selector { steps }
    }

    /// Whether any step fits a model (the caller must then pass one to [`Selector::fit`]).
    pub fn needs_model(&self) -> bool {
        self.steps.iter().any(SelectorSpec::needs_model)
    }

    /// Checks the steps without looking at data.
    ///
    /// # Errors
    /// [`FeatureError::Spec`] naming the key path at fault, e.g. `selection[1].k_best.k: must be >= 1, got 0` or
    /// `selection[0].k_best.score: chi2 needs a classification task, but this is regression`.
    pub fn validate(&self, task: Task) -> Result<(), FeatureError> {
        for (i, step) in self.steps.iter().enumerate() {
            step.validate(i, task)?;
        }
        Ok(())
    }

    /// Learns the selection from `x`/`y`, which must be the training rows only. `cv` says how `rfecv` folds the
    /// rows; `model` is required when a step [needs one](Selector::needs_model).
    ///
    /// # Errors
    /// [`FeatureError::Spec`] for an invalid step or a missing model; [`FeatureError::Selection`] when a step cannot
    /// run on the features that reach it (e.g. `selection[1].k_best.k: is 8, but only 6 features reach this step`)
    /// or leaves none; [`FeatureError::InvalidValue`] for a NaN a score refuses or a negative value for `chi2`;
    /// [`FeatureError::Model`] when the model fails or returns unusable importances or scores.
    pub fn fit(
        &self,
        x: &Matrix,
        y: &[f64],
        task: Task,
        cv: CvKind,
        model: Option<&dyn ImportanceModel>,
    ) -> Result<FittedSelection, FeatureError> {
        self.validate(task)?;
        stats::check_xy(x, y, "selection", true)?;
        let mut seen = HashMap::new();
        for (j, name) in x.names.iter().enumerate() {
            if let Some(first) = seen.insert(name.as_str(), j) {
                return Err(FeatureError::Selection {
                    step: "selection".into(),
                    reason: format!("the column '{name}' appears twice (columns {first} and {j})"),
                });
            }
        }
        let mut active: Vec<usize> = (0..x.n_cols()).collect();
        let mut scores = Vec::new();
        let mut cv_scores = Vec::new();
        for (i, spec) in self.steps.iter().enumerate() {
            let path = format!("selection[{i}].{}", spec.kind());
            let model = match (spec.needs_model(), model) {
                (true, None) => {
                    return Err(FeatureError::spec(path, "needs a model, but none was given to the selector"));
                }
                (_, model) => model,
            };
            let sub = columns(x, &active);
            let outcome = run_step(spec, &path, &sub, y, task, cv, model)?;
            for (j, &col) in active.iter().enumerate() {
                let p = outcome.p_values[j];
                scores.push(FeatureScore {
                    name: x.names[col].clone(),
                    score: outcome.scores[j].clamp(f64::MIN, f64::MAX),
                    p_value: if p.is_nan() { None } else { Some(p) },
                    rank: outcome.ranks.as_ref().map(|r| r[j]),
                    kept: outcome.keep[j],
                    step: path.clone(),
                });
            }
            cv_scores.extend(outcome.cv);
            let next: Vec<usize> =
                active.iter().zip(&outcome.keep).filter(|(_, keep)| **keep).map(|(c, _)| *c).collect();
            if next.is_empty() {
                return Err(FeatureError::Selection {
                    step: path,
                    reason: format!("no feature is left of the {} that reached this step", active.len()),
                });
            }
            active = next;
        }
        let selected = active.iter().map(|&c| x.names[c].clone()).collect();
        Ok(FittedSelection { input: x.names.clone(), selected, scores, cv_scores })
    }
}

fn run_step(
    spec: &SelectorSpec,
    path: &str,
    x: &Matrix,
    y: &[f64],
    task: Task,
    cv: CvKind,
    model: Option<&dyn ImportanceModel>,
) -> Result<StepOutcome, FeatureError> {
    let n = x.n_cols();
    let too_many = |field: &str, value: usize| FeatureError::Selection {
        step: format!("{path}.{field}"),
        reason: format!("is {value}, but only {n} features reach this step"),
    };
    match (spec, model) {
        (SelectorSpec::VarianceThreshold { threshold }, _) => Ok(variance_threshold(x, *threshold)),
        (SelectorSpec::KBest { k, score, n_neighbors, seed }, _) => {
            if *k > n {
                return Err(too_many("k", *k));
            }
            let (scores, p_values) = match score {
                KBestScore::FRegression => stats::f_regression_for(x, y, path)?,
                KBestScore::FClassif => stats::f_classif_for(x, y, path)?,
                KBestScore::Chi2 => stats::chi2_for(x, y, path)?,
                KBestScore::MutualInfo => {
                    let discrete = task == Task::Classification;
                    let mi = mutual_info::mutual_info_for(
                        x,
                        y,
                        discrete,
                        n_neighbors.unwrap_or(3),
                        seed.unwrap_or(0),
                        path,
                    )?;
                    let p = vec![f64::NAN; mi.len()];
                    (mi, p)
                }
            };
            let keep = top_k(&scores, *k);
            Ok(StepOutcome { p_values, ..StepOutcome::new(keep, scores) })
        }
        (SelectorSpec::Importance { threshold, max_features }, Some(model)) => {
            if let Some(m) = max_features
                && *m > n
            {
                return Err(too_many("max_features", *m));
            }
            let importances = model.fit_importance(x, y).map_err(|cause| model_failed(path, cause))?;
            check_importances(&importances, x, path)?;
            let cut = match threshold {
                ImportanceThreshold::Mean => pairwise_sum(&importances) / n as f64,
                ImportanceThreshold::Median => median(&importances),
                ImportanceThreshold::Value(v) => *v,
            };
            let mut keep = vec![max_features.is_none(); n];
            if let Some(m) = max_features {
                for j in descending(&importances).into_iter().take(*m) {
                    keep[j] = true;
                }
            }
            for (k, imp) in keep.iter_mut().zip(&importances) {
                *k = *k && *imp >= cut;
            }
            Ok(StepOutcome::new(keep, importances))
        }
        (SelectorSpec::Rfe { n_features, step }, Some(model)) => {
            if *n_features > n {
                return Err(too_many("n_features", *n_features));
            }
            let fit = |features: &[usize]| {
                let sub = columns(x, features);
                let importances = model.fit_importance(&sub, y).map_err(|cause| model_failed(path, cause))?;
                check_importances(&importances, &sub, path)?;
                Ok(importances)
            };
            let e = eliminate(n, *n_features, *step, fit)?;
            Ok(StepOutcome { ranks: Some(e.ranking), ..StepOutcome::new(e.support, e.importances) })
        }
        (SelectorSpec::Rfecv { min_features, step, cv: k, scoring }, Some(model)) => {
            if *min_features > n {
                return Err(too_many("min_features", *min_features));
            }
            rfecv(x, y, task, cv, model, path, (*min_features, *step, *k, *scoring))
        }
        (_, None) => Err(FeatureError::spec(path, "needs a model, but none was given to the selector")),
    }
}

fn model_failed(path: &str, cause: ImportanceError) -> FeatureError {
    FeatureError::Model { step: path.to_string(), cause }
}

/// A model whose output the selector cannot use (importances of the wrong count or sign, a score that is not
/// finite): the fit went wrong, so the code is `model_train`.
fn model_error(path: &str, message: String) -> FeatureError {
    model_failed(path, ImportanceError::new(Code::ModelTrain, message))
}

fn check_importances(importances: &[f64], x: &Matrix, path: &str) -> Result<(), FeatureError> {
    if importances.len() != x.n_cols() {
        return Err(model_error(
            path,
            format!("it returned {} importances for {} features", importances.len(), x.n_cols()),
        ));
    }
    match importances.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        Some(j) => Err(model_error(
            path,
            format!("the importance of '{}' is {}, not a finite number >= 0", x.names[j], importances[j]),
        )),
        None => Ok(()),
    }
}

/// `VarianceThreshold`: numpy's `nanvar` per column; with threshold 0 the smaller of it and the peak-to-peak range
/// (NaN when the column holds a NaN), so that a constant column scores exactly 0.
fn variance_threshold(x: &Matrix, threshold: f64) -> StepOutcome {
    let mut scores = Vec::with_capacity(x.n_cols());
    for j in 0..x.n_cols() {
        let col = x.column(j);
        let present: Vec<f64> = col.iter().copied().filter(|v| !v.is_nan()).collect();
        let var = if present.is_empty() {
            f64::NAN
        } else {
            let n = present.len() as f64;
            let mean = pairwise_sum(&present) / n;
            let squares: Vec<f64> = present.iter().map(|v| (v - mean) * (v - mean)).collect();
            pairwise_sum(&squares) / n
        };
        let score = if threshold == 0.0 {
            let ptp = if present.len() < col.len() {
                f64::NAN
            } else {
                let max = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let min = col.iter().copied().fold(f64::INFINITY, f64::min);
                max - min
            };
            match (var.is_nan(), ptp.is_nan()) {
                (true, _) => ptp,
                (false, true) => var,
                (false, false) => var.min(ptp),
            }
        } else {
            var
        };
        scores.push(score);
    }
    let keep = scores.iter().map(|s| *s > threshold).collect();
    StepOutcome::new(keep, scores)
}

/// `SelectKBest`'s mask: a stable ascending sort of the scores (NaN as the lowest), the last `k` kept.
fn top_k(scores: &[f64], k: usize) -> Vec<bool> {
    let clean: Vec<f64> = scores.iter().map(|s| if s.is_nan() { f64::MIN } else { *s }).collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| clean[a].total_cmp(&clean[b]));
    let mut keep = vec![false; scores.len()];
    for &j in &order[scores.len() - k..] {
        keep[j] = true;
    }
    keep
}

/// Indices by descending value, ties in index order (numpy's stable `argsort(-v)`).
fn descending(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    order
}

/// numpy's `median`: the middle value, or the mean of the two middle values.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The columns `cols` of `x`, in that order.
fn columns(x: &Matrix, cols: &[usize]) -> Matrix {
    let mut data = Vec::with_capacity(x.n_rows * cols.len());
    for i in 0..x.n_rows {
        let row = x.row(i);
        data.extend(cols.iter().map(|&j| row[j]));
    }
    Matrix { names: cols.iter().map(|&j| x.names[j].clone()).collect(), data, n_rows: x.n_rows }
}

/// The rows `rows` of `x`, in that order.
fn rows(x: &Matrix, rows: &[usize]) -> Matrix {
    let mut data = Vec::with_capacity(rows.len() * x.n_cols());
    for &i in rows {
        data.extend_from_slice(x.row(i));
    }
    Matrix { names: x.names.clone(), data, n_rows: rows.len() }
}

/// The outcome of recursive elimination over `n` features.
struct Elimination {
    support: Vec<bool>,
    ranking: Vec<usize>,
    /// each feature's importance in the last fit it took part in
    importances: Vec<f64>,
}

/// scikit-learn's `RFE._fit`: while more than `target` features remain, fit on them and drop the
/// `min(step, remaining - target)` least important (a stable ascending sort, so ties drop the earlier column);
/// then fit once more on the survivors. `fit` gets the surviving column indices and returns their importances.
fn eliminate(
    n: usize,
    target: usize,
    step: usize,
    mut fit: impl FnMut(&[usize]) -> Result<Vec<f64>, FeatureError>,
) -> Result<Elimination, FeatureError> {
    let mut support = vec![true; n];
    let mut ranking = vec![1usize; n];
    let mut last = vec![f64::NAN; n];
    loop {
        let features: Vec<usize> = (0..n).filter(|&j| support[j]).collect();
        let importances = fit(&features)?;
        for (&j, &imp) in features.iter().zip(&importances) {
            last[j] = imp;
        }
        if features.len() <= target {
            break;
        }
        let mut order: Vec<usize> = (0..features.len()).collect();
        order.sort_by(|&a, &b| importances[a].total_cmp(&importances[b]));
        let drop = step.min(features.len() - target);
        for &o in &order[..drop] {
            support[features[o]] = false;
        }
        for (rank, kept) in ranking.iter_mut().zip(&support) {
            if !kept {
                *rank += 1;
            }
        }
    }
    Ok(Elimination { support, ranking, importances: last })
}

/// scikit-learn's `RFECV.fit`: per fold, eliminate from all features down to `min_features`, scoring every stage
/// on the fold's validation rows; sum the (higher-is-better) scores over folds per feature count, take the best
/// count (ties: the fewest features), and eliminate down to it on all rows.
fn rfecv(
    x: &Matrix,
    y: &[f64],
    task: Task,
    cv: CvKind,
    model: &dyn ImportanceModel,
    path: &str,
    (min_features, step, k, scoring): (usize, usize, usize, Metric),
) -> Result<StepOutcome, FeatureError> {
    let n = x.n_cols();
    let folds = cv::folds_for(cv, task, y, k, &format!("{path}.cv"))?;
    let mut per_fold: Vec<Vec<(usize, f64)>> = Vec::with_capacity(folds.len());
    for fold in &folds {
        let (x_train, x_valid) = (rows(x, &fold.train), rows(x, &fold.test));
        let y_train: Vec<f64> = fold.train.iter().map(|&i| y[i]).collect();
        let y_valid: Vec<f64> = fold.test.iter().map(|&i| y[i]).collect();
        let mut stages = Vec::new();
        eliminate(n, min_features, step, |features| {
            let (train, valid) = (columns(&x_train, features), columns(&x_valid, features));
            let fit = model
                .fit_score((&train, &y_train), (&valid, &y_valid), scoring)
                .map_err(|cause| model_failed(path, cause))?;
            check_importances(&fit.importances, &train, path)?;
            if !fit.score.is_finite() {
                return Err(model_error(
                    path,
                    format!("its {} on a validation fold is {}", scoring.as_str(), fit.score),
                ));
            }
            stages.push((features.len(), fit.score));
            Ok(fit.importances)
        })?;
        per_fold.push(stages);
    }
    let counts: Vec<usize> = per_fold.first().map(|s| s.iter().map(|c| c.0).collect()).unwrap_or_default();
    let sign = if scoring.higher_is_better() { 1.0 } else { -1.0 };
    let totals: Vec<f64> =
        (0..counts.len()).map(|s| per_fold.iter().fold(0.0, |acc, fold| acc + sign * fold[s].1)).collect();
    // stages run from most to fewest features; the first maximum from the fewest end wins
    let mut best = counts.len() - 1;
    for s in (0..counts.len()).rev() {
        if totals[s] > totals[best] {
            best = s;
        }
    }
    let chosen = counts[best];
    let cv_scores = counts
        .iter()
        .enumerate()
        .map(|(s, &n_features)| {
            let fold_scores: Vec<f64> = per_fold.iter().map(|fold| fold[s].1).collect();
            let mean = fold_scores.iter().sum::<f64>() / fold_scores.len() as f64;
            CvScore { step: path.to_string(), n_features, fold_scores, mean, chosen: n_features == chosen }
        })
        .collect();
    let fit = |features: &[usize]| {
        let sub = columns(x, features);
        let importances = model.fit_importance(&sub, y).map_err(|cause| model_failed(path, cause))?;
        check_importances(&importances, &sub, path)?;
        Ok(importances)
    };
    let e = eliminate(n, chosen, step, fit)?;
    Ok(StepOutcome { ranks: Some(e.ranking), cv: cv_scores, ..StepOutcome::new(e.support, e.importances) })
}

impl FittedSelection {
    /// The position in `names` of every selected column, in selected order: resolve once, then pick values from
    /// each row (the serving path).
    ///
    /// # Errors
    /// [`FeatureError::MissingColumn`] naming the first selected column `names` lacks.
    pub fn indices(&self, names: &[String]) -> Result<Vec<usize>, FeatureError> {
        let position: HashMap<&str, usize> = names.iter().enumerate().map(|(j, n)| (n.as_str(), j)).collect();
        self.selected
            .iter()
            .map(|name| {
                position.get(name.as_str()).copied().ok_or_else(|| FeatureError::MissingColumn {
                    needed_by: "the fitted feature selection".into(),
                    column: name.clone(),
                })
            })
            .collect()
    }

    /// The selected columns of `x`, in the order they had when the selection was fitted.
    ///
    /// # Errors
    /// As [`FittedSelection::indices`].
    pub fn apply(&self, x: &Matrix) -> Result<Matrix, FeatureError> {
        Ok(columns(x, &self.indices(&x.names)?))
    }
}
