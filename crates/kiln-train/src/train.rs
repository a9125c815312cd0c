//! `train`: one tracked run from a frame to a (maybe registered) bundle: the pure fit-and-evaluate step
//! ([`crate::fit_evaluate`]) composed with the tracking step (params, metrics, curves, artifacts, bundle, gates,
//! registration, tags).

use std::collections::BTreeMap;

use kiln_domain::{
    ArtifactStore, CLASSIC_ML_KIND, ChartRenderer, EXPERIMENT_KIND_TAG, Frame, MetricPoint, ModelRegistry,
    ModelVersion, RunId, RunInfo, RunStatus, Tracker,
};
use kiln_features::{FittedPipeline, PreprocessSpec, SelectorSpec};
use kiln_models::{Bundle, BundleMetadata, ModelSpec};
use serde::Serialize;

use crate::TrainError;
use crate::evaluate::{Evaluation, Gates};
use crate::fit::{FitEvaluation, FitSpec, Progress, check_model_fits_task, fit_evaluate};
use crate::prepare::{Parts, RowCounts, TaskSpec};

/// Where to register the model when its gates pass, and when it may take the alias.
#[derive(Debug, Clone)]
pub struct RegisterSpec {
    pub model_name: String,
    pub alias: String,
    /// move the alias even when the alias's current holder scores better on the same test rows (said so in the
    /// output and the run's tags)
    pub force: bool,
    /// the metric the new model and the alias's holder are compared on; `None`: ROC-AUC for a classifier, RMSE
    /// otherwise ([`crate::default_compare_metric`])
    pub compare: Option<kiln_eval::Metric>,
    /// how much better than the holder the new model must be to take the alias, relative to the holder's score
    /// (0: at least as good; 0.01: 1% better)
    pub margin: f64,
}

impl RegisterSpec {
    /// Register as `model_name` and move `alias` when the new model is at least as good as its holder.
    pub fn new(model_name: &str, alias: &str) -> RegisterSpec {
        RegisterSpec { model_name: model_name.into(), alias: alias.into(), force: false, compare: None, margin: 0.0 }
    }
}

/// Everything one training run needs, built by the CLI from the experiment file.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    pub experiment: String,
    pub run_name: String,
    pub task: TaskSpec,
    /// preprocessing steps, fitted on the training rows
    pub preprocess: Vec<PreprocessSpec>,
    /// feature selectors, fitted on the training rows, in order
    pub selection: Vec<SelectorSpec>,
    pub model: ModelSpec,
    pub gates: Gates,
    pub register: Option<RegisterSpec>,
    /// tags set at run creation (source, user, git commit, kiln version, data fingerprint, config path)
    pub tags: Vec<(String, String)>,
    /// params describing the inputs (data path, rows read), logged beside the hyperparameters
    pub input_params: Vec<(String, String)>,
    /// the merged experiment config, logged as `config.yaml`
    pub config_yaml: String,
    pub data_sha256: String,
    /// where the training data came from (its file path), recorded as the run's dataset input; empty for none
    pub data_origin: String,
    pub kiln_version: String,
    /// with `kiln train --cv`: the folds to report for this configuration, over the training part only
    pub cv: Option<CvSpec>,
}

/// Cross-validation folds reported beside a trained model (`kiln train --cv`).
#[derive(Debug, Clone, Copy)]
pub struct CvSpec {
    pub splitter: kiln_eval::Splitter,
    /// the validation rows carved from each fold's training rows (as the experiment's split)
    pub validation: Option<kiln_eval::Size>,
    /// the seed of a tabular fold's validation draw
    pub seed: u64,
    /// folds fitted at once
    pub threads: usize,
}

/// The adapters the use case talks to.
pub struct Ports<'a> {
    pub tracker: &'a dyn Tracker,
    pub artifacts: &'a dyn ArtifactStore,
    pub registry: &'a dyn ModelRegistry,
    pub charts: &'a dyn ChartRenderer,
    /// milliseconds since the epoch, now
    pub clock: &'a dyn Fn() -> i64,
    /// the bundle holding an alias now, for registration to compare the new model with; `None`: registration
    /// moves the alias without a comparison (a caller that cannot load bundles)
    pub champion: Option<&'a ChampionLoader>,
}

/// Loads the bundle of the version holding `alias` of registered model `name` now: `Ok(None)` when no version
/// holds it (the model or the alias does not exist yet).
pub type ChampionLoader = dyn Fn(&str, &str) -> Result<Option<Champion>, TrainError> + Sync;

/// The version holding an alias, loaded.
pub struct Champion {
    pub version: u64,
    pub bundle: Bundle<FittedPipeline>,
}

impl TrainSpec {
    /// The part of the spec the pure fit-and-evaluate step needs.
    pub fn fit_spec(&self) -> FitSpec<'_> {
        FitSpec {
            task: &self.task,
            preprocess: &self.preprocess,
            selection: &self.selection,
            model: &self.model,
            cache: None,
        }
    }
}

/// What a finished run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub run: RunInfo,
    pub rows: RowCounts,
    pub evaluation: Evaluation,
    pub gates: kiln_eval::GateReport,
    pub best_iteration: Option<usize>,
    /// the model's input columns after preprocessing and selection
    pub features: Vec<String>,
    /// the registered version, when registration was asked for and every gate passed
    pub registered: Option<ModelVersion>,
    pub feature_importance: Vec<(String, f64, f64)>,
    /// the cross-validation folds over the training part, with `--cv`
    pub cv: Option<crate::BacktestOutcome>,
    /// a panel: every series' test metrics, worst first
    pub series: Option<Vec<crate::SeriesMetrics>>,
    /// a multi-step forecast: the test metrics of every step
    pub steps: Option<Vec<crate::StepMetrics>>,
    /// with registration and a loader of the alias's holder: the two models' scores on the test rows, and whether
    /// the alias moved
    pub comparison: Option<crate::Comparison>,
}

/// Trains, evaluates and tracks one model. The run ends FINISHED, or FAILED with the error as the `kiln.error` tag.
///
/// # Errors
/// Any step's error; the run is marked FAILED before it is returned (when the store is reachable).
pub fn train(
    spec: &TrainSpec,
    frame: &Frame,
    ports: &Ports<'_>,
    progress: &dyn Progress,
) -> Result<TrainOutcome, TrainError> {
    let experiment = ports.tracker.experiment_by_name(&spec.experiment)?;
    // MLflow 3's UI shows an experiment of this kind with the classic runs, metrics and models views
    ports.tracker.ensure_experiment_tag(&experiment, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND)?;
    let mut tags = spec.tags.clone();
    tags.push(("mlflow.runName".into(), spec.run_name.clone()));
    let run = ports.tracker.create_run(&experiment, &spec.run_name, &tags, (ports.clock)())?;
    progress.step(&format!("run {} started in experiment '{}'", run.run_id, spec.experiment));
    match run_steps(spec, frame, ports, progress, &run) {
        Ok(outcome) => {
            ports.tracker.end_run(&run.run_id, RunStatus::Finished, (ports.clock)())?;
            let run = ports.tracker.get_run(&run.run_id)?;
            Ok(TrainOutcome { run, ..outcome })
        }
        Err(e) => {
            fail_run(ports, &run.run_id, &e, progress);
            Err(e)
        }
    }
}

/// Marks a run FAILED with the error as its `kiln.error` tag. Best effort: the original error is what the user needs;
/// a second failure is reported beside it.
pub(crate) fn fail_run(ports: &Ports<'_>, run: &RunId, error: &TrainError, progress: &dyn Progress) {
    let note = format!("failed: [{}] {error}", error.code());
    if let Err(second) = ports.tracker.set_tags(run, &[("kiln.error".into(), note)]) {
        progress.step(&format!("could not record the error on run {run}: {second}"));
    }
    if let Err(second) = ports.tracker.end_run(run, RunStatus::Failed, (ports.clock)()) {
        progress.step(&format!("could not mark run {run} FAILED: {second}"));
    }
}

fn run_steps(
    spec: &TrainSpec,
    frame: &Frame,
    ports: &Ports<'_>,
    progress: &dyn Progress,
    run: &RunInfo,
) -> Result<TrainOutcome, TrainError> {
    let id = &run.run_id;
    // before the params are logged, as always (fit_evaluate checks again for callers that track nothing)
    check_model_fits_task(&spec.fit_spec())?;
    log_params_chunked(ports.tracker, id, &run_params(&spec.input_params, &spec.fit_spec()))?;
    if !spec.data_origin.is_empty() {
        let dataset = crate::interface::dataset_input(&spec.data_origin, &spec.data_sha256, frame);
        ports.tracker.log_dataset(id, &dataset)?;
    }

    let fit_started = (ports.clock)();
    let FitEvaluation { design, parts, pipeline, x, model, outputs, evaluation, steps, step_models, per_series } =
        fit_evaluate(&spec.fit_spec(), frame, progress)?;
    let x = &x;
    let rows = design.rows;
    let best_iteration = model.best_iteration();
    let gates = evaluation.gates(&spec.gates);

    let now = (ports.clock)();
    let mut metrics: Vec<MetricPoint> =
        evaluation.metric_values().into_iter().map(|(k, v)| point(&k, v, now)).collect();
    if let Some(best) = best_iteration {
        metrics.push(point("model/best_iteration", best as f64, now));
    }
    metrics.push(point("model/features_selected", x.n_cols() as f64, now));
    for (name, n) in [
        ("rows/input", rows.input),
        ("rows/warmup_dropped", rows.warmup_dropped),
        ("rows/no_target_dropped", rows.no_target_dropped),
        ("rows/missing_target_dropped", rows.missing_target_dropped),
        ("rows/missing_feature_rows", rows.missing_feature_rows),
        ("rows/missing_feature_dropped", rows.missing_feature_dropped),
        ("rows/gap_dropped", rows.gap_dropped),
        ("rows/train", rows.train),
        ("rows/validation", rows.validation),
        ("rows/test", rows.test),
    ] {
        metrics.push(point(name, n as f64, now));
    }
    if let Some(steps) = &steps {
        metrics.extend(crate::multistep::step_points(steps, now));
    }
    if rows.series > 0 {
        metrics.push(point("rows/series", rows.series as f64, now));
        metrics.push(point("rows/short_series_dropped", rows.short_series_dropped as f64, now));
    }
    ports.tracker.log_metrics(id, &metrics)?;
    // the booster's metric as it trained, as training curves (step = round, timestamp = when the round ended),
    // at most 1000 points a call
    let curves = crate::model::curve_points(model.eval_curves(), fit_started);
    for chunk in curves.chunks(crate::model::METRICS_PER_CALL) {
        ports.tracker.log_metrics(id, chunk)?;
    }

    // the same configuration on folds of the training part (the test part stays unseen)
    let cv = match &spec.cv {
        Some(cv) => {
            progress.step(&format!("cross-validating on {} folds of the training part", cv.splitter.folds()));
            let backtest_spec = crate::BacktestSpec {
                fit: spec.fit_spec(),
                splitter: cv.splitter,
                validation: cv.validation,
                seed: cv.seed,
                threads: cv.threads,
                refit_every: 1,
                rows: crate::FoldedRows::TrainingPart,
                season: None,
            };
            let outcome = crate::backtest(&backtest_spec, frame, progress)?;
            let points = crate::backtest_run::fold_metric_points("cv/", &outcome, (ports.clock)());
            for chunk in points.chunks(crate::model::METRICS_PER_CALL) {
                ports.tracker.log_metrics(id, chunk)?;
            }
            ports.artifacts.put_bytes(id, "cv_folds.csv", crate::backtest_run::folds_csv(&outcome).as_bytes())?;
            Some(outcome)
        }
        None => None,
    };

    progress.step("writing artifacts");
    // one model per series: no one importance or SHAP summary describes them all (each series' model is in the
    // bundle, for a user to inspect)
    let importance = if per_series.is_some() { Vec::new() } else { model.feature_importance()? };
    let store = ports.artifacts;
    store.put_bytes(id, "config.yaml", spec.config_yaml.as_bytes())?;
    let mut metrics_json = evaluation.to_json();
    if let serde_json::Value::Object(map) = &mut metrics_json {
        map.insert("gates".into(), serde_json::json!(gates));
        map.insert("rows".into(), serde_json::json!(rows));
        map.insert("best_iteration".into(), serde_json::json!(best_iteration));
    }
    store.put_bytes(id, "metrics.json", &to_json(&metrics_json))?;
    if per_series.is_none() {
        log_importance(spec, ports, id, &importance)?;
    }
    if let Some(selection) = &pipeline.selection {
        store.put_bytes(id, "selection.json", &to_json(selection))?;
    }
    // a forecast's charts are drawn at the time each forecast is for (its origin when the step was not learned)
    let target_time = |origin: i64| pipeline.target_time(origin).unwrap_or(origin);
    evaluation.log_artifacts(&spec.task, ports, id, &spec.run_name, &design, &parts, &outputs, &target_time)?;
    if per_series.is_none() {
        log_shap_summary(spec, ports, id, &model, x, &parts)?;
    }
    let series = crate::panel::series_metrics(&spec.task, &design, &parts, &outputs)?;
    if let Some(steps) = &steps {
        store.put_bytes(id, "steps.csv", crate::multistep::steps_csv(steps).as_bytes())?;
    }
    let mut panel_tags = Vec::new();
    if let Some(series) = &series {
        store.put_bytes(id, "series_metrics.csv", crate::series_metrics_csv(series).as_bytes())?;
        if let Some(worst) = series.first() {
            let now = (ports.clock)();
            let worst_points = [
                point("test/worst_series_rmse", worst.model.rmse, now),
                point("test/worst_series_rmse_vs_baseline", crate::panel::relative(worst), now),
            ];
            ports.tracker.log_metrics(id, &worst_points)?;
            panel_tags.push(("kiln.worst_series".to_string(), worst.series.clone()));
        }
    }

    // the bundle: written whole to a temporary folder, then copied file by file under `model/`
    let metadata = BundleMetadata {
        kiln_version: spec.kiln_version.clone(),
        model_kind: model.kind().name.to_string(),
        created_ms: (ports.clock)(),
        run_id: Some(id.0.clone()),
        metrics: evaluation.metric_values().into_iter().filter(|(k, _)| k.starts_with("test/")).collect(),
        params: spec.model.params().into_iter().collect(),
        data_sha256: spec.data_sha256.clone(),
        feature_names: x.names.clone(),
        target: spec.task.target().to_string(),
        horizon: match &spec.task {
            TaskSpec::Forecast { recipe, .. } => u32::try_from(recipe.horizon).ok(),
            TaskSpec::Tabular { .. } => None,
        },
        files: BTreeMap::new(),
    };
    // the reference profile of the training rows, for `kiln drift` and live drift in `kiln serve`
    let profile = crate::profile::training_profile(&pipeline, frame, &design, &parts, x, &outputs).to_json();
    let bundle = Bundle { pipeline, model, step_models, per_series, metadata, profile: Some(profile) };
    let tmp = tempfile::tempdir().map_err(TrainError::Temp)?;
    let dir = tmp.path().join("model");
    let interface = crate::interface::model_interface(&bundle.pipeline, frame);
    kiln_models::write_bundle_with(&dir, &bundle, &interface)?;
    kiln_models::verify_bundle(&dir)?;
    let logged_model = store.log_model(id, "model", &dir, bundle.model.kind().as_str())?;

    let gate_lines: String = gates
        .checks
        .iter()
        .map(|c| format!("- {} {}: {}\n", if c.passed { "✅" } else { "❌" }, c.name, c.detail))
        .collect();
    let warning = evaluation.percentage_warning().map(|w| format!("⚠️ {w}.\n\n")).unwrap_or_default();
    let note = format!(
        "**{}** — {} {} of `{}`.\n\n{}\n{warning}{gate_lines}",
        spec.run_name,
        spec.model.kind(),
        spec.task.kind_str(),
        spec.task.target(),
        evaluation.markdown()
    );
    let mut run_tags = vec![
        ("mlflow.note.content".to_string(), note),
        ("kiln.gates".to_string(), if gates.passed() { "passed" } else { "failed" }.to_string()),
    ];
    run_tags.extend(panel_tags);
    let mut comparison = None;
    let registered = match &spec.register {
        Some(reg) if gates.passed() => {
            // judged before anything is registered, so a failure leaves the registry as it was
            if let Some(load) = ports.champion {
                let c = compare_with_holder(reg, load, &bundle, frame, &design, &parts, progress)?;
                progress.step(&format!("'{}': {}", reg.alias, c.reason));
                let now = (ports.clock)();
                let mut points = vec![point(&format!("registry/new_{}", c.metric), c.challenger, now)];
                if let Some((_, held)) = c.champion.filter(|(_, v)| v.is_finite()) {
                    points.push(point(&format!("registry/holder_{}", c.metric), held, now));
                }
                ports.tracker.log_metrics(id, &points)?;
                run_tags.push(("kiln.alias_decision".into(), decision_str(c.decision).into()));
                run_tags.push(("kiln.alias_reason".into(), c.reason.clone()));
                comparison = Some(c);
            }
            let moves = comparison.as_ref().is_none_or(|c| c.decision.moves_alias());
            progress.step(&if moves {
                format!("registering '{}' and moving alias '{}'", reg.model_name, reg.alias)
            } else {
                format!("registering '{}' without moving alias '{}'", reg.model_name, reg.alias)
            });
            let version =
                kiln_registry::register(ports.registry, &reg.model_name, id, "model", logged_model.as_deref())?;
            let version = if moves {
                kiln_registry::promote(
                    ports.registry,
                    &reg.model_name,
                    version.version,
                    kiln_registry::PromoteTarget::Alias(reg.alias.clone()),
                )?
            } else {
                version
            };
            run_tags.push(("kiln.registered".into(), format!("{}/{}", reg.model_name, version.version)));
            if let Some(c) = &comparison {
                tag_versions(ports, &reg.model_name, version.version, c)?;
            }
            Some(version)
        }
        Some(_) => {
            run_tags.push(("kiln.registered".into(), "refused: a gate failed".into()));
            None
        }
        None => None,
    };
    ports.tracker.set_tags(id, &run_tags)?;

    Ok(TrainOutcome {
        run: run.clone(),
        rows,
        evaluation,
        gates,
        best_iteration,
        features: bundle.metadata.feature_names.clone(),
        registered,
        feature_importance: importance,
        cv,
        series,
        steps,
        comparison,
    })
}

/// The comparison on the versions themselves: the new one gets the decision, the reason and its score; the holder
/// the outcome of the challenge it faced.
fn tag_versions(ports: &Ports<'_>, name: &str, version: u64, c: &crate::Comparison) -> Result<(), TrainError> {
    let registry = ports.registry;
    registry.set_version_tag(name, version, "kiln.alias_decision", decision_str(c.decision))?;
    registry.set_version_tag(name, version, "kiln.alias_reason", &c.reason)?;
    registry.set_version_tag(name, version, &format!("kiln.compared.{}", c.metric), &c.challenger.to_string())?;
    if let Some((held, _)) = c.champion {
        registry.set_version_tag(name, version, "kiln.compared_with_version", &held.to_string())?;
        let outcome = format!("challenged by version {version}: {} ({})", decision_str(c.decision), c.reason);
        registry.set_version_tag(name, held, "kiln.last_challenge", &outcome)?;
    }
    Ok(())
}

fn decision_str(d: crate::Decision) -> &'static str {
    match d {
        crate::Decision::Takes => "takes",
        crate::Decision::Refused => "refused",
        crate::Decision::Forced => "forced",
    }
}

/// Scores the new bundle and the alias's holder on the new run's test rows and decides whether the alias moves.
/// A holder that cannot be scored on them (other input columns) cannot be beaten on them either: the alias stays
/// unless `force`.
fn compare_with_holder(
    reg: &RegisterSpec,
    load: &ChampionLoader,
    bundle: &Bundle<FittedPipeline>,
    frame: &Frame,
    design: &crate::prepare::Design,
    parts: &Parts,
    progress: &dyn Progress,
) -> Result<crate::Comparison, TrainError> {
    let metric = reg.compare.unwrap_or_else(|| crate::default_compare_metric(bundle));
    let rows = match &bundle.pipeline.input {
        kiln_features::PipelineInput::Tabular(_) => {
            crate::AssessRows::Tabular(parts.test.iter().map(|&r| design.data_rows[r] - 1).collect())
        }
        kiln_features::PipelineInput::Forecast(_) => {
            let times = parts.test.iter().map(|&r| design.times[r]);
            crate::AssessRows::Origins {
                from: times.clone().min().unwrap_or(i64::MIN),
                to: times.max().unwrap_or(i64::MAX),
            }
        }
    };
    progress.step(&format!("comparing with the version holding '{}' of '{}'", reg.alias, reg.model_name));
    let new = crate::assess(bundle, frame, &rows)?;
    let Some(holder) = load(&reg.model_name, &reg.alias)? else {
        return crate::decide(&reg.alias, metric, &new, None, reg.margin, reg.force);
    };
    match crate::assess(&holder.bundle, frame, &rows) {
        Ok(held) => crate::decide(&reg.alias, metric, &new, Some((holder.version, &held)), reg.margin, reg.force),
        Err(e) => {
            let decision = if reg.force { crate::Decision::Forced } else { crate::Decision::Refused };
            let then = if reg.force {
                "moved by --force".to_string()
            } else {
                format!("so '{}' stays on version {} (--force moves it anyway)", reg.alias, holder.version)
            };
            Ok(crate::Comparison {
                alias: reg.alias.clone(),
                metric: metric.as_str().to_string(),
                higher_is_better: metric.higher_is_better(),
                challenger: new.get(metric).unwrap_or(f64::NAN),
                champion: Some((holder.version, f64::NAN)),
                margin: reg.margin,
                rows: new.rows,
                decision,
                reason: format!(
                    "version {} cannot be scored on the new test rows ({e}), so the two cannot be compared; {then}",
                    holder.version
                ),
            })
        }
    }
}

pub(crate) fn point(key: &str, value: f64, timestamp_ms: i64) -> MetricPoint {
    MetricPoint { key: key.to_string(), value, timestamp_ms, step: 0 }
}

pub(crate) fn log_params_chunked(
    tracker: &dyn Tracker,
    run: &RunId,
    params: &[(String, String)],
) -> Result<(), TrainError> {
    for chunk in params.chunks(100) {
        tracker.log_params(run, chunk)?;
    }
    Ok(())
}

/// Every param of the run: inputs, task, recipe, preprocessing, selection, model, split.
pub(crate) fn run_params(input_params: &[(String, String)], spec: &FitSpec<'_>) -> Vec<(String, String)> {
    let mut out = input_params.to_vec();
    out.push(("task.kind".into(), spec.task.kind_str().into()));
    out.push(("task.target".into(), spec.task.target().into()));
    match spec.task {
        TaskSpec::Forecast { recipe, split, .. } => {
            out.push(("task.horizon".into(), recipe.horizon.to_string()));
            out.push(("task.target_transform".into(), recipe.target_transform.as_str().into()));
            out.push(("data.time_column".into(), recipe.time_column.clone()));
            out.push(("features.count".into(), recipe.feature_names().len().to_string()));
            out.extend(list_params("features", &recipe.features));
            out.extend(object_params("split", split));
        }
        TaskSpec::Tabular { input, kind, split, .. } => {
            out.push(("features.columns".into(), input.columns.join(",")));
            out.push(("features.count".into(), input.columns.len().to_string()));
            if let crate::TabularKind::Classification { positive, threshold } = kind {
                out.push(("task.positive".into(), positive.clone()));
                let t = match threshold {
                    crate::ThresholdRule::Fixed(v) => v.to_string(),
                    crate::ThresholdRule::BestF1 => "best_f1".into(),
                };
                out.push(("task.threshold".into(), t));
            }
            out.push(("split.test_size".into(), split.test_size.to_string()));
            if let Some(v) = split.validation_size {
                out.push(("split.validation_size".into(), v.to_string()));
            }
            out.push(("split.seed".into(), split.seed.to_string()));
        }
    }
    let missing = spec.task.missing();
    out.push(("data.missing_target".into(), missing.target.as_str().into()));
    out.push(("data.missing_features".into(), missing.features.as_str().into()));
    out.push(("data.max_dropped_fraction".into(), missing.max_dropped_fraction.to_string()));
    out.extend(list_params("preprocess", spec.preprocess));
    out.extend(list_params("selection", spec.selection));
    out.push(("model.kind".into(), spec.model.kind().into()));
    out.extend(spec.model.params().into_iter().map(|(k, v)| (format!("model.{k}"), v)));
    out
}

/// An externally tagged list as params: `{"lag": {...}}` at index i -> key `<prefix>.<i>.lag`, value the body as
/// compact JSON (truncated to MLflow's 6000-character limit).
fn list_params<T: Serialize>(prefix: &str, items: &[T]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(item) {
            for (kind, body) in map {
                let mut value = body.to_string();
                value.truncate(6000);
                out.push((format!("{prefix}.{i}.{kind}"), value));
            }
        }
    }
    out
}

fn object_params<T: Serialize>(prefix: &str, value: &T) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(value) {
        for (k, v) in map {
            if !v.is_null() {
                out.push((format!("{prefix}.{k}"), v.to_string().trim_matches('"').to_string()));
            }
        }
    }
    out
}

fn log_importance(
    spec: &TrainSpec,
    ports: &Ports<'_>,
    run: &RunId,
    importance: &[(String, f64, f64)],
) -> Result<(), TrainError> {
    let mut sorted: Vec<_> = importance.to_vec();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let json: Vec<_> =
        sorted.iter().map(|(f, gain, split)| serde_json::json!({"feature": f, "gain": gain, "split": split})).collect();
    ports.artifacts.put_bytes(run, "feature_importance.json", &to_json(&json))?;
    let top: Vec<_> = sorted.iter().take(CHART_FEATURES).collect();
    if top.is_empty() {
        return Ok(());
    }
    let png = ports.charts.bar_chart(
        &format!("{}: feature importance, {}", spec.run_name, features_shown(top.len(), sorted.len())),
        spec.model.importance_label(),
        &top.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        &top.iter().map(|t| t.1).collect::<Vec<_>>(),
    )?;
    ports.artifacts.put_bytes(run, "feature_importance.png", &png)?;
    Ok(())
}

/// At most this many features are drawn in the importance chart.
const CHART_FEATURES: usize = 25;
/// At most this many features are drawn in the SHAP beeswarm (as the `shap` package's `summary_plot` does).
const SHAP_FEATURES: usize = 20;
/// At most this many rows go into the SHAP summary.
const SHAP_ROWS: usize = 200;

/// What a chart's title says about the features it shows: "top 25 of 40 features" when it leaves some out.
pub(crate) fn features_shown(shown: usize, total: usize) -> String {
    match (shown, total) {
        (s, t) if s < t => format!("top {s} of {t} features"),
        (_, 1) => "1 feature".to_string(),
        (_, t) => format!("{t} features"),
    }
}

/// What the model's raw output, and so a SHAP value, is measured in.
fn output_units(task: &TaskSpec) -> String {
    use kiln_features::TargetTransform;
    match task {
        TaskSpec::Tabular { kind: crate::TabularKind::Classification { .. }, .. } => "log-odds".to_string(),
        TaskSpec::Tabular { target, .. } => target.clone(),
        TaskSpec::Forecast { recipe, .. } => match recipe.target_transform {
            TargetTransform::None => recipe.target.clone(),
            TargetTransform::Difference => format!("change in {}", recipe.target),
            TargetTransform::LogReturn => format!("log return of {}", recipe.target),
        },
    }
}

/// SHAP contributions on the held-out rows (LightGBM and XGBoost): the mean |contribution| of every feature as
/// JSON, and a beeswarm of the features with the largest, each row's dot coloured by the feature's value (the
/// model's encoded input).
fn log_shap_summary(
    spec: &TrainSpec,
    ports: &Ports<'_>,
    run: &RunId,
    model: &kiln_models::FittedModel,
    x: &kiln_domain::Matrix,
    parts: &Parts,
) -> Result<(), TrainError> {
    let all = if parts.test.is_empty() { &parts.train } else { &parts.test };
    // TreeSHAP costs trees x leaves x depth^2 per row: an evenly spaced sample keeps big models fast
    let rows: Vec<usize> = if all.len() <= SHAP_ROWS {
        all.clone()
    } else {
        (0..SHAP_ROWS).map(|i| all[i * all.len() / SHAP_ROWS]).collect()
    };
    let sample = x.take_rows(&rows);
    let Some(contrib) = model.contributions(&sample)? else {
        return Ok(());
    };
    let n = contrib.n_rows.max(1) as f64;
    // (column, mean |SHAP|), largest first
    let mut summary: Vec<(usize, f64)> =
        (0..x.n_cols()).map(|j| (j, (0..contrib.n_rows).map(|i| contrib.row(i)[j].abs()).sum::<f64>() / n)).collect();
    summary.sort_by(|a, b| b.1.total_cmp(&a.1));
    let json: Vec<_> =
        summary.iter().map(|(j, v)| serde_json::json!({"feature": x.names[*j], "mean_abs_shap": v})).collect();
    ports.artifacts.put_bytes(run, "shap_summary.json", &to_json(&json))?;
    let shown: Vec<kiln_domain::BeeswarmRow> = summary
        .iter()
        .take(SHAP_FEATURES)
        .map(|&(j, _)| kiln_domain::BeeswarmRow {
            feature: x.names[j].clone(),
            shap: (0..contrib.n_rows).map(|i| contrib.row(i)[j]).collect(),
            values: sample.column(j),
        })
        .collect();
    if shown.is_empty() {
        return Ok(());
    }
    let png = ports.charts.beeswarm_chart(
        &format!(
            "{}: SHAP values ({}) on {} of {} held-out rows, {}",
            spec.run_name,
            output_units(&spec.task),
            rows.len(),
            all.len(),
            features_shown(shown.len(), summary.len())
        ),
        "SHAP value (impact on model output)",
        &shown,
    )?;
    ports.artifacts.put_bytes(run, "shap_summary.png", &png)?;
    Ok(())
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes())
}

#[cfg(test)]
mod tests;
