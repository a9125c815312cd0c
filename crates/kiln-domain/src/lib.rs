//! kiln's core vocabulary: the columnar [`Frame`], the ML traits (fit -> fitted -> predict), the ports the outside
//! world implements (data sources, tracking, artifacts, registry), model references, and the table of stable error
//! codes.
//!
//! This crate does no I/O and knows no file format, HTTP or dataframe library; adapters live in `kiln-data` (data)
//! and `kiln-store` (tracking).

mod error;
mod frame;
mod ml;
mod model_ref;
mod ports;
mod random;
mod study;
mod time;

pub use error::{
    Code, DomainError, ErrorKind, HasCode, PortError, SourceError, chain_text, cut_for_message, percent_encode,
};
pub use frame::{Column, ColumnKind, Frame};
pub use ml::{Estimator, Matrix, Predictor};
pub use model_ref::{ModelRef, VersionSelector};
pub use ports::{
    ArtifactEntry, ArtifactStore, AxisScale, BeeswarmRow, CLASSIC_ML_KIND, ChartAxis, ChartRenderer,
    DATASET_CONTEXT_TAG, DataSource, DatasetInput, EXPERIMENT_KIND_TAG, ExperimentId, LoadedData, MetricPoint,
    ModelRegistry, ModelVersion, RunId, RunInfo, RunStatus, SlicePanel, Stage, Tracker,
};
pub use random::NumpyRandomState;
pub use study::{Enqueued, RELATIVE_PARAMS_KEY, StoredParam, StoredTrial, StudyDirection, StudyStorage, TrialState};
pub use time::{CivilDateTime, civil_from_millis, iso_from_millis, millis_from_civil, utc_datetime_text};

#[cfg(test)]
mod tests;
