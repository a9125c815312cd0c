//! The commands: each builds its adapters, calls a use case and prints a readable result.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::exit::bad_input;
use kiln::{Opened, Store, create_local_store, create_store, open_local_store, open_store};
use kiln_data::{FileSource, ReadOptions};
use kiln_domain::{DataSource, LoadedData};
use kiln_features::FittedPipeline;
use kiln_models::Bundle;
use kiln_store::{GuardedStore, PlotChartRenderer};
use kiln_train::{Progress, RegisterSpec, TaskSpec, TrainSpec};

use crate::cli::{Cli, Command, ConfigCommand, PredictArgs, SyncArgs, TrainArgs};
use crate::config;
use crate::exit;
use crate::settings::{Fallback, Settings};

pub(crate) fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Backtest(args) => crate::backtest_cmd::backtest(args),
        Command::Predict(args) => predict(args),
        Command::Features(args) => crate::features_cmd::features(args),
        Command::Config(ConfigCommand::Show { file }) => config_show(&file),
        Command::Registry(cmd) => crate::registry_cmd::run(cmd),
        Command::Sync(args) => sync(args),
        Command::Serve(args) => crate::serve_cmd::serve(args),
        Command::Tune(args) => crate::tune_cmd::tune(args),
        Command::Fetch(args) => crate::fetch_cmd::fetch(args),
        Command::Data(cmd) => crate::fetch_cmd::data(cmd),
        Command::Validate(args) => crate::validate_cmd::validate(args),
        Command::Evaluate(args) => crate::evaluate_cmd::evaluate(args),
        Command::Retrain(args) => crate::retrain_cmd::retrain(args),
        Command::Drift(args) => crate::drift_cmd::drift(args),
    }
}

pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The experiment file resolved (every check that needs no data) and the merged config as YAML.
pub(crate) fn load_experiment(file: &Path) -> Result<(Settings, String)> {
    let settings = Settings::resolve(config::load(file, &env_var)?)?;
    // through JSON's data model, so that enums print as the one-key maps users write, not as YAML tags
    let mut value = serde_json::to_value(&settings.experiment).context("cannot print the merged config")?;
    if settings.per_series()
        && let Some(model) = value.get_mut("model").and_then(serde_json::Value::as_object_mut)
    {
        model.insert("per_series".to_string(), serde_json::Value::Bool(true));
    }
    // printed and stored as the run's config.yaml: credentials never go with it
    config::redact(&mut value, &config::secret_env_values(std::env::vars()));
    let merged = serde_yaml::to_string(&value).context("cannot print the merged config")?;
    Ok((settings, merged))
}

fn config_show(file: &Path) -> Result<u8> {
    let (_, merged) = load_experiment(file)?;
    print!("{merged}");
    Ok(0)
}

pub(crate) struct StderrProgress {
    pub(crate) start: Instant,
}

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        eprintln!("[{:>6.1}s] {message}", self.start.elapsed().as_secs_f64());
    }
}

/// The tags a run starts with: where it came from (command, user, git commit, config), the data's fingerprint and
/// the model kind; credentials redacted.
pub(crate) fn run_tags(
    command: &str,
    config_path: &Path,
    exp: &crate::settings::Experiment,
    model_kind: &str,
    data_sha256: &str,
    data_origin: &str,
    secrets: &[String],
) -> Vec<(String, String)> {
    let mut tags = vec![
        ("mlflow.source.name".to_string(), command.to_string()),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        ("mlflow.user".to_string(), env_var("USER").unwrap_or_else(|| "kiln".into())),
        ("kiln.version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
        ("kiln.data.sha256".to_string(), data_sha256.to_string()),
        ("kiln.data.path".to_string(), data_origin.to_string()),
        ("kiln.config.path".to_string(), config_path.display().to_string()),
        ("kiln.model.kind".to_string(), model_kind.to_string()),
    ];
    if let Some(commit) = git_commit() {
        tags.push(("mlflow.source.git.commit".to_string(), commit));
    }
    if exp.data.snapshot.is_some() {
        // <root>/<source>/<name>/<stem>.parquet: the exact snapshot read, whatever the reference said
        let path = std::path::Path::new(data_origin);
        let part =
            |p: Option<&std::path::Path>| p.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
        if let (Some(source), Some(name), Some(stem)) = (
            part(path.parent().and_then(std::path::Path::parent)),
            part(path.parent()),
            path.file_stem().map(|s| s.to_string_lossy().into_owned()),
        ) {
            tags.push(("kiln.data.snapshot".to_string(), format!("{source}/{name}@{stem}")));
        }
    }
    if let Some(d) = &exp.description {
        tags.push(("kiln.description".to_string(), d.clone()));
    }
    // tags are stored with the run: credentials never go with them
    for (_, value) in &mut tags {
        *value = config::redact_text(value, secrets);
    }
    tags
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The experiment's data and its task: a forecast reads only the columns its recipe needs, a tabular task every
/// column (for `__AUTO__`).
pub(crate) fn load_data(settings: &Settings, progress: &dyn Progress) -> Result<(LoadedData, TaskSpec)> {
    let exp = &settings.experiment;
    let mut opts =
        read_options(exp.data.time_column.as_deref(), exp.data.time_format.clone(), exp.data.na_values.clone());
    opts.columns = settings.read_columns();
    opts.series_column = settings.series_column_to_read();
    let snapshot = match &exp.data.snapshot {
        Some(reference) => Some(crate::fetch_cmd::resolve_snapshot(reference, exp.data.snapshot_root.as_deref())?),
        None => None,
    };
    let source = match &snapshot {
        Some(s) => FileSource::expecting(&s.path, opts, s.manifest.sha256.clone()),
        None => FileSource::new(&exp.data.path, opts),
    };
    match &snapshot {
        Some(s) => progress.step(&format!("reading snapshot {} ({})", s.reference(), source.describe())),
        None => progress.step(&format!("reading {}", source.describe())),
    }
    let data = source.load()?;
    let task = settings.task_spec(data.frame.names())?;
    Ok((data, task))
}

fn read_options(time_column: Option<&str>, time_format: Option<String>, na: Option<Vec<String>>) -> ReadOptions {
    let mut opts = ReadOptions { time_column: time_column.map(str::to_string), time_format, ..ReadOptions::default() };
    if let Some(na) = na {
        opts.na_values = na;
    }
    opts
}

/// The registration of an experiment's `registry` section: where, and when the alias moves.
pub(crate) fn register_spec(r: &crate::settings::RegistrySettings, force: bool, config: &Path) -> Result<RegisterSpec> {
    let mut spec = RegisterSpec::new(&r.model_name, &r.alias);
    spec.force = force;
    if let Some(name) = &r.compare {
        spec.compare = Some(kiln_eval::Metric::parse(name).ok_or_else(|| {
            exit::BadInput(format!(
                "{}: registry.compare: unknown metric '{name}'; known: {}",
                config.display(),
                kiln_eval::Metric::NAMES.join(", ")
            ))
        })?);
    }
    if !(r.margin.is_finite() && (0.0..1.0).contains(&r.margin)) {
        bad_input!(
            "{}: registry.margin must be a fraction in [0, 1) of the holder's score, not {}",
            config.display(),
            r.margin
        );
    }
    spec.margin = r.margin;
    Ok(spec)
}

/// Loads the version holding an alias, for registration to compare a new model with, through the facade (a
/// server's bundle lands in the bundle cache); no such version (no model, no alias) is `None`. With a `fallback`
/// store (tracking.fallback: local), a server that became unreachable is replaced by it, as the registration
/// itself is: the holder compared with is the one the new version will be registered beside.
pub(crate) fn champion_loader(
    uri: String,
    fallback: Option<String>,
) -> impl Fn(&str, &str) -> Result<Option<kiln_train::Champion>, kiln_train::TrainError> + Sync {
    move |name, alias| {
        let reference = format!("models:/{name}@{alias}");
        let load = |uri: &str| match kiln::load_bundle(&reference, uri) {
            Ok(loaded) => Ok(Some(kiln_train::Champion {
                version: loaded.version.as_ref().map_or(0, |v| v.version),
                bundle: loaded.bundle,
            })),
            Err(e) if e.code() == kiln_domain::Code::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        let loaded = match (load(&uri), &fallback) {
            (Err(e), Some(local)) if e.code() == kiln_domain::Code::StoreIo => {
                eprintln!("note: {reference}: the server cannot be reached ({e}); comparing with the fallback store's");
                load(local)
            }
            (result, _) => result,
        };
        loaded.map_err(|e| kiln_train::TrainError::Champion { message: format!("{reference}: {e}"), code: e.code() })
    }
}

fn train(args: TrainArgs) -> Result<u8> {
    train_with(args, TrainHooks::default())
}

/// What `kiln retrain` changes in a training: the data, the margin, more tags, and a check on the fresh data that
/// may stop before any run exists (`Some(reason)`: nothing to do).
#[derive(Default)]
pub(crate) struct TrainHooks<'a> {
    pub(crate) input: Option<std::path::PathBuf>,
    pub(crate) margin: Option<f64>,
    pub(crate) command: Option<&'static str>,
    #[allow(clippy::type_complexity)]
    pub(crate) precondition:
        Option<&'a dyn Fn(&Settings, &LoadedData, &TaskSpec, &str, &dyn Progress) -> Result<Precondition>>,
}

/// The verdict of a [`TrainHooks::precondition`].
pub(crate) struct Precondition {
    /// train a challenger
    pub(crate) go: bool,
    /// why, as printed and tagged
    pub(crate) reason: String,
    /// tags for the run
    pub(crate) tags: Vec<(String, String)>,
}

pub(crate) fn train_with(args: TrainArgs, hooks: TrainHooks<'_>) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (mut settings, merged) = load_experiment(&args.config)?;
    if let Some(input) = &hooks.input {
        settings.experiment.data.path = input.clone();
        settings.experiment.data.snapshot = None;
    }
    let exp = &settings.experiment;
    let model = settings.model.clone();
    let register = match (&exp.registry, args.register) {
        (Some(r), true) => {
            let mut spec = register_spec(r, args.force, &args.config)?;
            if let Some(m) = hooks.margin {
                if !(m.is_finite() && (0.0..1.0).contains(&m)) {
                    bad_input!("--margin must be a fraction in [0, 1) of the champion's score, not {m}");
                }
                spec.margin = m;
            }
            Some(spec)
        }
        (None, true) => {
            bad_input!("{}: --register needs a 'registry' section with 'model_name'", args.config.display())
        }
        (_, false) => None,
    };

    // the experiment's validate: section, before any run exists: a failure starts no run (exit 2)
    crate::validate_cmd::check_experiment_data(&settings, &progress)?;
    let (data, task) = load_data(&settings, &progress)?;
    let uri = args.tracking_uri.clone().unwrap_or_else(|| exp.tracking.uri.clone());
    let mut hook_tags = Vec::new();
    if let Some(check) = hooks.precondition {
        let verdict = check(&settings, &data, &task, &uri, &progress)?;
        println!("{}", verdict.reason);
        if !verdict.go {
            return Ok(0);
        }
        hook_tags = verdict.tags;
    }
    let LoadedData { frame, sha256: data_sha256, origin: data_origin } = data;

    let opened = create_store(&uri)?;
    let shown_uri = opened.display();
    let fallback = match (&opened, exp.tracking.fallback) {
        (Opened::Remote(_), Fallback::Local) => Some(create_local_store(&exp.tracking.fallback_uri)?),
        _ => None,
    };
    let guarded = match &opened {
        Opened::Remote(rest) => Some(GuardedStore::new(rest, fallback.as_ref(), Some(kiln::pending_dir()))),
        Opened::Local(_) => None,
    };
    let store: &dyn Store = match &guarded {
        Some(g) => g,
        None => opened.as_store(),
    };
    let charts = PlotChartRenderer::default();
    let clock = now_ms;
    let champion = champion_loader(uri.clone(), fallback.as_ref().map(|_| exp.tracking.fallback_uri.clone()));
    let ports = kiln_train::Ports {
        tracker: store,
        artifacts: store,
        registry: store,
        charts: &charts,
        clock: &clock,
        champion: Some(&champion),
    };

    let run_name = args
        .run_name
        .clone()
        .or(exp.tracking.run_name.clone())
        .unwrap_or_else(|| format!("{}-{}", exp.name, model.kind()));
    let kiln_version = env!("CARGO_PKG_VERSION").to_string();
    let secrets = config::secret_env_values(std::env::vars());
    let command = hooks.command.unwrap_or("kiln train");
    let mut tags = run_tags(command, &args.config, exp, model.kind(), &data_sha256, &data_origin, &secrets);
    tags.extend(hook_tags);
    let cv = match args.cv {
        Some(folds) => {
            let section = exp.backtest.clone().unwrap_or_default();
            let settings = crate::backtest_cmd::FoldSettings::of_section(&section, folds);
            Some(kiln_train::CvSpec {
                splitter: crate::backtest_cmd::splitter_for(&task, &settings, exp.split.seed.unwrap_or(42))?,
                validation: exp.split.validation_size,
                seed: exp.split.seed.unwrap_or(42),
                threads: crate::backtest_cmd::fold_threads(section.threads)?,
            })
        }
        None => None,
    };
    let spec = TrainSpec {
        experiment: exp.tracking.experiment.clone().unwrap_or_else(|| exp.name.clone()),
        run_name,
        task,
        preprocess: exp.preprocess.clone(),
        selection: exp.selection.clone(),
        model,
        gates: settings.gates.clone(),
        register,
        tags,
        input_params: vec![
            ("data.path".to_string(), config::redact_text(&data_origin, &secrets)),
            ("data.rows".to_string(), frame.n_rows().to_string()),
        ],
        config_yaml: merged,
        data_sha256,
        data_origin,
        kiln_version,
        cv,
    };
    let outcome = kiln_train::train(&spec, &frame, &ports, &progress);
    let failed_over = guarded.as_ref().and_then(GuardedStore::failed_over);
    if let Some(f) = &failed_over {
        let runs: Vec<String> = f.runs.iter().map(|(remote, local)| format!("{local} (server run {remote})")).collect();
        eprintln!(
            "warning: the MLflow server {shown_uri} became unreachable ({}); the run continued in the local store \
             {} {}. Push it when the server is back: kiln sync --from {} --to {shown_uri}",
            f.reason,
            exp.tracking.fallback_uri,
            if runs.is_empty() { String::new() } else { format!("as run {}", runs.join(", ")) },
            exp.tracking.fallback_uri,
        );
    }
    let outcome = outcome?;
    let shown_uri = if failed_over.is_some() { exp.tracking.fallback_uri.clone() } else { shown_uri };
    Ok(report_training(&outcome, exp, &shown_uri, spec.register.is_some()))
}

/// Prints a training run's rows, evaluation, gates and registration; returns the exit code (a gate that stopped a
/// registration asked for is [`exit::GATE_FAILED`]).
pub(crate) fn report_training(
    outcome: &kiln_train::TrainOutcome,
    exp: &crate::settings::Experiment,
    shown_uri: &str,
    register: bool,
) -> u8 {
    let r = &outcome.rows;
    println!();
    let mut dropped = Vec::new();
    for (n, what) in [
        (r.warmup_dropped, "warm-up"),
        (r.no_target_dropped, "target past the end"),
        (r.missing_target_dropped, "missing target"),
        (r.missing_feature_dropped, "missing feature"),
        (r.gap_dropped, "gap"),
    ] {
        if n > 0 {
            dropped.push(format!("{n} {what}"));
        }
    }
    let dropped = if dropped.is_empty() { "none".to_string() } else { dropped.join(", ") };
    println!(
        "rows: {} read, dropped: {dropped}; train {} (+{} validation), test {}",
        r.input, r.train, r.validation, r.test
    );
    if r.missing_target_dropped > 0 {
        eprintln!(
            "warning: {} row(s) left out because target '{}' is missing there (data.missing_target: drop)",
            r.missing_target_dropped, exp.task.target
        );
    }
    if r.missing_feature_rows > r.missing_feature_dropped {
        println!(
            "missing values: {} row(s) have a missing feature value, kept for the imputer or the model \
             (data.missing_features: keep)",
            r.missing_feature_rows
        );
    }
    if r.series > 0 {
        let short = if r.short_series_dropped > 0 {
            format!(
                ", {} left out with too few rows for the features (data.short_series: skip)",
                r.short_series_dropped
            )
        } else {
            String::new()
        };
        let melted = if r.melted_rows > 0 {
            format!(" (the wide file's {} rows melted into {} panel rows)", r.input, r.melted_rows)
        } else {
            String::new()
        };
        println!("series: {}{melted}{short}", r.series);
    }
    println!("features: {} ({})", outcome.features.len(), abbreviate(&outcome.features, 12));
    if let Some(best) = outcome.best_iteration {
        println!("best iteration: {best}");
    }
    println!();
    print!("{}", outcome.evaluation.table());
    if let Some(series) = &outcome.series {
        println!();
        print!("{}", series_table(series, 5));
    }
    if let Some(steps) = &outcome.steps {
        println!();
        print!("{}", steps_table(steps));
    }
    if let Some(cv) = &outcome.cv {
        println!();
        println!("cross-validation on {} folds of the training part (the test part unseen):", cv.folds.len());
        print!("{}", crate::table::number_table(&kiln_train::fold_rows(cv)));
    }
    if let Some(warning) = outcome.evaluation.percentage_warning() {
        println!("warning: {warning}");
    }
    println!();
    println!("{}", outcome.evaluation.verdict());
    if let kiln_train::Evaluation::Regression { overfit, .. } = &outcome.evaluation {
        println!(
            "overfitting check: test/train RMSE ratio {} ({:?})",
            kiln_eval::format_value(overfit.ratio),
            overfit.verdict
        );
    }
    for c in &outcome.gates.checks {
        println!("gate {} {}: {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    println!();
    println!("run {} ({}) in {}", outcome.run.run_id, outcome.run.status.as_str(), shown_uri);
    if let Some(c) = &outcome.comparison {
        let what = match c.decision {
            kiln_train::Decision::Takes => "takes",
            kiln_train::Decision::Refused => "does NOT take",
            kiln_train::Decision::Forced => "takes (FORCED)",
        };
        println!("alias '{}': the new version {what} it: {}", c.alias, c.reason);
    }
    if let Some(v) = &outcome.registered {
        let aliases = if v.aliases.is_empty() { "none".to_string() } else { v.aliases.join(", ") };
        println!("registered {} version {} (aliases: {aliases})", v.name, v.version);
    }
    if register && outcome.registered.is_none() {
        let reasons: Vec<String> =
            outcome.gates.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect();
        eprintln!("error: not registered, a gate failed: {}", reasons.join("; "));
        return exit::GATE_FAILED;
    }
    0
}

/// The first `n` names, then how many more.
fn abbreviate(names: &[String], n: usize) -> String {
    if names.len() <= n {
        names.join(", ")
    } else {
        format!("{}, ... and {} more", names[..n].join(", "), names.len() - n)
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The bundle a reference points at and its label ([`kiln::load_bundle`]), for `kiln predict`.
pub(crate) fn load_bundle(reference: &str, store_uri: &str) -> Result<(Bundle<FittedPipeline>, String)> {
    let loaded = kiln::load_bundle(reference, store_uri)?;
    Ok((loaded.bundle, loaded.label))
}

fn sync(args: SyncArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let local = open_local_store(&args.from)?;
    if !kiln::is_server(&args.to) {
        bad_input!("--to '{}': sync pushes to an MLflow server (http:// or https://)", args.to);
    }
    let Opened::Remote(remote) = open_store(&args.to)? else { unreachable!("a server URI opens a server") };
    let report = kiln_store::sync(&local, &remote, &|m: &str| progress.step(m))
        .with_context(|| format!("sync from {} to {} stopped; run it again to go on", args.from, remote.uri()))?;
    let r = &report;
    println!("synced {} to {}", args.from, remote.uri());
    println!(
        "runs: {} copied, {} already there, {} still running (left for later), {} incomplete copies redone; \
         {} logged models; {} partial fallback runs marked FAILED",
        r.runs_copied, r.runs_skipped, r.runs_running, r.incomplete_deleted, r.logged_models, r.fallback_runs_failed
    );
    println!(
        "registry: {} models; versions {} copied, {} already there, {} waiting for their run; {} stages, {} aliases set",
        r.models, r.versions_copied, r.versions_skipped, r.versions_waiting, r.stages_set, r.aliases_set
    );
    Ok(0)
}

fn predict(args: PredictArgs) -> Result<u8> {
    // streamed in chunks: see batch.rs
    crate::batch::predict(args)
}

/// A panel's per-series test metrics: the `shown` series where the model helps least, and the worst one named.
fn series_table(series: &[kiln_train::SeriesMetrics], shown: usize) -> String {
    let mut rows = vec![["series", "test rows", "rmse", "baseline rmse", "rmse / baseline", "r2"].map(String::from)];
    for m in series.iter().take(shown) {
        rows.push([
            m.series.clone(),
            m.rows.to_string(),
            format!("{:.6}", m.model.rmse),
            format!("{:.6}", m.baseline.rmse),
            format!("{:.3}", kiln_train::series_rmse_ratio(m)),
            format!("{:.4}", m.model.r2),
        ]);
    }
    let mut out = format!(
        "per series ({} series; the {} where the model gains least on persistence; all in series_metrics.csv):\n",
        series.len(),
        shown.min(series.len())
    );
    out.push_str(&crate::table::number_table(&rows));
    if let Some(worst) = series.first() {
        out.push_str(&format!(
            "worst series: {} (test rmse {:.6}, {:.3}x its persistence baseline)\n",
            worst.series,
            worst.model.rmse,
            kiln_train::series_rmse_ratio(worst)
        ));
    }
    out
}

/// A multi-step model's test metrics step by step, beside persistence.
fn steps_table(steps: &[kiln_train::StepMetrics]) -> String {
    let mut header = ["step", "rmse", "persistence rmse", "mae", "persistence mae", "r2"].map(String::from).to_vec();
    for c in steps.first().map_or(&[][..], |s| s.coverage.as_slice()) {
        header.push(format!("{}% covers", c.level));
        header.push(format!("{}% width", c.level));
    }
    let mut rows = vec![header];
    for s in steps {
        let mut row = vec![
            s.step.to_string(),
            format!("{:.6}", s.model.rmse),
            format!("{:.6}", s.persistence.rmse),
            format!("{:.6}", s.model.mae),
            format!("{:.6}", s.persistence.mae),
            format!("{:.4}", s.model.r2),
        ];
        for c in &s.coverage {
            row.push(format!("{:.1}%", c.coverage * 100.0));
            row.push(format!("{:.6}", c.mean_width));
        }
        rows.push(row);
    }
    let origins = steps.first().map_or(0, |s| s.origins);
    format!(
        "every step forecast from {origins} test origins (steps.csv; test/by_step/* in MLflow):\n{}",
        crate::table::number_table(&rows)
    )
}
