//! A multi-step model's test metrics step by step: recursive forecasts of steps 1..=H from every test origin whose
//! last step still lies in the data, each step scored against the truth and against persistence (the value at the
//! origin, for every step).

use std::collections::HashMap;

use kiln_domain::Frame;
use kiln_eval::RegressionMetrics;
use kiln_features::{FittedPipeline, Origin, TimeSeriesRecipe};
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
}

/// The metrics of every step 1..=H, or `None` when the recipe forecasts one step.
///
/// # Errors
/// A recipe that cannot recurse, no test origin whose last step lies in the data, or the model's error.
pub(crate) fn step_metrics(
    recipe: &TimeSeriesRecipe,
    pipeline: &FittedPipeline,
    model: &FittedModel,
    frame: &Frame,
    design: &Design,
    parts: &Parts,
) -> Result<Option<Vec<StepMetrics>>, TrainError> {
    let Some(multi) = recipe.multi_step else {
        return Ok(None);
    };
    let steps = multi.steps;
    let step = pipeline.step.ok_or_else(|| {
        TrainError::NotEnoughRows("the series' step could not be learned from the training times".to_string())
    })?;
    let all = recipe.origin_stream()?.push(frame, 0)?;
    let no_series = String::new();
    let index: HashMap<(&str, i64), usize> = all
        .times
        .iter()
        .enumerate()
        .map(|(o, &t)| (all.series.as_ref().map_or(no_series.as_str(), |s| s[o].as_str()), t))
        .enumerate()
        .map(|(o, key)| (key, o))
        .collect();
    let mut origins: Vec<Origin<'_>> = Vec::new();
    let mut truths: Vec<Vec<f64>> = vec![Vec::new(); steps];
    let mut persistence: Vec<f64> = Vec::new();
    for &r in &parts.test {
        let key =
            if design.series.is_empty() { no_series.as_str() } else { &design.series_keys[design.series[r] as usize] };
        let Some(&o) = index.get(&(key, design.times[r])) else { continue };
        let (h, i) = all.at[o];
        let history = &all.histories[h];
        if i + steps >= history.len() || history[i + 1..=i + steps].iter().any(|v| v.is_nan()) {
            continue;
        }
        origins.push(Origin { history: &history[..=i], time: all.times[o] });
        for (k, truth) in truths.iter_mut().enumerate() {
            truth.push(history[i + 1 + k]);
        }
        persistence.push(history[i]);
    }
    if origins.len() < 2 {
        return Err(TrainError::NotEnoughRows(format!(
            "task.horizon {steps}: the test part has {} origin(s) whose {steps} steps all lie in the data; a \
             multi-step model needs at least 2 to be scored (a larger split.test_size, or a shorter horizon)",
            origins.len()
        )));
    }
    let forecasts =
        pipeline.forecast_recursive(&origins, steps, step, &mut |x| Ok::<_, TrainError>(model.predict(x)?))?;
    let mut out = Vec::with_capacity(steps);
    for (k, (forecast, truth)) in forecasts.iter().zip(&truths).enumerate() {
        out.push(StepMetrics {
            step: k + 1,
            origins: origins.len(),
            model: RegressionMetrics::compute(truth, forecast)?,
            persistence: RegressionMetrics::compute(truth, &persistence)?,
        });
    }
    Ok(Some(out))
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
    #[allow(clippy::cast_precision_loss)]
    let n = steps.len() as f64;
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
    let mut out = String::from("step,origins,rmse,mae,r2,persistence_rmse,persistence_mae\n");
    for s in steps {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            s.step, s.origins, s.model.rmse, s.model.mae, s.model.r2, s.persistence.rmse, s.persistence.mae
        ));
    }
    out
}
