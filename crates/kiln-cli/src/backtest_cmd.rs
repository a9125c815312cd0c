//! `kiln backtest`: the experiment's pipeline fitted and scored on many folds (kiln-train's `backtest`), the folds
//! from the `backtest:` section and the flags; prints the fold table beside the baseline, with the mean and standard
//! deviation over folds, and writes the out-of-fold predictions.

use std::time::Instant;

use anyhow::{Context, Result};
use kiln_data::FileSource;
use kiln_domain::{Column, DataSource, Frame, LoadedData};
use kiln_eval::{Simulation, Splitter, WalkForward};
use kiln_train::{BacktestOutcome, BacktestSpec, Evaluation, FitSpec, Progress, TaskSpec, fold_summary};

use crate::cli::BacktestArgs;
use crate::commands::{StderrProgress, load_experiment, read_options};
use crate::exit::bad_input;
use crate::table::number_table;

/// The default number of folds.
const DEFAULT_FOLDS: usize = 5;

pub(crate) fn backtest(args: BacktestArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (settings, _) = load_experiment(&args.config)?;
    let exp = &settings.experiment;
    let section = exp.backtest.clone().unwrap_or_default();
    let folds = args.folds.or(section.folds).unwrap_or(DEFAULT_FOLDS);
    let threads = args
        .threads
        .or(section.threads)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if threads == 0 {
        bad_input!("backtest.threads (--threads): must be at least 1");
    }
    let test_size = args.test_size.or(section.test_size);
    let gap = args.gap.or(section.gap);
    let max_train_size = args.max_train_size.or(section.max_train_size);

    let mut opts =
        read_options(exp.data.time_column.as_deref(), exp.data.time_format.clone(), exp.data.na_values.clone());
    opts.columns = settings.read_columns();
    let source = FileSource::new(&exp.data.path, opts);
    progress.step(&format!("reading {}", source.describe()));
    let LoadedData { frame, .. } = source.load()?;
    let task = settings.task_spec(frame.names())?;
    let classification = task.is_classification();
    if let Some(score) = &section.score {
        score.check(classification, section.trading.is_some())?;
    }
    if let Some(trading) = &section.trading {
        trading.validate()?;
        let TaskSpec::Forecast { recipe, .. } = &task else {
            bad_input!("backtest.trading needs a forecast of a price; this task is a {:?}", exp.task.kind);
        };
        if let Ok(Column::Numeric(values)) = frame.column(&recipe.target)
            && let Some(v) = values.iter().find(|v| !v.is_nan() && **v <= 0.0)
        {
            bad_input!(
                "backtest.trading needs a price series, but target '{}' holds {v} (a price is > 0)",
                recipe.target
            );
        }
    }

    let splitter = match &task {
        TaskSpec::Forecast { recipe, .. } => {
            let least_gap = recipe.horizon.saturating_sub(1);
            let gap = gap.unwrap_or(least_gap);
            if gap < least_gap {
                bad_input!(
                    "backtest.gap (--gap) is {gap}, below horizon - 1 = {least_gap}: the last training rows' targets \
                     would lie inside the test block"
                );
            }
            if let Some(t) = test_size
                && t < recipe.horizon
            {
                bad_input!(
                    "backtest.test_size (--test-size) is {t} rows, shorter than the horizon ({} steps)",
                    recipe.horizon
                );
            }
            Splitter::walk_forward(WalkForward { folds, test_size, gap, max_train_size })
        }
        TaskSpec::Tabular { .. } => {
            for (set, key) in [
                (test_size.is_some(), "test_size (--test-size)"),
                (gap.is_some(), "gap (--gap)"),
                (max_train_size.is_some(), "max_train_size (--max-train-size)"),
            ] {
                if set {
                    bad_input!("backtest.{key} only applies to a forecast; tabular rows are folded by k-fold");
                }
            }
            let seed = section.shuffle.unwrap_or(false).then(|| exp.split.seed.unwrap_or(42));
            if settings.model.is_classifier() {
                Splitter::stratified_kfold(folds, seed)
            } else {
                Splitter::kfold(folds, seed)
            }
        }
    };
    let spec = BacktestSpec {
        fit: FitSpec { task: &task, preprocess: &exp.preprocess, selection: &exp.selection, model: &settings.model },
        splitter,
        validation: exp.split.validation_size,
        seed: exp.split.seed.unwrap_or(42),
        threads,
    };
    let outcome = kiln_train::backtest(&spec, &frame, &progress)?;
    println!();
    print!("{}", fold_table(&outcome));
    let trading = match &section.trading {
        Some(trading) => {
            let simulation = kiln_train::trade(&task, &outcome, trading)?;
            println!();
            println!(
                "trading the out-of-fold forecasts ({} periods, {} a year; a forecast made at a close trades at that \
                 close and earns the return to the next)",
                simulation.returns.len(),
                simulation.periods_per_year
            );
            print!("{}", trading_table(&simulation));
            Some(simulation)
        }
        None => None,
    };
    let score = match &section.score {
        Some(spec) => {
            let score = kiln_train::composite_score(spec, &outcome, trading.as_ref(), classification)?;
            println!();
            println!("score = {}", score.formula());
            Some(score)
        }
        None => None,
    };
    if let Some(path) = &args.json {
        let mut value = report(&outcome);
        if let Some(score) = &score {
            value["score"] = serde_json::json!(score);
        }
        if let Some(simulation) = &trading {
            value["trading"] = serde_json::json!({
                "periods_per_year": simulation.periods_per_year,
                "strategy": simulation.strategy,
                "benchmark": simulation.benchmark,
            });
        }
        let text = serde_json::to_string_pretty(&value).context("cannot print the backtest report")?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.oof {
        kiln_data::write_frame(path, &oof_frame(&outcome, trading.as_ref())?)
            .with_context(|| format!("cannot write the out-of-fold predictions to {}", path.display()))?;
        println!("\nout-of-fold predictions: {} rows in {}", outcome.oof.actual.len(), path.display());
    }
    Ok(0)
}

/// The folds and their metrics at full precision, and the mean and standard deviation over folds.
fn report(outcome: &BacktestOutcome) -> serde_json::Value {
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
                "metrics": metrics,
            })
        })
        .collect();
    let summary: serde_json::Map<String, serde_json::Value> = fold_summary(&outcome.folds)
        .into_iter()
        .map(|(k, mean, sd)| (k, serde_json::json!({"mean": mean, "sd": if sd.is_nan() { None } else { Some(sd) }})))
        .collect();
    serde_json::json!({"folds": folds, "summary": summary, "rows": outcome.rows})
}

/// The metrics a fold table shows, model beside baseline: (key, column title).
fn shown_metrics(outcome: &BacktestOutcome) -> (Vec<&'static str>, &'static str) {
    match outcome.folds.first().map(|f| &f.evaluation) {
        Some(Evaluation::Classification { .. }) => (vec!["roc_auc", "f1", "log_loss"], "majority"),
        Some(Evaluation::Regression { baseline, .. }) => (vec!["rmse", "mae", "r2"], baseline),
        None => (Vec::new(), ""),
    }
}

/// One row per fold (train and test spans, rows, each metric of the model and of the baseline), then the mean and
/// the standard deviation over the folds.
fn fold_table(outcome: &BacktestOutcome) -> String {
    let (metrics, baseline) = shown_metrics(outcome);
    let mut header: Vec<String> = ["fold", "train", "test", "test rows"].iter().map(|s| s.to_string()).collect();
    for m in &metrics {
        header.push((*m).to_string());
        header.push(format!("{baseline} {m}"));
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
            row.push(number(get(format!("test/{m}"))));
            row.push(number(get(format!("baseline/test/{m}"))));
        }
        rows.push(row);
    }
    let summary = fold_summary(&outcome.folds);
    for (label, pick) in [("mean", 0usize), ("sd", 1)] {
        let mut row = vec![label.to_string(), String::new(), String::new(), String::new()];
        for m in &metrics {
            for key in [format!("test/{m}"), format!("baseline/test/{m}")] {
                let value = summary
                    .iter()
                    .find(|(k, ..)| *k == key)
                    .map_or(f64::NAN, |(_, mean, sd)| if pick == 0 { *mean } else { *sd });
                row.push(number(value));
            }
        }
        rows.push(row);
    }
    number_table(&rows)
}

fn number(v: f64) -> String {
    if v.is_nan() { "-".to_string() } else { format!("{v:.6}") }
}

/// Strategy beside buy and hold, one row a metric.
fn trading_table(simulation: &Simulation) -> String {
    let mut rows = vec![vec!["".to_string(), "strategy".to_string(), "buy & hold".to_string()]];
    for ((name, strategy), (_, benchmark)) in simulation.strategy.iter().into_iter().zip(simulation.benchmark.iter()) {
        let show = |v: f64| match name {
            "trades" | "max_drawdown_periods" => format!("{v:.0}"),
            "final_equity" => format!("{v:.2}"),
            _ => number(v),
        };
        rows.push(vec![name.replace('_', " "), show(strategy), show(benchmark)]);
    }
    number_table(&rows)
}

/// The out-of-fold predictions as a frame: fold, the row's time or id, actual, prediction, baseline; with a trading
/// simulation, each period's position and the strategy's and buy and hold's returns (empty for an origin that could
/// not trade).
fn oof_frame(outcome: &BacktestOutcome, trading: Option<&Simulation>) -> Result<Frame> {
    let oof = &outcome.oof;
    #[allow(clippy::cast_precision_loss)]
    let mut columns = vec![("fold".to_string(), Column::Numeric(oof.fold.iter().map(|&f| f as f64).collect()))];
    if oof.time.is_empty() {
        columns.push(("id".to_string(), Column::Categorical(oof.id.iter().cloned().map(Some).collect())));
    } else {
        columns.push(("time".to_string(), Column::Timestamp(oof.time.clone())));
    }
    columns.push(("actual".to_string(), Column::Numeric(oof.actual.clone())));
    columns.push(("prediction".to_string(), Column::Numeric(oof.prediction.clone())));
    columns.push(("baseline".to_string(), Column::Numeric(oof.baseline.clone())));
    if let Some(simulation) = trading {
        let padded = |values: &[f64]| {
            let mut v = values.to_vec();
            v.resize(oof.baseline.len(), f64::NAN);
            Column::Numeric(v)
        };
        columns.push(("position".to_string(), padded(&simulation.positions)));
        columns.push(("strategy_return".to_string(), padded(&simulation.returns)));
        columns.push(("benchmark_return".to_string(), padded(&simulation.benchmark_returns)));
    }
    Frame::new(columns).context("cannot build the out-of-fold table")
}
