//! Hot reload: a background task asks the registry, every interval, which version the served reference (an alias,
//! a stage, `latest`) points at now; when it moved, it has the new version downloaded, verified and loaded off the
//! executor, then swaps it in atomically ([`AppState::set_model`]): requests already running finish with the model
//! they started with, the next ones get the new one, none fails. A version that cannot be loaded (a corrupted
//! bundle, a pipeline that does not match its model, an unreachable store) leaves the old model serving; the failure
//! goes to the log and to `/metrics`, and that version is not tried again until the reference moves elsewhere.
//!
//! The registry is behind [`ModelSource`], which the caller implements (the CLI, with kiln's stores): this crate
//! knows no store.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::{AppState, LoadedModel};

/// Where the served reference's versions come from.
pub trait ModelSource: Send + Sync + 'static {
    /// The registered version the reference points at now, without downloading anything; `None` when the
    /// reference cannot move (a run or a folder).
    ///
    /// # Errors
    /// A message for the log (the registry is unreachable, the alias was deleted, ...).
    fn current_version(&self) -> Result<Option<u64>, String>;

    /// Downloads, verifies and loads `version` of the reference's registered model.
    ///
    /// # Errors
    /// A message for the log: the bundle is missing, corrupted, or cannot be served.
    fn load_version(&self, version: u64) -> Result<LoadedModel, String>;
}

/// One event of the watcher, written as a JSON line to stderr.
#[derive(Serialize)]
struct Event<'a> {
    ts: String,
    level: &'static str,
    event: &'static str,
    /// the variant reloaded, when several are served
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    load_ms: Option<u128>,
}

impl Event<'_> {
    fn log(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            eprintln!("{line}");
        }
    }
}

fn now_iso() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    crate::time::format_iso(ms)
}

/// What one check of the watcher did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// the reference still points at the served version (or cannot move)
    Unchanged,
    /// the reference points at a version that failed to load before; not tried again
    KnownBad(u64),
    /// the new version now answers
    Swapped { from: Option<u64>, to: u64 },
    /// the new version could not be loaded; the old one still answers
    Failed { version: u64, error: String },
    /// the registry could not be asked
    Unreachable(String),
}

/// The watcher's memory between checks.
#[derive(Debug, Default)]
pub struct Watcher {
    /// the last version that failed to load
    bad: Option<u64>,
}

impl Watcher {
    pub fn new() -> Watcher {
        Watcher::default()
    }

    /// One check of the primary variant (the one model, when only one is served): see [`Watcher::check_variant`].
    pub fn check(&mut self, state: &AppState, source: &dyn ModelSource) -> Check {
        self.check_variant(state, state.rollout().primary, source)
    }

    /// One check of variant `index`: asks `source` where its reference points, and swaps in a new version that
    /// loads and takes the same input as the other variants. Blocking (call it off the async executor, as
    /// [`watch_variant`] does).
    pub fn check_variant(&mut self, state: &AppState, index: usize, source: &dyn ModelSource) -> Check {
        let rollout = state.rollout();
        let variant = rollout.several().then(|| rollout.variants[index].name.as_str());
        let serving = state.variant_model(index);
        let reference = serving.as_ref().map(|m| m.identity().reference.clone());
        let from = serving.as_ref().and_then(|m| m.identity().version);
        drop(serving);
        let log = |level, event, to: Option<u64>, error: Option<&str>, load_ms: Option<u128>| {
            Event {
                ts: now_iso(),
                level,
                event,
                variant,
                reference: reference.as_deref(),
                from_version: from,
                to_version: to,
                error,
                load_ms,
            }
            .log();
        };
        let to = match source.current_version() {
            Ok(Some(v)) if Some(v) != from => v,
            Ok(_) => return Check::Unchanged,
            Err(e) => {
                log("warn", "model_watch_failed", None, Some(&e), None);
                return Check::Unreachable(e);
            }
        };
        if self.bad == Some(to) {
            return Check::KnownBad(to);
        }
        log("info", "model_reload_started", Some(to), None, None);
        let started = std::time::Instant::now();
        // a panic in the loader (a library bug on a malformed file) is a failed load like any other
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.load_version(to)))
            .unwrap_or_else(|panic| Err(format!("the loader panicked: {}", panic_text(panic.as_ref()))))
            .and_then(|model| state.set_variant_model(index, model));
        match loaded {
            Ok(_) => {
                let ms = started.elapsed().as_millis();
                self.bad = None;
                state.record_reload(None);
                log("info", "model_reloaded", Some(to), None, Some(ms));
                Check::Swapped { from, to }
            }
            Err(error) => {
                self.bad = Some(to);
                state.record_reload(Some(&error));
                log("error", "model_reload_failed", Some(to), Some(&error), None);
                Check::Failed { version: to, error }
            }
        }
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => (*s).to_string(),
        (None, Some(s)) => s.clone(),
        (None, None) => "(no message)".to_string(),
    }
}

/// Runs [`Watcher::check`] every `every` on tokio's blocking pool, until the runtime stops.
pub async fn watch(state: AppState, source: Arc<dyn ModelSource>, every: Duration) {
    let primary = state.rollout().primary;
    watch_variant(state, primary, source, every).await;
}

/// Runs [`Watcher::check_variant`] for variant `index` every `every` on tokio's blocking pool, until the runtime
/// stops: each variant has a watcher of its own.
pub async fn watch_variant(state: AppState, index: usize, source: Arc<dyn ModelSource>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // the first tick is immediate: the model was just loaded
    ticks.tick().await;
    let mut watcher = Watcher::new();
    loop {
        ticks.tick().await;
        let (state, source) = (state.clone(), source.clone());
        // the watcher goes to the blocking thread and comes back with what it learned
        let checked = tokio::task::spawn_blocking(move || {
            watcher.check_variant(&state, index, source.as_ref());
            watcher
        })
        .await;
        watcher = checked.unwrap_or_else(|e| {
            // check catches the loader's panics; anything else is a bug, reported, and the watch goes on
            eprintln!("kiln serve: the model watcher failed: {e}");
            Watcher::new()
        });
    }
}
