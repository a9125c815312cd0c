//! `score`: predictions for a frame of raw rows with a loaded bundle, built with the same feature code as training.

use kiln_domain::{Frame, Matrix};
use kiln_features::FittedPipeline;
use kiln_models::Bundle;

use crate::TrainError;

/// Predictions for every row whose features are defined.
#[derive(Debug, Clone)]
pub struct Scored {
    /// origin time t of each prediction (the forecast is for t + horizon)
    pub times: Vec<i64>,
    /// in the target's own units
    pub predictions: Vec<f64>,
    /// the model's raw output (in the label's space, before the target transform is inverted)
    pub raw: Vec<f64>,
    /// the feature rows the model saw
    pub features: Matrix,
    pub warmup_dropped: usize,
}

/// Scores `frame` (raw rows, sorted by time) with `bundle`.
///
/// # Errors
/// Missing columns, too few rows for the features, or a model that expects other features than the pipeline makes.
pub fn score(bundle: &Bundle<FittedPipeline>, frame: &Frame) -> Result<Scored, TrainError> {
    let pipeline = &bundle.pipeline;
    let recipe = &pipeline.recipe;
    let table = recipe.build_table(frame)?;
    if table.x.names != bundle.metadata.feature_names {
        return Err(TrainError::FeatureMismatch {
            expected: bundle.metadata.feature_names.clone(),
            actual: table.x.names.clone(),
        });
    }
    if table.x.n_rows == 0 {
        return Err(TrainError::NotEnoughRows(format!(
            "{} rows given, the features need at least {} rows of history",
            frame.n_rows(),
            table.warmup_dropped + 1
        )));
    }
    let raw = bundle.model.predict(&table.x)?;
    let predictions = raw.iter().zip(&table.current).map(|(o, c)| recipe.target_transform.invert(*c, *o)).collect();
    Ok(Scored { times: table.times, predictions, raw, features: table.x, warmup_dropped: table.warmup_dropped })
}
