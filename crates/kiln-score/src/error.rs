//! The scoring error: the pipeline or the model failed on the rows, or the rows were too few; each with its code.

use kiln_domain::Code;
use kiln_features::FeatureError;
use kiln_models::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("features: {0}")]
    Features(#[from] FeatureError),
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// no row could be scored: the features need more history than the rows give
    #[error("not enough rows: {0}")]
    NotEnoughRows(String),
    /// `explain` for a model kind without native SHAP contributions (the message predates this crate)
    #[error("target: --explain needs a model with native SHAP contributions (lightgbm, xgboost); this one is {kind}")]
    NoContributions { kind: &'static str },
    /// what a multi-step (recursive) bundle cannot give or use
    #[error("a multi-step forecast cannot be scored with {0}")]
    MultiStep(&'static str),
    /// a second chunk for a bundle whose `known_in_advance` columns are read from the rows after each origin
    #[error(
        "this model takes known_in_advance columns from the rows after each origin, so it scores its input whole, \
         in one chunk; {0}"
    )]
    WholeInput(String),
    #[error("the bundle's model expects features {expected:?}, its pipeline makes {actual:?}")]
    FeatureMismatch { expected: Vec<String>, actual: Vec<String> },
}

impl ScoreError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            ScoreError::Features(e) => e.code(),
            ScoreError::Model(e) => e.code(),
            ScoreError::NotEnoughRows(_) => Code::NotEnoughRows,
            ScoreError::NoContributions { .. } | ScoreError::MultiStep(_) | ScoreError::WholeInput(_) => {
                Code::DataShape
            }
            ScoreError::FeatureMismatch { .. } => Code::BundleFormat,
        }
    }
}

impl kiln_domain::HasCode for ScoreError {
    fn code(&self) -> Code {
        ScoreError::code(self)
    }
}
