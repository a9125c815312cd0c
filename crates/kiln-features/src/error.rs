//! The crate's typed error: every variant names the recipe field, feature or column at fault and maps to one
//! stable [`Code`].

use kiln_domain::Code;

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
        "time column '{column}' must be strictly increasing, but row {row} ({next} ms) does not come after row {prev_row} ({prev} ms)"
    )]
    NotSorted { column: String, prev_row: usize, row: usize, prev: i64, next: i64 },
}

impl FeatureError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            FeatureError::Spec { .. } => Code::FeatureSpec,
            FeatureError::MissingColumn { .. } => Code::MissingColumn,
            FeatureError::ColumnType { .. } => Code::ColumnType,
            FeatureError::NotEnoughRows { .. } => Code::NotEnoughRows,
            FeatureError::NotSorted { .. } => Code::DataShape,
        }
    }

    pub(crate) fn spec(path: impl Into<String>, reason: impl Into<String>) -> FeatureError {
        FeatureError::Spec { path: path.into(), reason: reason.into() }
    }
}
