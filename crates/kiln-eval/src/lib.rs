//! Evaluation of fitted models: regression metrics that match scikit-learn, a time-ordered holdout splitter,
//! registration gates and comparison tables.
//!
//! Key decision: everything here is a pure function over slices and small serde config structs; this crate reads
//! no files, logs nothing and knows no model library. Metrics sum with numpy's pairwise summation so that they
//! equal scikit-learn's values (in practice bit for bit) on the same vectors.

mod error;
mod gates;
mod metrics;
mod report;
mod split;

pub use error::EvalError;
pub use gates::{
    GateCheck, GateReport, GateSpec, OVERFIT_WARNING_RATIO, OverfitReport, OverfitVerdict, check_gates, overfit,
};
pub use metrics::{MetricName, RegressionMetrics, pairwise_sum};
pub use report::{comparison_table, format_value, markdown_table};
pub use split::{Holdout, HoldoutSpec, Size, time_holdout};

#[cfg(test)]
mod tests;
