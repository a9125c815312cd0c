//! The train use case (scoring a bundle is `kiln-score`'s): raw rows -> design and split -> preprocessing and feature selection fitted on the
//! training rows -> fit -> evaluate against a naive baseline -> gates -> tracked run with the bundle -> optional
//! registration. Talks to the world only through the ports of `kiln-domain`; the CLI builds the adapters and
//! injects them.
//!
//! A run that fails at any step is ended FAILED with the error recorded; a model is registered only after every
//! artifact is stored and every gate passed.

mod error;
mod evaluate;
mod model;
mod prepare;
mod train;

pub use error::TrainError;
pub use evaluate::{Evaluation, Gates};
pub use model::ModelSpec;
pub use prepare::{Parts, RowCounts, ShuffledSplit, TabularKind, TaskSpec, ThresholdRule};
pub use train::{Ports, Progress, RegisterSpec, TrainOutcome, TrainSpec, train};
