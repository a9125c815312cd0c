//! Cross-validation folds: a [`Splitter`] says how rows are cut into folds and [`Splitter::split`] cuts them into
//! [`Fold`]s, (train, test) pairs of row indices, each splitter index for index the scikit-learn one it names.
//!
//! Key decision: one value for every way of folding, so the callers (the feature selectors' `rfecv` today, backtests
//! and tuning next) take a `Splitter` and never branch on the kind; the cutting itself is [`walk_forward`],
//! [`kfold`] and [`stratified_kfold`]. The variants are `#[non_exhaustive]`: they are built with the constructors,
//! so a new option (a sliding window, a purge, an embargo) is a new field with a default, not a breaking change.

use crate::{EvalError, WalkForward, kfold, stratified_kfold, walk_forward};

/// One cross-validation fold: row indices, disjoint, each in ascending order; the train rows are fitted on, the test
/// rows scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fold {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// How to cut rows into cross-validation folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Splitter {
    /// scikit-learn's `TimeSeriesSplit(n_splits=folds, test_size, gap, max_train_size)`: walk-forward folds over
    /// time-ordered rows, an expanding or (with `max_train_size`) sliding training window (see [`walk_forward`]); no
    /// test row comes before a train row
    #[non_exhaustive]
    TimeSeries {
        folds: usize,
        gap: usize,
        test_size: Option<usize>,
        max_train_size: Option<usize>,
        step: Option<usize>,
    },
    /// scikit-learn's `KFold(n_splits=folds)`, the rows shuffled first with kiln's generator when `shuffle_seed` is
    /// given (see [`kfold`])
    #[non_exhaustive]
    KFold { folds: usize, shuffle_seed: Option<u64>, purge: usize, embargo: usize },
    /// scikit-learn's `StratifiedKFold(n_splits=folds)`, each class's rows dealt to the folds in a random order when
    /// `shuffle_seed` is given (see [`stratified_kfold`])
    #[non_exhaustive]
    StratifiedKFold { folds: usize, shuffle_seed: Option<u64>, purge: usize, embargo: usize },
}

impl Splitter {
    /// `folds` expanding-window folds over time-ordered rows, `gap` rows dropped before each test block.
    pub fn time_series(folds: usize, gap: usize) -> Splitter {
        Splitter::TimeSeries { folds, gap, test_size: None, max_train_size: None, step: None }
    }

    /// A walk-forward splitter with all of scikit-learn's settings (see [`WalkForward`]).
    pub fn walk_forward(spec: WalkForward) -> Splitter {
        Splitter::TimeSeries {
            folds: spec.folds,
            gap: spec.gap,
            test_size: spec.test_size,
            max_train_size: spec.max_train_size,
            step: spec.step,
        }
    }

    /// `folds` consecutive test blocks, over the rows in order or shuffled with `shuffle_seed`.
    pub fn kfold(folds: usize, shuffle_seed: Option<u64>) -> Splitter {
        Splitter::KFold { folds, shuffle_seed, purge: 0, embargo: 0 }
    }

    /// `folds` test folds that keep each class's share, over the rows in order or shuffled with `shuffle_seed`.
    pub fn stratified_kfold(folds: usize, shuffle_seed: Option<u64>) -> Splitter {
        Splitter::StratifiedKFold { folds, shuffle_seed, purge: 0, embargo: 0 }
    }

    /// The k-fold splitter with `purge` training rows left out before every test row and `embargo` after it (the
    /// purged k-fold of López de Prado, for rows whose labels overlap in time); a walk-forward splitter is returned
    /// as it is (its `gap` is its purge, and no training row comes after its test block).
    #[must_use]
    pub fn with_purge(self, purge: usize, embargo: usize) -> Splitter {
        match self {
            Splitter::KFold { folds, shuffle_seed, .. } => Splitter::KFold { folds, shuffle_seed, purge, embargo },
            Splitter::StratifiedKFold { folds, shuffle_seed, .. } => {
                Splitter::StratifiedKFold { folds, shuffle_seed, purge, embargo }
            }
            other @ Splitter::TimeSeries { .. } => other,
        }
    }

    /// The number of folds asked for.
    pub fn folds(self) -> usize {
        match self {
            Splitter::TimeSeries { folds, .. }
            | Splitter::KFold { folds, .. }
            | Splitter::StratifiedKFold { folds, .. } => folds,
        }
    }

    /// The folds over the rows of `y`, in order (the values of `y` matter to the stratified splitter only).
    ///
    /// # Errors
    /// [`EvalError::InvalidSpec`] (`folds`) for fewer than 2 folds; [`EvalError::Folds`] when the rows cannot make
    /// the folds (more folds than rows; a time-series fold without a training row; no class as large as the number
    /// of folds); [`EvalError::Empty`] / [`EvalError::NonFinite`] for labels the stratified splitter cannot read.
    pub fn split(self, y: &[f64]) -> Result<Vec<Fold>, EvalError> {
        match self {
            Splitter::TimeSeries { folds, gap, test_size, max_train_size, step } => {
                Ok(walk_forward(y.len(), &WalkForward { folds, test_size, gap, max_train_size, step })?
                    .into_iter()
                    .map(|f| Fold { train: f.train.collect(), test: f.test.collect() })
                    .collect())
            }
            Splitter::KFold { folds, shuffle_seed, purge, embargo } => {
                Ok(purged(kfold(y.len(), folds, shuffle_seed)?, y.len(), purge, embargo))
            }
            Splitter::StratifiedKFold { folds, shuffle_seed, purge, embargo } => {
                Ok(purged(stratified_kfold(y, folds, shuffle_seed)?, y.len(), purge, embargo))
            }
        }
    }
}

/// The folds with every training row within `purge` rows before or `embargo` rows after one of the fold's test rows
/// left out of its training rows.
fn purged(folds: Vec<Fold>, n_rows: usize, purge: usize, embargo: usize) -> Vec<Fold> {
    if purge == 0 && embargo == 0 {
        return folds;
    }
    folds
        .into_iter()
        .map(|fold| {
            // +1 where an excluded stretch starts, -1 after it ends; the running sum marks the excluded rows
            let mut delta = vec![0i64; n_rows + 1];
            for &r in &fold.test {
                delta[r.saturating_sub(purge)] += 1;
                delta[(r + embargo + 1).min(n_rows)] -= 1;
            }
            let mut excluded = vec![false; n_rows];
            let mut running = 0;
            for (row, flag) in excluded.iter_mut().enumerate() {
                running += delta[row];
                *flag = running > 0;
            }
            Fold { train: fold.train.into_iter().filter(|&r| !excluded[r]).collect(), test: fold.test }
        })
        .collect()
}
