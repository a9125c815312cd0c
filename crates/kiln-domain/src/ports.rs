//! The ports: small synchronous traits that the outside world implements (the local MLflow-layout store, the MLflow
//! REST adapter, the data sources). Pipeline code talks to data, tracking, artifacts and the registry only through
//! these.

use std::path::Path;

use crate::{Frame, PortError, SourceError};

/// An MLflow experiment id (a string, as MLflow has it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExperimentId(pub String);

/// An MLflow run id (32 hex characters when kiln creates it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunId(pub String);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A run's final (or current) status, with MLflow's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "RUNNING",
            RunStatus::Finished => "FINISHED",
            RunStatus::Failed => "FAILED",
            RunStatus::Killed => "KILLED",
        }
    }
}

/// What a tracker knows about a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub run_id: RunId,
    pub experiment_id: ExperimentId,
    pub run_name: String,
    pub status: RunStatus,
    pub start_time_ms: i64,
    pub end_time_ms: Option<i64>,
    /// where the run's artifacts live, as MLflow writes it (`mlflow-artifacts:/<exp>/<run>/artifacts`)
    pub artifact_uri: String,
}

/// One metric value at a step.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    pub timestamp_ms: i64,
    pub step: i64,
}

/// A dataset a run read, as MLflow records a run input (`runs/log-inputs`): the run page's Datasets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInput {
    /// e.g. the data file's stem
    pub name: String,
    /// a short fingerprint of the data (MLflow's are 8 hex characters)
    pub digest: String,
    /// where it came from: `local`, `http`, `s3`, ...
    pub source_type: String,
    /// JSON, e.g. `{"uri": "data/churn.csv"}`
    pub source: String,
    /// JSON `{"mlflow_colspec": [...]}`: the columns and their types
    pub schema: String,
    /// JSON `{"num_rows": .., "num_elements": ..}`
    pub profile: String,
    /// the [`DATASET_CONTEXT_TAG`] input tag: `training`, `evaluation`, ...; empty for none
    pub context: String,
}

/// The input tag MLflow records a dataset's role in a run under.
pub const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// MLflow's experiment tag naming the kind of work an experiment holds; MLflow 3's UI picks its views from it.
pub const EXPERIMENT_KIND_TAG: &str = "mlflow.experimentKind";
/// [`EXPERIMENT_KIND_TAG`]'s value for classic model training: runs, metrics, models (not the GenAI views).
pub const CLASSIC_ML_KIND: &str = "custom_model_development";

/// Experiment and run tracking.
pub trait Tracker {
    /// The id of the experiment called `name`, created when missing.
    ///
    /// # Errors
    /// [`PortError`] with `store_io` when the store cannot be read or written.
    fn experiment_by_name(&self, name: &str) -> Result<ExperimentId, PortError>;

    /// Sets the experiment tag `key` to `value` unless the experiment already has that tag (what a user set is kept).
    /// Returns whether it was set.
    ///
    /// # Errors
    /// `not_found` for an unknown experiment, `store_io` otherwise.
    fn ensure_experiment_tag(&self, experiment: &ExperimentId, key: &str, value: &str) -> Result<bool, PortError>;

    /// Records `dataset` as an input of the run (logging the same dataset again is a no-op).
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` otherwise.
    fn log_dataset(&self, run: &RunId, dataset: &DatasetInput) -> Result<(), PortError>;

    /// Starts a run in `RUNNING` state with the given tags.
    ///
    /// # Errors
    /// `not_found` for an unknown experiment, `store_io` otherwise.
    fn create_run(
        &self,
        experiment: &ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
        start_time_ms: i64,
    ) -> Result<RunInfo, PortError>;

    /// Logs params; logging the same key again with the same value is allowed, a different value is an error.
    ///
    /// # Errors
    /// `already_exists` when a param would change, `not_found` for an unknown run.
    fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<(), PortError>;

    /// Appends metric points.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` otherwise.
    fn log_metrics(&self, run: &RunId, metrics: &[MetricPoint]) -> Result<(), PortError>;

    /// Logs params, metric points and tags together: what [`Tracker::log_params`], [`Tracker::log_metrics`] then
    /// [`Tracker::set_tags`] do, in one request where the store can (a server's `runs/log-batch` takes all three).
    ///
    /// # Errors
    /// As `log_params`, `log_metrics` and `set_tags`.
    fn log_batch(
        &self,
        run: &RunId,
        params: &[(String, String)],
        metrics: &[MetricPoint],
        tags: &[(String, String)],
    ) -> Result<(), PortError> {
        self.log_params(run, params)?;
        self.log_metrics(run, metrics)?;
        if tags.is_empty() { Ok(()) } else { self.set_tags(run, tags) }
    }

    /// Sets (or overwrites) tags.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` otherwise.
    fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<(), PortError>;

    /// Ends the run with `status`.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` otherwise.
    fn end_run(&self, run: &RunId, status: RunStatus, end_time_ms: i64) -> Result<(), PortError>;

    /// The run's current info.
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    fn get_run(&self, run: &RunId) -> Result<RunInfo, PortError>;
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// path relative to the run's artifact root
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// A run's artifacts. Paths are relative to the run's artifact root, `/`-separated, without `..`.
pub trait ArtifactStore {
    /// Writes one file.
    ///
    /// # Errors
    /// `store_io`, or `invalid` for a path with `..`.
    fn put_bytes(&self, run: &RunId, path: &str, bytes: &[u8]) -> Result<(), PortError>;

    /// Copies a local folder, file by file, under `path`.
    ///
    /// # Errors
    /// `store_io` when a file cannot be read or written.
    fn put_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError>;

    /// The entries directly under `path` (`""` for the root).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    fn list(&self, run: &RunId, path: &str) -> Result<Vec<ArtifactEntry>, PortError>;

    /// Copies the folder `path` of the run's artifacts into `dest`, recursively.
    ///
    /// # Errors
    /// `not_found` when the run or the path does not exist.
    fn download_dir(&self, run: &RunId, path: &str, dest: &Path) -> Result<(), PortError>;

    /// Writes the model folder `local_dir` under `path` of the run's artifacts. A store that keeps MLflow 3 logged
    /// models also records the folder as one, linked to the run as its output, and returns its id (registered
    /// versions then point at it).
    ///
    /// # Errors
    /// As [`ArtifactStore::put_dir`], or `store_io` when the logged model cannot be created.
    fn log_model(
        &self,
        run: &RunId,
        path: &str,
        local_dir: &Path,
        model_type: &str,
    ) -> Result<Option<String>, PortError> {
        let _ = model_type;
        self.put_dir(run, path, local_dir)?;
        Ok(None)
    }

    /// Copies the files of the logged model `model_id` into `dest`.
    ///
    /// # Errors
    /// `not_found` when the store has no such model (a store without logged models has none).
    fn download_logged_model(&self, model_id: &str, dest: &Path) -> Result<(), PortError> {
        let _ = dest;
        Err(PortError::not_found(format!("logged model '{model_id}': this store keeps no logged models")))
    }
}

/// A registry stage, with MLflow's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Case-insensitive, as MLflow accepts it.
    pub fn parse(s: &str) -> Option<Stage> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Stage::None),
            "staging" => Some(Stage::Staging),
            "production" => Some(Stage::Production),
            "archived" => Some(Stage::Archived),
            _ => None,
        }
    }
}

/// One registered model version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: u64,
    /// where the bundle is, as registered (`runs:/<run_id>/model`)
    pub source: String,
    pub run_id: Option<RunId>,
    pub stage: Stage,
    pub aliases: Vec<String>,
    pub creation_time_ms: i64,
    pub description: String,
}

/// The model registry.
pub trait ModelRegistry {
    /// Creates the registered model when it does not exist yet.
    ///
    /// # Errors
    /// `store_io`.
    fn ensure_registered_model(&self, name: &str) -> Result<(), PortError>;

    /// Adds a new version (numbered one past the highest) pointing at `source` (`models:/<model_id>` when the bundle
    /// is a logged model, which is then given as `model_id`).
    ///
    /// # Errors
    /// `not_found` for an unknown model, `store_io` otherwise.
    fn create_version(
        &self,
        name: &str,
        source: &str,
        run_id: &RunId,
        model_id: Option<&str>,
    ) -> Result<ModelVersion, PortError>;

    /// One version.
    ///
    /// # Errors
    /// `not_found`.
    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError>;

    /// Every version of the model, oldest first.
    ///
    /// # Errors
    /// `not_found` for an unknown model.
    fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, PortError>;

    /// Points `alias` at `version`, moving it if it pointed elsewhere.
    ///
    /// # Errors
    /// `not_found` for an unknown version, `invalid` for a reserved alias (`latest`, `v<digits>`).
    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<(), PortError>;

    /// Removes `alias`.
    ///
    /// # Errors
    /// `not_found` when the alias is not set.
    fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PortError>;

    /// The version `alias` points at.
    ///
    /// # Errors
    /// `not_found` when the model or the alias does not exist.
    fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, PortError>;

    /// Moves `version` to `stage`; with `archive_existing`, other versions in that stage move to Archived.
    ///
    /// # Errors
    /// `not_found` for an unknown version.
    fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, PortError>;

    /// Sets a tag on a version (MLflow's model version tags: `kiln.alias_decision`, ...), replacing its value.
    ///
    /// # Errors
    /// `not_found` for an unknown version, `invalid` for a malformed key.
    fn set_version_tag(&self, name: &str, version: u64, key: &str, value: &str) -> Result<(), PortError>;
}

/// Draws the charts kiln logs with a run (PNG bytes). Kept behind a port so that the pipeline crates know no image
/// format.
pub trait ChartRenderer {
    /// A horizontal bar chart, one bar per label, in the given order.
    ///
    /// # Errors
    /// `internal` when drawing fails.
    fn bar_chart(&self, title: &str, x_label: &str, labels: &[String], values: &[f64]) -> Result<Vec<u8>, PortError>;

    /// A line chart of named `(x, y)` series (ROC and precision-recall curves), each drawn through its points in the
    /// given order, with a legend; non-finite points are skipped. With `diagonal`, the dashed `y = x` chance line of a
    /// ROC chart is drawn under the series.
    ///
    /// # Errors
    /// `data_shape` when no series has a finite point, `internal` when drawing fails.
    fn line_chart(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        series: &[(String, Vec<(f64, f64)>)],
        diagonal: bool,
    ) -> Result<Vec<u8>, PortError>;

    /// A binary confusion matrix as a heatmap with the counts written in the cells: rows are the true class,
    /// columns the predicted class, `counts = [[tn, fp], [fn, tp]]` and `labels` the names of class 0 and class 1.
    ///
    /// # Errors
    /// `internal` when drawing fails.
    fn confusion_matrix_chart(
        &self,
        title: &str,
        labels: [&str; 2],
        counts: [[u64; 2]; 2],
    ) -> Result<Vec<u8>, PortError>;

    /// A SHAP beeswarm as the `shap` package's `summary_plot` draws it: one row per feature, the first on top; each
    /// data row a dot at its SHAP value, spread vertically within the row where dots pile up, coloured by the
    /// feature's value (blue low to red high, scaled per feature between its 5th and 95th percentiles; grey where
    /// the value is missing, NaN), a vertical line at 0 and a "Feature value" colour bar.
    ///
    /// # Errors
    /// `data_shape` when no row has a finite SHAP value, `internal` when a row's two vectors differ in length or
    /// drawing fails.
    fn beeswarm_chart(&self, title: &str, x_label: &str, rows: &[BeeswarmRow]) -> Result<Vec<u8>, PortError>;

    /// Named series over time (actual and predicted values of a forecast), each a line through its values at
    /// `times_ms` (UTC milliseconds, shared by every series), with a legend and dates on the time axis; non-finite
    /// values leave a gap.
    ///
    /// # Errors
    /// `data_shape` when no series has a finite value, `internal` when a series' length differs from the times'
    /// or drawing fails.
    fn series_chart(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        series: &[(String, Vec<f64>)],
    ) -> Result<Vec<u8>, PortError>;

    /// [`ChartRenderer::series_chart`] with a dashed vertical line at each of `markers_ms` (UTC milliseconds; a
    /// backtest's fold boundaries).
    ///
    /// # Errors
    /// As [`ChartRenderer::series_chart`].
    fn series_chart_marked(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        series: &[(String, Vec<f64>)],
        markers_ms: &[i64],
    ) -> Result<Vec<u8>, PortError>;

    /// Residuals (actual - predicted) over time as points around a zero line, with their histogram in a panel on
    /// the right that shares the value axis.
    ///
    /// # Errors
    /// `data_shape` when no residual is finite, `internal` when the lengths differ or drawing fails.
    fn residual_chart(
        &self,
        title: &str,
        y_label: &str,
        times_ms: &[i64],
        residuals: &[f64],
    ) -> Result<Vec<u8>, PortError>;

    /// An optimisation history (Optuna's `plot_optimization_history`): each trial's value as a dot at its trial
    /// number (`values`, `(number, value)`), and the best value so far (`best`, `(number, best)`) as a line that
    /// steps at each improvement, with a legend and `y_label` (the objective's name) on the value axis; non-finite
    /// points are skipped.
    ///
    /// # Errors
    /// `data_shape` when no value is finite, `internal` when drawing fails.
    fn history_chart(
        &self,
        title: &str,
        y_label: &str,
        values: &[(f64, f64)],
        best: &[(f64, f64)],
    ) -> Result<Vec<u8>, PortError>;

    /// Parallel coordinates (Optuna's `plot_parallel_coordinate`): one vertical axis per entry of `axes`, left to
    /// right, and each line of `lines` (one value per axis, in the axis's units: a categorical axis takes the
    /// choice's index) a polyline across them, coloured by its `colour_values` entry on a colour bar, the best lines
    /// (the lowest values when `low_is_best`, else the highest) darkest and drawn on top. A `None` value breaks the
    /// line on that axis (a parameter that a trial did not have). Numeric axes span their lines' values.
    ///
    /// # Errors
    /// `data_shape` when there is no axis or no line, `internal` when a line's length differs from the axes', the
    /// colour values' count from the lines', a categorical index is outside its choices, or drawing fails.
    fn parallel_coordinates_chart(
        &self,
        title: &str,
        axes: &[ChartAxis],
        lines: &[Vec<Option<f64>>],
        colour_values: &[f64],
        low_is_best: bool,
    ) -> Result<Vec<u8>, PortError>;

    /// Each trial's intermediate values over its steps (Optuna's `plot_intermediate_values`; a tuning study's fold
    /// scores): `trials` holds `(pruned, points)` per trial, a line through its `(step, value)` points, complete
    /// trials in one colour and pruned ones in another with a cross where they stopped, and a legend of the two;
    /// `x_label` names the steps, which are whole numbers. Non-finite points are skipped.
    ///
    /// # Errors
    /// `data_shape` when no point is finite, `internal` when drawing fails (and from a renderer that does not draw
    /// this chart, which is what the default does).
    fn intermediate_values_chart(
        &self,
        title: &str,
        x_label: &str,
        y_label: &str,
        trials: &[(bool, Vec<(f64, f64)>)],
    ) -> Result<Vec<u8>, PortError> {
        let _ = (x_label, y_label, trials);
        Err(PortError::new(
            crate::Code::Internal,
            format!("chart '{title}': this renderer draws no intermediate values"),
        ))
    }

    /// One scatter panel per parameter (Optuna's `plot_slice`), side by side in rows: each panel's points are
    /// `(value, objective, trial number)` for the trials that have the parameter, the value on the panel's axis
    /// (linear, logarithmic, or a categorical one's choice index), the objective on a value axis shared by every
    /// panel and labelled `y_label`, each point coloured by its trial number (later trials darker). Non-finite points
    /// are skipped; a renderer may draw only the first panels of very many (kiln-store's draws 120).
    ///
    /// # Errors
    /// `data_shape` when there is no panel or no finite point, `internal` when a categorical index is outside its
    /// choices or drawing fails (and from a renderer that does not draw this chart, which is what the default does).
    fn slice_chart(&self, title: &str, y_label: &str, panels: &[SlicePanel]) -> Result<Vec<u8>, PortError> {
        let _ = (y_label, panels);
        Err(PortError::new(crate::Code::Internal, format!("chart '{title}': this renderer draws no slice plots")))
    }

    /// Two distributions of one column overlaid (`kiln drift`'s report): the share of the reference's and of the
    /// current values in each bin, as semi-transparent bars (reference blue, current orange) with a legend. A
    /// numeric column's bins are `edges` (`edges.len() - 1` bins, `labels` empty); a categorical column's are its
    /// `labels` (side by side, `edges` empty).
    ///
    /// # Errors
    /// `data_shape` when the shares do not match the bins, `internal` when drawing fails (and from a renderer that
    /// does not draw this chart, which is what the default does).
    fn overlaid_histogram_chart(
        &self,
        title: &str,
        x_label: &str,
        edges: &[f64],
        labels: &[String],
        reference: &[f64],
        current: &[f64],
    ) -> Result<Vec<u8>, PortError> {
        let _ = (x_label, edges, labels, reference, current);
        Err(PortError::new(
            crate::Code::Internal,
            format!("chart '{title}': this renderer draws no overlaid histograms"),
        ))
    }
}

/// One vertical axis of a [`ChartRenderer::parallel_coordinates_chart`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChartAxis {
    pub name: String,
    pub scale: AxisScale,
}

/// How an axis of a [`ChartRenderer::parallel_coordinates_chart`] places its values.
#[derive(Debug, Clone, PartialEq)]
pub enum AxisScale {
    Linear,
    /// positive values on a logarithmic scale (a `log: true` parameter); a value that is not positive is not drawn
    Log,
    /// the choices, bottom to top, as tick labels; a value is an index into them
    Categories(Vec<String>),
}

/// One parameter's panel of a [`ChartRenderer::slice_chart`]: its axis (named after the parameter) and its points,
/// `(value, objective, trial number)`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlicePanel {
    pub axis: ChartAxis,
    pub points: Vec<(f64, f64, f64)>,
}

/// One feature's row of a [`ChartRenderer::beeswarm_chart`]: for each data row its SHAP value and the feature's
/// value (the model's input, encoded), index by index.
#[derive(Debug, Clone, PartialEq)]
pub struct BeeswarmRow {
    pub feature: String,
    /// the feature's contribution to each row's output; a non-finite one is not drawn
    pub shap: Vec<f64>,
    /// the feature's value in the same rows; NaN (missing) is drawn grey
    pub values: Vec<f64>,
}

/// Rows a [`DataSource`] loaded, with what identifies them.
#[derive(Debug, Clone)]
pub struct LoadedData {
    pub frame: Frame,
    /// sha256 (lowercase hex) of the bytes the rows were read from, logged with a run (`kiln.data.sha256`) so that a
    /// model is reproduced from its config plus this fingerprint
    pub sha256: String,
    /// where the rows were actually read from, logged with a run (`kiln.data.path`): the file's path for a file
    pub origin: String,
}

/// Where training data comes from. Synchronous like the other ports: an adapter may block on disk or HTTP.
///
/// The first adapter is `kiln-data`'s `FileSource` (a CSV or Parquet file read with its options). The shape is
/// meant for the ones planned beside it: a Yahoo Finance chart-API source and a BigQuery REST source (their
/// [`describe`](DataSource::describe) a ticker and range or a query, their fingerprint that of the rows they
/// stored), and versioned snapshots (`data/raw/<source>/<key>/<timestamp>.parquet` plus a manifest: their `origin`
/// the snapshot file, their fingerprint the manifest's sha256, checked on load). Everything that varies between
/// them (connection settings, credentials, query, read options) lives in the adapter's constructor, never here.
pub trait DataSource {
    /// What this source reads, before reading it (for progress lines): a path, a ticker and range, a query.
    fn describe(&self) -> String;

    /// Reads the whole data set.
    ///
    /// # Errors
    /// [`SourceError`], displayed as the adapter's own error (a file's path, line and column at fault), with the
    /// adapter's code: `data_read` when the data cannot be reached or read, `data_parse`, `data_shape`,
    /// `missing_column` or `column_type` when its content is wrong.
    fn load(&self) -> Result<LoadedData, SourceError>;
}
