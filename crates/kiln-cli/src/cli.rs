//! The command line: every command and flag, with the help a user reads instead of the code.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version,
    about = "Train, track, register and score time-series and tabular models from one YAML experiment file",
    long_about = "kiln takes a model from raw data to a tracked, registered model, with one YAML experiment file.\n\n\
Runs and the model registry are stored in MLflow's own layout (./mlruns by default), so the MLflow UI and the\n\
MLflow Python client read what kiln writes:\n\n  \
MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri ./mlruns --artifacts-destination ./mlruns\n\n\
Exit codes: 0 success, 1 failure, 2 invalid input (config, data, reference), 3 a registration gate failed.",
    after_help = "Examples:\n  kiln train --config conf/experiments/eurusd.yaml --register\n  \
kiln predict --model models:/eurusd@production --input data/ecb_eurofxref-hist.csv --output out/eurusd.csv\n  \
kiln config show conf/experiments/eurusd.yaml"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build features, fit preprocessing, feature selection and the model on the training part, evaluate it
    /// against a naive baseline (persistence, mean or majority class) on the held-out part, log a tracked run with
    /// the model bundle, and optionally register it
    Train(TrainArgs),
    /// Score a CSV or Parquet file of raw rows with a model: builds the features exactly as in training and writes
    /// one prediction per row whose features are defined, beside the time or id column (classifiers: the
    /// probability of the positive class and the class at the model's threshold)
    Predict(PredictArgs),
    /// Inspect experiment configuration
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// experiment YAML (it may `extends` base files)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// register the model under `registry.model_name` and move `registry.alias` to it when every gate passes;
    /// a failing gate registers nothing and exits with code 3
    #[arg(long)]
    pub(crate) register: bool,
    /// tracking store (a folder in MLflow's layout); overrides `tracking.uri`
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// run name; overrides `tracking.run_name`
    #[arg(long)]
    pub(crate) run_name: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PredictArgs {
    /// the model: models:/<name>@<alias>, models:/<name>/<stage>, models:/<name>/latest, models:/<name>/<version>,
    /// runs:/<run_id>/model, or a bundle folder
    #[arg(short, long, value_name = "REF")]
    pub(crate) model: String,
    /// raw rows (CSV or Parquet): for a forecast the time column and every column the features use, for a
    /// tabular model the feature columns (and the id column, when the model has one)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// where to write the predictions (.csv or .parquet)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// tracking store holding the registry and the runs [default: $MLFLOW_TRACKING_URI, else ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// also write the feature values and the model's raw output (before the target transform is inverted)
    #[arg(long)]
    pub(crate) with_features: bool,
    /// also write each feature's SHAP contribution to the raw output (`shap_<feature>` columns and `shap_bias`;
    /// they sum to `raw_prediction`); LightGBM and XGBoost models only
    #[arg(long)]
    pub(crate) explain: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the merged configuration (after `extends` and `${VAR}` interpolation), checked against the schema
    Show {
        /// experiment YAML
        file: PathBuf,
    },
}
