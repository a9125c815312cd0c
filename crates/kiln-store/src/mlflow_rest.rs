//! The MLflow REST adapter: [`RestStore`] implements the tracking, artifact and registry ports against an MLflow
//! server (3.17.2 measured, see the project's MLflow notes), so that what kiln logs shows up in the MLflow UI and
//! the Python client exactly as if Python had logged it.
//!
//! Key decisions:
//! - Blocking HTTP (`ureq`): the ports are synchronous and the pipeline is sequential; no async runtime here.
//! - Retries with exponential backoff on 429, 5xx and connection errors, for idempotent calls only (reads, tag and
//!   param writes, artifact PUTs, alias and stage moves). A call that appends (metrics, a new run, a new version) is
//!   retried only when the connection was never made, because then the server cannot have applied it.
//! - Errors carry MLflow's `error_code` and message and the endpoint, never a credential: the URI is shown without
//!   its user-info, and the `Authorization` header is never formatted.
//! - The server's limits are respected: batches of at most 1000 metrics and 100 params or tags; NaN and infinities
//!   as the strings MLflow expects; a param value over 6000 characters (the server would truncate it silently) or a
//!   tag value over 8000 is written whole as an artifact under `kiln/long_values/`, and the logged value is cut
//!   with a note that says where the full value is.
//! - Artifacts go through the server's artifact proxy (`mlflow-artifacts:/...`), file by file.

mod answer;
mod artifacts;
mod registry;
mod tracking;

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;
use std::{collections::HashMap, fmt};

use base64::Engine;
use kiln_domain::{Code, PortError};
use serde_json::Value;

pub(crate) use answer::Field;

/// How kiln authenticates to the server (from `MLFLOW_TRACKING_USERNAME`/`_PASSWORD` or `MLFLOW_TRACKING_TOKEN`,
/// read by the CLI). Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, password: <redacted>)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

impl Credentials {
    fn header(&self) -> String {
        match self {
            Credentials::Basic { username, password } => {
                let raw = format!("{username}:{password}");
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
            }
            Credentials::Bearer { token } => format!("Bearer {token}"),
        }
    }

    /// Every secret string, for callers that must scrub text they did not write.
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Credentials::Basic { password, .. } => vec![password.as_str()],
            Credentials::Bearer { token } => vec![token.as_str()],
        }
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct RestConfig {
    /// `http://host:port` or `https://...`, optionally with a path prefix; user-info in the URI is taken as basic
    /// credentials and never shown
    pub uri: String,
    pub credentials: Option<Credentials>,
    /// per request (MLflow's `MLFLOW_HTTP_REQUEST_TIMEOUT`, default 120 s)
    pub timeout: Duration,
    /// retries after the first attempt (MLflow's `MLFLOW_HTTP_REQUEST_MAX_RETRIES`)
    pub max_retries: u32,
    /// the first wait; each retry waits twice as long as the one before (MLflow's `..._BACKOFF_FACTOR`)
    pub backoff: Duration,
}

impl RestConfig {
    /// Defaults: 120 s timeout, 5 retries, first wait 0.5 s (at most 15.5 s of waiting in all).
    pub fn new(uri: &str) -> RestConfig {
        RestConfig {
            uri: uri.to_string(),
            credentials: None,
            timeout: Duration::from_secs(120),
            max_retries: 5,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Whether a call may be sent again after a failure whose effect on the server is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// reads and writes that give the same state when repeated
    Idempotent,
    /// appends: retried only when no connection was made
    ConnectOnly,
}

/// The MLflow server behind the tracking, artifact and registry ports.
pub struct RestStore {
    agent: ureq::Agent,
    /// scheme://host[:port][/prefix], without user-info or trailing `/`
    base: String,
    credentials: Option<Credentials>,
    max_retries: u32,
    backoff: Duration,
    /// run id -> (experiment id, artifact path in the proxy), from `runs/get`
    runs: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for RestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RestStore").field("base", &self.base).field("credentials", &self.credentials).finish()
    }
}

/// A failed HTTP exchange, before it becomes a [`PortError`].
enum Failure {
    /// the server answered with an error status
    Status { status: u16, error_code: String, message: String },
    /// no answer (connection refused, timeout, DNS); `connected` says whether the request may have been sent
    Transport { connected: bool, message: String },
}

impl RestStore {
    /// A client for the server at `config.uri`. Nothing is sent yet.
    ///
    /// # Errors
    /// `config_invalid` for a URI that is not `http://` or `https://`.
    pub fn new(config: RestConfig) -> Result<RestStore, PortError> {
        let (base, from_uri) = split_user_info(&config.uri)?;
        let agent = ureq::AgentBuilder::new().timeout_connect(Duration::from_secs(10)).timeout(config.timeout).build();
        Ok(RestStore {
            agent,
            base,
            credentials: config.credentials.or(from_uri),
            max_retries: config.max_retries,
            backoff: config.backoff,
            runs: Mutex::new(HashMap::new()),
        })
    }

    /// The server's URI without user-info: safe to print.
    pub fn uri(&self) -> &str {
        &self.base
    }

    /// Checks that the server answers `/health`.
    ///
    /// # Errors
    /// `store_io` when it does not.
    pub fn health(&self) -> Result<(), PortError> {
        let url = format!("{}/health", self.base);
        self.send("GET", &url, None, Retry::Idempotent).map(|_| ()).map_err(|f| self.port_error("GET /health", f))
    }

    /// A JSON call to `/api/2.0/mlflow/<endpoint>`; returns the parsed body (`{}` when empty).
    pub(crate) fn call(
        &self,
        method: &str,
        endpoint: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
        retry: Retry,
    ) -> Result<Value, PortError> {
        let mut url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        if !query.is_empty() {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode_component(v))).collect();
            url = format!("{url}?{}", q.join("&"));
        }
        let what = format!("{method} {endpoint}");
        let payload = body.map(|b| b.to_string().into_bytes());
        let bytes = self
            .send(method, &url, payload.as_deref().map(|p| (p, "application/json")), retry)
            .map_err(|f| self.port_error(&what, f))?;
        if bytes.is_empty() {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            PortError::new(
                Code::StoreIo,
                format!("MLflow server {}: {what} answered with invalid JSON: {e}", self.base),
            )
        })
    }

    /// The answer `v` to `method endpoint`, to read field by field (see [`Field`]).
    pub(crate) fn answer<'v>(&self, v: &'v Value, method: &str, endpoint: &str) -> Field<'v> {
        Field::root(v, &format!("MLflow server {}: {method} {endpoint}", self.base))
    }

    /// Sends one request, retrying as `retry` allows; returns the body of a 2xx answer.
    fn send(&self, method: &str, url: &str, body: Option<(&[u8], &str)>, retry: Retry) -> Result<Vec<u8>, Failure> {
        let mut attempt = 0;
        loop {
            let result = self.send_once(method, url, body);
            let retriable = match &result {
                Ok(_) => false,
                Err(Failure::Status { status, .. }) => {
                    retry == Retry::Idempotent && (*status == 429 || (500..600).contains(status))
                }
                Err(Failure::Transport { connected, .. }) => retry == Retry::Idempotent || !connected,
            };
            if !retriable || attempt >= self.max_retries {
                return result;
            }
            std::thread::sleep(self.backoff.saturating_mul(1 << attempt.min(16)));
            attempt += 1;
        }
    }

    fn send_once(&self, method: &str, url: &str, body: Option<(&[u8], &str)>) -> Result<Vec<u8>, Failure> {
        let mut request =
            self.agent.request(method, url).set("User-Agent", concat!("kiln/", env!("CARGO_PKG_VERSION")));
        if let Some(c) = &self.credentials {
            request = request.set("Authorization", &c.header());
        }
        let response = match body {
            Some((bytes, content_type)) => request.set("Content-Type", content_type).send_bytes(bytes),
            None => request.call(),
        };
        match response {
            Ok(r) => read_body(r).map_err(|e| Failure::Transport { connected: true, message: e }),
            Err(ureq::Error::Status(status, r)) => {
                let text = read_body(r).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                let (error_code, message) = match serde_json::from_str::<Value>(&text) {
                    Ok(v) => (
                        v["error_code"].as_str().unwrap_or("").to_string(),
                        v["message"].as_str().map_or_else(|| text.clone(), str::to_string),
                    ),
                    Err(_) => (String::new(), text.trim().chars().take(300).collect()),
                };
                Err(Failure::Status { status, error_code, message })
            }
            Err(ureq::Error::Transport(t)) => {
                let connected = !matches!(t.kind(), ureq::ErrorKind::Dns | ureq::ErrorKind::ConnectionFailed);
                let message = match t.kind() {
                    ureq::ErrorKind::ConnectionFailed => "connection failed".to_string(),
                    ureq::ErrorKind::Dns => "host name not found".to_string(),
                    kind => format!("{kind}: {}", t.message().unwrap_or("no answer")),
                };
                Err(Failure::Transport { connected, message })
            }
        }
    }

    fn port_error(&self, what: &str, failure: Failure) -> PortError {
        match failure {
            Failure::Status { status, error_code, message } => {
                let code = match (status, error_code.as_str()) {
                    (_, "RESOURCE_DOES_NOT_EXIST") | (404, _) => Code::NotFound,
                    (_, "RESOURCE_ALREADY_EXISTS") => Code::AlreadyExists,
                    (401 | 403, _) => Code::StoreAuth,
                    (400..=499, _) => Code::StoreRejected,
                    _ => Code::StoreIo,
                };
                let shown =
                    if error_code.is_empty() { format!("HTTP {status}") } else { format!("{status} {error_code}") };
                let hint = match status {
                    401 => " (set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN)",
                    403 => " (the credentials are not allowed this call)",
                    _ => "",
                };
                PortError::new(code, format!("MLflow server {}: {what}: {shown}: {message}{hint}", self.base))
            }
            Failure::Transport { message, .. } => PortError::new(
                Code::StoreIo,
                format!(
                    "cannot reach the MLflow server at {} ({what}: {message}; {} attempts)",
                    self.base,
                    self.max_retries + 1
                ),
            ),
        }
    }
}

fn read_body(r: ureq::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.into_reader().read_to_end(&mut out).map_err(|e| format!("reading the answer: {e}"))?;
    Ok(out)
}

/// `http://user:pw@host:port/x/` -> (`http://host:port/x`, basic credentials).
fn split_user_info(uri: &str) -> Result<(String, Option<Credentials>), PortError> {
    let Some((scheme, rest)) = uri.split_once("://").filter(|(s, _)| *s == "http" || *s == "https") else {
        return Err(PortError::new(
            Code::ConfigInvalid,
            "an MLflow server URI starts with http:// or https:// (a folder is the local store)".to_string(),
        ));
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (user_info, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(PortError::new(Code::ConfigInvalid, format!("MLflow server URI {scheme}://... has no host")));
    }
    check_host(host).map_err(|why| {
        PortError::new(Code::ConfigInvalid, format!("MLflow server URI {scheme}://{host}/...: {why}"))
    })?;
    let credentials = user_info.map(|u| {
        let (user, pw) = u.split_once(':').unwrap_or((u, ""));
        Credentials::Basic { username: decode_component(user), password: decode_component(pw) }
    });
    let path = path.trim_end_matches('/');
    let base = if path.is_empty() { format!("{scheme}://{host}") } else { format!("{scheme}://{host}/{path}") };
    Ok((base, credentials))
}

/// A URI's `host[:port]`: a name or IPv4 address of letters, digits, `.`, `-` and `_`, or a bracketed IPv6 address,
/// and a port of at most 65535. Checked before any request, so that a typo fails at once instead of being retried.
fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or("the IPv6 address has no closing ']'")?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| format!("'{ip}' is not an IPv6 address"))?;
        match after {
            "" => (None, None),
            _ => (None, Some(after.strip_prefix(':').ok_or("expected ':<port>' after the IPv6 address")?)),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name
        && (name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(format!("'{name}' is not a host name"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!("'{port}' is not a port number (1-65535)"));
    }
    Ok(())
}

pub(crate) use kiln_domain::percent_encode as encode_component;

/// Encodes each `/`-separated segment of an artifact path.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/').map(encode_component).collect::<Vec<_>>().join("/")
}

fn decode_component(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_becomes_credentials_and_never_stays_in_the_uri() {
        let (base, creds) = split_user_info("http://alice:s%40cret@127.0.0.1:5000/mlflow/").unwrap();
        assert_eq!(base, "http://127.0.0.1:5000/mlflow");
        assert_eq!(creds, Some(Credentials::Basic { username: "alice".into(), password: "s@cret".into() }));
        assert!(!format!("{creds:?}").contains("s@cret"));
        assert!(split_user_info("ftp://x").is_err());
        assert!(split_user_info("./mlruns").is_err());
    }

    #[test]
    fn basic_header_is_rfc7617() {
        let c = Credentials::Basic { username: "Aladdin".into(), password: "open sesame".into() };
        assert_eq!(c.header(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(Credentials::Bearer { token: "t".into() }.header(), "Bearer t");
    }

    #[test]
    fn paths_are_encoded_by_segment() {
        assert_eq!(encode_path("model/a b.json"), "model/a%20b.json");
        assert_eq!(encode_component("name='x'"), "name%3D%27x%27");
    }
}
