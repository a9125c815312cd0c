//! Stable error codes shared by every crate. Each library has its own `thiserror` enum and maps every variant to one
//! [`Code`]; the HTTP mapping of a code's [`ErrorKind`] lives only in `kiln-serve`.

use std::error::Error;
use std::fmt;

/// Broad class of an error, used by the edges (CLI exit codes, HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// the user's input (config, data, request) is wrong
    InvalidInput,
    /// a named thing (run, model, alias, file) does not exist
    NotFound,
    /// a model failed a registration gate
    GateFailed,
    /// stored data does not match its checksum or format
    Integrity,
    /// an outside system (disk, server) failed
    External,
    /// a bug in kiln
    Internal,
}

macro_rules! make_error_codes {
    ($($variant:ident => ($name:literal, $kind:ident)),+ $(,)?) => {
        /// Every error kiln reports carries one of these codes; the snake_case names are stable.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($variant),+ }

        impl Code {
            /// All codes, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $name),+ }
            }

            /// The class of the error.
            pub fn kind(self) -> ErrorKind {
                match self { $(Code::$variant => ErrorKind::$kind),+ }
            }
        }
    };
}

make_error_codes! {
    ConfigInvalid => ("config_invalid", InvalidInput),
    DataRead => ("data_read", External),
    DataParse => ("data_parse", InvalidInput),
    DataShape => ("data_shape", InvalidInput),
    MissingColumn => ("missing_column", InvalidInput),
    ColumnType => ("column_type", InvalidInput),
    NotEnoughRows => ("not_enough_rows", InvalidInput),
    FeatureSpec => ("feature_spec", InvalidInput),
    ModelParams => ("model_params", InvalidInput),
    ModelTrain => ("model_train", External),
    ModelPredict => ("model_predict", External),
    BundleFormat => ("bundle_format", Integrity),
    BundleChecksum => ("bundle_checksum", Integrity),
    ModelRefInvalid => ("model_ref_invalid", InvalidInput),
    NotFound => ("not_found", NotFound),
    AlreadyExists => ("already_exists", InvalidInput),
    StoreIo => ("store_io", External),
    StoreCorrupt => ("store_corrupt", Integrity),
    StoreAuth => ("store_auth", InvalidInput),
    StoreRejected => ("store_rejected", InvalidInput),
    GateFailed => ("gate_failed", GateFailed),
    Internal => ("internal", Internal),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of the domain types themselves (frames, references).
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("column '{0}' not found")]
    MissingColumn(String),
    #[error("column '{column}' is {actual}, expected {expected}")]
    ColumnType { column: String, expected: &'static str, actual: &'static str },
    #[error("column '{column}' has {actual} rows, the frame has {expected}")]
    Length { column: String, expected: usize, actual: usize },
    #[error("column '{0}' appears twice")]
    DuplicateColumn(String),
    #[error("time column '{column}' repeats the timestamp {millis} ms")]
    DuplicateTime { column: String, millis: i64 },
    #[error("invalid model reference '{reference}': {reason}")]
    ModelRef { reference: String, reason: String },
}

impl DomainError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            DomainError::MissingColumn(_) => Code::MissingColumn,
            DomainError::ColumnType { .. } => Code::ColumnType,
            DomainError::Length { .. } | DomainError::DuplicateColumn(_) => Code::DataShape,
            DomainError::DuplicateTime { .. } => Code::DataShape,
            DomainError::ModelRef { .. } => Code::ModelRefInvalid,
        }
    }
}

/// What a port (tracker, artifact store, registry) returns when it fails. Adapters choose the code; the message
/// names the resource. It never contains a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PortError {
    pub code: Code,
    pub message: String,
}

impl PortError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        PortError { code, message: message.into() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        PortError::new(Code::NotFound, message)
    }

    pub fn io(message: impl Into<String>) -> Self {
        PortError::new(Code::StoreIo, message)
    }
}

/// Why a [`DataSource`](crate::DataSource) could not load: the adapter's own typed error, kept whole, with its
/// stable code. It displays exactly as that error and continues the chain with that error's source, so the
/// adapter's message (the file, line and column at fault) reaches the user unchanged; [`SourceError::get_ref`]
/// gives the error itself to downcast.
#[derive(Debug)]
pub struct SourceError {
    code: Code,
    error: Box<dyn Error + Send + Sync + 'static>,
}

impl SourceError {
    pub fn new(code: Code, error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        SourceError { code, error: error.into() }
    }

    /// The stable code of this error.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The adapter's error.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.error
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.source()
    }
}
