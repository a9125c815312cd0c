//! The commands: each builds its adapters, calls a use case and prints a readable result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use kiln_domain::{Column, ErrorKind, ModelRef};
use kiln_features::FittedPipeline;
use kiln_infra::{LocalStore, PlotChartRenderer, ReadOptions};
use kiln_models::Bundle;
use kiln_registry::Resolution;
use kiln_train::{Progress, RegisterSpec, RowKeys, TaskSpec, TrainSpec};

use crate::cli::{Cli, Command, ConfigCommand, PredictArgs, TrainArgs};
use crate::config::{self, ConfigError};
use crate::exit;
use crate::settings::{Experiment, TaskKind};

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

fn load_experiment(file: &Path) -> Result<(Experiment, String, config::Loaded)> {
    let loaded = config::load(file, &env_var)?;
    let experiment: Experiment = loaded.parse()?;
    // checks that depend on the task kind (features, horizon, positive, ...) and the model's ranges
    if experiment.task.kind == crate::settings::TaskKind::Forecast {
        experiment.task_spec(&loaded, &[])?;
    } else {
        experiment.features(&loaded)?;
        experiment.tabular_kind(&loaded)?;
    }
    experiment.model_spec(&loaded)?;
    experiment.gates(&loaded)?;
    // through JSON's data model, so that enums print as the one-key maps users write, not as YAML tags
    let value = serde_json::to_value(&experiment).context("cannot print the merged config")?;
    let merged = serde_yaml::to_string(&value).context("cannot print the merged config")?;
    Ok((experiment, merged, loaded))
}

fn config_show(file: &Path) -> Result<u8> {
    let (_, merged, _) = load_experiment(file)?;
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

fn read_options(time_column: Option<&str>, time_format: Option<String>, na: Option<Vec<String>>) -> ReadOptions {
    let mut opts = ReadOptions { time_column: time_column.map(str::to_string), time_format, ..ReadOptions::default() };
    if let Some(na) = na {
        opts.na_values = na;
    }
    opts
}

fn train(args: TrainArgs) -> Result<u8> {
    let progress = StderrProgress { start: Instant::now() };
    let (exp, merged, loaded) = load_experiment(&args.config)?;
    let model = exp.model_spec(&loaded)?;
    let register = match (&exp.registry, args.register) {
        (Some(r), true) => Some(RegisterSpec { model_name: r.model_name.clone(), alias: r.alias.clone() }),
        (None, true) => bail!("{}: --register needs a 'registry' section with 'model_name'", args.config.display()),
        (_, false) => None,
    };

    // a forecast reads only the columns its recipe needs; a tabular task reads every column (for __AUTO__)
    let mut opts =
        read_options(exp.data.time_column.as_deref(), exp.data.time_format.clone(), exp.data.na_values.clone());
    if let TaskKind::Forecast = exp.task.kind {
        if let TaskSpec::Forecast { recipe, .. } = exp.task_spec(&loaded, &[])? {
            opts.columns = Some(recipe.input_columns());
        }
    }
    progress.step(&format!("reading {}", exp.data.path.display()));
    let frame = kiln_infra::read_frame(&exp.data.path, &opts)?;
    let task = exp.task_spec(&loaded, frame.names())?;
    let data_sha256 = kiln_infra::sha256_file(&exp.data.path)?;

    let uri = args.tracking_uri.clone().unwrap_or_else(|| exp.tracking.uri.clone());
    let store = open_store(&uri)?;
    let charts = PlotChartRenderer::default();
    let clock = now_ms;
    let ports =
        kiln_train::Ports { tracker: &store, artifacts: &store, registry: &store, charts: &charts, clock: &clock };

    let run_name =
        args.run_name.or(exp.tracking.run_name.clone()).unwrap_or_else(|| format!("{}-{}", exp.name, model.kind()));
    let kiln_version = env!("CARGO_PKG_VERSION").to_string();
    let mut tags = vec![
        ("mlflow.source.name".to_string(), "kiln train".to_string()),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        ("mlflow.user".to_string(), env_var("USER").unwrap_or_else(|| "kiln".into())),
        ("kiln.version".to_string(), kiln_version.clone()),
        ("kiln.data.sha256".to_string(), data_sha256.clone()),
        ("kiln.data.path".to_string(), exp.data.path.display().to_string()),
        ("kiln.config.path".to_string(), args.config.display().to_string()),
        ("kiln.model.kind".to_string(), model.kind().to_string()),
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
        task,
        preprocess: exp.preprocess.clone(),
        selection: exp.selection.clone(),
        model,
        gates: exp.gates(&loaded)?,
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
    let r = &outcome.rows;
    println!();
    println!(
        "rows: {} read, {} warm-up dropped, {} without target dropped, {} gap; train {} (+{} validation), test {}",
        r.input, r.warmup_dropped, r.no_target_dropped, r.gap_dropped, r.train, r.validation, r.test
    );
    println!("features: {} ({})", outcome.features.len(), abbreviate(&outcome.features, 12));
    if let Some(best) = outcome.best_iteration {
        println!("best iteration: {best}");
    }
    println!();
    print!("{}", outcome.evaluation.table());
    println!();
    println!("{}", outcome.evaluation.verdict());
    if let kiln_train::Evaluation::Regression { overfit, .. } = &outcome.evaluation {
        println!("overfitting check: test/train RMSE ratio {:.3} ({:?})", overfit.ratio, overfit.verdict);
    }
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

/// The first `n` names, then how many more.
fn abbreviate(names: &[String], n: usize) -> String {
    if names.len() <= n {
        names.join(", ")
    } else {
        format!("{}, ... and {} more", names[..n].join(", "), names.len() - n)
    }
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
    let pipeline = &bundle.pipeline;
    let time_column = pipeline.recipe().map(|r| r.time_column.as_str());
    let mut opts = read_options(time_column, None, None);
    opts.columns = Some(pipeline.input_columns());
    let frame = kiln_infra::read_frame(&args.input, &opts)?;
    progress.step(&format!("read {} rows from {}", frame.n_rows(), args.input.display()));
    let scored = kiln_train::score(&bundle, &frame, args.explain)?;
    let mut columns = match &scored.keys {
        RowKeys::Times { column, values } => vec![(column.clone(), Column::Timestamp(values.clone()))],
        RowKeys::Ids { column, values } => {
            vec![(column.clone(), Column::Categorical(values.iter().cloned().map(Some).collect()))]
        }
    };
    let prediction_name = if scored.classes.is_some() { "probability" } else { "prediction" };
    columns.push((prediction_name.to_string(), Column::Numeric(scored.predictions.clone())));
    if let Some(classes) = &scored.classes {
        columns.push(("class".to_string(), Column::Categorical(classes.iter().cloned().map(Some).collect())));
    }
    if args.with_features {
        columns.push(("raw_prediction".to_string(), Column::Numeric(scored.raw.clone())));
        for (j, name) in scored.features.names.iter().enumerate() {
            columns.push((name.clone(), Column::Numeric(scored.features.column(j))));
        }
    }
    if let Some(contrib) = &scored.contributions {
        for (j, name) in contrib.names.iter().enumerate() {
            columns.push((format!("shap_{name}"), Column::Numeric(contrib.column(j))));
        }
    }
    let out = kiln_domain::Frame::new(columns)?;
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    kiln_infra::write_frame(&args.output, &out)?;
    let what = match pipeline.recipe() {
        Some(recipe) => format!(
            "{} steps ahead of each row's time, {} warm-up rows without one",
            recipe.horizon, scored.warmup_dropped
        ),
        None => "one per row".to_string(),
    };
    progress.step(&format!("wrote {} predictions ({what}) to {}", out.n_rows(), args.output.display()));
    Ok(0)
}
