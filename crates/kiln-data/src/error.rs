//! Errors of the file adapters. Every message names the file and, where there is one, the line (CSV) or row
//! (Parquet) and the column at fault; every variant maps to one stable [`Code`].

use std::fmt;
use std::path::PathBuf;

use kiln_domain::Code;

/// Where in a file a value sits: a 1-based CSV line (as an editor counts it) or a 1-based Parquet row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Line(u64),
    Row(usize),
}

impl Location {
    /// Line or row `n`, the same kind as this one.
    pub fn with_number(self, n: u64) -> Location {
        match self {
            Location::Line(_) => Location::Line(n),
            Location::Row(_) => Location::Row(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }

    /// The line or row number.
    pub fn number(self) -> u64 {
        match self {
            Location::Line(n) => n,
            Location::Row(n) => n as u64,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// What can go wrong reading or writing a data file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: unsupported file type (expected .csv, .parquet or .pq)", path.display())]
    UnsupportedFormat { path: PathBuf },
    #[error("{}{}: malformed csv: {message}", path.display(), line.map_or(String::new(), |l| format!(" line {l}")))]
    Csv { path: PathBuf, line: Option<u64>, message: String },
    #[error("{}: the file is empty (no header line)", path.display())]
    NoHeader { path: PathBuf },
    #[error("{} line {line}: expected {expected} fields (as in the header), found {actual}", path.display())]
    FieldCount { path: PathBuf, line: u64, expected: usize, actual: usize },
    #[error("{}: column {index} has an empty name in the header", path.display())]
    EmptyHeader { path: PathBuf, index: usize },
    #[error("{}: column '{column}' appears twice", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{}: column '{column}' not found; available columns: {}", path.display(), available.join(", "))]
    MissingColumn { path: PathBuf, column: String, available: Vec<String> },
    #[error("{} {location}, column '{column}': cannot parse '{text}' as a date (expected {expected})", path.display())]
    BadTime { path: PathBuf, location: Location, column: String, text: String, expected: String },
    #[error(
        "{} {location}, column '{column}': cannot parse '{text}' as a number{}",
        path.display(),
        inferred_from.map_or(String::new(), |n| format!(
            " (the column was read as numeric because its first {n} rows were numbers; declare it categorical if it \
             holds text)"
        ))
    )]
    NotNumber { path: PathBuf, location: Location, column: String, text: String, inferred_from: Option<usize> },
    #[error(
        "{}: the rows are newest first (time column '{column}' goes from {first} back to {second}); a file is read \
         chunk by chunk oldest first only",
        path.display()
    )]
    NewestFirst { path: PathBuf, column: String, first: String, second: String },
    #[error(
        "{} {location}: time column '{column}' is {time}, which does not come after {prev} ({}); rows read chunk by \
         chunk must be in strictly increasing time order",
        path.display(),
        location.with_number(*prev_at)
    )]
    NotSorted { path: PathBuf, location: Location, column: String, time: String, prev: String, prev_at: u64 },
    #[error("invalid time format '{format}': {reason}")]
    TimeFormat { format: String, reason: String },
    #[error("{}: time column '{column}' repeats the timestamp {time}", path.display())]
    DuplicateTime { path: PathBuf, column: String, time: String },
    #[error("{}: column '{column}' has type {dtype}, which cannot be used as the time column", path.display())]
    TimeColumnType { path: PathBuf, column: String, dtype: String },
    #[error("{}: column '{column}' has the unsupported type {dtype}", path.display())]
    UnsupportedDtype { path: PathBuf, column: String, dtype: String },
    #[error("{}: parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: internal error: {message}", path.display())]
    Internal { path: PathBuf, message: String },
}

impl ReadError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            ReadError::Io { .. } | ReadError::UnsupportedFormat { .. } | ReadError::Parquet { .. } => Code::DataRead,
            ReadError::Csv { .. } | ReadError::BadTime { .. } | ReadError::NotNumber { .. } => Code::DataParse,
            ReadError::NoHeader { .. }
            | ReadError::FieldCount { .. }
            | ReadError::EmptyHeader { .. }
            | ReadError::DuplicateColumn { .. }
            | ReadError::DuplicateTime { .. }
            | ReadError::NewestFirst { .. }
            | ReadError::NotSorted { .. } => Code::DataShape,
            ReadError::MissingColumn { .. } => Code::MissingColumn,
            ReadError::TimeFormat { .. } => Code::ConfigInvalid,
            ReadError::TimeColumnType { .. } | ReadError::UnsupportedDtype { .. } => Code::ColumnType,
            ReadError::Internal { .. } => Code::Internal,
        }
    }
}

impl kiln_domain::HasCode for ReadError {
    fn code(&self) -> Code {
        ReadError::code(self)
    }
}
