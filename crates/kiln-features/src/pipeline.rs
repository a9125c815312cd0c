//! The fitted feature pipeline: what a model bundle stores (`kiln/pipeline.json`) so that scoring and serving build
//! exactly the model inputs of training: raw rows -> features (time-series kernels, or the raw columns of a tabular
//! row) -> fitted preprocessing -> fitted selection -> the model's columns, in order.

use serde::{Deserialize, Serialize};

use crate::preprocess::{FillValue, FittedPreprocessor, FittedStep, frame_to_matrix};
use crate::select::FittedSelection;
use crate::{FeatureError, FeatureRow, FeatureStream, SeriesStep, TimeSeriesRecipe};
use kiln_domain::{Column, ColumnKind, Frame, Matrix};

/// Where the features of a row come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PipelineInput {
    /// lag, rolling, calendar, ... features of a time-ordered series; one row per origin time
    Forecast(TimeSeriesRecipe),
    /// the raw columns of each row, as they are
    Tabular(TabularInput),
}

/// The raw columns a tabular model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabularInput {
    /// the feature columns, in order (resolved from `__AUTO__` or the list at training time)
    pub columns: Vec<String>,
    /// a column naming each row (kept beside the predictions, never a feature)
    pub id_column: Option<String>,
}

/// A recipe together with its fitted steps and the names of the model's inputs. The time-series kernels are
/// stateless (every value is a function of rows `<= t`); preprocessing and selection carry what they learned from
/// the training part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedPipeline {
    pub input: PipelineInput,
    #[serde(default)]
    pub preprocess: Option<FittedPreprocessor>,
    #[serde(default)]
    pub selection: Option<FittedSelection>,
    /// classifiers: how a probability becomes a class
    #[serde(default)]
    pub decision: Option<Decision>,
    /// the model's input columns, in order
    pub feature_names: Vec<String>,
    /// forecast: the series' step, learned from the training times, which dates each forecast's target time
    /// (absent in bundles written before it existed: those forecasts carry their origin time only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<SeriesStep>,
    /// a multi-step forecast with conformal prediction intervals: the calibration's errors per series and step
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<crate::ConformalIntervals>,
}

/// How a classifier's probability of the positive class becomes a class label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// the target value of class 1
    pub positive: String,
    /// the target value of class 0, when the training target had exactly two values
    #[serde(default)]
    pub negative: Option<String>,
    /// class 1 when the probability is >= this
    pub threshold: f64,
}

impl Decision {
    /// The label written for class 0: the other training value, or `not <positive>`.
    pub fn negative_label(&self) -> String {
        self.negative.clone().unwrap_or_else(|| format!("not {}", self.positive))
    }

    /// The class label of probability `p` of the positive class: the positive label when `p >= threshold`, else
    /// the negative one (a NaN is negative). Batch scoring and the server both decide with this.
    pub fn class_of(&self, p: f64) -> String {
        if p >= self.threshold { self.positive.clone() } else { self.negative_label() }
    }
}

/// The model inputs of a frame, with what identifies each row.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub x: Matrix,
    /// forecast: origin time of each row (UTC ms)
    pub times: Option<Vec<i64>>,
    /// forecast: target value at the origin time (to invert the target transform)
    pub current: Option<Vec<f64>>,
    /// forecast: target value `horizon` rows later (NaN past the end)
    pub future: Option<Vec<f64>>,
    /// rows dropped at the start (forecast warm-up)
    pub warmup_dropped: usize,
    /// a panel forecast: the series of each row
    pub series: Option<Vec<String>>,
    /// a direct multi-step forecast with `known_in_advance` columns: the model inputs of steps 2, 3, ... (those
    /// columns at `t + k`; `x` is step 1's); empty otherwise, where every step reads `x`
    pub step_x: Vec<Matrix>,
}

impl FittedPipeline {
    /// A forecast pipeline without fitted steps.
    pub fn new(recipe: TimeSeriesRecipe, feature_names: &[String]) -> FittedPipeline {
        FittedPipeline {
            input: PipelineInput::Forecast(recipe),
            preprocess: None,
            selection: None,
            decision: None,
            feature_names: feature_names.to_vec(),
            step: None,
            intervals: None,
        }
    }

    /// The time a forecast made at `origin` is for: `origin` + horizon steps of the series (`None` for a tabular
    /// pipeline, or a forecast bundle without a learned step).
    pub fn target_time(&self, origin: i64) -> Option<i64> {
        Some(self.step?.advance(origin, self.recipe()?.horizon))
    }

    /// The raw columns whose values are the model's inputs as they are, in the model's order: a tabular pipeline
    /// without preprocessing or selection, whose columns' model names are the model's feature names. Then
    /// [`FittedPipeline::transform`] only copies these (numeric) columns into the matrix, and a caller holding a
    /// row's values can skip the frame altogether.
    pub fn passthrough_columns(&self) -> Option<&[String]> {
        let PipelineInput::Tabular(t) = &self.input else { return None };
        let same = t.columns.len() == self.feature_names.len()
            && t.columns.iter().zip(&self.feature_names).all(|(c, f)| model_column_name(c) == *f);
        (self.preprocess.is_none() && self.selection.is_none() && same).then_some(t.columns.as_slice())
    }

    /// The time-series recipe, for a forecast pipeline.
    pub fn recipe(&self) -> Option<&TimeSeriesRecipe> {
        match &self.input {
            PipelineInput::Forecast(r) => Some(r),
            PipelineInput::Tabular(_) => None,
        }
    }

    /// The raw columns a frame must have to be scored.
    pub fn input_columns(&self) -> Vec<String> {
        match &self.input {
            PipelineInput::Forecast(r) => r.input_columns(),
            PipelineInput::Tabular(t) => t.id_column.iter().chain(&t.columns).cloned().collect(),
        }
    }

    /// The type each raw input column must have, where the pipeline fixes it, so that a reader can parse every
    /// chunk of a long file the same way: for a forecast the time column is a timestamp and every other input
    /// numeric; for a tabular model, what the first preprocessing step that reads a column takes (numeric for
    /// `scale`, `bin`, `ratio`, `product` and `impute` with a number; categorical for `one_hot`, `ordinal` and
    /// `impute` with a label), and numeric for a column that reaches the model as it is. The id column and columns
    /// that are only dropped are left out.
    pub fn input_kinds(&self) -> Vec<(String, ColumnKind)> {
        match &self.input {
            PipelineInput::Forecast(r) => r
                .input_columns()
                .into_iter()
                .map(|c| {
                    let kind = if c == r.time_column {
                        ColumnKind::Timestamp
                    } else if r.series_column.as_ref() == Some(&c) {
                        ColumnKind::Categorical
                    } else {
                        ColumnKind::Numeric
                    };
                    (c, kind)
                })
                .collect(),
            PipelineInput::Tabular(t) => tabular_kinds(&t.columns, self.preprocess.as_ref()),
        }
    }

    /// A [`PipelineStream`] at the start of a sequence of chunks.
    ///
    /// # Errors
    /// An invalid recipe.
    pub fn stream(&self) -> Result<PipelineStream<'_>, FeatureError> {
        Ok(PipelineStream { pipeline: self, state: self.stream_state()? })
    }

    /// The owned state of a stream at the start of a sequence of chunks, for a caller that keeps it apart from the
    /// pipeline (a server keeping one per series); advance it with [`FittedPipeline::push_chunk`].
    ///
    /// # Errors
    /// An invalid recipe.
    pub fn stream_state(&self) -> Result<StreamState, FeatureError> {
        let features = match &self.input {
            PipelineInput::Forecast(recipe) => Some(recipe.stream()?),
            PipelineInput::Tabular(_) => None,
        };
        Ok(StreamState { features, preprocess: self.preprocess.clone() })
    }

    /// [`PipelineStream::push`] on an owned [`StreamState`] made by this pipeline's
    /// [`FittedPipeline::stream_state`]. After an error the state must not be used further (push onto a clone to
    /// keep the state of a failed chunk).
    ///
    /// # Errors
    /// As [`PipelineStream::push`].
    pub fn push_chunk(&self, state: &mut StreamState, chunk: Frame) -> Result<Prepared, FeatureError> {
        let (features, times, current, warmup_dropped, series) = match (&mut state.features, &self.input) {
            (Some(stream), _) => {
                let c = stream.push(&chunk)?;
                drop(chunk);
                (c.features, Some(c.times), Some(c.current), c.warmup_dropped, c.series)
            }
            (None, PipelineInput::Tabular(t)) => (take_columns(chunk, &t.columns)?, None, None, 0, None),
            (None, PipelineInput::Forecast(_)) => {
                return Err(FeatureError::spec("input", "a forecast stream without its feature stream"));
            }
        };
        let features = match &self.input {
            PipelineInput::Forecast(recipe) => recipe.with_series_feature(features, series.as_deref())?,
            PipelineInput::Tabular(_) => features,
        };
        // a step's error names the row of the chunk (the rows it saw start after the chunk's warm-up rows)
        let features = match &mut state.preprocess {
            Some(p) => p.transform_chunk(features).map_err(|e| e.shift_row(warmup_dropped))?,
            None => features,
        };
        let x = self.select(features).map_err(|e| e.shift_row(warmup_dropped))?;
        Ok(Prepared { x, times, current, future: None, warmup_dropped, series, step_x: Vec::new() })
    }

    /// The model inputs for every row of `frame` (forecast: every origin time past the warm-up).
    ///
    /// # Errors
    /// A missing or mistyped column, too few rows, a fitted step that fails, or inputs that are not the model's.
    pub fn transform(&self, frame: &Frame) -> Result<Prepared, FeatureError> {
        let (features, times, current, future, warmup_dropped, series, step_ahead) = match &self.input {
            PipelineInput::Forecast(recipe) => {
                let mut table = recipe.build_table(frame)?;
                if recipe.ahead_rows() > 0 {
                    table = only_origins_with_rows_ahead(table, recipe.ahead_rows());
                }
                let table = in_frame_order(table);
                let series: Option<Vec<String>> =
                    table.panel.map(|p| p.series.iter().map(|&s| p.keys[s as usize].clone()).collect());
                let features = recipe.with_series_feature(matrix_to_frame(&table.x)?, series.as_deref())?;
                let step_ahead = table.step_ahead;
                (
                    features,
                    Some(table.times),
                    Some(table.current),
                    Some(table.future),
                    table.warmup_dropped,
                    series,
                    step_ahead,
                )
            }
            PipelineInput::Tabular(t) => {
                let features = select_columns(frame, &t.columns)?;
                (features, None, None, None, 0, None, Vec::new())
            }
        };
        let step_x = match self.recipe() {
            Some(recipe) if !step_ahead.is_empty() => step_ahead
                .iter()
                .map(|values| self.finish(recipe.at_step(features.clone(), values)?))
                .collect::<Result<_, _>>()?,
            _ => Vec::new(),
        };
        let x = self.finish(features)?;
        Ok(Prepared { x, times, current, future, warmup_dropped, series, step_x })
    }

    /// The model inputs of the last row of a window of raw rows (forecast serving). With a windowed recipe any
    /// window of at least [`TimeSeriesRecipe::min_window_rows`] rows gives exactly the batch values.
    ///
    /// # Errors
    /// A tabular pipeline, too few rows, a missing column, or inputs that are not the model's.
    pub fn transform_last(&self, window: &Frame) -> Result<FeatureRow, FeatureError> {
        let PipelineInput::Forecast(recipe) = &self.input else {
            return Err(FeatureError::Spec {
                path: "input".to_string(),
                reason: "a tabular pipeline has no time window; transform the rows themselves".to_string(),
            });
        };
        let row = recipe.build_last_row(window)?;
        let names = recipe.feature_names();
        // a panel's window holds one series (build_last_row checks it)
        let key: Option<Vec<String>> = match &recipe.series_column {
            Some(column) if recipe.series_feature() => {
                let (codes, keys) = crate::table::series_codes(window, column)?;
                codes.last().map(|&c| vec![keys[c as usize].clone()])
            }
            _ => None,
        };
        let finish = |values: Vec<f64>| -> Result<Vec<f64>, FeatureError> {
            let x = Matrix { names: names.clone(), data: values, n_rows: 1 };
            Ok(self.finish(recipe.with_series_feature(matrix_to_frame(&x)?, key.as_deref())?)?.data)
        };
        // a direct recipe's later steps read the known_in_advance columns at their own target times
        let columns = recipe.ahead_columns();
        let step_values = if columns.is_empty() {
            Vec::new()
        } else {
            (2..=recipe.direct_steps())
                .map(|k| {
                    let mut values = row.values.clone();
                    for (a, &j) in columns.iter().enumerate() {
                        values[j] = row.ahead[(k - 1) * columns.len() + a];
                    }
                    finish(values)
                })
                .collect::<Result<_, _>>()?
        };
        let values = finish(row.values)?;
        Ok(FeatureRow { time: row.time, current: row.current, values, ahead: row.ahead, step_values })
    }

    /// Applies the fitted preprocessing and selection to a frame of features and checks the result's columns.
    ///
    /// # Errors
    /// A fitted step that fails, or columns that are not the model's.
    pub fn finish(&self, features: Frame) -> Result<Matrix, FeatureError> {
        let features = match &self.preprocess {
            Some(p) => p.transform_owned(features)?,
            None => features,
        };
        self.select(features)
    }

    /// The model matrix of preprocessed features (dropped once copied into the matrix): the fitted selection, then
    /// the check of the columns.
    fn select(&self, features: Frame) -> Result<Matrix, FeatureError> {
        let x = model_matrix(&features)?;
        drop(features);
        let x = match &self.selection {
            Some(s) => s.apply(&x)?,
            None => x,
        };
        self.check_names(&x.names)?;
        Ok(x)
    }

    fn check_names(&self, names: &[String]) -> Result<(), FeatureError> {
        if names == self.feature_names.as_slice() {
            return Ok(());
        }
        Err(FeatureError::Spec {
            path: "feature_names".to_string(),
            reason: format!("the pipeline makes {names:?}, but the model was trained on {:?}", self.feature_names),
        })
    }
}

/// [`FittedPipeline::transform`] chunk by chunk over a long sequence of rows (a forecast's series in time order, or
/// a tabular file), in bounded memory: the feature kernels carry what they need from the earlier chunks
/// ([`FeatureStream`]) and a `forward_fill` step carries its last values, so every row gets exactly the model inputs
/// one call on all rows gives it.
#[derive(Debug, Clone)]
pub struct PipelineStream<'a> {
    pipeline: &'a FittedPipeline,
    state: StreamState,
}

/// What a stream carries from one chunk to the next (see [`PipelineStream`]), owned, without the pipeline: the
/// feature kernels' state and the fitted steps that carry values (`forward_fill`). Its size is bounded by the recipe
/// (the longest lag or window), not by the rows pushed.
#[derive(Debug, Clone)]
pub struct StreamState {
    features: Option<FeatureStream>,
    preprocess: Option<FittedPreprocessor>,
}

impl StreamState {
    /// Raw rows pushed so far (forecast; 0 for a tabular stream, which does not count them).
    pub fn rows(&self) -> usize {
        self.features.as_ref().map_or(0, FeatureStream::rows)
    }
}

impl PipelineStream<'_> {
    /// The model inputs of the next chunk's rows (forecast: those past the series' warm-up; `future` is `None`,
    /// since a chunk's last targets lie in the next chunk).
    ///
    /// # Errors
    /// As [`FittedPipeline::transform`], except that too few rows is not an error here (a chunk may lie in the
    /// warm-up); a forecast chunk whose first time does not come after the previous chunk's last one is
    /// [`FeatureError::NotSorted`]. After an error the stream must not be used further.
    /// The chunk is taken by value, so that its columns move through the steps without copies.
    pub fn push(&mut self, chunk: Frame) -> Result<Prepared, FeatureError> {
        self.pipeline.push_chunk(&mut self.state, chunk)
    }
}

/// The kinds of a tabular model's raw columns (see [`FittedPipeline::input_kinds`]).
fn tabular_kinds(columns: &[String], preprocess: Option<&FittedPreprocessor>) -> Vec<(String, ColumnKind)> {
    // raw columns still present under their own name with their own values' type
    let mut live: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut kinds: Vec<(String, ColumnKind)> = Vec::new();
    let mut decide = |live: &[&str], name: &str, kind: ColumnKind| {
        if live.contains(&name) && !kinds.iter().any(|(n, _)| n == name) {
            kinds.push((name.to_string(), kind));
        }
    };
    for step in preprocess.map_or(&[][..], FittedPreprocessor::steps) {
        match step {
            FittedStep::Impute(s) => {
                for c in &s.columns {
                    match &c.value {
                        Some(FillValue::Number(_)) => decide(&live, &c.name, ColumnKind::Numeric),
                        Some(FillValue::Text(_)) => decide(&live, &c.name, ColumnKind::Categorical),
                        None => {}
                    }
                }
            }
            FittedStep::Scale(s) => s.columns.iter().for_each(|c| decide(&live, &c.name, ColumnKind::Numeric)),
            FittedStep::OneHot(s) => {
                for c in &s.columns {
                    decide(&live, &c.name, ColumnKind::Categorical);
                    live.retain(|n| *n != c.name);
                }
            }
            FittedStep::Ordinal(s) => {
                for c in &s.columns {
                    decide(&live, &c.name, ColumnKind::Categorical);
                    live.retain(|n| *n != c.name);
                }
            }
            FittedStep::Bin(s) => decide(&live, &s.column, ColumnKind::Numeric),
            FittedStep::Ratio(s) => {
                decide(&live, &s.numerator, ColumnKind::Numeric);
                decide(&live, &s.denominator, ColumnKind::Numeric);
            }
            FittedStep::Product(s) => s.columns.iter().for_each(|c| decide(&live, c, ColumnKind::Numeric)),
            FittedStep::Drop(s) => live.retain(|n| !s.columns.iter().any(|c| c == n)),
        }
    }
    // what is left reaches the model matrix, which takes numbers only
    for name in live.clone() {
        decide(&live, name, ColumnKind::Numeric);
    }
    // in the order of the input columns
    columns.iter().filter_map(|c| kinds.iter().find(|(n, _)| n == c).cloned()).collect()
}

/// The model's matrix of a frame of features: [`frame_to_matrix`] with every name made safe for the model
/// libraries ([`model_column_name`]).
///
/// # Errors
/// A column that is not numeric, or two names that become the same.
pub fn model_matrix(features: &Frame) -> Result<Matrix, FeatureError> {
    let mut x = frame_to_matrix(features)?;
    let mut seen = std::collections::HashMap::new();
    for name in &mut x.names {
        let safe = model_column_name(name);
        if let Some(first) = seen.insert(safe.clone(), name.clone()) {
            return Err(FeatureError::Spec {
                path: "features".to_string(),
                reason: format!("columns '{first}' and '{name}' both become '{safe}' as model feature names"),
            });
        }
        *name = safe;
    }
    Ok(x)
}

/// A feature name LightGBM and XGBoost accept: whitespace and the characters `,:[]{}"<>` become `_` (one-hot
/// columns carry category text such as `MultipleLines_No phone service`).
pub fn model_column_name(name: &str) -> String {
    name.chars().map(|c| if c.is_whitespace() || ",:[]{}\"<>".contains(c) { '_' } else { c }).collect()
}

/// The columns of a feature matrix as a frame of numeric columns (for the preprocessing steps).
///
/// # Errors
/// Never in practice; a [`FeatureError::Spec`] if the matrix has duplicate names.
pub fn matrix_to_frame(x: &Matrix) -> Result<Frame, FeatureError> {
    let columns = (0..x.n_cols()).map(|j| (x.names[j].clone(), Column::Numeric(x.column(j)))).collect();
    Frame::new(columns).map_err(|e| FeatureError::Spec { path: "features".to_string(), reason: e.to_string() })
}

/// The named columns of `frame`, in the given order, moved out of it (the others are dropped).
///
/// # Errors
/// [`FeatureError::MissingColumn`] naming the first absent column.
fn take_columns(frame: Frame, columns: &[String]) -> Result<Frame, FeatureError> {
    if let Some(missing) = columns.iter().find(|c| !frame.has_column(c)) {
        return Err(FeatureError::MissingColumn { needed_by: "features".to_string(), column: missing.clone() });
    }
    let mut all: Vec<Option<(String, Column)>> = frame.into_columns().into_iter().map(Some).collect();
    let mut taken = Vec::with_capacity(columns.len());
    for name in columns {
        let slot = all.iter_mut().find(|c| c.as_ref().is_some_and(|(n, _)| n == name));
        match slot.and_then(Option::take) {
            Some(column) => taken.push(column),
            None => {
                return Err(FeatureError::Spec {
                    path: "features".to_string(),
                    reason: format!("the column '{name}' is listed twice"),
                });
            }
        }
    }
    Frame::new(taken).map_err(|e| FeatureError::Spec { path: "features".to_string(), reason: e.to_string() })
}

/// The named columns of `frame`, in the given order.
///
/// # Errors
/// [`FeatureError::MissingColumn`] naming the first absent column.
pub fn select_columns(frame: &Frame, columns: &[String]) -> Result<Frame, FeatureError> {
    if let Some(missing) = columns.iter().find(|c| !frame.has_column(c)) {
        return Err(FeatureError::MissingColumn { needed_by: "features".to_string(), column: missing.clone() });
    }
    frame.select(columns).map_err(|e| FeatureError::Spec { path: "features".to_string(), reason: e.to_string() })
}

/// A panel's feature table with its rows in the order of the frame it was built from (scoring answers row for row in
/// the input's order, as the chunked path does); a single series' table as it is.
fn in_frame_order(table: crate::FeatureTable) -> crate::FeatureTable {
    let Some(panel) = &table.panel else {
        return table;
    };
    let mut order: Vec<usize> = (0..table.times.len()).collect();
    order.sort_unstable_by_key(|&i| panel.frame_rows[i]);
    if order.iter().enumerate().all(|(i, &o)| i == o) {
        return table;
    }
    table.take_rows(&order)
}

/// A table of a recipe with `known_in_advance` columns (rows in time order, a panel's by time then series) with only
/// the origins it can forecast: not a future row (its target is missing; it only carries the known values of later
/// target times), and with `ahead` rows after it in its series (the target times whose known values it reads).
fn only_origins_with_rows_ahead(table: crate::FeatureTable, ahead: usize) -> crate::FeatureTable {
    let with_rows = table.has_rows_after(ahead);
    let keep: Vec<usize> = (0..with_rows.len()).filter(|&i| with_rows[i] && !table.current[i].is_nan()).collect();
    if keep.len() == with_rows.len() { table } else { table.take_rows(&keep) }
}
