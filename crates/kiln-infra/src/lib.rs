//! kiln's adapters to the outside world: data files in and out as [`kiln_domain::Frame`]s, whole or chunk by chunk
//! (CSV with the `csv` crate, Parquet with polars), the embedded tracking store that writes MLflow's own file-store
//! layout ([`LocalStore`]), the MLflow server behind the same ports ([`RestStore`]), and PNG charts
//! ([`PlotChartRenderer`]).
//!
//! Key decision: no polars or plotters type appears in a public signature; everything outside this crate sees only
//! domain types, [`ReadError`] and [`kiln_domain::PortError`].

mod bundle_cache;
mod chart;
mod error;
mod guard;
mod mlflow_rest;
mod mlruns;
mod read;
mod sync;
mod timefmt;
mod write;

pub use bundle_cache::{BundleCache, Cached};
pub use chart::PlotChartRenderer;
pub use error::{Location, ReadError};
pub use guard::{FailedOver, GuardedStore};
pub use mlflow_rest::{Credentials, RestConfig, RestStore};
pub use mlruns::LocalStore;
pub use read::{FrameChunks, ReadOptions, ReadProgress, read_chunks, read_frame, sha256_file};
pub use sync::{SyncReport, sync};
pub use write::{FrameWriter, write_frame};
