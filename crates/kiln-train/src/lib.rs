//! The train and score use cases: features -> time-ordered split -> fit -> evaluate against the persistence
//! baseline -> gates -> tracked run with the bundle -> optional registration. Talks to the world only through the
//! ports of `kiln-domain`; the CLI builds the adapters and injects them.
//!
//! A run that fails at any step is ended FAILED with the error recorded; a model is registered only after every
//! artifact is stored and every gate passed.

mod error;
mod score;
mod train;

pub use error::TrainError;
pub use score::{Scored, score};
pub use train::{
    Evaluation, Ports, Progress, RegisterSpec, RowCounts, TrainOutcome, TrainSpec, TrainedModelSpec, train,
};
