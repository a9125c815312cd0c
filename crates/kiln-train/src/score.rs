//! `score`: predictions for a frame of raw rows with a loaded bundle, built with the same pipeline code as training.

use kiln_domain::{Column, Frame, Matrix};
use kiln_features::{FittedPipeline, PipelineInput};
use kiln_models::Bundle;

use crate::TrainError;

/// What identifies each scored row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowKeys {
    /// forecast: origin time t of each prediction (the forecast is for t + horizon), UTC ms
    Times { column: String, values: Vec<i64> },
    /// tabular: the id column's values, or the row number when the bundle has no id column
    Ids { column: String, values: Vec<String> },
}

/// Predictions for every row whose features are defined.
#[derive(Debug, Clone)]
pub struct Scored {
    pub keys: RowKeys,
    /// in the target's own units (forecast, regression) or the probability of the positive class (classifier)
    pub predictions: Vec<f64>,
    /// classifier: the predicted class label at the bundle's decision threshold
    pub classes: Option<Vec<String>>,
    /// the model's raw output (in the label's space, before the target transform is inverted)
    pub raw: Vec<f64>,
    /// the feature rows the model saw
    pub features: Matrix,
    /// with `explain`: SHAP contributions per feature plus a final `bias` column (LightGBM and XGBoost)
    pub contributions: Option<Matrix>,
    pub warmup_dropped: usize,
}

/// Scores `frame` (raw rows; sorted by time for a forecast) with `bundle`.
///
/// # Errors
/// Missing columns, too few rows for the features, a model that expects other features than the pipeline makes,
/// or `explain` for a model kind without native contributions.
pub fn score(bundle: &Bundle<FittedPipeline>, frame: &Frame, explain: bool) -> Result<Scored, TrainError> {
    let pipeline = &bundle.pipeline;
    let prepared = pipeline.transform(frame)?;
    if prepared.x.names != bundle.metadata.feature_names {
        return Err(TrainError::FeatureMismatch {
            expected: bundle.metadata.feature_names.clone(),
            actual: prepared.x.names.clone(),
        });
    }
    if prepared.x.n_rows == 0 {
        return Err(TrainError::NotEnoughRows(format!(
            "{} rows given, the features need at least {} rows of history",
            frame.n_rows(),
            prepared.warmup_dropped + 1
        )));
    }
    let raw = bundle.model.predict(&prepared.x)?;
    let contributions = if explain {
        let c = bundle.model.contributions(&prepared.x)?.ok_or_else(|| {
            TrainError::Target(format!(
                "--explain needs a model with native SHAP contributions (lightgbm, xgboost); this one is {}",
                bundle.model.kind().as_str()
            ))
        })?;
        Some(c)
    } else {
        None
    };
    let (keys, predictions) = match &pipeline.input {
        PipelineInput::Forecast(recipe) => {
            let current = prepared.current.unwrap_or_default();
            let predictions = raw.iter().zip(&current).map(|(o, c)| recipe.target_transform.invert(*c, *o)).collect();
            let times = prepared.times.unwrap_or_default();
            (RowKeys::Times { column: recipe.time_column.clone(), values: times }, predictions)
        }
        PipelineInput::Tabular(input) => {
            let keys = match &input.id_column {
                Some(id) => RowKeys::Ids { column: id.clone(), values: id_values(frame, id)? },
                None => {
                    RowKeys::Ids { column: "row".into(), values: (0..frame.n_rows()).map(|i| i.to_string()).collect() }
                }
            };
            (keys, raw.clone())
        }
    };
    let classes = pipeline
        .decision
        .as_ref()
        .map(|d| raw.iter().map(|&p| if p >= d.threshold { d.positive.clone() } else { d.negative_label() }).collect());
    Ok(Scored {
        keys,
        predictions,
        classes,
        raw,
        features: prepared.x,
        contributions,
        warmup_dropped: prepared.warmup_dropped,
    })
}

fn id_values(frame: &Frame, id: &str) -> Result<Vec<String>, TrainError> {
    let column = frame.column(id).map_err(|_| kiln_features::FeatureError::MissingColumn {
        needed_by: "the bundle's id column".to_string(),
        column: id.to_string(),
    })?;
    Ok(match column {
        Column::Categorical(v) => v.iter().map(|c| c.clone().unwrap_or_default()).collect(),
        Column::Numeric(v) => v.iter().map(|x| x.to_string()).collect(),
        Column::Timestamp(v) => v.iter().map(|x| x.to_string()).collect(),
    })
}
