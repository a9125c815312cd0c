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

/// A name or cell cut to a readable length (80 characters) for a message.
fn cut(text: &str) -> String {
    kiln_domain::cut_for_message(text, 80)
}

/// At most 30 column names, each cut.
fn show_names(names: &[String]) -> String {
    const MAX: usize = 30;
    let shown: Vec<String> = names.iter().take(MAX).map(|n| cut(n)).collect();
    if names.len() > MAX { format!("{}, ... ({} in all)", shown.join(", "), names.len()) } else { shown.join(", ") }
}

/// What can go wrong reading or writing a data file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: unsupported file type (expected .csv, .parquet or .pq)", path.display())]
    UnsupportedFormat { path: PathBuf },
    #[error("{}: the file holds no data rows (a header only)", path.display())]
    NoRows { path: PathBuf },
    #[error(
        "{}: the file has changed since it was fetched (sha256 {actual}, its manifest says {expected}); fetch again \
         rather than editing a snapshot",
        path.display()
    )]
    Changed { path: PathBuf, expected: String, actual: String },
    #[error("{}: the header has {columns} columns; kiln reads files of at most {max}", path.display())]
    TooWide { path: PathBuf, columns: usize, max: usize },
    #[error("{}{}: malformed csv: {message}", path.display(), line.map_or(String::new(), |l| format!(" line {l}")))]
    Csv { path: PathBuf, line: Option<u64>, message: String },
    #[error("{}: the file is empty (no header line)", path.display())]
    NoHeader { path: PathBuf },
    #[error("{} line {line}: expected {expected} fields (as in the header), found {actual}", path.display())]
    FieldCount { path: PathBuf, line: u64, expected: usize, actual: usize },
    #[error("{}: column {index} has an empty name in the header", path.display())]
    EmptyHeader { path: PathBuf, index: usize },
    #[error("{}: column '{}' appears twice", path.display(), cut(column))]
    DuplicateColumn { path: PathBuf, column: String },
    #[error("{}: column '{}' not found; available columns: {}", path.display(), cut(column), show_names(available))]
    MissingColumn { path: PathBuf, column: String, available: Vec<String> },
    #[error(
        "{} {location}, column '{}': cannot parse '{}' as a date (expected {expected})",
        path.display(),
        cut(column),
        cut(text)
    )]
    BadTime { path: PathBuf, location: Location, column: String, text: String, expected: String },
    #[error(
        "{} {location}, column '{}': cannot parse '{}' as a number{}",
        path.display(),
        cut(column),
        cut(text),
        inferred_from.map_or(String::new(), |n| format!(
            " (the column was read as numeric because its first {n} rows were numbers; declare it categorical if it \
             holds text)"
        ))
    )]
    NotNumber { path: PathBuf, location: Location, column: String, text: String, inferred_from: Option<usize> },
    #[error(
        "{} {location}, column '{}': '{}' is not a finite number (infinite, or beyond the largest double, \
         1.8e308); kiln refuses it in every input, as `kiln serve` does (not_finite)",
        path.display(),
        cut(column),
        cut(text)
    )]
    NotFinite { path: PathBuf, location: Location, column: String, text: String },
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
    #[error(
        "{}: series '{}' (column '{series_column}') has two rows at {time} (time column '{column}'); a series may \
         have one row per time",
        path.display(),
        cut(series)
    )]
    DuplicateSeriesTime { path: PathBuf, series_column: String, series: String, column: String, time: String },
    #[error("{} {location}: series column '{column}' is missing; every row of a panel must name its series", path.display())]
    MissingSeriesKey { path: PathBuf, location: Location, column: String },
    #[error(transparent)]
    SeriesNotSorted(Box<SeriesOrderError>),
    #[error("{}: column '{column}' has type {dtype}, which cannot be used as the time column", path.display())]
    TimeColumnType { path: PathBuf, column: String, dtype: String },
    #[error("{}: column '{column}' has the unsupported type {dtype}", path.display())]
    UnsupportedDtype { path: PathBuf, column: String, dtype: String },
    #[error("{}: parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: internal error: {message}", path.display())]
    Internal { path: PathBuf, message: String },
}

/// A panel's series that steps back in time in a file read chunk by chunk (boxed in [`ReadError::SeriesNotSorted`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "{} {location}: series '{}' (column '{series_column}') is at {time} in time column '{column}', which does not \
     come after its row at {prev} ({}); each series must be in strictly increasing time order (rows of different \
     series may interleave)",
    path.display(),
    cut(series),
    location.with_number(*prev_at)
)]
pub struct SeriesOrderError {
    pub path: PathBuf,
    pub location: Location,
    pub series_column: String,
    pub series: String,
    pub column: String,
    pub time: String,
    pub prev: String,
    pub prev_at: u64,
}

impl ReadError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            // a file that is not there is bad input (exit 2), not a failure of the machine
            ReadError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Code::NotFound,
            ReadError::Io { .. } | ReadError::Parquet { .. } => Code::DataRead,
            ReadError::UnsupportedFormat { .. } | ReadError::Changed { .. } => Code::DataParse,
            ReadError::NoRows { .. } | ReadError::TooWide { .. } => Code::DataShape,
            ReadError::Csv { .. }
            | ReadError::BadTime { .. }
            | ReadError::NotNumber { .. }
            | ReadError::NotFinite { .. } => Code::DataParse,
            ReadError::NoHeader { .. }
            | ReadError::FieldCount { .. }
            | ReadError::EmptyHeader { .. }
            | ReadError::DuplicateColumn { .. }
            | ReadError::DuplicateTime { .. }
            | ReadError::DuplicateSeriesTime { .. }
            | ReadError::MissingSeriesKey { .. }
            | ReadError::SeriesNotSorted(_)
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
