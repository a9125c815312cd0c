//! The shared state of the router: the limits it was configured with and the current model behind a lock that is
//! held only to clone or replace an `Arc`, so a model can be swapped while requests run (each request keeps the
//! model it started with until it answers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use crate::LoadedModel;
use crate::observe::SeriesStore;
use crate::variant::{Role, RolloutError, Split, StickyKey, VariantStats, schema_difference};

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
    rollout: Rollout,
    series: SeriesStore,
    reloads: ReloadStats,
    metrics: crate::metrics::Metrics,
    http: crate::middleware::HttpRuntime,
    /// the queue to the shadow scorer, when there are shadow variants
    shadow: Option<SyncSender<crate::shadow::ShadowJob>>,
    pub(crate) shadow_dropped: AtomicU64,
    drift: Option<crate::drift::DriftMonitor>,
}

/// One variant: its name, role, current model and counters.
pub(crate) struct Variant {
    pub(crate) name: String,
    pub(crate) role: Role,
    model: RwLock<Option<Arc<LoadedModel>>>,
    pub(crate) header: HeaderValue,
    pub(crate) stats: VariantStats,
}

/// The variants and how requests are shared among them.
pub(crate) struct Rollout {
    pub(crate) variants: Vec<Variant>,
    /// the canary with the largest weight (the first of equals): `/model`, `/ready`, `/observe` and series records
    pub(crate) primary: usize,
    pub(crate) split: Split,
    pub(crate) sticky: Option<StickyKey>,
    pub(crate) shadows: Vec<usize>,
}

impl Rollout {
    fn new(variants: Vec<(String, Role)>, sticky: Option<StickyKey>) -> Rollout {
        let roles: Vec<Role> = variants.iter().map(|(_, r)| *r).collect();
        let primary = roles
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Role::Canary { basis_points } => Some((i, *basis_points)),
                Role::Shadow => None,
            })
            .fold(None, |best: Option<(usize, u32)>, (i, w)| match best {
                Some((_, bw)) if bw >= w => best,
                _ => Some((i, w)),
            })
            .map_or(0, |(i, _)| i);
        let shadows = roles.iter().enumerate().filter(|(_, r)| **r == Role::Shadow).map(|(i, _)| i).collect();
        let variants = variants
            .into_iter()
            .map(|(name, role)| Variant {
                header: HeaderValue::from_str(&name).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
                name,
                role,
                model: RwLock::new(None),
                stats: VariantStats::new(),
            })
            .collect();
        Rollout { variants, primary, split: Split::new(&roles), sticky, shadows }
    }

    /// Whether requests are shared (more than one variant, shadows included).
    pub(crate) fn several(&self) -> bool {
        self.variants.len() > 1
    }
}

/// What hot reload did, for `/metrics`: how many swaps succeeded and failed, and the last failure.
#[derive(Debug, Default)]
pub(crate) struct ReloadStats {
    pub(crate) ok: AtomicU64,
    pub(crate) failed: AtomicU64,
    /// when (UTC ms) and why the last reload failed
    pub(crate) last_error: Mutex<Option<(i64, String)>>,
}

/// A model with its variant's name and role, for [`AppState::with_variants`].
#[derive(Debug)]
pub struct VariantModel {
    pub name: String,
    pub role: Role,
    pub model: LoadedModel,
}

/// Live drift's settings: how many recent records the window holds and how often it is updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftConfig {
    pub window: usize,
    pub every: Duration,
}

/// A state that the background threads (shadow scorer, drift window) hold without keeping it alive.
pub(crate) struct WeakState(std::sync::Weak<Inner>);

impl WeakState {
    pub(crate) fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(|inner| AppState { inner })
    }
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

/// The default variant's name, when one model is served.
pub const DEFAULT_VARIANT: &str = "default";

impl AppState {
    /// A state without a model: `/health` answers, `/ready` and the prediction routes answer 503 until
    /// [`AppState::set_model`].
    pub fn new(config: ServeConfig) -> AppState {
        let rollout = Rollout::new(vec![(DEFAULT_VARIANT.to_string(), Role::Canary { basis_points: 10_000 })], None);
        AppState::build(config, rollout, None)
    }

    fn build(config: ServeConfig, rollout: Rollout, drift: Option<DriftConfig>) -> AppState {
        let series = SeriesStore::new(config.max_series, config.series_rows);
        let http = crate::middleware::HttpRuntime::new(&config);
        let metrics = crate::metrics::Metrics::default();
        let (shadow, rx) = if rollout.shadows.is_empty() {
            (None, None)
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel(crate::shadow::QUEUE);
            (Some(tx), Some(rx))
        };
        let drift = drift.map(crate::drift::DriftMonitor::new);
        let inner = Inner {
            config,
            rollout,
            series,
            reloads: ReloadStats::default(),
            metrics,
            http,
            shadow,
            shadow_dropped: AtomicU64::new(0),
            drift,
        };
        let state = AppState { inner: Arc::new(inner) };
        if let Some(rx) = rx {
            crate::shadow::start(WeakState(Arc::downgrade(&state.inner)), rx);
        }
        if let Some(every) = state.inner.drift.as_ref().map(|d| d.config().every) {
            crate::drift::start(WeakState(Arc::downgrade(&state.inner)), every);
        }
        state
    }

    /// A state serving `model`.
    pub fn with_model(config: ServeConfig, model: LoadedModel) -> AppState {
        let state = AppState::new(config);
        state.set_model(model);
        state
    }

    /// A state serving several variants: canaries sharing the requests by weight (by a hash of `sticky` when a
    /// request carries it), shadows scoring copies off the response path; with `drift`, a live drift window over
    /// the primary variant's features (when its bundle has a reference profile).
    ///
    /// # Errors
    /// [`RolloutError`]: names or weights (see [`crate::check_variants`]), variants whose inputs differ, a sticky
    /// key field the records do not have.
    pub fn with_variants(
        config: ServeConfig,
        variants: Vec<VariantModel>,
        sticky: Option<StickyKey>,
        drift: Option<DriftConfig>,
    ) -> Result<AppState, RolloutError> {
        crate::variant::check_variants(variants.iter().map(|v| (v.name.as_str(), v.role)))?;
        let rollout = Rollout::new(variants.iter().map(|v| (v.name.clone(), v.role)).collect(), sticky);
        let primary = &variants[rollout.primary];
        for v in &variants {
            if let Some(difference) = schema_difference(&primary.model.schema, &v.model.schema) {
                return Err(RolloutError::SchemaDiffers { a: primary.name.clone(), b: v.name.clone(), difference });
            }
        }
        if let Some(StickyKey::Field(field)) = &rollout.sticky
            && primary.model.schema.position(field).is_none()
            && !(primary.model.schema.windowed && field == "series")
        {
            let fields = primary.model.schema.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(RolloutError::UnknownField { field: field.clone(), fields });
        }
        let state = AppState::build(config, rollout, drift);
        for (i, v) in variants.into_iter().enumerate() {
            state.install(i, v.model);
        }
        Ok(state)
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

    pub(crate) fn rollout(&self) -> &Rollout {
        &self.inner.rollout
    }

    /// Live drift: `None` when off, else the features monitored, or why the primary model has no window.
    pub fn live_drift(&self) -> Option<Result<Vec<String>, String>> {
        let drift = self.inner.drift.as_ref()?;
        Some(match drift.current() {
            Some(window) => Ok(window.monitored.iter().map(|m| m.name.clone()).collect()),
            None => Err(drift
                .off_reason
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
                .unwrap_or_else(|| "no model".to_string())),
        })
    }

    pub(crate) fn drift(&self) -> Option<&crate::drift::DriftMonitor> {
        self.inner.drift.as_ref()
    }

    pub(crate) fn shadow_dropped(&self) -> u64 {
        self.inner.shadow_dropped.load(Ordering::Relaxed)
    }

    /// Hands a request to the shadow scorer; a full queue drops it (counted).
    pub(crate) fn shadow(&self, job: crate::shadow::ShadowJob) {
        if let Some(tx) = &self.inner.shadow
            && tx.try_send(job).is_err()
        {
            self.inner.shadow_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The variants' names, in the order given.
    pub fn variant_names(&self) -> Vec<String> {
        self.inner.rollout.variants.iter().map(|v| v.name.clone()).collect()
    }

    /// The model answering new requests (the primary variant's).
    pub fn model(&self) -> Option<Arc<LoadedModel>> {
        self.variant_model(self.inner.rollout.primary)
    }

    /// Variant `i`'s model.
    pub fn variant_model(&self, i: usize) -> Option<Arc<LoadedModel>> {
        // the lock only guards an Arc swap, which cannot leave it half-written: a poisoned lock is still consistent
        self.inner.rollout.variants.get(i)?.model.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replaces the model atomically and returns the previous one; requests already running finish with the model
    /// they started with.
    pub fn set_model(&self, model: LoadedModel) -> Option<Arc<LoadedModel>> {
        self.install(self.inner.rollout.primary, model)
    }

    /// Replaces variant `i`'s model, unless its input differs from another variant's.
    ///
    /// # Errors
    /// The difference, for the reload log.
    pub fn set_variant_model(&self, i: usize, model: LoadedModel) -> Result<Option<Arc<LoadedModel>>, String> {
        let rollout = &self.inner.rollout;
        for (j, other) in rollout.variants.iter().enumerate() {
            if j == i {
                continue;
            }
            if let Some(current) = self.variant_model(j)
                && let Some(d) = schema_difference(&current.schema, &model.schema)
            {
                return Err(format!(
                    "the new model of variant '{}' takes another input than variant '{}': {d}",
                    rollout.variants[i].name, other.name
                ));
            }
        }
        Ok(self.install(i, model))
    }

    fn install(&self, i: usize, model: LoadedModel) -> Option<Arc<LoadedModel>> {
        let variant = &self.inner.rollout.variants[i];
        // the prediction buckets are fixed by the variant's first model (Prometheus cannot merge other buckets)
        variant
            .stats
            .predictions
            .get_or_init(|| crate::metrics::ValueHistogram::new(crate::metrics::value_buckets(model.bundle()).0));
        if i == self.inner.rollout.primary
            && let Some(drift) = &self.inner.drift
        {
            drift.attach(&model);
        }
        let mut slot = variant.model.write().unwrap_or_else(PoisonError::into_inner);
        slot.replace(Arc::new(model))
    }
}
