//! Shadow variants: every request a canary answered is handed, as its body bytes, to a bounded queue; a thread of
//! its own parses and scores it with each shadow variant's model, counts it in the variant's metrics and writes an
//! access log line (`"role": "shadow"`, with the shadow's predictions). Nothing of it reaches the client, and the
//! answer never waits for it: a full queue drops the work (`kiln_shadow_dropped_total`).
//!
//! Not here: series records (`{"series": key}`): their state belongs to the primary variant's model, so shadows
//! skip them (counted as the shadow's errors, code `invalid_value`).

use std::sync::mpsc::Receiver;
use std::time::Instant;

use axum::body::Bytes;
use axum::http::HeaderValue;
use kiln_domain::Code;

use crate::error::ApiError;
use crate::parse::{self, ForecastRecord, Mode, Parsed};
use crate::score::{self, Answer};
use crate::state::{AppState, WeakState};

/// How many requests may wait for the shadow scorer.
pub(crate) const QUEUE: usize = 1024;

/// A request to score again with the shadows.
pub(crate) struct ShadowJob {
    pub(crate) body: Bytes,
    pub(crate) batch: bool,
    pub(crate) path: &'static str,
    pub(crate) request_id: Option<HeaderValue>,
}

/// Starts the shadow scorer's thread; it ends with the service.
pub(crate) fn start(state: WeakState, rx: Receiver<ShadowJob>) {
    let spawned = std::thread::Builder::new().name("kiln-shadow".into()).spawn(move || {
        while let Ok(job) = rx.recv() {
            let Some(state) = state.upgrade() else { return };
            score_shadows(&state, &job);
        }
    });
    if let Err(e) = spawned {
        eprintln!("kiln serve: cannot start the shadow scorer: {e}; shadow variants score nothing");
    }
}

fn score_shadows(state: &AppState, job: &ShadowJob) {
    let rollout = state.rollout();
    for &i in &rollout.shadows {
        let variant = &rollout.variants[i];
        let Some(model) = state.variant_model(i) else { continue };
        let start = Instant::now();
        let mode = if job.batch { Mode::Batch { max_records: state.config().max_batch_records } } else { Mode::Single };
        let result = parse::parse(&model.schema, &job.body, mode).and_then(|parsed| {
            if let Parsed::Forecasts(records) = &parsed
                && records.iter().any(|r| matches!(r, ForecastRecord::Series(_)))
            {
                return Err(ApiError::new(Code::InvalidValue, "series records are not scored by shadow variants"));
            }
            score::answer(&model, state.series(), parsed, job.batch, None)
        });
        let took = start.elapsed();
        let (status, error, answers) = match result {
            Ok(answers) => {
                variant.stats.answered(&answers, took);
                (200, None, answers)
            }
            Err(e) => {
                variant.stats.failed(took);
                (e.code.http_status(), Some(e.code.as_str()), Vec::new())
            }
        };
        if state.config().http.access_log == crate::AccessLog::Json {
            let line = shadow_line(job, &variant.name, status, took, model.identity().version, error, &answers);
            crate::middleware::write_log_line(state, line);
        }
    }
}

/// `{"ts", "request_id", "method", "path", "status", "duration_ms", "model_version", "client", "error", "variant",
/// "role": "shadow", "predictions": [...]}`: the canary's line's fields, then the shadow's predictions (the
/// probability for a classifier), one per record.
fn shadow_line(
    job: &ShadowJob,
    variant: &str,
    status: u16,
    took: std::time::Duration,
    version: Option<u64>,
    error: Option<&str>,
    answers: &[Answer],
) -> String {
    let predictions: Vec<serde_json::Value> = answers
        .iter()
        .map(|a| match (a.probability.or(a.prediction), &a.steps) {
            (Some(v), _) => serde_json::json!(v),
            (None, Some(steps)) => serde_json::json!(steps.iter().map(|s| s.prediction).collect::<Vec<_>>()),
            (None, None) => serde_json::Value::Null,
        })
        .collect();
    // whole microseconds over 1000: the nearest double to the access log's `<ms>.<3 digits>`
    let duration_ms = took.as_micros() as f64 / 1000.0;
    let line = serde_json::json!({
        "ts": crate::middleware::log_time(crate::metrics::now_ms()),
        "request_id": job.request_id.as_ref().and_then(|v| v.to_str().ok()),
        "method": "POST",
        "path": job.path,
        "status": status,
        "duration_ms": duration_ms,
        "model_version": version,
        "client": serde_json::Value::Null,
        "error": error,
        "variant": variant,
        "role": "shadow",
        "predictions": predictions,
    });
    line.to_string()
}
