//! The crate's typed error: every variant names the recipe field, feature or column at fault and maps to one
//! stable [`Code`].

use kiln_domain::Code;

use crate::ImportanceError;

/// What can go wrong when a recipe is checked or features are built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FeatureError {
    /// the recipe itself is wrong; `path` is the key path, e.g. `features[2].rolling.windows`
    #[error("{path}: {reason}")]
    Spec { path: String, reason: String },
    /// the data lacks a column the recipe needs; `needed_by` names who needs it (`target`, `feature 'lag'`, ...)
    #[error("{needed_by} needs column '{column}', which is not in the data")]
    MissingColumn { needed_by: String, column: String },
    /// a column the recipe needs has the wrong type
    #[error("{needed_by} needs column '{column}' to be {expected}, but it is {actual}")]
    ColumnType { needed_by: String, column: String, expected: &'static str, actual: &'static str },
    /// too few rows to compute anything (a table with no row past the warm-up, a serving window too short)
    #[error("{what} needs at least {needed} rows, got {given}")]
    NotEnoughRows { what: String, needed: usize, given: usize },
    /// the time column is not strictly increasing
    #[error(
        "time column '{column}' must be strictly increasing, but row {} ({}) does not come after {} ({})",
        row + 1,
        kiln_domain::iso_from_millis(*next),
        prev_row.map_or("the last time already observed".to_string(), |p| format!("row {}", p + 1)),
        kiln_domain::iso_from_millis(*prev)
    )]
    NotSorted { column: String, prev_row: Option<usize>, row: usize, prev: i64, next: i64 },
    /// a panel's series has two rows at one time
    #[error(
        "series '{series}' (column '{series_column}') has two rows at {} (time column '{column}'); a series may \
         have one row per time",
        kiln_domain::iso_from_millis(*time)
    )]
    DuplicateSeriesTime { series_column: String, series: String, column: String, time: i64 },
    /// a panel row without a series key
    #[error("series column '{column}' is missing in row {} of the data; every row of a panel must name its series", row + 1)]
    MissingSeriesKey { column: String, row: usize },
    /// a window for one forecast holds rows of several series
    #[error("a window for one forecast must hold one series, but series column '{column}' has '{first}' and '{other}'")]
    MixedSeries { column: String, first: String, other: String },
    /// a preprocessing step cannot learn its state from a column of the training rows (no non-missing value, an
    /// infinite value); `step` is the key path of the step, e.g. `preprocess[1].scale`
    #[error(
        "{step}: cannot fit column '{column}': {reason}{}",
        row.map_or(String::new(), |r| format!(" (row {} of the rows it is fitted on, counted from 1)", r + 1))
    )]
    Fit { step: String, column: String, reason: String, row: Option<usize> },
    /// an encoder met a category its training rows did not have, and its `unknown` policy is `error`
    #[error(
        "{step}: column '{column}' holds {} at row {}, which the training rows did not have (set `unknown: {accept}` to accept it)",
        show_category(category.as_deref()),
        row + 1
    )]
    UnknownCategory { step: String, column: String, category: Option<String>, row: usize, accept: &'static str },
    /// a column that is not numeric reached the model matrix
    #[error(
        "column '{column}' is {actual}, but the model matrix takes only numeric columns: encode it with a `one_hot` or `ordinal` preprocessing step, or drop it"
    )]
    NotNumeric { column: String, actual: &'static str },
    /// a feature-selection step cannot run on the rows and columns it was given (too few features for `k`, a target
    /// with one class, no feature left); `step` is the key path, e.g. `selection[1].k_best.k`
    #[error("{step}: {reason}")]
    Selection { step: String, reason: String },
    /// a value is outside what a computation accepts (a NaN for a score, a negative value for `chi2`)
    #[error("{needed_by} needs column '{column}' to be {expected}, but row {} holds {value}", row + 1)]
    InvalidValue { needed_by: String, column: String, row: usize, value: f64, expected: &'static str },
    /// the model behind a model-based selection step failed, or returned unusable importances or scores; the
    /// cause keeps its own code (its message is part of this one, so it is not repeated as a source)
    #[error("{step}: the model failed: {cause}")]
    Model { step: String, cause: ImportanceError },
}

fn show_category(category: Option<&str>) -> String {
    match category {
        Some(c) => format!("the category '{c}'"),
        None => "a missing value".to_string(),
    }
}

impl FeatureError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            FeatureError::Spec { .. } => Code::FeatureSpec,
            FeatureError::MissingColumn { .. } => Code::MissingColumn,
            FeatureError::ColumnType { .. } => Code::ColumnType,
            FeatureError::NotEnoughRows { .. } => Code::NotEnoughRows,
            FeatureError::NotSorted { .. }
            | FeatureError::DuplicateSeriesTime { .. }
            | FeatureError::MissingSeriesKey { .. }
            | FeatureError::MixedSeries { .. } => Code::DataShape,
            FeatureError::Fit { .. } | FeatureError::UnknownCategory { .. } => Code::DataShape,
            FeatureError::NotNumeric { .. } => Code::ColumnType,
            FeatureError::Selection { .. } | FeatureError::InvalidValue { .. } => Code::DataShape,
            FeatureError::Model { cause, .. } => cause.code(),
        }
    }

    /// The row (0-based, into the rows the failing step was given) an error is about, when it is about one.
    pub fn row(&self) -> Option<usize> {
        match self {
            FeatureError::Fit { row, .. } => *row,
            FeatureError::UnknownCategory { row, .. } | FeatureError::InvalidValue { row, .. } => Some(*row),
            _ => None,
        }
    }

    /// The error with its row moved `by` rows later (a step saw rows starting `by` rows into the caller's).
    #[must_use]
    pub fn shift_row(mut self, by: usize) -> FeatureError {
        match &mut self {
            FeatureError::Fit { row: Some(row), .. }
            | FeatureError::UnknownCategory { row, .. }
            | FeatureError::InvalidValue { row, .. } => *row += by,
            _ => {}
        }
        self
    }

    pub(crate) fn spec(path: impl Into<String>, reason: impl Into<String>) -> FeatureError {
        FeatureError::Spec { path: path.into(), reason: reason.into() }
    }
}

impl kiln_domain::HasCode for FeatureError {
    fn code(&self) -> Code {
        FeatureError::code(self)
    }
}
