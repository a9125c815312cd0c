//! Features for kiln: owns the kernels, preprocessing, selection and the fitted pipeline a bundle stores; not the
//! models (selectors reach one through the `ImportanceModel` port), metrics (kiln-eval's) or any I/O.
//!
//! A declarative [`TimeSeriesRecipe`] (lags, differences, returns, rolling, expanding and exponentially weighted
//! statistics, calendar parts, a target transform) and the one code path that computes it, for a whole training table ([`TimeSeriesRecipe::build_table`]) and for the last row of a live
//! window ([`TimeSeriesRecipe::build_last_row`]), and for a long series chunk by chunk ([`FeatureStream`]); all
//! three agree bit for bit.
//!
//! Every kernel reads only rows `<= t` for the value at origin time `t`. Missing values are NaN and propagate the
//! way pandas does. This crate does no I/O and knows no dataframe library: it reads a [`kiln_domain::Frame`] and
//! writes a [`kiln_domain::Matrix`].
//!
//! Also the tabular preprocessing and the feature selection of the pipeline. Selection takes what evaluation owns
//! from `kiln-eval` instead of keeping copies: the cross-validation folds ([`kiln_eval::Splitter`]), the metric
//! vocabulary of `rfecv`'s `scoring:` ([`kiln_eval::Metric`]), the [`Task`] and numpy's pairwise sum.

mod error;
mod intervals;
mod kernels;
mod multistep;
mod pipeline;
mod preprocess;
mod select;
mod spec;
mod step;
mod stream;
mod table;

pub use error::FeatureError;
pub use intervals::{ConformalIntervals, IntervalSpec, quantile};
pub use multistep::{Origin, OriginStream, Origins};
pub use pipeline::{
    Decision, FittedPipeline, PipelineInput, PipelineStream, Prepared, StreamState, TabularInput, matrix_to_frame,
    model_column_name, model_matrix, select_columns,
};
pub use preprocess::{
    BinSpec, Columns, DropSpec, FillValue, FittedImpute, FittedOneHot, FittedOrdinal, FittedPreprocessor, FittedScale,
    FittedStep, ImputeSpec, ImputeStrategy, ImputedColumn, OneHotColumn, OneHotDrop, OneHotSpec, OneHotUnknown,
    OrdinalColumn, OrdinalSpec, OrdinalUnknown, PreprocessSpec, Preprocessor, ProductSpec, RatioSpec, ScaleMethod,
    ScaleSpec, ScaledColumn, frame_to_matrix,
};
pub use select::{
    CvKind, CvScore, FeatureScore, FittedSelection, ImportanceError, ImportanceModel, ImportanceThreshold, KBestScore,
    ScoredFit, Selector, SelectorSpec, Task, chi2, cv_folds, f_classif, f_regression, mutual_info_classif,
    mutual_info_regression,
};
pub use spec::{
    CalendarAt, CalendarPart, FeatureSpec, Lookback, MultiStep, RollingStat, Strategy, TargetTransform,
    TimeSeriesRecipe, WideInput,
};
pub use step::SeriesStep;
pub use stream::{FeatureChunk, FeatureStream};
pub use table::{FeatureRow, FeatureTable, PanelRows};

#[cfg(test)]
mod tests;
