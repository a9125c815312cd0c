//! `kiln backtest`: the experiment's pipeline fitted and scored on many folds (kiln-train's `backtest`), the folds
//! from the `backtest:` section and the flags; prints the fold table beside the baseline, with the mean and standard
//! deviation over folds, and writes the out-of-fold predictions.

use std::time::Instant;

use anyhow::{Context, Result};
use kiln::create_store;
use kiln_domain::{Column, Frame, LoadedData};
use kiln_eval::{Simulation, Splitter, WalkForward};
use kiln_store::PlotChartRenderer;
use kiln_train::{BacktestOutcome, BacktestRun, BacktestSpec, FitSpec, FoldedRows, OofFile, TaskSpec, TrackedBacktest};

use crate::cli::BacktestArgs;
use crate::commands::{StderrProgress, load_data, load_experiment, now_ms, run_tags};
use crate::config;
use crate::exit::bad_input;
use crate::table::number_table;

/// The default number of folds.
const DEFAULT_FOLDS: usize = 5;

/// The fold settings of the `backtest:` section with the flags applied.
pub(crate) struct FoldSettings {
    pub(crate) folds: usize,
    pub(crate) test_size: Option<usize>,
    pub(crate) gap: Option<usize>,
    pub(crate) max_train_size: Option<usize>,
    pub(crate) step: Option<usize>,
    pub(crate) purge: Option<usize>,
    pub(crate) embargo: Option<usize>,
    pub(crate) shuffle: bool,
}

impl FoldSettings {
    /// The `backtest:` section's fold settings, with `folds` folds (no flags: `kiln train --cv`, `kiln tune`).
    pub(crate) fn of_section(section: &crate::settings::BacktestSettings, folds: usize) -> FoldSettings {
        FoldSettings {
            folds,
            test_size: section.test_size,
            gap: section.gap,
            max_train_size: section.max_train_size,
            step: section.step,
            purge: section.purge,
            embargo: section.embargo,
            shuffle: section.shuffle.unwrap_or(false),
        }
    }
}

/// The folds of a task: walk-forward for a forecast (scikit-learn's TimeSeriesSplit settings, the gap at least
/// horizon - 1, test blocks at least the horizon), stratified k-fold for a classifier, k-fold for a regression.
///
/// # Errors
/// [`crate::exit::BadInput`] naming the key: a gap or test size the horizon does not allow, forecast settings for
/// tabular rows.
pub(crate) fn splitter_for(task: &TaskSpec, f: &FoldSettings, seed: u64) -> Result<Splitter> {
    let FoldSettings { folds, test_size, gap, max_train_size, step, purge, embargo, shuffle } = *f;
    Ok(match task {
        TaskSpec::Forecast { recipe, .. } => {
            let least_gap = recipe.horizon.saturating_sub(1);
            let gap = gap.unwrap_or(least_gap);
            if gap < least_gap {
                bad_input!(
                    "backtest.gap (--gap) is {gap}, below horizon - 1 = {least_gap}: the last training rows' targets \
                     would lie inside the test block"
                );
            }
            if purge.is_some() || embargo.is_some() {
                bad_input!(
                    "backtest.purge and backtest.embargo (--purge, --embargo) apply to k-fold folds of tabular rows; \
                     a forecast's purge is backtest.gap, and no training row comes after its test block"
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
            Splitter::walk_forward(WalkForward { folds, test_size, gap, max_train_size, step })
        }
        TaskSpec::Tabular { .. } => {
            for (set, key) in [
                (test_size.is_some(), "test_size (--test-size)"),
                (gap.is_some(), "gap (--gap)"),
                (max_train_size.is_some(), "max_train_size (--max-train-size)"),
                (step.is_some(), "step (--step)"),
            ] {
                if set {
                    bad_input!("backtest.{key} only applies to a forecast; tabular rows are folded by k-fold");
                }
            }
            let seed = shuffle.then_some(seed);
            let splitter = if task.is_classification() {
                Splitter::stratified_kfold(folds, seed)
            } else {
                Splitter::kfold(folds, seed)
            };
            splitter.with_purge(purge.unwrap_or(0), embargo.unwrap_or(0))
        }
    })
}

/// Folds fitted at once: the flag or setting, else the machine's cores.
pub(crate) fn fold_threads(threads: Option<usize>) -> Result<usize> {
    let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    if threads == 0 {
        bad_input!("backtest.threads (--threads): must be at least 1");
    }
    Ok(threads)
}

pub(crate) fn backtest(args: BacktestArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (settings, merged) = load_experiment(&args.config)?;
    let exp = &settings.experiment;
    let section = exp.backtest.clone().unwrap_or_default();
    let folds = args.folds.or(section.folds).unwrap_or(DEFAULT_FOLDS);
    let threads = fold_threads(args.threads.or(section.threads))?;
    let test_size = args.test_size.or(section.test_size);
    let gap = args.gap.or(section.gap);
    let max_train_size = args.max_train_size.or(section.max_train_size);

    // the experiment's validate: section first, as kiln train does: invalid data starts no run (exit 2)
    crate::validate_cmd::check_experiment_data(&settings, &progress)?;
    let (LoadedData { frame, sha256: data_sha256, origin: data_origin }, task) = load_data(&settings, &progress)?;
    let classification = task.is_classification();
    if let Some(score) = &section.score {
        score.check(classification, section.trading.is_some())?;
    }
    if let Some(trading) = &section.trading {
        trading.validate()?;
        if args.step.or(section.step).is_some_and(|s| Some(s) != args.test_size.or(section.test_size)) {
            bad_input!(
                "backtest.trading needs test blocks that follow each other: leave backtest.step (--step) out or set \
                 it to backtest.test_size"
            );
        }
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

    let season = args.season.or(section.season);
    if season.is_some() && !matches!(task, TaskSpec::Forecast { .. }) {
        bad_input!("backtest.season (--season) only applies to a forecast");
    }
    let fold_settings = FoldSettings {
        folds,
        test_size,
        gap,
        max_train_size,
        step: args.step.or(section.step),
        purge: args.purge.or(section.purge),
        embargo: args.embargo.or(section.embargo),
        shuffle: section.shuffle.unwrap_or(false),
    };
    let splitter = splitter_for(&task, &fold_settings, exp.split.seed.unwrap_or(42))?;
    let spec = BacktestSpec {
        fit: FitSpec {
            task: &task,
            preprocess: &exp.preprocess,
            selection: &exp.selection,
            model: &settings.model,
            cache: None,
        },
        splitter,
        validation: exp.split.validation_size,
        seed: exp.split.seed.unwrap_or(42),
        threads,
        refit_every: args.refit_every.or(section.refit_every).unwrap_or(1),
        rows: FoldedRows::All,
        season,
    };
    let uri = args.tracking_uri.clone().unwrap_or_else(|| exp.tracking.uri.clone());
    let opened = create_store(&uri)?;
    let store = opened.as_store();
    let charts = PlotChartRenderer::default();
    let clock = now_ms;
    let ports = kiln_train::Ports {
        tracker: store,
        artifacts: store,
        registry: store,
        charts: &charts,
        clock: &clock,
        champion: None,
    };
    let secrets = config::secret_env_values(std::env::vars());
    let mut input_params = vec![
        ("data.path".to_string(), config::redact_text(&data_origin, &secrets)),
        ("data.rows".to_string(), frame.n_rows().to_string()),
    ];
    input_params.extend(fold_params(&splitter, spec.threads));
    input_params.push(("backtest.refit_every".to_string(), spec.refit_every.to_string()));
    if let Some(m) = season {
        input_params.push(("backtest.season".to_string(), m.to_string()));
    }
    if let Some(trading) = &section.trading {
        input_params.extend(object_params("backtest.trading", trading));
    }
    if let Some(score) = &section.score {
        input_params.extend(score.weights.iter().map(|(k, w)| (format!("backtest.score.weights.{k}"), w.to_string())));
    }
    let run = BacktestRun {
        experiment: exp.tracking.experiment.clone().unwrap_or_else(|| exp.name.clone()),
        run_name: args.run_name.clone().unwrap_or_else(|| format!("{}-{}-backtest", exp.name, settings.model.kind())),
        tags: run_tags("kiln backtest", &args.config, exp, settings.model.kind(), &data_sha256, &data_origin, &secrets),
        input_params,
        config_yaml: merged,
        data_origin: data_origin.clone(),
        data_sha256: data_sha256.clone(),
        trading: section.trading,
        score: section.score.clone(),
    };
    let oof_file = |outcome: &BacktestOutcome, trading: Option<&Simulation>| -> Result<OofFile, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("oof_predictions.parquet");
        let frame = oof_frame(outcome, trading).map_err(|e| format!("{e:#}"))?;
        kiln_data::write_frame(&path, &frame).map_err(|e| e.to_string())?;
        let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
        Ok(("oof_predictions.parquet".to_string(), bytes))
    };
    let TrackedBacktest { outcome, trading, score, run } =
        kiln_train::backtest_run(&spec, &run, &frame, &ports, &progress, &oof_file)?;
    println!();
    print!("{}", number_table(&kiln_train::fold_rows(&outcome)));
    let steps = step_rows(&outcome);
    if steps.len() > 1 {
        println!();
        println!("every step, mean over the folds (folds/test/step_<k>/* in MLflow):");
        print!("{}", number_table(&steps));
    }
    if let Some(simulation) = &trading {
        println!();
        println!(
            "trading the out-of-fold forecasts ({} periods, {} a year; a forecast made at a close trades at that \
             close and earns the return to the next)",
            simulation.returns.len(),
            simulation.periods_per_year
        );
        print!("{}", number_table(&kiln_train::trading_rows(simulation)));
    }
    if let Some(score) = &score {
        println!();
        println!("score = {}", score.formula());
    }
    if let Some(path) = &args.json {
        let value = kiln_train::report(&outcome, trading.as_ref(), score.as_ref());
        let text = serde_json::to_string_pretty(&value).context("cannot print the backtest report")?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.oof {
        kiln_data::write_frame(path, &oof_frame(&outcome, trading.as_ref())?)
            .with_context(|| format!("cannot write the out-of-fold predictions to {}", path.display()))?;
        println!("\nout-of-fold predictions: {} rows in {}", outcome.oof.actual.len(), path.display());
    }
    println!("\nrun {} ({}) in {}", run.run_id, run.status.as_str(), opened.display());
    Ok(0)
}

/// The out-of-fold predictions as a frame: fold, the row's time or id, actual, prediction, baseline; with a trading
/// simulation, each period's position and the strategy's and buy and hold's returns (empty for an origin that could
/// not trade).
fn oof_frame(outcome: &BacktestOutcome, trading: Option<&Simulation>) -> Result<Frame> {
    let oof = &outcome.oof;
    #[allow(clippy::cast_precision_loss)]
    let mut columns = vec![("fold".to_string(), Column::Numeric(oof.fold.iter().map(|&f| f as f64).collect()))];
    if !oof.series.is_empty() {
        columns.push(("series".to_string(), Column::Categorical(oof.series.iter().cloned().map(Some).collect())));
    }
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

/// The fold settings as params.
fn fold_params(splitter: &Splitter, threads: usize) -> Vec<(String, String)> {
    let mut out = vec![("backtest.threads".to_string(), threads.to_string())];
    match *splitter {
        Splitter::TimeSeries { folds, gap, test_size, max_train_size, step, .. } => {
            out.push(("backtest.splitter".into(), "walk_forward".into()));
            out.push(("backtest.folds".into(), folds.to_string()));
            out.push(("backtest.gap".into(), gap.to_string()));
            out.push(("backtest.test_size".into(), test_size.map_or("auto".into(), |t| t.to_string())));
            out.push(("backtest.step".into(), step.map_or("test_size".into(), |s| s.to_string())));
            out.push(("backtest.max_train_size".into(), max_train_size.map_or("expanding".into(), |m| m.to_string())));
        }
        Splitter::KFold { folds, shuffle_seed, purge, embargo, .. } => {
            out.push(("backtest.splitter".into(), "kfold".into()));
            out.push(("backtest.folds".into(), folds.to_string()));
            out.push(("backtest.purge".into(), purge.to_string()));
            out.push(("backtest.embargo".into(), embargo.to_string()));
            out.push(("backtest.shuffle_seed".into(), shuffle_seed.map_or("none".into(), |s| s.to_string())));
        }
        Splitter::StratifiedKFold { folds, shuffle_seed, purge, embargo, .. } => {
            out.push(("backtest.splitter".into(), "stratified_kfold".into()));
            out.push(("backtest.folds".into(), folds.to_string()));
            out.push(("backtest.purge".into(), purge.to_string()));
            out.push(("backtest.embargo".into(), embargo.to_string()));
            out.push(("backtest.shuffle_seed".into(), shuffle_seed.map_or("none".into(), |s| s.to_string())));
        }
    }
    out
}

/// A struct's fields as `<prefix>.<field>` params.
fn object_params<T: serde::Serialize>(prefix: &str, value: &T) -> Vec<(String, String)> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (format!("{prefix}.{k}"), v.to_string().trim_matches('"').to_string()))
            .collect(),
        _ => Vec::new(),
    }
}

/// A multi-step backtest's step metrics, mean over the folds: one row per step (just the header otherwise).
fn step_rows(outcome: &BacktestOutcome) -> Vec<Vec<String>> {
    let summary = kiln_train::fold_summary(&outcome.folds);
    let get = |key: String| summary.iter().find(|(k, _, _)| *k == key).map(|(_, mean, _)| *mean);
    let seasonal = get("seasonal/test/step_1/rmse".to_string()).is_some();
    let mut header = ["step", "rmse", "persistence rmse", "mae", "persistence mae"].map(String::from).to_vec();
    if seasonal {
        header.extend(["seasonal naive rmse", "seasonal naive mae"].map(String::from));
    }
    let mut rows = vec![header];
    for k in 1.. {
        let Some(rmse) = get(format!("test/step_{k}/rmse")) else { break };
        let cell = |key: String| get(key).map_or_else(String::new, |v| format!("{v:.6}"));
        let mut row = vec![
            k.to_string(),
            format!("{rmse:.6}"),
            cell(format!("baseline/test/step_{k}/rmse")),
            cell(format!("test/step_{k}/mae")),
            cell(format!("baseline/test/step_{k}/mae")),
        ];
        if seasonal {
            row.push(cell(format!("seasonal/test/step_{k}/rmse")));
            row.push(cell(format!("seasonal/test/step_{k}/mae")));
        }
        rows.push(row);
    }
    rows
}
