//! `kiln fetch` (a source into a versioned snapshot) and `kiln data list` (the snapshots there are). The source comes
//! from the experiment's `source:` section or from the command line; the snapshot store is `data/raw` unless told
//! otherwise.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_data::{FetchSpec, FileRequest, Snapshot, SnapshotOutcome, SnapshotStore};
use serde::{Deserialize, Serialize};

use crate::cli::{DataCommand, FetchArgs, FetchSource};
use crate::config;
use crate::exit::bad_input;

/// Where snapshots live unless `--root`, `source.root` or `data.snapshot_root` say otherwise.
pub(crate) const DEFAULT_ROOT: &str = "data/raw";

/// The `source:` section: exactly one of `yahoo`, `bigquery` or `file`, and where its snapshot goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSettings {
    /// a local CSV or Parquet file, or an http(s):// URL of one
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<FileSettings>,
    /// bars from the Yahoo Finance chart API
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) yahoo: Option<YahooSettings>,
    /// the rows of a BigQuery query
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bigquery: Option<BigQuerySettings>,
    /// the snapshot's name (default: from the request, e.g. the file's stem or the symbols and interval)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// the snapshot store's folder (default data/raw)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) root: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileSettings {
    /// a path or an http(s):// URL; the type (.csv, .parquet) is read from its extension
    pub(crate) path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time_column: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) time_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) series_column: Option<String>,
}

impl FileSettings {
    fn request(&self) -> FileRequest {
        FileRequest {
            location: self.path.clone(),
            time_column: self.time_column.clone(),
            time_format: self.time_format.clone(),
            series_column: self.series_column.clone(),
        }
    }
}

/// `source.yahoo`: the chart API's bars of one or many symbols (many make a panel with a `symbol` column).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct YahooSettings {
    pub(crate) symbols: Vec<String>,
    /// 1m 2m 5m 15m 30m 60m 90m 1h 1d (default) 5d 1wk 1mo 3mo
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    /// first local date (YYYY-MM-DD), included
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start: Option<String>,
    /// last local date (YYYY-MM-DD), excluded, as yfinance counts
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) end: Option<String>,
    /// Yahoo's range instead of start/end: 1d 5d 1mo 3mo 6mo 1y 2y 5y 10y ytd max
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) range: Option<String>,
    /// the API's scheme and host (default https://query2.finance.yahoo.com)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    /// retries on connection errors, 429 and 5xx (default 4)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) retries: Option<u32>,
    /// seconds between two requests at least (default 0.5)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) min_interval: Option<f64>,
}

impl YahooSettings {
    fn request(&self) -> Result<kiln_data::YahooRequest> {
        let mut request = kiln_data::YahooRequest::new(self.symbols.clone());
        if let Some(i) = &self.interval {
            request.interval.clone_from(i);
        }
        request.start.clone_from(&self.start);
        request.end.clone_from(&self.end);
        request.range.clone_from(&self.range);
        if let Some(url) = &self.base_url {
            request.base_url.clone_from(url);
        }
        if let Some(r) = self.retries {
            request.http.retries = r;
        }
        if let Some(secs) = self.min_interval {
            if !(secs.is_finite() && secs >= 0.0) {
                bad_input!("source.yahoo.min_interval: {secs} is not a number of seconds");
            }
            request.http.min_interval = std::time::Duration::from_secs_f64(secs);
        }
        Ok(request)
    }
}

/// `source.bigquery`: a GoogleSQL query over BigQuery's REST API. Credentials: `key_file` (a service-account JSON
/// key), `token_env` (the name of a variable holding an access token), or else the key file that
/// GOOGLE_APPLICATION_CREDENTIALS names, as Google's own clients do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BigQuerySettings {
    pub(crate) project: String,
    pub(crate) query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_env: Option<String>,
    /// the API's scheme and host (default https://bigquery.googleapis.com)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    /// seconds BigQuery may hold each call waiting for the job (default 10; longer jobs are polled)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<f64>,
    /// rows per page (default: BigQuery's, up to 10 MB a page)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) page_size: Option<u32>,
}

impl BigQuerySettings {
    fn request(&self) -> Result<kiln_data::BigQueryRequest> {
        let auth = match (&self.key_file, &self.token_env) {
            (Some(_), Some(_)) => bad_input!("source.bigquery: give key_file or token_env, not both"),
            (Some(path), None) => kiln_data::BigQueryAuth::KeyFile(path.clone()),
            (None, Some(var)) => match crate::commands::env_var(var) {
                Some(token) => kiln_data::BigQueryAuth::Token { token, from: format!("environment variable {var}") },
                None => bad_input!(
                    "source.bigquery.token_env: environment variable {var} is not set; it should hold an OAuth access \
                     token, e.g. from `gcloud auth print-access-token`"
                ),
            },
            (None, None) => match crate::commands::env_var("GOOGLE_APPLICATION_CREDENTIALS") {
                Some(path) if !path.is_empty() => kiln_data::BigQueryAuth::KeyFile(PathBuf::from(path)),
                _ => bad_input!(
                    "source.bigquery: no credentials: give key_file (a service-account JSON key), token_env (a \
                     variable holding an access token) or set GOOGLE_APPLICATION_CREDENTIALS"
                ),
            },
        };
        let mut request = kiln_data::BigQueryRequest::new(self.project.clone(), self.query.clone(), auth);
        request.location.clone_from(&self.location);
        if let Some(url) = &self.base_url {
            request.base_url.clone_from(url);
        }
        if let Some(secs) = self.timeout {
            if !(secs.is_finite() && secs > 0.0) {
                bad_input!("source.bigquery.timeout: {secs} is not a positive number of seconds");
            }
            request.timeout_ms = (secs * 1000.0).round() as u64;
        }
        if self.page_size.is_some() {
            request.max_results = self.page_size;
        }
        Ok(request)
    }
}

/// The `source:` section of an experiment file, read alone (the rest of the file need not be complete to fetch).
fn source_section(file: &std::path::Path) -> Result<SourceSettings> {
    let loaded = config::load(file, &crate::commands::env_var)?;
    let json = serde_json::to_value(&loaded.value)?;
    let Some(section) = json.get("source") else {
        bad_input!("{}: no 'source:' section to fetch from (or give the source on the command line)", file.display())
    };
    Ok(loaded.parse_at::<SourceSettings>("source", section)?)
}

pub(crate) fn fetch(args: FetchArgs) -> Result<u8> {
    let (spec, name, root) = match (&args.source, &args.config) {
        (Some(_), Some(file)) => {
            bad_input!("give either --config {} or a source on the command line, not both", file.display())
        }
        (None, None) => bad_input!(
            "nothing to fetch: give --config FILE (its source: section) or a source, e.g. kiln fetch file data/x.csv"
        ),
        (None, Some(file)) => {
            let section = source_section(file)?;
            let spec = match (&section.file, &section.yahoo, &section.bigquery) {
                (Some(f), None, None) => FetchSpec::File(f.request()),
                (None, Some(y), None) => FetchSpec::Yahoo(y.request()?),
                (None, None, Some(b)) => FetchSpec::BigQuery(b.request()?),
                _ => bad_input!("{}: key 'source': give exactly one of file, yahoo or bigquery", file.display()),
            };
            (spec, section.name, section.root)
        }
        (Some(FetchSource::File { location, time_column, time_format, series_column }), None) => {
            let settings = FileSettings {
                path: location.clone(),
                time_column: time_column.clone(),
                time_format: time_format.clone(),
                series_column: series_column.clone(),
            };
            (FetchSpec::File(settings.request()), None, None)
        }
        (Some(FetchSource::Yahoo { symbols, interval, start, end, range, base_url }), None) => {
            let settings = YahooSettings {
                symbols: symbols.clone(),
                interval: interval.clone(),
                start: start.clone(),
                end: end.clone(),
                range: range.clone(),
                base_url: base_url.clone(),
                ..YahooSettings::default()
            };
            (FetchSpec::Yahoo(settings.request()?), None, None)
        }
        (
            Some(FetchSource::Bigquery {
                project,
                query,
                query_file,
                location,
                key_file,
                token_env,
                base_url,
                page_size,
            }),
            None,
        ) => {
            let query = match (query, query_file) {
                (Some(q), None) => q.clone(),
                (None, Some(f)) => {
                    std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?
                }
                _ => bad_input!("give the query with --query or --query-file (one of them)"),
            };
            let settings = BigQuerySettings {
                project: project.clone(),
                query,
                location: location.clone(),
                key_file: key_file.clone(),
                token_env: token_env.clone(),
                base_url: base_url.clone(),
                timeout: None,
                page_size: *page_size,
            };
            (FetchSpec::BigQuery(settings.request()?), None, None)
        }
    };
    let name = args.name.clone().or(name);
    let root = args.root.clone().or(root).unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let store = SnapshotStore::new(root);
    let start = std::time::Instant::now();
    let mut note = |line: &str| eprintln!("[{:>6.1}s] {line}", start.elapsed().as_secs_f64());
    let outcome = kiln_data::fetch(&spec, name.as_deref(), &store, &mut note)?;
    let snapshot = outcome.snapshot.snapshot();
    match &outcome.snapshot {
        SnapshotOutcome::Written(s) => println!("wrote snapshot {}", s.reference()),
        SnapshotOutcome::Unchanged(s) => {
            println!(
                "unchanged: the data equals snapshot {} (fetched {}); nothing written",
                s.reference(),
                s.manifest.fetched_at
            )
        }
    }
    print!("{}", describe(snapshot));
    for line in &outcome.notes {
        println!("note: {line}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "written": matches!(outcome.snapshot, SnapshotOutcome::Written(_)),
            "reference": snapshot.reference(),
            "path": snapshot.path,
            "manifest": snapshot.manifest,
        }))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(0)
}

/// The lines that show one snapshot.
fn describe(s: &Snapshot) -> String {
    let m = &s.manifest;
    let columns: Vec<String> = m.columns.iter().map(|c| format!("{} ({})", c.name, c.dtype)).collect();
    let mut out =
        format!("  file:     {}\n  rows:     {}\n  columns:  {}\n", s.path.display(), m.rows, columns.join(", "));
    if let Some([first, last]) = &m.time_range {
        out.push_str(&format!("  time:     {first} .. {last} ({})\n", m.time_column.as_deref().unwrap_or("time")));
    }
    out.push_str(&format!("  sha256:   {}\n", m.sha256));
    out
}

pub(crate) fn data(cmd: DataCommand) -> Result<u8> {
    match cmd {
        DataCommand::List { root, json } => {
            let store = SnapshotStore::new(root.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT)));
            let snapshots = store.list()?;
            if json {
                let rows: Vec<serde_json::Value> = snapshots
                    .iter()
                    .map(|s| serde_json::json!({"reference": s.reference(), "path": s.path, "manifest": s.manifest}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(0);
            }
            if snapshots.is_empty() {
                println!("no snapshots under {} (kiln fetch writes them)", store.root().display());
                return Ok(0);
            }
            let mut rows = vec![
                ["snapshot", "rows", "columns", "time range", "fetched at", "sha256", "size"]
                    .map(String::from)
                    .to_vec(),
            ];
            for s in &snapshots {
                let m = &s.manifest;
                rows.push(vec![
                    s.reference(),
                    m.rows.to_string(),
                    m.columns.len().to_string(),
                    m.time_range.as_ref().map_or("-".to_string(), |[a, b]| format!("{a} .. {b}")),
                    m.fetched_at.clone(),
                    m.sha256[..12.min(m.sha256.len())].to_string(),
                    human_bytes(m.bytes),
                ]);
            }
            print!("{}", crate::table::table(&rows));
            Ok(0)
        }
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The snapshot `data.snapshot` names, resolved in `data.snapshot_root` (default data/raw).
pub(crate) fn resolve_snapshot(reference: &str, root: Option<&std::path::Path>) -> Result<Snapshot> {
    let store = SnapshotStore::new(root.map_or_else(|| PathBuf::from(DEFAULT_ROOT), std::path::Path::to_path_buf));
    Ok(store.resolve(reference)?)
}
