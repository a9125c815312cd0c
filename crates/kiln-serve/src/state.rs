//! The shared state of the router: the limits it was configured with and the current model behind a lock that is
//! held only to clone or replace an `Arc`, so a model can be swapped while requests run (each request keeps the
//! model it started with until it answers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::LoadedModel;
use crate::observe::SeriesStore;

/// The service's limits, built by the caller (the CLI) from flags; this crate reads no config of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServeConfig {
    /// the most records one `/predict/batch` request may carry
    pub max_batch_records: usize,
    /// the largest request body, in bytes
    pub max_body_bytes: usize,
    /// `/observe`: the most series kept at once
    pub max_series: usize,
    /// `/observe`: the raw rows kept per series, to rebuild it for a new model
    pub series_rows: usize,
    /// API keys, CORS, timeout, rate limit, access log (never serialized: `/model` shows the limits only)
    #[serde(skip)]
    pub http: crate::HttpConfig,
}

impl ServeConfig {
    pub const DEFAULT_MAX_BATCH_RECORDS: usize = 1000;
    /// 4 MiB: a 1000-record tabular batch, or a forecast window of tens of thousands of rows
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
    pub const DEFAULT_MAX_SERIES: usize = 1000;
    pub const DEFAULT_SERIES_ROWS: usize = 1000;
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_batch_records: Self::DEFAULT_MAX_BATCH_RECORDS,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_series: Self::DEFAULT_MAX_SERIES,
            series_rows: Self::DEFAULT_SERIES_ROWS,
            http: crate::HttpConfig::default(),
        }
    }
}

struct Inner {
    config: ServeConfig,
    model: RwLock<Option<Arc<LoadedModel>>>,
    series: SeriesStore,
    reloads: ReloadStats,
    metrics: crate::metrics::Metrics,
    http: crate::middleware::HttpRuntime,
}

/// What hot reload did, for `/metrics`: how many swaps succeeded and failed, and the last failure.
#[derive(Debug, Default)]
pub(crate) struct ReloadStats {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// when (UTC ms) and why the last reload failed
    pub(crate) last_error: Mutex<Option<(i64, String)>>,
}

/// What every handler sees. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.inner.config)
            .field("model", &self.model().map(|m| m.identity().clone()))
            .finish()
    }
}

impl AppState {
    /// A state without a model: `/health` answers, `/ready` and the prediction routes answer 503 until
    /// [`AppState::set_model`].
    pub fn new(config: ServeConfig) -> AppState {
        let series = SeriesStore::new(config.max_series, config.series_rows);
        let http = crate::middleware::HttpRuntime::new(&config);
        let metrics = crate::metrics::Metrics::default();
        let inner = Inner { config, model: RwLock::new(None), series, reloads: ReloadStats::default(), metrics, http };
        AppState { inner: Arc::new(inner) }
    }

    /// A state serving `model`.
    pub fn with_model(config: ServeConfig, model: LoadedModel) -> AppState {
        let state = AppState::new(config);
        state.set_model(model);
        state
    }

    pub fn config(&self) -> &ServeConfig {
        &self.inner.config
    }

    /// Counts a hot reload: `None` when the new model was swapped in, else why it was not.
    pub fn record_reload(&self, error: Option<&str>) {
        let stats = &self.inner.reloads;
        match error {
            None => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Some(e) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                let mut last = stats.last_error.lock().unwrap_or_else(PoisonError::into_inner);
                *last = Some((i64::try_from(now).unwrap_or(i64::MAX), e.to_string()));
            }
        }
    }

    /// The request counters of `/metrics`.
    pub(crate) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// What the middleware layers share (request ids, rate limit buckets, the access log).
    pub(crate) fn http(&self) -> &crate::middleware::HttpRuntime {
        &self.inner.http
    }

    /// What hot reload did so far.
    pub(crate) fn reloads(&self) -> &ReloadStats {
        &self.inner.reloads
    }

    /// The series kept by `/observe`.
    pub(crate) fn series(&self) -> &SeriesStore {
        &self.inner.series
    }

    /// The model answering new requests.
    pub fn model(&self) -> Option<Arc<LoadedModel>> {
        // the lock only guards an Arc swap, which cannot leave it half-written: a poisoned lock is still consistent
        self.inner.model.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the model atomically and returns the previous one; requests already running finish with the model
    /// they started with.
    pub fn set_model(&self, model: LoadedModel) -> Option<Arc<LoadedModel>> {
        let mut slot = self.inner.model.write().unwrap_or_else(PoisonError::into_inner);
        slot.replace(Arc::new(model))
    }
}
