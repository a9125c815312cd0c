//! The commands: each builds its adapters, calls a use case and prints a readable result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kiln_domain::{ErrorKind, ModelRef};
use kiln_features::{FittedPipeline, TimeSeriesRecipe};
use kiln_infra::{LocalStore, PlotChartRenderer, ReadOptions};
use kiln_models::Bundle;
use kiln_registry::Resolution;
use kiln_train::{Progress, RegisterSpec, TrainSpec, TrainedModelSpec};

use crate::cli::{Cli, Command, ConfigCommand, PredictArgs, TrainArgs};
use crate::config::{self, ConfigError};
use crate::exit;
use crate::settings::{Experiment, ModelSettings};

pub(crate) fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Predict(args) => predict(args),
        Command::Config(ConfigCommand::Show { file }) => config_show(&file),
    }
}

/// Maps an error chain to an exit code through the stable code of the first typed error in it.
pub(crate) fn exit_code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if cause.downcast_ref::<ConfigError>().is_some() {
            return exit::INVALID_INPUT;
        }
        let code = if let Some(x) = cause.downcast_ref::<kiln_train::TrainError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_infra::ReadError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_domain::DomainError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_registry::RegistryError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_models::BundleError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_models::ModelError>() {
            Some(x.code())
        } else if let Some(x) = cause.downcast_ref::<kiln_features::FeatureError>() {
            Some(x.code())
        } else {
            cause.downcast_ref::<kiln_domain::PortError>().map(|x| x.code)
        };
        if let Some(code) = code {
            return match code.kind() {
                ErrorKind::InvalidInput | ErrorKind::NotFound => exit::INVALID_INPUT,
                ErrorKind::GateFailed => exit::GATE_FAILED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn load_experiment(file: &Path) -> Result<(Experiment, String)> {
    let loaded = config::load(file, &env_var)?;
    let experiment: Experiment = loaded.parse()?;
    // through JSON's data model, so that enums print as the one-key maps users write, not as YAML tags
    let value = serde_json::to_value(&experiment).context("cannot print the merged config")?;
    let merged = serde_yaml::to_string(&value).context("cannot print the merged config")?;
    Ok((experiment, merged))
}

fn config_show(file: &Path) -> Result<u8> {
    let (_, merged) = load_experiment(file)?;
    print!("{merged}");
    Ok(0)
}

/// A folder store from a tracking URI (`./mlruns`, `/abs/path`, `file:///abs/path`).
fn open_store(uri: &str) -> Result<LocalStore> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        bail!(
            "tracking URI '{uri}': this build of kiln stores runs in a local folder in MLflow's layout; \
             give a folder such as ./mlruns"
        );
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    LocalStore::open(Path::new(path)).with_context(|| format!("cannot open the tracking store '{uri}'"))
}

struct StderrProgress {
    start: Instant,
}

impl Progress for StderrProgress {
    fn step(&self, message: &str) {
        eprintln!("[{:>6.1}s] {message}", self.start.elapsed().as_secs_f64());
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn read_options(time_column: &str, time_format: Option<String>, na: Option<Vec<String>>) -> ReadOptions {
    let mut opts = ReadOptions { time_column: Some(time_column.to_string()), time_format, ..ReadOptions::default() };
    if let Some(na) = na {
        opts.na_values = na;
    }
    opts
}

fn train(args: TrainArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (exp, merged) = load_experiment(&args.config)?;
    let recipe = TimeSeriesRecipe {
        time_column: exp.data.time_column.clone(),
        target: exp.task.target.clone(),
        horizon: exp.task.horizon,
        target_transform: exp.task.target_transform,
        features: exp.features.clone(),
    };
    recipe.validate().with_context(|| format!("{}: key 'features'", args.config.display()))?;
    let model = match &exp.model {
        ModelSettings::Lightgbm(p) => TrainedModelSpec::LightGbm(
            p.check().with_context(|| format!("{}: key 'model.params'", args.config.display()))?,
        ),
    };
    let register = match (&exp.registry, args.register) {
        (Some(r), true) => Some(RegisterSpec { model_name: r.model_name.clone(), alias: r.alias.clone() }),
        (None, true) => bail!("{}: --register needs a 'registry' section with 'model_name'", args.config.display()),
        (_, false) => None,
    };

    let mut columns = recipe.input_columns();
    if let Some(extra) = &exp.data.columns {
        columns.extend(extra.iter().filter(|c| !columns.contains(c)).cloned().collect::<Vec<_>>());
    }
    let mut opts = read_options(&exp.data.time_column, exp.data.time_format.clone(), exp.data.na_values.clone());
    opts.columns = Some(columns);
    progress.step(&format!("reading {}", exp.data.path.display()));
    let frame = kiln_infra::read_frame(&exp.data.path, &opts)?;
    let data_sha256 = kiln_infra::sha256_file(&exp.data.path)?;

    let uri = args.tracking_uri.clone().unwrap_or_else(|| exp.tracking.uri.clone());
    let store = open_store(&uri)?;
    let charts = PlotChartRenderer::default();
    let clock = || now_ms();
    let ports =
        kiln_train::Ports { tracker: &store, artifacts: &store, registry: &store, charts: &charts, clock: &clock };

    let model_kind = match &model {
        TrainedModelSpec::LightGbm(_) => "lightgbm",
    };
    let run_name =
        args.run_name.or(exp.tracking.run_name.clone()).unwrap_or_else(|| format!("{}-{model_kind}", exp.name));
    let kiln_version = env!("CARGO_PKG_VERSION").to_string();
    let mut tags = vec![
        ("mlflow.source.name".to_string(), "kiln train".to_string()),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        ("mlflow.user".to_string(), env_var("USER").unwrap_or_else(|| "kiln".into())),
        ("kiln.version".to_string(), kiln_version.clone()),
        ("kiln.data.sha256".to_string(), data_sha256.clone()),
        ("kiln.data.path".to_string(), exp.data.path.display().to_string()),
        ("kiln.config.path".to_string(), args.config.display().to_string()),
    ];
    if let Some(commit) = git_commit() {
        tags.push(("mlflow.source.git.commit".to_string(), commit));
    }
    if let Some(d) = &exp.description {
        tags.push(("kiln.description".to_string(), d.clone()));
    }
    let spec = TrainSpec {
        experiment: exp.tracking.experiment.clone().unwrap_or_else(|| exp.name.clone()),
        run_name,
        recipe,
        split: exp.split.clone(),
        model,
        gates: exp.gates.clone(),
        register,
        tags,
        input_params: vec![
            ("data.path".to_string(), exp.data.path.display().to_string()),
            ("data.rows".to_string(), frame.n_rows().to_string()),
        ],
        config_yaml: merged,
        data_sha256,
        kiln_version,
    };
    let outcome = kiln_train::train(&spec, &frame, &ports, &progress)?;
    let e = &outcome.evaluation;
    let r = &outcome.rows;
    println!();
    println!(
        "rows: {} read, {} warm-up dropped, {} without target dropped, {} gap; train {} (+{} validation), test {}",
        r.input, r.warmup_dropped, r.no_target_dropped, r.gap_dropped, r.train, r.validation, r.test
    );
    println!("best iteration: {}", outcome.best_iteration);
    println!();
    print!(
        "{}",
        kiln_eval::comparison_table(&[
            ("model (train)", &e.model_train),
            ("model (test)", &e.model_test),
            ("persistence (train)", &e.baseline_train),
            ("persistence (test)", &e.baseline_test),
        ])
    );
    let gain = 100.0 * (1.0 - e.model_test.rmse / e.baseline_test.rmse);
    println!();
    if gain > 0.0 {
        println!("the model beats persistence on test RMSE by {gain:.2}%");
    } else {
        println!("the model does NOT beat persistence on test RMSE ({:.2}% worse)", -gain);
    }
    println!("overfitting check: test/train RMSE ratio {:.3} ({:?})", outcome.overfit.ratio, outcome.overfit.verdict);
    for c in &outcome.gates.checks {
        println!("gate {} {}: {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    println!();
    println!("run {} ({}) in {}", outcome.run.run_id, outcome.run.status.as_str(), uri);
    if let Some(v) = &outcome.registered {
        println!("registered {} version {} (aliases: {})", v.name, v.version, v.aliases.join(", "));
    }
    if spec.register.is_some() && outcome.registered.is_none() {
        let reasons: Vec<String> =
            outcome.gates.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect();
        eprintln!("error: not registered, a gate failed: {}", reasons.join("; "));
        return Ok(exit::GATE_FAILED);
    }
    Ok(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Loads the bundle a reference points at: a folder is read in place; a registry or run reference is resolved
/// and its `model/` folder copied out of the store first. Checksums are verified on read.
fn load_bundle(
    reference: &str,
    store_uri: &str,
) -> Result<(Bundle<FittedPipeline>, String, Option<tempfile::TempDir>)> {
    let parsed = ModelRef::parse(reference)?;
    let (dir, keep) = match &parsed {
        ModelRef::Folder(p) => (PathBuf::from(p), None),
        _ => {
            let store = open_store(store_uri)?;
            let resolution = kiln_registry::resolve(&store, &parsed)?;
            let Resolution::Run(resolved) = resolution else {
                bail!("{reference} resolved to a folder, expected a run artifact")
            };
            let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
            let dest = tmp.path().join("model");
            kiln_domain::ArtifactStore::download_dir(&store, &resolved.run_id, &resolved.artifact_path, &dest)
                .with_context(|| format!("cannot fetch the bundle of {reference}"))?;
            (dest, Some(tmp))
        }
    };
    let bundle = kiln_models::read_bundle::<FittedPipeline>(&dir)
        .with_context(|| format!("cannot load the model bundle of {reference}"))?;
    let label = match &bundle.metadata.run_id {
        Some(run) => format!("{reference} (run {run})"),
        None => reference.to_string(),
    };
    Ok((bundle, label, keep))
}

fn predict(args: PredictArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let uri = args.tracking_uri.clone().or_else(|| env_var("MLFLOW_TRACKING_URI")).unwrap_or_else(|| "./mlruns".into());
    let (bundle, label, _tmp) = load_bundle(&args.model, &uri)?;
    progress.step(&format!("loaded {label}, checksums verified"));
    let recipe = &bundle.pipeline.recipe;
    let mut opts = read_options(&recipe.time_column, None, None);
    opts.columns = Some(recipe.input_columns());
    let frame = kiln_infra::read_frame(&args.input, &opts)?;
    progress.step(&format!("read {} rows from {}", frame.n_rows(), args.input.display()));
    let scored = kiln_train::score(&bundle, &frame)?;
    let mut columns = vec![
        (recipe.time_column.clone(), kiln_domain::Column::Timestamp(scored.times.clone())),
        ("prediction".to_string(), kiln_domain::Column::Numeric(scored.predictions.clone())),
    ];
    if args.with_features {
        columns.push(("raw_prediction".to_string(), kiln_domain::Column::Numeric(scored.raw.clone())));
        for (j, name) in scored.features.names.iter().enumerate() {
            columns.push((name.clone(), kiln_domain::Column::Numeric(scored.features.column(j))));
        }
    }
    let out = kiln_domain::Frame::new(columns)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    kiln_infra::write_frame(&args.output, &out)?;
    progress.step(&format!(
        "wrote {} predictions ({} steps ahead of each row's time, {} warm-up rows without one) to {}",
        out.n_rows(),
        recipe.horizon,
        scored.warmup_dropped,
        args.output.display()
    ));
    Ok(0)
}
