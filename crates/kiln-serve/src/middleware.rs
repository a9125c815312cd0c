//! Production behaviour around the routes, each layer added only when configured ([`HttpConfig`]): request ids,
//! metrics and the JSON access log (always the outermost layer), CORS, API keys, a per-client rate limit and a
//! request timeout. Rejections are ordinary [`ApiError`]s, so they share the one error shape and are counted by
//! code.
//!
//! Key decisions: API keys are kept only as SHA-256 digests and compared in constant time (a digest of the
//! presented value against every digest, no early exit), and a key is named in logs by a short id derived from its
//! digest, never by itself; `/health`, `/ready` and `/docs` stay open so orchestrators can probe and people can read
//! the docs. A disabled feature adds no layer, so it costs nothing per request.
//!
//! Not here: TLS and authentication schemes beyond static keys (a proxy in front does those).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use kiln_domain::Code;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::metrics::{method_index, now_ms, route_index};
use crate::model::VERSION_HEADER;
use crate::state::{AppState, ServeConfig};

/// The request id header: kept from the request when it looks like an id, else generated; always answered.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The API key header when none is configured.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";
/// Routes that answer without an API key and are never rate limited.
const OPEN_ROUTES: &[&str] = &["/health", "/ready", "/docs"];

/// The production behaviour of the service; every part is off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpConfig {
    /// require one of these keys on every route but [`OPEN_ROUTES`]
    pub api_keys: Option<ApiKeys>,
    /// answer browsers from these origins
    pub cors: Option<Cors>,
    /// answer 504 `timeout` when a request takes longer
    pub request_timeout: Option<Duration>,
    /// a token bucket per API key (per client IP without keys)
    pub rate_limit: Option<RateLimit>,
    pub access_log: AccessLog,
}

/// The access log: one JSON line per request on stdout, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AccessLog {
    #[default]
    Off,
    Json,
}

/// `per_second` requests a second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// Why a part of [`HttpConfig`] cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("'{0}' is not a valid HTTP header name")]
    HeaderName(String),
    #[error("no API key given")]
    NoKeys,
    #[error("API key {0} is empty or not visible ASCII")]
    BadKey(usize),
    #[error("'{0}' is not an origin (scheme://host[:port], or *)")]
    Origin(String),
    #[error("no CORS origin given")]
    NoOrigins,
    #[error("the rate limit must be at least 1 request per second, with a burst of at least 1")]
    RateLimit,
}

/// One accepted key: its digest and the id the logs name it by.
#[derive(Clone, PartialEq, Eq)]
struct Key {
    id: String,
    digest: [u8; 32],
}

/// The accepted API keys, held as SHA-256 digests; `Debug` shows only how many there are.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    header: HeaderName,
    keys: Vec<Key>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys {{ header: {}, keys: {} }}", self.header, self.keys.len())
    }
}

impl ApiKeys {
    /// Keys read from `header`. Each key is named in logs as `key-` and the first 8 hex digits of its SHA-256.
    ///
    /// # Errors
    /// [`ConfigError`] for a bad header name, no keys, or a key that is empty or not visible ASCII (it could not
    /// be sent in a header).
    pub fn new(header: &str, keys: impl IntoIterator<Item = String>) -> Result<ApiKeys, ConfigError> {
        let header = HeaderName::try_from(header.trim()).map_err(|_| ConfigError::HeaderName(header.to_string()))?;
        let mut out = Vec::new();
        for (i, key) in keys.into_iter().enumerate() {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(ConfigError::BadKey(i + 1));
            }
            let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
            let id = format!("key-{}", digest[..4].iter().map(|b| format!("{b:02x}")).collect::<String>());
            out.push(Key { id, digest });
        }
        if out.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        Ok(ApiKeys { header, keys: out })
    }

    pub fn header(&self) -> &str {
        self.header.as_str()
    }

    /// The position of the key `presented` is, comparing its digest with every key's in constant time.
    fn check(&self, presented: &[u8]) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let mut found = None;
        for (i, key) in self.keys.iter().enumerate() {
            let diff = key.digest.iter().zip(&digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(diff) == 0 {
                found = Some(i);
            }
        }
        found
    }
}

/// The origins browsers may call from: any (`*`) or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    any: bool,
    origins: Vec<HeaderValue>,
}

impl Cors {
    /// `["*"]` allows any origin; otherwise each entry is `scheme://host[:port]`, as browsers send it.
    ///
    /// # Errors
    /// [`ConfigError::Origin`] for an entry that is not an origin, [`ConfigError::NoOrigins`] for none.
    pub fn new(origins: &[String]) -> Result<Cors, ConfigError> {
        if origins.is_empty() {
            return Err(ConfigError::NoOrigins);
        }
        if origins.iter().any(|o| o.trim() == "*") {
            return Ok(Cors { any: true, origins: Vec::new() });
        }
        let mut out = Vec::new();
        for origin in origins {
            let o = origin.trim();
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o.ends_with('/')
                && o.split_once("://").is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains('/'));
            let value = HeaderValue::from_str(o).ok().filter(|_| ok);
            out.push(value.ok_or_else(|| ConfigError::Origin(origin.clone()))?);
        }
        Ok(Cors { any: false, origins: out })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()))
    }
}

impl RateLimit {
    /// # Errors
    /// [`ConfigError::RateLimit`] when either number is 0.
    pub fn new(per_second: u32, burst: u32) -> Result<RateLimit, ConfigError> {
        if per_second == 0 || burst == 0 {
            return Err(ConfigError::RateLimit);
        }
        Ok(RateLimit { per_second, burst })
    }
}

// ---- what the layers share at run time ----

/// Where access log lines go. The default writes them to stdout from a thread of its own; tests capture them.
pub trait AccessLogSink: Send + Sync {
    /// One JSON line, without its newline.
    fn write_line(&self, line: String);
}

enum Sink {
    /// a bounded queue to the stdout writer thread; a full queue drops the line (counted in the metrics)
    Stdout(SyncSender<String>),
    Custom(Arc<dyn AccessLogSink>),
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// The token buckets: one per API key (the keys are known), or one per client IP in a map.
struct Buckets {
    limit: RateLimit,
    per_key: Vec<Mutex<Bucket>>,
    per_ip: Mutex<HashMap<IpAddr, Bucket>>,
}

/// How many IP buckets are kept before the idle (full) ones are dropped.
const MAX_IP_BUCKETS: usize = 100_000;

impl Buckets {
    /// Takes a token from `bucket`, or says in how many whole seconds one will be there.
    fn take(limit: RateLimit, bucket: &mut Bucket, now: Instant) -> Result<(), u64> {
        let rate = f64::from(limit.per_second);
        let burst = f64::from(limit.burst);
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - bucket.tokens) / rate).ceil() as u64).max(1))
        }
    }

    fn take_for(&self, client: Client) -> Result<(), u64> {
        let now = Instant::now();
        let fresh = Bucket { tokens: f64::from(self.limit.burst), last: now };
        match client {
            Client::Key(i) => {
                let mut bucket = self.per_key[i].lock().unwrap_or_else(PoisonError::into_inner);
                Self::take(self.limit, &mut bucket, now)
            }
            Client::Ip(ip) => {
                let mut map = self.per_ip.lock().unwrap_or_else(PoisonError::into_inner);
                if map.len() >= MAX_IP_BUCKETS && !map.contains_key(&ip) {
                    // a bucket idle for burst/rate seconds is full again: forgetting it changes nothing
                    let idle = Duration::from_secs_f64(f64::from(self.limit.burst) / f64::from(self.limit.per_second));
                    map.retain(|_, b| now.saturating_duration_since(b.last) < idle);
                }
                Self::take(self.limit, map.entry(ip).or_insert(fresh), now)
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Client {
    Key(usize),
    Ip(IpAddr),
}

/// The run-time part of the layers, one per [`AppState`].
pub(crate) struct HttpRuntime {
    id_prefix: u64,
    id_counter: AtomicU64,
    buckets: Option<Buckets>,
    sink: OnceLock<Sink>,
}

impl HttpRuntime {
    pub(crate) fn new(config: &ServeConfig) -> HttpRuntime {
        use std::hash::{BuildHasher, Hasher};
        // a random prefix per process (std's hasher keys are random), so ids from replicas do not collide
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
        let http = &config.http;
        let buckets = http.rate_limit.map(|limit| {
            let fresh = Bucket { tokens: f64::from(limit.burst), last: Instant::now() };
            let keys = http.api_keys.as_ref().map_or(0, |k| k.keys.len());
            Buckets {
                limit,
                per_key: (0..keys).map(|_| Mutex::new(fresh)).collect(),
                per_ip: Mutex::new(HashMap::new()),
            }
        });
        HttpRuntime { id_prefix: h.finish(), id_counter: AtomicU64::new(0), buckets, sink: OnceLock::new() }
    }

    fn new_request_id(&self) -> HeaderValue {
        let n = self.id_counter.fetch_add(1, Relaxed);
        let id = format!("{:016x}{n:016x}", self.id_prefix);
        HeaderValue::try_from(id).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }

    fn sink(&self) -> &Sink {
        self.sink.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel(8192);
            let spawned = std::thread::Builder::new().name("kiln-access-log".into()).spawn(move || write_stdout(&rx));
            if let Err(e) = spawned {
                eprintln!("kiln serve: cannot start the access log writer: {e}; access log lines are dropped");
            }
            Sink::Stdout(tx)
        })
    }
}

/// Writes lines to stdout in batches. After a batch it sleeps [`LOG_BATCH_PAUSE`] rather than waiting on the queue,
/// so that under load a request's send never has to wake this thread (a futex wake and a context switch per request
/// cost more than the line itself); when a pause brought nothing it waits on the queue again. A line reaches stdout
/// at most that pause after its request.
fn write_stdout(rx: &Receiver<String>) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        loop {
            let mut written = 0;
            let mut result = Ok(());
            while let Some(line) = next.take().or_else(|| rx.try_recv().ok()) {
                written += 1;
                result = writeln!(out, "{line}");
                if result.is_err() {
                    break;
                }
            }
            if let Err(e) = result.and_then(|()| out.flush()) {
                eprintln!(
                    "kiln serve: cannot write the access log to stdout: {e}; access log lines are dropped from now on"
                );
                return;
            }
            // only the line that woke us: the queue is quiet, wait on it again
            if written <= 1 {
                break;
            }
            std::thread::sleep(LOG_BATCH_PAUSE);
        }
    }
}

/// How long the access log writer waits between batches while requests keep coming.
const LOG_BATCH_PAUSE: Duration = Duration::from_millis(10);

impl AppState {
    /// Sends access log lines to `sink` instead of stdout (tests capture them so). Only before the first request
    /// is logged; returns false when a sink is already in use.
    pub fn set_access_log_sink(&self, sink: Arc<dyn AccessLogSink>) -> bool {
        self.http().sink.set(Sink::Custom(sink)).is_ok()
    }
}

// ---- the layers ----

/// Adds the configured layers around `router`'s routes; the request id, metrics and access log layer always.
pub(crate) fn apply(router: Router, state: &AppState) -> Router {
    let http = &state.config().http;
    let mut router = router;
    if let Some(limit) = http.request_timeout {
        router = router.layer(from_fn_with_state(limit, timeout));
    }
    if http.rate_limit.is_some() {
        router = router.layer(from_fn_with_state(state.clone(), rate_limit));
    }
    if http.api_keys.is_some() {
        router = router.layer(from_fn_with_state(state.clone(), authenticate));
    }
    if http.cors.is_some() {
        router = router.layer(from_fn_with_state(state.clone(), cors));
    }
    router.layer(from_fn_with_state(state.clone(), observe))
}

/// The key a request was let in with (its position in [`ApiKeys`]), on the request and on its response.
#[derive(Clone, Copy)]
struct ClientKey(usize);

fn sane_request_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    (1..=128).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=' | b'@'))
}

/// One access log line, written by hand (this runs for every request): `ts`, `request_id`, `method`, `path`,
/// `status`, `duration_ms`, `model_version`, `client`, `error`, in that order.
struct AccessLine<'a> {
    request_id: &'a [u8],
    method: &'a str,
    path: &'a str,
    status: u16,
    took: Duration,
    model_version: Option<&'a str>,
    client: Option<&'a str>,
    error: Option<&'static str>,
    /// the variant that answered a prediction
    variant: Option<&'a str>,
}

thread_local! {
    /// The current second, formatted once: `(unix seconds, "YYYY-MM-DDTHH:MM:SS")`.
    static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

/// `"text"` with JSON escapes.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn push_opt(out: &mut String, value: Option<&str>, quoted: bool) {
    match value {
        None => out.push_str("null"),
        Some(v) if quoted => push_json_str(out, v),
        Some(v) => out.push_str(v),
    }
}

/// `ms` as an access log line's `ts`: UTC, ISO 8601 with milliseconds and `Z` (the shadow lines' too).
pub(crate) fn log_time(ms: i64) -> String {
    let c = kiln_domain::civil_from_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms.rem_euclid(1000)
    )
}

impl AccessLine<'_> {
    fn write(&self) -> String {
        let ms = now_ms();
        let mut out = String::with_capacity(256);
        out.push_str("{\"ts\":\"");
        SECOND.with_borrow_mut(|(second, text)| {
            let s = ms.div_euclid(1000);
            if *second != s {
                let c = kiln_domain::civil_from_millis(ms);
                text.clear();
                let _ = write!(
                    text,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    c.year, c.month, c.day, c.hour, c.minute, c.second
                );
                *second = s;
            }
            out.push_str(text);
        });
        let _ = write!(out, ".{:03}Z\",\"request_id\":", ms.rem_euclid(1000));
        push_json_str(&mut out, std::str::from_utf8(self.request_id).unwrap_or(""));
        out.push_str(",\"method\":");
        push_json_str(&mut out, self.method);
        out.push_str(",\"path\":");
        push_json_str(&mut out, self.path);
        let micros = self.took.as_micros();
        let _ = write!(out, ",\"status\":{},\"duration_ms\":{}.{:03}", self.status, micros / 1000, micros % 1000);
        out.push_str(",\"model_version\":");
        // the header is written from a u64; anything else is not passed through unquoted
        push_opt(
            &mut out,
            self.model_version.filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())),
            false,
        );
        out.push_str(",\"client\":");
        push_opt(&mut out, self.client, true);
        out.push_str(",\"error\":");
        push_opt(&mut out, self.error, true);
        if let Some(variant) = self.variant {
            out.push_str(",\"variant\":");
            push_json_str(&mut out, variant);
        }
        out.push('}');
        out
    }
}

/// The request's id, on the request (only with shadow variants, whose log lines name it).
#[derive(Clone)]
pub(crate) struct RequestId(pub(crate) HeaderValue);

/// Writes one access log line (a full stdout queue drops it, counted).
pub(crate) fn write_log_line(state: &AppState, line: String) {
    match state.http().sink() {
        Sink::Stdout(tx) => {
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = tx.try_send(line) {
                state.metrics().access_log_dropped.fetch_add(1, Relaxed);
            }
        }
        Sink::Custom(sink) => sink.write_line(line),
    }
}

/// Request id, metrics and the access log: the outermost layer, so it sees every answer, rejections included.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let metrics = state.metrics();
    let _in_flight = metrics.in_flight();
    let route = route_index(request.uri().path());
    let method = method_index(request.method());
    let id = match request.headers().get(REQUEST_ID_HEADER) {
        Some(v) if sane_request_id(v) => v.clone(),
        _ => state.http().new_request_id(),
    };
    let logged = (state.config().http.access_log == AccessLog::Json)
        .then(|| (request.method().clone(), request.uri().path().to_owned()));
    let mut request = request;
    if !state.rollout().shadows.is_empty() {
        // the shadows' log lines name the request they scored again
        request.extensions_mut().insert(RequestId(id.clone()));
    }

    let mut response = next.run(request).await;
    let took = start.elapsed();
    let code = response.extensions().get::<Code>().copied();
    metrics.record(route, method, response.status(), took, code);

    if let Some((method, path)) = logged {
        let keys = state.config().http.api_keys.as_ref();
        let client = response.extensions().get::<ClientKey>().and_then(|k| keys.map(|keys| keys.keys[k.0].id.as_str()));
        let model_version = response.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok());
        let variant = response
            .extensions()
            .get::<crate::handlers::AnsweredBy>()
            .map(|a| state.rollout().variants[a.0].name.as_str());
        let line = AccessLine {
            variant,
            request_id: id.as_bytes(),
            method: method.as_str(),
            path: &path,
            status: response.status().as_u16(),
            took,
            model_version,
            client,
            error: code.map(Code::as_str),
        }
        .write();
        write_log_line(&state, line);
    }
    response.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
    response
}

/// The headers a browser may send on a cross-origin request, and those it may read from the answer.
fn cors_allow_headers(state: &AppState) -> HeaderValue {
    let key = state.config().http.api_keys.as_ref().map_or(DEFAULT_API_KEY_HEADER, ApiKeys::header);
    HeaderValue::from_str(&format!("content-type, {key}, {REQUEST_ID_HEADER}"))
        .unwrap_or_else(|_| HeaderValue::from_static("content-type"))
}
const CORS_EXPOSE: &str = "x-request-id, x-kiln-model-version, x-kiln-model-run, x-kiln-variant, retry-after";

/// CORS: answers preflights (before any key check: browsers send none there) and marks answers to allowed origins.
async fn cors(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cors) = state.config().http.cors.as_ref() else { return next.run(request).await };
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else { return next.run(request).await };
    let allowed = cors.allows(&origin);
    let allow_origin = if cors.any { HeaderValue::from_static("*") } else { origin };
    if request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let h = response.headers_mut();
        if allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, cors_allow_headers(&state));
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        vary(h, "origin, access-control-request-method, access-control-request-headers", cors.any);
        return response;
    }
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(CORS_EXPOSE));
    }
    vary(h, "origin", cors.any);
    response
}

/// With a list of origins the answer depends on the request's; with `*` it does not.
fn vary(headers: &mut HeaderMap, value: &'static str, any: bool) {
    if !any {
        headers.append(header::VARY, HeaderValue::from_static(value));
    }
}

fn is_open(path: &str) -> bool {
    OPEN_ROUTES.contains(&path)
}

/// API keys: 401 `unauthorized` without one of the configured keys, except on the open routes.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(keys) = state.config().http.api_keys.as_ref() else { return next.run(request).await };
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request.headers().get(&keys.header);
    let Some(i) = presented.and_then(|v| keys.check(v.as_bytes())) else {
        let message = if presented.is_some() {
            format!("the API key in the {} header is not valid", keys.header)
        } else {
            format!("an API key is required in the {} header", keys.header)
        };
        return ApiError::new(Code::Unauthorized, message).into_response();
    };
    request.extensions_mut().insert(ClientKey(i));
    let mut response = next.run(request).await;
    response.extensions_mut().insert(ClientKey(i));
    response
}

/// The token bucket of the request's key (its client IP without keys): 429 `rate_limited` with `retry-after`.
async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(buckets) = state.http().buckets.as_ref() else { return next.run(request).await };
    if is_open(request.uri().path()) {
        return next.run(request).await;
    }
    let client = match request.extensions().get::<ClientKey>() {
        Some(k) => Client::Key(k.0),
        None => Client::Ip(
            request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ),
    };
    match buckets.take_for(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let limit = buckets.limit;
            let message = format!(
                "too many requests: this client may send {} a second (bursts of {}); retry in {wait} s",
                limit.per_second, limit.burst
            );
            let mut response = ApiError::new(Code::RateLimited, message).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    }
}

/// 504 `timeout` when the rest of the stack takes longer than `limit`. Work already on the blocking pool runs to
/// its end; only the answer is given up.
async fn timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            Code::Timeout,
            format!("the request took longer than this server's limit of {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests;
