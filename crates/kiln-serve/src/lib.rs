//! kiln's HTTP service; it reads no files, config or stores (the CLI hands it a loaded model). [`router`] answers `GET /health`, `GET /ready`, `GET /model`, `POST /predict`,
//! `POST /predict/batch` and `POST /observe` (with `GET`/`DELETE /observe/{series}`) for one loaded model, and [`serve`] runs it on a listener until a shutdown signal, letting
//! requests in flight finish, with a deadline for request heads, an idle timeout and a cap on open connections
//! ([`ConnectionLimits`]). The only crate that knows HTTP-server types.
//!
//! Key decisions: requests are read straight from the JSON bytes into column buffers checked against the model's
//! input schema (no JSON tree); the features come from the bundle's own fitted pipeline, so an answer equals
//! `kiln predict` on the same rows bit for bit; every rejection is a 4xx `{"error": {"code", "message", "field"}}`
//! with a stable code ([`kiln_domain::Code`]); the model sits behind an atomically swappable pointer ([`AppState::set_model`]).
//! `GET /metrics`, `GET /openapi.json` and `GET /docs` describe the service; API keys, CORS, a timeout, a rate limit
//! and the access log are layers added only when configured ([`HttpConfig`]).
//!
//! `/observe` keeps a bounded store of series, each with the pipeline's own streaming state; [`watch`] swaps in the
//! version a moving reference points at, through a [`ModelSource`] the caller implements. This crate reads no
//! config, flags or environment and knows no store: the CLI resolves the model and passes plain values.

mod conn;
mod drift;
mod error;
mod handlers;
mod metrics;
mod middleware;
mod model;
mod observe;
mod openapi;
mod parse;
mod reload;
mod score;
mod shadow;
mod state;
mod time;
mod variant;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use conn::{ConnectionLimits, TOO_MANY_CONNECTIONS, raise_open_file_limit};
pub use error::ApiError;
pub use handlers::VARIANT_HEADER;
pub use middleware::{
    AccessLog, AccessLogSink, ApiKeys, ConfigError, Cors, DEFAULT_API_KEY_HEADER, HttpConfig, REQUEST_ID_HEADER,
    RateLimit,
};
pub use model::{LoadError, LoadedModel, ModelIdentity, RUN_HEADER, VERSION_HEADER};
pub use reload::{Check, ModelSource, Watcher, watch, watch_variant};
pub use state::{AppState, DEFAULT_VARIANT, DriftConfig, ServeConfig, VariantModel};
pub use variant::{Role, RolloutError, StickyKey, TOTAL_BASIS_POINTS, check_variants, fnv1a64, percent, slot_of_key};

/// The service's routes over `state`; call it with `tower::ServiceExt::oneshot` in tests, or [`serve`] it.
pub fn router(state: AppState) -> Router {
    let limit = state.config().max_body_bytes;
    let routes = Router::new()
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .route("/model", get(handlers::model_info))
        .route("/predict", post(handlers::predict))
        .route("/predict/batch", post(handlers::predict_batch))
        .route("/observe", post(handlers::observe))
        .route("/observe/{series}", get(handlers::series_status).delete(handlers::series_delete))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .route("/docs", get(openapi::docs))
        .fallback(handlers::route_not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), handlers::attach_model))
        .with_state(state.clone());
    middleware::apply(routes, &state)
}

/// Serves [`router`] on `listener` until `shutdown` completes, then stops accepting connections and waits for the
/// requests in flight to finish. Connections are held to `limits`: a deadline for a request head, an idle timeout,
/// and a cap beyond which a connection is answered 503 `too_many_connections` and closed.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, state.clone(), router(state), limits, shutdown).await
}

#[cfg(test)]
mod tests;
