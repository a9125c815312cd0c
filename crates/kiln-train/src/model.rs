//! The checked model of an experiment, one closed set over every adapter of `kiln-models`, the bridge that lets
//! the model-based feature selectors (importance threshold, RFE, RFECV) fit it, and the fitted booster's
//! per-round evaluation as metric points (training curves).

use kiln_domain::{Code, Estimator, Matrix, MetricPoint};
use kiln_eval::Metric;
use kiln_features::{ImportanceError, ImportanceModel, ScoredFit};
use kiln_models::{CheckedLightGbm, CheckedSmartcore, CheckedXgBoost, EvalCurve, FittedModel};

use crate::TrainError;

/// The checked model to fit.
#[derive(Debug, Clone)]
pub enum ModelSpec {
    LightGbm(CheckedLightGbm),
    XgBoost(CheckedXgBoost),
    Smartcore(CheckedSmartcore),
}

/// A fitted model and the boosting round it stopped at (boosted trees only). The boosters' evaluation after every
/// round comes out with the model: [`FittedModel::eval_curves`].
pub(crate) struct Fitted {
    pub(crate) model: FittedModel,
    pub(crate) best_iteration: Option<usize>,
}

impl ModelSpec {
    /// The kind as written in YAML (`lightgbm`, `xgboost`, `random_forest`, `ridge`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            ModelSpec::LightGbm(_) => "lightgbm",
            ModelSpec::XgBoost(_) => "xgboost",
            ModelSpec::Smartcore(s) => s.kind_str(),
        }
    }

    /// Every hyperparameter, as logged.
    pub fn params(&self) -> Vec<(String, String)> {
        match self {
            ModelSpec::LightGbm(p) => p.as_params(),
            ModelSpec::XgBoost(p) => p.as_params(),
            ModelSpec::Smartcore(p) => p.as_params(),
        }
    }

    /// Whether the model outputs the probability of class 1.
    pub fn is_classifier(&self) -> bool {
        match self {
            ModelSpec::LightGbm(p) => p.metric().is_classification(),
            ModelSpec::XgBoost(p) => p.is_classifier(),
            ModelSpec::Smartcore(p) => p.is_classifier(),
        }
    }

    /// The same model without early stopping, for fits that have no validation part (the selectors' folds).
    ///
    /// # Errors
    /// Never in practice: the parameters were checked already.
    pub(crate) fn without_early_stopping(&self) -> Result<ModelSpec, TrainError> {
        Ok(match self {
            ModelSpec::LightGbm(p) => {
                let mut params = p.params().clone();
                params.early_stopping_rounds = None;
                ModelSpec::LightGbm(params.check()?)
            }
            ModelSpec::XgBoost(p) => {
                let mut params = p.params().clone();
                params.early_stopping_rounds = None;
                ModelSpec::XgBoost(params.check()?)
            }
            ModelSpec::Smartcore(p) => ModelSpec::Smartcore(p.clone()),
        })
    }

    /// Fits on `x`/`y`, with an optional validation set for early stopping.
    ///
    /// # Errors
    /// The adapter's error.
    pub(crate) fn fit(&self, x: &Matrix, y: &[f64], valid: Option<(&Matrix, &[f64])>) -> Result<Fitted, TrainError> {
        Ok(match self {
            ModelSpec::LightGbm(p) => {
                let m = p.fit(x, y, valid)?;
                let best = m.best_iteration();
                Fitted { model: FittedModel::LightGbm(m), best_iteration: Some(best) }
            }
            ModelSpec::XgBoost(p) => {
                let m = p.fit(x, y, valid)?;
                let best = m.best_iteration();
                Fitted { model: FittedModel::XgBoost(m), best_iteration: Some(best) }
            }
            ModelSpec::Smartcore(p) => {
                Fitted { model: FittedModel::Smartcore(p.fit(x, y, None)?), best_iteration: None }
            }
        })
    }
}

/// The most metric points one `log_metrics` call carries (the MLflow server's limit for a batch).
pub(crate) const METRICS_PER_CALL: usize = 1000;

/// The evaluation curves of a fit as metric points: one series per curve, named `curve_<rows>_<metric>`
/// (`curve_train_l2`, `curve_valid_rmse`, ...), with `step` the boosting round (0-based), all at `timestamp_ms`.
pub(crate) fn curve_points(curves: &[EvalCurve], timestamp_ms: i64) -> Vec<MetricPoint> {
    curves
        .iter()
        .flat_map(|c| {
            let key = format!("curve_{}_{}", c.data.as_str(), c.metric);
            c.values.iter().zip(0_i64..).map(move |(&value, step)| MetricPoint {
                key: key.clone(),
                value,
                timestamp_ms,
                step,
            })
        })
        .collect()
}

/// The experiment's model as seen by the model-based selectors: importance from a fit on the rows given, and a
/// held-out score for RFECV. Early stopping is off here: the selectors' folds have no separate validation part.
pub(crate) struct SelectionModel {
    /// the experiment's model without early stopping
    pub(crate) spec: ModelSpec,
}

impl SelectionModel {
    fn fit_importances(&self, x: &Matrix, y: &[f64]) -> Result<(Fitted, Vec<f64>), String> {
        let fitted = self.spec.fit(x, y, None).map_err(|e| e.to_string())?;
        let importance = fitted.model.feature_importance().map_err(|e| e.to_string())?;
        Ok((fitted, importance.into_iter().map(|(_, gain, _)| gain).collect()))
    }
}

impl ImportanceModel for SelectionModel {
    fn fit_importance(&self, x: &Matrix, y: &[f64]) -> Result<Vec<f64>, ImportanceError> {
        let fit_failed = |message| ImportanceError::new(Code::ModelTrain, message);
        Ok(self.fit_importances(x, y).map_err(fit_failed)?.1)
    }

    fn fit_score(
        &self,
        train: (&Matrix, &[f64]),
        valid: (&Matrix, &[f64]),
        scoring: Metric,
    ) -> Result<ScoredFit, ImportanceError> {
        let fit_failed = |message| ImportanceError::new(Code::ModelTrain, message);
        let (fitted, importances) = self.fit_importances(train.0, train.1).map_err(fit_failed)?;
        let out = fitted.model.predict(valid.0).map_err(|e| ImportanceError::new(e.code(), e.to_string()))?;
        let score = scoring.compute(valid.1, &out)?;
        Ok(ScoredFit { importances, score })
    }
}

#[cfg(test)]
mod tests;
