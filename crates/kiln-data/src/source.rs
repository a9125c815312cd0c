//! The [`DataSource`] adapters: [`FileSource`], a CSV or Parquet file read whole with its [`ReadOptions`],
//! fingerprinted by the sha256 of the file's bytes; and the fetch adapters that `kiln fetch` drives, each handing its
//! rows over page by page: the Yahoo Finance chart API (`yahoo`) and BigQuery REST (`bigquery`, its service-account
//! JWT in `jwt`), over one blocking HTTP client with retries, backoff and a polite rate (`http`); their tests replay
//! recorded answers from a local stub server (`http::stub`).
//!
//! Versioned snapshots (`data/raw/<source>/<key>/<timestamp>.parquet` with a manifest of sha256, rows and time range)
//! that `kiln fetch` writes and a snapshot source reads back, checking the manifest, go beside them.

mod bigquery;
pub(crate) mod http;
mod jwt;
mod yahoo;

pub(crate) use bigquery::fetch_bigquery;
pub use bigquery::{BIGQUERY_BASE_URL, BigQueryAuth, BigQueryRequest};
pub use http::{FetchSummary, HttpPolicy};
pub(crate) use http::{HttpClient, Request, shown_url};
pub(crate) use yahoo::{INTRADAY, fetch_yahoo};
pub use yahoo::{YAHOO_BASE_URL, YahooRequest};

use std::path::PathBuf;

use kiln_domain::{DataSource, LoadedData, SourceError};

use crate::error::ReadError;
use crate::read::{ReadOptions, read_frame, sha256_file};

/// A CSV or Parquet file (by its extension), read whole with [`read_frame`] and fingerprinted with [`sha256_file`].
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    options: ReadOptions,
    /// the sha256 the file must have (a snapshot's, from its manifest), checked before it is read
    expected_sha256: Option<String>,
}

impl FileSource {
    pub fn new(path: impl Into<PathBuf>, options: ReadOptions) -> Self {
        FileSource { path: path.into(), options, expected_sha256: None }
    }

    /// A file that must have the sha256 `sha256` (a `kiln fetch` snapshot's, from its manifest): the digest is
    /// checked before the file is read, since a file edited afterwards may no longer even parse, and the file is
    /// hashed once.
    pub fn expecting(path: impl Into<PathBuf>, options: ReadOptions, sha256: impl Into<String>) -> Self {
        FileSource { path: path.into(), options, expected_sha256: Some(sha256.into()) }
    }
}

impl DataSource for FileSource {
    /// The file's path.
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    /// The frame, the sha256 of the file and its path as the origin. Errors are [`ReadError`]s, kept whole.
    fn load(&self) -> Result<LoadedData, SourceError> {
        let checked = match &self.expected_sha256 {
            Some(expected) => {
                let actual = sha256_file(&self.path).map_err(source_error)?;
                if actual != *expected {
                    return Err(source_error(ReadError::Changed {
                        path: self.path.clone(),
                        expected: expected.clone(),
                        actual,
                    }));
                }
                Some(actual)
            }
            None => None,
        };
        let frame = read_frame(&self.path, &self.options).map_err(source_error)?;
        // nothing can be learned from a header alone; said here, before any task-specific check blames a setting
        if frame.n_rows() == 0 {
            return Err(source_error(ReadError::NoRows { path: self.path.clone() }));
        }
        let sha256 = match checked {
            Some(sha256) => sha256,
            None => sha256_file(&self.path).map_err(source_error)?,
        };
        Ok(LoadedData { frame, sha256, origin: self.path.display().to_string() })
    }
}

fn source_error(e: ReadError) -> SourceError {
    SourceError::new(e.code(), e)
}

#[cfg(test)]
mod tests;
