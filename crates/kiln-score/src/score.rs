//! `score`: predictions for a frame of raw rows with a loaded bundle, built with the same pipeline code as training;
//! [`ChunkScorer`]: the same for a long file pushed chunk by chunk, with the very same predictions.

use std::time::{Duration, Instant};

use kiln_domain::{Column, Frame, Matrix};
use kiln_features::{FittedPipeline, PipelineInput, PipelineStream, Prepared, TimeSeriesRecipe};
use kiln_models::Bundle;

use crate::ScoreError;

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
    /// forecast: the time each prediction is for (origin + horizon steps of the series, UTC ms), when the bundle
    /// knows the series' step
    pub target_times: Option<Vec<i64>>,
    /// a panel forecast: the series column and the series of each prediction
    pub series: Option<(String, Vec<String>)>,
    /// a multi-step forecast: the step (1..=H) of each prediction; rows go origin by origin, steps in order
    pub steps: Option<Vec<u32>>,
    /// conformal prediction intervals: `(name, bound of every prediction)`, `lo_80`, `hi_80`, ...
    pub bounds: Option<Vec<(String, Vec<f64>)>>,
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
pub fn score(bundle: &Bundle<FittedPipeline>, frame: &Frame, explain: bool) -> Result<Scored, ScoreError> {
    if let Some(recipe) = multi_step(bundle, explain)? {
        let scored = score_steps(bundle, recipe.origin_stream()?.push(frame, 0)?)?;
        if scored.predictions.is_empty() {
            return Err(not_enough_rows(frame.n_rows(), recipe.warmup()));
        }
        return Ok(scored);
    }
    let ids = tabular_keys(&bundle.pipeline, frame, 0)?;
    let prepared = bundle.pipeline.transform(frame)?;
    if prepared.x.n_rows == 0 {
        return Err(not_enough_rows(frame.n_rows(), prepared.warmup_dropped));
    }
    if is_direct(bundle) {
        return score_direct(bundle, prepared);
    }
    predict_prepared(bundle, prepared, ids, explain)
}

fn not_enough_rows(given: usize, warmup: usize) -> ScoreError {
    ScoreError::NotEnoughRows(format!(
        "{given} rows given, the features need at least {} rows of history",
        warmup.saturating_add(1)
    ))
}

/// Scores a long file chunk by chunk with bounded memory: [`ChunkScorer::push`] each chunk of raw rows in file
/// order (a forecast's in time order), then [`ChunkScorer::finish`]. A forecast's features carry what they need from
/// the earlier chunks (the last rows for lags and windows, the running EWM and expanding mean), so the predictions
/// are exactly those [`score`] makes on the whole file at once; a tabular model scores each row on its own.
#[derive(Debug)]
pub struct ChunkScorer<'a> {
    bundle: &'a Bundle<FittedPipeline>,
    stream: PipelineStream<'a>,
    /// a multi-step forecast: the origins of each chunk, with the history their steps need
    origins: Option<kiln_features::OriginStream>,
    explain: bool,
    rows_in: usize,
    rows_scored: usize,
    warmup_dropped: usize,
    features_time: Duration,
    model_time: Duration,
}

/// One chunk's features from [`ChunkScorer::prepare`], ready for the model.
#[derive(Debug)]
pub struct Features(Pending);

#[derive(Debug)]
enum Pending {
    /// a recursive multi-step forecast: the origins with the history their steps need
    Origins(kiln_features::Origins),
    /// any other bundle: the model's input rows and their keys
    Rows { prepared: Prepared, ids: Option<RowKeys> },
}

impl Features {
    /// The chunk's predictions by `bundle` (the one that prepared them), with SHAP contributions when `explain`.
    ///
    /// # Errors
    /// As [`score`].
    pub fn predict(self, bundle: &Bundle<FittedPipeline>, explain: bool) -> Result<Scored, ScoreError> {
        match self.0 {
            Pending::Origins(origins) => score_steps(bundle, origins),
            Pending::Rows { prepared, .. } if is_direct(bundle) => score_direct(bundle, prepared),
            Pending::Rows { prepared, ids } => predict_prepared(bundle, prepared, ids, explain),
        }
    }
}

/// What a [`ChunkScorer`] did in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreTotals {
    pub rows_in: usize,
    pub rows_scored: usize,
    pub warmup_dropped: usize,
    /// wall time spent building the features (the row keys and the pipeline's transform)
    pub features_time: Duration,
    /// wall time spent in the model's prediction (with `explain`, its contributions too) and assembling the output
    pub model_time: Duration,
}

impl<'a> ChunkScorer<'a> {
    /// A scorer at the start of a file.
    ///
    /// # Errors
    /// An invalid recipe in the bundle, or `explain` for a model kind without native contributions.
    pub fn new(bundle: &'a Bundle<FittedPipeline>, explain: bool) -> Result<ChunkScorer<'a>, ScoreError> {
        if explain && bundle.per_series.is_some() {
            return Err(ScoreError::MultiStep("SHAP contributions (--explain) of one model per series"));
        }
        if explain && !bundle.model.has_contributions() {
            return Err(no_contributions(bundle));
        }
        let stream = bundle.pipeline.stream()?;
        let origins = multi_step(bundle, explain)?.map(TimeSeriesRecipe::origin_stream).transpose()?;
        Ok(ChunkScorer {
            bundle,
            stream,
            origins,
            explain,
            rows_in: 0,
            rows_scored: 0,
            warmup_dropped: 0,
            features_time: Duration::ZERO,
            model_time: Duration::ZERO,
        })
    }

    /// The predictions for the next chunk's rows (none while a forecast is still in its warm-up): its features
    /// ([`ChunkScorer::prepare`]), then the model ([`Features::predict`]).
    ///
    /// # Errors
    /// As [`score`], except too few rows (see [`ChunkScorer::finish`]); a forecast chunk that does not continue
    /// the time order. After an error the scorer must not be used further.
    /// The chunk is taken by value, so that its columns move through the pipeline without copies.
    pub fn push(&mut self, chunk: Frame) -> Result<Scored, ScoreError> {
        let features = self.prepare(chunk)?;
        let started = Instant::now();
        let scored = features.predict(self.bundle, self.explain);
        self.model_time += started.elapsed();
        scored
    }

    /// The next chunk's features, in file order: the part of scoring that carries state from chunk to chunk (a
    /// forecast's history). What is left, [`Features::predict`], needs only the bundle, so chunks can be predicted
    /// on other threads.
    ///
    /// # Errors
    /// As [`ChunkScorer::push`].
    pub fn prepare(&mut self, chunk: Frame) -> Result<Features, ScoreError> {
        let offset = self.rows_in;
        self.rows_in += chunk.n_rows();
        let started = Instant::now();
        // known_in_advance columns are read from the rows after each origin, which the next chunk would hold
        let whole = self.bundle.pipeline.recipe().is_some_and(|r| r.ahead_rows() > 0);
        if whole && offset > 0 {
            return Err(ScoreError::WholeInput(format!(
                "a second chunk came after the first {offset} rows (read the input whole)"
            )));
        }
        let features = if let Some(origins) = &mut self.origins {
            let origins = origins.push(&chunk, offset)?;
            self.warmup_dropped += origins.warmup_dropped;
            self.rows_scored += origins.times.len();
            Features(Pending::Origins(origins))
        } else {
            let ids = tabular_keys(&self.bundle.pipeline, &chunk, offset)?;
            // a step's error names the row of the chunk; told to the user as the row of the whole input
            let prepared = if whole {
                self.bundle.pipeline.transform(&chunk)?
            } else {
                self.stream.push(chunk).map_err(|e| e.shift_row(offset))?
            };
            self.warmup_dropped += prepared.warmup_dropped;
            self.rows_scored += prepared.x.n_rows;
            Features(Pending::Rows { prepared, ids })
        };
        self.features_time += started.elapsed();
        Ok(features)
    }

    /// Adds wall time spent predicting outside [`ChunkScorer::push`] (by [`Features::predict`] on other threads).
    pub fn add_model_time(&mut self, time: Duration) {
        self.model_time += time;
    }

    /// The totals, once every chunk was pushed.
    ///
    /// # Errors
    /// [`ScoreError::NotEnoughRows`] when no row at all could be scored.
    pub fn finish(&self) -> Result<ScoreTotals, ScoreError> {
        if self.rows_scored == 0 {
            return Err(not_enough_rows(self.rows_in, self.warmup_dropped.max(self.warmup())));
        }
        Ok(ScoreTotals {
            rows_in: self.rows_in,
            rows_scored: self.rows_scored,
            warmup_dropped: self.warmup_dropped,
            features_time: self.features_time,
            model_time: self.model_time,
        })
    }

    fn warmup(&self) -> usize {
        self.bundle.pipeline.recipe().map_or(0, TimeSeriesRecipe::warmup)
    }
}

/// A multi-step recipe, or `None`; `explain` is refused for it (the contributions are the next step's only).
/// A recursive multi-step recipe, or `None`; `explain` is refused for any multi-step recipe (the contributions
/// would be step 1's only).
fn multi_step(bundle: &Bundle<FittedPipeline>, explain: bool) -> Result<Option<&TimeSeriesRecipe>, ScoreError> {
    match bundle.pipeline.recipe() {
        Some(recipe) if recipe.multi_step.is_some() => {
            if explain {
                return Err(ScoreError::MultiStep("SHAP contributions (--explain)"));
            }
            Ok((recipe.direct_steps() == 0).then_some(recipe))
        }
        _ => Ok(None),
    }
}

/// Every step from every origin of a direct multi-step bundle: each step's model on the origin's model inputs.
fn score_direct(bundle: &Bundle<FittedPipeline>, prepared: Prepared) -> Result<Scored, ScoreError> {
    let pipeline = &bundle.pipeline;
    let recipe = pipeline.recipe().ok_or(ScoreError::MultiStep("a tabular pipeline"))?;
    pipeline.step.ok_or(ScoreError::MultiStep("a bundle without the series' step"))?;
    if prepared.x.names != bundle.metadata.feature_names {
        return Err(ScoreError::FeatureMismatch {
            expected: bundle.metadata.feature_names.clone(),
            actual: prepared.x.names.clone(),
        });
    }
    let models: Vec<&kiln_models::FittedModel> = std::iter::once(&bundle.model).chain(&bundle.step_models).collect();
    let steps = models.len();
    let outputs: Vec<Vec<f64>> = if prepared.x.n_rows == 0 {
        vec![Vec::new(); steps]
    } else {
        // with known_in_advance columns, each step reads them at its own target time
        models
            .iter()
            .enumerate()
            .map(|(k, m)| {
                m.predict(if k == 0 { &prepared.x } else { prepared.step_x.get(k - 1).unwrap_or(&prepared.x) })
            })
            .collect::<Result<_, _>>()?
    };
    let origins = prepared.times.unwrap_or_default();
    let current = prepared.current.unwrap_or_default();
    let forecasts: Vec<Vec<f64>> = outputs
        .iter()
        .map(|out| out.iter().zip(&current).map(|(&o, &c)| recipe.target_transform.invert(c, o)).collect())
        .collect();
    Ok(long_form(bundle, recipe, &origins, prepared.series, &forecasts, prepared.warmup_dropped))
}

/// Multi-step forecasts (`forecasts[k][o]`: step k + 1 from origin o) in long form, origin by origin: each row's
/// origin, target time, step, forecast, series (a panel) and interval bounds (a bundle with intervals).
fn long_form(
    bundle: &Bundle<FittedPipeline>,
    recipe: &TimeSeriesRecipe,
    origins: &[i64],
    series: Option<Vec<String>>,
    forecasts: &[Vec<f64>],
    warmup_dropped: usize,
) -> Scored {
    let pipeline = &bundle.pipeline;
    let steps = forecasts.len();
    let n = origins.len() * steps;
    let (mut times, mut target_times, mut step_of, mut predictions) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for (o, &origin) in origins.iter().enumerate() {
        for (k, forecast) in forecasts.iter().enumerate() {
            times.push(origin);
            target_times.push(pipeline.step.map_or(origin, |step| step.advance(origin, k + 1)));
            step_of.push(u32::try_from(k + 1).unwrap_or(u32::MAX));
            predictions.push(forecast[o]);
        }
    }
    let bounds = pipeline.intervals.as_ref().map(|ci| {
        let mut columns: Vec<(String, Vec<f64>)> =
            ci.column_names().into_iter().map(|name| (name, Vec::with_capacity(n))).collect();
        for o in 0..origins.len() {
            let key = series.as_ref().map_or("", |s| s[o].as_str());
            for (k, forecast) in forecasts.iter().enumerate() {
                for (l, (lo, hi)) in ci.bounds(key, k + 1, forecast[o]).into_iter().enumerate() {
                    columns[2 * l].1.push(lo);
                    columns[2 * l + 1].1.push(hi);
                }
            }
        }
        columns
    });
    let series = match (&recipe.series_column, series) {
        (Some(column), Some(keys)) => {
            Some((column.clone(), keys.into_iter().flat_map(|k| std::iter::repeat_n(k, steps)).collect()))
        }
        _ => None,
    };
    Scored {
        keys: RowKeys::Times { column: recipe.time_column.clone(), values: times },
        raw: Vec::new(),
        predictions,
        classes: None,
        target_times: Some(target_times),
        series,
        steps: Some(step_of),
        bounds,
        features: Matrix { names: Vec::new(), data: Vec::new(), n_rows: 0 },
        contributions: None,
        warmup_dropped,
    }
}

/// Whether the bundle forecasts many steps with one model per step.
fn is_direct(bundle: &Bundle<FittedPipeline>) -> bool {
    bundle.pipeline.recipe().is_some_and(|r| r.direct_steps() > 0)
}

/// Every step from every origin, origin by origin: the recursive forecasts of a multi-step bundle.
fn score_steps(bundle: &Bundle<FittedPipeline>, origins: kiln_features::Origins) -> Result<Scored, ScoreError> {
    let pipeline = &bundle.pipeline;
    let recipe = pipeline.recipe().ok_or(ScoreError::MultiStep("a tabular pipeline"))?;
    let steps = recipe.multi_step.map_or(1, |m| m.steps);
    let step = pipeline.step.ok_or(ScoreError::MultiStep("a bundle without the series' step"))?;
    let list = origins.origins();
    let forecasts = if list.is_empty() {
        vec![Vec::new(); steps]
    } else {
        pipeline.forecast_recursive(&list, steps, step, &mut |x| {
            if x.names != bundle.metadata.feature_names {
                return Err(ScoreError::FeatureMismatch {
                    expected: bundle.metadata.feature_names.clone(),
                    actual: x.names.clone(),
                });
            }
            let keys: Vec<&str> = list.iter().map(|o| o.series.unwrap_or_default()).collect();
            Ok(bundle.predict_rows(Some(&keys), x)?)
        })?
    };
    let times: Vec<i64> = list.iter().map(|o| o.time).collect();
    Ok(long_form(bundle, recipe, &times, origins.series, &forecasts, origins.warmup_dropped))
}

fn no_contributions(bundle: &Bundle<FittedPipeline>) -> ScoreError {
    ScoreError::NoContributions { kind: bundle.model.kind().as_str() }
}

/// A tabular model's row keys for `frame`, whose first row is row `offset` of the file: the id column's values, or
/// the row numbers when the bundle has no id column. `None` for a forecast (its keys are the origin times).
fn tabular_keys(pipeline: &FittedPipeline, frame: &Frame, offset: usize) -> Result<Option<RowKeys>, ScoreError> {
    let PipelineInput::Tabular(input) = &pipeline.input else {
        return Ok(None);
    };
    Ok(Some(match &input.id_column {
        Some(id) => RowKeys::Ids { column: id.clone(), values: id_values(frame, id)? },
        None => RowKeys::Ids {
            column: "row".into(),
            values: (offset..offset + frame.n_rows()).map(|i| i.to_string()).collect(),
        },
    }))
}

/// Predictions for prepared model inputs; `tabular_keys` are a tabular model's row keys ([`tabular_keys`]).
fn predict_prepared(
    bundle: &Bundle<FittedPipeline>,
    prepared: Prepared,
    tabular_keys: Option<RowKeys>,
    explain: bool,
) -> Result<Scored, ScoreError> {
    let pipeline = &bundle.pipeline;
    if prepared.x.names != bundle.metadata.feature_names {
        return Err(ScoreError::FeatureMismatch {
            expected: bundle.metadata.feature_names.clone(),
            actual: prepared.x.names.clone(),
        });
    }
    let (raw, contributions) = if prepared.x.n_rows == 0 {
        let contributions = explain.then(|| {
            let mut names = prepared.x.names.clone();
            names.push("bias".to_string());
            Matrix { names, data: Vec::new(), n_rows: 0 }
        });
        (Vec::new(), contributions)
    } else {
        let keys: Option<Vec<&str>> = prepared.series.as_ref().map(|s| s.iter().map(String::as_str).collect());
        let raw = bundle.predict_rows(keys.as_deref(), &prepared.x)?;
        let contributions = if explain {
            Some(bundle.model.contributions(&prepared.x)?.ok_or_else(|| no_contributions(bundle))?)
        } else {
            None
        };
        (raw, contributions)
    };
    let (keys, predictions) = match &pipeline.input {
        PipelineInput::Forecast(recipe) => {
            let current = prepared.current.unwrap_or_default();
            let predictions = raw.iter().zip(&current).map(|(o, c)| recipe.target_transform.invert(*c, *o)).collect();
            let times = prepared.times.unwrap_or_default();
            (RowKeys::Times { column: recipe.time_column.clone(), values: times }, predictions)
        }
        PipelineInput::Tabular(_) => {
            let keys = tabular_keys.unwrap_or(RowKeys::Ids { column: "row".into(), values: Vec::new() });
            (keys, raw.clone())
        }
    };
    let classes = pipeline.decision.as_ref().map(|d| raw.iter().map(|&p| d.class_of(p)).collect());
    let series = match (pipeline.recipe().and_then(|r| r.series_column.clone()), prepared.series) {
        (Some(column), Some(keys)) => Some((column, keys)),
        _ => None,
    };
    let target_times = match (&keys, pipeline.step) {
        (RowKeys::Times { values, .. }, Some(_)) => values.iter().map(|&t| pipeline.target_time(t)).collect(),
        _ => None,
    };
    Ok(Scored {
        keys,
        predictions,
        classes,
        target_times,
        series,
        steps: None,
        bounds: None,
        raw,
        features: prepared.x,
        contributions,
        warmup_dropped: prepared.warmup_dropped,
    })
}

fn id_values(frame: &Frame, id: &str) -> Result<Vec<String>, ScoreError> {
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
