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
pub struct Experiment {
    /// short name of the experiment; also the default MLflow experiment name
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub data: DataSettings,
    pub task: TaskSettings,
    pub features: Vec<FeatureSpec>,
    pub split: HoldoutSpec,
    pub model: ModelSettings,
    #[serde(default)]
    pub gates: GateSpec,
    #[serde(default)]
    pub tracking: TrackingSettings,
    #[serde(default)]
    pub registry: Option<RegistrySettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    /// CSV or Parquet file, relative to the working directory
    pub path: PathBuf,
    /// the column holding the time of each row
    pub time_column: String,
    /// strftime-like format of the time column (%Y %m %d %H %M %S); detected when absent
    #[serde(default)]
    pub time_format: Option<String>,
    /// cell texts read as missing values
    #[serde(default)]
    pub na_values: Option<Vec<String>>,
    /// keep only these columns (the time column and the target are always kept)
    #[serde(default)]
    pub columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// predict a numeric series `horizon` steps ahead
    Forecast,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSettings {
    pub kind: TaskKind,
    pub target: String,
    #[serde(default = "one")]
    pub horizon: usize,
    #[serde(default = "no_transform")]
    pub target_transform: TargetTransform,
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
pub enum ModelSettings {
    Lightgbm(LightGbmParams),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSettings {
    /// a folder (the embedded MLflow-layout store) — `./mlruns` by default
    #[serde(default = "default_uri")]
    pub uri: String,
    /// MLflow experiment name; the experiment's `name` when absent
    #[serde(default)]
    pub experiment: Option<String>,
    /// run name; `<name>-<model kind>` when absent
    #[serde(default)]
    pub run_name: Option<String>,
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
pub struct RegistrySettings {
    /// registered model name
    pub model_name: String,
    /// alias moved to the new version when every gate passes
    #[serde(default = "production")]
    pub alias: String,
}

fn production() -> String {
    "production".to_string()
}
