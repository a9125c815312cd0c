//! [`Predictor`]: a loaded model that scores frames with `kiln predict`'s code path (`kiln_score::score`).

use std::fmt;

use kiln_data::ReadOptions;
use kiln_domain::{Column, ColumnKind, DomainError, Frame, ModelVersion};
use kiln_features::{FittedPipeline, PipelineInput};
use kiln_models::Bundle;
use kiln_score::RowKeys;

use crate::error::Result;
use crate::load::{LoadedBundle, load_bundle};
use crate::store::tracking_uri;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// a numeric series some steps ahead of each row's time
    Forecast,
    /// the probability of the positive class, and the class at the bundle's decision threshold
    Classification,
    /// a number per row
    Regression,
}

impl Task {
    /// `forecast`, `classification` or `regression` (as `kiln serve`'s `/model` says).
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Forecast => "forecast",
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The column beside a forecast's origin time that names the time the forecast is for.
pub const TARGET_TIME_COLUMN: &str = "target_time";

/// The predictions for one frame: the values `kiln predict` writes, row for row.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// each prediction's row: a forecast's origin time `t` (UTC milliseconds; the forecast is for `t + horizon`), or
    /// a tabular row's id (the id column's value, or the row number when the model has no id column)
    pub keys: RowKeys,
    /// forecast and regression: the prediction in the target's own units; classification: the probability of the
    /// positive class
    pub values: Vec<f64>,
    /// classification: the predicted class label at the bundle's decision threshold
    pub classes: Option<Vec<String>>,
    /// forecast: the time each prediction is for (its origin + horizon steps of the series, UTC ms); `None` for a
    /// tabular model and for forecast bundles written before kiln learned the series' step
    pub target_times: Option<Vec<i64>>,
    /// forecast: the first rows, whose features need more history than the frame had before them, get no
    /// prediction
    pub warmup_dropped: usize,
    /// a panel forecast: the series column and each prediction's series
    pub series: Option<(String, Vec<String>)>,
    /// a multi-step forecast: each prediction's step (1..=H); rows go origin by origin, steps in order
    pub steps: Option<Vec<u32>>,
    /// conformal prediction intervals: `lo_80`, `hi_80`, ... with a bound per prediction
    pub bounds: Option<Vec<(String, Vec<f64>)>>,
}

impl Predictions {
    /// How many rows were predicted.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether no row was predicted.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The name `kiln predict` gives [`Predictions::values`]: `probability` for a classifier, else `prediction`.
    pub fn value_name(&self) -> &'static str {
        if self.classes.is_some() { "probability" } else { "prediction" }
    }

    /// The columns `kiln predict` writes (without its `--with-features` and `--explain` extras): the time or id
    /// column, a forecast's [`TARGET_TIME_COLUMN`], `prediction` or `probability`, and a classifier's `class`. Write it with
    /// [`write_frame`](crate::write_frame).
    ///
    /// # Errors
    /// [`Error::Domain`](crate::Error::Domain) if the key column's name is `prediction`, `probability` or `class`.
    pub fn to_frame(&self) -> Result<Frame> {
        let mut columns = Vec::new();
        if let Some((column, keys)) = &self.series {
            columns.push((column.clone(), Column::Categorical(keys.iter().cloned().map(Some).collect())));
        }
        match &self.keys {
            RowKeys::Times { column, values } => columns.push((column.clone(), Column::Timestamp(values.clone()))),
            RowKeys::Ids { column, values } => {
                columns.push((column.clone(), Column::Categorical(values.iter().cloned().map(Some).collect())));
            }
        }
        if let Some(targets) = &self.target_times {
            columns.push((TARGET_TIME_COLUMN.to_string(), Column::Timestamp(targets.clone())));
        }
        if let Some(steps) = &self.steps {
            columns.push(("step".to_string(), Column::Numeric(steps.iter().map(|&s| f64::from(s)).collect())));
        }
        columns.push((self.value_name().to_string(), Column::Numeric(self.values.clone())));
        for (name, values) in self.bounds.iter().flatten() {
            columns.push((name.clone(), Column::Numeric(values.clone())));
        }
        if let Some(classes) = &self.classes {
            columns.push(("class".to_string(), Column::Categorical(classes.iter().cloned().map(Some).collect())));
        }
        Frame::new(columns).map_err(|e: DomainError| e.into())
    }
}

/// A loaded, verified model, ready to score frames. `Send + Sync`: share one behind an `Arc` across threads.
///
/// ```no_run
/// let predictor = kiln::Predictor::load("models:/churn@production")?;
/// let frame = kiln::read_frame(std::path::Path::new("customers.csv"), &predictor.read_options())?;
/// let predictions = predictor.predict(&frame)?;
/// println!("{} rows, version {:?}", predictions.len(), predictor.version().map(|v| v.version));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Predictor {
    reference: String,
    loaded: LoadedBundle,
}

impl Predictor {
    /// Loads the model `reference` points at (see [`load_bundle`] for the forms), resolving it in the tracking
    /// store `$MLFLOW_TRACKING_URI` names, else `./mlruns`.
    ///
    /// # Errors
    /// As [`load_bundle`]; every message names the reference.
    pub fn load(reference: &str) -> Result<Predictor> {
        Predictor::load_from(reference, &tracking_uri(None))
    }

    /// Loads the model `reference` points at, resolving it in the tracking store `tracking_uri` names (a folder or
    /// an `http(s)://` MLflow server).
    ///
    /// # Errors
    /// As [`load_bundle`]; every message names the reference.
    pub fn load_from(reference: &str, tracking_uri: &str) -> Result<Predictor> {
        Ok(Predictor { reference: reference.to_string(), loaded: load_bundle(reference, tracking_uri)? })
    }

    /// A predictor for a bundle loaded with [`load_bundle`].
    pub fn from_loaded(reference: &str, loaded: LoadedBundle) -> Predictor {
        Predictor { reference: reference.to_string(), loaded }
    }

    /// Scores every row of `frame` as `kiln predict` does (the same `kiln_score::score`, so the same values bit for
    /// bit). A forecast frame must be sorted by time (as [`read_frame`](crate::read_frame) returns it) and start
    /// with enough history for the features; its first rows are the warm-up.
    ///
    /// # Errors
    /// [`Error::Score`](crate::Error::Score): a missing or mistyped input column, too few rows for the features, a
    /// value the fitted preprocessing cannot take, or the model failing.
    pub fn predict(&self, frame: &Frame) -> Result<Predictions> {
        let scored = kiln_score::score(&self.loaded.bundle, frame, false)?;
        Ok(Predictions {
            keys: scored.keys,
            values: scored.predictions,
            classes: scored.classes,
            target_times: scored.target_times,
            warmup_dropped: scored.warmup_dropped,
            series: scored.series,
            steps: scored.steps,
            bounds: scored.bounds,
        })
    }

    /// The reference the model was loaded with, as given.
    pub fn reference(&self) -> &str {
        &self.reference
    }

    /// The reference with the training run, for messages: `models:/churn@production (run 3f2a...)`.
    pub fn label(&self) -> &str {
        &self.loaded.label
    }

    /// Exactly what was loaded (see [`LoadedBundle::source`]).
    pub fn source(&self) -> &str {
        &self.loaded.source
    }

    /// The registered version a `models:/` reference resolved to at load time; `None` for `runs:/` and folders.
    pub fn version(&self) -> Option<&ModelVersion> {
        self.loaded.version.as_ref()
    }

    /// What the model predicts.
    pub fn task(&self) -> Task {
        let pipeline = &self.loaded.bundle.pipeline;
        match (&pipeline.input, &pipeline.decision) {
            (PipelineInput::Forecast(_), _) => Task::Forecast,
            (PipelineInput::Tabular(_), Some(_)) => Task::Classification,
            (PipelineInput::Tabular(_), None) => Task::Regression,
        }
    }

    /// The raw columns the model reads (a forecast's time column and the series its features use; a tabular
    /// model's feature columns and id column). Other columns of a frame are ignored.
    pub fn input_columns(&self) -> Vec<String> {
        self.loaded.bundle.pipeline.input_columns()
    }

    /// How to read a data file for this model with [`read_frame`](crate::read_frame): see [`read_options`].
    pub fn read_options(&self) -> ReadOptions {
        read_options(&self.loaded.bundle.pipeline)
    }

    /// The verified bundle: fitted pipeline, model and metadata (metrics, params, run, kiln version).
    pub fn bundle(&self) -> &Bundle<FittedPipeline> {
        &self.loaded.bundle
    }

    /// The loaded bundle with its label, version and source.
    pub fn loaded(&self) -> &LoadedBundle {
        &self.loaded
    }

    /// Gives the loaded bundle back (to hand it to a server, say).
    pub fn into_loaded(self) -> LoadedBundle {
        self.loaded
    }
}

/// How `kiln predict` reads a file for a model: only the model's input columns, the time column parsed (and the rows
/// sorted by it) for a forecast, and each column with the type the fitted pipeline needs (an id column as text), so
/// a cell that does not fit is an error naming its line.
pub fn read_options(pipeline: &FittedPipeline) -> ReadOptions {
    let mut opts = ReadOptions {
        time_column: pipeline.recipe().map(|r| r.time_column.clone()),
        columns: Some(pipeline.input_columns()),
        // a long panel file is ordered series by series; a wide one is melted after reading
        series_column: pipeline.recipe().filter(|r| r.wide.is_none()).and_then(|r| r.series_column.clone()),
        time_format: pipeline.recipe().and_then(|r| r.time_format.clone()),
        ..ReadOptions::default()
    };
    if let Some(na) = pipeline.recipe().and_then(|r| r.na_values.clone()) {
        opts.na_values = na;
    }
    for (name, kind) in pipeline.input_kinds() {
        match kind {
            ColumnKind::Numeric => opts.numeric.push(name),
            ColumnKind::Categorical => opts.categorical.push(name),
            ColumnKind::Timestamp => {}
        }
    }
    // ids are labels, written back as they were read
    if let PipelineInput::Tabular(t) = &pipeline.input
        && let Some(id) = &t.id_column
    {
        opts.categorical.push(id.clone());
    }
    opts
}
