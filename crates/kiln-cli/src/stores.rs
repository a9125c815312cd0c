//! Opening the tracking store a URI names: a folder (the embedded MLflow-layout store) or an MLflow server, with the
//! environment variables MLflow's own client reads (credentials, timeout, retries).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use kiln_domain::{ArtifactStore, ModelRegistry, Tracker};
use kiln_infra::{BundleCache, Credentials, GuardedStore, LocalStore, RestConfig, RestStore};

/// The three ports of one store.
pub(crate) trait Store: Tracker + ArtifactStore + ModelRegistry {}
impl<T: Tracker + ArtifactStore + ModelRegistry> Store for T {}

/// An opened store.
pub(crate) enum Opened {
    Local(LocalStore),
    Remote(RestStore),
}

impl Opened {
    pub(crate) fn as_store(&self) -> &dyn Store {
        match self {
            Opened::Local(s) => s,
            Opened::Remote(s) => s,
        }
    }

    /// The URI as it may be printed (a server's without user-info).
    pub(crate) fn display(&self) -> String {
        match self {
            Opened::Local(s) => s.root().display().to_string(),
            Opened::Remote(s) => s.uri().to_string(),
        }
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub(crate) fn is_server(uri: &str) -> bool {
    uri.starts_with("http://") || uri.starts_with("https://")
}

/// `--tracking-uri`, else `$MLFLOW_TRACKING_URI`, else `./mlruns`.
pub(crate) fn uri_or_default(flag: Option<String>) -> String {
    flag.or_else(|| env_var("MLFLOW_TRACKING_URI")).unwrap_or_else(|| "./mlruns".into())
}

/// The client settings for a server URI, from MLflow's environment variables.
pub(crate) fn rest_config(uri: &str) -> Result<RestConfig> {
    let mut config = RestConfig::new(uri);
    config.credentials = match (
        env_var("MLFLOW_TRACKING_TOKEN"),
        env_var("MLFLOW_TRACKING_USERNAME"),
        env_var("MLFLOW_TRACKING_PASSWORD"),
    ) {
        (Some(token), _, _) => Some(Credentials::Bearer { token }),
        (None, Some(username), Some(password)) => Some(Credentials::Basic { username, password }),
        (None, Some(_), None) => bail!("MLFLOW_TRACKING_USERNAME is set but MLFLOW_TRACKING_PASSWORD is not"),
        (None, None, Some(_)) => bail!("MLFLOW_TRACKING_PASSWORD is set but MLFLOW_TRACKING_USERNAME is not"),
        (None, None, None) => None,
    };
    let number = |name: &str| -> Result<Option<f64>> {
        env_var(name)
            .map(|v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .with_context(|| format!("{name}='{v}' is not a non-negative number"))
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

/// kiln's cache folder: `$KILN_CACHE_DIR`, else `$XDG_CACHE_HOME/kiln`, else `~/.cache/kiln`.
pub(crate) fn cache_dir() -> PathBuf {
    if let Some(d) = env_var("KILN_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env_var("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("kiln");
    }
    env_var("HOME").map_or_else(|| PathBuf::from(".kiln-cache"), |h| PathBuf::from(h).join(".cache/kiln"))
}

pub(crate) fn pending_dir() -> PathBuf {
    cache_dir().join("pending")
}

pub(crate) fn bundle_cache() -> BundleCache {
    BundleCache::new(cache_dir().join("models"))
}

/// Opens the store `uri` names. For a server, first writes the final statuses of runs that an earlier kiln could
/// not finish there (they are marked FAILED now).
pub(crate) fn open(uri: &str) -> Result<Opened> {
    if is_server(uri) {
        let store = RestStore::new(rest_config(uri)?).with_context(|| "invalid tracking URI".to_string())?;
        flush_pending(&store);
        return Ok(Opened::Remote(store));
    }
    Ok(Opened::Local(open_local(uri)?))
}

pub(crate) fn open_local(uri: &str) -> Result<LocalStore> {
    if is_server(uri) {
        bail!("'{uri}' is a server; a folder is needed here");
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    LocalStore::open(Path::new(path)).with_context(|| format!("cannot open the tracking store '{uri}'"))
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
