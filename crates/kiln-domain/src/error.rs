//! The one table of stable error codes, shared by every crate and both edges: each [`Code`] has its snake_case name,
//! its [`ErrorKind`], the HTTP status it is answered with and (from its kind) the CLI's exit status. Each library
//! has its own `thiserror` enum, maps every variant to one code and says so through [`HasCode`]. The codes of the
//! HTTP API's own rejections (a malformed body, a wrong field type, a missing API key) are rows of the same table,
//! so `kiln-serve` converts a number to its HTTP type and keeps no table of its own.

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

impl ErrorKind {
    /// The `kiln` binary's exit status for an error of this kind: 2 for invalid input or a missing thing, 3 for a
    /// failed gate, 1 otherwise.
    pub const fn exit_code(self) -> u8 {
        match self {
            ErrorKind::InvalidInput | ErrorKind::NotFound => 2,
            ErrorKind::GateFailed => 3,
            ErrorKind::Integrity | ErrorKind::External | ErrorKind::Internal => 1,
        }
    }
}

macro_rules! make_error_codes {
    (
        library { $($lib:ident => ($lib_name:literal, $lib_kind:ident, $lib_status:literal)),+ $(,)? }
        http_api { $($api:ident => ($api_name:literal, $api_kind:ident, $api_status:literal)),+ $(,)? }
    ) => {
        /// Every error kiln reports carries one of these codes; the snake_case names are stable.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code { $($lib,)+ $($api),+ }

        impl Code {
            /// All codes, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$lib,)+ $(Code::$api),+];

            /// The codes the HTTP API answers with (`kiln serve`'s rejections and its bare `internal`), in the order
            /// its documentation and metrics list them.
            pub const HTTP_API: &'static [Code] = &[$(Code::$api),+];

            /// The stable snake_case name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$lib => $lib_name,)+ $(Code::$api => $api_name),+ }
            }

            /// The class of the error.
            pub const fn kind(self) -> ErrorKind {
                match self { $(Code::$lib => ErrorKind::$lib_kind,)+ $(Code::$api => ErrorKind::$api_kind),+ }
            }

            /// The HTTP status an answer with this code is sent with.
            pub const fn http_status(self) -> u16 {
                match self { $(Code::$lib => $lib_status,)+ $(Code::$api => $api_status),+ }
            }

            /// The `kiln` binary's exit status for this code (see [`ErrorKind::exit_code`]).
            pub const fn exit_code(self) -> u8 {
                self.kind().exit_code()
            }
        }
    };
}

make_error_codes! {
    // what the libraries report; `kiln serve` answers none of these today (a library failure behind a request is
    // logged and answered as `internal`), the statuses say what such an answer would be
    library {
        ConfigInvalid => ("config_invalid", InvalidInput, 400),
        DataRead => ("data_read", External, 500),
        DataParse => ("data_parse", InvalidInput, 422),
        DataShape => ("data_shape", InvalidInput, 422),
        MissingColumn => ("missing_column", InvalidInput, 422),
        ColumnType => ("column_type", InvalidInput, 422),
        FeatureSpec => ("feature_spec", InvalidInput, 400),
        ModelParams => ("model_params", InvalidInput, 400),
        ModelTrain => ("model_train", External, 500),
        ModelPredict => ("model_predict", External, 500),
        BundleFormat => ("bundle_format", Integrity, 500),
        BundleChecksum => ("bundle_checksum", Integrity, 500),
        ModelRefInvalid => ("model_ref_invalid", InvalidInput, 400),
        NotFound => ("not_found", NotFound, 404),
        AlreadyExists => ("already_exists", InvalidInput, 409),
        StoreIo => ("store_io", External, 503),
        StoreCorrupt => ("store_corrupt", Integrity, 500),
        StoreAuth => ("store_auth", InvalidInput, 502),
        StoreRejected => ("store_rejected", InvalidInput, 502),
        GateFailed => ("gate_failed", GateFailed, 422),
    }
    // what the HTTP API answers with; `not_enough_rows` and `internal` are the libraries' codes too
    http_api {
        // the request as a whole
        MalformedJson => ("malformed_json", InvalidInput, 400),
        BodyUnreadable => ("body_unreadable", InvalidInput, 400),
        UnsupportedMediaType => ("unsupported_media_type", InvalidInput, 415),
        PayloadTooLarge => ("payload_too_large", InvalidInput, 413),
        TooManyRecords => ("too_many_records", InvalidInput, 413),
        RouteNotFound => ("route_not_found", NotFound, 404),
        MethodNotAllowed => ("method_not_allowed", InvalidInput, 405),
        // one field of a record
        MissingField => ("missing_field", InvalidInput, 422),
        UnknownField => ("unknown_field", InvalidInput, 422),
        DuplicateField => ("duplicate_field", InvalidInput, 422),
        WrongType => ("wrong_type", InvalidInput, 422),
        NullValue => ("null_value", InvalidInput, 422),
        NotFinite => ("not_finite", InvalidInput, 422),
        InvalidTime => ("invalid_time", InvalidInput, 422),
        // what the features make of the values
        NotEnoughRows => ("not_enough_rows", InvalidInput, 422),
        WindowNotSorted => ("window_not_sorted", InvalidInput, 422),
        UnknownCategory => ("unknown_category", InvalidInput, 422),
        InvalidValue => ("invalid_value", InvalidInput, 422),
        PredictionNotFinite => ("prediction_not_finite", InvalidInput, 422),
        ConflictingFields => ("conflicting_fields", InvalidInput, 422),
        // series kept by /observe
        SeriesNotFound => ("series_not_found", NotFound, 404),
        TooManySeries => ("too_many_series", InvalidInput, 409),
        NotAForecastModel => ("not_a_forecast_model", InvalidInput, 400),
        // the middleware: API keys, rate limit, request timeout
        Unauthorized => ("unauthorized", InvalidInput, 401),
        RateLimited => ("rate_limited", InvalidInput, 429),
        Timeout => ("timeout", External, 504),
        // the service
        NotReady => ("not_ready", External, 503),
        // a connection over `--max-connections`, answered before any request is read
        TooManyConnections => ("too_many_connections", External, 503),
        Internal => ("internal", Internal, 500),
    }
}

/// An error that carries one of kiln's stable codes. Every library error type implements it, so that an edge maps
/// any of them the same way (the CLI its exit status, a service its retry decision) without parsing messages.
pub trait HasCode {
    /// The stable code of this error.
    fn code(&self) -> Code;
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
    #[error("series '{series}' (column '{series_column}') repeats the timestamp {millis} ms of time column '{column}'")]
    DuplicateSeriesTime { series_column: String, series: String, column: String, millis: i64 },
    #[error("series column '{column}' is missing in row {row} (counted from 1); every row must name its series")]
    MissingSeriesKey { column: String, row: usize },
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
            DomainError::DuplicateTime { .. }
            | DomainError::DuplicateSeriesTime { .. }
            | DomainError::MissingSeriesKey { .. } => Code::DataShape,
            DomainError::ModelRef { .. } => Code::ModelRefInvalid,
        }
    }
}

impl HasCode for DomainError {
    fn code(&self) -> Code {
        DomainError::code(self)
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

impl HasCode for PortError {
    fn code(&self) -> Code {
        self.code
    }
}

/// An error and its causes on one line, joined with `: `, leaving out a cause whose text the message before it
/// already contains (library errors often quote their source, so printing every cause would say it twice). The CLI
/// prints its errors with it, `kiln serve` its reload failures, and a service can use it through the `kiln` facade.
pub fn chain_text(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = cause.source();
    }
    parts.join(": ")
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

impl HasCode for SourceError {
    fn code(&self) -> Code {
        self.code
    }
}

/// `s` percent-encoded for a URL path segment or query value: everything but RFC 3986's unreserved characters
/// (the MLflow client and the data-source adapters build their URLs with it).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` cut to `max` characters for an error message, with its length when cut: a message never echoes a 200 MB
/// header or cell whole.
pub fn cut_for_message(text: &str, max: usize) -> String {
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    format!("{}... ({n} characters)", text.chars().take(max).collect::<String>())
}
