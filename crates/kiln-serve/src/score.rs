//! Parsed records -> predictions, with the bundle's own pipeline: a forecast window goes through
//! [`FittedPipeline::transform_last`] (the same kernels as the training table, bit for bit), a tabular record
//! through [`FittedPipeline::transform`]; one record is predicted on the model's single-row path, several at once.
//! The answer is what `kiln predict` writes for the same row: the prediction in the target's units (forecast,
//! regression), or the probability of the positive class and the class at the bundle's threshold.
//!
//!
//! A multi-step (recursive) bundle answers every step `1..=H` of each record, with its conformal bounds, through
//! [`FittedPipeline::forecast_recursive`] over one origin per record (the window's target values, or those kept for
//! a series by `/observe`), as `kiln predict` scores the same origin. A panel's window names its series in the
//! series column (one series per window); the key picks that series' calibration.
//!
//! [`FittedPipeline::transform_last`]: kiln_features::FittedPipeline::transform_last
//! [`FittedPipeline::transform`]: kiln_features::FittedPipeline::transform
//! [`FittedPipeline::forecast_recursive`]: kiln_features::FittedPipeline::forecast_recursive

use kiln_domain::{Code, Column, Frame, Matrix};
use kiln_features::{FeatureError, FeatureRow, Origin, PipelineInput, TimeSeriesRecipe};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::drift::DriftWindow;
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
    /// a panel forecast: the series the forecast is for
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) series: Option<String>,
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
    /// a multi-step forecast: every step from the origin, in order (then `target_time` and `prediction` are absent)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) steps: Option<Vec<StepAnswer>>,
}

/// One step of a multi-step forecast: `{"step", "target_time", "prediction", "lo_80", "hi_80", ...}`, the bounds
/// named as `kiln predict` names their columns, null for a series the intervals' calibration did not see.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StepAnswer {
    pub(crate) step: usize,
    pub(crate) target_time: String,
    pub(crate) prediction: f64,
    /// `(name, bound)` of every level, `lo_` then `hi_`, levels ascending
    pub(crate) bounds: Vec<(String, Option<f64>)>,
}

impl Serialize for StepAnswer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3 + self.bounds.len()))?;
        map.serialize_entry("step", &self.step)?;
        map.serialize_entry("target_time", &self.target_time)?;
        map.serialize_entry("prediction", &self.prediction)?;
        for (name, bound) in &self.bounds {
            map.serialize_entry(name, bound)?;
        }
        map.end()
    }
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
    drift: Option<&DriftWindow>,
) -> Result<Vec<Answer>, ApiError> {
    let record = |i: usize| Loc::record(batch.then_some(i));
    match parsed {
        Parsed::Forecasts(records) => forecast(model, series, records, &record, drift),
        Parsed::Records(rows) => tabular(model, rows, &record, drift),
    }
}

fn forecast(
    model: &LoadedModel,
    series: &SeriesStore,
    records: Vec<ForecastRecord>,
    record: &dyn Fn(usize) -> Loc,
    drift: Option<&DriftWindow>,
) -> Result<Vec<Answer>, ApiError> {
    let bundle = model.bundle();
    let pipeline = model.pipeline();
    let PipelineInput::Forecast(recipe) = &pipeline.input else {
        return Err(ApiError::internal("a window reached a tabular model"));
    };
    if recipe.multi_step.is_some() {
        return forecast_steps(model, series, records, record, recipe, drift);
    }
    let panel = recipe.series_column.is_some();
    let mut rows = Vec::with_capacity(records.len());
    let mut keys = Vec::with_capacity(records.len());
    for (i, forecast_record) in records.into_iter().enumerate() {
        let loc = record(i);
        let window = match forecast_record {
            ForecastRecord::Window(window) => window,
            ForecastRecord::Series(key) => {
                refuse_series_record(recipe, &loc)?;
                rows.push(series.last_row(model, &key, loc.path(Some("series")))?);
                keys.push(panel.then_some(key));
                continue;
            }
        };
        let frame = window.into_frame()?;
        keys.push(window_series(&frame, recipe, loc)?);
        rows.push(last_row(pipeline, &frame, loc)?);
    }
    if let Some(drift) = drift {
        for row in &rows {
            drift.push(&row.values, 1);
        }
    }
    let raw = match (rows.as_slice(), &bundle.per_series) {
        ([], _) => Vec::new(),
        ([one], None) => vec![bundle.model.predict_row(&one.values).map_err(ApiError::internal)?],
        (many, _) => {
            let data = many.iter().flat_map(|r| r.values.iter().copied()).collect();
            let x = Matrix { names: pipeline.feature_names.clone(), data, n_rows: many.len() };
            let series: Vec<&str> = keys.iter().map(|k| k.as_deref().unwrap_or_default()).collect();
            bundle.predict_rows(Some(&series), &x).map_err(model_error)?
        }
    };
    rows.iter()
        .zip(raw)
        .zip(keys)
        .enumerate()
        .map(|(i, ((row, raw), key))| {
            let value = recipe.target_transform.invert(row.current, raw);
            finite(value, record(i))?;
            Ok(Answer {
                id: None,
                series: key,
                time: Some(time::format_iso(row.time)),
                target_time: pipeline.target_time(row.time).map(time::format_iso),
                prediction: Some(value),
                probability: None,
                class: None,
                steps: None,
            })
        })
        .collect()
}

/// The model inputs of a window's last row (what the features make of the window, errors naming its rows).
fn last_row(pipeline: &kiln_features::FittedPipeline, frame: &Frame, loc: Loc) -> Result<FeatureRow, ApiError> {
    let window_path = loc.window().path(None);
    pipeline.transform_last(frame).map_err(|e| {
        ApiError::from_feature(e, window_path.as_deref(), &|row, column| {
            loc.window().row(row).path(Some(column)).unwrap_or_default()
        })
    })
}

/// A panel window's series: the key of its rows, which must all name the same one (`None` for a single series).
///
/// # Errors
/// A row naming another series than the first row, named as `window[i].<series column>`.
fn window_series(frame: &Frame, recipe: &TimeSeriesRecipe, loc: Loc) -> Result<Option<String>, ApiError> {
    let Some(column) = &recipe.series_column else { return Ok(None) };
    let Ok(Column::Categorical(keys)) = frame.column(column) else {
        return Err(ApiError::internal(format!("a panel window without its series column '{column}'")));
    };
    let Some(first) = keys.first().cloned().flatten() else { return Ok(None) };
    if let Some(row) = keys.iter().position(|k| k.as_deref() != Some(first.as_str())) {
        let other = keys[row].clone().unwrap_or_default();
        let e = FeatureError::MixedSeries { column: column.clone(), first, other };
        let field = loc.window().row(row).path(Some(column)).unwrap_or_default();
        return Err(ApiError::at(Code::InvalidValue, field, format!("{e}; send one record per series")));
    }
    Ok(Some(first))
}

/// One origin of a multi-step forecast: the target's last values, the origin's time and its series.
struct StepOrigin {
    history: Vec<f64>,
    time: i64,
    series: Option<String>,
    /// the `known_in_advance` values of the window's future rows (see `kiln_features::Origin::ahead`)
    ahead: Vec<f64>,
}

/// A `{"series": key}` record for a model with `known_in_advance` columns: refused, since the values at the target
/// times come only with a window's future rows.
fn refuse_series_record(recipe: &TimeSeriesRecipe, loc: &Loc) -> Result<(), ApiError> {
    if recipe.ahead_rows() == 0 {
        return Ok(());
    }
    Err(ApiError::at(
        Code::InvalidValue,
        loc.path(Some("series")).unwrap_or_default(),
        format!(
            "this model reads known_in_advance columns at each target time: send a window whose last {} row(s) \
             are future rows (target '{}' null, those columns filled), not a series key",
            recipe.ahead_rows(),
            recipe.target
        ),
    ))
}

/// What an answer names of its origin: the time and, for a panel, the series.
struct AnsweredOrigin {
    time: i64,
    series: Option<String>,
}

/// A direct multi-step bundle's forecasts: every step's model on each record's feature row (the window's last row,
/// or the row kept for a series), `out[k][o]` in the target's units.
fn direct_forecasts(
    model: &LoadedModel,
    series: &SeriesStore,
    records: Vec<ForecastRecord>,
    record: &dyn Fn(usize) -> Loc,
    recipe: &TimeSeriesRecipe,
    drift: Option<&DriftWindow>,
) -> Result<(Vec<AnsweredOrigin>, Vec<Vec<f64>>), ApiError> {
    let bundle = model.bundle();
    let pipeline = model.pipeline();
    let panel = recipe.series_column.is_some();
    let mut origins = Vec::with_capacity(records.len());
    let mut rows = Vec::with_capacity(records.len());
    for (i, forecast_record) in records.into_iter().enumerate() {
        let loc = record(i);
        let (row, key) = match forecast_record {
            ForecastRecord::Window(window) => {
                let frame = window.into_frame()?;
                let key = window_series(&frame, recipe, loc)?;
                (last_row(pipeline, &frame, loc)?, key)
            }
            ForecastRecord::Series(key) => {
                refuse_series_record(recipe, &loc)?;
                (series.last_row(model, &key, loc.path(Some("series")))?, panel.then_some(key))
            }
        };
        origins.push(AnsweredOrigin { time: row.time, series: key });
        rows.push(row);
    }
    // live drift watches the origin's feature row (step 1's inputs)
    if let Some(drift) = drift {
        for row in &rows {
            drift.push(&row.values, 1);
        }
    }
    let forecasts = std::iter::once(&bundle.model)
        .chain(&bundle.step_models)
        .enumerate()
        .map(|(k, m)| {
            // with known_in_advance columns, step k's own inputs (those columns at its target time)
            let data = rows
                .iter()
                .flat_map(|r| if k == 0 { &r.values } else { r.step_values.get(k - 1).unwrap_or(&r.values) })
                .copied()
                .collect();
            let x = Matrix { names: pipeline.feature_names.clone(), data, n_rows: rows.len() };
            let outputs = if rows.is_empty() { Vec::new() } else { m.predict(&x).map_err(ApiError::internal)? };
            Ok(rows.iter().zip(outputs).map(|(r, o)| recipe.target_transform.invert(r.current, o)).collect())
        })
        .collect::<Result<Vec<Vec<f64>>, ApiError>>()?;
    Ok((origins, forecasts))
}

/// Every step of every record's forecast, with its bounds (see the module documentation).
fn forecast_steps(
    model: &LoadedModel,
    series: &SeriesStore,
    records: Vec<ForecastRecord>,
    record: &dyn Fn(usize) -> Loc,
    recipe: &TimeSeriesRecipe,
    drift: Option<&DriftWindow>,
) -> Result<Vec<Answer>, ApiError> {
    let bundle = model.bundle();
    let pipeline = model.pipeline();
    let steps = recipe.multi_step.map_or(1, |m| m.steps);
    let step = pipeline.step.ok_or_else(|| ApiError::internal("a multi-step bundle without the series' step"))?;
    if recipe.direct_steps() > 0 {
        let (origins, forecasts) = direct_forecasts(model, series, records, record, recipe, drift)?;
        return step_answers(pipeline, step, &origins, &forecasts, record);
    }
    let window = recipe.min_window_rows();
    let panel = recipe.series_column.is_some();
    let mut origins = Vec::with_capacity(records.len());
    for (i, forecast_record) in records.into_iter().enumerate() {
        let loc = record(i);
        let origin = match forecast_record {
            ForecastRecord::Window(rows) => {
                let frame = rows.into_frame()?;
                let key = window_series(&frame, recipe, loc)?;
                // the window is checked as a single-step forecast checks it: its columns, time order and length
                let last = last_row(pipeline, &frame, loc)?;
                let target = frame.numeric(&recipe.target).map_err(ApiError::internal)?;
                // up to the origin: a window of a model with known_in_advance columns ends with future rows
                let end = target.iter().rposition(|v| !v.is_nan()).map_or(target.len(), |o| o + 1);
                let history = if last.ahead.is_empty() { target.to_vec() } else { target[..end].to_vec() };
                StepOrigin { history, time: last.time, series: key, ahead: last.ahead }
            }
            ForecastRecord::Series(key) => {
                refuse_series_record(recipe, &loc)?;
                let (history, time) = series.history(model, &key, window, loc.path(Some("series")))?;
                StepOrigin { history, time, series: panel.then_some(key), ahead: Vec::new() }
            }
        };
        origins.push(origin);
    }
    if origins.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<Origin<'_>> = origins
        .iter()
        .map(|o| Origin { history: &o.history, time: o.time, series: o.series.as_deref(), ahead: &o.ahead })
        .collect();
    // live drift watches step 1's feature rows (the origins'), the first matrix the recursion asks for
    let mut first_step = true;
    let forecasts = pipeline
        .forecast_recursive(&list, steps, step, &mut |x: &Matrix| {
            if std::mem::take(&mut first_step)
                && let Some(drift) = drift
            {
                drift.push(&x.data, x.n_rows);
            }
            if x.names != bundle.metadata.feature_names {
                return Err(StepError::Api(ApiError::internal(format!(
                    "the pipeline made the features {:?}, the model takes {:?}",
                    x.names, bundle.metadata.feature_names
                ))));
            }
            let series: Vec<&str> = list.iter().map(|o| o.series.unwrap_or_default()).collect();
            bundle.predict_rows(Some(&series), x).map_err(|e| StepError::Api(model_error(e)))
        })
        .map_err(|e| match e {
            StepError::Api(e) => e,
            StepError::Feature(e) => ApiError::from_feature(e, None, &|_, column| column.to_string()),
        })?;
    let answered: Vec<AnsweredOrigin> =
        origins.into_iter().map(|o| AnsweredOrigin { time: o.time, series: o.series }).collect();
    step_answers(pipeline, step, &answered, &forecasts, record)
}

/// Each origin's answer: every step's target time and forecast, with its bounds when the bundle has intervals.
fn step_answers(
    pipeline: &kiln_features::FittedPipeline,
    step: kiln_features::SeriesStep,
    origins: &[AnsweredOrigin],
    forecasts: &[Vec<f64>],
    record: &dyn Fn(usize) -> Loc,
) -> Result<Vec<Answer>, ApiError> {
    let names = pipeline.intervals.as_ref().map(kiln_features::ConformalIntervals::column_names);
    origins
        .iter()
        .enumerate()
        .map(|(o, origin)| {
            let answers = forecasts
                .iter()
                .enumerate()
                .map(|(k, forecast)| {
                    let value = forecast[o];
                    finite(value, record(o))?;
                    let bounds = match (&pipeline.intervals, &names) {
                        (Some(ci), Some(names)) => ci
                            .bounds(origin.series.as_deref().unwrap_or(""), k + 1, value)
                            .into_iter()
                            .flat_map(|(lo, hi)| [lo, hi])
                            .zip(names)
                            .map(|(bound, name)| (name.clone(), bound.is_finite().then_some(bound)))
                            .collect(),
                        _ => Vec::new(),
                    };
                    Ok(StepAnswer {
                        step: k + 1,
                        target_time: time::format_iso(step.advance(origin.time, k + 1)),
                        prediction: value,
                        bounds,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()?;
            Ok(Answer {
                id: None,
                series: origin.series.clone(),
                time: Some(time::format_iso(origin.time)),
                target_time: None,
                prediction: None,
                probability: None,
                class: None,
                steps: Some(answers),
            })
        })
        .collect()
}

/// What the model's prediction inside a recursive forecast can fail with.
enum StepError {
    Feature(FeatureError),
    Api(ApiError),
}

impl From<FeatureError> for StepError {
    fn from(e: FeatureError) -> StepError {
        StepError::Feature(e)
    }
}

fn tabular(
    model: &LoadedModel,
    rows: Rows,
    record: &dyn Fn(usize) -> Loc,
    drift: Option<&DriftWindow>,
) -> Result<Vec<Answer>, ApiError> {
    if rows.n_rows == 0 {
        return Ok(Vec::new());
    }
    let bundle = model.bundle();
    let pipeline = &bundle.pipeline;
    let ids: Option<Vec<Option<String>>> = rows.ids().map(<[_]>::to_vec);
    let n = rows.n_rows;
    // the record's numbers are the model's inputs as they are: straight into a row, with no frame and no name;
    // else the pipeline's features, with their names
    let (data, names) = match model.direct().and_then(|plan| rows.row_major(plan)) {
        Some(data) => (data, None),
        None => {
            let frame = rows.into_frame()?;
            let prepared = pipeline.transform(&frame).map_err(|e| {
                ApiError::from_feature(e, None, &|row, column| record(row).path(Some(column)).unwrap_or_default())
            })?;
            (prepared.x.data, Some(prepared.x.names))
        }
    };
    if let Some(drift) = drift {
        drift.push(&data, n);
    }
    let raw = if n == 1 {
        vec![bundle.model.predict_row(&data).map_err(ApiError::internal)?]
    } else {
        let names = names.unwrap_or_else(|| pipeline.feature_names.clone());
        bundle.model.predict(&Matrix { names, data, n_rows: n }).map_err(ApiError::internal)?
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
                    series: None,
                    time: None,
                    target_time: None,
                    prediction: None,
                    probability: Some(value),
                    class: Some(d.class_of(value)),
                    steps: None,
                },
                None => Answer {
                    id,
                    series: None,
                    time: None,
                    target_time: None,
                    prediction: Some(value),
                    probability: None,
                    class: None,
                    steps: None,
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

/// A model's error as an answer: a series a per-series bundle has no model of is the request's fault (422 naming
/// it), anything else an internal error.
fn model_error(e: kiln_models::ModelError) -> ApiError {
    match e {
        kiln_models::ModelError::UnknownSeries(_) => {
            ApiError::at(kiln_domain::Code::DataShape, "series", e.to_string())
        }
        other => ApiError::internal(other),
    }
}
