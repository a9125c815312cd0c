//! The routes. Each request is pinned to the model that was current when it arrived ([`attach_model`]), which
//! answers it and is named in its headers; parsing, features and prediction run on tokio's blocking pool, never on
//! the executor's threads.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kiln_domain::Code;
use serde::Serialize;

use crate::error::ApiError;
use crate::model::{LoadedModel, ModelIdentity, ModelInfo};
use crate::observe::SeriesStatus;
use crate::parse::{self, Mode, Parsed};
use crate::score::{self, Answer};
use crate::state::{AppState, ServeConfig};
use crate::variant::StickyKey;

/// The model a request was pinned to on arrival (none before a model is loaded): the primary variant's.
#[derive(Clone)]
pub(crate) struct Current(pub(crate) Option<Arc<LoadedModel>>);

/// On a response: the variant (its index) that answered it, and the very model that did (the variant's slot may
/// hold a newer one by the time the headers are written).
#[derive(Clone)]
pub(crate) struct AnsweredBy(pub(crate) usize, pub(crate) Arc<LoadedModel>);

/// The header naming the variant that answered.
pub const VARIANT_HEADER: &str = "x-kiln-variant";

/// Pins the current model to the request and names it in the response headers, whatever the route answered; an
/// answer from another variant names that variant's model instead.
pub(crate) async fn attach_model(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let model = state.model();
    request.extensions_mut().insert(Current(model.clone()));
    let mut response = next.run(request).await;
    let answered = response.extensions().get::<AnsweredBy>().cloned();
    match answered {
        Some(AnsweredBy(i, answering)) => {
            answering.set_headers(response.headers_mut());
            let variant = &state.rollout().variants[i];
            response.headers_mut().insert(HeaderName::from_static(VARIANT_HEADER), variant.header.clone());
        }
        None => {
            if let Some(model) = model {
                model.set_headers(response.headers_mut());
            }
        }
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
    /// every variant (one, `default`, when a single model is served); the document above is the primary's
    variants: Vec<VariantInfo>,
    /// what assigns a request to a canary (`header:<name>` or `field:<name>`); null: a draw per request
    sticky_key: Option<String>,
}

#[derive(Serialize)]
struct VariantInfo {
    name: String,
    role: &'static str,
    /// a canary's share of the requests, in percent
    #[serde(skip_serializing_if = "Option::is_none")]
    weight: Option<f64>,
    primary: bool,
    model: Option<ModelIdentity>,
}

/// `GET /model`: who the model is, its test metrics, what a request must carry, its features, and the variants.
pub(crate) async fn model_info(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let model = current(&request)?;
    let rollout = state.rollout();
    let variants = rollout
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| VariantInfo {
            name: v.name.clone(),
            role: v.role.as_str(),
            weight: match v.role {
                crate::Role::Canary { basis_points } => Some(f64::from(basis_points) / 100.0),
                crate::Role::Shadow => None,
            },
            primary: i == rollout.primary,
            model: state.variant_model(i).map(|m| m.identity().clone()),
        })
        .collect();
    let sticky_key = rollout.sticky.as_ref().map(StickyKey::describe);
    Ok(Json(Info { info: &model.info, limits: state.config(), variants, sticky_key }).into_response())
}

#[derive(Serialize)]
struct Single<'a> {
    #[serde(flatten)]
    answer: &'a Answer,
    model: &'a ModelIdentity,
    variant: &'a str,
}

#[derive(Serialize)]
struct Batch<'a> {
    predictions: &'a [Answer],
    model: &'a ModelIdentity,
    variant: &'a str,
}

/// `POST /predict`: one record.
pub(crate) async fn predict(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    run(state, request, false).await
}

/// `POST /predict/batch`: `{"records": [...]}`, at most the configured number.
pub(crate) async fn predict_batch(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    run(state, request, true).await
}

/// The sticky key a request carries in its header (a field's is read after parsing).
fn header_key(state: &AppState, headers: &HeaderMap) -> Option<Bytes> {
    match &state.rollout().sticky {
        Some(StickyKey::Header(name)) => headers.get(name).map(|v| Bytes::copy_from_slice(v.as_bytes())),
        _ => None,
    }
}

/// The variant answering a parsed request: the primary for series records (their state is the primary's model's),
/// else by the key (a header's value, or the first record's field), else a draw.
fn assign(state: &AppState, parsed: &Parsed, header: Option<&[u8]>) -> usize {
    let rollout = state.rollout();
    if let Parsed::Forecasts(records) = parsed
        && records.iter().any(|r| matches!(r, parse::ForecastRecord::Series(_)))
    {
        return rollout.primary;
    }
    match &rollout.sticky {
        Some(StickyKey::Field(field)) => {
            let key = parsed.first_text(field);
            rollout.split.assign(key.as_deref().map(str::as_bytes))
        }
        _ => rollout.split.assign(header),
    }
}

async fn run(state: AppState, request: Request, batch: bool) -> Result<Response, ApiError> {
    let start = std::time::Instant::now();
    let pinned = current(&request)?;
    check_json(request.headers())?;
    let key = header_key(&state, request.headers());
    let request_id = request.extensions().get::<crate::middleware::RequestId>().map(|r| r.0.clone());
    let limit = state.config().max_body_bytes;
    let body = Bytes::from_request(request, &state).await.map_err(|e| body_rejection(e, limit))?;
    let mode = if batch { Mode::Batch { max_records: state.config().max_batch_records } } else { Mode::Single };
    let body_len = body.len();
    let shadow_body = (!state.rollout().shadows.is_empty()).then(|| body.clone());
    let work_state = state.clone();
    let work = move || -> Result<(Vec<u8>, AnsweredBy), ApiError> {
        let state = work_state;
        let rollout = state.rollout();
        let parsed = parse::parse(&pinned.schema, &body, mode)?;
        let (chosen, model) = if rollout.several() {
            let i = assign(&state, &parsed, key.as_deref());
            let model = if i == rollout.primary { pinned } else { state.variant_model(i).unwrap_or(pinned) };
            (i, model)
        } else {
            (rollout.primary, pinned)
        };
        let variant = &rollout.variants[chosen];
        let answers = match score::answer(&model, state.series(), parsed, batch, model.drift.get().map(Arc::as_ref)) {
            Ok(answers) => answers,
            Err(e) => {
                variant.stats.failed(start.elapsed());
                return Err(e);
            }
        };
        model.stats.record(&answers);
        state.metrics().scored(answers.len());
        let identity = model.identity();
        let written = if batch {
            serde_json::to_vec(&Batch { predictions: &answers, model: identity, variant: &variant.name })
        } else {
            match answers.first() {
                Some(answer) => serde_json::to_vec(&Single { answer, model: identity, variant: &variant.name }),
                None => return Err(ApiError::internal("no answer for a single record")),
            }
        };
        variant.stats.answered(&answers, start.elapsed());
        written.map(|w| (w, AnsweredBy(chosen, model))).map_err(ApiError::internal)
    };
    // one small record (a tabular row, a short window, a series key) costs a few tens of microseconds: answered on
    // the executor thread, which saves the hand-off to the blocking pool; batches and long windows go there
    let (json, answered) = if !batch && body_len <= INLINE_BODY_BYTES {
        work()?
    } else {
        tokio::task::spawn_blocking(work).await.map_err(ApiError::internal)??
    };
    if let Some(body) = shadow_body {
        let path = if batch { "/predict/batch" } else { "/predict" };
        state.shadow(crate::shadow::ShadowJob { body, batch, path, request_id });
    }
    let mut response = ([(header::CONTENT_TYPE, "application/json")], json).into_response();
    response.extensions_mut().insert(answered);
    Ok(response)
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
