//! The cross-validation folds of `rfecv`, index for index those of scikit-learn's splitters: `TimeSeriesSplit`
//! (expanding window, optional gap) for time series, `KFold` (contiguous, unshuffled) for tabular regression and
//! `StratifiedKFold` (unshuffled) for tabular classification.
//!
//! Key decision: time-ordered folds never train on a row at or after the start of their validation fold (minus the
//! gap); the folds only ever index the rows the caller passed, so selection sees the training part only.

use serde::{Deserialize, Serialize};

use super::Task;
use super::stats::classes;
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

/// One train/validation split, as row indices into the rows given (ascending).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// the rows the model is fitted on
    pub train: Vec<usize>,
    /// the rows it is scored on
    pub valid: Vec<usize>,
}

/// The `k` folds of `kind` over the rows of `y`.
///
/// # Errors
/// [`FeatureError::Selection`] when `k < 2` or the rows cannot make `k` folds (fewer rows than folds, a time-ordered
/// fold without training rows, every class smaller than `k`).
pub fn cv_folds(kind: CvKind, task: Task, y: &[f64], k: usize) -> Result<Vec<Fold>, FeatureError> {
    folds_for(kind, task, y, k, "cv")
}

pub(crate) fn folds_for(kind: CvKind, task: Task, y: &[f64], k: usize, who: &str) -> Result<Vec<Fold>, FeatureError> {
    let n = y.len();
    let fail = |reason: String| Err(FeatureError::Selection { step: who.to_string(), reason });
    if k < 2 {
        return fail(format!("needs at least 2 folds, got {k}"));
    }
    if k > n {
        return fail(format!("cannot make {k} folds from {n} rows"));
    }
    match (kind, task) {
        (CvKind::TimeOrdered { gap }, _) => {
            let test_size = n / (k + 1);
            if test_size == 0 || n <= gap + test_size * k {
                return fail(format!(
                    "cannot make {k} time-ordered folds with gap {gap} from {n} rows (the first fold would have no \
                     training rows)"
                ));
            }
            let first = n - k * test_size;
            Ok((0..k)
                .map(|f| {
                    let start = first + f * test_size;
                    Fold { train: (0..start - gap).collect(), valid: (start..start + test_size).collect() }
                })
                .collect())
        }
        (CvKind::KFold, Task::Regression) => {
            let mut folds = Vec::with_capacity(k);
            let mut start = 0;
            for f in 0..k {
                let size = n / k + usize::from(f < n % k);
                let valid: Vec<usize> = (start..start + size).collect();
                let train = (0..start).chain(start + size..n).collect();
                folds.push(Fold { train, valid });
                start += size;
            }
            Ok(folds)
        }
        (CvKind::KFold, Task::Classification) => {
            let Some(test_fold) = stratified_test_folds(y, k) else {
                return fail(format!("every class of the target has fewer than {k} rows"));
            };
            Ok((0..k)
                .map(|f| Fold {
                    train: (0..n).filter(|&i| test_fold[i] != f).collect(),
                    valid: (0..n).filter(|&i| test_fold[i] == f).collect(),
                })
                .collect())
        }
    }
}

/// The validation fold of each row under scikit-learn's `StratifiedKFold(k, shuffle=False)`; `None` when every
/// class is smaller than `k` (scikit-learn refuses that too).
fn stratified_test_folds(y: &[f64], k: usize) -> Option<Vec<usize>> {
    let (values, sorted_index) = classes(y);
    // classes are numbered by first appearance, as scikit-learn re-encodes them
    let mut encode = vec![usize::MAX; values.len()];
    let mut next = 0;
    for &c in &sorted_index {
        if encode[c] == usize::MAX {
            encode[c] = next;
            next += 1;
        }
    }
    let encoded: Vec<usize> = sorted_index.iter().map(|&c| encode[c]).collect();
    let n_classes = values.len();
    let mut counts = vec![0usize; n_classes];
    for &c in &encoded {
        counts[c] += 1;
    }
    if counts.iter().all(|&c| c < k) {
        return None;
    }
    // allocation[f][c]: how many rows of class c fold f validates, dealing the class-sorted rows round robin
    let mut y_order = encoded.clone();
    y_order.sort_unstable();
    let mut allocation = vec![vec![0usize; n_classes]; k];
    for (pos, &c) in y_order.iter().enumerate() {
        allocation[pos % k][c] += 1;
    }
    let mut test_fold = vec![0usize; y.len()];
    for (c, _) in counts.iter().enumerate() {
        let folds_for_class = (0..k).flat_map(|f| std::iter::repeat_n(f, allocation[f][c]));
        let rows = (0..y.len()).filter(|&i| encoded[i] == c);
        for (i, f) in rows.zip(folds_for_class) {
            test_fold[i] = f;
        }
    }
    Some(test_fold)
}
