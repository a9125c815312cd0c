//! `train`: one tracked run from a frame to a (maybe registered) bundle.

use std::collections::BTreeMap;

use kiln_domain::{
    ArtifactStore, ChartRenderer, Estimator, Frame, MetricPoint, ModelRegistry, ModelVersion, RunId, RunInfo,
    RunStatus, Tracker,
};
use kiln_eval::{GateReport, GateSpec, HoldoutSpec, OverfitReport, RegressionMetrics};
use kiln_features::{FittedPipeline, TimeSeriesRecipe};
use kiln_models::{Bundle, BundleMetadata, CheckedLightGbm, FittedModel};
use serde::Serialize;

use crate::TrainError;

/// The checked model to fit (a closed set; more kinds come with their adapters).
#[derive(Debug, Clone)]
pub enum TrainedModelSpec {
    LightGbm(CheckedLightGbm),
}

impl TrainedModelSpec {
    fn kind(&self) -> &'static str {
        match self {
            TrainedModelSpec::LightGbm(_) => "lightgbm",
        }
    }

    fn params(&self) -> Vec<(String, String)> {
        match self {
            TrainedModelSpec::LightGbm(p) => p.as_params(),
        }
    }
}

/// Where to register the model when its gates pass.
#[derive(Debug, Clone)]
pub struct RegisterSpec {
    pub model_name: String,
    pub alias: String,
}

/// Everything one training run needs, built by the CLI from the experiment file.
#[derive(Debug, Clone)]
pub struct TrainSpec {
    pub experiment: String,
    pub run_name: String,
    pub recipe: TimeSeriesRecipe,
    pub split: HoldoutSpec,
    pub model: TrainedModelSpec,
    pub gates: GateSpec,
    pub register: Option<RegisterSpec>,
    /// tags set at run creation (source, user, git commit, kiln version, data fingerprint, config path)
    pub tags: Vec<(String, String)>,
    /// params describing the inputs (data path, rows read), logged beside the hyperparameters
    pub input_params: Vec<(String, String)>,
    /// the merged experiment config, logged as `config.yaml`
    pub config_yaml: String,
    pub data_sha256: String,
    pub kiln_version: String,
}

/// The adapters the use case talks to.
pub struct Ports<'a> {
    pub tracker: &'a dyn Tracker,
    pub artifacts: &'a dyn ArtifactStore,
    pub registry: &'a dyn ModelRegistry,
    pub charts: &'a dyn ChartRenderer,
    /// milliseconds since the epoch, now
    pub clock: &'a dyn Fn() -> i64,
}

/// Progress messages for long work (the CLI prints them).
pub trait Progress {
    fn step(&self, message: &str);
}

/// How the rows of the data were used.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RowCounts {
    pub input: usize,
    pub warmup_dropped: usize,
    pub no_target_dropped: usize,
    pub gap_dropped: usize,
    pub train: usize,
    pub validation: usize,
    pub test: usize,
}

/// Metrics of the model and of the persistence baseline, in the target's own units.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub model_train: RegressionMetrics,
    pub model_test: RegressionMetrics,
    pub baseline_train: RegressionMetrics,
    pub baseline_test: RegressionMetrics,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub run: RunInfo,
    pub rows: RowCounts,
    pub evaluation: Evaluation,
    pub overfit: OverfitReport,
    pub gates: GateReport,
    pub best_iteration: usize,
    /// the registered version, when registration was asked for and every gate passed
    pub registered: Option<ModelVersion>,
    pub feature_importance: Vec<(String, f64, f64)>,
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
            // best effort: the original error is what the user needs; a second failure is reported beside it
            let note = format!("failed: [{}] {e}", e.code());
            let tagged = ports.tracker.set_tags(&run.run_id, &[("kiln.error".into(), note)]);
            let ended = ports.tracker.end_run(&run.run_id, RunStatus::Failed, (ports.clock)());
            if let Err(second) = tagged.and(ended) {
                progress.step(&format!("could not mark run {} FAILED: {second}", run.run_id));
            }
            Err(e)
        }
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
    let recipe = &spec.recipe;
    recipe.validate()?;

    let mut params = spec.input_params.clone();
    params.extend(recipe_params(recipe));
    params.push(("model.kind".into(), spec.model.kind().into()));
    params.extend(spec.model.params().into_iter().map(|(k, v)| (format!("model.{k}"), v)));
    params.extend(split_params(&spec.split));
    log_params_chunked(ports.tracker, id, &params)?;

    progress.step(&format!("building {} features from {} rows", recipe.feature_names().len(), frame.n_rows()));
    let table = recipe.build_table(frame)?;
    // rows whose target lies past the end of the data cannot be used for fitting or scoring
    let usable = table.future.iter().take_while(|v| !v.is_nan()).count();
    let no_target_dropped = table.future.len() - usable;
    if table.future[..usable].iter().any(|v| v.is_nan()) || table.current.iter().take(usable).any(|v| v.is_nan()) {
        return Err(TrainError::NotEnoughRows(format!(
            "the target column '{}' has missing values inside the data; fill or drop them before training",
            recipe.target
        )));
    }
    let split = kiln_eval::time_holdout(usable, &spec.split, recipe.horizon.saturating_sub(1))?;
    let rows = RowCounts {
        input: frame.n_rows(),
        warmup_dropped: table.warmup_dropped,
        no_target_dropped,
        gap_dropped: split.gap.len(),
        train: split.train.len(),
        validation: split.validation.len(),
        test: split.test.len(),
    };

    let x_fit = table.x.rows(split.train.start, split.train.end);
    let y_fit = &table.label[split.train.clone()];
    let x_valid = table.x.rows(split.validation.start, split.validation.end);
    let y_valid = &table.label[split.validation.clone()];
    let valid = (!split.validation.is_empty()).then_some((&x_valid, y_valid));

    progress.step(&format!(
        "fitting {} on {} rows ({} validation, {} test)",
        spec.model.kind(),
        rows.train,
        rows.validation,
        rows.test
    ));
    let (model, best_iteration) = match &spec.model {
        TrainedModelSpec::LightGbm(p) => {
            let m = p.fit(&x_fit, y_fit, valid)?;
            let best = m.best_iteration();
            (FittedModel::LightGbm(m), best)
        }
    };

    // predictions in the target's own units: the transform is inverted with the value known at t
    let predict_range = |range: std::ops::Range<usize>| -> Result<Vec<f64>, TrainError> {
        let out = model.predict(&table.x.rows(range.start, range.end))?;
        Ok(out.iter().zip(&table.current[range]).map(|(o, c)| recipe.target_transform.invert(*c, *o)).collect())
    };
    let train_range = split.fit_rows();
    let pred_train = predict_range(train_range.clone())?;
    let pred_test = predict_range(split.test.clone())?;
    let truth = |r: std::ops::Range<usize>| table.future[r].to_vec();
    let persistence = |r: std::ops::Range<usize>| table.current[r].to_vec();
    let evaluation = Evaluation {
        model_train: RegressionMetrics::compute(&truth(train_range.clone()), &pred_train)?,
        model_test: RegressionMetrics::compute(&truth(split.test.clone()), &pred_test)?,
        baseline_train: RegressionMetrics::compute(&truth(train_range.clone()), &persistence(train_range.clone()))?,
        baseline_test: RegressionMetrics::compute(&truth(split.test.clone()), &persistence(split.test.clone()))?,
    };
    let overfit = kiln_eval::overfit(&evaluation.model_train, &evaluation.model_test);
    let gates =
        kiln_eval::check_gates(&spec.gates, &evaluation.model_test, &evaluation.model_train, &evaluation.baseline_test);

    let now = (ports.clock)();
    let mut metrics = Vec::new();
    for (prefix, m) in [
        ("train", &evaluation.model_train),
        ("test", &evaluation.model_test),
        ("baseline_train", &evaluation.baseline_train),
        ("baseline_test", &evaluation.baseline_test),
    ] {
        for (name, value) in m.iter() {
            metrics.push(point(&format!("{prefix}_{name}"), value, now));
        }
    }
    metrics.push(point("overfit_ratio", overfit.ratio, now));
    metrics.push(point("best_iteration", best_iteration as f64, now));
    for (name, n) in [
        ("rows_input", rows.input),
        ("rows_warmup_dropped", rows.warmup_dropped),
        ("rows_no_target_dropped", rows.no_target_dropped),
        ("rows_gap_dropped", rows.gap_dropped),
        ("rows_train", rows.train),
        ("rows_validation", rows.validation),
        ("rows_test", rows.test),
    ] {
        metrics.push(point(name, n as f64, now));
    }
    ports.tracker.log_metrics(id, &metrics)?;

    progress.step("writing artifacts");
    let importance = model.feature_importance()?;
    log_artifacts(spec, ports, id, model, &importance, &evaluation, &gates, &overfit, &rows, &table, &split)?;
    let markdown = kiln_eval::markdown_table(&[
        ("model (train)", &evaluation.model_train),
        ("model (test)", &evaluation.model_test),
        ("persistence (test)", &evaluation.baseline_test),
    ]);
    let gate_lines: String = gates
        .checks
        .iter()
        .map(|c| format!("- {} {}: {}\n", if c.passed { "✅" } else { "❌" }, c.name, c.detail))
        .collect();
    let note = format!(
        "**{}** — {} forecast of `{}`, {} step(s) ahead, target transform `{}`.\n\n{markdown}\n{gate_lines}",
        spec.run_name,
        spec.model.kind(),
        recipe.target,
        recipe.horizon,
        recipe.target_transform.as_str()
    );
    let mut run_tags = vec![
        ("mlflow.note.content".to_string(), note),
        ("kiln.gates".to_string(), if gates.passed() { "passed" } else { "failed" }.to_string()),
    ];

    let registered = match &spec.register {
        Some(reg) if gates.passed() => {
            progress.step(&format!("registering '{}' and moving alias '{}'", reg.model_name, reg.alias));
            let version = kiln_registry::register(ports.registry, &reg.model_name, id, "model")?;
            let version = kiln_registry::promote(
                ports.registry,
                &reg.model_name,
                version.version,
                kiln_registry::PromoteTarget::Alias(reg.alias.clone()),
            )?;
            run_tags.push(("kiln.registered".into(), format!("{}/{}", reg.model_name, version.version)));
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
        overfit,
        gates,
        best_iteration,
        registered,
        feature_importance: importance,
    })
}

fn point(key: &str, value: f64, timestamp_ms: i64) -> MetricPoint {
    MetricPoint { key: key.to_string(), value, timestamp_ms, step: 0 }
}

fn log_params_chunked(tracker: &dyn Tracker, run: &RunId, params: &[(String, String)]) -> Result<(), TrainError> {
    for chunk in params.chunks(100) {
        tracker.log_params(run, chunk)?;
    }
    Ok(())
}

fn recipe_params(recipe: &TimeSeriesRecipe) -> Vec<(String, String)> {
    let mut out = vec![
        ("task.target".to_string(), recipe.target.clone()),
        ("task.horizon".to_string(), recipe.horizon.to_string()),
        ("task.target_transform".to_string(), recipe.target_transform.as_str().to_string()),
        ("data.time_column".to_string(), recipe.time_column.clone()),
        ("features.count".to_string(), recipe.feature_names().len().to_string()),
    ];
    for (i, f) in recipe.features.iter().enumerate() {
        // externally tagged: {"lag": {...}} -> key features.0.lag, value the body as compact JSON
        let json = serde_json::to_value(f).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = json {
            for (kind, body) in map {
                out.push((format!("features.{i}.{kind}"), body.to_string()));
            }
        }
    }
    out
}

fn split_params(split: &HoldoutSpec) -> Vec<(String, String)> {
    let json = serde_json::to_value(split).unwrap_or(serde_json::Value::Null);
    let mut out = Vec::new();
    if let serde_json::Value::Object(map) = json {
        for (k, v) in map {
            if !v.is_null() {
                out.push((format!("split.{k}"), v.to_string().trim_matches('"').to_string()));
            }
        }
    }
    out
}

#[derive(Serialize)]
struct SplitPredictions<'a> {
    time_ms: &'a [i64],
    y_true: &'a [f64],
    y_pred: Vec<f64>,
    persistence: &'a [f64],
}

#[allow(clippy::too_many_arguments)]
fn log_artifacts(
    spec: &TrainSpec,
    ports: &Ports<'_>,
    run: &RunId,
    model: FittedModel,
    importance: &[(String, f64, f64)],
    evaluation: &Evaluation,
    gates: &GateReport,
    overfit: &OverfitReport,
    rows: &RowCounts,
    table: &kiln_features::FeatureTable,
    split: &kiln_eval::Holdout,
) -> Result<(), TrainError> {
    let store = ports.artifacts;
    store.put_bytes(run, "config.yaml", spec.config_yaml.as_bytes())?;

    let metrics_json = serde_json::json!({
        "model": {"train": evaluation.model_train, "test": evaluation.model_test},
        "persistence": {"train": evaluation.baseline_train, "test": evaluation.baseline_test},
        "overfit": overfit,
        "gates": gates,
        "rows": rows,
    });
    store.put_bytes(run, "metrics.json", &to_json(&metrics_json))?;

    let mut sorted: Vec<_> = importance.to_vec();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    let imp_json: Vec<_> =
        sorted.iter().map(|(f, gain, split)| serde_json::json!({"feature": f, "gain": gain, "split": split})).collect();
    store.put_bytes(run, "feature_importance.json", &to_json(&imp_json))?;
    let top: Vec<_> = sorted.iter().take(25).collect();
    let png = ports.charts.bar_chart(
        &format!("{}: feature importance (gain)", spec.run_name),
        "total gain",
        &top.iter().map(|t| t.0.clone()).collect::<Vec<_>>(),
        &top.iter().map(|t| t.1).collect::<Vec<_>>(),
    )?;
    store.put_bytes(run, "feature_importance.png", &png)?;

    // the predictions the metrics were computed on, so anyone can recompute them
    let recipe = &spec.recipe;
    let preds = |r: std::ops::Range<usize>| -> Result<SplitPredictions<'_>, TrainError> {
        let out = model.predict(&table.x.rows(r.start, r.end))?;
        Ok(SplitPredictions {
            time_ms: &table.times[r.clone()],
            y_true: &table.future[r.clone()],
            y_pred: out
                .iter()
                .zip(&table.current[r.clone()])
                .map(|(o, c)| recipe.target_transform.invert(*c, *o))
                .collect(),
            persistence: &table.current[r],
        })
    };
    let train_range = split.fit_rows();
    let predictions = serde_json::json!({"train": preds(train_range)?, "test": preds(split.test.clone())?});
    store.put_bytes(run, "predictions.json", &to_json(&predictions))?;

    // the bundle: written whole to a temporary folder, then copied file by file under `model/`
    let mut metrics = BTreeMap::new();
    for (prefix, m) in [("train", &evaluation.model_train), ("test", &evaluation.model_test)] {
        for (name, value) in m.iter() {
            metrics.insert(format!("{prefix}_{name}"), value);
        }
    }
    let pipeline = FittedPipeline::new(recipe.clone(), &table.x.names);
    let metadata = BundleMetadata {
        kiln_version: spec.kiln_version.clone(),
        model_kind: model.kind(),
        created_ms: (ports.clock)(),
        run_id: Some(run.0.clone()),
        metrics,
        params: spec.model.params().into_iter().collect(),
        data_sha256: spec.data_sha256.clone(),
        feature_names: table.x.names.clone(),
        target: recipe.target.clone(),
        horizon: u32::try_from(recipe.horizon).ok(),
        files: BTreeMap::new(),
    };
    let bundle = Bundle { pipeline, model, metadata };
    let tmp = tempfile::tempdir().map_err(TrainError::Temp)?;
    let dir = tmp.path().join("model");
    kiln_models::write_bundle(&dir, &bundle)?;
    kiln_models::verify_bundle(&dir)?;
    store.put_dir(run, "model", &dir)?;
    Ok(())
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes())
}
