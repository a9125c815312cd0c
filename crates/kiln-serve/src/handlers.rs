//! The routes. Each request is pinned to the model that was current when it arrived ([`attach_model`]), which
//! answers it and is named in its headers; parsing, features and prediction run on tokio's blocking pool, never on
//! the executor's threads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_domain::Code;
use serde::Serialize;

use crate::error::ApiError;
use crate::model::{LoadedModel, ModelIdentity, ModelInfo};
use crate::observe::SeriesStatus;
use crate::parse::{self, Mode};
use crate::score::{self, Answer};
use crate::state::{AppState, ServeConfig};

/// The model a request was pinned to on arrival (none before a model is loaded).
#[derive(Clone)]
pub(crate) struct Current(pub(crate) Option<Arc<LoadedModel>>);

/// Pins the current model to the request and names it in the response headers, whatever the route answered.
pub(crate) async fn attach_model(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let model = state.model();
    request.extensions_mut().insert(Current(model.clone()));
    let mut response = next.run(request).await;
    if let Some(model) = model {
        model.set_headers(response.headers_mut());
    }
    response
}

fn current(request: &Request) -> Result<Arc<LoadedModel>, ApiError> {
    request.extensions().get::<Current>().and_then(|c| c.0.clone()).ok_or_else(ApiError::not_ready)
}

#[derive(Serialize)]
struct Status<'a> {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a ModelIdentity>,
}

/// `GET /health`: the process is up and answering (even before a model is loaded).
pub(crate) async fn health() -> Response {
    Json(Status { status: "alive", model: None }).into_response()
}

/// `GET /ready`: 200 when a model is loaded, else 503 `not_ready`.
pub(crate) async fn ready(request: Request) -> Result<Response, ApiError> {
    let model = current(&request)?;
    Ok(Json(Status { status: "ready", model: Some(model.identity()) }).into_response())
}

#[derive(Serialize)]
struct Info<'a> {
    #[serde(flatten)]
    info: &'a ModelInfo,
    limits: &'a ServeConfig,
}

/// `GET /model`: who the model is, its test metrics, what a request must carry, its features.
pub(crate) async fn model_info(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let model = current(&request)?;
    Ok(Json(Info { info: &model.info, limits: state.config() }).into_response())
}

#[derive(Serialize)]
struct Single<'a> {
    #[serde(flatten)]
    answer: &'a Answer,
    model: &'a ModelIdentity,
}

#[derive(Serialize)]
struct Batch<'a> {
    predictions: &'a [Answer],
    model: &'a ModelIdentity,
}

/// `POST /predict`: one record.
pub(crate) async fn predict(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    run(state, request, false).await
}

/// `POST /predict/batch`: `{"records": [...]}`, at most the configured number.
pub(crate) async fn predict_batch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    run(state, request, true).await
}

async fn run(state: AppState, request: Request, batch: bool) -> Result<Response, ApiError> {
    let model = current(&request)?;
    check_json(request.headers())?;
    let limit = state.config().max_body_bytes;
    let body = Bytes::from_request(request, &state).await.map_err(|e| body_rejection(e, limit))?;
    let mode = if batch { Mode::Batch { max_records: state.config().max_batch_records } } else { Mode::Single };
    let body_len = body.len();
    let work = move || -> Result<Vec<u8>, ApiError> {
        let parsed = parse::parse(&model.schema, &body, mode)?;
        let answers = score::answer(&model, state.series(), parsed, batch)?;
        model.stats.record(&answers);
        state.metrics().scored(answers.len());
        let identity = model.identity();
        let written = if batch {
            serde_json::to_vec(&Batch { predictions: &answers, model: identity })
        } else {
            match answers.first() {
                Some(answer) => serde_json::to_vec(&Single { answer, model: identity }),
                None => return Err(ApiError::internal("no answer for a single record")),
            }
        };
        written.map_err(ApiError::internal)
    };
    // one small record (a tabular row, a short window, a series key) costs a few tens of microseconds: answered on
    // the executor thread, which saves the hand-off to the blocking pool; batches and long windows go there
    let json = if !batch && body_len <= INLINE_BODY_BYTES {
        work()?
    } else {
        tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)??
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// The largest single-record body answered without the blocking pool.
const INLINE_BODY_BYTES: usize = 16 * 1024;

/// `Content-Type: application/json` (parameters such as `charset=utf-8` allowed) or `application/<x>+json`.
fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
    let essence = given.map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(e) if e.starts_with("application/") && e.ends_with("+json") => Ok(()),
        _ => Err(ApiError::new(
            Code::UnsupportedMediaType,
            format!(
                "the body must be JSON with Content-Type: application/json, got {}",
                given.map_or("no Content-Type".to_string(), |g| format!("'{g}'"))
            ),
        )),
    }
}

fn body_rejection(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(Code::PayloadTooLarge, format!("the body is larger than this server's limit of {limit} bytes"))
    } else {
        ApiError::new(Code::BodyUnreadable, format!("the body could not be read: {}", e.body_text()))
    }
}

pub(crate) async fn route_not_found(request: Request) -> ApiError {
    ApiError::new(
        Code::RouteNotFound,
        format!(
            "no route {}; the routes are GET /health, GET /ready, GET /model, POST /predict, POST /predict/batch, \
             POST /observe, GET|DELETE /observe/{{series}}, GET /metrics, GET /openapi.json, GET /docs",
            request.uri().path()
        ),
    )
}

pub(crate) async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(Code::MethodNotAllowed, format!("{} does not take {}", request.uri().path(), request.method()))
}

#[derive(Serialize)]
struct Observed<'a> {
    #[serde(flatten)]
    status: &'a SeriesStatus,
    model: &'a ModelIdentity,
}

fn observed(status: &SeriesStatus, model: &LoadedModel) -> Result<Response, ApiError> {
    let json = serde_json::to_vec(&Observed { status, model: model.identity() }).map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// `POST /observe`: `{"series": "<key>", "rows": [row, ...]}` appends the rows to the series (created on its first
/// rows); `/predict` with `{"series": "<key>"}` then forecasts from the newest.
pub(crate) async fn observe(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let model = current(&request)?;
    if !model.schema.windowed {
        return Err(crate::observe::not_forecast());
    }
    check_json(request.headers())?;
    let limit = state.config().max_body_bytes;
    let body = Bytes::from_request(request, &state).await.map_err(|e| body_rejection(e, limit))?;
    tokio::task::spawn_blocking(move || {
        let (key, rows) = parse::parse_observe(&model.schema, &body)?;
        let status = state.series().observe(&model, key, rows)?;
        observed(&status, &model)
    })
    .await
    .map_err(ApiError::internal)?
}

/// `GET /observe/{series}`: what is kept of a series.
pub(crate) async fn series_status(
    State(state): State<AppState>,
    Path(key): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let model = current(&request)?;
    observed(&state.series().status(&key)?, &model)
}

/// `DELETE /observe/{series}`: forgets a series.
pub(crate) async fn series_delete(
    State(state): State<AppState>,
    Path(key): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let model = current(&request)?;
    observed(&state.series().remove(&key)?, &model)
}
