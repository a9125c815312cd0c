//! The shared state of the router: the limits it was configured with and the current model behind a lock that is
//! held only to clone or replace an `Arc`, so a model can be swapped while requests run (each request keeps the
//! model it started with until it answers).

use std::sync::{Arc, PoisonError, RwLock};

use crate::LoadedModel;

/// The service's limits, built by the caller (the CLI) from flags; this crate reads no config of its own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServeConfig {
    /// the most records one `/predict/batch` request may carry
    pub max_batch_records: usize,
    /// the largest request body, in bytes
    pub max_body_bytes: usize,
}

impl ServeConfig {
    pub const DEFAULT_MAX_BATCH_RECORDS: usize = 1000;
    /// 4 MiB: a 1000-record tabular batch, or a forecast window of tens of thousands of rows
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig { max_batch_records: Self::DEFAULT_MAX_BATCH_RECORDS, max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES }
    }
}

struct Inner {
    config: ServeConfig,
    model: RwLock<Option<Arc<LoadedModel>>>,
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
        AppState { inner: Arc::new(Inner { config, model: RwLock::new(None) }) }
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
