//! The typed experiment settings: one tree, read from the merged YAML. Unknown keys are refused everywhere
//! (`deny_unknown_fields`), enums stand where a string would allow typos, and every library crate receives its part
//! as a plain struct. [`Settings::resolve`] reads the tree once and checks what serde cannot (keys whose meaning
//! depends on the task kind: the features, the gates' metrics, the model's ranges), building the use case's
//! [`TaskSpec`], [`ModelSpec`] and [`Gates`] with errors naming the file and key; nothing is parsed again later.

use std::path::PathBuf;

use kiln_eval::{ClassificationGateSpec, GateSpec, HoldoutSpec, Size};
use kiln_features::{FeatureSpec, PreprocessSpec, SelectorSpec, TabularInput, TargetTransform, TimeSeriesRecipe};
use kiln_models::{ModelConfig, ModelSpec};
use kiln_train::{
    Gates, MissingFeatures, MissingPolicy, MissingTarget, ShuffledSplit, TabularKind, TaskSpec, ThresholdRule,
};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, Loaded};

/// `features: __AUTO__`: every column of a tabular file except the target, the id column and `data.exclude`.
pub(crate) const AUTO_FEATURES: &str = "__AUTO__";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Experiment {
    /// short name of the experiment; also the default MLflow experiment name
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    pub(crate) data: DataSettings,
    pub(crate) task: TaskSettings,
    /// forecast: a list of feature kernels; tabular: `__AUTO__` or a list of column names
    pub(crate) features: serde_json::Value,
    /// preprocessing steps, fitted on the training rows, in order
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) preprocess: Vec<PreprocessSpec>,
    /// feature selectors, fitted on the training rows at every fit, in order
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) selection: Vec<SelectorSpec>,
    pub(crate) split: SplitSettings,
    /// `kind` picks a row of kiln-models' table of model kinds, `params` are that kind's
    pub(crate) model: ModelConfig,
    /// registration gates; their metric names depend on the task kind (read by [`Experiment::gates`])
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub(crate) gates: serde_json::Value,
    #[serde(default)]
    pub(crate) tracking: TrackingSettings,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) registry: Option<RegistrySettings>,
    /// how `kiln backtest` folds the rows (flags override)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) backtest: Option<BacktestSettings>,
    /// `kiln tune`: the candidates, their search spaces, the sampler, pruner and storage (read by `kiln tune`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tune: Option<crate::tune_cmd::TuneSettings>,
    /// `kiln fetch`: where the data comes from (read by `kiln fetch --config`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<crate::fetch_cmd::SourceSettings>,
    /// the data's schema: `kiln validate --config` checks the data file against it, and `kiln train` does before
    /// it starts a run
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) validate: Option<kiln_eval::validate::SchemaSpec>,
}

fn is_empty_path(path: &std::path::Path) -> bool {
    path.as_os_str().is_empty()
}

/// The `backtest:` section: walk-forward folds for a forecast (scikit-learn's `TimeSeriesSplit` settings), k-fold
/// (stratified for a classifier) for tabular rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BacktestSettings {
    /// the number of folds (default 5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) folds: Option<usize>,
    /// forecast: rows per test block (default: rows / (folds + 1)); at least the horizon
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) test_size: Option<usize>,
    /// forecast: rows left out between each training part and its test block (default and least: horizon - 1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gap: Option<usize>,
    /// forecast: train on the last this many rows only (a sliding window; default: every earlier row)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_train_size: Option<usize>,
    /// forecast: rows between the starts of consecutive test blocks (default: the test size; smaller overlaps them)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) step: Option<usize>,
    /// tabular: training rows left out before each test row (purged k-fold; a forecast's purge is its gap)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) purge: Option<usize>,
    /// tabular: training rows left out after each test row (the embargo of a purged k-fold)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) embargo: Option<usize>,
    /// tabular: shuffle the rows with split.seed before folding (default false, as scikit-learn)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) shuffle: Option<bool>,
    /// folds fitted at once (default: the machine's cores); the result does not depend on it
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threads: Option<usize>,
    /// forecast: the season length in rows (e.g. 24 for hourly data with a daily cycle); each fold is also scored
    /// beside the seasonal naive forecast
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) season: Option<usize>,
    /// refit on every k-th fold only; the folds between are scored by the last fitted pipeline (default 1: every
    /// fold)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refit_every: Option<usize>,
    /// a trading simulation of the out-of-fold price forecasts (forecasts of a price only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) trading: Option<kiln_eval::TradingSpec>,
    /// a composite score over fold and trading metrics (`weights: {r2: 0.3, sharpe: 0.4, drawdown: 0.3}`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) score: Option<kiln_train::ScoreSpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataSettings {
    /// CSV or Parquet file, relative to the working directory (or `snapshot`)
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub(crate) path: PathBuf,
    /// a snapshot written by `kiln fetch` instead of `path`: `<source>/<name>@latest` or `@<sha256 prefix>`; the
    /// run records which one it read (the `kiln.data.snapshot` tag, its sha256, MLflow's dataset input)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) snapshot: Option<String>,
    /// the snapshot store's folder (default data/raw)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) snapshot_root: Option<PathBuf>,
    /// the column holding the time of each row (required for a forecast; rows are sorted by it)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time_column: Option<String>,
    /// strftime-like format of the time column (%Y %m %d %H %M %S); detected when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time_format: Option<String>,
    /// cell texts read as missing values
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) na_values: Option<Vec<String>>,
    /// a column naming each row (tabular): kept beside the predictions, never a feature
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_column: Option<String>,
    /// columns `features: __AUTO__` leaves out
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) exclude: Vec<String>,
    /// a row whose target is missing: `drop` (default: that row only, counted and reported) or `fail`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) missing_target: Option<MissingTarget>,
    /// a row with a missing feature: `keep` (default: the imputer or the model handles it), `drop` or `fail`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) missing_features: Option<MissingFeatures>,
    /// the largest share of the usable rows that may be dropped for missing values (default 0.1); more stops the run
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_dropped_fraction: Option<f64>,
    /// a forecast over many series in one long file (a panel): the column naming each row's series
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) series_column: Option<String>,
    /// a wide file (one column per series) melted into a panel: `{columns: [USD, JPY], name: currency}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) wide: Option<kiln_features::WideInput>,
    /// a panel's series with too few rows for the features: `skip` (default: left out, named and counted) or
    /// `fail`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) short_series: Option<kiln_train::ShortSeries>,
}

impl DataSettings {
    fn missing_policy(&self) -> MissingPolicy {
        MissingPolicy {
            target: self.missing_target.unwrap_or_default(),
            features: self.missing_features.unwrap_or_default(),
            max_dropped_fraction: self.max_dropped_fraction.unwrap_or(MissingPolicy::DEFAULT_MAX_DROPPED_FRACTION),
            short_series: self.short_series.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskKind {
    /// predict a numeric series `horizon` steps ahead (time-ordered rows)
    Forecast,
    /// binary classification of tabular rows
    Classification,
    /// a numeric target of tabular rows
    Regression,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskSettings {
    pub(crate) kind: TaskKind,
    pub(crate) target: String,
    /// forecast: steps ahead (default 1)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) horizon: Option<usize>,
    /// forecast: what the model learns (default none)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) target_transform: Option<TargetTransform>,
    /// forecast: every step 1..=horizon from each origin, `recursive` (one model of the next step, fed its own
    /// forecasts) or `direct` (one model per step); absent: one forecast, `horizon` steps ahead
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) strategy: Option<kiln_features::Strategy>,
    /// forecast with a strategy: conformal prediction intervals, `{levels: [80, 95], windows: 5}` (the errors of
    /// recursive forecasts over the last `windows` blocks of `horizon` rows of each series' training data)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) intervals: Option<kiln_features::IntervalSpec>,
    /// classification: the target value of class 1 (e.g. "Yes")
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) positive: Option<String>,
    /// classification: a probability in (0, 1), or `best_f1` (the F1-maximising threshold on the validation rows)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) threshold: Option<ThresholdSetting>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub(crate) enum ThresholdSetting {
    Fixed(f64),
    Rule(ThresholdName),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ThresholdName {
    BestF1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SplitSettings {
    /// the test part: a fraction in (0, 1) or a row count
    pub(crate) test_size: Size,
    /// the validation part (early stopping, threshold): a fraction or a row count
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) validation_size: Option<Size>,
    /// forecast: rows dropped between validation and test (at least horizon - 1)
    #[serde(default)]
    pub(crate) gap: usize,
    /// tabular: the shuffle seed (default 42)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackingSettings {
    /// a folder (the embedded MLflow-layout store, `./mlruns` by default) or an MLflow server (`http://host:port`)
    #[serde(default = "default_uri")]
    pub(crate) uri: String,
    /// MLflow experiment name; the experiment's `name` when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) experiment: Option<String>,
    /// run name; `<name>-<model kind>` when absent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) run_name: Option<String>,
    /// what a run does when the MLflow server becomes unreachable: `none` (the run fails, and is marked FAILED on
    /// the server the next time kiln reaches it) or `local` (the run continues in `fallback_uri`; `kiln sync` pushes
    /// it later)
    #[serde(default)]
    pub(crate) fallback: Fallback,
    /// the folder a run continues in with `fallback: local`
    #[serde(default = "default_uri")]
    pub(crate) fallback_uri: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fallback {
    #[default]
    None,
    Local,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        TrackingSettings {
            uri: default_uri(),
            experiment: None,
            run_name: None,
            fallback: Fallback::None,
            fallback_uri: default_uri(),
        }
    }
}

fn default_uri() -> String {
    "./mlruns".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegistrySettings {
    /// registered model name
    pub(crate) model_name: String,
    /// alias moved to the new version when every gate passes and it is at least as good as the alias's holder
    #[serde(default = "production")]
    pub(crate) alias: String,
    /// the metric a new version and the alias's holder are compared on (default: roc_auc for a classifier, rmse
    /// otherwise)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) compare: Option<String>,
    /// how much better than the holder a new version must be to take the alias, relative to the holder's score
    /// (default 0: at least as good)
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) margin: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn production() -> String {
    "production".to_string()
}

/// The features of a task, resolved against the task kind.
enum Features {
    Recipe(Vec<FeatureSpec>),
    Auto,
    Columns(Vec<String>),
}

/// The task, resolved against its kind. A tabular task's columns are known only once the data is read
/// (`__AUTO__` takes every column but a few), so it keeps the choice until [`Settings::task_spec`].
#[allow(clippy::large_enum_variant)] // one per experiment loaded
enum ResolvedTask {
    Forecast(TaskSpec),
    /// `columns`: the list `features` names, `None` for `__AUTO__`
    Tabular {
        columns: Option<Vec<String>>,
        kind: TabularKind,
    },
}

/// The experiment, resolved once: the merged tree as written (for `config show`, data, tracking and registry) and
/// every part whose meaning depends on the task kind, typed and checked.
pub(crate) struct Settings {
    pub(crate) experiment: Experiment,
    pub(crate) loaded: Loaded,
    task: ResolvedTask,
    pub(crate) model: ModelSpec,
    pub(crate) gates: Gates,
}

impl Settings {
    /// Reads the merged config into the typed tree and checks everything that does not need the data.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key of the first setting that is wrong.
    pub(crate) fn resolve(mut loaded: Loaded) -> Result<Settings, ConfigError> {
        let per_series = take_per_series(&mut loaded)?;
        let experiment: Experiment = loaded.parse()?;
        let mut task = experiment.resolve_task(&loaded)?;
        if per_series {
            match &mut task {
                ResolvedTask::Forecast(TaskSpec::Forecast { recipe, per_series, .. })
                    if recipe.series_column.is_some() =>
                {
                    if recipe.direct_steps() > 0 {
                        return Err(loaded.error_at(
                            "model.per_series",
                            "one model per series and one per step is not available; use task.strategy: recursive",
                        ));
                    }
                    *per_series = true;
                }
                _ => {
                    return Err(loaded.error_at(
                        "model.per_series",
                        "one model per series needs a panel: a forecast with data.series_column (or data.wide)",
                    ));
                }
            }
        }
        if let Some(schema) = &experiment.validate {
            schema.check().map_err(|e| {
                let path = if e.path.is_empty() { "validate".to_string() } else { format!("validate.{}", e.path) };
                loaded.error_at(&path, e.reason)
            })?;
        }
        let model = experiment.model_spec(&loaded)?;
        let gates = experiment.gates(&loaded)?;
        Ok(Settings { experiment, loaded, task, model, gates })
    }

    /// Whether a panel gets one model per series (`model.per_series`).
    pub(crate) fn per_series(&self) -> bool {
        matches!(&self.task, ResolvedTask::Forecast(TaskSpec::Forecast { per_series: true, .. }))
    }

    /// The columns a forecast reads (its recipe's); `None` for a tabular task, which reads every column.
    pub(crate) fn read_columns(&self) -> Option<Vec<String>> {
        match &self.task {
            ResolvedTask::Forecast(TaskSpec::Forecast { recipe, .. }) => Some(recipe.input_columns()),
            _ => None,
        }
    }

    /// The series column the reader orders a long panel file by (a wide file is melted later, by the recipe).
    pub(crate) fn series_column_to_read(&self) -> Option<String> {
        match &self.task {
            ResolvedTask::Forecast(TaskSpec::Forecast { recipe, .. }) if recipe.wide.is_none() => {
                recipe.series_column.clone()
            }
            _ => None,
        }
    }

    /// The use case's task for data with the columns `available`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `features` when no column is left to be a feature.
    pub(crate) fn task_spec(&self, available: &[String]) -> Result<TaskSpec, ConfigError> {
        let (listed, kind) = match &self.task {
            ResolvedTask::Forecast(spec) => return Ok(spec.clone()),
            ResolvedTask::Tabular { columns, kind } => (columns, kind),
        };
        let exp = &self.experiment;
        let excluded = |c: &String| {
            c == &exp.task.target
                || Some(c) == exp.data.id_column.as_ref()
                || Some(c) == exp.data.time_column.as_ref()
                || exp.data.exclude.contains(c)
        };
        let columns: Vec<String> = match listed {
            None => available.iter().filter(|c| !excluded(c)).cloned().collect(),
            Some(list) => list.clone(),
        };
        if columns.is_empty() {
            return Err(self.loaded.error_at("features", "no column is left to use as a feature"));
        }
        Ok(TaskSpec::Tabular {
            input: TabularInput { columns, id_column: exp.data.id_column.clone() },
            target: exp.task.target.clone(),
            kind: kind.clone(),
            split: ShuffledSplit {
                test_size: exp.split.test_size,
                validation_size: exp.split.validation_size,
                seed: exp.split.seed.unwrap_or(42),
            },
            missing: exp.data.missing_policy(),
        })
    }
}

impl Experiment {
    /// The features of the task kind: a recipe's kernels, or a tabular task's column list or `__AUTO__`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and `features` when the value does not fit the task kind.
    fn features(&self, loaded: &Loaded) -> Result<Features, ConfigError> {
        match self.task.kind {
            TaskKind::Forecast => {
                if self.features.as_str() == Some(AUTO_FEATURES) {
                    return Err(loaded.error_at(
                        "features",
                        "a forecast needs a list of feature kernels (lag, rolling, ...); __AUTO__ is for tabular tasks",
                    ));
                }
                Ok(Features::Recipe(loaded.parse_at("features", &self.features)?))
            }
            TaskKind::Classification | TaskKind::Regression => {
                if self.features.as_str() == Some(AUTO_FEATURES) {
                    return Ok(Features::Auto);
                }
                let columns: Vec<String> = loaded.parse_at("features", &self.features).map_err(|e| {
                    loaded.error_at(
                        "features",
                        format!("a tabular task takes __AUTO__ or a list of column names ({})", e.message),
                    )
                })?;
                if columns.is_empty() {
                    return Err(loaded.error_at("features", "the list of columns is empty"));
                }
                Ok(Features::Columns(columns))
            }
        }
    }

    /// The task, checked against its kind: every key that applies to another kind is refused.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and key of a setting that does not fit the task kind.
    fn resolve_task(&self, loaded: &Loaded) -> Result<ResolvedTask, ConfigError> {
        let task = &self.task;
        let forecast_only = |key: &str, set: bool| -> Result<(), ConfigError> {
            if set && task.kind != TaskKind::Forecast {
                return Err(loaded.error_at(key, "only applies to task.kind forecast"));
            }
            Ok(())
        };
        forecast_only("task.horizon", task.horizon.is_some())?;
        forecast_only("task.strategy", task.strategy.is_some())?;
        forecast_only("task.intervals", task.intervals.is_some())?;
        if let Some(intervals) = &task.intervals {
            if task.strategy.is_none() {
                return Err(loaded.error_at(
                    "task.intervals",
                    "conformal intervals come from recursive forecasts: set task.strategy: recursive (with horizon 1 \
                     for one step)",
                ));
            }
            intervals.validate().map_err(|e| match e {
                kiln_features::FeatureError::Spec { path, reason } => loaded.error_at(&format!("task.{path}"), reason),
                other => loaded.error_at("task.intervals", other.to_string()),
            })?;
        }
        if task.strategy == Some(kiln_features::Strategy::Direct) && task.intervals.is_some() {
            return Err(loaded.error_at(
                "task.intervals",
                "conformal intervals are calibrated on recursive forecasts; use task.strategy: recursive",
            ));
        }
        forecast_only("task.target_transform", task.target_transform.is_some())?;
        forecast_only("split.gap", self.split.gap > 0)?;
        match (self.data.path.as_os_str().is_empty(), &self.data.snapshot) {
            (true, None) => {
                return Err(loaded
                    .error_at("data", "give data.path (a CSV or Parquet file) or data.snapshot (from kiln fetch)"));
            }
            (false, Some(_)) => {
                return Err(loaded.error_at("data.snapshot", "give data.path or data.snapshot, not both"));
            }
            _ => {}
        }
        if let Some(format) = &self.data.time_format
            && let Err(reason) = kiln_data::check_time_format(format)
        {
            return Err(loaded.error_at("data.time_format", format!("invalid time format '{format}': {reason}")));
        }
        if let Some(f) = self.data.max_dropped_fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(loaded.error_at("data.max_dropped_fraction", format!("{f} is not a fraction between 0 and 1")));
        }
        if task.kind != TaskKind::Classification {
            if task.positive.is_some() {
                return Err(loaded.error_at("task.positive", "only applies to task.kind classification"));
            }
            if task.threshold.is_some() {
                return Err(loaded.error_at("task.threshold", "only applies to task.kind classification"));
            }
        }
        match (task.kind, self.features(loaded)?) {
            (TaskKind::Forecast, Features::Recipe(features)) => {
                if self.split.seed.is_some() {
                    return Err(loaded.error_at("split.seed", "a forecast split is time ordered, never shuffled"));
                }
                let Some(time_column) = self.data.time_column.clone() else {
                    return Err(loaded.error_at("data.time_column", "a forecast needs the time column of the rows"));
                };
                let series_column = match (&self.data.series_column, &self.data.wide) {
                    (Some(s), Some(w)) if *s != w.name => {
                        return Err(loaded.error_at(
                            "data.series_column",
                            format!(
                                "'{s}' differs from data.wide.name '{}'; a wide file's series column is its name",
                                w.name
                            ),
                        ));
                    }
                    (s, w) => s.clone().or_else(|| w.as_ref().map(|w| w.name.clone())),
                };
                let recipe = TimeSeriesRecipe {
                    multi_step: task
                        .strategy
                        .map(|strategy| kiln_features::MultiStep { steps: task.horizon.unwrap_or(1), strategy }),
                    time_column,
                    time_format: self.data.time_format.clone(),
                    na_values: self.data.na_values.clone(),
                    series_column,
                    wide: self.data.wide.clone(),
                    target: task.target.clone(),
                    // a multi-step model learns the next step; its forecasts go on to task.horizon
                    horizon: if task.strategy.is_some() { 1 } else { task.horizon.unwrap_or(1) },
                    target_transform: task.target_transform.unwrap_or_default(),
                    features,
                };
                recipe
                    .validate()
                    .and_then(|()| match recipe.multi_step {
                        Some(kiln_features::MultiStep { strategy: kiln_features::Strategy::Recursive, .. }) => {
                            recipe.check_recursive()
                        }
                        _ => Ok(()),
                    })
                    .map_err(|e| match e {
                        kiln_features::FeatureError::Spec { path, reason } if path.starts_with("wide") => {
                            loaded.error_at(&format!("data.{path}"), reason)
                        }
                        kiln_features::FeatureError::Spec { path, reason } if path == "series_column" => {
                            loaded.error_at("data.series_column", reason)
                        }
                        kiln_features::FeatureError::Spec { path, reason } => loaded.error_at(&path, reason),
                        other => loaded.error_at("features", other.to_string()),
                    })?;
                let split = HoldoutSpec {
                    test_size: self.split.test_size,
                    validation_size: self.split.validation_size,
                    gap: self.split.gap,
                };
                Ok(ResolvedTask::Forecast(TaskSpec::Forecast {
                    recipe,
                    split,
                    missing: self.data.missing_policy(),
                    intervals: task.intervals.clone(),
                    per_series: false,
                }))
            }
            (_, features) => {
                let columns = match features {
                    Features::Columns(list) => {
                        if let Some(i) = list.iter().position(|c| c == &task.target) {
                            return Err(loaded.error_at(&format!("features[{i}]"), "the target cannot be a feature"));
                        }
                        Some(list)
                    }
                    // `features` gives a tabular task a list or __AUTO__, and a forecast a recipe (matched above)
                    Features::Auto | Features::Recipe(_) => None,
                };
                Ok(ResolvedTask::Tabular { columns, kind: self.tabular_kind(loaded)? })
            }
        }
    }

    /// The kind of a tabular task: classification (with its positive class and threshold) or regression.
    ///
    /// # Errors
    /// [`ConfigError`] for a classification without `task.positive` or a threshold outside (0, 1).
    fn tabular_kind(&self, loaded: &Loaded) -> Result<TabularKind, ConfigError> {
        Ok(if self.task.kind == TaskKind::Classification {
            let Some(positive) = self.task.positive.clone() else {
                return Err(loaded.error_at(
                    "task.positive",
                    "a classification needs the target value of the positive class, e.g. positive: \"Yes\"",
                ));
            };
            let threshold = match self.task.threshold {
                None => ThresholdRule::Fixed(0.5),
                Some(ThresholdSetting::Rule(ThresholdName::BestF1)) => ThresholdRule::BestF1,
                Some(ThresholdSetting::Fixed(t)) if t > 0.0 && t < 1.0 => ThresholdRule::Fixed(t),
                Some(ThresholdSetting::Fixed(t)) => {
                    return Err(loaded
                        .error_at("task.threshold", format!("must be a probability in (0, 1) or best_f1, got {t}")));
                }
            };
            TabularKind::Classification { positive, threshold }
        } else {
            TabularKind::Regression
        })
    }

    /// The gates, read with the metric names of the task kind.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and `gates.<key>` of an unknown metric or a bad value.
    fn gates(&self, loaded: &Loaded) -> Result<Gates, ConfigError> {
        if self.gates.is_null() {
            return Ok(match self.task.kind {
                TaskKind::Classification => Gates::Classification(ClassificationGateSpec::default()),
                _ => Gates::Regression(GateSpec::default()),
            });
        }
        Ok(match self.task.kind {
            TaskKind::Classification => Gates::Classification(loaded.parse_at("gates", &self.gates)?),
            _ => Gates::Regression(loaded.parse_at("gates", &self.gates)?),
        })
    }

    /// The checked model.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and `model.params.<name>` of a value outside its range.
    fn model_spec(&self, loaded: &Loaded) -> Result<ModelSpec, ConfigError> {
        self.model.check(self.task.kind == TaskKind::Classification).map_err(|e| match &e {
            kiln_models::ModelError::Params { param, .. } => {
                loaded.error_at(&format!("model.params.{param}"), e.to_string())
            }
            _ => loaded.error_at("model.params", e.to_string()),
        })
    }
}

/// `model.per_series`, taken out of the merged tree (the rest of `model` is the table's `kind` and `params`, read with
/// their own unknown-key checks).
fn take_per_series(loaded: &mut Loaded) -> Result<bool, ConfigError> {
    let taken = match &mut loaded.value {
        serde_yaml::Value::Mapping(root) => match root.get_mut("model") {
            Some(serde_yaml::Value::Mapping(model)) => model.remove("per_series"),
            _ => None,
        },
        _ => None,
    };
    match taken {
        None => Ok(false),
        Some(serde_yaml::Value::Bool(b)) => Ok(b),
        Some(other) => Err(loaded.error_at("model.per_series", format!("must be true or false, not {other:?}"))),
    }
}
