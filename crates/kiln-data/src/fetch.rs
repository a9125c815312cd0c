//! `kiln fetch`: pulling data from a source into a versioned snapshot. The adapters (the Yahoo Finance chart API,
//! BigQuery REST, local files and `http(s)://` URLs) hand their rows over page by page as they arrive; the snapshot
//! writer (`crate::snapshot`) streams the pages into one Parquet file, so memory stays flat for large results.
//!
//! Key decision: the adapters speak polars `DataFrame`s inside this crate (a BigQuery INTEGER stays an Int64, a DATE
//! a Date), and nothing polars leaves it: the public face is [`FetchError`] and plain request structs.

use std::io::Write;
use std::path::{Path, PathBuf};

use kiln_domain::Code;
use sha2::Digest;

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
    /// a snapshot store that is not as kiln left it (a manifest that does not parse, a data file gone)
    #[error("{0}")]
    Snapshot(String),
    /// a snapshot reference that names no snapshot, or more than one
    #[error("{0}")]
    NoSnapshot(String),
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
            FetchError::NoSnapshot(_) => Code::NotFound,
            FetchError::Read(e) => e.code(),
        }
    }
}

impl kiln_domain::HasCode for FetchError {
    fn code(&self) -> Code {
        FetchError::code(self)
    }
}

/// Where `kiln fetch` takes its rows from.
#[derive(Debug, Clone)]
pub enum FetchSpec {
    /// a local CSV or Parquet file, or an `http(s)://` URL of one
    File(FileRequest),
    /// bars of one or many symbols from the Yahoo Finance chart API
    Yahoo(crate::YahooRequest),
    /// the rows of a BigQuery query (REST, no SDK)
    BigQuery(crate::BigQueryRequest),
}

/// A CSV or Parquet file to snapshot, local or at an `http(s)://` URL (the type is read from the path's extension).
#[derive(Debug, Clone, Default)]
pub struct FileRequest {
    pub location: String,
    /// parsed as UTC times (the snapshot keeps them as a Parquet datetime) and giving the manifest's time range
    pub time_column: Option<String>,
    pub time_format: Option<String>,
    /// a long file of many series: each series in time order
    pub series_column: Option<String>,
}

impl FetchSpec {
    /// The source's folder under the snapshot root: `file`, `url`, ...
    pub fn source(&self) -> &'static str {
        match self {
            FetchSpec::File(f) if is_url(&f.location) => "url",
            FetchSpec::File(_) => "file",
            FetchSpec::Yahoo(_) => "yahoo",
            FetchSpec::BigQuery(_) => "bigquery",
        }
    }

    /// The snapshot name used when none is given: the file's stem.
    pub fn default_name(&self) -> String {
        match self {
            FetchSpec::File(f) => {
                let path = f.location.split(['?', '#']).next().unwrap_or_default();
                let stem = Path::new(path).file_stem().and_then(|s| s.to_str()).unwrap_or("data");
                safe_name(stem)
            }
            // NVDA-MSFT-TSLA_1d
            FetchSpec::Yahoo(y) => safe_name(&format!("{}_{}", y.symbols.join("-"), y.interval)),
            // the project and a digest of the query text: the same query lands in the same folder
            FetchSpec::BigQuery(b) => {
                let digest = hex::encode(sha2::Sha256::digest(b.query.trim().as_bytes()));
                safe_name(&format!("{}_query-{}", b.project, &digest[..8]))
            }
        }
    }

    /// What the manifest records of the request: never a credential (a URL loses its query string and user info).
    pub fn request_json(&self) -> serde_json::Value {
        match self {
            FetchSpec::File(f) => serde_json::json!({
                "location": f.location_shown(),
                "time_column": f.time_column,
                "time_format": f.time_format,
                "series_column": f.series_column,
            }),
            FetchSpec::Yahoo(y) => serde_json::json!({
                "symbols": y.symbols,
                "interval": y.interval,
                "start": y.start,
                "end": y.end,
                "range": y.range,
                "base_url": redact_url(&y.base_url),
            }),
            // the query, never the credentials: a key file is named by its path only, a token by its variable
            FetchSpec::BigQuery(b) => serde_json::json!({
                "project": b.project,
                "query": b.query,
                "location": b.location,
                "auth": match &b.auth {
                    crate::BigQueryAuth::KeyFile(path) => serde_json::json!({"key_file": path}),
                    crate::BigQueryAuth::Token { from, .. } => serde_json::json!({"token": from}),
                },
                "base_url": redact_url(&b.base_url),
            }),
        }
    }

    /// The column the manifest's time range is read from.
    fn time_column(&self) -> Option<&str> {
        match self {
            FetchSpec::File(f) => f.time_column.as_deref(),
            FetchSpec::Yahoo(y) if crate::source::INTRADAY.contains(&y.interval.as_str()) => Some("time"),
            FetchSpec::Yahoo(_) => Some("date"),
            FetchSpec::BigQuery(_) => None,
        }
    }
}

/// What one fetch did.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    pub snapshot: crate::snapshot::SnapshotOutcome,
    /// rows in the snapshot
    pub rows: u64,
    /// what was dropped or noticed on the way (also in the manifest)
    pub notes: Vec<String>,
}

/// Fetches `spec` into a snapshot `<source>/<name>` of `store` (see [`crate::snapshot`]); `note` gets progress lines.
///
/// # Errors
/// [`FetchError`]; nothing is left in the store on an error.
pub fn fetch(
    spec: &FetchSpec,
    name: Option<&str>,
    store: &crate::snapshot::SnapshotStore,
    note: &mut dyn FnMut(&str),
) -> Result<FetchOutcome, FetchError> {
    let name = name.map_or_else(|| spec.default_name(), str::to_string);
    let mut writer =
        crate::snapshot::SnapshotWriter::begin(store, spec.source(), &name, spec.request_json(), spec.time_column())?;
    let notes = match spec {
        FetchSpec::File(request) => {
            let downloaded;
            let path = if is_url(&request.location) {
                downloaded = download(&request.location, note)?;
                downloaded.path().to_path_buf()
            } else {
                PathBuf::from(&request.location)
            };
            let opts = crate::ReadOptions {
                time_column: request.time_column.clone(),
                time_format: request.time_format.clone(),
                series_column: request.series_column.clone(),
                ..crate::ReadOptions::default()
            };
            let frame = crate::read_frame(&path, &opts)?;
            note(&format!("{}: {} rows, {} columns", request.location_shown(), frame.n_rows(), frame.n_cols()));
            let df = crate::write::parquet_frame(&path, &frame)?;
            writer.page(&df)?;
            Vec::new()
        }
        FetchSpec::Yahoo(request) => {
            let summary = crate::source::fetch_yahoo(request, &mut |page| writer.page(&page), note)?;
            let mut notes = Vec::new();
            if summary.dropped_null_bars > 0 {
                notes.push(format!("{} bar(s) whose values were all null dropped", summary.dropped_null_bars));
            }
            notes
        }
        FetchSpec::BigQuery(request) => {
            crate::source::fetch_bigquery(request, &mut |page| writer.page(&page), note)?;
            Vec::new()
        }
    };
    let rows = writer.rows();
    let snapshot = writer.finish(notes.clone())?;
    Ok(FetchOutcome { snapshot, rows, notes })
}

/// `text` with every character that cannot be in a snapshot name replaced by `_`.
fn safe_name(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || "._-=^".contains(c) { c } else { '_' }).collect()
}

impl FileRequest {
    /// The location as the manifest and messages show it: a URL without its user info and query string.
    fn location_shown(&self) -> String {
        if is_url(&self.location) { redact_url(&self.location) } else { self.location.clone() }
    }
}

pub(crate) fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// A URL as [`crate::source::shown_url`] shows it, without its query string and fragment (where tokens travel).
pub(crate) fn redact_url(url: &str) -> String {
    crate::source::shown_url(url.split(['?', '#']).next().unwrap_or(url))
}

/// Downloads a URL into a temporary file that keeps the URL's extension (the file type is read from it), with the
/// retries and backoff of the other adapters.
fn download(url: &str, note: &mut dyn FnMut(&str)) -> Result<tempfile::NamedTempFile, FetchError> {
    let shown = redact_url(url);
    let ext = Path::new(url.split(['?', '#']).next().unwrap_or_default())
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    note(&format!("downloading {shown}"));
    let policy = crate::HttpPolicy { min_interval: std::time::Duration::ZERO, ..crate::HttpPolicy::default() };
    let mut client = crate::source::HttpClient::new(&policy);
    let answer = client.send(&crate::source::Request::get(url), note)?;
    let mut tmp = tempfile::Builder::new()
        .prefix("kiln-fetch-")
        .suffix(&ext)
        .tempfile()
        .map_err(|source| FetchError::Io { path: std::env::temp_dir(), source })?;
    tmp.as_file_mut()
        .write_all(&answer.body)
        .map_err(|source| FetchError::Io { path: tmp.path().to_path_buf(), source })?;
    Ok(tmp)
}
