//! The bridge that lets the model-based feature selectors (importance threshold, RFE, RFECV) fit the experiment's
//! model, and the fitted booster's per-round evaluation as metric points (training curves).

use kiln_domain::{Matrix, MetricPoint};
use kiln_eval::{ClassificationMetrics, RegressionMetrics};
use kiln_features::{ImportanceModel, ScoredFit, Scoring};
use kiln_models::{EvalCurve, FittedModel, ModelSpec};

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
    fn fit_importances(&self, x: &Matrix, y: &[f64]) -> Result<(FittedModel, Vec<f64>), String> {
        let fitted = self.spec.fit(x, y, None).map_err(|e| e.to_string())?;
        let importance = fitted.feature_importance().map_err(|e| e.to_string())?;
        Ok((fitted, importance.into_iter().map(|(_, gain, _)| gain).collect()))
    }
}

impl ImportanceModel for SelectionModel {
    fn fit_importance(&self, x: &Matrix, y: &[f64]) -> Result<Vec<f64>, String> {
        Ok(self.fit_importances(x, y)?.1)
    }

    fn fit_score(
        &self,
        train: (&Matrix, &[f64]),
        valid: (&Matrix, &[f64]),
        scoring: Scoring,
    ) -> Result<ScoredFit, String> {
        let (fitted, importances) = self.fit_importances(train.0, train.1)?;
        let out = fitted.predict(valid.0).map_err(|e| e.to_string())?;
        let y = valid.1;
        let score = match scoring {
            Scoring::Rmse | Scoring::Mae | Scoring::R2 | Scoring::Mape | Scoring::Smape => {
                let m = RegressionMetrics::compute(y, &out).map_err(|e| e.to_string())?;
                match scoring {
                    Scoring::Rmse => m.rmse,
                    Scoring::Mae => m.mae,
                    Scoring::R2 => m.r2,
                    Scoring::Mape => m.mape,
                    _ => m.smape,
                }
            }
            _ => {
                let m = ClassificationMetrics::compute(y, &out, 0.5).map_err(|e| e.to_string())?;
                match scoring {
                    Scoring::Accuracy => m.accuracy,
                    Scoring::Precision => m.precision,
                    Scoring::Recall => m.recall,
                    Scoring::F1 => m.f1,
                    Scoring::RocAuc => m.roc_auc,
                    Scoring::PrAuc => m.pr_auc,
                    _ => m.log_loss,
                }
            }
        };
        Ok(ScoredFit { importances, score })
    }
}

#[cfg(test)]
mod tests;
