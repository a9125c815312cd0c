//! The stateful forecast mode: `POST /observe` appends a series' new raw rows, `POST /predict` with
//! `{"series": "<key>"}` forecasts from the newest of them. Each series keeps the pipeline's owned stream state
//! ([`StreamState`]: the last rows the windowed kernels read and the running state of expanding/EWM features), so a
//! forecast equals `kiln predict` on the whole history observed, exactly, whatever the feature kinds.
//!
//! Memory is bounded twice: at most `max_series` series (a new key beyond is refused with `too_many_series`, nothing
//! is evicted silently), and per series the stream state (bounded by the recipe) plus the last `series_rows` raw
//! rows. Those rows are kept so that when a new model is swapped in, each series is rebuilt for it on its next use by
//! replaying them through the new pipeline; a series longer than `series_rows` is then rebuilt from its kept tail
//! only, which is exact for lags and rolling windows shorter than that, not for expanding or EWM features (the
//! answer of `/observe` says `history_complete`).
//!
//! Locks: the map is locked only to find or insert a series; each series has its own lock, so series are fed and
//! forecast in parallel. A chunk is pushed onto a copy of the series' state, which replaces it only when the whole
//! chunk went through: a rejected request leaves the series as it was.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use kiln_domain::{Code, Column, Frame};
use kiln_features::{FeatureError, FeatureRow, StreamState};
use serde::Serialize;

use crate::error::ApiError;
use crate::model::LoadedModel;
use crate::parse::{Loc, Rows};

/// The answer of `POST /observe` and `GET /observe/{series}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct SeriesStatus {
    pub(crate) series: String,
    /// rows observed since the series was created
    pub(crate) observed: u64,
    /// raw rows kept for a model swap (at most the configured `series_rows`)
    pub(crate) rows_kept: usize,
    /// the time of the newest row (ISO 8601)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) last_time: Option<String>,
    /// whether `/predict` with this key gives a forecast (the series is past the features' warm-up)
    pub(crate) ready: bool,
    /// false once the series was rebuilt for a new model from fewer rows than it had observed
    pub(crate) history_complete: bool,
}

/// One series: its stream state for the model it was built with, the features of its newest row, and a bounded
/// tail of its raw rows.
struct Series {
    /// [`LoadedModel::serial`] of the model the state belongs to
    serial: u64,
    state: StreamState,
    /// the model inputs of the newest row past the warm-up
    last: Option<FeatureRow>,
    kept: Kept,
    observed: u64,
    history_complete: bool,
}

/// The last rows of a series, column by column.
struct Kept {
    columns: Vec<(String, KeptColumn)>,
    len: usize,
}

enum KeptColumn {
    Times(VecDeque<i64>),
    Values(VecDeque<f64>),
}

impl Kept {
    fn new() -> Kept {
        Kept { columns: Vec::new(), len: 0 }
    }

    /// Appends `frame`'s rows and drops the oldest beyond `limit`.
    fn append(&mut self, frame: &Frame, limit: usize) {
        let n = frame.n_rows();
        for (name, column) in frame.columns() {
            // a panel's series column: every row holds the series' own key, which the series is kept under
            if let Column::Categorical(_) = column {
                continue;
            }
            let at = match self.columns.iter().position(|(c, _)| c == name) {
                Some(at) => at,
                None => {
                    let empty = match column {
                        Column::Timestamp(_) => KeptColumn::Times(VecDeque::new()),
                        _ => KeptColumn::Values(VecDeque::new()),
                    };
                    self.columns.push((name.to_string(), empty));
                    self.columns.len() - 1
                }
            };
            match (&mut self.columns[at].1, column) {
                (KeptColumn::Times(kept), Column::Timestamp(v)) => kept.extend(v),
                (KeptColumn::Values(kept), Column::Numeric(v)) => kept.extend(v),
                // window rows are parsed against the schema: a column keeps its kind
                _ => {}
            }
        }
        self.len += n;
        let excess = self.len.saturating_sub(limit);
        if excess > 0 {
            for (_, column) in &mut self.columns {
                match column {
                    KeptColumn::Times(v) => drop(v.drain(..excess.min(v.len()))),
                    KeptColumn::Values(v) => drop(v.drain(..excess.min(v.len()))),
                }
            }
            self.len -= excess;
        }
    }

    /// The kept rows; a panel's series column (`series`: the column and the key) is added back.
    fn frame(&self, series: Option<(&str, &str)>) -> Result<Frame, ApiError> {
        let mut columns: Vec<(String, Column)> = self
            .columns
            .iter()
            .map(|(name, c)| {
                let column = match c {
                    KeptColumn::Times(v) => Column::Timestamp(v.iter().copied().collect()),
                    KeptColumn::Values(v) => Column::Numeric(v.iter().copied().collect()),
                };
                (name.clone(), column)
            })
            .collect();
        if let Some((column, key)) = series {
            columns.push((column.to_string(), Column::Categorical(vec![Some(key.to_string()); self.len])));
        }
        Frame::new(columns).map_err(ApiError::internal)
    }

    /// The last `n` values of the numeric column `name` and the last time, when `n` rows are kept.
    fn tail(&self, name: &str, n: usize) -> Option<(Vec<f64>, i64)> {
        if self.len < n {
            return None;
        }
        let mut values = None;
        let mut time = None;
        for (c, column) in &self.columns {
            match column {
                KeptColumn::Values(v) if c == name => values = Some(v.range(v.len() - n..).copied().collect()),
                KeptColumn::Times(t) => time = t.back().copied(),
                KeptColumn::Values(_) => {}
            }
        }
        Some((values?, time?))
    }
}

/// Every series the server keeps (see the module documentation).
pub(crate) struct SeriesStore {
    max_series: usize,
    series_rows: usize,
    map: Mutex<HashMap<String, Arc<Mutex<Series>>>>,
}

impl std::fmt::Debug for SeriesStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeriesStore")
            .field("max_series", &self.max_series)
            .field("series_rows", &self.series_rows)
            .field("series", &self.len())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // a panic while a series was locked cannot leave it half-updated: its state is replaced whole, at the end
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SeriesStore {
    pub(crate) fn new(max_series: usize, series_rows: usize) -> SeriesStore {
        SeriesStore { max_series, series_rows: series_rows.max(1), map: Mutex::new(HashMap::new()) }
    }

    /// How many series are kept.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    fn get(&self, key: &str) -> Option<Arc<Mutex<Series>>> {
        lock(&self.map).get(key).cloned()
    }

    /// Appends `rows` to the series `key` (created on its first rows) and returns its status.
    ///
    /// # Errors
    /// A tabular model, a full store, rows out of time order (also against the rows observed before), or values
    /// the features refuse; the series is left as it was.
    pub(crate) fn observe(&self, model: &LoadedModel, key: String, rows: Rows) -> Result<SeriesStatus, ApiError> {
        let pipeline = model.pipeline();
        let Some(recipe) = pipeline.recipe() else {
            return Err(not_forecast());
        };
        if recipe.ahead_rows() > 0 {
            return Err(ApiError::new(
                Code::InvalidValue,
                format!(
                    "the served model reads known_in_advance columns at each target time, which observed rows do not \
                     give: POST /predict a window that ends with {} future row(s) (target '{}' null) instead",
                    recipe.ahead_rows(),
                    recipe.target
                ),
            ));
        }
        let frame = match &recipe.series_column {
            Some(column) => with_series_key(rows.into_frame()?, column, &key)?,
            None => rows.into_frame()?,
        };
        let (entry, created) = {
            let mut map = lock(&self.map);
            match map.get(&key) {
                Some(s) => (s.clone(), false),
                None => {
                    if map.len() >= self.max_series {
                        return Err(ApiError::at(
                            Code::TooManySeries,
                            "series",
                            format!(
                                "this server keeps at most {} series and all are taken; delete one with DELETE \
                                 /observe/<series> or start the server with a larger --max-series",
                                self.max_series
                            ),
                        ));
                    }
                    let state = pipeline.stream_state().map_err(ApiError::internal)?;
                    let series = Series {
                        serial: model.serial(),
                        state,
                        last: None,
                        kept: Kept::new(),
                        observed: 0,
                        history_complete: true,
                    };
                    let entry = Arc::new(Mutex::new(series));
                    map.insert(key.clone(), entry.clone());
                    (entry, true)
                }
            }
        };
        let result = {
            let mut series = lock(&entry);
            self.push(&mut series, model, &key, &frame).map(|()| status(&key, &series))
        };
        if result.is_err() && created {
            // a series whose first rows were refused is not kept (unless another request fed it meanwhile)
            let mut map = lock(&self.map);
            if map.get(&key).is_some_and(|s| Arc::ptr_eq(s, &entry) && lock(s).observed == 0) {
                map.remove(&key);
            }
        }
        result
    }

    fn push(&self, series: &mut Series, model: &LoadedModel, key: &str, frame: &Frame) -> Result<(), ApiError> {
        self.rebuild_for(series, model, key)?;
        let pipeline = model.pipeline();
        let offset = series.state.rows();
        let mut state = series.state.clone();
        let prepared = pipeline.push_chunk(&mut state, frame.clone()).map_err(|e| {
            let e = match e {
                // rows of this request counted from its first; an earlier row is the series' last observed one
                FeatureError::NotSorted { column, prev_row, row, prev, next } => FeatureError::NotSorted {
                    column,
                    prev_row: prev_row.and_then(|p| p.checked_sub(offset)),
                    row: row.saturating_sub(offset),
                    prev,
                    next,
                },
                other => other,
            };
            ApiError::from_feature(e, Loc::default().observed_rows().path(None).as_deref(), &|row, column| {
                Loc::default().observed_rows().row(row).path(Some(column)).unwrap_or_default()
            })
        })?;
        if let (Some(n), Some(times), Some(current)) =
            (prepared.x.n_rows.checked_sub(1), prepared.times.as_deref(), prepared.current.as_deref())
        {
            series.last = Some(FeatureRow {
                time: times[n],
                current: current[n],
                values: prepared.x.row(n).to_vec(),
                ahead: Vec::new(),
                step_values: Vec::new(),
            });
        }
        series.state = state;
        series.kept.append(frame, self.series_rows);
        series.observed += frame.n_rows() as u64;
        Ok(())
    }

    /// Rebuilds a series made for another model by replaying its kept rows through `model`'s pipeline.
    fn rebuild_for(&self, series: &mut Series, model: &LoadedModel, key: &str) -> Result<(), ApiError> {
        if series.serial == model.serial() {
            return Ok(());
        }
        let pipeline = model.pipeline();
        let mut state = pipeline.stream_state().map_err(ApiError::internal)?;
        let panel = pipeline.recipe().and_then(|r| r.series_column.as_deref());
        let frame = series.kept.frame(panel.map(|column| (column, key)))?;
        let prepared = pipeline.push_chunk(&mut state, frame).map_err(|e| {
            ApiError::at(
                Code::InvalidValue,
                "series",
                format!(
                    "the served model changed and this series cannot be rebuilt for it from its kept rows ({e}); \
                     delete it (DELETE /observe/<series>) and observe it again"
                ),
            )
        })?;
        series.last = match (prepared.x.n_rows.checked_sub(1), prepared.times, prepared.current) {
            (Some(n), Some(times), Some(current)) => Some(FeatureRow {
                time: times[n],
                current: current[n],
                values: prepared.x.row(n).to_vec(),
                ahead: Vec::new(),
                step_values: Vec::new(),
            }),
            _ => None,
        };
        series.state = state;
        series.serial = model.serial();
        // from now on rows come parsed against the new model's inputs: keep those columns only, so that every kept
        // column grows with every chunk
        let inputs = pipeline.input_columns();
        series.kept.columns.retain(|(name, _)| inputs.contains(name));
        if (series.kept.len as u64) < series.observed {
            series.history_complete = false;
        }
        Ok(())
    }

    /// The model inputs of the newest row of the series `key`, for `model`.
    ///
    /// # Errors
    /// No such series, or one still in the features' warm-up; `field` names the record's `series`.
    pub(crate) fn last_row(
        &self,
        model: &LoadedModel,
        key: &str,
        field: Option<String>,
    ) -> Result<FeatureRow, ApiError> {
        self.ready(model, key, field, |series| series.last.clone())
    }

    /// The last `window` values of the series' target and the time of its newest row (a multi-step forecast's
    /// origin, exactly as a window of the same rows gives it).
    ///
    /// # Errors
    /// As [`SeriesStore::last_row`], or fewer kept rows than `window` (a server keeping fewer rows per series).
    pub(crate) fn history(
        &self,
        model: &LoadedModel,
        key: &str,
        window: usize,
        field: Option<String>,
    ) -> Result<(Vec<f64>, i64), ApiError> {
        let target = model.pipeline().recipe().map(|r| r.target.clone()).unwrap_or_default();
        let rows = self.series_rows;
        let kept = self.ready(model, key, field.clone(), |series| {
            series.last.as_ref().map(|_| series.kept.tail(&target, window))
        })?;
        kept.ok_or_else(|| ApiError {
            code: Code::NotEnoughRows,
            message: format!(
                "series '{key}': a forecast reads its last {window} rows, but this server keeps {rows} per series; \
                 start it with a larger --series-rows"
            ),
            field,
        })
    }

    /// `get` of the series `key` rebuilt for `model`, or the error of a series that is missing or still in the
    /// features' warm-up (`get` gives `None`).
    fn ready<T>(
        &self,
        model: &LoadedModel,
        key: &str,
        field: Option<String>,
        get: impl FnOnce(&Series) -> Option<T>,
    ) -> Result<T, ApiError> {
        let entry = self.get(key).ok_or_else(|| ApiError {
            code: Code::SeriesNotFound,
            message: format!("no series '{key}'; feed it first with POST /observe"),
            field: field.clone(),
        })?;
        let mut series = lock(&entry);
        self.rebuild_for(&mut series, model, key)?;
        get(&series).ok_or_else(|| {
            let needed = model.pipeline().recipe().map_or(0, kiln_features::TimeSeriesRecipe::min_window_rows);
            ApiError {
                code: Code::NotEnoughRows,
                message: format!(
                    "series '{key}' has {} rows; the model's features need at least {needed} before its first forecast",
                    series.observed
                ),
                field,
            }
        })
    }

    /// The status of the series `key`.
    ///
    /// # Errors
    /// No such series.
    pub(crate) fn status(&self, key: &str) -> Result<SeriesStatus, ApiError> {
        let entry = self.get(key).ok_or_else(|| not_found(key))?;
        let series = lock(&entry);
        Ok(status(key, &series))
    }

    /// Forgets the series `key`.
    ///
    /// # Errors
    /// No such series.
    pub(crate) fn remove(&self, key: &str) -> Result<SeriesStatus, ApiError> {
        let entry = lock(&self.map).remove(key).ok_or_else(|| not_found(key))?;
        let series = lock(&entry);
        Ok(status(key, &series))
    }
}

fn status(key: &str, series: &Series) -> SeriesStatus {
    SeriesStatus {
        series: key.to_string(),
        observed: series.observed,
        rows_kept: series.kept.len,
        last_time: series.kept.columns.iter().find_map(|(_, c)| match c {
            KeptColumn::Times(t) => t.back().map(|&t| crate::time::format_iso(t)),
            KeptColumn::Values(_) => None,
        }),
        ready: series.last.is_some(),
        history_complete: series.history_complete,
    }
}

/// The rows of an `/observe` body for the panel series `key`: a row that leaves out the series column gets the key;
/// a row naming another series is refused, naming it.
fn with_series_key(frame: Frame, column: &str, key: &str) -> Result<Frame, ApiError> {
    let columns = frame
        .into_columns()
        .into_iter()
        .map(|(name, values)| match values {
            Column::Categorical(keys) if name == column => {
                if let Some(row) = keys.iter().position(|k| k.as_deref().is_some_and(|k| k != key)) {
                    let other = keys[row].as_deref().unwrap_or_default();
                    return Err(ApiError::at(
                        Code::InvalidValue,
                        Loc::default().observed_rows().row(row).path(Some(column)).unwrap_or_default(),
                        format!(
                            "this row is of series '{other}' (column '{column}'), but the body's series is '{key}'; \
                             send each series' rows under its own key"
                        ),
                    ));
                }
                let n = keys.len();
                Ok((name, Column::Categorical(vec![Some(key.to_string()); n])))
            }
            other => Ok((name, other)),
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Frame::new(columns).map_err(ApiError::internal)
}

fn not_found(key: &str) -> ApiError {
    ApiError::at(Code::SeriesNotFound, "series", format!("no series '{key}'; feed it first with POST /observe"))
}

pub(crate) fn not_forecast() -> ApiError {
    ApiError::new(
        Code::NotAForecastModel,
        "the served model is not a forecaster: /observe keeps time series for forecast models only",
    )
}
