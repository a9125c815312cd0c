//! What every model kind provides, and the two handles the rest of kiln holds: [`ModelSpec`] (checked
//! hyperparameters that can fit) and [`FittedModel`] (a fitted model that predicts and is written to a bundle).
//!
//! Key decision: a family implements two small traits, [`Checked`] and [`Fitted`], and describes its bundle file
//! once as a [`ModelFormat`]; nothing outside the family's module matches on the kind. The kinds an experiment can
//! name are the rows of the one table in `kinds.rs` ([`crate::ModelConfig`]). A fit takes [`FitData`], so a kind
//! that needs more than the feature matrix (a statistical forecaster reading the raw series) adds a field there
//! instead of changing every family's signature.

use std::fmt;
use std::sync::Arc;

use kiln_domain::{Matrix, Predictor};

use crate::ModelError;
use crate::curve::EvalCurve;

/// How one family's fitted models sit in a bundle: the `model_kind` of `kiln/metadata.json`, the native model file,
/// the MLflow flavor naming it, and the loader that reads it back.
#[derive(Debug)]
pub struct ModelFormat {
    /// the bundle's `model_kind` (`lightgbm`, `xgboost`, `smartcore`)
    pub name: &'static str,
    /// the native model's file name inside the bundle
    pub model_file: &'static str,
    /// the `MLmodel` flavor whose `data` is the model file
    pub flavor: &'static str,
    /// fields of that flavor a reader checks besides `data`, with their required values
    pub flavor_checks: &'static [(&'static str, &'static str)],
    /// the MLflow flavor's own `python_function` loader (over the encoded columns), which bundles written before
    /// kiln's loader used; still accepted when reading them
    pub pyfunc_loader: Option<&'static str>,
    /// reads the native file's bytes back into a model
    pub load: fn(&[u8]) -> Result<FittedModel, ModelError>,
}

impl ModelFormat {
    /// The bundle's `model_kind`.
    pub fn as_str(&self) -> &'static str {
        self.name
    }

    /// The native model's file name inside the bundle.
    pub fn model_file(&self) -> &'static str {
        self.model_file
    }
}

/// The rows a fit learns from. The validation rows only drive early stopping; they are never the test rows.
#[derive(Debug, Clone, Copy)]
pub struct FitData<'a> {
    pub x: &'a Matrix,
    pub y: &'a [f64],
    pub valid: Option<(&'a Matrix, &'a [f64])>,
    /// what a kind may keep between fits on the same rows (LightGBM's binned datasets); ignored by the others
    pub cache: Option<&'a crate::FitCache>,
}

/// Checked hyperparameters of one kind: what the training use case needs to log, fit and describe a model.
pub trait Checked: fmt::Debug + Send + Sync {
    /// The `model.kind` of the experiment file (`lightgbm`, `random_forest`, ...).
    fn kind(&self) -> &'static str;

    /// Every hyperparameter as logged (MLflow params and the bundle's metadata), in a fixed order.
    fn params(&self) -> Vec<(String, String)>;

    /// Whether the fitted model outputs the probability of class 1.
    fn is_classifier(&self) -> bool;

    /// What the model's feature importance measures, for the chart's axis.
    fn importance_label(&self) -> &'static str;

    /// The same model without early stopping, for fits that have no validation part (the selectors' folds).
    ///
    /// # Errors
    /// Never in practice: the parameters were checked already.
    fn without_early_stopping(&self) -> Result<ModelSpec, ModelError>;

    /// The same model on `threads` library threads, where kiln chose the thread count (the experiment did not fix
    /// it); `None` for a fixed count or a kind without threads.
    fn with_threads(&self, _threads: usize) -> Option<ModelSpec> {
        None
    }

    /// Fits on `data`.
    ///
    /// # Errors
    /// The family's error when the data does not suit the model or the library fails.
    fn fit_model(&self, data: &FitData<'_>) -> Result<FittedModel, ModelError>;
}

/// A fitted model of one family: a [`Predictor`] (one output per row, its feature names) and what kiln needs
/// besides.
pub trait Fitted: Predictor<Error = ModelError> + fmt::Debug + Send + Sync {
    /// How the model is written to a bundle.
    fn format(&self) -> &'static ModelFormat;

    /// One row's prediction through the model's fastest path; equal to [`Predictor::predict`] bit for bit.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is wrong.
    fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError>;

    /// The library's metric during the fit ([`EvalCurve`]); empty when the library has none or the model was read
    /// from a bundle.
    fn eval_curves(&self) -> &[EvalCurve] {
        &[]
    }

    /// The boosting round the fit stopped at; `None` for a model without rounds.
    fn best_iteration(&self) -> Option<usize> {
        None
    }

    /// `(name, importance, split count)` per feature (NaN split counts where the model has none).
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the library fails.
    fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError>;

    /// The untransformed score per row (log-odds for a binary classifier); `None` for a model without one.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    fn predict_raw(&self, _x: &Matrix) -> Result<Option<Vec<f64>>, ModelError> {
        Ok(None)
    }

    /// Whether [`Fitted::contributions`] gives SHAP values.
    fn has_contributions(&self) -> bool {
        false
    }

    /// For a tree ensemble kiln can evaluate natively: whether it does (`Some(false)`: the model holds something
    /// the native trees do not cover, and the library predicts); `None` for other kinds.
    fn native_trees(&self) -> Option<bool> {
        None
    }

    /// SHAP contributions (one column per feature plus `bias`, rows summing to [`Fitted::predict_raw`]); `None`
    /// for a model without native contributions.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    fn contributions(&self, _x: &Matrix) -> Result<Option<Matrix>, ModelError> {
        Ok(None)
    }

    /// The native model file's bytes.
    ///
    /// # Errors
    /// The library's error when it cannot serialize the model.
    fn to_native_bytes(&self) -> Result<Vec<u8>, ModelError>;

    /// The fields of the model's MLflow flavor after `data`, in order.
    fn flavor_fields(&self) -> Vec<(&'static str, String)>;
}

/// The checked model of an experiment: any kind, cheap to clone.
#[derive(Debug, Clone)]
pub struct ModelSpec(Arc<dyn Checked>);

impl ModelSpec {
    pub fn new(checked: impl Checked + 'static) -> ModelSpec {
        ModelSpec(Arc::new(checked))
    }

    /// The `model.kind` of the experiment file.
    pub fn kind(&self) -> &'static str {
        self.0.kind()
    }

    /// Every hyperparameter, as logged.
    pub fn params(&self) -> Vec<(String, String)> {
        self.0.params()
    }

    /// Whether the model outputs the probability of class 1.
    pub fn is_classifier(&self) -> bool {
        self.0.is_classifier()
    }

    /// What the model's feature importance measures.
    pub fn importance_label(&self) -> &'static str {
        self.0.importance_label()
    }

    /// The same model without early stopping.
    ///
    /// # Errors
    /// Never in practice: the parameters were checked already.
    pub fn without_early_stopping(&self) -> Result<ModelSpec, ModelError> {
        self.0.without_early_stopping()
    }

    /// The same model on `threads` library threads when kiln chose its thread count, for fits that run side by
    /// side (a backtest's folds, so that folds x threads stay within the cores); itself when the experiment fixed
    /// the count or the kind has no threads.
    pub fn with_threads(&self, threads: usize) -> ModelSpec {
        self.0.with_threads(threads).unwrap_or_else(|| self.clone())
    }

    /// Fits on `x`/`y`, with an optional validation set for early stopping.
    ///
    /// # Errors
    /// The family's error.
    pub fn fit(&self, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> Result<FittedModel, ModelError> {
        self.0.fit_model(&FitData { x, y, valid, cache: None })
    }

    /// [`ModelSpec::fit`], keeping in `cache` what later fits on the same rows can use again (a tuning study's
    /// folds): the fitted model is the one [`ModelSpec::fit`] gives.
    ///
    /// # Errors
    /// As [`ModelSpec::fit`].
    pub fn fit_reusing(
        &self,
        x: &Matrix,
        y: &[f64],
        valid: Option<(&Matrix, &[f64])>,
        cache: &crate::FitCache,
    ) -> Result<FittedModel, ModelError> {
        self.0.fit_model(&FitData { x, y, valid, cache: Some(cache) })
    }
}

/// A fitted model of any kind.
#[derive(Debug)]
pub struct FittedModel(Box<dyn Fitted>);

impl FittedModel {
    pub fn new(fitted: impl Fitted + 'static) -> FittedModel {
        FittedModel(Box::new(fitted))
    }

    /// How the model is written to a bundle (its `model_kind`, file and flavor).
    pub fn kind(&self) -> &'static ModelFormat {
        self.0.format()
    }

    /// One prediction per row.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        Predictor::predict(&*self.0, x)
    }

    /// One row's prediction through the model's fastest path; equal to [`FittedModel::predict`].
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the row's length is wrong.
    pub fn predict_row(&self, row: &[f64]) -> Result<f64, ModelError> {
        self.0.predict_row(row)
    }

    /// The feature names the model was fitted on, in order.
    pub fn feature_names(&self) -> &[String] {
        Predictor::feature_names(&*self.0)
    }

    /// The library's metric during the fit, on the training and validation rows ([`EvalCurve`]); empty for models
    /// without rounds and for a model read from a bundle.
    pub fn eval_curves(&self) -> &[EvalCurve] {
        self.0.eval_curves()
    }

    /// The boosting round the fit stopped at (boosted trees only).
    pub fn best_iteration(&self) -> Option<usize> {
        self.0.best_iteration()
    }

    /// `(name, gain, split count)` per feature.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the library fails.
    pub fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, ModelError> {
        self.0.feature_importance()
    }

    /// The untransformed score per row; `None` for a model without one.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn predict_raw(&self, x: &Matrix) -> Result<Option<Vec<f64>>, ModelError> {
        self.0.predict_raw(x)
    }

    /// Whether [`FittedModel::contributions`] gives SHAP values (LightGBM and XGBoost do).
    pub fn has_contributions(&self) -> bool {
        self.0.has_contributions()
    }

    /// A note for the user when a LightGBM or XGBoost model predicts through its library instead of kiln's native
    /// trees (slower, same values); `None` when native (or not a tree ensemble).
    pub fn native_note(&self) -> Option<String> {
        (self.0.native_trees() == Some(false)).then(|| {
            format!(
                "note: this {} model holds what kiln's native tree evaluation does not cover (such as LightGBM's \
                 linear trees or XGBoost's categorical splits), so its library predicts it: the same values, more \
                 slowly",
                self.kind().as_str()
            )
        })
    }

    /// SHAP contributions from the library's own tree algorithm; `None` for a model without them.
    ///
    /// # Errors
    /// [`ModelError::Predict`] when the columns are not the model's features.
    pub fn contributions(&self, x: &Matrix) -> Result<Option<Matrix>, ModelError> {
        self.0.contributions(x)
    }

    /// The native model file's bytes.
    ///
    /// # Errors
    /// The library's error when it cannot serialize the model.
    pub fn to_native_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.0.to_native_bytes()
    }

    /// The fields of the model's MLflow flavor after `data`.
    pub fn flavor_fields(&self) -> Vec<(&'static str, String)> {
        self.0.flavor_fields()
    }

    /// A model of the bundle format named `kind` (a `model_kind`) from its native file's bytes.
    ///
    /// # Errors
    /// [`ModelError::Load`] when no kind writes that format or the bytes are not such a model.
    pub fn from_native_bytes(kind: &str, bytes: &[u8]) -> Result<FittedModel, ModelError> {
        let format = crate::kinds::format_named(kind).ok_or_else(|| {
            ModelError::Load(format!(
                "unknown model_kind '{kind}' (known: {})",
                crate::kinds::format_names().join(", ")
            ))
        })?;
        (format.load)(bytes)
    }
}

impl Predictor for FittedModel {
    type Error = ModelError;

    fn predict(&self, x: &Matrix) -> Result<Vec<f64>, ModelError> {
        FittedModel::predict(self, x)
    }

    fn feature_names(&self) -> &[String] {
        FittedModel::feature_names(self)
    }
}

/// The table impls of a boosted-tree family (LightGBM, XGBoost): the params' check, the checked params (early
/// stopping can be switched off) and the fitted model (per-round curves, best round, raw scores, SHAP values), all
/// delegating to the family's own inherent methods, which keep their library-specific documentation.
macro_rules! boosted_trees {
    (
        params: $params:ty,
        checked: $checked:ty,
        fitted: $fitted:ty,
        kind: $kind:literal,
        format: $format:path,
        is_classifier: |$c:ident| $is_classifier:expr,
        native_bytes: |$m:ident| $native_bytes:expr,
        fit: |$fc:ident, $fd:ident| $fit:expr,
        flavor: [$(($key:literal, $value:expr)),* $(,)?] $(,)?
    ) => {
        impl $crate::kinds::KindParams for $params {
            const FORMAT: &'static $crate::ModelFormat = &$format;

            fn check_kind(&self, _classification: bool) -> Result<$crate::ModelSpec, $crate::ModelError> {
                Ok($crate::ModelSpec::new(self.check()?))
            }
        }

        impl $crate::Checked for $checked {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn params(&self) -> Vec<(String, String)> {
                self.as_params()
            }

            fn is_classifier(&self) -> bool {
                let $c = self;
                $is_classifier
            }

            fn importance_label(&self) -> &'static str {
                "total gain"
            }

            fn without_early_stopping(&self) -> Result<$crate::ModelSpec, $crate::ModelError> {
                let mut params = self.params().clone();
                params.early_stopping_rounds = None;
                let checked = params.check()?;
                // the thread count kiln chose stays the one it chose
                Ok($crate::ModelSpec::new(<$checked>::with_threads(&checked, self.threads()).unwrap_or(checked)))
            }

            fn with_threads(&self, threads: usize) -> Option<$crate::ModelSpec> {
                <$checked>::with_threads(self, u32::try_from(threads).unwrap_or(u32::MAX)).map($crate::ModelSpec::new)
            }

            fn fit_model(&self, data: &$crate::FitData<'_>) -> Result<$crate::FittedModel, $crate::ModelError> {
                let ($fc, $fd) = (self, data);
                Ok($crate::FittedModel::new($fit?))
            }
        }

        impl $crate::Fitted for $fitted {
            fn format(&self) -> &'static $crate::ModelFormat {
                &$format
            }

            fn predict_row(&self, row: &[f64]) -> Result<f64, $crate::ModelError> {
                <$fitted>::predict_row(self, row)
            }

            fn eval_curves(&self) -> &[$crate::EvalCurve] {
                <$fitted>::eval_curves(self)
            }

            fn best_iteration(&self) -> Option<usize> {
                Some(<$fitted>::best_iteration(self))
            }

            fn feature_importance(&self) -> Result<Vec<(String, f64, f64)>, $crate::ModelError> {
                <$fitted>::feature_importance(self)
            }

            fn predict_raw(&self, x: &kiln_domain::Matrix) -> Result<Option<Vec<f64>>, $crate::ModelError> {
                <$fitted>::predict_raw(self, x).map(Some)
            }

            fn has_contributions(&self) -> bool {
                true
            }

            fn native_trees(&self) -> Option<bool> {
                Some(<$fitted>::is_native(self))
            }

            fn contributions(
                &self,
                x: &kiln_domain::Matrix,
            ) -> Result<Option<kiln_domain::Matrix>, $crate::ModelError> {
                <$fitted>::contributions(self, x).map(Some)
            }

            fn to_native_bytes(&self) -> Result<Vec<u8>, $crate::ModelError> {
                let $m = self;
                $native_bytes
            }

            fn flavor_fields(&self) -> Vec<(&'static str, String)> {
                vec![$(($key, $value.into())),*]
            }
        }
    };
}

pub(crate) use boosted_trees;
