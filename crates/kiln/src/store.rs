//! Opening the tracking store a URI names: a folder (the embedded MLflow-layout store) or an MLflow server, with the
//! environment variables MLflow's own client reads (credentials, timeout, retries); and kiln's cache folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_domain::{ArtifactStore, ModelRegistry, Tracker};
use kiln_store::{BundleCache, Credentials, GuardedStore, LocalStore, RestConfig, RestStore};

use crate::error::{Error, Result};

/// The three ports of one store (tracking, artifacts, registry), as one trait object.
pub trait Store: Tracker + ArtifactStore + ModelRegistry {}
impl<T: Tracker + ArtifactStore + ModelRegistry> Store for T {}

/// An opened tracking store.
pub enum Opened {
    /// a folder in MLflow's file-store layout
    Local(LocalStore),
    /// an MLflow server
    Remote(RestStore),
}

impl Opened {
    /// The store behind the ports, whichever kind it is.
    pub fn as_store(&self) -> &dyn Store {
        match self {
            Opened::Local(s) => s,
            Opened::Remote(s) => s,
        }
    }

    /// The store, to be shared by threads (a tuning study's trials running at once).
    pub fn as_shared_store(&self) -> &(dyn Store + Sync) {
        match self {
            Opened::Local(s) => s,
            Opened::Remote(s) => s,
        }
    }

    /// The URI as it may be printed (a server's without user-info).
    pub fn display(&self) -> String {
        match self {
            Opened::Local(s) => s.root().display().to_string(),
            Opened::Remote(s) => s.uri().to_string(),
        }
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Opened::Local(_) => "Local",
            Opened::Remote(_) => "Remote",
        };
        f.debug_tuple(kind).field(&self.display()).finish()
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// `text` with the user-info of every URL in it (`scheme://user:password@`) replaced by `***`, for printing, logging
/// and storing anything that may hold a tracking URI.
pub fn redact_user_info(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // the authority ends at the first '/', '?', '#' or white space; user-info is what comes before its last '@'
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Whether `uri` names an MLflow server (`http://` or `https://`) rather than a folder.
pub fn is_server(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// The tracking URI to use: `flag` (a `--tracking-uri` option, say), else `$MLFLOW_TRACKING_URI`, else `./mlruns`.
pub fn tracking_uri(flag: Option<String>) -> String {
    flag.or_else(|| env_var("MLFLOW_TRACKING_URI")).unwrap_or_else(|| "./mlruns".into())
}

/// The client settings for a server URI, from MLflow's environment variables: `MLFLOW_TRACKING_TOKEN` (bearer), or
/// `MLFLOW_TRACKING_USERNAME` with `MLFLOW_TRACKING_PASSWORD` (basic); `MLFLOW_HTTP_REQUEST_TIMEOUT`,
/// `MLFLOW_HTTP_REQUEST_MAX_RETRIES`, `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`.
///
/// # Errors
/// [`Error::Environment`] for a user name without a password (or the reverse) or a number that is not one.
pub fn rest_config(uri: &str) -> Result<RestConfig> {
    let env_error = |message: String| Error::Environment { message };
    let mut config = RestConfig::new(uri);
    config.credentials = match (
        env_var("MLFLOW_TRACKING_TOKEN"),
        env_var("MLFLOW_TRACKING_USERNAME"),
        env_var("MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Some(token), _, _) => Some(Credentials::Bearer { token }),
        (None, Some(username), Some(password)) => Some(Credentials::Basic { username, password }),
        (None, Some(_), None) => {
            return Err(env_error("MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is not".into()));
        }
        (None, None, Some(_)) => {
            return Err(env_error("MLFLOW_TRACKING_PASSWORD is set but MLFLOW_TRACKING_USERNAME is not".into()));
        }
        (None, None, None) => None,
    };
    let number = |name: &str| -> Result<Option<f64>> {
        env_var(name)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| env_error(format!("{name}='{v}' is not a non-negative number")))
            })
            .transpose()
    };
    if let Some(t) = number("MLFLOW_HTTP_REQUEST_TIMEOUT")? {
        config.timeout = Duration::from_secs_f64(t.max(0.1));
    }
    if let Some(n) = number("MLFLOW_HTTP_REQUEST_MAX_RETRIES")? {
        config.max_retries = n as u32;
    }
    if let Some(b) = number("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR")? {
        config.backoff = Duration::from_secs_f64(b);
    }
    Ok(config)
}

/// kiln's cache folder: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln` (`./.kiln-cache`
/// without a home folder).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = env_var("KILN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env_var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("kiln");
    }
    env_var("HOME").map_or_else(|| PathBuf::from(".kiln-cache"), |h| PathBuf::from(h).join(".cache/kiln"))
}

/// Where the final statuses of runs that could not be written to a server wait (`<cache>/pending`).
pub fn pending_dir() -> PathBuf {
    cache_dir().join("pending")
}

/// The content-addressed cache of bundles fetched from servers (`<cache>/models`).
pub fn bundle_cache() -> BundleCache {
    BundleCache::new(cache_dir().join("models"))
}

/// Opens the existing store `uri` names: a folder (a `file://` prefix is allowed; never created here: reading never
/// creates a store) or an MLflow server. Before anything is read, what killed kiln processes left is put right, with
/// a note on stderr for each run: on a server, the final statuses of runs that an earlier kiln could not finish
/// there (marked FAILED now); in a folder, runs whose kiln process died mid-way (marked FAILED, see
/// [`LocalStore::repair`]).
///
/// # Errors
/// [`Error::Environment`], [`Error::TrackingUri`] or [`Error::OpenStore`] (`not_found` for a missing folder).
pub fn open_store(uri: &str) -> Result<Opened> {
    let opened = open_quietly(uri)?;
    match &opened {
        Opened::Remote(store) => flush_pending(store),
        Opened::Local(store) => repair(store),
    }
    Ok(opened)
}

/// [`open_store`] for a writer (training): a folder store is created when missing.
///
/// # Errors
/// As [`open_store`].
pub fn create_store(uri: &str) -> Result<Opened> {
    if is_server(uri) {
        return open_store(uri);
    }
    let store = create_local_store(uri)?;
    repair(&store);
    Ok(Opened::Local(store))
}

/// [`open_store`] without writing pending statuses: for read-only lookups that may run often (polling an alias).
pub(crate) fn open_quietly(uri: &str) -> Result<Opened> {
    if is_server(uri) {
        let store = RestStore::new(rest_config(uri)?).map_err(Error::TrackingUri)?;
        return Ok(Opened::Remote(store));
    }
    Ok(Opened::Local(open_local_store(uri)?))
}

/// The folder of a folder-store URI (`file://` prefix allowed). A URI with another scheme (`s3://`, `http//` without
/// its colon, ...) is refused rather than taken for a folder name.
fn local_path(uri: &str) -> Result<&Path> {
    if is_server(uri) {
        return Err(Error::NotAFolder { uri: uri.to_string() });
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let malformed = |why: &str| Error::OpenStore {
        uri: redact_user_info(uri),
        source: kiln_domain::PortError::new(
            kiln_domain::Code::ConfigInvalid,
            format!("{why}; a tracking URI is a folder, file://<folder>, http://host:port or https://host:port"),
        ),
    };
    if path.is_empty() {
        return Err(malformed("the URI is empty"));
    }
    if let Some((scheme, _)) = path.split_once("://") {
        return Err(malformed(&format!("unsupported scheme '{scheme}://'")));
    }
    let lower = path.to_ascii_lowercase();
    if ["http:", "https:", "http/", "https/"].iter().any(|p| lower.starts_with(p)) {
        return Err(malformed("it looks like a malformed server URL"));
    }
    Ok(Path::new(path))
}

/// Opens an existing folder store (a `file://` prefix is allowed); nothing is created.
///
/// # Errors
/// [`Error::NotAFolder`] for a server URI; [`Error::OpenStore`] when the folder does not exist (`not_found`) or
/// cannot be opened.
pub fn open_local_store(uri: &str) -> Result<LocalStore> {
    LocalStore::open(local_path(uri)?).map_err(|source| Error::OpenStore { uri: redact_user_info(uri), source })
}

/// Opens a folder store, creating it when missing: for writers.
///
/// # Errors
/// As [`open_local_store`], but a missing folder is created.
pub fn create_local_store(uri: &str) -> Result<LocalStore> {
    LocalStore::create(local_path(uri)?).map_err(|source| Error::OpenStore { uri: redact_user_info(uri), source })
}

fn repair(store: &LocalStore) {
    match store.repair() {
        Ok(repaired) => {
            for run in repaired.failed_runs {
                eprintln!(
                    "note: run {run} in {} was left RUNNING by a kiln process that stopped before ending it; marked \
                     it FAILED",
                    store.root().display()
                );
            }
        }
        Err(e) => eprintln!("warning: could not check {} for interrupted runs: {e}", store.root().display()),
    }
}

fn flush_pending(store: &RestStore) {
    match GuardedStore::flush_pending(store, &pending_dir()) {
        Ok(runs) => {
            for run in runs {
                eprintln!(
                    "note: run {run} on {} was interrupted when the server became unreachable; marked it now",
                    store.uri()
                );
            }
        }
        Err(e) => eprintln!("warning: could not write the pending run statuses to {}: {e}", store.uri()),
    }
}
