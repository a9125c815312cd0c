//! BigQuery over its REST API (no SDK): a query run with `jobs.query`, polled with `jobs.getQueryResults` while the
//! job is not complete, and read page after page by `pageToken`, each page handed on as it arrives.
//!
//! Key decisions: every BigQuery type has one column type (INTEGER -> Int64, FLOAT -> Float64, NUMERIC and
//! BIGNUMERIC -> Float64 (said in a note: about 16 significant digits), BOOLEAN -> Boolean, STRING and BYTES (base64
//! as sent), TIME, GEOGRAPHY, JSON, INTERVAL, RANGE -> String, DATE -> Date, DATETIME -> Datetime(us), TIMESTAMP ->
//! Datetime(us, UTC), RECORD and REPEATED -> JSON text with the field names); nulls stay null. The access token is
//! sent only in the `Authorization` header and scrubbed from every message; it is never returned. It does not write
//! anything to BigQuery nor create tables.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::{NaiveDate, NaiveDateTime};
use polars::prelude::{
    BooleanChunked, DataFrame, Float64Chunked, Int32Chunked, Int64Chunked, IntoColumn, IntoSeries, NewChunkedArray,
    Series, StringChunked, TimeUnit, TimeZone,
};
use serde_json::{Map, Value, json};

use super::http::{FetchSummary, HttpClient, HttpPolicy, Request, encode_component};
use super::jwt::ServiceAccount;
use crate::fetch::FetchError;

/// BigQuery's REST host.
pub const BIGQUERY_BASE_URL: &str = "https://bigquery.googleapis.com";

/// The OAuth scope asked for: reading is all a fetch does.
const SCOPE: &str = "https://www.googleapis.com/auth/bigquery.readonly";

const SOURCE: &str = "BigQuery";

/// A query's rows from BigQuery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigQueryRequest {
    /// the project the query job runs (and is billed) in
    pub project: String,
    /// GoogleSQL (`useLegacySql: false`)
    pub query: String,
    /// the job's location (`US`, `EU`, `europe-west1`); BigQuery's default when `None`
    pub location: Option<String>,
    pub auth: BigQueryAuth,
    /// scheme and host of the API, [`BIGQUERY_BASE_URL`] by default (tests point it at a local server)
    pub base_url: String,
    /// how long BigQuery holds each call waiting for the job (`timeoutMs`); a job still running after it is polled
    pub timeout_ms: u64,
    /// rows per page (`maxResults`); BigQuery's own page size (up to 10 MB) when `None`
    pub max_results: Option<u32>,
    pub http: HttpPolicy,
}

/// Where the access token comes from. Its `Debug` never shows a token.
#[derive(Clone, PartialEq, Eq)]
pub enum BigQueryAuth {
    /// a service-account JSON key: a JWT signed with its key is exchanged at its `token_uri` for a token
    KeyFile(PathBuf),
    /// an OAuth access token (`gcloud auth print-access-token`), read by the caller (the CLI reads it from the
    /// environment variable the user names); `from` says where it came from, for messages and the manifest
    Token { token: String, from: String },
}

impl std::fmt::Debug for BigQueryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BigQueryAuth::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
            BigQueryAuth::Token { from, .. } => f.debug_struct("Token").field("from", from).finish_non_exhaustive(),
        }
    }
}

impl BigQueryRequest {
    /// `query` in `project`, 10 s per call, BigQuery's page size, no pause between calls (BigQuery's quotas are per
    /// project, its long polls are already paced).
    pub fn new(project: impl Into<String>, query: impl Into<String>, auth: BigQueryAuth) -> Self {
        BigQueryRequest {
            project: project.into(),
            query: query.into(),
            location: None,
            auth,
            base_url: BIGQUERY_BASE_URL.to_string(),
            timeout_ms: 10_000,
            max_results: None,
            http: HttpPolicy { min_interval: Duration::ZERO, ..HttpPolicy::default() },
        }
    }
}

/// Runs `req.query` and hands every page of rows to `sink` as it arrives, all with the columns of the result's
/// schema (see the module's types).
///
/// # Errors
/// [`FetchError::Request`] for an empty project or query, [`FetchError::Credentials`] for a key file that is not a
/// key, an empty token or a refused key, [`FetchError::Http`] with BigQuery's message for a bad query
/// (400), a denied access (403) or a missing table (404), [`FetchError::Service`] for a job that failed,
/// [`FetchError::Empty`] for no rows, [`FetchError::Malformed`] for an answer that does not follow the schema, and
/// whatever `sink` returns.
pub(crate) fn fetch_bigquery(
    req: &BigQueryRequest,
    sink: &mut dyn FnMut(DataFrame) -> Result<(), FetchError>,
    note: &mut dyn FnMut(&str),
) -> Result<FetchSummary, FetchError> {
    if req.project.trim().is_empty() {
        return Err(FetchError::Request("BigQuery: no project to run the query in".to_string()));
    }
    if req.query.trim().is_empty() {
        return Err(FetchError::Request("BigQuery: the query is empty".to_string()));
    }
    let auth = Auth::new(&req.auth)?;
    fetch_with(req, auth, sink, note)
}

/// [`fetch_bigquery`] once the credentials are read.
fn fetch_with(
    req: &BigQueryRequest,
    mut auth: Auth,
    sink: &mut dyn FnMut(DataFrame) -> Result<(), FetchError>,
    note: &mut dyn FnMut(&str),
) -> Result<FetchSummary, FetchError> {
    // a long poll must end on BigQuery's side before the HTTP timeout ends it on ours
    let mut policy = req.http.clone();
    policy.timeout = policy.timeout.max(Duration::from_millis(req.timeout_ms) + Duration::from_secs(30));
    let mut client = HttpClient::new(&policy);
    let mut summary = FetchSummary::default();
    let base = req.base_url.trim_end_matches('/');
    let project = encode_component(&req.project);

    let mut body = json!({
        "query": req.query,
        "useLegacySql": false,
        "timeoutMs": req.timeout_ms,
        "formatOptions": {"useInt64Timestamp": true},
        // a retried POST does not start a second job
        "requestId": request_id(),
    });
    if let Some(n) = req.max_results {
        body["maxResults"] = json!(n);
    }
    if let Some(location) = &req.location {
        body["location"] = json!(location);
    }
    let url = format!("{base}/bigquery/v2/projects/{project}/queries");
    let mut answer = call(&mut client, &mut auth, "POST", &url, Some(body.to_string()), &mut summary, note)?;

    let job = JobRef::from(&answer, req);
    let poll_url = job.as_ref().map(|j| j.results_url(base, req, None));
    answer = until_complete(&mut client, &mut auth, answer, job.as_ref(), poll_url.as_deref(), &mut summary, note)?;
    let schema = answer
        .get("schema")
        .and_then(|s| s.get("fields"))
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("a complete job without `schema.fields`"))?;
    let fields = schema.iter().map(Field::parse).collect::<Result<Vec<_>, _>>()?;
    if fields.is_empty() {
        return Err(malformed("a schema without fields"));
    }
    let lossy: Vec<&str> = fields
        .iter()
        .filter(|f| f.mode != Mode::Repeated && f.kind == Kind::Numeric)
        .map(|f| f.name.as_str())
        .collect();
    if !lossy.is_empty() {
        summary.note(
            note,
            format!(
                "BigQuery: NUMERIC/BIGNUMERIC column(s) {} read as Float64 (about 16 significant digits)",
                lossy.join(", ")
            ),
        );
    }
    let total = answer.get("totalRows").and_then(value_u64);
    let mut first_page_rows = None;
    loop {
        let rows = match answer.get("rows") {
            Some(Value::Array(rows)) => rows.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err(malformed("`rows` is not a list")),
        };
        summary.pages += 1;
        if !rows.is_empty() {
            let frame = decode_page(&fields, rows, summary.rows)?;
            let n = rows.len() as u64;
            let size = *first_page_rows.get_or_insert(n);
            summary.rows += n;
            let about = match total {
                Some(t) if t > 0 => format!(" of about {}", t.div_ceil(size).max(summary.pages)),
                _ => String::new(),
            };
            let unit = if n == 1 { "row" } else { "rows" };
            summary.note(note, format!("page {}{about}: {} {unit}", summary.pages, thousands(n)));
            sink(frame)?;
        }
        let Some(token) = answer.get("pageToken").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            break;
        };
        let job = job.as_ref().ok_or_else(|| malformed("a `pageToken` without `jobReference.jobId`"))?;
        let url = job.results_url(base, req, Some(token));
        answer = call(&mut client, &mut auth, "GET", &url, None, &mut summary, note)?;
        answer = until_complete(&mut client, &mut auth, answer, Some(job), Some(&url), &mut summary, note)?;
    }
    if summary.rows == 0 {
        return Err(FetchError::Empty("BigQuery: the query returned no rows".to_string()));
    }
    Ok(summary)
}

/// The job to poll and page through.
#[derive(Debug)]
struct JobRef {
    project: String,
    id: String,
    location: Option<String>,
}

impl JobRef {
    fn from(answer: &Value, req: &BigQueryRequest) -> Option<JobRef> {
        let r = answer.get("jobReference")?;
        let id = r.get("jobId").and_then(Value::as_str)?.to_string();
        let project = r.get("projectId").and_then(Value::as_str).unwrap_or(&req.project).to_string();
        let location = r.get("location").and_then(Value::as_str).map(str::to_string).or_else(|| req.location.clone());
        Some(JobRef { project, id, location })
    }

    /// `jobs.getQueryResults` for this job, from `page_token` when given.
    fn results_url(&self, base: &str, req: &BigQueryRequest, page_token: Option<&str>) -> String {
        let mut url = format!(
            "{base}/bigquery/v2/projects/{}/queries/{}?timeoutMs={}&formatOptions.useInt64Timestamp=true",
            encode_component(&self.project),
            encode_component(&self.id),
            req.timeout_ms
        );
        if let Some(location) = &self.location {
            url.push_str(&format!("&location={}", encode_component(location)));
        }
        if let Some(n) = req.max_results {
            url.push_str(&format!("&maxResults={n}"));
        }
        if let Some(t) = page_token {
            url.push_str(&format!("&pageToken={}", encode_component(t)));
        }
        url
    }
}

/// `answer` once its job is complete: while BigQuery says `jobComplete: false`, `url` (jobs.getQueryResults) is
/// asked again; a failed job is an error.
#[allow(clippy::too_many_arguments)]
fn until_complete(
    client: &mut HttpClient,
    auth: &mut Auth,
    mut answer: Value,
    job: Option<&JobRef>,
    url: Option<&str>,
    summary: &mut FetchSummary,
    note: &mut dyn FnMut(&str),
) -> Result<Value, FetchError> {
    let mut polls = 0u32;
    loop {
        check_job(&answer, job)?;
        if answer.get("jobComplete").and_then(Value::as_bool) != Some(false) {
            return Ok(answer);
        }
        let (Some(job), Some(url)) = (job, url) else {
            return Err(malformed("an incomplete job without `jobReference.jobId`"));
        };
        if polls == 0 {
            summary.note(note, format!("job {} is running; waiting for it", job.id));
        }
        // BigQuery holds each call up to timeoutMs; the pause only matters when it answers at once
        std::thread::sleep(Duration::from_millis(100u64 << polls.min(5)).min(Duration::from_secs(2)));
        polls += 1;
        answer = call(client, auth, "GET", url, None, summary, note)?;
    }
}

/// A job that failed says so in `status.errorResult` or, with no schema to read, in `errors`.
fn check_job(answer: &Value, job: Option<&JobRef>) -> Result<(), FetchError> {
    let describe = |e: &Value| {
        let message = e.get("message").and_then(Value::as_str).unwrap_or("no message");
        match e.get("reason").and_then(Value::as_str) {
            Some(r) => format!("{message} ({r})"),
            None => message.to_string(),
        }
    };
    let source_name = job.map_or_else(|| SOURCE.to_string(), |j| format!("BigQuery job {}", j.id));
    let failed = |message: String| FetchError::Service { source_name, message };
    if let Some(e) = answer.get("status").and_then(|s| s.get("errorResult")).filter(|e| !e.is_null()) {
        return Err(failed(describe(e)));
    }
    let errors = answer.get("errors").and_then(Value::as_array).filter(|e| !e.is_empty());
    if let Some(errors) = errors
        && answer.get("schema").is_none()
    {
        let all: Vec<String> = errors.iter().map(describe).collect();
        return Err(failed(all.join("; ")));
    }
    Ok(())
}

/// One API call with the current bearer token; the answer's JSON.
fn call(
    client: &mut HttpClient,
    auth: &mut Auth,
    method: &str,
    url: &str,
    body: Option<String>,
    summary: &mut FetchSummary,
    note: &mut dyn FnMut(&str),
) -> Result<Value, FetchError> {
    let token = auth.token(client, summary, note)?;
    let mut request = match body {
        Some(b) => Request::post(url, b.into_bytes(), "application/json"),
        None => Request::get(url),
    };
    request.method = method;
    request.headers.push(("Authorization", format!("Bearer {token}")));
    request.headers.push(("Accept", "application/json".to_string()));
    request.secrets.push(token);
    let answer = client.send(&request, &mut |line: &str| summary.note(note, line.to_string()))?;
    serde_json::from_slice(&answer.body).map_err(|e| malformed(&format!("not JSON ({e})")))
}

/// The access token, fetched (and renewed before it expires) from a key file, or read once from the environment.
enum Auth {
    Env(String),
    Account { account: Box<ServiceAccount>, token: Option<(String, Instant)> },
}

impl Auth {
    fn new(auth: &BigQueryAuth) -> Result<Auth, FetchError> {
        match auth {
            BigQueryAuth::KeyFile(path) => {
                Ok(Auth::Account { account: Box::new(ServiceAccount::from_file(path)?), token: None })
            }
            BigQueryAuth::Token { token, from } => {
                let token = token.trim().to_string();
                if token.is_empty() {
                    return Err(FetchError::Credentials(format!("BigQuery: the access token from {from} is empty")));
                }
                Ok(Auth::Env(token))
            }
        }
    }

    fn token(
        &mut self,
        client: &mut HttpClient,
        summary: &mut FetchSummary,
        note: &mut dyn FnMut(&str),
    ) -> Result<String, FetchError> {
        let (account, token) = match self {
            Auth::Env(token) => return Ok(token.clone()),
            Auth::Account { account, token } => (account, token),
        };
        if let Some((t, until)) = token.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let assertion = account.assertion(SCOPE, iat)?;
        let form = format!(
            "grant_type={}&assertion={}",
            encode_component("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            encode_component(&assertion)
        );
        let mut request = Request::post(&account.token_uri, form.into_bytes(), "application/x-www-form-urlencoded");
        request.secrets.push(assertion.clone());
        let answer =
            client.send(&request, &mut |line: &str| summary.note(note, line.to_string())).map_err(|e| match e {
                FetchError::Http { url, status, message } => FetchError::Credentials(format!(
                    "BigQuery: the token endpoint {url} refused the key of {}: HTTP {status}: {message}",
                    account.client_email
                )),
                other => other,
            })?;
        let v: Value = serde_json::from_slice(&answer.body).map_err(|e| FetchError::Malformed {
            source_name: format!("token endpoint {}", account.token_uri),
            message: format!("not JSON ({e})"),
        })?;
        let access = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
            FetchError::Malformed {
                source_name: format!("token endpoint {}", account.token_uri),
                message: "no `access_token` in the answer".to_string(),
            }
        })?;
        let lifetime = v.get("expires_in").and_then(value_u64).unwrap_or(3600);
        // renewed a minute early, so a long read never sends an expired token
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(60));
        *token = Some((access.to_string(), until));
        summary.note(note, format!("BigQuery: signed in as {}", account.client_email));
        Ok(access.to_string())
    }
}

/// A fresh `requestId` for `jobs.query`: BigQuery runs one job for repeated requests with the same id.
fn request_id() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("kiln-{}-{nanos:x}", std::process::id())
}

fn malformed(message: &str) -> FetchError {
    FetchError::Malformed { source_name: SOURCE.to_string(), message: message.to_string() }
}

/// A count as text (`"9"`) or a number.
fn value_u64(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// `2000` -> `2,000`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A column's BigQuery type, as kiln reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Float,
    Numeric,
    Bool,
    Text,
    Date,
    DateTime,
    Timestamp,
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Nullable,
    Required,
    Repeated,
}

/// A field of the result's schema.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    /// BigQuery's type name, for messages
    type_name: String,
    kind: Kind,
    mode: Mode,
    fields: Vec<Field>,
}

impl Field {
    fn parse(v: &Value) -> Result<Field, FetchError> {
        let name = v.get("name").and_then(Value::as_str).ok_or_else(|| malformed("a schema field without `name`"))?;
        let type_name = v
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(&format!("schema field {name} without `type`")))?
            .to_ascii_uppercase();
        let kind = match type_name.as_str() {
            "INTEGER" | "INT64" => Kind::Int,
            "FLOAT" | "FLOAT64" => Kind::Float,
            "NUMERIC" | "BIGNUMERIC" | "DECIMAL" | "BIGDECIMAL" => Kind::Numeric,
            "BOOLEAN" | "BOOL" => Kind::Bool,
            "DATE" => Kind::Date,
            "DATETIME" => Kind::DateTime,
            "TIMESTAMP" => Kind::Timestamp,
            "RECORD" | "STRUCT" => Kind::Record,
            // STRING, BYTES (base64 as sent), TIME, GEOGRAPHY (WKT), JSON, INTERVAL, RANGE and any newer type
            _ => Kind::Text,
        };
        let mode = match v.get("mode").and_then(Value::as_str).map(str::to_ascii_uppercase).as_deref() {
            None | Some("NULLABLE") => Mode::Nullable,
            Some("REQUIRED") => Mode::Required,
            Some("REPEATED") => Mode::Repeated,
            Some(other) => return Err(malformed(&format!("schema field {name} has an unknown mode {other:?}"))),
        };
        let fields = match v.get("fields").and_then(Value::as_array) {
            Some(fs) => fs.iter().map(Field::parse).collect::<Result<Vec<_>, _>>()?,
            None if kind == Kind::Record => {
                return Err(malformed(&format!("RECORD field {name} without `fields`")));
            }
            None => Vec::new(),
        };
        Ok(Field { name: name.to_string(), type_name, kind, mode, fields })
    }

    /// A column of JSON text: records and repeated fields.
    fn is_json(&self) -> bool {
        self.kind == Kind::Record || self.mode == Mode::Repeated
    }
}

/// One column of a page being decoded.
enum Buffer {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Text(Vec<Option<String>>),
    Date(Vec<Option<i32>>),
    /// microseconds since 1970-01-01 00:00 (DATETIME: wall time, TIMESTAMP: UTC)
    Micros(Vec<Option<i64>>),
}

impl Buffer {
    fn for_field(f: &Field, n: usize) -> Buffer {
        if f.is_json() {
            return Buffer::Text(Vec::with_capacity(n));
        }
        match f.kind {
            Kind::Int => Buffer::Int(Vec::with_capacity(n)),
            Kind::Float | Kind::Numeric => Buffer::Float(Vec::with_capacity(n)),
            Kind::Bool => Buffer::Bool(Vec::with_capacity(n)),
            Kind::Date => Buffer::Date(Vec::with_capacity(n)),
            Kind::DateTime | Kind::Timestamp => Buffer::Micros(Vec::with_capacity(n)),
            Kind::Text | Kind::Record => Buffer::Text(Vec::with_capacity(n)),
        }
    }

    fn into_column(self, f: &Field) -> polars::prelude::Column {
        let name = f.name.as_str().into();
        let series: Series = match self {
            Buffer::Int(v) => Int64Chunked::from_iter_options(name, v.into_iter()).into_series(),
            Buffer::Float(v) => Float64Chunked::from_iter_options(name, v.into_iter()).into_series(),
            Buffer::Bool(v) => BooleanChunked::from_iter_options(name, v.into_iter()).into_series(),
            Buffer::Text(v) => StringChunked::from_iter_options(name, v.into_iter()).into_series(),
            Buffer::Date(v) => Int32Chunked::from_iter_options(name, v.into_iter()).into_date().into_series(),
            Buffer::Micros(v) => {
                let zone = (f.kind == Kind::Timestamp).then_some(TimeZone::UTC);
                Int64Chunked::from_iter_options(name, v.into_iter())
                    .into_datetime(TimeUnit::Microseconds, zone)
                    .into_series()
            }
        };
        series.into_column()
    }
}

/// One page of `f`/`v` rows as a frame with one column per top-level field. `before` is the number of rows of the
/// earlier pages, so a message names the row in the whole result (1-based).
fn decode_page(fields: &[Field], rows: &[Value], before: u64) -> Result<DataFrame, FetchError> {
    let mut buffers: Vec<Buffer> = fields.iter().map(|f| Buffer::for_field(f, rows.len())).collect();
    for (r, row) in rows.iter().enumerate() {
        let at = |message: String| malformed(&format!("row {}: {message}", before + r as u64 + 1));
        let cells = row.get("f").and_then(Value::as_array).ok_or_else(|| at("no `f` list of cells".to_string()))?;
        if cells.len() != fields.len() {
            return Err(at(format!("{} cells for {} schema fields", cells.len(), fields.len())));
        }
        for ((field, cell), buffer) in fields.iter().zip(cells).zip(buffers.iter_mut()) {
            let v = cell.get("v").unwrap_or(&Value::Null);
            push(buffer, field, v).map_err(|why| at(format!("column {} ({}): {why}", field.name, field.type_name)))?;
        }
    }
    let columns = buffers.into_iter().zip(fields).map(|(b, f)| b.into_column(f)).collect();
    DataFrame::new(rows.len(), columns).map_err(|e| malformed(&e.to_string()))
}

fn push(buffer: &mut Buffer, field: &Field, v: &Value) -> Result<(), String> {
    if field.is_json() {
        let Buffer::Text(out) = buffer else { unreachable!("a JSON field has a text buffer") };
        out.push(match v {
            Value::Null => None,
            v => Some(cell_json(field, v)?.to_string()),
        });
        return Ok(());
    }
    // BigQuery sends every scalar as a string; a number or a boolean from another writer is read the same way
    let text: Option<std::borrow::Cow<'_, str>> = match v {
        Value::Null => None,
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string().into()),
        other => return Err(format!("{other} is not a scalar value")),
    };
    let text = text.as_deref();
    match buffer {
        Buffer::Int(out) => out.push(text.map(parse_int).transpose()?),
        Buffer::Float(out) => out.push(text.map(parse_float).transpose()?),
        Buffer::Bool(out) => out.push(text.map(parse_bool).transpose()?),
        Buffer::Text(out) => out.push(text.map(str::to_string)),
        Buffer::Date(out) => out.push(text.map(parse_date).transpose()?),
        Buffer::Micros(out) => out.push(
            text.map(|t| if field.kind == Kind::Timestamp { parse_timestamp(t) } else { parse_datetime(t) })
                .transpose()?,
        ),
    }
    Ok(())
}

fn parse_int(s: &str) -> Result<i64, String> {
    s.parse().map_err(|_| format!("{s:?} is not an integer"))
}

fn parse_float(s: &str) -> Result<f64, String> {
    // "NaN", "Infinity" and "-Infinity" are how BigQuery writes the non-finite values
    s.parse().map_err(|_| format!("{s:?} is not a number"))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "TRUE" | "True" => Ok(true),
        "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

fn parse_date(s: &str) -> Result<i32, String> {
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))?;
    Ok((d - NaiveDate::default()).num_days() as i32)
}

/// `2018-01-05T12:34:56[.ffffff]` (or with a space), as microseconds of wall time.
fn parse_datetime(s: &str) -> Result<i64, String> {
    let t = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
        .map_err(|_| format!("{s:?} is not a datetime (YYYY-MM-DDTHH:MM:SS[.ffffff])"))?;
    Ok(t.and_utc().timestamp_micros())
}

/// Microseconds since the epoch (what `useInt64Timestamp` sends), or seconds written as a decimal or in scientific
/// notation (`1.514764800123456E9`, BigQuery's older text form), read exactly.
fn parse_timestamp(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a timestamp (microseconds or seconds since 1970)");
    if !s.contains(['.', 'e', 'E']) {
        return s.parse().map_err(|_| bad());
    }
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (s, 0),
    };
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 30 {
        return Err(bad());
    }
    let mut value: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| bad())? };
    // value * 10^(exponent - frac digits) seconds = value * 10^(shift) microseconds
    let shift = exponent + 6 - frac_part.len() as i32;
    if shift >= 0 {
        for _ in 0..shift {
            value = value.checked_mul(10).ok_or_else(bad)?;
        }
    } else {
        let divisor = 10i128.checked_pow((-shift) as u32).ok_or_else(bad)?;
        // half away from zero: a rounded float text lands on its microsecond
        value = (value + divisor / 2) / divisor;
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).map_err(|_| bad())
}

/// A RECORD or REPEATED cell as JSON: objects keyed by the field names, lists for repeated values; INTEGER and finite
/// FLOAT as JSON numbers, BOOLEAN as true/false, every other type as the text BigQuery sent (NUMERIC stays exact).
fn cell_json(field: &Field, v: &Value) -> Result<Value, String> {
    if field.mode == Mode::Repeated {
        return match v {
            Value::Null => Ok(Value::Array(Vec::new())),
            Value::Array(items) => items
                .iter()
                .map(|item| element_json(field, item.get("v").unwrap_or(&Value::Null)))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Err(format!("a REPEATED cell is not a list: {other}")),
        };
    }
    element_json(field, v)
}

fn element_json(field: &Field, v: &Value) -> Result<Value, String> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if field.kind == Kind::Record {
        let cells = v.get("f").and_then(Value::as_array).ok_or_else(|| format!("a RECORD cell without `f`: {v}"))?;
        if cells.len() != field.fields.len() {
            return Err(format!("a RECORD cell with {} values for {} fields", cells.len(), field.fields.len()));
        }
        let mut out = Map::new();
        for (sub, cell) in field.fields.iter().zip(cells) {
            let value = cell_json(sub, cell.get("v").unwrap_or(&Value::Null))
                .map_err(|why| format!("{}.{}: {why}", field.name, sub.name))?;
            out.insert(sub.name.clone(), value);
        }
        return Ok(Value::Object(out));
    }
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => return Err(format!("{other} is not a scalar value")),
    };
    Ok(match field.kind {
        Kind::Int => json!(parse_int(&text)?),
        Kind::Float => {
            let x = parse_float(&text)?;
            if x.is_finite() { json!(x) } else { Value::String(text) }
        }
        Kind::Bool => json!(parse_bool(&text)?),
        _ => Value::String(text),
    })
}

#[cfg(test)]
mod tests;
