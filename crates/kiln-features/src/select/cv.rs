//! The cross-validation folds of `rfecv`: which of kiln-eval's splitters ([`kiln_eval::Splitter`]) a [`CvKind`] and
//! the task choose, index for index scikit-learn's: `TimeSeriesSplit` (expanding window, optional gap) for time
//! series, `KFold` (contiguous, unshuffled) for tabular regression and `StratifiedKFold` (unshuffled) for tabular
//! classification.
//!
//! Key decision: the folds are cut by kiln-eval and only named here; this module adds the choice and the selector's
//! own error messages. Time-ordered folds never train on a row at or after the start of their validation fold
//! (minus the gap); the folds only ever index the rows the caller passed, so selection sees the training part only.

use kiln_eval::{EvalError, Fold, Splitter};
use serde::{Deserialize, Serialize};

use super::Task;
use crate::FeatureError;

/// How `rfecv` splits the rows it is given into folds; chosen by the caller, not by the YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CvKind {
    /// scikit-learn's `TimeSeriesSplit(n_splits=k, gap=gap)`: `k` validation blocks of `n / (k + 1)` rows at the end
    /// of the data, each trained on every row before it minus the `gap` rows just before it (use the forecast
    /// horizon, so that no training label overlaps the validation period)
    TimeOrdered { gap: usize },
    /// contiguous folds without shuffling: scikit-learn's `KFold(k)` for regression and `StratifiedKFold(k)` for
    /// classification (what scikit-learn's `cv=k` means for a regressor and a classifier)
    KFold,
}

impl CvKind {
    /// The splitter of `k` folds this kind means for `task`.
    pub fn splitter(self, task: Task, k: usize) -> Splitter {
        match (self, task) {
            (CvKind::TimeOrdered { gap }, _) => Splitter::time_series(k, gap),
            (CvKind::KFold, Task::Regression) => Splitter::kfold(k, None),
            (CvKind::KFold, Task::Classification) => Splitter::stratified_kfold(k, None),
        }
    }
}

/// The `k` folds of `kind` over the rows of `y`; a fold's `test` rows are the ones `rfecv` validates on.
///
/// # Errors
/// [`FeatureError::Selection`] when `k < 2` or the rows cannot make `k` folds (fewer rows than folds, a time-ordered
/// fold without training rows, every class smaller than `k`).
pub fn cv_folds(kind: CvKind, task: Task, y: &[f64], k: usize) -> Result<Vec<Fold>, FeatureError> {
    folds_for(kind, task, y, k, "cv")
}

pub(crate) fn folds_for(kind: CvKind, task: Task, y: &[f64], k: usize, who: &str) -> Result<Vec<Fold>, FeatureError> {
    kind.splitter(task, k).split(y).map_err(|e| {
        let n = y.len();
        let reason = match e {
            EvalError::InvalidSpec { .. } => format!("needs at least 2 folds, got {k}"),
            _ if k > n => format!("cannot make {k} folds from {n} rows"),
            EvalError::Folds { .. } => match kind {
                CvKind::TimeOrdered { gap } => format!(
                    "cannot make {k} time-ordered folds with gap {gap} from {n} rows (the first fold would have no \
                     training rows)"
                ),
                CvKind::KFold => format!("every class of the target has fewer than {k} rows"),
            },
            other => other.to_string(),
        };
        FeatureError::Selection { step: who.to_string(), reason }
    })
}
