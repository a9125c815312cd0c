//! `kiln fetch`: pulling data from a source into a versioned snapshot. The adapters (the Yahoo Finance chart API,
//! BigQuery REST, local files and `http(s)://` URLs) hand their rows over page by page as they arrive; the snapshot
//! writer (`crate::snapshot`) streams the pages into one Parquet file, so memory stays flat for large results.
//!
//! Key decision: the adapters speak polars `DataFrame`s inside this crate (a BigQuery INTEGER stays an Int64, a DATE
//! a Date), and nothing polars leaves it: the public face is [`FetchError`] and plain request structs.

use std::path::PathBuf;

use kiln_domain::Code;

/// What can go wrong fetching data or writing its snapshot. Messages name the source, the symbol, the URL (without
/// any credential) or the file at fault; no variant ever holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// a bad request: an unknown interval, an end before the start, a key file that is not a key, ...
    #[error("{0}")]
    Request(String),
    /// no answer: a refused or dropped connection, a timeout, after every retry
    #[error("{url}: {message}")]
    Connection { url: String, message: String },
    /// an HTTP error answer (after every retry for 429 and 5xx), with the service's own message when it gave one
    #[error("{url}: HTTP {status}: {message}")]
    Http { url: String, status: u16, message: String },
    /// the service answered with an error of its own (Yahoo's `chart.error`, a failed BigQuery job)
    #[error("{source_name}: {message}")]
    Service { source_name: String, message: String },
    /// an answer that is not what the service documents
    #[error("{source_name}: malformed answer: {message}")]
    Malformed { source_name: String, message: String },
    /// credentials that cannot be used (never their content)
    #[error("{0}")]
    Credentials(String),
    /// a fetch that came back with no rows
    #[error("{0}")]
    Empty(String),
    /// reading or writing a local file
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// building or writing the snapshot's Parquet file
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    /// a snapshot store that is not as kiln left it (a manifest that does not parse, a sha256 that does not match)
    #[error("{0}")]
    Snapshot(String),
    /// reading a local or downloaded CSV/Parquet file (boxed: a `ReadError` alone is as large as clippy's
    /// `result_large_err` allows, and every adapter returns this error)
    #[error(transparent)]
    Read(Box<crate::ReadError>),
}

impl From<crate::ReadError> for FetchError {
    fn from(e: crate::ReadError) -> Self {
        FetchError::Read(Box::new(e))
    }
}

impl FetchError {
    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            FetchError::Request(_) => Code::ConfigInvalid,
            FetchError::Connection { .. } | FetchError::Http { .. } | FetchError::Io { .. } => Code::DataRead,
            FetchError::Service { .. } | FetchError::Empty(_) => Code::NotFound,
            FetchError::Malformed { .. } => Code::DataParse,
            FetchError::Credentials(_) => Code::StoreAuth,
            FetchError::Parquet { .. } => Code::DataRead,
            FetchError::Snapshot(_) => Code::StoreCorrupt,
            FetchError::Read(e) => e.code(),
        }
    }
}

impl kiln_domain::HasCode for FetchError {
    fn code(&self) -> Code {
        FetchError::code(self)
    }
}
