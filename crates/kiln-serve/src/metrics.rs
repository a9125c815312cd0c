//! `GET /metrics` in Prometheus' text exposition format (0.0.4), written by hand: requests by route, method and
//! status, latency histograms per route, requests in flight, rejections by error code, records scored, the
//! prediction distribution of the current model, who that model is and when it was loaded, reload outcomes, and the
//! accept loop's connections (open, refused over the cap, closed by a timeout).
//!
//! Key decision: every counter is a plain atomic in a fixed table (routes, methods and statuses are known in
//! advance), so recording a request takes no lock and allocates nothing; the text is built only when scraped.
//! Prediction statistics belong to the model that answered ([`ModelStats`], built with it at load), so a reload
//! starts a new series labelled with the new version instead of mixing two models' outputs in one histogram.
//!
//! Not here: process metrics (CPU, memory; node exporters do that) and per-key counters (the access log has them).

use std::fmt::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiln_domain::Code;
use kiln_features::FittedPipeline;
use kiln_models::Bundle;

use crate::model::LoadedModel;
use crate::score::Answer;
use crate::state::AppState;

/// The routes requests are counted under, by path; anything else is `unmatched`.
pub(crate) const ROUTES: &[&str] = &[
    "/health",
    "/ready",
    "/model",
    "/predict",
    "/predict/batch",
    "/observe",
    "/observe/{series}",
    "/metrics",
    "/openapi.json",
    "/docs",
];
const UNMATCHED: &str = "unmatched";
const METHODS: &[&str] = &["GET", "POST", "OPTIONS", "HEAD", "other"];
/// The statuses this service sends; any other is counted as `other`.
const STATUSES: &[u16] = &[200, 204, 400, 401, 403, 404, 405, 408, 413, 415, 422, 429, 500, 502, 503, 504];

/// Latency buckets, from 50 µs (a cached single record) to 5 s.
const LATENCY_NS: [u64; 16] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];
const LATENCY_LE: [&str; 16] = [
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
    "1", "2.5", "5",
];

pub(crate) fn route_index(path: &str) -> usize {
    let path = match path.strip_prefix("/observe/") {
        Some(series) if !series.is_empty() && !series.contains('/') => "/observe/{series}",
        _ => path,
    };
    ROUTES.iter().position(|r| *r == path).unwrap_or(ROUTES.len())
}

pub(crate) fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::OPTIONS => 2,
        Method::HEAD => 3,
        _ => 4,
    }
}

fn status_index(status: StatusCode) -> usize {
    let s = status.as_u16();
    STATUSES.iter().position(|x| *x == s).unwrap_or(STATUSES.len())
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// One route's latency histogram: non-cumulative bucket counts (the last is +Inf) and the sum in nanoseconds.
struct Latency {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// The service-wide counters; one per [`AppState`].
pub(crate) struct Metrics {
    /// `[route][method][status]`, flattened
    requests: Box<[AtomicU64]>,
    latency: Box<[Latency]>,
    in_flight: AtomicI64,
    /// by `Code as usize`
    rejections: Box<[AtomicU64]>,
    records_scored: AtomicU64,
    pub(crate) access_log_dropped: AtomicU64,
    /// the accept loop's: connections open, refused over the cap (answered 503, or closed unanswered in a flood),
    /// and closed by the header and idle timeouts
    pub(crate) connections_open: AtomicI64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) connections_dropped: AtomicU64,
    pub(crate) header_timeouts: AtomicU64,
    pub(crate) idle_timeouts: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        let routes = ROUTES.len() + 1;
        Metrics {
            requests: zeros(routes * METHODS.len() * (STATUSES.len() + 1)),
            latency: (0..routes)
                .map(|_| Latency { buckets: zeros(LATENCY_NS.len() + 1), sum_ns: AtomicU64::new(0) })
                .collect(),
            in_flight: AtomicI64::new(0),
            rejections: zeros(Code::ALL.len()),
            records_scored: AtomicU64::new(0),
            access_log_dropped: AtomicU64::new(0),
            connections_open: AtomicI64::new(0),
            connections_refused: AtomicU64::new(0),
            connections_dropped: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
        }
    }
}

/// Counts a request in flight until dropped (also when the client goes away and the request is cancelled).
pub(crate) struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl Metrics {
    pub(crate) fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    /// Counts one answered request (`route` and `method` from [`route_index`] and [`method_index`]).
    pub(crate) fn record(
        &self,
        route: usize,
        method: usize,
        status: StatusCode,
        took: Duration,
        rejected: Option<Code>,
    ) {
        let i = (route * METHODS.len() + method) * (STATUSES.len() + 1) + status_index(status);
        self.requests[i].fetch_add(1, Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_NS.iter().position(|b| ns <= *b).unwrap_or(LATENCY_NS.len());
        let latency = &self.latency[route];
        latency.buckets[bucket].fetch_add(1, Relaxed);
        latency.sum_ns.fetch_add(ns, Relaxed);
        if let Some(code) = rejected {
            self.rejections[code as usize].fetch_add(1, Relaxed);
        }
    }

    /// A connection answered 503 `too_many_connections` (counted among the rejections by code too).
    pub(crate) fn rejected_connection(&self) {
        self.rejections[Code::TooManyConnections as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn scored(&self, records: usize) {
        self.records_scored.fetch_add(records as u64, Relaxed);
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---- the prediction distribution of one model ----

/// Bucketed prediction values (upper bounds, non-cumulative counts with +Inf last, and their sum).
pub(crate) struct ValueHistogram {
    bounds: Vec<f64>,
    labels: Vec<String>,
    buckets: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

impl ValueHistogram {
    pub(crate) fn new(labels: Vec<String>) -> ValueHistogram {
        let bounds = labels.iter().map(|l| l.parse::<f64>().unwrap_or(f64::INFINITY)).collect();
        let buckets = zeros(labels.len() + 1);
        ValueHistogram { bounds, labels, buckets, sum_bits: AtomicU64::new(0f64.to_bits()) }
    }

    fn add_sum(&self, v: f64) {
        let mut current = self.sum_bits.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + v).to_bits();
            match self.sum_bits.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Counts the probability (classification) or the prediction (of every step) of each answer.
    pub(crate) fn record(&self, answers: &[Answer]) {
        let mut sum = 0.0;
        for a in answers {
            let single = a.probability.or(a.prediction);
            let steps = a.steps.iter().flatten().map(|s| s.prediction);
            for v in single.into_iter().chain(steps) {
                let bucket = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
                self.buckets[bucket].fetch_add(1, Relaxed);
                sum += v;
            }
        }
        if !answers.is_empty() {
            self.add_sum(sum);
        }
    }

    /// The histogram's lines, `name_bucket{labels,le=..}`, `_sum` and `_count`; `labels` ends with a comma or is
    /// empty.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, b) in self.labels.iter().zip(self.buckets.iter()) {
            cumulative += b.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.labels.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let bare = labels.trim_end_matches(',');
        let _ = writeln!(out, "{name}_sum{{{bare}}} {}", f64::from_bits(self.sum_bits.load(Relaxed)));
        let _ = writeln!(out, "{name}_count{{{bare}}} {cumulative}");
    }
}

/// A latency histogram over [`LATENCY_NS`].
pub(crate) struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { buckets: zeros(LATENCY_NS.len() + 1), sum_ns: AtomicU64::new(0) }
    }
}

impl LatencyHistogram {
    pub(crate) fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_NS.iter().position(|b| ns <= *b).unwrap_or(LATENCY_NS.len());
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        let mut cumulative = 0;
        for (le, n) in LATENCY_LE.iter().zip(&counts) {
            cumulative += n;
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(self.sum_ns.load(Relaxed)));
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

/// What the metrics know about one loaded model: when it was loaded and what it has predicted.
#[derive(Debug)]
pub(crate) struct ModelStats {
    loaded_ms: i64,
    created_ms: i64,
    predictions: ValueHistogram,
    /// how the buckets were chosen, for the HELP line
    buckets_from: &'static str,
    /// classification: the positive and the negative label with their counts
    classes: Option<[(String, AtomicU64); 2]>,
}

impl std::fmt::Debug for ValueHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueHistogram").field("labels", &self.labels).finish_non_exhaustive()
    }
}

impl ModelStats {
    pub(crate) fn new(bundle: &Bundle<FittedPipeline>) -> ModelStats {
        let (labels, buckets_from) = value_buckets(bundle);
        let classes = bundle
            .pipeline
            .decision
            .as_ref()
            .map(|d| [(d.positive.clone(), AtomicU64::new(0)), (d.negative_label(), AtomicU64::new(0))]);
        ModelStats {
            loaded_ms: now_ms(),
            created_ms: bundle.metadata.created_ms,
            predictions: ValueHistogram::new(labels),
            buckets_from,
            classes,
        }
    }

    /// Counts the answers of one request: the probability (classification) or the prediction (of every step of a
    /// multi-step forecast), and the class.
    pub(crate) fn record(&self, answers: &[Answer]) {
        let h = &self.predictions;
        let mut sum = 0.0;
        for a in answers {
            let single = a.probability.or(a.prediction);
            let steps = a.steps.iter().flatten().map(|s| s.prediction);
            for v in single.into_iter().chain(steps) {
                let bucket = h.bounds.iter().position(|b| v <= *b).unwrap_or(h.bounds.len());
                h.buckets[bucket].fetch_add(1, Relaxed);
                sum += v;
            }
            if let (Some(classes), Some(class)) = (&self.classes, &a.class) {
                let i = usize::from(*class != classes[0].0);
                classes[i].1.fetch_add(1, Relaxed);
            }
        }
        if !answers.is_empty() {
            h.add_sum(sum);
        }
    }
}

/// The upper bounds of `kiln_prediction_value`, as label text, and where they came from. Prometheus cannot merge
/// histograms with different buckets, so they depend on the bundle only (every replica of a model agrees):
/// - classification: the probability, 0.1 to 1 in steps of 0.1;
/// - regression and forecast: 13 bounds over the test targets' mean +- 3 standard deviations, in a 1-2-5 step.
///   The bundle stores no target statistics, but its held-out metrics imply them: `mae / mape` is the typical size
///   of a target (mean |e| over mean |e|/|y|) and `rmse / sqrt(1 - r2)` their standard deviation (r2 = 1 -
///   mse/var(y));
/// - otherwise (metrics missing or degenerate): a symmetric log scale, 0 and +-10^-3 .. 10^6.
pub(crate) fn value_buckets(bundle: &Bundle<FittedPipeline>) -> (Vec<String>, &'static str) {
    if bundle.pipeline.decision.is_some() {
        let labels = (1..=10).map(|i| if i == 10 { "1".to_string() } else { format!("0.{i}") }).collect();
        return (labels, "probability of the positive class, steps of 0.1");
    }
    let m = &bundle.metadata.metrics;
    // `test/<m>` since issue 10, `test_<m>` in bundles written before
    let get = |name: &str| {
        [format!("test/{name}"), format!("test_{name}"), name.to_string()]
            .iter()
            .find_map(|k| m.get(k))
            .copied()
            .filter(|v| v.is_finite())
    };
    if let (Some(mae), Some(mape), Some(rmse), Some(r2)) = (get("mae"), get("mape"), get("rmse"), get("r2"))
        && mape > 0.0
        && rmse > 0.0
        && r2 < 1.0
    {
        let center = mae / mape;
        let sd = rmse / (1.0 - r2).sqrt();
        if let Some(labels) = linear_labels(center, sd / 2.0, 6) {
            return (labels, "test targets' mean +- 3 sd, implied by the bundle's test mae, mape, rmse and r2");
        }
    }
    let mut labels: Vec<String> = (-3..=6).rev().map(|e| format!("-1e{e}")).collect();
    labels.push("0".into());
    labels.extend((-3..=6).map(|e| format!("1e{e}")));
    (labels, "symmetric log scale (the bundle's test metrics imply no scale)")
}

/// `center + k * step` for k in -n..=n, with `step` rounded to 1, 2 or 5 times a power of ten and `center` to a
/// multiple of it, written in decimal so the labels read well and are the same on every machine.
fn linear_labels(center: f64, step: f64, n: i64) -> Option<Vec<String>> {
    if !(center.is_finite() && step.is_finite() && step > 0.0) {
        return None;
    }
    let mut e = step.log10().floor() as i32;
    let f = step / 10f64.powi(e);
    let m: i64 = if f < 1.5 {
        1
    } else if f < 3.5 {
        2
    } else if f < 7.5 {
        5
    } else {
        e += 1;
        1
    };
    let unit = m as f64 * 10f64.powi(e);
    let c = (center / unit).round();
    if c.abs() > 1e12 {
        return None;
    }
    let c = c as i64;
    let labels = (-n..=n)
        .map(|k| {
            // the bound is (c + k) * m * 10^e, written without going through a float
            let v = (c + k) * m;
            if e >= 0 {
                format!("{}", i128::from(v) * 10i128.pow(e as u32))
            } else {
                let d = (-e) as usize;
                let digits = format!("{:0>width$}", v.unsigned_abs(), width = d + 1);
                let (int, frac) = digits.split_at(digits.len() - d);
                let frac = frac.trim_end_matches('0');
                let sign = if v < 0 { "-" } else { "" };
                if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") }
            }
        })
        .collect();
    Some(labels)
}

// ---- the exposition ----

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let text = render(&state);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// A label value with `\`, `"` and newlines escaped.
fn esc(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

pub(crate) fn render(state: &AppState) -> String {
    let m = state.metrics();
    let mut out = String::with_capacity(8 * 1024);
    let route_name = |r: usize| ROUTES.get(r).copied().unwrap_or(UNMATCHED);

    head(&mut out, "kiln_http_requests_total", "counter", "HTTP requests answered, by route, method and status.");
    let per_route = METHODS.len() * (STATUSES.len() + 1);
    for (i, count) in m.requests.iter().enumerate() {
        let n = count.load(Relaxed);
        if n == 0 {
            continue;
        }
        let (route, rest) = (i / per_route, i % per_route);
        let (method, status) = (rest / (STATUSES.len() + 1), rest % (STATUSES.len() + 1));
        let status = STATUSES.get(status).map_or("other".to_string(), u16::to_string);
        let _ = writeln!(
            out,
            "kiln_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
            route_name(route),
            METHODS[method]
        );
    }

    head(&mut out, "kiln_http_request_duration_seconds", "histogram", "Time to answer a request, by route.");
    for (r, latency) in m.latency.iter().enumerate() {
        let counts: Vec<u64> = latency.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let route = route_name(r);
        let mut cumulative = 0;
        for (le, n) in LATENCY_LE.iter().zip(&counts) {
            cumulative += n;
            let _ = writeln!(
                out,
                "kiln_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(out, "kiln_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "kiln_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
            seconds(latency.sum_ns.load(Relaxed))
        );
        let _ = writeln!(out, "kiln_http_request_duration_seconds_count{{route=\"{route}\"}} {total}");
    }

    head(&mut out, "kiln_http_requests_in_flight", "gauge", "Requests being answered now.");
    let _ = writeln!(out, "kiln_http_requests_in_flight {}", m.in_flight.load(Relaxed));

    head(&mut out, "kiln_http_rejections_total", "counter", "Requests answered with an error, by its stable code.");
    // every code the API answers with, even at 0; a library code only once an answer carried it
    for &code in Code::ALL {
        let count = m.rejections[code as usize].load(Relaxed);
        if Code::HTTP_API.contains(&code) || count > 0 {
            let _ = writeln!(out, "kiln_http_rejections_total{{code=\"{}\"}} {count}", code.as_str());
        }
    }

    head(&mut out, "kiln_records_scored_total", "counter", "Records (rows or windows) answered with a prediction.");
    let _ = writeln!(out, "kiln_records_scored_total {}", m.records_scored.load(Relaxed));

    if let Some(model) = state.model() {
        render_model(&mut out, &model);
    }
    render_variants(&mut out, state);
    render_drift(&mut out, state);

    let reloads = state.reloads();
    head(&mut out, "kiln_model_reloads_total", "counter", "Model reloads, by outcome.");
    let _ = writeln!(out, "kiln_model_reloads_total{{outcome=\"ok\"}} {}", reloads.ok.load(Relaxed));
    let _ = writeln!(out, "kiln_model_reloads_total{{outcome=\"failed\"}} {}", reloads.failed.load(Relaxed));
    if let Some((at, reason)) = reloads.last_error.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
        head(&mut out, "kiln_model_reload_last_error", "gauge", "When the last reload failed (unix seconds), and why.");
        let reason: String = reason.chars().take(200).collect();
        let _ = writeln!(out, "kiln_model_reload_last_error{{reason=\"{}\"}} {}", esc(&reason), *at as f64 / 1e3);
    }

    head(&mut out, "kiln_access_log_dropped_total", "counter", "Access log lines dropped because stdout was behind.");
    let _ = writeln!(out, "kiln_access_log_dropped_total {}", m.access_log_dropped.load(Relaxed));

    head(&mut out, "kiln_http_connections_open", "gauge", "TCP connections open now (at most --max-connections).");
    let _ = writeln!(out, "kiln_http_connections_open {}", m.connections_open.load(Relaxed));
    head(
        &mut out,
        "kiln_http_connections_refused_total",
        "counter",
        "Connections over --max-connections: answered 503 too_many_connections, or closed unanswered in a flood.",
    );
    let _ = writeln!(
        out,
        "kiln_http_connections_refused_total{{answered=\"true\"}} {}",
        m.connections_refused.load(Relaxed)
    );
    let _ = writeln!(
        out,
        "kiln_http_connections_refused_total{{answered=\"false\"}} {}",
        m.connections_dropped.load(Relaxed)
    );
    head(&mut out, "kiln_http_connections_timed_out_total", "counter", "Connections closed by a timeout, by which.");
    let _ = writeln!(
        out,
        "kiln_http_connections_timed_out_total{{timeout=\"header\"}} {}",
        m.header_timeouts.load(Relaxed)
    );
    let _ =
        writeln!(out, "kiln_http_connections_timed_out_total{{timeout=\"idle\"}} {}", m.idle_timeouts.load(Relaxed));
    out
}

/// Per variant: who it is, its requests by role, its latency and its predicted values.
fn render_variants(out: &mut String, state: &AppState) {
    let rollout = state.rollout();
    head(out, "kiln_variant_info", "gauge", "Each variant: its role, weight in percent (canaries), and model.");
    for (i, v) in rollout.variants.iter().enumerate() {
        let model = state.variant_model(i);
        let id = model.as_ref().map(|m| m.identity());
        let weight = match v.role {
            crate::Role::Canary { basis_points } => crate::variant::percent(basis_points),
            crate::Role::Shadow => "0".to_string(),
        };
        let _ = writeln!(
            out,
            "kiln_variant_info{{variant=\"{}\",role=\"{}\",weight=\"{weight}\",model=\"{}\",version=\"{}\",reference=\"{}\"}} 1",
            esc(&v.name),
            v.role.as_str(),
            esc(id.and_then(|i| i.name.as_deref()).unwrap_or("")),
            id.and_then(|i| i.version).map(|v| v.to_string()).unwrap_or_default(),
            esc(id.map_or("", |i| i.reference.as_str())),
        );
    }
    head(
        out,
        "kiln_variant_requests_total",
        "counter",
        "Prediction requests scored by each variant (canary: answered; shadow: scored after the answer), errors included.",
    );
    for v in &rollout.variants {
        let _ = writeln!(
            out,
            "kiln_variant_requests_total{{variant=\"{}\",role=\"{}\"}} {}",
            esc(&v.name),
            v.role.as_str(),
            v.stats.requests.load(Relaxed)
        );
    }
    head(out, "kiln_variant_errors_total", "counter", "Prediction requests a variant could not score (4xx answers).");
    for v in &rollout.variants {
        let _ = writeln!(
            out,
            "kiln_variant_errors_total{{variant=\"{}\",role=\"{}\"}} {}",
            esc(&v.name),
            v.role.as_str(),
            v.stats.errors.load(Relaxed)
        );
    }
    head(
        out,
        "kiln_variant_request_duration_seconds",
        "histogram",
        "Time a variant took to parse, score and write a prediction request (a shadow: to score its copy).",
    );
    for v in &rollout.variants {
        v.stats.latency.render(out, "kiln_variant_request_duration_seconds", &format!("variant=\"{}\"", esc(&v.name)));
    }
    head(
        out,
        "kiln_variant_prediction_value",
        "histogram",
        "Predicted values of each variant (the probability for a classifier); buckets of its first model.",
    );
    for v in &rollout.variants {
        if let Some(h) = v.stats.predictions.get() {
            h.render(out, "kiln_variant_prediction_value", &format!("variant=\"{}\",", esc(&v.name)));
        }
    }
    if !rollout.shadows.is_empty() {
        head(out, "kiln_shadow_dropped_total", "counter", "Requests not shadowed because the shadow queue was full.");
        let _ = writeln!(out, "kiln_shadow_dropped_total {}", state.shadow_dropped());
    }
}

/// Live drift: each monitored feature's PSI over the window, the window's size and the rows dropped.
fn render_drift(out: &mut String, state: &AppState) {
    let Some(window) = state.drift().and_then(crate::drift::DriftMonitor::current) else { return };
    head(
        out,
        "kiln_feature_drift_psi",
        "gauge",
        "PSI of each numeric model feature over the live window against the bundle's reference profile.",
    );
    for (k, m) in window.monitored.iter().enumerate() {
        let psi = window.psi(k);
        if psi.is_finite() {
            let _ = writeln!(out, "kiln_feature_drift_psi{{feature=\"{}\"}} {psi}", esc(&m.name));
        }
    }
    head(out, "kiln_feature_drift_window_rows", "gauge", "Records in the live drift window.");
    let _ = writeln!(out, "kiln_feature_drift_window_rows {}", window.rows.load(Relaxed));
    head(
        out,
        "kiln_feature_drift_dropped_rows_total",
        "counter",
        "Records not added to the live drift window because its queue was full.",
    );
    let _ = writeln!(out, "kiln_feature_drift_dropped_rows_total {}", window.dropped.load(Relaxed));
}

fn render_model(out: &mut String, model: &LoadedModel) {
    let id = model.identity();
    let opt = |v: Option<&str>| esc(v.unwrap_or(""));
    let version = id.version.map(|v| v.to_string()).unwrap_or_default();
    head(out, "kiln_model_info", "gauge", "The model answering new requests.");
    let _ = writeln!(
        out,
        "kiln_model_info{{name=\"{}\",version=\"{version}\",alias=\"{}\",run_id=\"{}\",reference=\"{}\",task=\"{}\"}} 1",
        opt(id.name.as_deref()),
        opt(id.alias.as_deref()),
        opt(id.run_id.as_deref()),
        esc(&id.reference),
        model.task(),
    );
    let stats = &model.stats;
    head(out, "kiln_model_loaded_timestamp_seconds", "gauge", "When the current model was loaded (unix seconds).");
    let _ = writeln!(out, "kiln_model_loaded_timestamp_seconds {}", stats.loaded_ms as f64 / 1e3);
    head(out, "kiln_model_created_timestamp_seconds", "gauge", "When the current model was trained (unix seconds).");
    let _ = writeln!(out, "kiln_model_created_timestamp_seconds {}", stats.created_ms as f64 / 1e3);
    head(out, "kiln_model_age_seconds", "gauge", "Seconds since the current model was trained.");
    let _ = writeln!(out, "kiln_model_age_seconds {}", (now_ms() - stats.created_ms) as f64 / 1e3);

    let h = &stats.predictions;
    head(
        out,
        "kiln_prediction_value",
        "histogram",
        &format!("Predicted values of the current model; buckets: {}.", stats.buckets_from),
    );
    let mut cumulative = 0;
    for (le, b) in h.labels.iter().zip(h.buckets.iter()) {
        cumulative += b.load(Relaxed);
        let _ = writeln!(out, "kiln_prediction_value_bucket{{version=\"{version}\",le=\"{le}\"}} {cumulative}");
    }
    cumulative += h.buckets[h.labels.len()].load(Relaxed);
    let _ = writeln!(out, "kiln_prediction_value_bucket{{version=\"{version}\",le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "kiln_prediction_value_sum{{version=\"{version}\"}} {}",
        f64::from_bits(h.sum_bits.load(Relaxed))
    );
    let _ = writeln!(out, "kiln_prediction_value_count{{version=\"{version}\"}} {cumulative}");

    if let Some(classes) = &stats.classes {
        head(out, "kiln_predictions_total", "counter", "Predicted classes of the current model.");
        for (label, n) in classes {
            let _ = writeln!(
                out,
                "kiln_predictions_total{{version=\"{version}\",class=\"{}\"}} {}",
                esc(label),
                n.load(Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::linear_labels;

    #[test]
    fn linear_buckets_are_round_decimals() {
        // EUR/USD: mae/mape = 1.096, sd = 0.054
        let labels = linear_labels(1.0963, 0.02707, 6).unwrap();
        assert_eq!(labels.first().unwrap(), "0.98");
        assert_eq!(labels[6], "1.1");
        assert_eq!(labels.last().unwrap(), "1.22");
        assert_eq!(linear_labels(0.0, 0.3, 1).unwrap(), ["-0.2", "0", "0.2"]);
        assert_eq!(linear_labels(52_000.0, 8_000.0, 1).unwrap(), ["40000", "50000", "60000"]);
        assert_eq!(linear_labels(-0.004, 0.0009, 1).unwrap(), ["-0.005", "-0.004", "-0.003"]);
        assert!(linear_labels(1.0, 0.0, 1).is_none());
        assert!(linear_labels(f64::NAN, 1.0, 1).is_none());
    }
}
