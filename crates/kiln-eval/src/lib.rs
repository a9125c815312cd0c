//! Evaluation of fitted models; owns no model, feature or I/O code. Regression and binary classification metrics that
//! match scikit-learn, the one metric vocabulary ([`Metric`], what YAML names as a selector's scoring or an objective), time-ordered and stratified
//! splitters, cross-validation folds ([`Splitter`]), baselines, registration gates, comparison tables, and data
//! validation ([`validate`]: schema rules checked over a file's chunks).
//!
//! Key decision: everything here is a pure function over slices and small serde config structs; this crate reads
//! no files, logs nothing and knows no model library. Metrics sum with numpy's pairwise summation so that they
//! equal scikit-learn's values (in practice bit for bit) on the same vectors. `kiln-features` uses the folds, the
//! metrics and [`pairwise_sum`] from here rather than keeping copies.

mod classification;
pub mod drift;
mod error;
mod folds;
mod gates;
mod metric;
mod metrics;
mod report;
mod shuffled;
mod split;
mod trading;
pub mod validate;

pub use classification::{
    ClassificationMetricName, ClassificationMetrics, F1Threshold, MajorityClassBaseline, PrCurve, RocCurve,
    best_f1_threshold, precision_recall_curve, roc_curve,
};
pub use error::EvalError;
pub use folds::{Fold, Splitter};
pub use gates::{
    ClassificationGateSpec, GateCheck, GateReport, GateSpec, OVERFIT_WARNING_RATIO, OverfitReport, OverfitVerdict,
    check_classification_gates, check_gates, classification_overfit, overfit,
};
pub use metric::{Metric, Task};
pub use metrics::{MetricName, RegressionMetrics, pairwise_sum};
pub use report::{
    classification_comparison_table, classification_markdown_table, comparison_table, confusion_table, format_value,
    markdown_table,
};
pub use shuffled::{IndexHoldout, kfold, stratified_holdout, stratified_kfold};
pub use split::{Holdout, HoldoutSpec, Size, TimeFold, WalkForward, time_holdout, time_series_folds, walk_forward};
pub use trading::{Simulation, TradingMetrics, TradingSpec, periods_per_year, simulate};

#[cfg(test)]
mod tests;
