//! A multi-step model's test metrics step by step: recursive forecasts of steps 1..=H from every test origin whose
//! last step still lies in the data, each step scored against the truth and against persistence (the value at the
//! origin, for every step).

use std::collections::{BTreeMap, HashMap};

use kiln_domain::Frame;
use kiln_eval::RegressionMetrics;
use kiln_features::{ConformalIntervals, FittedPipeline, IntervalSpec, Origin, Origins, TimeSeriesRecipe};
use kiln_models::FittedModel;
use serde::Serialize;

use crate::TrainError;
use crate::prepare::{Design, Parts};

/// One step's test metrics over the origins that reach it.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    /// 1..=H
    pub step: usize,
    pub origins: usize,
    pub model: RegressionMetrics,
    /// the value at the origin, for every step
    pub persistence: RegressionMetrics,
    /// with intervals: the share of the truths inside each level's interval, and its mean width
    pub coverage: Vec<Coverage>,
    /// with a season `m` (`kiln backtest --season`): the seasonal naive forecast of the step (the value `m`, or a
    /// multiple of `m`, rows before the target), over the origins where it is defined
    pub seasonal: Option<RegressionMetrics>,
}

/// The seasonal naive forecasts of steps 1..=steps from each of `rows` (design rows), read from the series'
/// histories in `all`: `out[k][i]`, the series' value `m * ceil((k + 1) / m)` rows before the target (NaN before the
/// series' first row).
fn seasonal_steps(all: &Origins, design: &Design, rows: &[usize], steps: usize, m: usize) -> Vec<Vec<f64>> {
    let place = places(all, design, rows);
    (1..=steps)
        .map(|k| {
            let back = m * k.div_ceil(m);
            place
                .iter()
                .map(|p| {
                    p.and_then(|(_, h, i)| (i + k).checked_sub(back).map(|j| all.histories[h][j])).unwrap_or(f64::NAN)
                })
                .collect()
        })
        .collect()
}

/// The metrics of a seasonal naive forecast against the truth, over the rows where it is defined; `None` when it
/// is defined on fewer than two.
fn seasonal_metrics(truth: &[f64], naive: &[f64]) -> Result<Option<RegressionMetrics>, TrainError> {
    let (t, n): (Vec<f64>, Vec<f64>) = truth.iter().zip(naive).filter(|(_, n)| n.is_finite()).unzip();
    if t.len() < 2 {
        return Ok(None);
    }
    Ok(Some(RegressionMetrics::compute(&t, &n)?))
}

/// How an interval level did on the test origins of one step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Coverage {
    /// percent
    pub level: f64,
    /// the share of truths inside, 0..=1
    pub coverage: f64,
    pub mean_width: f64,
}

/// The metrics of every step 1..=H, or `None` when the recipe forecasts one step.
///
/// # Errors
/// A recipe that cannot recurse, no test origin whose last step lies in the data, or the model's error.
pub(crate) fn step_metrics(
    recipe: &TimeSeriesRecipe,
    pipeline: &FittedPipeline,
    model: (&FittedModel, Option<&kiln_models::PerSeries>),
    frame: &Frame,
    design: &Design,
    parts: &Parts,
    season: Option<usize>,
) -> Result<Option<Vec<StepMetrics>>, TrainError> {
    let Some(multi) = recipe.multi_step else {
        return Ok(None);
    };
    let steps = multi.steps;
    let step = pipeline.step.ok_or_else(|| {
        TrainError::NotEnoughRows("the series' step could not be learned from the training times".to_string())
    })?;
    let all = recipe.origin_stream()?.push(frame, 0)?;
    let place = places(&all, design, &parts.test);
    let mut origins: Vec<Origin<'_>> = Vec::new();
    let mut truths: Vec<Vec<f64>> = vec![Vec::new(); steps];
    let mut persistence: Vec<f64> = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    let mut scored: Vec<usize> = Vec::new();
    for (&r, place) in parts.test.iter().zip(&place) {
        let Some((o, h, i)) = *place else { continue };
        let history = &all.histories[h];
        if i + steps >= history.len() || history[i + 1..=i + steps].iter().any(|v| v.is_nan()) {
            continue;
        }
        scored.push(r);
        origins.push(Origin {
            history: &history[..=i],
            time: all.times[o],
            series: all.series.as_ref().map(|s| s[o].as_str()),
            ahead: all.ahead_of(o),
        });
        for (k, truth) in truths.iter_mut().enumerate() {
            truth.push(history[i + 1 + k]);
        }
        persistence.push(history[i]);
        keys.push(series_key(design, r));
    }
    if origins.len() < 2 {
        return Err(TrainError::NotEnoughRows(format!(
            "task.horizon {steps}: the test part has {} origin(s) whose {steps} steps all lie in the data; a \
             multi-step model needs at least 2 to be scored (a larger split.test_size, or a shorter horizon)",
            origins.len()
        )));
    }
    let forecasts = pipeline
        .forecast_recursive(&origins, steps, step, &mut |x| Ok::<_, TrainError>(predict_origins(model, &keys, x)?))?;
    let naive = season.map(|m| seasonal_steps(&all, design, &scored, steps, m));
    let mut out = Vec::with_capacity(steps);
    for (k, (forecast, truth)) in forecasts.iter().zip(&truths).enumerate() {
        let coverage = match &pipeline.intervals {
            Some(ci) => coverage(ci, &keys, k + 1, forecast, truth),
            None => Vec::new(),
        };
        out.push(StepMetrics {
            step: k + 1,
            origins: origins.len(),
            model: RegressionMetrics::compute(truth, forecast)?,
            persistence: RegressionMetrics::compute(truth, &persistence)?,
            coverage,
            seasonal: match &naive {
                Some(naive) => seasonal_metrics(truth, &naive[k])?,
                None => None,
            },
        });
    }
    Ok(Some(out))
}

/// Each level's share of truths inside its interval, and the interval's mean width, over one step's forecasts.
fn coverage(ci: &ConformalIntervals, keys: &[&str], step: usize, forecast: &[f64], truth: &[f64]) -> Vec<Coverage> {
    let mut hits = vec![0usize; ci.levels.len()];
    let mut width = vec![0.0; ci.levels.len()];
    for (o, (&m, &y)) in forecast.iter().zip(truth).enumerate() {
        for (l, (lo, hi)) in ci.bounds(keys[o], step, m).into_iter().enumerate() {
            hits[l] += usize::from(lo <= y && y <= hi);
            width[l] += hi - lo;
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let n = forecast.len() as f64;
    #[allow(clippy::cast_precision_loss)]
    ci.levels
        .iter()
        .zip(hits.iter().zip(&width))
        .map(|(&level, (&h, &w))| Coverage { level, coverage: h as f64 / n, mean_width: w / n })
        .collect()
}

/// The model's predictions of `x`'s rows, one per origin of series `keys`: by each series' model when there is one
/// per series.
fn predict_origins(
    (model, per): (&FittedModel, Option<&kiln_models::PerSeries>),
    keys: &[&str],
    x: &kiln_domain::Matrix,
) -> Result<Vec<f64>, kiln_models::ModelError> {
    match per {
        Some(per) => per.predict(model, keys, x),
        None => model.predict(x),
    }
}

/// The series key of design row `r` (`""` for a single series).
fn series_key(design: &Design, r: usize) -> &str {
    if design.series.is_empty() { "" } else { &design.series_keys[design.series[r] as usize] }
}

/// Where each of `rows` (design rows) is among `all`'s origins: its origin, history and position in that history.
fn places(all: &Origins, design: &Design, rows: &[usize]) -> Vec<Option<(usize, usize, usize)>> {
    let index: HashMap<(&str, i64), usize> = all
        .times
        .iter()
        .enumerate()
        .map(|(o, &t)| ((all.series.as_ref().map_or("", |s| s[o].as_str()), t), o))
        .collect();
    rows.iter()
        .map(|&r| {
            let o = *index.get(&(series_key(design, r), design.times[r]))?;
            let (h, i) = all.at[o];
            Some((o, h, i))
        })
        .collect()
}

/// Conformal intervals (mlforecast's `PredictionIntervals(n_windows, h)`, see [`ConformalIntervals`]): a calibration
/// pipeline and model fitted on the training rows (train and validation) before each series' last
/// `windows * steps` ones, recursive forecasts of `steps` from the end of each of the `windows` blocks that tile
/// them, and the absolute errors per series, step and window.
///
/// # Errors
/// A series whose training rows are too few for the windows, or any fit's error.
pub(crate) fn calibrate(
    spec: &crate::FitSpec<'_>,
    recipe: &TimeSeriesRecipe,
    intervals: &IntervalSpec,
    frame: &Frame,
    design: &Design,
    parts: &Parts,
) -> Result<ConformalIntervals, TrainError> {
    let steps = recipe.multi_step.map_or(1, |m| m.steps);
    let windows = intervals.windows;
    let block = windows * steps;
    let all = recipe.origin_stream()?.push(frame, 0)?;
    let fit_rows = parts.fit_rows();
    let place = places(&all, design, &fit_rows);
    // per series (history): one past the last training origin's position, i.e. the last training label's position,
    // and the series' key
    let mut end: BTreeMap<usize, (usize, &str)> = BTreeMap::new();
    for (&r, p) in fit_rows.iter().zip(&place) {
        if let Some((_, h, i)) = *p {
            let e = end.entry(h).or_insert((0, series_key(design, r)));
            e.0 = e.0.max(i + 1);
        }
    }
    let cal: Vec<usize> = fit_rows
        .iter()
        .zip(&place)
        .filter(|(_, p)| p.is_some_and(|(_, h, i)| i + block < end[&h].0))
        .map(|(&r, _)| r)
        .collect();
    // the rows of the windows: what the calibration fit is evaluated on (one step ahead), never fitted on
    let held: Vec<usize> = {
        let cal_set: std::collections::HashSet<usize> = cal.iter().copied().collect();
        fit_rows.iter().copied().filter(|r| !cal_set.contains(r)).collect()
    };
    let cal_parts = if parts.validation.is_empty() {
        Parts { train: cal, validation: Vec::new(), test: held, gap: 0 }
    } else {
        // as many validation times before the windows as the main fit has
        let mut val_times: Vec<i64> = parts.validation.iter().map(|&r| design.times[r]).collect();
        val_times.dedup();
        let mut times: Vec<i64> = cal.iter().map(|&r| design.times[r]).collect();
        times.dedup();
        let cut = times.get(times.len().saturating_sub(val_times.len())).copied().unwrap_or(i64::MAX);
        let (train, validation): (Vec<usize>, Vec<usize>) = cal.iter().partition(|&&r| design.times[r] < cut);
        Parts { train, validation, test: held, gap: 0 }
    };
    if cal_parts.train.is_empty() {
        return Err(TrainError::NotEnoughRows(format!(
            "task.intervals: the training rows leave none before the last {windows} windows of {steps} steps; fewer \
             windows, a shorter horizon, or more data"
        )));
    }
    let fitted = crate::fit::fit_parts(spec, design, &cal_parts, crate::fit::OutputRows::Every, &Quiet)?;
    let step = fitted.pipeline.step.ok_or_else(|| {
        TrainError::NotEnoughRows("the series' step could not be learned from the calibration rows".to_string())
    })?;
    let needed = recipe.min_window_rows();
    let position: HashMap<(usize, usize), usize> = all.at.iter().enumerate().map(|(o, &hi)| (hi, o)).collect();
    // the origin closing window i of a series ends its training part at end - (windows - i) * steps
    let mut origins = Vec::new();
    let mut truths: Vec<&[f64]> = Vec::new();
    let mut owners: Vec<&str> = Vec::new();
    for (&h, &(e, key)) in &end {
        if e < block + needed {
            return Err(TrainError::NotEnoughRows(format!(
                "task.intervals: series '{key}' has {e} training rows, too few for {windows} windows of {steps} \
                 steps after the {needed} rows the features need"
            )));
        }
        let history = &all.histories[h];
        for i in 0..windows {
            let o = e - (windows - i) * steps;
            let Some(&at) = position.get(&(h, o)) else {
                return Err(TrainError::NotEnoughRows(format!(
                    "task.intervals: series '{key}' has no origin at its row {o} (in the warm-up)"
                )));
            };
            origins.push(Origin {
                history: &history[..=o],
                time: all.times[at],
                series: all.series.as_ref().map(|s| s[at].as_str()),
                ahead: all.ahead_of(at),
            });
            truths.push(&history[o + 1..=o + steps]);
            owners.push(key);
        }
    }
    let fit = (&fitted.model, fitted.per_series.as_ref());
    let forecasts = fitted
        .pipeline
        .forecast_recursive(&origins, steps, step, &mut |x| Ok::<_, TrainError>(predict_origins(fit, &owners, x)?))?;
    let mut scores: BTreeMap<String, Vec<Vec<f64>>> = BTreeMap::new();
    for (w, key) in owners.iter().enumerate() {
        let entry = scores.entry((*key).to_string()).or_insert_with(|| vec![Vec::with_capacity(windows); steps]);
        for (k, forecast) in forecasts.iter().enumerate() {
            entry[k].push((forecast[w] - truths[w][k]).abs());
        }
    }
    let mut levels = intervals.levels.clone();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    Ok(ConformalIntervals { levels, windows, scores })
}

struct Quiet;

impl crate::Progress for Quiet {
    fn step(&self, _: &str) {}
}

/// The step metrics as MLflow metric points: `test/by_step/<metric>` at step k (a chart over the steps in MLflow's
/// UI) and `test/mean_over_steps/<metric>`.
pub(crate) fn step_points(steps: &[StepMetrics], now: i64) -> Vec<kiln_domain::MetricPoint> {
    let mut out = Vec::new();
    let metrics = |m: &RegressionMetrics| [("rmse", m.rmse), ("mae", m.mae), ("r2", m.r2)];
    for s in steps {
        for (group, m) in [("test/by_step", &s.model), ("baseline/test/by_step", &s.persistence)] {
            for (name, value) in metrics(m) {
                let step = i64::try_from(s.step).unwrap_or(i64::MAX);
                out.push(kiln_domain::MetricPoint { key: format!("{group}/{name}"), value, timestamp_ms: now, step });
            }
        }
    }
    for s in steps {
        for c in &s.coverage {
            let step = i64::try_from(s.step).unwrap_or(i64::MAX);
            for (name, value) in [("coverage", c.coverage), ("width", c.mean_width)] {
                let key = format!("test/by_step/{name}_{}", c.level);
                out.push(kiln_domain::MetricPoint { key, value, timestamp_ms: now, step });
            }
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let n = steps.len() as f64;
    if let Some(first) = steps.first() {
        for (l, c) in first.coverage.iter().enumerate() {
            let mean = |f: fn(&Coverage) -> f64| steps.iter().map(|s| f(&s.coverage[l])).sum::<f64>() / n;
            out.push(crate::train::point(&format!("test/coverage_{}", c.level), mean(|c| c.coverage), now));
            out.push(crate::train::point(&format!("test/width_{}", c.level), mean(|c| c.mean_width), now));
        }
    }
    for (group, pick) in [("test/mean_over_steps", true), ("baseline/test/mean_over_steps", false)] {
        for (j, name) in ["rmse", "mae", "r2"].iter().enumerate() {
            let sum: f64 = steps.iter().map(|s| metrics(if pick { &s.model } else { &s.persistence })[j].1).sum();
            out.push(crate::train::point(&format!("{group}/{name}"), sum / n, now));
        }
    }
    out
}

/// The step metrics as CSV, one row per step.
pub(crate) fn steps_csv(steps: &[StepMetrics]) -> String {
    let mut out = String::from("step,origins,rmse,mae,r2,persistence_rmse,persistence_mae");
    for c in steps.first().map_or(&[][..], |s| s.coverage.as_slice()) {
        out.push_str(&format!(",coverage_{0},width_{0}", c.level));
    }
    out.push('\n');
    for s in steps {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}",
            s.step, s.origins, s.model.rmse, s.model.mae, s.model.r2, s.persistence.rmse, s.persistence.mae
        ));
        for c in &s.coverage {
            out.push_str(&format!(",{},{}", c.coverage, c.mean_width));
        }
        out.push('\n');
    }
    out
}

/// The models of steps 2..=H of a direct multi-step forecast (skforecast's `ForecasterDirect`): each learns the
/// target k steps after the origin (through the target transform) from the same model inputs and rows as step 1,
/// early-stopped on the same validation rows.
///
/// # Errors
/// A model's fit error.
pub(crate) fn fit_steps(
    spec: &crate::FitSpec<'_>,
    (pipeline, recipe): (&FittedPipeline, &TimeSeriesRecipe),
    design: &Design,
    parts: &Parts,
    x: &kiln_domain::Matrix,
    progress: &dyn crate::Progress,
) -> Result<Vec<FittedModel>, TrainError> {
    let steps = recipe.direct_steps();
    progress.step(&format!("fitting the models of steps 2 to {steps} on the same {} rows", parts.train.len()));
    let mut out = Vec::with_capacity(steps.saturating_sub(1));
    for (s, truths) in design.step_truths.iter().enumerate() {
        let x = step_inputs(pipeline, recipe, design, s + 2, x)?;
        let x_fit = x.take_rows(&parts.train);
        let x_valid = x.take_rows(&parts.validation);
        let label = |rows: &[usize]| -> Vec<f64> {
            rows.iter().map(|&r| recipe.target_transform.apply(design.current[r], truths[r])).collect()
        };
        let y_valid = label(&parts.validation);
        let valid = (!parts.validation.is_empty()).then_some((&x_valid, y_valid.as_slice()));
        out.push(spec.model.fit(&x_fit, &label(&parts.train), valid)?);
    }
    Ok(out)
}

/// The model inputs of step `k` of a direct forecast for every design row: `x` (step 1's) itself, unless the recipe
/// has `known_in_advance` columns; then the design's features with those columns at `t + k`, through the fitted
/// pipeline.
fn step_inputs<'a>(
    pipeline: &FittedPipeline,
    recipe: &TimeSeriesRecipe,
    design: &Design,
    k: usize,
    x: &'a kiln_domain::Matrix,
) -> Result<std::borrow::Cow<'a, kiln_domain::Matrix>, TrainError> {
    if k < 2 || design.step_ahead.is_empty() {
        return Ok(std::borrow::Cow::Borrowed(x));
    }
    let features = recipe.at_step(design.features.clone(), &design.step_ahead[k - 2])?;
    Ok(std::borrow::Cow::Owned(pipeline.finish(features)?))
}

/// A direct multi-step forecast's test metrics: every step's model on every test origin.
///
/// # Errors
/// A model's prediction error, or a metric that cannot be computed.
pub(crate) fn direct_step_metrics(
    fitted: (&FittedModel, &[FittedModel], &kiln_domain::Matrix),
    (pipeline, recipe): (&FittedPipeline, &TimeSeriesRecipe),
    frame: &Frame,
    design: &Design,
    parts: &Parts,
    season: Option<usize>,
) -> Result<Vec<StepMetrics>, TrainError> {
    let (model, step_models, x) = fitted;
    let naive = match season {
        Some(m) => {
            let all = recipe.history_stream()?.push(frame, 0)?;
            Some(seasonal_steps(&all, design, &parts.test, step_models.len() + 1, m))
        }
        None => None,
    };
    let persistence: Vec<f64> = parts.test.iter().map(|&r| design.current[r]).collect();
    let mut out = Vec::with_capacity(step_models.len() + 1);
    for (k, m) in std::iter::once(model).chain(step_models).enumerate() {
        let x_test = step_inputs(pipeline, recipe, design, k + 1, x)?.take_rows(&parts.test);
        let outputs = m.predict(&x_test)?;
        let forecast: Vec<f64> = parts
            .test
            .iter()
            .zip(&outputs)
            .map(|(&r, &o)| recipe.target_transform.invert(design.current[r], o))
            .collect();
        let truth: Vec<f64> =
            parts.test.iter().map(|&r| if k == 0 { design.truth[r] } else { design.step_truths[k - 1][r] }).collect();
        out.push(StepMetrics {
            step: k + 1,
            origins: parts.test.len(),
            model: RegressionMetrics::compute(&truth, &forecast)?,
            persistence: RegressionMetrics::compute(&truth, &persistence)?,
            coverage: Vec::new(),
            seasonal: match &naive {
                Some(naive) => seasonal_metrics(&truth, &naive[k])?,
                None => None,
            },
        });
    }
    Ok(out)
}

/// A fold's step metrics as keys: `test/step_<k>/<metric>` and `baseline/test/step_<k>/<metric>` (persistence),
/// for RMSE and MAE, with each interval level's coverage.
pub(crate) fn step_keys(steps: &[StepMetrics]) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for s in steps {
        let k = s.step;
        out.push((format!("test/step_{k}/rmse"), s.model.rmse));
        out.push((format!("test/step_{k}/mae"), s.model.mae));
        out.push((format!("baseline/test/step_{k}/rmse"), s.persistence.rmse));
        out.push((format!("baseline/test/step_{k}/mae"), s.persistence.mae));
        if let Some(seasonal) = &s.seasonal {
            out.push((format!("seasonal/test/step_{k}/rmse"), seasonal.rmse));
            out.push((format!("seasonal/test/step_{k}/mae"), seasonal.mae));
        }
        for c in &s.coverage {
            out.push((format!("test/step_{k}/coverage_{}", c.level), c.coverage));
        }
    }
    out
}
