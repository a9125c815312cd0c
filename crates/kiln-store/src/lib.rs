//! kiln's tracking store: the embedded store that writes MLflow's own file-store layout ([`LocalStore`]), the MLflow
//! server behind the same ports ([`RestStore`]), the fallback wrapper ([`GuardedStore`]), `kiln sync`, the bundle
//! cache, PNG charts for runs ([`PlotChartRenderer`]) and tuning studies in Optuna's RDB schema (SQLite or PostgreSQL,
//! [`open_study_storage`]); it reads and writes no data files (that is `kiln-data`).
//!
//! Key decision: no plotters, ureq or `serde_json` type appears in a public signature; everything outside this crate
//! sees only domain types and [`kiln_domain::PortError`]. Internal edges: `kiln-domain` only (`kiln-models` is allowed
//! for the bundle format but not needed: bundles move as folders). It does not depend on `kiln-data`: tracking
//! stores no data file of its own, only a run's fingerprint of it, which `kiln-data` computes.

mod bundle_cache;
mod chart;
mod guard;
mod mlflow_rest;
mod mlruns;
mod study;
mod sync;

pub use bundle_cache::{BundleCache, Cached};
pub use chart::PlotChartRenderer;
pub use guard::{FailedOver, GuardedStore};
pub use mlflow_rest::{Credentials, RestConfig, RestStore};
pub use mlruns::{LocalStore, Repaired};
pub use study::{PostgresStudyStorage, SqliteStudyStorage, open_study_storage, redact_storage_url};
pub use sync::{SyncReport, sync};
