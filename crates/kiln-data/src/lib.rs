//! kiln's data in and out: CSV and Parquet files read into and written from [`kiln_domain::Frame`]s, whole or chunk
//! by chunk (CSV with the `csv` crate, Parquet with polars), and the [`kiln_domain::DataSource`] adapters; it knows
//! nothing about tracking, models or the MLflow store (that is `kiln-store`).
//!
//! Key decision: no polars type appears in a public signature; everything outside this crate sees only domain types,
//! [`ReadError`] and [`kiln_domain::SourceError`].

mod columns;
mod error;
mod fetch;
mod read;
mod snapshot;
mod source;
mod timefmt;
mod write;

pub use columns::frame_from_columns;
pub use error::{Location, ReadError, SeriesOrderError};
pub use fetch::{FetchError, FetchOutcome, FetchSpec, FileRequest, fetch};
pub use read::{
    FrameChunks, MAX_COLUMNS, MAX_LINE_BYTES, ReadOptions, ReadProgress, TimeTextParser, Unparsed, column_names,
    read_chunks, read_frame, sha256_file,
};
pub use snapshot::{Manifest, ManifestColumn, Snapshot, SnapshotOutcome, SnapshotStore};
pub use source::{
    BIGQUERY_BASE_URL, BigQueryAuth, BigQueryRequest, FetchSummary, FileSource, HttpPolicy, YAHOO_BASE_URL,
    YahooRequest,
};
pub use timefmt::check_time_format;
pub use write::{Compression, FrameWriter, write_frame};
