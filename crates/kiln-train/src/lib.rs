//! The training use cases: owns fit-and-evaluate (pure: design and split -> preprocessing and feature selection
//! fitted on the training rows -> fit -> evaluation beside a naive baseline) and `train` (that step + gates +
//! tracked run with the bundle + optional registration); does not own model kinds, file formats or stores. Talks to
//! the world only through the ports of `kiln-domain`; the CLI builds the adapters and injects them.
//!
//! A run that fails at any step is ended FAILED with the error recorded; a model is registered only after every
//! artifact is stored and every gate passed.

mod assess;
mod backtest;
mod backtest_run;
mod error;
mod evaluate;
mod fit;
mod interface;
mod model;
mod multistep;
mod panel;
mod prepare;
mod profile;
mod score;
mod train;
pub mod tune;

pub use assess::{AssessRows, Assessment, Comparison, Decision, assess, decide, default_compare_metric};
pub use backtest::{BacktestOutcome, BacktestSpec, FoldOutcome, FoldedRows, OutOfFold, backtest, fold_summary, trade};
pub use backtest_run::{
    BacktestRun, OofFile, OofWriter, TrackedBacktest, backtest_run, fold_rows, number, report, shown_metrics,
    trading_rows,
};
pub use error::TrainError;
pub use evaluate::{Evaluation, Gates};
pub use fit::{FitEvaluation, FitSpec, Progress, fit_evaluate};
pub use kiln_models::ModelSpec;
pub use multistep::{Coverage, StepMetrics};
pub use panel::{SeriesMetrics, relative as series_rmse_ratio, series_metrics_csv};
pub use prepare::{
    MissingFeatures, MissingPolicy, MissingTarget, Parts, RowCounts, ShortSeries, ShuffledSplit, TabularKind, TaskSpec,
    ThresholdRule,
};
pub use score::{Score, ScoreSpec, ScoreTerm, composite_score};
pub use train::{Champion, ChampionLoader, CvSpec, Ports, RegisterSpec, TrainOutcome, TrainSpec, train};
