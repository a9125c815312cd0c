//! The served model: a verified bundle, who it is (reference, registered name, version, alias, run), and what is
//! derived from it once at load time: the input schema requests are checked against, the `/model` document and the
//! response headers. Nothing here changes after load; a new model is a new [`LoadedModel`] swapped in whole.

use std::collections::{BTreeMap, HashMap};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use kiln_domain::ColumnKind;
use kiln_features::{FittedPipeline, PipelineInput};
use kiln_models::Bundle;
use serde::Serialize;

use crate::time;

/// The header naming the registered version that answered (absent when the model is not a registered version).
pub const VERSION_HEADER: &str = "x-kiln-model-version";
/// The header naming the training run of the model that answered (absent when the bundle records none).
pub const RUN_HEADER: &str = "x-kiln-model-run";

/// Who the model is: the reference the server was started with and what it resolved to. Sent in the body of every
/// successful answer as `model`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelIdentity {
    /// as given, e.g. `models:/eurusd@production`, `runs:/<id>/model` or a folder
    pub reference: String,
    /// the registered model's name, for a `models:/` reference
    pub name: Option<String>,
    /// the registered version the reference resolved to
    pub version: Option<u64>,
    /// the alias the reference named
    pub alias: Option<String>,
    /// the training run, from the bundle's metadata
    pub run_id: Option<String>,
}

/// Why a bundle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the pipeline makes the features {pipeline:?}, but the model was trained on {model:?}")]
    FeatureMismatch { pipeline: Vec<String>, model: Vec<String> },
}

/// How the values of one record field are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// a JSON number; null is a missing value (NaN) only in a tabular record
    Numeric,
    /// a JSON string; null is a missing value
    Categorical,
    /// an ISO date or date-time string
    Timestamp,
    /// the tabular id column: a string or a number, optional; echoed back, never a feature
    Id,
    /// a column whose type no fitted step fixes (one that is only dropped): a number makes it numeric, a string
    /// categorical
    Any,
    /// a panel's series column: a string, or a number kept as its text (as a data file's numeric keys are)
    Series,
}

impl FieldKind {
    fn from_column(kind: ColumnKind) -> FieldKind {
        match kind {
            ColumnKind::Numeric => FieldKind::Numeric,
            ColumnKind::Categorical => FieldKind::Categorical,
            ColumnKind::Timestamp => FieldKind::Timestamp,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FieldKind::Numeric => "numeric",
            FieldKind::Categorical => "categorical",
            FieldKind::Timestamp => "timestamp",
            FieldKind::Id => "id",
            FieldKind::Any => "any",
            FieldKind::Series => "series",
        }
    }
}

/// One field of a record (tabular) or of a window row (forecast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) kind: FieldKind,
}

/// What a request must carry for this model.
#[derive(Debug, Clone)]
pub(crate) struct InputSchema {
    /// forecast: the fields of every window row; tabular: the fields of a record (the id first, when there is one)
    pub(crate) fields: Vec<Field>,
    index: HashMap<String, usize>,
    /// whether records are windows of rows (forecast) or single rows (tabular)
    pub(crate) windowed: bool,
    /// a forecast with `known_in_advance` columns: the target's field, which a window's future rows leave null
    pub(crate) future_target: Option<usize>,
}

impl InputSchema {
    pub(crate) fn new(fields: Vec<Field>, windowed: bool) -> InputSchema {
        let index = fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
        InputSchema { fields, index, windowed, future_target: None }
    }

    /// A forecast schema whose window rows may leave the target `target` null: the future rows after the origin,
    /// which carry the `known_in_advance` columns of the target times.
    pub(crate) fn with_future_rows(mut self, target: &str) -> InputSchema {
        self.future_target = self.position(target);
        self
    }

    /// Whether field `i` may be null: any field of a tabular record; in a window, only the target of a model with
    /// `known_in_advance` columns.
    pub(crate) fn nullable(&self, i: usize) -> bool {
        !self.windowed || self.future_target == Some(i)
    }

    /// The position of the field called `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Whether a field may be absent from a record (only the tabular id).
    pub(crate) fn optional(&self, i: usize) -> bool {
        self.fields[i].kind == FieldKind::Id
    }

    /// Whether a field may be absent from a row of an `/observe` body: the tabular id, and a panel's series column
    /// (the body's `series` key names the series).
    pub(crate) fn optional_in_observe(&self, i: usize) -> bool {
        self.optional(i) || self.fields[i].kind == FieldKind::Series
    }
}

#[derive(Debug, Serialize)]
struct SchemaField {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    required: bool,
    nullable: bool,
}

#[derive(Debug, Serialize)]
struct ForecastInfo {
    time_column: String,
    horizon: usize,
    target_transform: &'static str,
    /// the fewest rows a window may have
    min_window_rows: usize,
    /// an expanding or EWM feature depends on every earlier row: a window equals `kiln predict` only when it
    /// starts at the first row of the series the model was trained on
    window_needs_full_history: bool,
    /// a panel: the column naming each row's series (every row of a window names the same one)
    #[serde(skip_serializing_if = "Option::is_none")]
    series_column: Option<String>,
    /// a bundle trained on a wide file (one column per series): it is served as its long panel, rows of
    /// `series_column` and the target; these are the series the wide file had
    #[serde(skip_serializing_if = "Option::is_none")]
    wide_columns: Option<Vec<String>>,
    /// a multi-step forecast: every answer carries `steps`, one forecast per step `1..=steps`
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_step: Option<MultiStepInfo>,
    /// conformal prediction intervals around every step's forecast
    #[serde(skip_serializing_if = "Option::is_none")]
    intervals: Option<IntervalsInfo>,
}

#[derive(Debug, Serialize)]
struct MultiStepInfo {
    steps: usize,
    strategy: &'static str,
    /// how a step's target time advances (`1d`, `business day`, ...)
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<String>,
}

#[derive(Debug, Serialize)]
struct IntervalsInfo {
    /// coverage levels in percent, ascending
    levels: Vec<f64>,
    /// the fields of each step's bounds: `lo_80`, `hi_80`, ...
    bounds: Vec<String>,
    /// calibration windows per series
    windows: usize,
    /// a panel: the series the calibration saw; any other series gets null bounds
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<Vec<String>>,
    unseen_series: &'static str,
}

#[derive(Debug, Serialize)]
struct DecisionInfo {
    positive: String,
    negative: String,
    threshold: f64,
}

/// The `/model` document, built once at load.
#[derive(Debug, Serialize)]
pub(crate) struct ModelInfo {
    model: ModelIdentity,
    model_kind: &'static str,
    task: &'static str,
    target: String,
    /// held-out test metrics from the bundle (null where a metric is undefined)
    metrics: BTreeMap<String, Option<f64>>,
    /// `window` (forecast: `{"window": [row, ...]}`) or `record` (tabular: one object of fields)
    input_format: &'static str,
    input_schema: Vec<SchemaField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast: Option<ForecastInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decision: Option<DecisionInfo>,
    features: Vec<String>,
    kiln_version: String,
    created: String,
}

/// A model ready to answer requests.
#[derive(Debug)]
pub struct LoadedModel {
    /// unique in the process: tells the series kept by `/observe` which model their state was built with
    serial: u64,
    identity: ModelIdentity,
    bundle: Bundle<FittedPipeline>,
    /// the pipeline requests run through: the bundle's, with a wide recipe served as its long panel
    pipeline: FittedPipeline,
    pub(crate) schema: InputSchema,
    pub(crate) info: ModelInfo,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// when it was loaded and what it predicted, for `/metrics`
    pub(crate) stats: crate::metrics::ModelStats,
    /// live drift's window, while this model is the primary variant's and its bundle has a profile
    pub(crate) drift: std::sync::OnceLock<std::sync::Arc<crate::drift::DriftWindow>>,
    /// the schema field of each model input, when a record's numeric fields are the model's inputs as they are
    /// ([`FittedPipeline::passthrough_columns`]): records go straight to a row, with no frame
    direct: Option<Vec<usize>>,
}

impl LoadedModel {
    /// Checks that the bundle's pipeline and model agree and derives the input schema.
    ///
    /// # Errors
    /// [`LoadError`] when the pipeline's features are not the model's.
    pub fn new(bundle: Bundle<FittedPipeline>, identity: ModelIdentity) -> Result<LoadedModel, LoadError> {
        let pipeline = &bundle.pipeline;
        if pipeline.feature_names != bundle.metadata.feature_names
            || pipeline.feature_names != bundle.model.feature_names()
        {
            return Err(LoadError::FeatureMismatch {
                pipeline: pipeline.feature_names.clone(),
                model: bundle.model.feature_names().to_vec(),
            });
        }
        let served = served_pipeline(pipeline);
        let schema = match &served.input {
            PipelineInput::Forecast(_) => {
                // the served pipeline's own input kinds; a forecast's one categorical input is its series column
                let fields = served
                    .input_kinds()
                    .into_iter()
                    .map(|(name, kind)| {
                        let kind = match kind {
                            ColumnKind::Categorical => FieldKind::Series,
                            other => FieldKind::from_column(other),
                        };
                        Field { name, kind }
                    })
                    .collect();
                let schema = InputSchema::new(fields, true);
                match pipeline.recipe() {
                    Some(recipe) if recipe.ahead_rows() > 0 => schema.with_future_rows(&recipe.target),
                    _ => schema,
                }
            }
            PipelineInput::Tabular(t) => {
                // the types the fitted steps fix; a column that is only dropped takes any value
                let kinds = pipeline.input_kinds();
                let kind_of = |name: &str| kinds.iter().find(|(n, _)| n == name).map(|(_, k)| *k);
                let id = t.id_column.iter().map(|name| Field { name: name.clone(), kind: FieldKind::Id });
                let columns = t.columns.iter().map(|name| Field {
                    name: name.clone(),
                    kind: kind_of(name).map_or(FieldKind::Any, FieldKind::from_column),
                });
                InputSchema::new(id.chain(columns).collect(), false)
            }
        };
        let info = model_info(&bundle, &identity, &schema);
        let mut headers = Vec::new();
        if let Some(v) = identity.version {
            headers.push((HeaderName::from_static(VERSION_HEADER), HeaderValue::from(v)));
        }
        // a run id that is not a visible ASCII string cannot be a header; the body still carries it
        if let Some(v) = identity.run_id.as_deref().and_then(|r| HeaderValue::from_str(r).ok()) {
            headers.push((HeaderName::from_static(RUN_HEADER), v));
        }
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stats = crate::metrics::ModelStats::new(&bundle);
        let direct = pipeline.passthrough_columns().and_then(|columns| {
            columns
                .iter()
                .map(|c| schema.position(c).filter(|&i| schema.fields[i].kind == FieldKind::Numeric))
                .collect::<Option<Vec<usize>>>()
        });
        Ok(LoadedModel {
            serial,
            identity,
            bundle,
            pipeline: served,
            schema,
            info,
            headers,
            stats,
            drift: std::sync::OnceLock::new(),
            direct,
        })
    }

    /// The schema field of each model input, when records go straight to rows (see the field's doc).
    pub(crate) fn direct(&self) -> Option<&[usize]> {
        self.direct.as_deref()
    }

    /// Whether a record's values become the model's row directly, with no frame and no feature step in between.
    pub fn takes_records_directly(&self) -> bool {
        self.direct.is_some()
    }

    /// The pipeline requests run through (see [`served_pipeline`]).
    pub(crate) fn pipeline(&self) -> &FittedPipeline {
        &self.pipeline
    }

    pub(crate) fn serial(&self) -> u64 {
        self.serial
    }

    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    pub fn bundle(&self) -> &Bundle<FittedPipeline> {
        &self.bundle
    }

    /// `forecast`, `classification` or `regression`.
    pub fn task(&self) -> &'static str {
        task_of(&self.bundle.pipeline)
    }

    /// Adds the model's identity headers to a response.
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The bundle's pipeline as requests meet it: a recipe trained on a wide file (one column per series) reads the long
/// panel the file was melted into (rows of the time, the series column and the target), because a window or a series
/// kept by `/observe` is one series; the features and the fitted steps are the same.
fn served_pipeline(pipeline: &FittedPipeline) -> FittedPipeline {
    let mut served = pipeline.clone();
    if let PipelineInput::Forecast(recipe) = &mut served.input {
        recipe.wide = None;
    }
    served
}

fn task_of(pipeline: &FittedPipeline) -> &'static str {
    match (&pipeline.input, &pipeline.decision) {
        (PipelineInput::Forecast(_), _) => "forecast",
        (PipelineInput::Tabular(_), Some(_)) => "classification",
        (PipelineInput::Tabular(_), None) => "regression",
    }
}

fn model_info(bundle: &Bundle<FittedPipeline>, identity: &ModelIdentity, schema: &InputSchema) -> ModelInfo {
    let pipeline = &bundle.pipeline;
    let meta = &bundle.metadata;
    let input_schema = schema
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| SchemaField {
            name: f.name.clone(),
            kind: f.kind.as_str(),
            required: f.kind != FieldKind::Id,
            nullable: schema.nullable(i),
        })
        .collect();
    let forecast = pipeline.recipe().map(|r| ForecastInfo {
        time_column: r.time_column.clone(),
        horizon: r.horizon,
        target_transform: r.target_transform.as_str(),
        min_window_rows: r.min_window_rows(),
        window_needs_full_history: r.lookback() == kiln_features::Lookback::All,
        series_column: r.series_column.clone(),
        wide_columns: r.wide.as_ref().map(|w| w.columns.clone()),
        multi_step: r.multi_step.map(|m| MultiStepInfo {
            steps: m.steps,
            strategy: m.strategy.as_str(),
            step: pipeline.step.map(kiln_features::SeriesStep::describe),
        }),
        intervals: pipeline.intervals.as_ref().filter(|_| r.multi_step.is_some()).map(|ci| IntervalsInfo {
            levels: ci.levels.clone(),
            bounds: ci.column_names(),
            windows: ci.windows,
            series: r.series_column.as_ref().map(|_| ci.scores.keys().cloned().collect()),
            unseen_series: "a series the calibration did not see gets null bounds",
        }),
    });
    let decision = pipeline.decision.as_ref().map(|d| DecisionInfo {
        positive: d.positive.clone(),
        negative: d.negative_label(),
        threshold: d.threshold,
    });
    ModelInfo {
        model: identity.clone(),
        model_kind: bundle.model.kind().as_str(),
        task: task_of(pipeline),
        target: meta.target.clone(),
        metrics: meta.metrics.iter().map(|(k, v)| (k.clone(), v.is_finite().then_some(*v))).collect(),
        input_format: if schema.windowed { "window" } else { "record" },
        input_schema,
        forecast,
        decision,
        features: pipeline.feature_names.clone(),
        kiln_version: meta.kiln_version.clone(),
        created: time::format_iso(meta.created_ms),
    }
}
