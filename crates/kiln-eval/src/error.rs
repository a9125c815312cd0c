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
    /// `y_true` and the predicted probabilities differ in length.
    #[error("y_true has {y_true} values but proba has {proba}")]
    ProbaLengthMismatch { y_true: usize, proba: usize },
    /// Nothing to evaluate or split.
    #[error("no rows to evaluate: {input} is empty")]
    Empty { input: &'static str },
    /// A binary label other than 0 or 1 (NaN included).
    #[error("y_true has {value} at index {index}; binary labels must be 0 or 1")]
    NotBinaryLabel { index: usize, value: f64 },
    /// A predicted probability outside [0, 1] or NaN.
    #[error("proba has {value} at index {index}; probabilities must lie in [0, 1]")]
    NotProbability { index: usize, value: f64 },
    /// A metric that needs both classes (ROC AUC, average precision, their curves) got labels of one class only.
    #[error("{metric} is undefined when y_true holds a single class (all {rows} labels are {label})")]
    SingleClass { metric: &'static str, label: u8, rows: usize },
    /// The labels cannot be split with every class in every part.
    #[error("cannot stratify: {reason}")]
    Stratify { reason: String },
    /// The rows (or a class) are too few for the folds asked for.
    #[error("cannot make {folds} folds: {reason}")]
    Folds { folds: usize, reason: String },
}

impl EvalError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            // a NaN or infinity is a value that does not fit the shape of the data kiln accepts
            EvalError::LengthMismatch { .. }
            | EvalError::NonFinite { .. }
            | EvalError::ProbaLengthMismatch { .. }
            | EvalError::NotBinaryLabel { .. }
            | EvalError::NotProbability { .. } => Code::DataShape,
            // a single class, like an empty input, is too little data for the question asked
            EvalError::NotEnoughRows { .. }
            | EvalError::EmptyPart { .. }
            | EvalError::Empty { .. }
            | EvalError::SingleClass { .. }
            | EvalError::Stratify { .. }
            | EvalError::Folds { .. } => Code::NotEnoughRows,
            EvalError::InvalidSpec { .. } => Code::ConfigInvalid,
            EvalError::GateFailed { .. } => Code::GateFailed,
        }
    }
}

impl kiln_domain::HasCode for EvalError {
    fn code(&self) -> Code {
        EvalError::code(self)
    }
}
