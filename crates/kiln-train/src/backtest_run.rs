//! A backtest as one tracked run: the experiment's params and the fold settings, every fold's metrics as metric
//! steps (step = fold, so MLflow draws a curve over the folds), their mean and standard deviation, the trading
//! metrics and the score; artifacts `config.yaml`, `backtest.json` (everything at full precision), `folds.csv`, the
//! out-of-fold predictions (the caller writes them in its file format), `actual_vs_predicted.png`, and with trading
//! `equity.png` and `drawdown.png`; the fold table in Markdown as the run's description. The run ends FINISHED, or
//! FAILED with the error as the `kiln.error` tag.

use kiln_domain::{CLASSIC_ML_KIND, EXPERIMENT_KIND_TAG, Frame, MetricPoint, RunId, RunInfo, RunStatus};
use kiln_eval::{Simulation, TradingSpec};

use crate::TrainError;
use crate::backtest::{BacktestOutcome, BacktestSpec, backtest, fold_summary, trade};
use crate::evaluate::Evaluation;
use crate::fit::Progress;
use crate::score::{Score, ScoreSpec, composite_score};
use crate::train::{Ports, fail_run, log_params_chunked, point, run_params, to_json};

/// What the run records beside the folds.
#[derive(Debug, Clone)]
pub struct BacktestRun {
    pub experiment: String,
    pub run_name: String,
    /// tags set at run creation (source, user, kiln version, data fingerprint, config path)
    pub tags: Vec<(String, String)>,
    /// params describing the inputs (data path, rows read) and the fold settings, beside the pipeline's
    pub input_params: Vec<(String, String)>,
    /// the merged experiment config, logged as `config.yaml`
    pub config_yaml: String,
    /// where the data came from (its file path), recorded as the run's dataset input; empty for none
    pub data_origin: String,
    pub data_sha256: String,
    pub trading: Option<TradingSpec>,
    pub score: Option<ScoreSpec>,
}

/// The out-of-fold predictions as a file: its name and bytes (the caller owns file formats).
pub type OofFile = (String, Vec<u8>);

/// Writes the out-of-fold predictions (and, with trading, each period's position and returns) as a file.
pub type OofWriter<'a> = dyn Fn(&BacktestOutcome, Option<&Simulation>) -> Result<OofFile, String> + 'a;

/// A tracked backtest's results.
#[derive(Debug, Clone)]
pub struct TrackedBacktest {
    pub outcome: BacktestOutcome,
    pub trading: Option<Simulation>,
    pub score: Option<Score>,
    pub run: RunInfo,
}

/// Runs the backtest inside a tracked run.
///
/// # Errors
/// Any step's error; the run is marked FAILED before it is returned (when the store is reachable).
pub fn backtest_run(
    spec: &BacktestSpec<'_>,
    run_spec: &BacktestRun,
    frame: &Frame,
    ports: &Ports<'_>,
    progress: &dyn Progress,
    oof_file: &OofWriter<'_>,
) -> Result<TrackedBacktest, TrainError> {
    if let Some(score) = &run_spec.score {
        score.check(spec.fit.task.is_classification(), run_spec.trading.is_some())?;
    }
    let experiment = ports.tracker.experiment_by_name(&run_spec.experiment)?;
    ports.tracker.ensure_experiment_tag(&experiment, EXPERIMENT_KIND_TAG, CLASSIC_ML_KIND)?;
    let mut tags = run_spec.tags.clone();
    tags.push(("mlflow.runName".into(), run_spec.run_name.clone()));
    tags.push(("kiln.run.kind".into(), "backtest".into()));
    let run = ports.tracker.create_run(&experiment, &run_spec.run_name, &tags, (ports.clock)())?;
    progress.step(&format!("run {} started in experiment '{}'", run.run_id, run_spec.experiment));
    match steps(spec, run_spec, frame, ports, progress, &run.run_id, oof_file) {
        Ok((outcome, trading, score)) => {
            ports.tracker.end_run(&run.run_id, RunStatus::Finished, (ports.clock)())?;
            let run = ports.tracker.get_run(&run.run_id)?;
            Ok(TrackedBacktest { outcome, trading, score, run })
        }
        Err(e) => {
            fail_run(ports, &run.run_id, &e, progress);
            Err(e)
        }
    }
}

type Results = (BacktestOutcome, Option<Simulation>, Option<Score>);

fn steps(
    spec: &BacktestSpec<'_>,
    run_spec: &BacktestRun,
    frame: &Frame,
    ports: &Ports<'_>,
    progress: &dyn Progress,
    id: &RunId,
    oof_file: &OofWriter<'_>,
) -> Result<Results, TrainError> {
    log_params_chunked(ports.tracker, id, &run_params(&run_spec.input_params, &spec.fit))?;
    if !run_spec.data_origin.is_empty() {
        let dataset = crate::interface::dataset_input(&run_spec.data_origin, &run_spec.data_sha256, frame);
        ports.tracker.log_dataset(id, &dataset)?;
    }
    let outcome = backtest(spec, frame, progress)?;
    let trading = run_spec.trading.as_ref().map(|t| trade(spec.fit.task, &outcome, t)).transpose()?;
    let classification = spec.fit.task.is_classification();
    let score =
        run_spec.score.as_ref().map(|s| composite_score(s, &outcome, trading.as_ref(), classification)).transpose()?;

    let now = (ports.clock)();
    let mut metrics = fold_metric_points("", &outcome, now);
    if let Some(sim) = &trading {
        for (side, m) in [("strategy", &sim.strategy), ("benchmark", &sim.benchmark)] {
            metrics.extend(
                m.iter()
                    .into_iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| point(&format!("trading/{side}/{k}"), v, now)),
            );
        }
    }
    if let Some(score) = &score {
        metrics.push(point("score", score.value, now));
    }
    for chunk in metrics.chunks(crate::model::METRICS_PER_CALL) {
        ports.tracker.log_metrics(id, chunk)?;
    }

    progress.step("writing artifacts");
    let store = ports.artifacts;
    store.put_bytes(id, "config.yaml", run_spec.config_yaml.as_bytes())?;
    store.put_bytes(id, "backtest.json", &to_json(&report(&outcome, trading.as_ref(), score.as_ref())))?;
    store.put_bytes(id, "folds.csv", folds_csv(&outcome).as_bytes())?;
    let (name, bytes) = oof_file(&outcome, trading.as_ref()).map_err(|e| {
        TrainError::Port(kiln_domain::PortError::io(format!("cannot write the out-of-fold predictions: {e}")))
    })?;
    store.put_bytes(id, &name, &bytes)?;
    charts(&outcome, trading.as_ref(), ports, id, &run_spec.run_name)?;
    let note = format!(
        "kiln backtest: {} folds\n\n{}{}{}",
        outcome.folds.len(),
        folds_markdown(&outcome),
        trading.as_ref().map_or(String::new(), |s| format!("\n{}", trading_markdown(s))),
        score.as_ref().map_or(String::new(), |s| format!("\nscore = {}\n", s.formula()))
    );
    ports.tracker.set_tags(id, &[("mlflow.note.content".to_string(), note)])?;
    Ok((outcome, trading, score))
}

/// Every fold's metrics as steps (`<prefix>folds/<key>`, step = fold) and their mean and standard deviation
/// (`<prefix>mean/<key>`, `<prefix>sd/<key>`).
pub(crate) fn fold_metric_points(prefix: &str, outcome: &BacktestOutcome, now: i64) -> Vec<MetricPoint> {
    let mut metrics: Vec<MetricPoint> = Vec::new();
    for fold in &outcome.folds {
        for (key, value) in fold.metrics() {
            #[allow(clippy::cast_possible_wrap)]
            let step = fold.fold as i64;
            metrics.push(MetricPoint { key: format!("{prefix}folds/{key}"), value, timestamp_ms: now, step });
        }
    }
    for (key, mean, sd) in fold_summary(&outcome.folds) {
        metrics.push(point(&format!("{prefix}mean/{key}"), mean, now));
        if sd.is_finite() {
            metrics.push(point(&format!("{prefix}sd/{key}"), sd, now));
        }
    }
    metrics
}

/// The backtest at full precision: each fold's rows, spans and metrics, the mean and standard deviation of every
/// metric over the folds, how the data's rows were used, the trading metrics and the score.
pub fn report(outcome: &BacktestOutcome, trading: Option<&Simulation>, score: Option<&Score>) -> serde_json::Value {
    let folds: Vec<serde_json::Value> = outcome
        .folds
        .iter()
        .map(|f| {
            let metrics: serde_json::Map<String, serde_json::Value> =
                f.metrics().into_iter().map(|(k, v)| (k, serde_json::json!(v))).collect();
            serde_json::json!({
                "fold": f.fold,
                "train_rows": f.train_rows,
                "validation_rows": f.validation_rows,
                "test_rows": f.test_rows,
                "train_span": [f.train_span.0, f.train_span.1],
                "test_span": [f.test_span.0, f.test_span.1],
                "fit_seconds": f.fit_seconds,
                "fitted_on": f.fitted_on,
                "metrics": metrics,
            })
        })
        .collect();
    let summary: serde_json::Map<String, serde_json::Value> = fold_summary(&outcome.folds)
        .into_iter()
        .map(|(k, mean, sd)| (k, serde_json::json!({"mean": mean, "sd": if sd.is_nan() { None } else { Some(sd) }})))
        .collect();
    let mut out = serde_json::json!({"folds": folds, "summary": summary, "rows": outcome.rows});
    if let Some(sim) = trading {
        out["trading"] = serde_json::json!({
            "periods_per_year": sim.periods_per_year,
            "strategy": sim.strategy,
            "benchmark": sim.benchmark,
        });
    }
    if let Some(score) = score {
        out["score"] = serde_json::json!(score);
    }
    out
}

/// The metrics a fold table shows, model beside baseline, and the baseline's name.
pub fn shown_metrics(outcome: &BacktestOutcome) -> (Vec<&'static str>, &'static str) {
    match outcome.folds.first().map(|f| &f.evaluation) {
        Some(Evaluation::Classification { .. }) => (vec!["roc_auc", "f1", "log_loss"], "majority"),
        Some(Evaluation::Regression { baseline, .. }) => (vec!["rmse", "mae", "r2"], baseline),
        None => (Vec::new(), ""),
    }
}

/// The fold table's rows (header first): fold, train and test spans, test rows, each metric beside the baseline's;
/// then the mean and the standard deviation over the folds.
pub fn fold_rows(outcome: &BacktestOutcome) -> Vec<Vec<String>> {
    let (metrics, baseline) = shown_metrics(outcome);
    let seasonal = outcome.folds.first().is_some_and(|f| !f.seasonal.is_empty());
    // (column title, metric key prefix) of the model and its baselines
    let mut sources = vec![(String::new(), "test/"), (format!("{baseline} "), "baseline/test/")];
    if seasonal {
        sources.push(("seasonal naive ".to_string(), "seasonal/test/"));
    }
    let mut header: Vec<String> = ["fold", "train", "test", "test rows"].iter().map(|s| s.to_string()).collect();
    for m in &metrics {
        for (title, _) in &sources {
            header.push(format!("{title}{m}"));
        }
    }
    let mut rows = vec![header];
    for fold in &outcome.folds {
        let values = fold.metrics();
        let get = |key: String| values.iter().find(|(k, _)| *k == key).map_or(f64::NAN, |(_, v)| *v);
        let mut row = vec![
            fold.fold.to_string(),
            format!("{}..{}", fold.train_span.0, fold.train_span.1),
            format!("{}..{}", fold.test_span.0, fold.test_span.1),
            fold.test_rows.to_string(),
        ];
        for m in &metrics {
            for (_, prefix) in &sources {
                row.push(number(get(format!("{prefix}{m}"))));
            }
        }
        rows.push(row);
    }
    let summary = fold_summary(&outcome.folds);
    for (label, pick_sd) in [("mean", false), ("sd", true)] {
        let mut row = vec![label.to_string(), String::new(), String::new(), String::new()];
        for m in &metrics {
            for key in sources.iter().map(|(_, prefix)| format!("{prefix}{m}")) {
                let value = summary
                    .iter()
                    .find(|(k, ..)| *k == key)
                    .map_or(f64::NAN, |(_, mean, sd)| if pick_sd { *sd } else { *mean });
                row.push(number(value));
            }
        }
        rows.push(row);
    }
    rows
}

/// Strategy beside buy and hold, one row a metric (header first).
pub fn trading_rows(simulation: &Simulation) -> Vec<Vec<String>> {
    let mut rows = vec![vec![String::new(), "strategy".to_string(), "buy & hold".to_string()]];
    for ((name, strategy), (_, benchmark)) in simulation.strategy.iter().into_iter().zip(simulation.benchmark.iter()) {
        let show = |v: f64| match name {
            "trades" | "max_drawdown_periods" => format!("{v:.0}"),
            "final_equity" => format!("{v:.2}"),
            _ => number(v),
        };
        rows.push(vec![name.replace('_', " "), show(strategy), show(benchmark)]);
    }
    rows
}

/// A metric with six decimals; `-` for a value that is not a number.
pub fn number(v: f64) -> String {
    if v.is_nan() { "-".to_string() } else { format!("{v:.6}") }
}

fn markdown(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
        if i == 0 {
            out.push_str(&format!("|{}\n", " --- |".repeat(row.len())));
        }
    }
    out
}

fn folds_markdown(outcome: &BacktestOutcome) -> String {
    markdown(&fold_rows(outcome))
}

fn trading_markdown(simulation: &Simulation) -> String {
    markdown(&trading_rows(simulation))
}

/// One row per fold: its spans, rows and every metric at full precision.
pub(crate) fn folds_csv(outcome: &BacktestOutcome) -> String {
    let keys: Vec<String> =
        outcome.folds.first().map(|f| f.metrics().into_iter().map(|(k, _)| k).collect()).unwrap_or_default();
    let mut out = format!(
        "fold,train_first,train_last,test_first,test_last,train_rows,validation_rows,test_rows,{}\n",
        keys.join(",")
    );
    for f in &outcome.folds {
        let values = f.metrics();
        let cells: Vec<String> = keys
            .iter()
            .map(|k| values.iter().find(|(key, _)| key == k).map_or(String::new(), |(_, v)| format!("{v:?}")))
            .collect();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            f.fold,
            csv_cell(&f.train_span.0),
            csv_cell(&f.train_span.1),
            csv_cell(&f.test_span.0),
            csv_cell(&f.test_span.1),
            f.train_rows,
            f.validation_rows,
            f.test_rows,
            cells.join(",")
        ));
    }
    out
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// Actual and predicted over every fold's test rows (forecasts); with trading, equity and drawdown of the strategy
/// beside buy and hold.
fn charts(
    outcome: &BacktestOutcome,
    trading: Option<&Simulation>,
    ports: &Ports<'_>,
    id: &RunId,
    run_name: &str,
) -> Result<(), TrainError> {
    let oof = &outcome.oof;
    // a chart over time shows one series: tabular rows and panels get the fold table and the Parquet instead
    if oof.time.is_empty() || !oof.series.is_empty() {
        return Ok(());
    }
    // each fold's first test row: where one fold's forecasts end and the next one's begin
    let boundaries: Vec<i64> =
        oof.fold.windows(2).zip(&oof.time[1..]).filter(|(w, _)| w[0] != w[1]).map(|(_, t)| *t).collect();
    let png = ports.charts.series_chart_marked(
        &format!("{run_name}: out-of-fold forecasts over {} folds (dashed: fold boundaries)", outcome.folds.len()),
        "value",
        &oof.time,
        &[("actual".to_string(), oof.actual.clone()), ("predicted".to_string(), oof.prediction.clone())],
        &boundaries,
    )?;
    ports.artifacts.put_bytes(id, "actual_vs_predicted.png", &png)?;
    if let Some(sim) = trading {
        let times = &oof.time[..sim.equity.len()];
        let png = ports.charts.series_chart(
            &format!("{run_name}: equity, strategy and buy & hold"),
            "equity",
            times,
            &[("strategy".to_string(), sim.equity.clone()), ("buy & hold".to_string(), sim.benchmark_equity.clone())],
        )?;
        ports.artifacts.put_bytes(id, "equity.png", &png)?;
        let png = ports.charts.series_chart(
            &format!("{run_name}: drawdown from the running peak"),
            "drawdown",
            times,
            &[
                ("strategy".to_string(), sim.drawdown.clone()),
                ("buy & hold".to_string(), sim.benchmark_drawdown.clone()),
            ],
        )?;
        ports.artifacts.put_bytes(id, "drawdown.png", &png)?;
    }
    Ok(())
}
