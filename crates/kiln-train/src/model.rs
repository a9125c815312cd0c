//! The bridge that lets the model-based feature selectors (importance threshold, RFE, RFECV) fit the experiment's
//! model, and the fitted booster's per-round evaluation as metric points (training curves).

use kiln_domain::{Matrix, MetricPoint};
use kiln_eval::Metric;
use kiln_features::{ImportanceError, ImportanceModel, ScoredFit};
use kiln_models::{EvalCurve, FittedModel, ModelError, ModelSpec};

/// The most metric points one `log_metrics` call carries (the MLflow server's limit for a batch).
pub(crate) const METRICS_PER_CALL: usize = 1000;

/// The evaluation curves of a fit as metric points: one series per curve, named `train_curve/<rows>/<metric>`
/// (`train_curve/train/l2`, `train_curve/valid/rmse`, ...; MLflow's UI groups keys by their `/` prefix), with `step`
/// the boosting round (0-based) and `timestamp_ms` the wall time the round ended (`fit_started_ms` plus the round's
/// elapsed time), so the curves draw on MLflow's time axes as well as on its step axis.
pub(crate) fn curve_points(curves: &[EvalCurve], fit_started_ms: i64) -> Vec<MetricPoint> {
    curves
        .iter()
        .flat_map(|c| {
            let key = format!("train_curve/{}/{}", c.data.as_str(), c.metric);
            c.values.iter().zip(&c.rounds).zip(&c.elapsed_ms).map(move |((&value, &round), &elapsed)| MetricPoint {
                key: key.clone(),
                value,
                timestamp_ms: fit_started_ms.saturating_add(i64::try_from(elapsed).unwrap_or(i64::MAX)),
                step: i64::try_from(round).unwrap_or(i64::MAX),
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

/// A model error as the selectors' port reports it, keeping its code.
fn port_error(e: &ModelError) -> ImportanceError {
    ImportanceError::new(e.code(), e.to_string())
}

impl SelectionModel {
    fn fit_importances(&self, x: &Matrix, y: &[f64]) -> Result<(FittedModel, Vec<f64>), ImportanceError> {
        let fitted = self.spec.fit(x, y, None).map_err(|e| port_error(&e))?;
        let importance = fitted.feature_importance().map_err(|e| port_error(&e))?;
        Ok((fitted, importance.into_iter().map(|(_, gain, _)| gain).collect()))
    }
}

impl ImportanceModel for SelectionModel {
    fn fit_importance(&self, x: &Matrix, y: &[f64]) -> Result<Vec<f64>, ImportanceError> {
        Ok(self.fit_importances(x, y)?.1)
    }

    fn fit_score(
        &self,
        train: (&Matrix, &[f64]),
        valid: (&Matrix, &[f64]),
        scoring: Metric,
    ) -> Result<ScoredFit, ImportanceError> {
        let (fitted, importances) = self.fit_importances(train.0, train.1)?;
        let out = fitted.predict(valid.0).map_err(|e| port_error(&e))?;
        let score = scoring.compute(valid.1, &out)?;
        Ok(ScoredFit { importances, score })
    }
}

#[cfg(test)]
mod tests;
