//! The crate's two error enums: [`ModelError`] for fitting and predicting, [`BundleError`] for the on-disk bundle.
//! Every variant maps to one stable [`Code`]; messages name the parameter, file or field at fault.

use std::path::PathBuf;

use kiln_domain::Code;

/// Fitting, predicting or loading a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// a hyperparameter is out of its range
    #[error("model.params.{param} = {value}: {rule}")]
    Params { param: &'static str, value: String, rule: String },
    /// the training data or the library refused to fit
    #[error("training failed: {0}")]
    Train(String),
    /// the input does not fit the model, or the library failed to predict
    #[error("prediction failed: {0}")]
    Predict(String),
    /// a saved model could not be read back
    #[error("model text is invalid: {0}")]
    Load(String),
    /// a per-series bundle has no model of this series (it had no training rows)
    #[error("series '{0}' has no model in this per-series bundle (model.per_series: one model per training series)")]
    UnknownSeries(String),
}

impl ModelError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            ModelError::Params { .. } => Code::ModelParams,
            ModelError::Train(_) => Code::ModelTrain,
            ModelError::Predict(_) => Code::ModelPredict,
            ModelError::UnknownSeries(_) => Code::DataShape,
            ModelError::Load(_) => Code::BundleFormat,
        }
    }
}

/// Writing, verifying or reading a model bundle failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// a file is missing, unlisted, or its sha256 does not match `kiln/metadata.json`
    #[error("bundle {}: file '{file}' {problem}", dir.display())]
    Checksum { dir: PathBuf, file: String, problem: String },
    /// a file is there but its content is not what a bundle holds
    #[error("bundle {}: {file}: {detail}", dir.display())]
    Format { dir: PathBuf, file: String, detail: String },
    /// the bundle folder does not exist
    #[error("bundle {}: no such folder", .0.display())]
    NotFound(PathBuf),
    /// the folder exists but holds no kiln bundle (no `kiln/metadata.json`): a wrong path, not a damaged bundle
    #[error("{}: not a kiln bundle (no kiln/metadata.json); pass a bundle folder, runs:/<run>/model or models:/<name>@<alias>", .0.display())]
    NotABundle(PathBuf),
    /// `write_bundle` refuses to replace a folder that has content
    #[error("bundle {}: the folder exists and is not empty; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    /// the file system failed
    #[error("bundle {}: {action} failed: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: std::io::Error },
    /// the model inside the bundle could not be serialized or loaded
    #[error("bundle {}: {source}", dir.display())]
    Model { dir: PathBuf, source: ModelError },
}

impl BundleError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            BundleError::Checksum { .. } => Code::BundleChecksum,
            BundleError::Format { .. } => Code::BundleFormat,
            BundleError::NotFound(_) => Code::NotFound,
            BundleError::NotABundle(_) => Code::ModelRefInvalid,
            BundleError::Exists(_) => Code::AlreadyExists,
            BundleError::Io { .. } => Code::StoreIo,
            BundleError::Model { source, .. } => match source {
                ModelError::Load(_) => Code::BundleFormat,
                other => other.code(),
            },
        }
    }
}

impl kiln_domain::HasCode for ModelError {
    fn code(&self) -> Code {
        ModelError::code(self)
    }
}

impl kiln_domain::HasCode for BundleError {
    fn code(&self) -> Code {
        BundleError::code(self)
    }
}
