//! The errors of kiln-eval, each mapped to a stable [`Code`].

use kiln_domain::Code;

/// What can go wrong while evaluating.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// `y_true` and `y_pred` differ in length.
    #[error("y_true has {y_true} values but y_pred has {y_pred}")]
    LengthMismatch { y_true: usize, y_pred: usize },
    /// Fewer than two rows: r2 is undefined (scikit-learn returns NaN there; kiln refuses).
    #[error("regression metrics need at least 2 rows (r2 is undefined below that), got {rows}")]
    NotEnoughRows { rows: usize },
    /// A NaN or infinite value in an input (scikit-learn refuses these too).
    #[error("{input} has a non-finite value ({value}) at index {index}")]
    NonFinite { input: &'static str, index: usize, value: f64 },
    /// A config value outside its domain; `key` is the YAML key.
    #[error("invalid {key}: {reason}")]
    InvalidSpec { key: String, reason: String },
    /// A holdout part would have no rows.
    #[error(
        "time holdout of {n_rows} rows leaves no rows for {part} (test {test}, validation {validation}, gap {gap})"
    )]
    EmptyPart { part: &'static str, n_rows: usize, test: usize, validation: usize, gap: usize },
    /// One or more registration gates failed; the message lists each failed check.
    #[error("{failed} of {total} gates failed: {details}")]
    GateFailed { failed: usize, total: usize, details: String },
}

impl EvalError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            // a NaN or infinity is a value that does not fit the shape of the data kiln accepts
            EvalError::LengthMismatch { .. } | EvalError::NonFinite { .. } => Code::DataShape,
            EvalError::NotEnoughRows { .. } | EvalError::EmptyPart { .. } => Code::NotEnoughRows,
            EvalError::InvalidSpec { .. } => Code::ConfigInvalid,
            EvalError::GateFailed { .. } => Code::GateFailed,
        }
    }
}
