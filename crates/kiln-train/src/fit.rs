//! Fit-and-evaluate, the pure step: design and split, the pipeline fitted on the training rows, the model, its
//! predictions on every row and the metrics beside a naive baseline. No port, no file, no clock: `train` composes it
//! with the tracking step, and a backtest fold or a tuning trial can call it on its own rows.
//!
//! The order is what keeps test rows out of every fitted step: prepare the design and split it, then fit the
//! preprocessing on the training rows, transform every row with it, fit the selection on the training rows, fit the
//! model on the training rows (the validation rows only drive early stopping and the decision threshold), and only
//! then look at the test rows.

use kiln_domain::{Frame, Matrix};
use kiln_features::{
    CvKind, FittedPipeline, FittedPreprocessor, FittedSelection, PipelineInput, PreprocessSpec, Preprocessor, Selector,
    SelectorSpec, Task, model_matrix,
};
use kiln_models::{FittedModel, ModelSpec};

use crate::TrainError;
use crate::evaluate::{self, Evaluation};
use crate::model::SelectionModel;
use crate::prepare::{Design, Parts, TaskSpec, prepare};

/// What one fit needs: the task (design and split) and the pipeline's steps, borrowed from whoever owns them.
#[derive(Debug, Clone, Copy)]
pub struct FitSpec<'a> {
    pub task: &'a TaskSpec,
    /// preprocessing steps, fitted on the training rows
    pub preprocess: &'a [PreprocessSpec],
    /// feature selectors, fitted on the training rows, in order
    pub selection: &'a [SelectorSpec],
    pub model: &'a ModelSpec,
    /// kept between fits on the same rows (a tuning study's folds, fitted once per trial), when given
    pub cache: Option<&'a kiln_models::FitCache>,
}

/// Progress messages for long work (the CLI prints them).
pub trait Progress {
    fn step(&self, message: &str);
}

/// Everything one fit produced: the design and its split, the fitted pipeline and model, the model's inputs and
/// outputs for every design row, and the evaluation of those outputs.
#[derive(Debug)]
pub struct FitEvaluation {
    pub(crate) design: Design,
    pub parts: Parts,
    /// the fitted pipeline as a bundle stores it (input, preprocessing, selection, decision, feature names)
    pub pipeline: FittedPipeline,
    /// the model's inputs, every design row (after preprocessing and selection)
    pub x: Matrix,
    pub model: FittedModel,
    /// the model's output for every design row, in the label's space
    pub outputs: Vec<f64>,
    pub evaluation: Evaluation,
    /// a multi-step forecast: the test metrics of every step
    pub steps: Option<Vec<crate::StepMetrics>>,
    /// a direct multi-step forecast: the models of steps 2, 3, ... (`model` is step 1's)
    pub step_models: Vec<FittedModel>,
    /// one model per series (`model.per_series`): the other series' models (`model` is the first series')
    pub per_series: Option<kiln_models::PerSeries>,
}

/// The fitted pipeline steps and the model inputs of every design row.
struct Transformed {
    preprocess: Option<FittedPreprocessor>,
    selection: Option<FittedSelection>,
    x: Matrix,
}

/// Fits the pipeline and the model on the training rows of `frame` and evaluates them on every part.
///
/// # Errors
/// A model that does not suit the task, bad data for the task, or any step's error.
pub fn fit_evaluate(spec: &FitSpec<'_>, frame: &Frame, progress: &dyn Progress) -> Result<FitEvaluation, TrainError> {
    check_model_fits_task(spec)?;
    progress.step(&format!("preparing the {} design from {} rows", spec.task.kind_str(), frame.n_rows()));
    let (design, parts) = prepare(spec.task, frame)?;
    let rows = design.rows;
    progress.step(&format!(
        "{} base features; {} train, {} validation, {} test rows",
        design.features.n_cols(),
        rows.train,
        rows.validation,
        rows.test
    ));

    let Fitted { mut pipeline, x, model, per_series, outputs, evaluation } =
        fit_parts(spec, &design, &parts, OutputRows::Every, progress)?;
    if let TaskSpec::Forecast { recipe, intervals: Some(intervals), .. } = spec.task {
        progress.step(&format!(
            "calibrating conformal intervals ({}%) on the last {} windows of the training rows",
            intervals.levels.iter().map(f64::to_string).collect::<Vec<_>>().join("%, "),
            intervals.windows
        ));
        pipeline.intervals = Some(crate::multistep::calibrate(spec, recipe, intervals, frame, &design, &parts)?);
    }
    let step_models = match spec.task {
        TaskSpec::Forecast { recipe, .. } if recipe.direct_steps() > 1 => {
            crate::multistep::fit_steps(spec, (&pipeline, recipe), &design, &parts, &x, progress)?
        }
        _ => Vec::new(),
    };
    let steps = match spec.task {
        TaskSpec::Forecast { recipe, .. } if recipe.direct_steps() > 0 => {
            progress.step("scoring every step's model on the test origins");
            let fit = (&model, step_models.as_slice(), &x);
            Some(crate::multistep::direct_step_metrics(fit, (&pipeline, recipe), frame, &design, &parts, None)?)
        }
        TaskSpec::Forecast { recipe, .. } if recipe.multi_step.is_some() => {
            progress.step("scoring every step of the multi-step forecasts from the test origins");
            let fit = (&model, per_series.as_ref());
            crate::multistep::step_metrics(recipe, &pipeline, fit, frame, &design, &parts, None)?
        }
        _ => None,
    };
    Ok(FitEvaluation { design, parts, pipeline, x, model, outputs, evaluation, steps, step_models, per_series })
}

/// What one fit on given parts of a design produced.
pub(crate) struct Fitted {
    pub(crate) pipeline: FittedPipeline,
    /// the model's inputs, every design row
    pub(crate) x: Matrix,
    /// the model (per series: the first series')
    pub(crate) model: FittedModel,
    /// one model per series (`model.per_series`): the other series' models
    pub(crate) per_series: Option<kiln_models::PerSeries>,
    /// the model's output for every design row, in the label's space
    pub(crate) outputs: Vec<f64>,
    pub(crate) evaluation: Evaluation,
}

/// Which design rows a fit's outputs are wanted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputRows {
    /// every design row (a train run's predictions, a backtest fold whose model later folds roll forward on)
    Every,
    /// the rows of the parts alone (a backtest fold refitted every fold, a tuning trial's fold); the other rows'
    /// outputs are NaN
    Parts,
}

/// Fits the pipeline and the model on `parts.train` of `design` (early stopping and the threshold on
/// `parts.validation`) and evaluates them on every part: the step a train run takes once and a backtest once a fold.
/// The outputs are the model's for the design rows `rows` asks for.
pub(crate) fn fit_parts(
    spec: &FitSpec<'_>,
    design: &Design,
    parts: &Parts,
    rows: OutputRows,
    progress: &dyn Progress,
) -> Result<Fitted, TrainError> {
    let transformed = fit_transform(spec, design, parts, progress)?;
    let x = transformed.x;
    let y = &design.label;

    progress.step(&format!("fitting {} on {} rows, {} features", spec.model.kind(), parts.train.len(), x.n_cols()));
    let x_fit = x.take_rows(&parts.train);
    let y_fit = take(y, &parts.train);
    let x_valid = x.take_rows(&parts.validation);
    let y_valid = take(y, &parts.validation);
    let valid = (!parts.validation.is_empty()).then_some((&x_valid, y_valid.as_slice()));
    let (model, per_series, outputs) = if matches!(spec.task, TaskSpec::Forecast { per_series: true, .. }) {
        fit_per_series(spec, design, parts, &x)?
    } else {
        let model = match spec.cache {
            Some(cache) => spec.model.fit_reusing(&x_fit, &y_fit, valid, cache)?,
            None => spec.model.fit(&x_fit, &y_fit, valid)?,
        };
        let outputs = match rows {
            OutputRows::Every => {
                progress.step(&format!("predicting the {} rows of every part", x.n_rows));
                model.predict(&x)?
            }
            OutputRows::Parts => predict_parts(&model, &x, parts)?,
        };
        (model, None, outputs)
    };
    let evaluation = evaluate::evaluate(spec.task, design, parts, &outputs)?;
    let pipeline = FittedPipeline {
        input: match spec.task {
            TaskSpec::Forecast { recipe, .. } => PipelineInput::Forecast(recipe.clone()),
            TaskSpec::Tabular { input, .. } => PipelineInput::Tabular(input.clone()),
        },
        preprocess: transformed.preprocess,
        selection: transformed.selection,
        decision: evaluation.decision(design),
        feature_names: x.names.clone(),
        // the spacing of the training rows' times dates each forecast's target
        step: match spec.task {
            TaskSpec::Forecast { .. } => kiln_features::SeriesStep::learn(&take(&design.times, &parts.train)),
            TaskSpec::Tabular { .. } => None,
        },
        intervals: None,
    };
    Ok(Fitted { pipeline, x, model, per_series, outputs, evaluation })
}

/// The model's outputs for the rows of `parts` (NaN for the design's other rows): a walk-forward fold's rows are a
/// prefix of the design, two thirds of it on average over five folds.
fn predict_parts(model: &FittedModel, x: &Matrix, parts: &Parts) -> Result<Vec<f64>, TrainError> {
    let mut wanted: Vec<usize> = parts.train.iter().chain(&parts.validation).chain(&parts.test).copied().collect();
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.len() == x.n_rows {
        return Ok(model.predict(x)?);
    }
    let predicted = model.predict(&x.take_rows(&wanted))?;
    let mut outputs = vec![f64::NAN; x.n_rows];
    for (&r, v) in wanted.iter().zip(predicted) {
        outputs[r] = v;
    }
    Ok(outputs)
}

/// One model per series of a panel (`model.per_series`), each fitted on its series' training rows (early stopping on
/// its validation rows), with every design row's output by its series' model. The first series' model is returned
/// apart, as a bundle holds it.
///
/// # Errors
/// A series with rows but no training row, or a fit's error.
#[allow(clippy::type_complexity)]
fn fit_per_series(
    spec: &FitSpec<'_>,
    design: &Design,
    parts: &Parts,
    x: &Matrix,
) -> Result<(FittedModel, Option<kiln_models::PerSeries>, Vec<f64>), TrainError> {
    let n = design.series_keys.len();
    let by_series = |rows: &[usize]| -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); n];
        for &r in rows {
            out[design.series[r] as usize].push(r);
        }
        out
    };
    let (train, validation) = (by_series(&parts.train), by_series(&parts.validation));
    let mut present = vec![false; n];
    for &s in &design.series {
        present[s as usize] = true;
    }
    let mut keys = Vec::new();
    let mut models = Vec::new();
    for s in 0..n {
        if !present[s] {
            continue;
        }
        let key = &design.series_keys[s];
        if train[s].is_empty() {
            return Err(TrainError::NotEnoughRows(format!(
                "model.per_series: series '{key}' has no training row (its rows all fall in the test part)"
            )));
        }
        let x_valid = x.take_rows(&validation[s]);
        let y_valid = take(&design.label, &validation[s]);
        let valid = (!validation[s].is_empty()).then_some((&x_valid, y_valid.as_slice()));
        let model = spec
            .model
            .fit(&x.take_rows(&train[s]), &take(&design.label, &train[s]), valid)
            .map_err(|e| TrainError::Target(format!("model.per_series: series '{key}': {e}")))?;
        keys.push(key.clone());
        models.push(model);
    }
    let mut models = models.into_iter();
    let first = models.next().ok_or_else(|| TrainError::NotEnoughRows("model.per_series: no series".to_string()))?;
    let per = kiln_models::PerSeries { keys, models: models.collect() };
    let series: Vec<&str> = design.series.iter().map(|&s| design.series_keys[s as usize].as_str()).collect();
    let outputs = per.predict(&first, &series, x)?;
    Ok((first, Some(per), outputs))
}

/// A classifier for a classification task, a regressor otherwise.
pub(crate) fn check_model_fits_task(spec: &FitSpec<'_>) -> Result<(), TrainError> {
    let wants = spec.task.is_classification();
    if spec.model.is_classifier() != wants {
        let (task, model) =
            if wants { ("a classification", "a regression") } else { ("a regression", "a classification") };
        return Err(TrainError::Target(format!(
            "{task} task needs a {} model, but model '{}' is {model} model (check model.kind and model.params.objective)",
            if wants { "classification" } else { "regression" },
            spec.model.kind()
        )));
    }
    Ok(())
}

/// Fits the preprocessing and the selection on the training rows and transforms every row.
fn fit_transform(
    spec: &FitSpec<'_>,
    design: &Design,
    parts: &Parts,
    progress: &dyn Progress,
) -> Result<Transformed, TrainError> {
    let (preprocess, features) = if spec.preprocess.is_empty() {
        (None, design.features.clone())
    } else {
        let fitted = Preprocessor::new(spec.preprocess.to_vec())
            .fit(&design.features.take(&parts.train))
            .map_err(|e| at_data_row(e, design, &parts.train))?;
        let features = fitted.transform(&design.features).map_err(|e| at_data_row(e, design, &all_rows(design)))?;
        progress.step(&format!("preprocessing fitted on the training rows: {} columns", features.n_cols()));
        (Some(fitted), features)
    };
    let x = model_matrix(&features)?;
    if spec.selection.is_empty() {
        return Ok(Transformed { preprocess, selection: None, x });
    }
    let task = if spec.task.is_classification() { Task::Classification } else { Task::Regression };
    let cv = match spec.task {
        TaskSpec::Forecast { recipe, .. } => CvKind::TimeOrdered { gap: recipe.min_gap() },
        TaskSpec::Tabular { .. } => CvKind::KFold,
    };
    let model = SelectionModel { spec: spec.model.without_early_stopping()? };
    let selection = Selector::new(spec.selection.to_vec())
        .fit(&x.take_rows(&parts.train), &take(&design.label, &parts.train), task, cv, Some(&model))
        .map_err(|e| at_data_row(e, design, &parts.train))?;
    let x = selection.apply(&x)?;
    progress.step(&format!("selection fitted on the training rows: kept {} features", x.n_cols()));
    Ok(Transformed { preprocess, selection: Some(selection), x })
}

/// A step's error about one of the `rows` it was given, told as the data row of the file it came from.
fn at_data_row(e: kiln_features::FeatureError, design: &Design, rows: &[usize]) -> TrainError {
    match e.row().and_then(|r| rows.get(r)).and_then(|&r| design.data_rows.get(r)) {
        Some(&data_row) => TrainError::AtDataRow { data_row, time_ordered: !design.times.is_empty(), error: e },
        None => e.into(),
    }
}

fn all_rows(design: &Design) -> Vec<usize> {
    (0..design.label.len()).collect()
}

pub(crate) fn take<T: Copy>(values: &[T], rows: &[usize]) -> Vec<T> {
    rows.iter().map(|&i| values[i]).collect()
}
