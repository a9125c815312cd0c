//! The command line: every command and flag, with the help a user reads instead of the code.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `kiln --version`: the crate version and the git commit the binary was built from (see build.rs).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("KILN_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "kiln",
    version = VERSION,
    about = "Train, track, register and score time-series and tabular models from one YAML experiment file",
    long_about = "kiln takes a model from raw data to a tracked, registered model, with one YAML experiment \
file.\n\n\
Runs and the model registry are stored in MLflow's own layout (./mlruns by default), so the MLflow UI and \
the MLflow Python client read what kiln writes once an MLflow server serves the folder:\n\n  \
MLFLOW_ALLOW_FILE_STORE=true mlflow ui \\\n    --backend-store-uri ./mlruns --artifacts-destination ./mlruns\n\n\
An MLflow server works the same way (--tracking-uri http://host:port, or MLFLOW_TRACKING_URI), with \
MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (basic auth) or MLFLOW_TRACKING_TOKEN (bearer), and \
MLFLOW_HTTP_REQUEST_TIMEOUT, _MAX_RETRIES and _BACKOFF_FACTOR as MLflow's client reads them.\n\n\
Exit codes: 0 success, 1 failure, 2 invalid input (config, data, reference), 3 a registration gate failed, 4 drift found (kiln drift) or a model degraded (kiln evaluate).",
    after_help = "Examples:\n  \
kiln train --config conf/experiments/eurusd.yaml --register\n  \
kiln predict --model models:/eurusd@production \\\n    \
--input data/ecb_eurofxref-hist.csv --output out/eurusd.csv\n  \
kiln registry list eurusd\n  \
kiln registry rollback eurusd --alias production\n  \
kiln sync --from ./mlruns --to http://127.0.0.1:5000\n  \
kiln serve --model models:/eurusd@production --port 8080\n  \
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
    /// Judge a configuration on many folds instead of one held-out tail: the whole pipeline (target transform,
    /// preprocessing, selection, the model with early stopping on a validation tail of the fold's training rows, a
    /// classifier's threshold) is fitted again on every fold's training rows and scored on its test rows, beside the
    /// naive baseline of those rows. A forecast gets walk-forward folds (scikit-learn's TimeSeriesSplit: --folds,
    /// --test-size, --gap, --max-train-size for a sliding window); tabular rows get k-fold folds (stratified for a
    /// classifier). Folds run in parallel; the result does not depend on --threads. Prints the fold table with the
    /// mean and standard deviation over folds; with a `backtest.trading` section, trades the out-of-fold price
    /// forecasts beside buy and hold; with `backtest.score`, ranks by a composite score. All of it is one tracked
    /// run (per-fold metrics as steps, the out-of-fold predictions, charts); --oof and --json write copies here
    #[command(after_help = "Examples:\n  kiln backtest --config conf/experiments/eurusd.yaml --folds 10\n  \
kiln backtest --config conf/experiments/etth1.yaml --test-size 720 --max-train-size 8760 --oof oof.parquet\n  \
kiln backtest --config conf/experiments/churn.yaml --folds 5")]
    Backtest(BacktestArgs),
    /// Write the feature table of an experiment's forecast recipe, without fitting anything (as mlforecast's
    /// `preprocess`): one row per origin time (per series for a panel) past the warm-up, with the series and time
    /// columns, every feature, and `label`, the target `horizon` steps later as the model learns it (after the target
    /// transform; empty on each series' last rows)
    #[command(
        after_help = "Examples:\n  kiln features --config conf/experiments/ecb_panel.yaml --output out/ecb_features.parquet\n  \
kiln features --config conf/experiments/etth1.yaml --input new_rows.csv --output features.csv"
    )]
    Features(FeaturesArgs),
    /// Score a CSV or Parquet file of raw rows with a model: builds the features exactly as in training and writes
    /// one prediction per row whose features are defined, beside the time or id column (classifiers: the
    /// probability of the positive class and the class at the model's threshold). The file is streamed in chunks
    /// (--chunk-rows), so memory stays flat whatever its size; a forecast's rows must be oldest first (a file that
    /// starts newest first, like the ECB download, is read whole and sorted instead, with a note). A panel model
    /// (many series) takes rows of its series grouped or interleaved, each series oldest first, and writes the
    /// series column first; a multi-step model writes every step of every origin (origin time, target_time, step,
    /// prediction) with its interval bounds (lo_80, hi_80, ...)
    Predict(PredictArgs),
    /// Is new data distributed like the training data? Compares a file with a model's reference profile (the
    /// training rows, kept in every bundle as kiln/profile.json) or with another file (--reference): per column the
    /// Kolmogorov-Smirnov statistic and p-value, PSI over the reference deciles, the Wasserstein distance (and
    /// divided by the reference's sd), the Jensen-Shannon distance, chi-square for categories, then Evidently's
    /// default test for the column's type and size with its threshold and verdict (reference <= 1000 values: KS p <=
    /// 0.05 for numbers, chi-square or a z-test p < 0.05 for categories; larger: normed Wasserstein >= 0.1 for
    /// numbers, Jensen-Shannon >= 0.1 for categories), and the dataset verdict (drift when at least --drift-share
    /// of the columns drift). With --model the file is also scored and the predictions compared with the training
    /// rows' predictions. Exit status 4 on dataset drift, 0 without, 2 on bad input; the file is read in chunks
    #[command(after_help = "Examples:\n  kiln drift --model models:/churn@production --input new_customers.csv\n  \
kiln drift --reference data/train.csv --input data/recent.csv --json\n  \
kiln drift --model models:/ecb@production --input rates.csv --series --report out/drift")]
    Drift(DriftArgs),
    /// Inspect experiment configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List registered models and versions, promote a version (alias or stage), roll an alias back; on the local
    /// store or an MLflow server
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Copy runs (params, every metric point, tags, artifacts) and the registry (versions, aliases, stages) from a
    /// local store to an MLflow server. Idempotent: what was copied before is skipped, a copy that died midway is
    /// redone. Runs that continued locally because the server went away (tracking.fallback: local) are pushed, and
    /// their partial server runs marked FAILED.
    Sync(SyncArgs),
    /// Serve a model over HTTP: POST /predict (one record), POST /predict/batch ({"records": [...]}), POST /observe
    /// (append a series' rows; then /predict with {"series": KEY}), GET /health, /ready, /model, /metrics
    /// (Prometheus), /openapi.json and /docs (an interactive page). A tabular record is an object of the model's
    /// input columns; a forecast record is {"window": [row, ...]}, raw rows ordered by time, and the answer is the
    /// forecast from the last row (a multi-step model: every step with its interval bounds; a panel model's rows
    /// name their series), computed by the same pipeline as `kiln predict` and equal to it. Bad input gets a
    /// 4xx JSON error with a stable code and the field at fault. When the reference is an alias, a stage or
    /// `latest`, the registry is polled and a new version is swapped in without failing a request. Stops on SIGTERM
    /// or Ctrl-C after the requests in flight have finished.
    #[command(after_help = "Examples:\n  kiln serve --model models:/eurusd@production\n  \
kiln serve --variant champion=models:/churn@production:90 --variant challenger=models:/churn@challenger:10 \\\n      \
--shadow candidate=models:/churn/7 --sticky-key header:X-User-Id\n  \
curl -s localhost:8080/model\n  \
curl -s -H 'Content-Type: application/json' -d @record.json \\\n      localhost:8080/predict\n  \
open http://localhost:8080/docs")]
    Serve(ServeArgs),
    /// Search hyperparameters, and let model kinds compete, with the `tune:` section of the experiment file: each
    /// trial draws a configuration (TPE, random or grid sampler, as Optuna draws them; the configurations listed
    /// under `tune.enqueue`, or enqueued by Optuna's `enqueue_trial`, go first), refits the whole pipeline on every
    /// backtest fold of the training part and is scored by the mean test metric over the folds; a pruner may stop a
    /// trial after a fold. A trial that fails is recorded with its reason and the study goes on. The study
    /// lives in an Optuna storage (SQLite beside the tracking store by default, or PostgreSQL), so re-running
    /// resumes it, several `kiln tune` processes (and Python Optuna workers) can share it, and `optuna-dashboard`
    /// shows it. Every trial is a nested MLflow run under one parent run holding the leaderboard and the best
    /// params. The winner is then refitted on the whole training part, tested once on the held-out test part no
    /// trial saw, gated, and registered with --register
    #[command(after_help = "Examples:\n  kiln tune --config conf/experiments/eurusd_tune.yaml --n-trials 50\n  \
kiln tune --config conf/experiments/churn_tune.yaml --jobs 2 --register\n  \
kiln tune --config conf/experiments/eurusd_tune.yaml --storage postgresql://kiln:secret@db:5432/studies")]
    Tune(TuneArgs),
    /// Pull data from a source into a versioned snapshot: data/raw/<source>/<name>/<UTC time>-<sha256>.parquet and
    /// a manifest beside it (the request, when, rows, columns and types, time range, sha256, kiln version). The
    /// source is the experiment's `source:` section (--config) or given here. Pages are written as they arrive, so
    /// memory stays flat; the snapshot appears whole or not at all. A fetch that brings exactly the data of a
    /// snapshot already there says so and writes nothing. Train on it with `data.snapshot: <source>/<name>@latest`
    #[command(after_help = "Examples:\n  kiln fetch --config conf/experiments/stocks.yaml\n  \
kiln fetch file data/ETTh1.csv --time-column date\n  \
kiln data list")]
    Fetch(FetchArgs),
    /// The data snapshots `kiln fetch` wrote
    #[command(subcommand)]
    Data(DataCommand),
    /// Check a data file against a schema: per column type, missing values (none, or at most a share), range,
    /// allowed values, regex, uniqueness; per table row count, unique key columns, the time column strictly
    /// increasing (or decreasing) per series, its largest gap (a duration or business days) and freshness; row
    /// rules written as expressions over columns (`low <= open <= high`, `close > 0`, `is_null(x) or x >= 0`). Every
    /// check sees every row (the file is streamed chunk by chunk); the report lists each check with its failing
    /// row count and first failing rows (CSV line or Parquet row, with their values). Exit 0 when no check of
    /// severity error fails (warnings are printed), 2 when one does. The schema is the experiment's `validate:`
    /// section (--config; the file is its data.path or data.snapshot unless given) or a schema file (--schema).
    /// --infer FILE drafts a schema from a file known to be good. `kiln train`, `backtest` and `tune` run the
    /// experiment's `validate:` section first
    #[command(after_help = "Examples:\n  kiln validate --config conf/experiments/eurusd.yaml\n  \
kiln validate --schema schema.yaml data/prices.csv --json report.json\n  \
kiln validate --infer data/prices.csv --output schema.yaml\n  \
kiln validate --schema schema.yaml data/prices.csv --reference-time 2026-11-01")]
    Validate(ValidateArgs),
    /// Judge a model on new labelled data: its metrics beside the bundle's own test metrics and a naive baseline
    /// on the same rows
    ///
    /// The model scores FILE (rows with the true target: a tabular row's target column; a forecast is matched with
    /// its series' value at the time it is for, so the file must reach past the forecasts' origins). The primary
    /// metric (--metric; default roc_auc for a classifier, rmse otherwise) is compared with the bundle's test value:
    /// worse by more than --tolerance (relative) is DEGRADED, exit status 4, for schedulers. The evaluation is
    /// logged as a run (tag kiln.run.kind=evaluation, linked to the model's version and training run) in the
    /// training run's experiment, unless --no-log.
    #[command(
        after_help = "Examples:\n  kiln evaluate --model models:/churn@production --input data/new_customers.csv\n  \
kiln evaluate --model models:/eurusd@production --input data/latest.csv --tolerance 0.2 --json report.json"
    )]
    Evaluate(EvaluateArgs),
    /// Retrain with a champion and a challenger: train on fresh data, and move the alias only when the challenger
    /// beats the champion on the same recent held-out rows
    ///
    /// --when decides whether to train at all: `always`; `degraded` (the champion,
    /// models:/<registry.model_name>@<registry.alias>, is judged on the newest test-sized window of the data as
    /// `kiln evaluate` does); `drift`
    /// (the window drifts from the champion's reference profile, as `kiln drift` judges). Then the challenger is
    /// trained as `kiln train --register` does, and both are scored on the challenger's held-out test rows: it takes
    /// the alias only when it passes the gates and beats the champion by the margin (--margin, else
    /// registry.margin); otherwise it is registered without the alias. The decision, both scores and the reason are
    /// printed and recorded on the run (tags kiln.alias_decision, kiln.alias_reason, kiln.retrain.*).
    #[command(after_help = "Examples:\n  kiln retrain --config conf/experiments/etth1.yaml --when always\n  \
kiln retrain --config conf/experiments/churn.yaml --when degraded --input data/churn_latest.csv --margin 0.01")]
    Retrain(RetrainArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct FetchArgs {
    /// experiment YAML whose `source:` section says what to fetch (the rest of the file is not needed)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// the snapshot's name within its source (default: from the request)
    #[arg(long, value_name = "NAME", global = true)]
    pub(crate) name: Option<String>,
    /// the snapshot store's folder [default: source.root or data/raw]
    #[arg(long, value_name = "DIR", global = true)]
    pub(crate) root: Option<PathBuf>,
    /// also write the snapshot's manifest and reference as JSON to this file
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) json: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) source: Option<FetchSource>,
}

/// A source given on the command line instead of a `source:` section.
#[derive(Debug, Subcommand)]
pub(crate) enum FetchSource {
    /// A local CSV or Parquet file, or an http(s):// URL of one
    File {
        /// the path or URL (its extension gives the type)
        location: String,
        /// parse this column as times (kept as a Parquet datetime; gives the manifest's time range)
        #[arg(long, value_name = "COLUMN")]
        time_column: Option<String>,
        /// the time column's format (strftime-like); ISO 8601 is detected without one
        #[arg(long, value_name = "FORMAT")]
        time_format: Option<String>,
        /// a long file of many series: the column naming each row's series
        #[arg(long, value_name = "COLUMN")]
        series_column: Option<String>,
    },
    /// Daily (or intraday) bars from the Yahoo Finance chart API: open, high, low, close, adj_close, volume,
    /// dividends and splits, dated by the exchange's local date; several symbols make a panel with a `symbol`
    /// column. Retries 429 and 5xx with backoff (honouring Retry-After), at most two requests a second
    #[command(after_help = "Examples:\n  kiln fetch yahoo NVDA MSFT TSLA --start 2021-02-01 --end 2022-02-01\n  \
kiln fetch yahoo EURUSD=X --range 5y")]
    Yahoo {
        /// Yahoo's symbols (NVDA, EURUSD=X, ^GSPC)
        #[arg(required = true, value_name = "SYMBOL")]
        symbols: Vec<String>,
        /// 1m 2m 5m 15m 30m 60m 90m 1h 1d 5d 1wk 1mo 3mo [default: 1d]
        #[arg(long, value_name = "INTERVAL")]
        interval: Option<String>,
        /// first local date (YYYY-MM-DD), included
        #[arg(long, value_name = "DATE")]
        start: Option<String>,
        /// last local date (YYYY-MM-DD), excluded (as yfinance counts)
        #[arg(long, value_name = "DATE")]
        end: Option<String>,
        /// Yahoo's range instead of --start/--end: 1d 5d 1mo 3mo 6mo 1y 2y 5y 10y ytd max [default: max]
        #[arg(long, value_name = "RANGE")]
        range: Option<String>,
        /// the API's scheme and host [default: https://query2.finance.yahoo.com]
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
    },
    /// The rows of a GoogleSQL query over BigQuery's REST API (no SDK): a service-account key (--key-file, or the
    /// file GOOGLE_APPLICATION_CREDENTIALS names) is signed into an access token, or one is read from a variable
    /// (--token-env). Every page is written as it arrives; types are kept (INTEGER as a 64-bit integer, DATE as a
    /// date, TIMESTAMP as a UTC time, RECORD and REPEATED values as JSON text). Credentials never appear in the
    /// output, the snapshot or its manifest
    #[command(after_help = "Examples:\n  kiln fetch bigquery --project my-project --key-file key.json \\\n      \
--query 'SELECT * FROM data_ingestion.raw_data' --name raw_data\n  \
export TOKEN=$(gcloud auth print-access-token)\n  \
kiln fetch bigquery --project p --token-env TOKEN --query-file q.sql")]
    Bigquery {
        /// the project the query job runs (and is billed) in
        #[arg(long, value_name = "PROJECT")]
        project: String,
        /// the GoogleSQL query
        #[arg(long, value_name = "SQL")]
        query: Option<String>,
        /// read the query from this file
        #[arg(long, value_name = "FILE")]
        query_file: Option<PathBuf>,
        /// the job's location (US, EU, europe-west1, ...)
        #[arg(long, value_name = "LOCATION")]
        location: Option<String>,
        /// a service-account JSON key [default: $GOOGLE_APPLICATION_CREDENTIALS]
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// the name of an environment variable holding an OAuth access token
        #[arg(long, value_name = "VAR")]
        token_env: Option<String>,
        /// the API's scheme and host [default: https://bigquery.googleapis.com]
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// rows per page [default: BigQuery's, up to 10 MB]
        #[arg(long, value_name = "N")]
        page_size: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DataCommand {
    /// List the snapshots: reference, rows, columns, time range, when fetched, sha256, size
    List {
        /// the snapshot store's folder [default: data/raw]
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// print JSON (every manifest) instead of the table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// the CSV or Parquet file to check (default with --config: the experiment's data.path)
    #[arg(value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// a schema file (the content of a `validate:` section at its top level)
    #[arg(long, value_name = "FILE")]
    pub(crate) schema: Option<PathBuf>,
    /// an experiment file whose `validate:` section is the schema
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// also write the report as JSON to FILE (`-`: stdout, the table then goes to stderr)
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// the time `freshness` is measured from (UTC, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS) [default: when the
    /// experiment's data.snapshot was fetched, else now]
    #[arg(long, value_name = "TIME")]
    pub(crate) reference_time: Option<String>,
    /// rows read and checked at a time (memory grows with it); the report does not depend on it
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub(crate) chunk_rows: usize,
    /// failing rows shown per check
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub(crate) samples: usize,
    /// draft a schema from FILE, a file known to be good (types, missing values, ranges, allowed values of columns
    /// with few, uniqueness, the time column's order and largest step), instead of validating
    #[arg(long, value_name = "FILE")]
    pub(crate) infer: Option<PathBuf>,
    /// with --infer: write the schema here (default stdout)
    #[arg(short, long, value_name = "FILE", requires = "infer")]
    pub(crate) output: Option<PathBuf>,
    /// with --infer: the time column (default: the first column of times)
    #[arg(long, value_name = "COLUMN", requires = "infer")]
    pub(crate) time_column: Option<String>,
    /// with --infer: a panel's series column (order and gaps per series)
    #[arg(long, value_name = "COLUMN", requires = "infer")]
    pub(crate) series_column: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TuneArgs {
    /// experiment YAML with a `tune:` section (candidates and their search spaces); the `backtest:` section sets the
    /// folds every trial is scored on
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// trials to run in this invocation (overrides tune.n_trials; default 20); 0 runs none and only reads the
    /// leaderboard of the stored trials and refits the winner (the last step after many workers)
    #[arg(long, value_name = "N")]
    pub(crate) n_trials: Option<usize>,
    /// start no trial after this many seconds (overrides tune.timeout)
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub(crate) timeout: Option<f64>,
    /// trials run at once in this process (overrides tune.jobs; default 1); the cores are shared between them
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<usize>,
    /// the study's name in the storage (overrides tune.study; default: the experiment's name)
    #[arg(long, value_name = "NAME")]
    pub(crate) study: Option<String>,
    /// the Optuna storage: sqlite:///path.db or postgresql://user:password@host:port/db (overrides tune.storage;
    /// default: optuna.db beside the tracking folder)
    #[arg(long, value_name = "URL")]
    pub(crate) storage: Option<String>,
    /// register the refitted winner when every gate passes (needs a `registry` section); it takes the alias only
    /// when at least as good as the current holder on the same test rows, as with `kiln train --register`
    #[arg(long)]
    pub(crate) register: bool,
    /// with --register: move the alias even when the current holder scores better
    #[arg(long, requires = "register")]
    pub(crate) force: bool,
    /// only search: no refit of the winner on the training part and no test
    #[arg(long)]
    pub(crate) no_refit: bool,
    /// tracking store: a folder in MLflow's layout or an MLflow server (http://host:port); overrides
    /// `tracking.uri`
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// the parent run's name (default: <name>-tune)
    #[arg(long)]
    pub(crate) run_name: Option<String>,
    /// write the leaderboard and this invocation's trials at full precision here (JSON)
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// the model: models:/<name>@<alias>, models:/<name>/<stage>, models:/<name>/latest, models:/<name>/<version>,
    /// runs:/<run_id>/model, or a bundle folder (or several variants: --variant, --variants)
    #[arg(short, long, value_name = "REF", required_unless_present_any = ["variant", "variants"],
          conflicts_with_all = ["variant", "variants"])]
    pub(crate) model: Option<String>,
    /// a canary variant NAME=REF:WEIGHT answering WEIGHT percent of the prediction requests; repeat it, the weights
    /// summing to 100 (see the examples below). Every answer names its variant (the field `variant`, the header
    /// x-kiln-variant), and so does its access log line; each variant hot-reloads on its own. Variants must take the
    /// same input. Without --sticky-key each request is a fresh draw
    #[arg(long, value_name = "NAME=REF:WEIGHT", conflicts_with = "variants")]
    pub(crate) variant: Vec<String>,
    /// a shadow variant NAME=REF: scores a copy of every prediction request after it was answered, off the response
    /// path (a bounded queue; work dropped when it is full is counted), logged in the access log (role shadow, with
    /// its predictions) and in /metrics, never returned. Repeat it for several shadows
    #[arg(long, value_name = "NAME=REF", conflicts_with = "variants")]
    pub(crate) shadow: Vec<String>,
    /// assign each request to a canary by a stable hash of a key instead of a draw: header:<name> (a request
    /// header, e.g. header:X-User-Id) or field:<name> (a field of the record, of the first record of a batch, e.g.
    /// field:customerID). The variant is the one whose cumulative weight range holds FNV-1a-64(key) mod 10000, so the
    /// same key always gets the same variant, in every replica; a request without the key is a fresh draw
    #[arg(long, value_name = "header:NAME|field:NAME")]
    pub(crate) sticky_key: Option<String>,
    /// the variants in a YAML file instead of flags: `variants: [{name, model, weight}]`, `shadows: [{name,
    /// model}]`, `sticky_key: header:X-User-Id` (all but variants optional)
    #[arg(long, value_name = "FILE")]
    pub(crate) variants: Option<PathBuf>,
    /// live drift: how many of the most recent records the window holds; each numeric model feature's PSI against
    /// the bundle's reference profile over them is in /metrics (kiln_feature_drift_psi{feature}). On when the
    /// (primary) model's bundle has a profile. At most 1000000
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) drift_window: u64,
    /// live drift: how often the window takes in the new records and recomputes the PSI
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0, value_parser = parse_positive_seconds)]
    pub(crate) drift_interval: f64,
    /// turn live drift off (the request path then copies no feature rows)
    #[arg(long)]
    pub(crate) no_live_drift: bool,
    /// tracking store holding the registry and the runs: a folder or an MLflow server
    /// [default: $MLFLOW_TRACKING_URI, else ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// address to listen on (0.0.0.0 for every interface)
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// port to listen on (0 picks a free one; the address is printed when ready)
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,
    /// the most records one POST /predict/batch may carry; more is a 413 `too_many_records`
    #[arg(long, value_name = "N", default_value_t = kiln_serve::ServeConfig::DEFAULT_MAX_BATCH_RECORDS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_batch: u64,
    /// the largest request body in bytes; more is a 413 `payload_too_large`
    #[arg(long, value_name = "N", default_value_t = kiln_serve::ServeConfig::DEFAULT_MAX_BODY_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_body_bytes: u64,
    /// POST /observe (forecast models): the most series kept at once; a new key beyond is refused with 409
    /// `too_many_series` (nothing is evicted; DELETE /observe/<series> frees one)
    #[arg(long, value_name = "N", default_value_t = kiln_serve::ServeConfig::DEFAULT_MAX_SERIES as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_series: u64,
    /// POST /observe: the raw rows kept per series, so that a series can be rebuilt for a new model after a hot
    /// reload (exactly, when the features look back fewer rows than this)
    #[arg(long, value_name = "N", default_value_t = kiln_serve::ServeConfig::DEFAULT_SERIES_ROWS as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) series_rows: u64,
    /// hot reload: how often to ask the registry which version the reference (an alias, a stage, `latest`) points
    /// at; when it moved, the new version is downloaded, verified and swapped in without failing a request, and a
    /// version that cannot be loaded leaves the old one serving (logged, and counted in /metrics). 0 turns it off;
    /// `runs:/` references and folders never move
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, value_parser = parse_seconds)]
    pub(crate) reload_interval: f64,
    /// require an API key, reading the keys from FILE: one per line, blank lines and lines starting with # skipped.
    /// Keys never go on the command line (`ps` shows it): use this file or the KILN_API_KEYS environment variable
    /// (comma-separated), not both. With keys, every route but /health, /ready and /docs answers 401
    /// `unauthorized` without a valid one; logs name a key by an id (`key-` + 8 hex digits of its SHA-256), never by
    /// the key. Without either, the API is open
    #[arg(long, value_name = "FILE")]
    pub(crate) api_keys_file: Option<PathBuf>,
    /// the request header that carries the API key
    #[arg(long, value_name = "NAME", default_value = kiln_serve::DEFAULT_API_KEY_HEADER)]
    pub(crate) api_key_header: String,
    /// let web pages from ORIGIN (scheme://host[:port]) call the API from a browser (CORS): preflight requests are
    /// answered and answers carry Access-Control-Allow-Origin. Repeat the flag or separate origins with commas; *
    /// allows any origin. Off by default
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_delimiter = ',')]
    pub(crate) cors_origins: Vec<String>,
    /// answer 504 `timeout` when a request takes longer than MS milliseconds (0: no limit)
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub(crate) request_timeout_ms: u64,
    /// requests a second each client may send on average: per API key, or per client IP address without keys;
    /// beyond it (after --rate-burst) the answer is 429 `rate_limited` with a retry-after header. /health, /ready
    /// and /docs are not limited. Off by default
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_limit: Option<u32>,
    /// how many requests a client may send at once before --rate-limit slows it down [default: the --rate-limit
    /// value]
    #[arg(long, value_name = "N", requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rate_burst: Option<u32>,
    /// the access log: `json` writes one line per request to stdout (ts, request_id, method, path, status,
    /// duration_ms, model_version, client key id, error code); `off` writes none
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = AccessLogFormat::Json)]
    pub(crate) access_log: AccessLogFormat,
    /// close a connection that has not sent a whole request head MS milliseconds after it opened, or after the
    /// previous answer on a kept-alive connection (slow or idle clients must not hold sockets)
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = kiln_serve::ConnectionLimits::DEFAULT_HEADER_TIMEOUT.as_millis() as u64)]
    pub(crate) header_timeout_ms: u64,
    /// close a connection on which no byte has moved either way for MS milliseconds while no request is being
    /// handled (a client that stops reading its answer; a stalled request body is --request-timeout-ms's)
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..),
          default_value_t = kiln_serve::ConnectionLimits::DEFAULT_IDLE_TIMEOUT.as_millis() as u64)]
    pub(crate) idle_timeout_ms: u64,
    /// the most connections open at once; one more is answered 503 `too_many_connections` with Connection: close
    /// and closed. At start the soft open-file limit is raised to the hard one, and N must leave 512 descriptors
    /// below it for the store, hot reload and those 503 answers [default: 4096, or less when the limit needs it]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_connections: Option<u64>,
}

/// `--access-log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AccessLogFormat {
    Off,
    Json,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SyncArgs {
    /// the local store (a folder in MLflow's layout)
    #[arg(long, value_name = "DIR", default_value = "./mlruns")]
    pub(crate) from: String,
    /// the MLflow server [default: $MLFLOW_TRACKING_URI]
    #[arg(long, value_name = "URI", env = "MLFLOW_TRACKING_URI")]
    pub(crate) to: String,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArg {
    /// tracking store: a folder in MLflow's layout or an MLflow server (http://host:port)
    /// [default: $MLFLOW_TRACKING_URI, else ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryCommand {
    /// Without a name, every registered model with its versions and aliases; with a name, a table of its versions
    /// (stage, aliases, run, source, creation time)
    List {
        /// a registered model
        name: Option<String>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Point an alias at a version (moving it from the version it was on), or move the version to a stage
    Promote {
        name: String,
        version: u64,
        /// the alias to move, e.g. production
        #[arg(long, conflicts_with = "stage", required_unless_present = "stage")]
        alias: Option<String>,
        /// the stage: Staging, Production, Archived or None
        #[arg(long)]
        stage: Option<String>,
        /// with --stage: move the versions already in that stage to Archived
        #[arg(long, requires = "stage")]
        archive_existing: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Move an alias back to the highest version below its current one that is not Archived
    Rollback {
        name: String,
        /// the alias to move back
        #[arg(long, default_value = "production")]
        alias: String,
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct TrainArgs {
    /// experiment YAML (it may `extends` base files)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// register the model under `registry.model_name` and move `registry.alias` to it when every gate passes and
    /// it is at least as good as the alias's current holder on the same test rows (both scored, the comparison
    /// printed and logged; `registry.compare` names the metric, `registry.margin` a relative margin); a worse model
    /// is registered without the alias; a failing gate registers nothing and exits with code 3
    #[arg(long)]
    pub(crate) register: bool,
    /// with --register: move the alias even when the current holder scores better (said so in the output and the
    /// run's tags)
    #[arg(long, requires = "register")]
    pub(crate) force: bool,
    /// tracking store: a folder in MLflow's layout or an MLflow server (http://host:port); overrides
    /// `tracking.uri`
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// run name; overrides `tracking.run_name`
    #[arg(long)]
    pub(crate) run_name: Option<String>,
    /// also cross-validate this configuration on N folds of the training part (walk-forward for a forecast,
    /// stratified k-fold for a classifier, k-fold for a regression; the `backtest:` section's fold settings apply)
    /// and report the fold table, its mean and standard deviation, logged as `cv/...` metrics
    #[arg(long, value_name = "N")]
    pub(crate) cv: Option<usize>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct BacktestArgs {
    /// experiment YAML (it may `extends` base files); its `backtest:` section sets the folds, these flags override it
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// the number of folds (default 5)
    #[arg(long, value_name = "N")]
    pub(crate) folds: Option<usize>,
    /// forecast: rows per test block (default: rows / (folds + 1), as scikit-learn)
    #[arg(long, value_name = "N")]
    pub(crate) test_size: Option<usize>,
    /// forecast: rows left out between each training part and its test block (default and least: horizon - 1)
    #[arg(long, value_name = "N")]
    pub(crate) gap: Option<usize>,
    /// forecast: train on the last N rows before each test block only (a sliding window; default: all of them)
    #[arg(long, value_name = "N")]
    pub(crate) max_train_size: Option<usize>,
    /// forecast: rows between the starts of consecutive test blocks (default: the test size, blocks back to back;
    /// smaller overlaps them, larger leaves rows between them)
    #[arg(long, value_name = "N")]
    pub(crate) step: Option<usize>,
    /// tabular rows: leave N training rows out before each test row (purged k-fold; a forecast's is --gap)
    #[arg(long, value_name = "N")]
    pub(crate) purge: Option<usize>,
    /// tabular rows: leave N training rows out after each test row (the embargo of a purged k-fold)
    #[arg(long, value_name = "N")]
    pub(crate) embargo: Option<usize>,
    /// folds fitted at once (default: the machine's cores); the result is the same for any value
    #[arg(long, value_name = "N")]
    pub(crate) threads: Option<usize>,
    /// forecast: the season length in rows (24 for hourly data with a daily cycle); each fold is also scored beside
    /// the seasonal naive forecast (the value one season before the target time)
    #[arg(long, value_name = "M")]
    pub(crate) season: Option<usize>,
    /// refit on every K-th fold only; the folds between are scored by the last fitted pipeline and model, rolled
    /// forward (default 1: refit on every fold)
    #[arg(long, value_name = "K")]
    pub(crate) refit_every: Option<usize>,
    /// write every out-of-fold prediction here (.csv or .parquet): fold, time or id, actual, prediction, baseline
    #[arg(long, value_name = "FILE")]
    pub(crate) oof: Option<PathBuf>,
    /// write the folds and their metrics at full precision here (JSON): each fold's rows, spans and metrics, and
    /// the mean and standard deviation of each metric over the folds
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// tracking store: a folder in MLflow's layout or an MLflow server (http://host:port); overrides
    /// `tracking.uri`
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// run name (default: <name>-<model kind>-backtest)
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
    /// tracking store holding the registry and the runs: a folder or an MLflow server
    /// [default: $MLFLOW_TRACKING_URI, else ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// also write the feature values and the model's raw output (before the target transform is inverted)
    #[arg(long)]
    pub(crate) with_features: bool,
    /// also write each feature's SHAP contribution to the raw output (`shap_<feature>` columns and `shap_bias`;
    /// they sum to `raw_prediction`); LightGBM and XGBoost models only
    #[arg(long)]
    pub(crate) explain: bool,
    /// rows read, scored and written at a time. Memory grows with it, not with the file; the predictions do not
    /// depend on it (a forecast's lags, windows, EWM and expanding means carry over from chunk to chunk). A
    /// forecast file must be in strictly increasing time order; one that starts newest first is read whole and
    /// sorted. Progress goes to stderr: a bar on a terminal, a line every 10 s otherwise
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) chunk_rows: u64,
    /// threads the model predicts on, each a chunk at a time, while the main thread reads, builds the features and
    /// writes in file order [default: every core]. The output does not depend on it, byte for byte; at most
    /// 2 x N chunks are held at once
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) threads: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct FeaturesArgs {
    /// experiment YAML (its data, task and features)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// read this file instead of the experiment's data.path
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// where to write the feature table (.csv or .parquet)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// how a Parquet output's pages are compressed: snappy (pandas' default; floats barely compress, so zstd
    /// makes the file 5-10% smaller at twice the writing time), zstd, lz4 or none
    #[arg(long, value_enum, default_value_t = ParquetCompression::Snappy)]
    pub(crate) compression: ParquetCompression,
}

/// `--compression` of a Parquet output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ParquetCompression {
    Snappy,
    Zstd,
    Lz4,
    None,
}

impl From<ParquetCompression> for kiln_data::Compression {
    fn from(c: ParquetCompression) -> kiln_data::Compression {
        match c {
            ParquetCompression::Snappy => kiln_data::Compression::Snappy,
            ParquetCompression::Zstd => kiln_data::Compression::Zstd,
            ParquetCompression::Lz4 => kiln_data::Compression::Lz4,
            ParquetCompression::None => kiln_data::Compression::None,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Print the merged configuration (after `extends` and `${VAR}` interpolation), checked against the schema
    Show {
        /// experiment YAML
        file: PathBuf,
    },
}

/// A number of seconds: finite, not negative.
fn parse_positive_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.01 => Ok(v),
        _ => Err(format!("'{text}' is not a number of seconds (0.01 or more, e.g. 2 or 0.5)")),
    }
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("'{text}' is not a number of seconds (0 or more, e.g. 30 or 0.5)")),
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct EvaluateArgs {
    /// the model: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a bundle folder
    #[arg(short, long, value_name = "REF")]
    pub(crate) model: String,
    /// labelled rows (CSV or Parquet) with the model's input columns and its target
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// the metric judged (default: roc_auc for a classifier, rmse otherwise)
    #[arg(long, value_name = "NAME")]
    pub(crate) metric: Option<String>,
    /// how much worse than the bundle's test value the metric may get, relative to it, before the model is
    /// degraded (exit 4)
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub(crate) tolerance: f64,
    /// also write the evaluation as JSON to FILE (`-`: stdout)
    #[arg(long, value_name = "FILE")]
    pub(crate) json: Option<PathBuf>,
    /// the tracking store the model is resolved in and the evaluation logged to [default: MLFLOW_TRACKING_URI or
    /// ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// log the evaluation run to this experiment (default: the training run's experiment)
    #[arg(long, value_name = "NAME")]
    pub(crate) experiment: Option<String>,
    /// do not log the evaluation as a run
    #[arg(long)]
    pub(crate) no_log: bool,
}

/// When `kiln retrain` trains a challenger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RetrainWhen {
    Always,
    Degraded,
    Drift,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RetrainArgs {
    /// experiment YAML (with a `registry` section: the champion is models:/<model_name>@<alias>)
    #[arg(short, long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// when to train a challenger
    #[arg(long, value_enum, default_value_t = RetrainWhen::Always)]
    pub(crate) when: RetrainWhen,
    /// the fresh data (replaces the experiment's data.path / data.snapshot)
    #[arg(long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// how much better than the champion the challenger must be, relative to the champion's score (default:
    /// registry.margin, else 0)
    #[arg(long, value_name = "FRACTION")]
    pub(crate) margin: Option<f64>,
    /// with --when degraded: how much worse than its bundle's test value the champion may get (relative)
    #[arg(long, value_name = "FRACTION", default_value_t = 0.1)]
    pub(crate) tolerance: f64,
    /// tracking store URI (overrides the experiment's tracking.uri)
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("against").required(true).args(["model", "reference"])))]
pub(crate) struct DriftArgs {
    /// compare with this model's reference profile: models:/<name>@<alias>, models:/<name>/<version>,
    /// runs:/<run_id>/model, or a bundle folder
    #[arg(short, long, value_name = "REF")]
    pub(crate) model: Option<String>,
    /// compare with this file (CSV or Parquet) instead of a model: every column the two files share, or --columns
    #[arg(short, long, value_name = "FILE")]
    pub(crate) reference: Option<PathBuf>,
    /// the new rows (CSV or Parquet); with --model, every raw column the model reads
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: PathBuf,
    /// only these columns (comma-separated)
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub(crate) columns: Option<Vec<String>>,
    /// a panel model: also compare each series with its own profile (a long panel: its input columns, row by
    /// series; a wide panel: the series' own column), and each series' predictions with its training predictions
    #[arg(long)]
    pub(crate) series: bool,
    /// print the full result as JSON on stdout instead of the table
    #[arg(long)]
    pub(crate) json: bool,
    /// write report.html and drift.json into this folder
    #[arg(long, value_name = "DIR")]
    pub(crate) report: Option<PathBuf>,
    /// p-value threshold of KS, chi-square and the z-test
    #[arg(long, value_name = "P", default_value_t = 0.05)]
    pub(crate) p_value: f64,
    /// distance threshold of the normed Wasserstein and Jensen-Shannon distances
    #[arg(long, value_name = "D", default_value_t = 0.1)]
    pub(crate) distance: f64,
    /// the dataset drifts when at least this share of its columns drift
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub(crate) drift_share: f64,
    /// tracking store holding the registry (for models:/ references), where the result is logged as a run
    /// [default: $MLFLOW_TRACKING_URI, else ./mlruns]
    #[arg(long, value_name = "URI")]
    pub(crate) tracking_uri: Option<String>,
    /// log the result as an evaluation run in this experiment (metrics per column, the JSON and the report as
    /// artifacts, tags naming the model and version). A model resolved from the registry (models:/...) is logged
    /// without it, in the experiment 'drift'; a bundle folder, a run or two files only with it
    #[arg(long, value_name = "NAME")]
    pub(crate) experiment: Option<String>,
    /// rows read at a time; memory grows with it, the result does not depend on it
    #[arg(long, value_name = "N", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) chunk_rows: u64,
}
