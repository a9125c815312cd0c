//! Parsed records -> predictions, with the bundle's own pipeline: a forecast window goes through
//! [`FittedPipeline::transform_last`] (the same kernels as the training table, bit for bit), a tabular record
//! through [`FittedPipeline::transform`]; one record is predicted on the model's single-row path, several at once.
//! The answer is what `kiln predict` writes for the same row: the prediction in the target's units (forecast,
//! regression), or the probability of the positive class and the class at the bundle's threshold.
//!
//! [`FittedPipeline::transform_last`]: kiln_features::FittedPipeline::transform_last
//! [`FittedPipeline::transform`]: kiln_features::FittedPipeline::transform

use kiln_domain::{Code, Matrix};
use kiln_features::PipelineInput;
use serde::Serialize;

use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::observe::SeriesStore;
use crate::parse::{ForecastRecord, Loc, Parsed, Rows};
use crate::time;

/// One record's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Answer {
    /// tabular: the record's id, when it carried one
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<String>,
    /// forecast: the origin time (the last row of the window); the forecast is `horizon` rows later
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) time: Option<String>,
    /// forecast: the time the forecast is for (origin + horizon steps of the series, as learned in training)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) target_time: Option<String>,
    /// forecast and regression, in the target's units
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) prediction: Option<f64>,
    /// classification: the probability of the positive class
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) probability: Option<f64>,
    /// classification: the class at the model's threshold
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) class: Option<String>,
}

/// The answers for every record, in order. `batch` tells how records are named in errors (`records[i]`).
///
/// # Errors
/// What the features make of the values (a window too short or out of order, an unknown category), or a
/// prediction that is not a finite number.
pub(crate) fn answer(
    model: &LoadedModel,
    series: &SeriesStore,
    parsed: Parsed,
    batch: bool,
) -> Result<Vec<Answer>, ApiError> {
    let record = |i: usize| Loc::record(batch.then_some(i));
    match parsed {
        Parsed::Forecasts(records) => forecast(model, series, records, &record),
        Parsed::Records(rows) => tabular(model, rows, &record),
    }
}

fn forecast(
    model: &LoadedModel,
    series: &SeriesStore,
    records: Vec<ForecastRecord>,
    record: &dyn Fn(usize) -> Loc,
) -> Result<Vec<Answer>, ApiError> {
    let bundle = model.bundle();
    let pipeline = &bundle.pipeline;
    let PipelineInput::Forecast(recipe) = &pipeline.input else {
        return Err(ApiError::internal("a window reached a tabular model"));
    };
    let mut rows = Vec::with_capacity(records.len());
    for (i, forecast_record) in records.into_iter().enumerate() {
        let loc = record(i);
        let window = match forecast_record {
            ForecastRecord::Window(window) => window,
            ForecastRecord::Series(key) => {
                rows.push(series.last_row(model, &key, loc.path(Some("series")))?);
                continue;
            }
        };
        let frame = window.into_frame()?;
        let window_path = loc.window().path(None);
        let row = pipeline.transform_last(&frame).map_err(|e| {
            ApiError::from_feature(e, window_path.as_deref(), &|row, column| {
                loc.window().row(row).path(Some(column)).unwrap_or_default()
            })
        })?;
        rows.push(row);
    }
    let raw = match rows.as_slice() {
        [] => Vec::new(),
        [one] => vec![bundle.model.predict_row(&one.values).map_err(ApiError::internal)?],
        many => {
            let data = many.iter().flat_map(|r| r.values.iter().copied()).collect();
            let x = Matrix { names: pipeline.feature_names.clone(), data, n_rows: many.len() };
            bundle.model.predict(&x).map_err(ApiError::internal)?
        }
    };
    rows.iter()
        .zip(raw)
        .enumerate()
        .map(|(i, (row, raw))| {
            let value = recipe.target_transform.invert(row.current, raw);
            finite(value, record(i))?;
            Ok(Answer {
                id: None,
                time: Some(time::format_iso(row.time)),
                target_time: pipeline.target_time(row.time).map(time::format_iso),
                prediction: Some(value),
                probability: None,
                class: None,
            })
        })
        .collect()
}

fn tabular(model: &LoadedModel, rows: Rows, record: &dyn Fn(usize) -> Loc) -> Result<Vec<Answer>, ApiError> {
    if rows.n_rows == 0 {
        return Ok(Vec::new());
    }
    let bundle = model.bundle();
    let pipeline = &bundle.pipeline;
    let ids: Option<Vec<Option<String>>> = rows.ids().map(<[_]>::to_vec);
    let n = rows.n_rows;
    let frame = rows.into_frame()?;
    let prepared = pipeline.transform(&frame).map_err(|e| {
        ApiError::from_feature(e, None, &|row, column| record(row).path(Some(column)).unwrap_or_default())
    })?;
    let x = prepared.x;
    let raw = if n == 1 {
        vec![bundle.model.predict_row(x.row(0)).map_err(ApiError::internal)?]
    } else {
        bundle.model.predict(&x).map_err(ApiError::internal)?
    };
    if raw.len() != n {
        return Err(ApiError::internal(format!("{} predictions for {n} records", raw.len())));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, value)| {
            finite(value, record(i))?;
            let id = ids.as_ref().and_then(|ids| ids[i].clone());
            Ok(match &pipeline.decision {
                Some(d) => Answer {
                    id,
                    time: None,
                    target_time: None,
                    prediction: None,
                    probability: Some(value),
                    class: Some(d.class_of(value)),
                },
                None => Answer {
                    id,
                    time: None,
                    target_time: None,
                    prediction: Some(value),
                    probability: None,
                    class: None,
                },
            })
        })
        .collect()
}

fn finite(value: f64, loc: Loc) -> Result<(), ApiError> {
    if value.is_finite() {
        return Ok(());
    }
    Err(ApiError {
        code: Code::PredictionNotFinite,
        message: format!(
            "the model's answer for this record is {value}, not a finite number (missing or extreme input values?)"
        ),
        field: loc.path(None),
    })
}
