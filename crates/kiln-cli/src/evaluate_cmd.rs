//! `kiln evaluate`: a model judged on new labelled rows, beside its bundle's own test metrics and a naive baseline on
//! the same rows; degraded (exit 4) when its primary metric got worse than the bundle's by more than the tolerance.
//! Logged as an evaluation run linked to the model's version.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use kiln_data::FileSource;
use kiln_domain::{DataSource, LoadedData, MetricPoint, RunId, RunStatus};
use kiln_eval::Metric;
use kiln_features::FittedPipeline;
use kiln_models::Bundle;
use kiln_train::{AssessRows, Assessment, Progress};
use serde::Serialize;

use crate::cli::EvaluateArgs;
use crate::commands::{StderrProgress, now_ms};
use crate::exit::{self, bad_input};

/// A model's primary metric on new rows against its bundle's test value.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Judgement {
    pub(crate) metric: String,
    pub(crate) higher_is_better: bool,
    /// on the new rows
    pub(crate) value: f64,
    /// the bundle's `test/<metric>`, when it has one
    pub(crate) bundle_test: Option<f64>,
    /// the naive baseline's value on the same new rows
    pub(crate) baseline: f64,
    /// the relative tolerance
    pub(crate) tolerance: f64,
    /// worse than the bundle's test value by more than the tolerance
    pub(crate) degraded: bool,
    /// no better than the naive baseline on the new rows
    pub(crate) no_better_than_baseline: bool,
    pub(crate) reason: String,
}

/// The metric to judge by: `name`, or the bundle's default (ROC-AUC for a classifier, RMSE otherwise), checked
/// against the model's task.
pub(crate) fn judged_metric(bundle: &Bundle<FittedPipeline>, name: Option<&str>) -> Result<Metric> {
    let classifier = bundle.pipeline.decision.is_some();
    let Some(name) = name else { return Ok(kiln_train::default_compare_metric(bundle)) };
    let Some(metric) = Metric::parse(name) else {
        bad_input!("--metric: unknown metric '{name}'; known: {}", Metric::NAMES.join(", "))
    };
    if matches!(metric, Metric::Classification(_)) != classifier {
        bad_input!(
            "--metric {name} is a {} metric, but the model is a {}",
            metric.task().as_str(),
            if classifier { "classifier" } else { "regression or forecast" }
        );
    }
    Ok(metric)
}

/// Judges `assessment` of `bundle` by `metric`: degraded when worse than the bundle's test value by more than
/// `tolerance` of it.
pub(crate) fn judge(
    bundle: &Bundle<FittedPipeline>,
    assessment: &Assessment,
    metric: Metric,
    tolerance: f64,
) -> Judgement {
    let name = metric.as_str();
    let value = assessment.metrics.get(name).copied().unwrap_or(f64::NAN);
    let baseline = assessment.baseline.get(name).copied().unwrap_or(f64::NAN);
    let bundle_test = bundle.metadata.metrics.get(&format!("test/{name}")).copied();
    let higher = metric.higher_is_better();
    let worse_than = |bar: f64| if higher { value < bar } else { value > bar };
    let (degraded, reason) = match bundle_test {
        Some(test) => {
            let bar = if higher { test - tolerance * test.abs() } else { test + tolerance * test.abs() };
            let change = if test != 0.0 { (value - test) / test.abs() * 100.0 } else { f64::NAN };
            if worse_than(bar) || !value.is_finite() {
                (
                    true,
                    format!(
                        "DEGRADED: {name} {value:.6} on {} new rows against {test:.6} on the bundle's test rows \
                         ({change:+.2}%), beyond the tolerance of {:.2}% ({} is better)",
                        assessment.rows,
                        tolerance * 100.0,
                        if higher { "higher" } else { "lower" }
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "ok: {name} {value:.6} on {} new rows against {test:.6} on the bundle's test rows \
                         ({change:+.2}%), within the tolerance of {:.2}%",
                        assessment.rows,
                        tolerance * 100.0
                    ),
                )
            }
        }
        None => (
            false,
            format!("the bundle has no test {name} to compare with; {name} {value:.6} on {} new rows", assessment.rows),
        ),
    };
    let no_better_than_baseline = !(if higher { value > baseline } else { value < baseline });
    Judgement {
        metric: name.to_string(),
        higher_is_better: higher,
        value,
        bundle_test,
        baseline,
        tolerance,
        degraded,
        no_better_than_baseline,
        reason,
    }
}

/// Reads a labelled file with the options the bundle's pipeline reads its input with.
/// The target is read too: as text for a classifier whose positive class is not a number, as numbers otherwise.
pub(crate) fn read_labelled(bundle: &Bundle<FittedPipeline>, input: &Path) -> Result<LoadedData> {
    let mut opts = kiln::read_options(&bundle.pipeline);
    let target = bundle.metadata.target.clone();
    let wide = bundle.pipeline.recipe().is_some_and(|r| r.wide.is_some());
    if let Some(columns) = opts.columns.as_mut().filter(|c| !wide && !c.contains(&target)) {
        columns.push(target.clone());
        match &bundle.pipeline.decision {
            Some(d) if d.positive.parse::<f64>().is_err() => opts.categorical.push(target),
            Some(_) => {}
            None => opts.numeric.push(target),
        }
    }
    Ok(FileSource::new(input, opts).load()?)
}

pub(crate) fn evaluate(args: EvaluateArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    if !(args.tolerance.is_finite() && args.tolerance >= 0.0) {
        bad_input!("--tolerance must be a fraction >= 0 (0.1: 10% worse allowed), not {}", args.tolerance);
    }
    let uri = kiln::tracking_uri(args.tracking_uri.clone());
    let loaded = kiln::load_bundle(&args.model, &uri)?;
    let bundle = &loaded.bundle;
    progress.step(&format!("loaded {}, checksums verified", loaded.label));
    let metric = judged_metric(bundle, args.metric.as_deref())?;
    let data = read_labelled(bundle, &args.input)?;
    progress.step(&format!("read {} rows from {}", data.frame.n_rows(), args.input.display()));
    let assessment = kiln_train::assess(bundle, &data.frame, &AssessRows::All).map_err(|e| {
        anyhow::Error::new(e).context(format!("{}: cannot judge {} on it", args.input.display(), loaded.label))
    })?;
    let judgement = judge(bundle, &assessment, metric, args.tolerance);

    print_assessment(bundle, &assessment, &judgement);
    let run =
        if args.no_log { None } else { Some(log_evaluation(&args, &uri, &loaded, &data, &assessment, &judgement)?) };
    if let Some(run) = &run {
        println!("logged as run {run} in {}", kiln::redact_user_info(&uri));
    }
    if let Some(target) = &args.json {
        let json = serde_json::json!({
            "model": args.model,
            "version": loaded.version.as_ref().map(|v| v.version),
            "input": args.input.display().to_string(),
            "data_sha256": data.sha256,
            "assessment": assessment,
            "judgement": judgement,
            "run_id": run.as_ref().map(|r| r.0.clone()),
        });
        crate::validate_cmd::write_json(target, &json)?;
    }
    Ok(if judgement.degraded { exit::WATCH_ALERT } else { 0 })
}

fn print_assessment(bundle: &Bundle<FittedPipeline>, a: &Assessment, j: &Judgement) {
    let mut rows = vec![vec![
        "metric".to_string(),
        "new rows".to_string(),
        "bundle test".to_string(),
        "baseline (new rows)".to_string(),
    ]];
    for (name, value) in &a.metrics {
        let test = bundle.metadata.metrics.get(&format!("test/{name}")).map_or("-".to_string(), |v| number(*v));
        let base = a.baseline.get(name).map_or("-".to_string(), |v| number(*v));
        let mark = if *name == j.metric { " *" } else { "" };
        rows.push(vec![format!("{name}{mark}"), number(*value), test, base]);
    }
    println!(
        "{} rows judged{}",
        a.rows,
        if a.without_truth > 0 {
            format!(" ({} predictions without a true value in the file left out)", a.without_truth)
        } else {
            String::new()
        }
    );
    print!("{}", crate::table::number_table(&rows));
    println!("baseline: {}", a.baseline_name);
    println!("* {}", j.reason);
    if j.no_better_than_baseline {
        println!("note: {} is no better than the naive baseline on these rows", j.metric);
    }
}

fn number(v: f64) -> String {
    kiln_train::number(v)
}

/// Logs the evaluation as a run in the training run's experiment (or `--experiment`), tagged with the version it
/// judged.
fn log_evaluation(
    args: &EvaluateArgs,
    uri: &str,
    loaded: &kiln::LoadedBundle,
    data: &LoadedData,
    a: &Assessment,
    j: &Judgement,
) -> Result<RunId> {
    let opened = kiln::create_store(uri)?;
    let store = opened.as_store();
    let training_run = loaded.bundle.metadata.run_id.clone();
    let experiment = match (&args.experiment, &training_run) {
        (Some(name), _) => store.experiment_by_name(name)?,
        (None, Some(run)) => match store.get_run(&RunId(run.clone())) {
            Ok(info) => info.experiment_id,
            Err(_) => store.experiment_by_name("kiln-evaluations")?,
        },
        (None, None) => store.experiment_by_name("kiln-evaluations")?,
    };
    let version = loaded.version.as_ref();
    let label = match version {
        Some(v) => format!("{}-v{}", v.name, v.version),
        None => "model".to_string(),
    };
    let mut tags = vec![
        ("mlflow.runName".to_string(), format!("evaluate-{label}")),
        ("kiln.run.kind".to_string(), "evaluation".to_string()),
        ("kiln.evaluated.reference".to_string(), args.model.clone()),
        ("kiln.data.sha256".to_string(), data.sha256.clone()),
        ("kiln.degraded".to_string(), j.degraded.to_string()),
        ("kiln.evaluation".to_string(), "performance".to_string()),
        ("kiln.evaluation.reason".to_string(), j.reason.clone()),
        ("mlflow.source.name".to_string(), "kiln evaluate".to_string()),
    ];
    if let Some(v) = version {
        tags.push(("kiln.evaluated.model".to_string(), v.name.clone()));
        tags.push(("kiln.evaluated.version".to_string(), v.version.to_string()));
    }
    if let Some(run) = &training_run {
        tags.push(("kiln.evaluated.run_id".to_string(), run.clone()));
    }
    let run = store.create_run(&experiment, &format!("evaluate-{label}"), &tags, now_ms())?;
    let id = run.run_id;
    let now = now_ms();
    let point = |key: String, value: f64| MetricPoint { key, value, timestamp_ms: now, step: 0 };
    let mut points: Vec<MetricPoint> = Vec::new();
    for (name, value) in &a.metrics {
        points.push(point(format!("eval/{name}"), *value));
    }
    for (name, value) in &a.baseline {
        points.push(point(format!("baseline/eval/{name}"), *value));
    }
    points.push(point("rows/judged".to_string(), a.rows as f64));
    points.push(point("rows/without_truth".to_string(), a.without_truth as f64));
    points.retain(|p| p.value.is_finite());
    let params = vec![
        ("input".to_string(), args.input.display().to_string()),
        ("metric".to_string(), j.metric.clone()),
        ("tolerance".to_string(), j.tolerance.to_string()),
    ];
    let result = store
        .log_params(&id, &params)
        .and_then(|()| store.log_metrics(&id, &points))
        .and_then(|()| store.end_run(&id, RunStatus::Finished, now_ms()));
    if let Err(e) = result {
        let _ = store.end_run(&id, RunStatus::Failed, now_ms());
        return Err(e.into());
    }
    Ok(id)
}
