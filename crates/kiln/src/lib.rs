//! kiln as a library: load a model kiln trained and registered, and score frames with it from a Rust service, with
//! the same code `kiln predict` runs; no training code, no HTTP server, no CLI.
//!
//! ```no_run
//! use std::path::Path;
//!
//! // resolved in $MLFLOW_TRACKING_URI (a folder or an MLflow server), else ./mlruns; checksums verified
//! let predictor = kiln::Predictor::load("models:/churn@production")?;
//! // only the model's input columns, each parsed as the fitted pipeline needs it
//! let frame = kiln::read_frame(Path::new("data/Telco-Customer-Churn_IBM.csv"), &predictor.read_options())?;
//! let predictions = predictor.predict(&frame)?;
//! if let (kiln::RowKeys::Ids { values: ids, .. }, Some(classes)) = (&predictions.keys, &predictions.classes) {
//!     for ((id, p), class) in ids.iter().zip(&predictions.values).zip(classes).take(3) {
//!         println!("{id}: {p:.3} -> {class}");
//!     }
//! }
//! if let Some(v) = predictor.version() {
//!     println!("{} version {}", v.name, v.version);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is here:
//! - [`Predictor`]: [`Predictor::load`] / [`Predictor::load_from`] a reference, [`Predictor::predict`] a
//!   [`Frame`] into [`Predictions`] (a forecast's origin times and predictions; a regression's ids and predictions;
//!   a classifier's ids, probabilities and classes), and what the model is ([`Predictor::version`],
//!   [`Predictor::task`], [`Predictor::input_columns`], [`Predictor::bundle`]).
//! - [`load_bundle`]: the verified bundle a reference points at, with the version it resolved to and exactly what
//!   was loaded ([`LoadedBundle::source`]); [`current_version`]: where a `models:/` reference points now, without
//!   downloading anything (to poll an alias).
//! - [`open_store`], [`tracking_uri`], [`cache_dir`]: the tracking store a URI names (a folder in MLflow's layout,
//!   or an MLflow server with MLflow's client environment variables), and kiln's cache.
//! - Reading and writing data ([`read_frame`], [`read_chunks`], [`write_frame`]) and the types a service needs,
//!   re-exported so that `kiln` is its only kiln dependency.
//!
//! Key decisions:
//! - **Typed errors.** Every function returns [`Error`], whose [`Error::code`] is one of kiln's stable
//!   [`Code`]s: a service can tell a wrong reference or input (fix it) from an unreachable server (keep the model
//!   it has, retry) without reading messages. Libraries in this workspace keep `anyhow` out of their API.
//! - **One scoring path.** [`Predictor::predict`] is `kiln_score::score`, the whole-frame path `kiln predict` is
//!   tested bit for bit against; nothing is re-implemented here.
//! - **The facade reads the environment the MLflow client reads** (`MLFLOW_TRACKING_URI`, credentials, timeouts)
//!   and kiln's cache variables, so a service configured for MLflow's Python client finds the same models.
//! - **Loading from a server writes one line on stderr** (`downloaded ...` or `cached ...`), as the CLI shows it;
//!   opening a server also writes the final statuses of runs an earlier kiln could not finish there, with a note.

mod error;
mod load;
mod predictor;
mod store;

pub use error::{Error, Result};
pub use load::{LoadedBundle, current_version, load_bundle};
pub use predictor::{Predictions, Predictor, TARGET_TIME_COLUMN, Task, read_options};
pub use store::{
    Opened, Store, bundle_cache, cache_dir, create_local_store, create_store, is_server, open_local_store, open_store,
    pending_dir, redact_user_info, rest_config, tracking_uri,
};

// What a service needs to hold, read and write data and to look inside a model, without naming other kiln crates.
pub use kiln_data::{FrameChunks, ReadError, ReadOptions, frame_from_columns, read_chunks, read_frame, write_frame};
pub use kiln_domain::{
    CivilDateTime, Code, Column, ColumnKind, ErrorKind, Frame, ModelRef, ModelVersion, RunId, Stage, chain_text,
    civil_from_millis,
};
pub use kiln_features::FittedPipeline;
pub use kiln_models::{Bundle, BundleMetadata, ModelFormat};
pub use kiln_score::{ChunkScorer, RowKeys, ScoreError, ScoreTotals, StreamError, score_stream};
pub use kiln_store::{BundleCache, LocalStore, RestStore};
