//! The blocking HTTP exchange under the fetch adapters (Yahoo, BigQuery): one request at a time with `ureq`, a polite
//! minimum interval between requests, and retries with exponential backoff and jitter on what may pass (a refused or
//! dropped connection, a timeout, 429 and 5xx, honouring `Retry-After`).
//!
//! Key decision: an error names the URL without its user-info and without the values of secret-looking query
//! parameters, carries the service's own message from the body (Yahoo's `description`, Google's `error.message`),
//! and has every secret the caller declared (an access token, a signed assertion) scrubbed from it. No async runtime.

use std::io::Read;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::fetch::FetchError;

/// How the adapters talk to a service: retries, backoff, rate and timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// retries after the first attempt, for connection errors, 429 and 5xx (other answers are never retried)
    pub retries: u32,
    /// the first backoff; it doubles at every retry, with jitter (half of it random), up to `max_delay`
    pub base_delay: Duration,
    /// the longest wait between two attempts, `Retry-After` included
    pub max_delay: Duration,
    /// the shortest time between the starts of two requests (a polite rate)
    pub min_interval: Duration,
    /// the whole exchange of one request (connect, send, read the answer)
    pub timeout: Duration,
    /// the `User-Agent` header
    pub user_agent: String,
}

impl Default for HttpPolicy {
    /// 4 retries from 0.5 s up to 30 s, at most two requests a second, 60 s per request, and a user agent that
    /// Yahoo's edge accepts (it refuses some bare library agents with 429) while saying who is asking.
    fn default() -> Self {
        HttpPolicy {
            retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            min_interval: Duration::from_millis(500),
            timeout: Duration::from_secs(60),
            user_agent: concat!("Mozilla/5.0 (compatible; kiln/", env!("CARGO_PKG_VERSION"), ")").to_string(),
        }
    }
}

/// What one fetch did: rows handed to the sink, bars dropped because every value was null (Yahoo), answer pages
/// read, and the progress notes, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchSummary {
    pub rows: u64,
    pub dropped_null_bars: u64,
    pub pages: u64,
    pub notes: Vec<String>,
}

impl FetchSummary {
    /// Keeps `line` and hands it to `note`.
    pub(crate) fn note(&mut self, note: &mut dyn FnMut(&str), line: String) {
        note(&line);
        self.notes.push(line);
    }
}

/// One request to send.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// the body and its content type
    pub(crate) body: Option<(Vec<u8>, &'static str)>,
    /// error statuses handed back to the caller as answers instead of errors (Yahoo's 404 carries its envelope)
    pub(crate) pass: &'a [u16],
    /// strings scrubbed from every message (tokens, assertions); the header values above are never shown anyway
    pub(crate) secrets: Vec<String>,
}

impl<'a> Request<'a> {
    pub(crate) fn get(url: &'a str) -> Self {
        Request { method: "GET", url, headers: Vec::new(), body: None, pass: &[], secrets: Vec::new() }
    }

    pub(crate) fn post(url: &'a str, body: Vec<u8>, content_type: &'static str) -> Self {
        Request {
            method: "POST",
            url,
            headers: Vec::new(),
            body: Some((body, content_type)),
            pass: &[],
            secrets: Vec::new(),
        }
    }
}

/// A 2xx answer, or an error status the request asked to see ([`Request::pass`]).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// The answers kiln reads are JSON pages of at most a few tens of MB; anything far larger is not one of them.
const MAX_BODY: u64 = 1 << 30;

/// A client that keeps the policy's pace across all its requests.
pub(crate) struct HttpClient {
    agent: ureq::Agent,
    policy: HttpPolicy,
    last_start: Option<Instant>,
    rng: u64,
}

/// One failed attempt.
enum Failure {
    Status { status: u16, retry_after: Option<Duration>, message: String },
    Transport { retriable: bool, message: String },
}

impl HttpClient {
    pub(crate) fn new(policy: &HttpPolicy) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(policy.timeout.min(Duration::from_secs(15)))
            .timeout(policy.timeout)
            .user_agent(&policy.user_agent)
            .build();
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x9E37_79B9, |d| d.as_nanos() as u64);
        HttpClient { agent, policy: policy.clone(), last_start: None, rng: seed | 1 }
    }

    /// Sends `req`, retrying connection errors, 429 and 5xx as the policy allows (each retry announced to `note`);
    /// returns the 2xx answer or a passed status.
    ///
    /// # Errors
    /// [`FetchError::Http`] for an error answer (after every retry for 429 and 5xx) with the service's message,
    /// [`FetchError::Connection`] when no answer came after every retry.
    pub(crate) fn send(&mut self, req: &Request<'_>, note: &mut dyn FnMut(&str)) -> Result<Answer, FetchError> {
        let shown = shown_url(req.url);
        let attempts = self.policy.retries + 1;
        let mut attempt = 0;
        loop {
            self.pace();
            let failure = match self.send_once(req) {
                Ok(answer) => return Ok(answer),
                Err(f) => f,
            };
            attempt += 1;
            let (retriable, what, retry_after) = match &failure {
                Failure::Status { status, retry_after, .. } => {
                    (*status == 429 || (500..600).contains(status), format!("HTTP {status}"), *retry_after)
                }
                Failure::Transport { retriable, message } => (*retriable, message.clone(), None),
            };
            if !retriable || attempt >= attempts {
                let tried = if retriable { format!(" (gave up after {attempts} attempts)") } else { String::new() };
                return Err(match failure {
                    Failure::Status { status, message, .. } => FetchError::Http {
                        url: shown,
                        status,
                        message: scrub(&format!("{message}{tried}"), &req.secrets),
                    },
                    Failure::Transport { message, .. } => FetchError::Connection {
                        url: shown,
                        message: scrub(&format!("{message}{tried}"), &req.secrets),
                    },
                });
            }
            let delay = match retry_after {
                Some(d) => d.min(self.policy.max_delay),
                None => self.backoff(attempt - 1),
            };
            note(&scrub(
                &format!(
                    "{what} from {shown}, retrying in {:.1} s (attempt {} of {attempts})",
                    delay.as_secs_f64(),
                    attempt + 1
                ),
                &req.secrets,
            ));
            std::thread::sleep(delay);
        }
    }

    /// Waits until `min_interval` has passed since the previous request started.
    fn pace(&mut self) {
        if let Some(last) = self.last_start {
            let since = last.elapsed();
            if since < self.policy.min_interval {
                std::thread::sleep(self.policy.min_interval - since);
            }
        }
        self.last_start = Some(Instant::now());
    }

    /// `base_delay * 2^retry`, capped by `max_delay`, of which the upper half is random ("equal jitter").
    fn backoff(&mut self, retry: u32) -> Duration {
        let full = self.policy.base_delay.saturating_mul(1u32 << retry.min(20)).min(self.policy.max_delay);
        let half = full / 2;
        // splitmix64: jitter needs no cryptographic randomness, only different waits in different processes
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
        half + half.mul_f64(fraction)
    }

    fn send_once(&self, req: &Request<'_>) -> Result<Answer, Failure> {
        let mut request = self.agent.request(req.method, req.url);
        for (name, value) in &req.headers {
            request = request.set(name, value);
        }
        let response = match &req.body {
            Some((bytes, content_type)) => request.set("Content-Type", content_type).send_bytes(bytes),
            None => request.call(),
        };
        match response {
            Ok(r) => {
                let status = r.status();
                let body = read_body(r).map_err(|message| Failure::Transport { retriable: true, message })?;
                Ok(Answer { status, body })
            }
            Err(ureq::Error::Status(status, r)) => {
                let retry_after = r.header("Retry-After").and_then(parse_retry_after);
                let body = read_body(r).unwrap_or_default();
                if req.pass.contains(&status) {
                    return Ok(Answer { status, body });
                }
                Err(Failure::Status { status, retry_after, message: service_message(&body) })
            }
            Err(ureq::Error::Transport(t)) => {
                let retriable = matches!(
                    t.kind(),
                    ureq::ErrorKind::ConnectionFailed
                        | ureq::ErrorKind::Io
                        | ureq::ErrorKind::BadStatus
                        | ureq::ErrorKind::BadHeader
                        | ureq::ErrorKind::ProxyConnect
                );
                Err(Failure::Transport { retriable, message: transport_message(&t) })
            }
        }
    }
}

fn read_body(r: ureq::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.into_reader().take(MAX_BODY + 1).read_to_end(&mut out).map_err(|e| format!("reading the answer: {e}"))?;
    if out.len() as u64 > MAX_BODY {
        return Err(format!("the answer is larger than {} MiB", MAX_BODY >> 20));
    }
    Ok(out)
}

/// What went wrong, without the URL (ureq's own display repeats it with its query).
fn transport_message(t: &ureq::Transport) -> String {
    let what = match t.kind() {
        ureq::ErrorKind::ConnectionFailed => "connection failed",
        ureq::ErrorKind::Dns => "host name not found",
        ureq::ErrorKind::Io => "connection error",
        ureq::ErrorKind::InvalidUrl => "not a valid URL",
        ureq::ErrorKind::UnknownScheme => "not an http:// or https:// URL",
        ureq::ErrorKind::TooManyRedirects => "too many redirects",
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => "not an HTTP answer",
        _ => "no answer",
    };
    let detail = t.message().map(str::to_string).or_else(|| std::error::Error::source(t).map(|s| s.to_string()));
    match detail {
        Some(d) if !d.is_empty() => format!("{what}: {d}"),
        _ => what.to_string(),
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(86_400.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(wait.max(0) as u64))
}

/// The service's own message in an error body: Yahoo's `chart.error` (or `finance.error`), Google's
/// `error.message` (with its reason), OAuth's `error_description`; otherwise the body's text, shortened.
pub(crate) fn service_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        for envelope in ["chart", "finance", "spark"] {
            if let Some(e) = v.get(envelope).and_then(|c| c.get("error")).filter(|e| e.is_object()) {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                let description = e.get("description").and_then(Value::as_str).unwrap_or("");
                return match (code.is_empty(), description.is_empty()) {
                    (false, false) => format!("{code}: {description}"),
                    (true, false) => description.to_string(),
                    _ => code.to_string(),
                };
            }
        }
        match v.get("error") {
            Some(Value::Object(e)) => {
                if let Some(m) = e.get("message").and_then(Value::as_str) {
                    let reason = e
                        .get("errors")
                        .and_then(|es| es.get(0))
                        .and_then(|x| x.get("reason"))
                        .and_then(Value::as_str)
                        .or_else(|| e.get("status").and_then(Value::as_str));
                    return match reason {
                        Some(r) => format!("{m} ({r})"),
                        None => m.to_string(),
                    };
                }
            }
            Some(Value::String(code)) => {
                return match v.get("error_description").and_then(Value::as_str) {
                    Some(d) => format!("{code}: {d}"),
                    None => code.clone(),
                };
            }
            _ => {}
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "no message".to_string();
    }
    if text.starts_with('<') {
        return "an HTML page, not the service's answer".to_string();
    }
    let short: String = text.chars().take(300).collect();
    if short.len() < text.len() { format!("{short}...") } else { short }
}

/// Query parameters whose values are never shown.
const SECRET_PARAMS: &[&str] =
    &["access_token", "token", "key", "api_key", "apikey", "assertion", "client_secret", "signature", "sig", "crumb"];

/// `url` as it may be printed: no user-info, and the values of secret-looking query parameters replaced.
pub(crate) fn shown_url(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let head = match head.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if path.is_empty() { format!("{scheme}://{host}") } else { format!("{scheme}://{host}/{path}") }
        }
        None => head.to_string(),
    };
    let Some(query) = query else { return head };
    let parts: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}=[redacted]"),
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", parts.join("&"))
}

/// `text` with every non-empty secret replaced.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

pub(crate) use kiln_domain::percent_encode as encode_component;

#[cfg(test)]
pub(crate) mod stub;

#[cfg(test)]
mod tests;
