//! Backtests: the whole pipeline refitted on every fold's training rows, each fold scored on its own test rows
//! beside the naive baseline of those rows. The design (the feature table) is built once from every row: the
//! forecast kernels only look back, so a row's features are the same whatever comes after it; everything learned
//! (preprocessing, selection, the model, early stopping on a validation tail carved from the fold's training rows, a
//! classifier's threshold) is learned again in every fold from that fold's training rows alone.
//!
//! Key decisions: the folds come from one [`Splitter`] (walk-forward for a forecast, k-fold or stratified k-fold for
//! tabular rows); folds are fitted in parallel on `threads` scoped threads, each fold on its own, so the result does
//! not depend on the number of threads, bit for bit (the libraries' own thread counts come from the model's
//! params); progress is reported from the calling thread as folds finish.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kiln_domain::Frame;
use kiln_eval::{Fold, Simulation, Size, Splitter, TradingSpec};
use serde::Serialize;

use crate::TrainError;
use crate::evaluate::{Evaluation, forecast_predictions};
use crate::fit::{FitSpec, OutputRows, Progress, check_model_fits_task, fit_parts};
use crate::prepare::{Design, Parts, RowCounts, TaskSpec, prepare};

/// What a backtest runs: the pipeline and model of one fit, and how the rows are folded.
#[derive(Debug, Clone, Copy)]
pub struct BacktestSpec<'a> {
    pub fit: FitSpec<'a>,
    pub splitter: Splitter,
    /// the validation rows carved from each fold's training rows (early stopping, a classifier's threshold): the
    /// last ones of a forecast fold, a stratified random share of a tabular one; `None`: no validation rows
    pub validation: Option<Size>,
    /// the seed of a tabular fold's validation draw
    pub seed: u64,
    /// folds fitted at once; the result is the same for any value
    pub threads: usize,
    /// refit on every k-th fold only (1: every fold); a fold between refits is scored by the pipeline and model of
    /// the last refitted fold, rolled forward (skforecast's `refit=k`)
    pub refit_every: usize,
    /// which rows are folded
    pub rows: FoldedRows,
    /// a forecast's season length `m` in rows: each fold is also scored beside the seasonal naive forecast (the
    /// value one season before the target time), as `seasonal/test/<metric>`
    pub season: Option<usize>,
}

/// The rows a backtest folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldedRows {
    /// every usable row of the data
    All,
    /// the training part of the experiment's split only (train and validation rows): the test part stays unseen,
    /// as when `kiln train --cv` reports the folds of the configuration it trains
    TrainingPart,
}

/// One fold's fit and scores.
#[derive(Debug, Clone, Serialize)]
pub struct FoldOutcome {
    /// 1-based
    pub fold: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub test_rows: usize,
    /// the first and last key (origin time or row id) of the training and test rows
    pub train_span: (String, String),
    pub test_span: (String, String),
    /// the model and its baseline on the fold's training and test rows
    pub evaluation: Evaluation,
    /// the seasonal naive baseline's test metrics (`seasonal/test/<metric>`), with `season`
    #[serde(skip)]
    pub seasonal: Vec<(String, f64)>,
    /// a multi-step forecast: every step's test metrics (`test/step_<k>/<metric>`, `baseline/test/step_<k>/...`)
    #[serde(skip)]
    pub steps: Vec<(String, f64)>,
    /// the fold (1-based) whose fitted pipeline and model scored this one: itself, or with `refit_every` the last
    /// refitted fold before it
    pub fitted_on: usize,
    /// the fold's test rows, as rows of the design
    #[serde(skip)]
    pub test: Vec<usize>,
    /// the prediction for each test row: in the target's units (forecast, regression), the probability of the
    /// positive class (classification)
    #[serde(skip)]
    pub predictions: Vec<f64>,
    /// the naive baseline's prediction for each test row (persistence; the training rows' mean; a classifier's: the
    /// training share of the positive class)
    #[serde(skip)]
    pub baseline: Vec<f64>,
    pub fit_seconds: f64,
}

impl FoldOutcome {
    /// The fold's metrics by key (`test/rmse`, `baseline/test/rmse`, `train/rmse`, ...).
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut out = self.evaluation.metric_values();
        out.extend(self.seasonal.iter().cloned());
        out.extend(self.steps.iter().cloned());
        out
    }
}

/// Every out-of-fold prediction: one entry per test row of every fold, folds in order.
#[derive(Debug, Clone, Default)]
pub struct OutOfFold {
    /// 1-based fold of each row
    pub fold: Vec<usize>,
    /// the row's key: origin time (UTC ms, forecasts) or id (tabular rows)
    pub time: Vec<i64>,
    /// a panel forecast: the row's series (empty otherwise)
    pub series: Vec<String>,
    pub id: Vec<String>,
    pub actual: Vec<f64>,
    pub prediction: Vec<f64>,
    /// the naive baseline's prediction (persistence, the training mean; classification: the majority class's
    /// training share)
    pub baseline: Vec<f64>,
}

/// A whole backtest.
#[derive(Debug, Clone)]
pub struct BacktestOutcome {
    pub folds: Vec<FoldOutcome>,
    pub oof: OutOfFold,
    /// how the rows of the data were used to build the design (before folding)
    pub rows: RowCounts,
    pub splitter: Splitter,
}

/// Mean and sample standard deviation (n - 1) of each metric over the folds, in the folds' key order.
pub fn fold_summary(folds: &[FoldOutcome]) -> Vec<(String, f64, f64)> {
    let Some(first) = folds.first() else {
        return Vec::new();
    };
    let all: Vec<Vec<(String, f64)>> = folds.iter().map(FoldOutcome::metrics).collect();
    first
        .metrics()
        .iter()
        .map(|(key, _)| {
            let values: Vec<f64> =
                all.iter().filter_map(|m| m.iter().find(|(k, _)| k == key).map(|(_, v)| *v)).collect();
            (key.clone(), mean(&values), sample_sd(&values))
        })
        .collect()
}

pub(crate) fn mean(values: &[f64]) -> f64 {
    kiln_eval::pairwise_sum(values) / values.len() as f64
}

pub(crate) fn sample_sd(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return f64::NAN;
    }
    let m = mean(values);
    let squares: Vec<f64> = values.iter().map(|v| (v - m) * (v - m)).collect();
    (kiln_eval::pairwise_sum(&squares) / (values.len() - 1) as f64).sqrt()
}

/// A progress sink that says nothing (a fold's own fit steps are not reported one by one).
struct Quiet;

impl Progress for Quiet {
    fn step(&self, _: &str) {}
}

/// Builds the design from every row of `frame`, folds it with the splitter, fits and scores every fold.
///
/// # Errors
/// A model that does not suit the task, bad data, folds the rows cannot make (naming the key), or the first fold
/// that fails (its number in the message).
pub fn backtest(
    spec: &BacktestSpec<'_>,
    frame: &Frame,
    progress: &dyn Progress,
) -> Result<BacktestOutcome, TrainError> {
    check_model_fits_task(&spec.fit)?;
    let FoldPlan { design, parts } = plan_folds(spec, frame, progress)?;
    if spec.refit_every == 0 {
        return Err(kiln_eval::EvalError::InvalidSpec {
            key: "backtest.refit_every".to_string(),
            reason: "must be at least 1 (1: refit on every fold)".to_string(),
        }
        .into());
    }
    // the folds that are fitted; the others are scored by the last fitted one
    let fitted: Vec<usize> = (0..parts.len()).step_by(spec.refit_every).collect();

    // the folds fitted side by side share the cores: where kiln chooses a model's thread count (the experiment does
    // not fix `num_threads`/`nthread`), each fold's model gets cores / min(cores, folds) library threads. That
    // count leaves `threads` out, so the folds' models, and the result, are the same for any `threads`.
    let workers = spec.threads.max(1).min(fitted.len());
    let cores = kiln_models::default_threads() as usize;
    let model = spec.fit.model.with_threads((cores / cores.min(fitted.len()).max(1)).max(1));
    let spec = &BacktestSpec { fit: FitSpec { model: &model, ..spec.fit }, ..*spec };
    // workers take the next fold to fit; results land in their fold's slot, so their order never depends on timing
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Result<Fitting, TrainError>>>> = fitted.iter().map(|_| Mutex::new(None)).collect();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let (next, slots, parts, design, fitted) = (&next, &slots, &parts, &design, &fitted);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = fitted.get(k) else { break };
                    let outcome = run_fold(spec, frame, design, &parts[i], i);
                    let failed = outcome.is_err();
                    *slots[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(outcome);
                    let _ = done_tx.send(k);
                    if failed {
                        // the other workers finish the fold they hold; no new fold starts
                        next.store(fitted.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        for (finished, k) in done_rx.iter().enumerate() {
            let slot = slots[k].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(Ok(fitting)) = slot.as_ref() {
                progress.step(&fold_line(&fitting.fold, finished + 1, fitted.len()));
            }
        }
    });
    let mut fittings = Vec::with_capacity(fitted.len());
    for (k, slot) in slots.into_iter().enumerate() {
        match slot.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(Ok(fitting)) => fittings.push(fitting),
            Some(Err(e)) => return Err(TrainError::Fold { fold: fitted[k] + 1, error: Box::new(e) }),
            // not started because an earlier fold failed: that failure was returned above
            None => {}
        }
    }
    // every fold in order: a fitted one as it is, the ones between refits scored by the last fitted fold
    let mut outcomes = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let fitting = &fittings[i / spec.refit_every];
        if fitting.fold.fold == i + 1 {
            outcomes.push(fitting.fold.clone());
        } else {
            let on = &parts[fitting.fold.fold - 1];
            let rolled =
                Parts { train: on.train.clone(), validation: on.validation.clone(), test: p.test.clone(), gap: p.gap };
            let evaluation = crate::evaluate::evaluate(spec.fit.task, &design, &rolled, &fitting.outputs)?;
            let fold = score_fold(spec, &design, &rolled, i, fitting.fold.fold, &fitting.outputs, evaluation, 0.0)?;
            progress.step(&format!(
                "fold {}: scored by fold {}'s fit (refit_every {})",
                i + 1,
                fitting.fold.fold,
                spec.refit_every
            ));
            outcomes.push(fold);
        }
    }
    let oof = out_of_fold(&design, &outcomes);
    Ok(BacktestOutcome { folds: outcomes, oof, rows: design.rows, splitter: spec.splitter })
}

/// The design of a backtest (built once from every row, or only the training part's) and every fold's parts over its
/// rows: what a backtest fits once per fold, and a tuning study once per trial and fold.
pub(crate) struct FoldPlan {
    pub(crate) design: Design,
    pub(crate) parts: Vec<Parts>,
}

/// Builds the design and folds it (see [`backtest`]); the model is not looked at.
///
/// # Errors
/// Bad data, folds the rows cannot make (naming the key).
pub(crate) fn plan_folds(
    spec: &BacktestSpec<'_>,
    frame: &Frame,
    progress: &dyn Progress,
) -> Result<FoldPlan, TrainError> {
    progress.step(&format!("preparing the {} design from {} rows", spec.fit.task.kind_str(), frame.n_rows()));
    let (mut design, holdout) = prepare(spec.fit.task, frame)?;
    if let (Some(m), TaskSpec::Forecast { recipe, .. }) = (spec.season, spec.fit.task) {
        design.seasonal = seasonal_naive(recipe, frame, &design, m)?;
    }
    let design = match spec.rows {
        FoldedRows::All => design,
        FoldedRows::TrainingPart => design.take(&holdout.fit_rows()),
    };
    if spec.refit_every > 1 && multi_step(spec) {
        return Err(kiln_eval::EvalError::InvalidSpec {
            key: "backtest.refit_every".to_string(),
            reason: "a multi-step forecast is refitted on every fold (its steps are scored from each fold's own \
                     model)"
                .to_string(),
        }
        .into());
    }
    // a panel is folded by time: every series' rows at one time fall in the same part
    let by_time = TimeIndex::of(&design);
    let folds = match &by_time {
        Some(index) => spec.splitter.split(&vec![0.0; index.rows.len()])?,
        None => spec.splitter.split(&design.label)?,
    };
    progress.step(&format!(
        "{} folds over {} rows ({} base features), {} at a time",
        folds.len(),
        design.label.len(),
        design.features.n_cols(),
        spec.threads.max(1).min(folds.len())
    ));
    let parts: Vec<Parts> = folds
        .iter()
        .map(|f| fold_parts(spec, &design, f).map(|p| by_time.as_ref().map_or(p.clone(), |index| index.expand(&p))))
        .collect::<Result<_, _>>()?;
    Ok(FoldPlan { design, parts })
}

/// "fold 3/10 done (3 of 10): test 2019-01-02..2019-06-30 (126 rows), rmse 0.004200 (persistence 0.004300)"
fn fold_line(fold: &FoldOutcome, finished: usize, total: usize) -> String {
    let metrics = fold.metrics();
    let get = |key: &str| metrics.iter().find(|(k, _)| k == key).map_or(f64::NAN, |(_, v)| *v);
    let (name, baseline) = match &fold.evaluation {
        Evaluation::Regression { baseline, .. } => ("rmse", *baseline),
        Evaluation::Classification { .. } => ("roc_auc", "majority class"),
    };
    format!(
        "fold {}/{total} done ({finished} of {total}): test {}..{} ({} rows), {name} {:.6} ({baseline} {:.6})",
        fold.fold,
        fold.test_span.0,
        fold.test_span.1,
        fold.test_rows,
        get(&format!("test/{name}")),
        get(&format!("baseline/test/{name}")),
    )
}

/// The fold's train, validation and test rows: the validation rows carved from the fold's training rows.
fn fold_parts(spec: &BacktestSpec<'_>, design: &Design, fold: &Fold) -> Result<Parts, TrainError> {
    let n = fold.train.len();
    let n_val = match spec.validation {
        Some(size) => size.rows_of(n, "split.validation_size")?,
        None => 0,
    };
    if n_val >= n {
        return Err(TrainError::NotEnoughRows(format!(
            "a fold with {n} training rows cannot give {n_val} of them to validation; fewer folds, a smaller \
             split.validation_size, or more data"
        )));
    }
    let gap = fold.test.first().map_or(0, |&t| t.saturating_sub(fold.train.last().map_or(t, |&l| l + 1)));
    match spec.fit.task {
        TaskSpec::Forecast { .. } => Ok(Parts {
            train: fold.train[..n - n_val].to_vec(),
            validation: fold.train[n - n_val..].to_vec(),
            test: fold.test.clone(),
            gap,
        }),
        TaskSpec::Tabular { .. } if n_val == 0 => {
            Ok(Parts { train: fold.train.clone(), validation: Vec::new(), test: fold.test.clone(), gap: 0 })
        }
        TaskSpec::Tabular { .. } => {
            // stratified by class for a classifier, one class (a plain random draw) for a regression
            let labels: Vec<f64> = if spec.fit.task.is_classification() {
                fold.train.iter().map(|&i| design.label[i]).collect()
            } else {
                vec![0.0; n]
            };
            let draw = kiln_eval::stratified_holdout(&labels, Size::Rows(n_val), None, spec.seed)?;
            let pick = |rows: &[usize]| {
                let mut out: Vec<usize> = rows.iter().map(|&r| fold.train[r]).collect();
                out.sort_unstable();
                out
            };
            Ok(Parts { train: pick(&draw.train), validation: pick(&draw.test), test: fold.test.clone(), gap: 0 })
        }
    }
}

/// A fitted fold: its scores and the model's output for every design row (what later folds rolled forward use).
struct Fitting {
    fold: FoldOutcome,
    outputs: Vec<f64>,
}

fn run_fold(
    spec: &BacktestSpec<'_>,
    frame: &Frame,
    design: &Design,
    parts: &Parts,
    i: usize,
) -> Result<Fitting, TrainError> {
    let started = Instant::now();
    // a fold refitted every fold is scored on its own rows alone; otherwise later folds roll forward on its outputs
    let rows = if spec.refit_every == 1 { OutputRows::Parts } else { OutputRows::Every };
    let fitted = fit_parts(&spec.fit, design, parts, rows, &Quiet)?;
    let steps = match spec.fit.task {
        TaskSpec::Forecast { recipe, .. } if recipe.direct_steps() > 0 => {
            let models =
                crate::multistep::fit_steps(&spec.fit, (&fitted.pipeline, recipe), design, parts, &fitted.x, &Quiet)?;
            let fit = (&fitted.model, models.as_slice(), &fitted.x);
            Some(crate::multistep::direct_step_metrics(
                fit,
                (&fitted.pipeline, recipe),
                frame,
                design,
                parts,
                spec.season,
            )?)
        }
        TaskSpec::Forecast { recipe, .. } if recipe.multi_step.is_some() => {
            let fit = (&fitted.model, fitted.per_series.as_ref());
            crate::multistep::step_metrics(recipe, &fitted.pipeline, fit, frame, design, parts, spec.season)?
        }
        _ => None,
    };
    let seconds = started.elapsed().as_secs_f64();
    let mut fold = score_fold(spec, design, parts, i, i + 1, &fitted.outputs, fitted.evaluation, seconds)?;
    fold.steps = steps.as_deref().map(crate::multistep::step_keys).unwrap_or_default();
    Ok(Fitting { fold, outputs: fitted.outputs })
}

/// Fits fold `i` of `plan` and scores it (the fold alone: a tuning trial's step).
///
/// # Errors
/// The fold's fit or scoring error.
pub(crate) fn fit_fold(
    spec: &BacktestSpec<'_>,
    frame: &Frame,
    plan: &FoldPlan,
    i: usize,
) -> Result<FoldOutcome, TrainError> {
    run_fold(spec, frame, &plan.design, &plan.parts[i], i).map(|fitting| fitting.fold)
}

/// Whether the backtest's forecast is multi-step.
fn multi_step(spec: &BacktestSpec<'_>) -> bool {
    matches!(spec.fit.task, TaskSpec::Forecast { recipe, .. } if recipe.multi_step.is_some())
}

/// A panel's design rows grouped by time (rows come in time order): folds are cut over the distinct times, then
/// each part takes every row of its times.
struct TimeIndex {
    /// the design rows of each distinct time, in time order
    rows: Vec<Vec<usize>>,
}

impl TimeIndex {
    /// `None` for a single series (one row per time: folds over rows are folds over times).
    fn of(design: &Design) -> Option<TimeIndex> {
        if design.series.is_empty() {
            return None;
        }
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for (r, &t) in design.times.iter().enumerate() {
            match rows.last_mut() {
                Some(last) if design.times[last[0]] == t => last.push(r),
                _ => rows.push(vec![r]),
            }
        }
        Some(TimeIndex { rows })
    }

    /// Parts over time positions as parts over design rows.
    fn expand(&self, parts: &Parts) -> Parts {
        let rows =
            |times: &[usize]| -> Vec<usize> { times.iter().flat_map(|&t| self.rows[t].iter().copied()).collect() };
        let gap_rows = match (parts.train.last().or(parts.validation.last()), parts.test.first()) {
            (Some(&a), Some(&b)) => self.rows[a + 1..b].iter().map(Vec::len).sum(),
            _ => 0,
        };
        Parts { train: rows(&parts.train), validation: rows(&parts.validation), test: rows(&parts.test), gap: gap_rows }
    }
}

/// Fold `i`'s scores: `evaluation` of `outputs` (the model's output for every design row, of the fit on
/// `fitted_on`) on the fold's parts.
#[allow(clippy::too_many_arguments)] // the fold and the fit that scores it, each needed once
fn score_fold(
    spec: &BacktestSpec<'_>,
    design: &Design,
    parts: &Parts,
    i: usize,
    fitted_on: usize,
    outputs: &[f64],
    evaluation: Evaluation,
    fit_seconds: f64,
) -> Result<FoldOutcome, TrainError> {
    let predictions = match spec.fit.task {
        TaskSpec::Forecast { recipe, .. } => forecast_predictions(recipe.target_transform, design, outputs),
        TaskSpec::Tabular { .. } => outputs.to_vec(),
    };
    let fit_rows = parts.fit_rows();
    let baseline: Vec<f64> = match spec.fit.task {
        TaskSpec::Forecast { .. } => parts.test.iter().map(|&r| design.current[r]).collect(),
        // the training rows' mean: of the target for a regression, of the 0/1 label (the positive share) for a
        // classifier, as the evaluation's baselines
        TaskSpec::Tabular { .. } => {
            let train: Vec<f64> = parts.train.iter().map(|&r| design.label[r]).collect();
            vec![mean(&train); parts.test.len()]
        }
    };
    let seasonal = match (spec.season, design.seasonal.is_empty()) {
        (Some(_), false) => {
            let truth: Vec<f64> = parts.test.iter().map(|&r| design.truth[r]).collect();
            let naive: Vec<f64> = parts.test.iter().map(|&r| design.seasonal[r]).collect();
            let metrics = kiln_eval::RegressionMetrics::compute(&truth, &naive)?;
            metrics.iter().iter().map(|(name, v)| (format!("seasonal/test/{}", name.as_str()), *v)).collect()
        }
        _ => Vec::new(),
    };
    Ok(FoldOutcome {
        fold: i + 1,
        seasonal,
        steps: Vec::new(),
        train_rows: parts.train.len(),
        validation_rows: parts.validation.len(),
        test_rows: parts.test.len(),
        train_span: span(design, &fit_rows),
        test_span: span(design, &parts.test),
        evaluation,
        predictions: parts.test.iter().map(|&r| predictions[r]).collect(),
        fitted_on,
        test: parts.test.clone(),
        baseline,
        fit_seconds,
    })
}

/// The first and last key of `rows`: ISO times for a forecast, ids for tabular rows.
fn span(design: &Design, rows: &[usize]) -> (String, String) {
    let key = |r: usize| {
        if design.times.is_empty() {
            design.ids.get(r).cloned().unwrap_or_default()
        } else {
            kiln_domain::iso_from_millis(design.times[r])
        }
    };
    match (rows.first(), rows.last()) {
        (Some(&a), Some(&b)) => (key(a), key(b)),
        _ => (String::new(), String::new()),
    }
}

pub(crate) fn out_of_fold(design: &Design, folds: &[FoldOutcome]) -> OutOfFold {
    let mut oof = OutOfFold::default();
    for fold in folds {
        for (k, &r) in fold.test.iter().enumerate() {
            oof.fold.push(fold.fold);
            if design.times.is_empty() {
                oof.id.push(design.ids.get(r).cloned().unwrap_or_default());
            } else {
                oof.time.push(design.times[r]);
            }
            if !design.series.is_empty() {
                oof.series.push(design.series_keys[design.series[r] as usize].clone());
            }
            oof.actual.push(design.truth[r]);
            oof.prediction.push(fold.predictions[k]);
            oof.baseline.push(fold.baseline[k]);
        }
    }
    oof
}

/// The trading simulation of a forecast backtest's out-of-fold predictions (see `kiln_eval::simulate` for the rule):
/// each origin's price (the persistence baseline, the target at the origin), its forecast, and the next origin's
/// price (walk-forward test blocks follow each other); the last origin trades only with a one-step horizon, whose
/// actual is the next price. Periods per year come from the spacing of the origins unless the spec sets them.
///
/// # Errors
/// [`TrainError::Eval`] for a task that is not a forecast, a target that is not a price, or a bad spec.
pub fn trade(task: &TaskSpec, outcome: &BacktestOutcome, spec: &TradingSpec) -> Result<Simulation, TrainError> {
    if !outcome.oof.series.is_empty() {
        return Err(kiln_eval::EvalError::InvalidSpec {
            key: "backtest.trading".to_string(),
            reason: "a panel has many series and no one price to trade; backtest one series to trade it".to_string(),
        }
        .into());
    }
    let TaskSpec::Forecast { recipe, .. } = task else {
        return Err(kiln_eval::EvalError::InvalidSpec {
            key: "backtest.trading".to_string(),
            reason: "trading needs a forecast of a price".to_string(),
        }
        .into());
    };
    let oof = &outcome.oof;
    let n = oof.baseline.len();
    let periods = if recipe.horizon == 1 { n } else { n.saturating_sub(1) };
    let next: Vec<f64> = (0..periods).map(|t| if t + 1 < n { oof.baseline[t + 1] } else { oof.actual[t] }).collect();
    let per_year = kiln_eval::periods_per_year(&oof.time).unwrap_or(252.0);
    Ok(kiln_eval::simulate(&oof.baseline[..periods], &oof.prediction[..periods], &next, per_year, spec)?)
}

/// The seasonal naive forecast of every design row: the target one season (`m` rows) before the target time, or
/// `k` seasons before when the horizon is longer than a season (`y[t + h - m * ceil(h / m)]`), from the data's
/// time-ordered target; NaN where that lies before the first row.
fn seasonal_naive(
    recipe: &kiln_features::TimeSeriesRecipe,
    frame: &Frame,
    design: &Design,
    m: usize,
) -> Result<Vec<f64>, TrainError> {
    if m == 0 {
        return Err(kiln_eval::EvalError::InvalidSpec {
            key: "backtest.season".to_string(),
            reason: "must be at least 1 row".to_string(),
        }
        .into());
    }
    let long = recipe.long_frame(frame)?;
    let target = match long.column(&recipe.target) {
        Ok(kiln_domain::Column::Numeric(v)) => v,
        _ => return Err(TrainError::Target(format!("target column '{}' is not numeric", recipe.target))),
    };
    let h = recipe.horizon;
    let back = m * h.div_ceil(m);
    // each data row's series and place in it (a single series: one series, in the data's time order)
    let (codes, n_series) = match &recipe.series_column {
        Some(column) => {
            let (codes, keys) = long.series_codes(column)?;
            (codes, keys.len())
        }
        None => (vec![0; target.len()], 1),
    };
    let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); n_series];
    let mut place = vec![0usize; target.len()];
    for (r, &c) in codes.iter().enumerate() {
        place[r] = rows_of[c as usize].len();
        rows_of[c as usize].push(r);
    }
    Ok(design
        .data_rows
        .iter()
        .map(|&row| {
            // data rows count from 1
            let (r, series) = (row - 1, &rows_of[codes[row - 1] as usize]);
            (place[r] + h).checked_sub(back).and_then(|p| series.get(p)).map_or(f64::NAN, |&q| target[q])
        })
        .collect())
}
