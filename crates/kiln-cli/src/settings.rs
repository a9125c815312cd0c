//! The typed experiment settings: one tree, read from the merged YAML. Unknown keys are refused everywhere
//! (`deny_unknown_fields`), enums stand where a string would allow typos, and every library crate receives its part
//! as a plain struct.

use std::path::PathBuf;

use kiln_eval::{GateSpec, HoldoutSpec};
use kiln_features::{FeatureSpec, TargetTransform};
use kiln_models::LightGbmParams;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Experiment {
    /// short name of the experiment; also the default MLflow experiment name
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    pub(crate) data: DataSettings,
    pub(crate) task: TaskSettings,
    pub(crate) features: Vec<FeatureSpec>,
    pub(crate) split: HoldoutSpec,
    pub(crate) model: ModelSettings,
    #[serde(default)]
    pub(crate) gates: GateSpec,
    #[serde(default)]
    pub(crate) tracking: TrackingSettings,
    #[serde(default)]
    pub(crate) registry: Option<RegistrySettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DataSettings {
    /// CSV or Parquet file, relative to the working directory
    pub(crate) path: PathBuf,
    /// the column holding the time of each row
    pub(crate) time_column: String,
    /// strftime-like format of the time column (%Y %m %d %H %M %S); detected when absent
    #[serde(default)]
    pub(crate) time_format: Option<String>,
    /// cell texts read as missing values
    #[serde(default)]
    pub(crate) na_values: Option<Vec<String>>,
    /// keep only these columns (the time column and the target are always kept)
    #[serde(default)]
    pub(crate) columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum TaskKind {
    /// predict a numeric series `horizon` steps ahead
    Forecast,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TaskSettings {
    pub(crate) kind: TaskKind,
    pub(crate) target: String,
    #[serde(default = "one")]
    pub(crate) horizon: usize,
    #[serde(default = "no_transform")]
    pub(crate) target_transform: TargetTransform,
}

fn one() -> usize {
    1
}

fn no_transform() -> TargetTransform {
    TargetTransform::None
}

/// The model and its hyperparameters; the `kind` picks the family.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ModelSettings {
    Lightgbm(LightGbmParams),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrackingSettings {
    /// a folder (the embedded MLflow-layout store) — `./mlruns` by default
    #[serde(default = "default_uri")]
    pub(crate) uri: String,
    /// MLflow experiment name; the experiment's `name` when absent
    #[serde(default)]
    pub(crate) experiment: Option<String>,
    /// run name; `<name>-<model kind>` when absent
    #[serde(default)]
    pub(crate) run_name: Option<String>,
}

impl Default for TrackingSettings {
    fn default() -> Self {
        TrackingSettings { uri: default_uri(), experiment: None, run_name: None }
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
    /// alias moved to the new version when every gate passes
    #[serde(default = "production")]
    pub(crate) alias: String,
}

fn production() -> String {
    "production".to_string()
}
