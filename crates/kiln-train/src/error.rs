//! The train use case's error: every failure of a step, with the code of its source.

use kiln_domain::{Code, PortError};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("features: {0}")]
    Features(#[from] kiln_features::FeatureError),
    /// a step failed on one row, named by its place in the data file
    #[error(
        "features: {error}; that row is data row {data_row}{} (counted from 1 after the header)",
        if *time_ordered { " in time order" } else { "" }
    )]
    AtDataRow { data_row: usize, time_ordered: bool, error: kiln_features::FeatureError },
    #[error("evaluation: {0}")]
    Eval(#[from] kiln_eval::EvalError),
    #[error("model: {0}")]
    Model(#[from] kiln_models::ModelError),
    #[error("bundle: {0}")]
    Bundle(#[from] kiln_models::BundleError),
    #[error("tracking store: {0}")]
    Port(#[from] PortError),
    #[error("registry: {0}")]
    Registry(#[from] kiln_registry::RegistryError),
    #[error("{0}")]
    Domain(#[from] kiln_domain::DomainError),
    /// the target or the task does not fit the data or the model
    #[error("target: {0}")]
    Target(String),
    #[error("not enough rows: {0}")]
    NotEnoughRows(String),
    /// one fold of a backtest failed
    #[error("fold {fold}: {error}")]
    Fold { fold: usize, error: Box<TrainError> },
    /// missing values the `data.missing_*` rules refuse, or too many rows dropped for them
    #[error("missing values: {0}")]
    MissingValues(String),
    #[error("cannot write a temporary bundle: {0}")]
    Temp(std::io::Error),
    #[error("tune: {0}")]
    Tune(#[from] crate::tune::TuneError),
    #[error("scoring: {0}")]
    Score(#[from] kiln_score::ScoreError),
    /// the alias's current holder could not be loaded to compare the new model with
    #[error("the version holding the alias: {message}")]
    Champion { message: String, code: Code },
}

impl TrainError {
    pub fn code(&self) -> Code {
        match self {
            TrainError::Features(e) | TrainError::AtDataRow { error: e, .. } => e.code(),
            TrainError::Eval(e) => e.code(),
            TrainError::Model(e) => e.code(),
            TrainError::Bundle(e) => e.code(),
            TrainError::Port(e) => e.code,
            TrainError::Registry(e) => e.code(),
            TrainError::Domain(e) => e.code(),
            TrainError::NotEnoughRows(_) => Code::NotEnoughRows,
            TrainError::Target(_) | TrainError::MissingValues(_) => Code::DataShape,
            TrainError::Temp(_) => Code::StoreIo,
            TrainError::Fold { error, .. } => error.code(),
            TrainError::Tune(e) => e.code(),
            TrainError::Score(e) => e.code(),
            TrainError::Champion { code, .. } => *code,
        }
    }
}

impl kiln_domain::HasCode for TrainError {
    fn code(&self) -> Code {
        TrainError::code(self)
    }
}
