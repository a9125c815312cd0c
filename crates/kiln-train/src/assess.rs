//! `assess`: a trained bundle scored on labelled rows it did not necessarily see, beside a naive baseline on the
//! same rows. `kiln evaluate` assesses the served model on new data; registration and `kiln retrain` assess the
//! alias's current holder and the new model on the same rows before the alias moves (`compare`).
//!
//! Key decision: the truth is read from the rows themselves, never from a fitted design, so a bundle of any age
//! (another feature recipe, another model kind) is judged on exactly the rows given: a tabular row's target
//! column; a forecast's target at the time each forecast is for (its series' value at `target_time`, so every step
//! of a multi-step forecast has its own truth), the rows without one left out and counted.

use std::collections::{BTreeMap, HashMap};

use kiln_domain::{Column, Frame};
use kiln_eval::{ClassificationMetricName, ClassificationMetrics, Metric, MetricName, RegressionMetrics};
use kiln_features::{FittedPipeline, PipelineInput};
use kiln_models::Bundle;
use serde::Serialize;

use crate::TrainError;

/// Which of the given rows are judged.
#[derive(Debug, Clone, PartialEq)]
pub enum AssessRows {
    /// every row with a truth
    All,
    /// a tabular model: these rows of the frame (0-based), in this order
    Tabular(Vec<usize>),
    /// a forecast: the forecasts made at origins in `from..=to` (UTC ms); earlier rows are history for the
    /// features
    Origins { from: i64, to: i64 },
}

/// A bundle's metrics on labelled rows, beside a naive baseline on the same rows.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// `regression`, `classification` or `forecast`
    pub task: &'static str,
    /// predictions judged
    pub rows: usize,
    /// predictions left out: no truth in the rows (a forecast for a time past the data, a missing target)
    pub without_truth: usize,
    /// every metric of the task, by name (`rmse`, `roc_auc`, ...)
    pub metrics: BTreeMap<String, f64>,
    /// the same metrics of the naive baseline on the same rows: a forecast's persistence (the value at the origin),
    /// a regression's mean of the judged targets, a classifier's constant prevalence of the judged rows
    pub baseline: BTreeMap<String, f64>,
    /// what the baseline is, in words
    pub baseline_name: &'static str,
}

impl Assessment {
    /// The value of `metric`, when the task has it.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.metrics.get(metric.as_str()).copied()
    }
}

/// The metric two models of this bundle's task are compared on by default: ROC-AUC for a classifier, RMSE
/// otherwise.
pub fn default_compare_metric(bundle: &Bundle<FittedPipeline>) -> Metric {
    if bundle.pipeline.decision.is_some() {
        Metric::Classification(ClassificationMetricName::RocAuc)
    } else {
        Metric::Regression(MetricName::Rmse)
    }
}

/// Scores `bundle` on `frame` (raw rows as a data file holds them, in any order) and judges the `rows` asked for.
///
/// # Errors
/// The frame lacks the target or a column the bundle reads ([`TrainError::Target`] naming it), no judged row has a
/// truth, or scoring fails.
pub fn assess(bundle: &Bundle<FittedPipeline>, frame: &Frame, rows: &AssessRows) -> Result<Assessment, TrainError> {
    let target = bundle.metadata.target.as_str();
    match &bundle.pipeline.input {
        PipelineInput::Tabular(_) => {
            if !frame.has_column(target) {
                return Err(TrainError::Target(format!(
                    "the rows have no target column '{target}', which the model was trained to predict; \
                     an evaluation needs the true values"
                )));
            }
            let subset = match rows {
                AssessRows::Tabular(r) => frame.take(r),
                AssessRows::All => frame.clone(),
                AssessRows::Origins { .. } => {
                    return Err(TrainError::Target("a tabular model is judged on rows, not origin times".into()));
                }
            };
            assess_tabular(bundle, &subset)
        }
        PipelineInput::Forecast(recipe) => {
            let long = match &recipe.wide {
                Some(wide) => frame.melt(&wide.columns, &wide.name, &recipe.target)?.0,
                None => frame.clone(),
            };
            if !long.has_column(target) {
                return Err(TrainError::Target(format!(
                    "the rows have no target column '{target}', which the model forecasts; an evaluation needs \
                     the true values"
                )));
            }
            let window = match rows {
                AssessRows::All => (i64::MIN, i64::MAX),
                AssessRows::Origins { from, to } => (*from, *to),
                AssessRows::Tabular(_) => {
                    return Err(TrainError::Target("a forecast is judged on origin times, not rows".into()));
                }
            };
            let series = recipe.series_column.as_deref().or(recipe.wide.as_ref().map(|w| w.name.as_str()));
            assess_forecast(bundle, frame, &long, &recipe.time_column, series, window)
        }
    }
}

fn assess_tabular(bundle: &Bundle<FittedPipeline>, frame: &Frame) -> Result<Assessment, TrainError> {
    let target = bundle.metadata.target.as_str();
    let scored = kiln_score::score(bundle, frame, false)?;
    // a tabular model predicts every row (a row it cannot score is an error), so prediction i is row i's
    if scored.predictions.len() != frame.n_rows() {
        return Err(TrainError::NotEnoughRows(format!(
            "{} rows given, {} predicted: the predictions cannot be matched with the rows' targets",
            frame.n_rows(),
            scored.predictions.len()
        )));
    }
    let column = frame.column(target)?;
    let (truth, task): (Vec<f64>, &'static str) = match &bundle.pipeline.decision {
        Some(decision) => {
            let positive = decision.positive.as_str();
            let labels = match column {
                Column::Categorical(v) => {
                    v.iter().map(|c| c.as_ref().map_or(f64::NAN, |s| f64::from(s == positive))).collect()
                }
                Column::Numeric(v) => {
                    let p: f64 = positive.parse().map_err(|_| {
                        TrainError::Target(format!(
                            "target column '{target}' is numeric, but the model's positive class is '{positive}'"
                        ))
                    })?;
                    v.iter().map(|&y| if y.is_nan() { f64::NAN } else { f64::from(y == p) }).collect()
                }
                Column::Timestamp(_) => {
                    return Err(TrainError::Target(format!("target column '{target}' holds times")));
                }
            };
            (labels, "classification")
        }
        None => match column {
            Column::Numeric(v) => (v.clone(), "regression"),
            _ => {
                return Err(TrainError::Target(format!(
                    "target column '{target}' is not numeric, but the model is a regression"
                )));
            }
        },
    };
    let pairs: Vec<(f64, f64)> = truth.into_iter().zip(scored.predictions.iter().copied()).collect();
    judge(bundle, task, &pairs, None)
}

fn assess_forecast(
    bundle: &Bundle<FittedPipeline>,
    frame: &Frame,
    long: &Frame,
    time: &str,
    series: Option<&str>,
    (from, to): (i64, i64),
) -> Result<Assessment, TrainError> {
    let target = bundle.metadata.target.as_str();
    let sorted = match bundle.pipeline.input {
        PipelineInput::Forecast(ref recipe) if recipe.wide.is_some() => frame.sorted_by_time(time)?,
        _ => match series {
            Some(s) => frame.clone().sorted_by_series_time(s, time)?,
            None => frame.sorted_by_time(time)?,
        },
    };
    let scored = kiln_score::score(bundle, &sorted, false)?;
    let target_times = scored.target_times.as_ref().ok_or_else(|| {
        TrainError::Target(
            "the bundle does not know its series' step (it predates target times), so its forecasts cannot be \
             matched with the truth"
                .into(),
        )
    })?;
    let origins = match &scored.keys {
        kiln_score::RowKeys::Times { values, .. } => values,
        kiln_score::RowKeys::Ids { .. } => return Err(TrainError::Target("a forecast scored without times".into())),
    };
    // the truth of every (series, time) in the rows
    let times = long.timestamps(time)?;
    let values = long.numeric(target)?;
    let keys: Vec<Option<&str>> = match series {
        Some(s) => long.categorical(s)?.iter().map(|k| k.as_deref()).collect(),
        None => vec![None; long.n_rows()],
    };
    let mut truth: HashMap<(Option<&str>, i64), f64> = HashMap::with_capacity(long.n_rows());
    for ((k, &t), &y) in keys.iter().zip(times).zip(values) {
        if !y.is_nan() {
            truth.insert((*k, t), y);
        }
    }
    let row_series = |i: usize| scored.series.as_ref().map(|(_, s)| s[i].as_str());
    let mut pairs = Vec::new();
    let mut persistence = Vec::new();
    let mut without_truth = 0;
    for (i, (&origin, &when)) in origins.iter().zip(target_times).enumerate() {
        if origin < from || origin > to {
            continue;
        }
        let key = row_series(i);
        match (truth.get(&(key, when)), truth.get(&(key, origin))) {
            (Some(&y), Some(&now)) => {
                pairs.push((y, scored.predictions[i]));
                persistence.push(now);
            }
            _ => without_truth += 1,
        }
    }
    let mut out = judge(bundle, "forecast", &pairs, Some(&persistence))?;
    out.without_truth += without_truth;
    Ok(out)
}

/// The metrics of `(truth, prediction)` pairs, a missing truth left out, and the baseline's.
fn judge(
    bundle: &Bundle<FittedPipeline>,
    task: &'static str,
    pairs: &[(f64, f64)],
    persistence: Option<&[f64]>,
) -> Result<Assessment, TrainError> {
    let kept: Vec<usize> = (0..pairs.len()).filter(|&i| !pairs[i].0.is_nan()).collect();
    let without_truth = pairs.len() - kept.len();
    if kept.is_empty() {
        return Err(TrainError::NotEnoughRows(
            "no prediction has a true value in the rows given (a forecast needs the target at the time it is for)"
                .into(),
        ));
    }
    let y: Vec<f64> = kept.iter().map(|&i| pairs[i].0).collect();
    let p: Vec<f64> = kept.iter().map(|&i| pairs[i].1).collect();
    let mut metrics = BTreeMap::new();
    let mut baseline = BTreeMap::new();
    let baseline_name = match &bundle.pipeline.decision {
        Some(decision) => {
            let prevalence = y.iter().sum::<f64>() / y.len() as f64;
            let constant = vec![prevalence; y.len()];
            let model = ClassificationMetrics::compute(&y, &p, decision.threshold)?;
            // the constant's class: the majority at 0.5, as a threshold on a constant decides nothing else
            let base = ClassificationMetrics::compute(&y, &constant, 0.5)?;
            for name in ClassificationMetricName::ALL {
                metrics.insert(name.as_str().to_string(), model.get(name));
                baseline.insert(name.as_str().to_string(), base.get(name));
            }
            "the judged rows' prevalence of the positive class, for every row"
        }
        None => {
            let model = RegressionMetrics::compute(&y, &p)?;
            let (base_pred, name): (Vec<f64>, &'static str) = match persistence {
                Some(now) => (
                    kept.iter().map(|&i| now[i]).collect(),
                    "persistence: the series' value at the origin, for every step",
                ),
                None => {
                    let mean = y.iter().sum::<f64>() / y.len() as f64;
                    (vec![mean; y.len()], "the mean of the judged targets")
                }
            };
            let base = RegressionMetrics::compute(&y, &base_pred)?;
            for name in MetricName::ALL {
                metrics.insert(name.as_str().to_string(), model.get(name));
                baseline.insert(name.as_str().to_string(), base.get(name));
            }
            name
        }
    };
    Ok(Assessment { task, rows: y.len(), without_truth, metrics, baseline, baseline_name })
}

/// What a new model and the alias's current holder scored on the same rows, and whether the new one takes the
/// alias.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub alias: String,
    /// the metric compared on, by name
    pub metric: String,
    pub higher_is_better: bool,
    /// the new model's score
    pub challenger: f64,
    /// the holder's version and score; `None` when no version holds the alias
    pub champion: Option<(u64, f64)>,
    /// the relative margin the new model had to beat the holder by
    pub margin: f64,
    /// rows both were scored on
    pub rows: usize,
    pub decision: Decision,
    /// the decision in words, as printed and logged
    pub reason: String,
}

/// Whether the new model takes the alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// it is at least as good (by the margin), or no version held the alias
    Takes,
    /// it is worse: the alias stays where it is
    Refused,
    /// it is worse, and `--force` moved the alias anyway
    Forced,
}

impl Decision {
    pub fn moves_alias(self) -> bool {
        self != Decision::Refused
    }
}

/// Judges `challenger` against `champion` (scored on the same rows): the challenger takes the alias when it is at
/// least `margin` (relative to the champion's score, in the metric's direction) better, or when `force` is set.
pub fn decide(
    alias: &str,
    metric: Metric,
    challenger: &Assessment,
    champion: Option<(u64, &Assessment)>,
    margin: f64,
    force: bool,
) -> Result<Comparison, TrainError> {
    let score = |a: &Assessment| {
        a.get(metric).ok_or_else(|| {
            TrainError::Target(format!("the metric '{}' does not apply to a {} model", metric.as_str(), a.task))
        })
    };
    let new = score(challenger)?;
    let name = metric.as_str();
    let higher = metric.higher_is_better();
    let (champion, decision, reason) = match champion {
        None => (None, Decision::Takes, format!("no version held '{alias}'")),
        Some((version, held)) => {
            let old = score(held)?;
            let bar = if higher { old + margin * old.abs() } else { old - margin * old.abs() };
            let good = if higher { new >= bar } else { new <= bar };
            let margin_text = if margin > 0.0 { format!(" by at least {:.4}%", margin * 100.0) } else { String::new() };
            let wanted = if higher { "higher" } else { "lower" };
            let (decision, reason) = match (good, force) {
                (true, _) => (
                    Decision::Takes,
                    format!(
                        "{name} {new:.6} against version {version}'s {old:.6} on the same {} rows: \
                         at least as good{margin_text} ({wanted} is better)",
                        challenger.rows
                    ),
                ),
                (false, false) => (
                    Decision::Refused,
                    format!(
                        "{name} {new:.6} against version {version}'s {old:.6} on the same {} rows: not better{} \
                         ({wanted} is better), so '{alias}' stays on version {version} (--force moves it anyway)",
                        challenger.rows,
                        if margin > 0.0 { margin_text.clone() } else { " or equal".into() }
                    ),
                ),
                (false, true) => (
                    Decision::Forced,
                    format!(
                        "{name} {new:.6} against version {version}'s {old:.6} on the same {} rows: worse \
                         ({wanted} is better), moved by --force",
                        challenger.rows
                    ),
                ),
            };
            (Some((version, old)), decision, reason)
        }
    };
    Ok(Comparison {
        alias: alias.to_string(),
        metric: name.to_string(),
        higher_is_better: higher,
        challenger: new,
        champion,
        margin,
        rows: challenger.rows,
        decision,
        reason,
    })
}
