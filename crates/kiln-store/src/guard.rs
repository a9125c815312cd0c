//! [`GuardedStore`]: the MLflow server behind the ports, with what kiln does when the server goes away mid-run.
//!
//! Key decisions:
//! - Only an unreachable server (`store_io`: no connection, a timeout, or 5xx after the retries) triggers the
//!   fallback; a 4xx is a real error and fails the run as usual.
//! - With a fallback store, every write that reached the server is also kept in memory (a journal per run: tags,
//!   params, metric points, artifact bytes). When the server fails, the run is re-created in the local store from
//!   the journal, and this call and every later one go there. The local run is tagged with the server, the server's
//!   run id and the reason, so `kiln sync` can push it later and mark the partial server run FAILED.
//! - Without a fallback, the error is returned. A run whose final status could not be written is remembered in a
//!   small JSON file under the pending folder, and [`GuardedStore::flush_pending`] writes it (FAILED, with the error)
//!   the next time kiln reaches that server.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kiln_domain::{
    ArtifactEntry, ArtifactStore, Code, DatasetInput, ExperimentId, MetricPoint, ModelRegistry, ModelVersion,
    PortError, RunId, RunInfo, RunStatus, Stage, Tracker,
};
use serde_json::json;

use crate::{LocalStore, RestStore};

/// What one run wrote to the server so far.
#[derive(Default)]
struct Journal {
    experiment_name: String,
    run_name: String,
    start_ms: i64,
    tags: Vec<(String, String)>,
    params: Vec<(String, String)>,
    metrics: Vec<MetricPoint>,
    datasets: Vec<DatasetInput>,
    files: Vec<(String, Vec<u8>)>,
}

/// The state after the switch to the local store.
struct LocalMode {
    reason: String,
    /// server run id -> local run id
    runs: HashMap<String, RunId>,
    /// server experiment id -> local experiment id
    experiments: HashMap<String, ExperimentId>,
}

impl LocalMode {
    fn run(&self, run: &RunId) -> RunId {
        self.runs.get(&run.0).cloned().unwrap_or_else(|| run.clone())
    }
}

#[derive(Default)]
struct State {
    experiments: HashMap<String, String>,
    /// experiment tags set on the server (experiment id, key, value), set again on the local copy at fail-over
    experiment_tags: Vec<(String, String, String)>,
    journal: HashMap<String, Journal>,
    local: Option<LocalMode>,
    /// tags that could not be written, kept for the pending file
    unsent_tags: HashMap<String, Vec<(String, String)>>,
}

/// A run that continued in the local store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedOver {
    pub reason: String,
    /// (server run id, local run id)
    pub runs: Vec<(String, String)>,
}

/// The server store with a fallback or a pending-status record (see the module doc).
pub struct GuardedStore<'a> {
    remote: &'a RestStore,
    fallback: Option<&'a LocalStore>,
    pending_dir: Option<PathBuf>,
    state: Mutex<State>,
}

impl std::fmt::Debug for GuardedStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedStore").field("remote", &self.remote.uri()).finish()
    }
}

fn read_tree(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), PortError> {
    let entries = fs::read_dir(dir).map_err(|e| PortError::io(format!("cannot read folder {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| PortError::io(format!("cannot read folder {}: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
        let path = entry.path();
        if path.is_dir() {
            read_tree(&path, &rel, out)?;
        } else {
            let bytes = fs::read(&path).map_err(|e| PortError::io(format!("cannot read {}: {e}", path.display())))?;
            out.push((rel, bytes));
        }
    }
    Ok(())
}

fn unreachable(e: &PortError) -> bool {
    e.code == Code::StoreIo
}

impl<'a> GuardedStore<'a> {
    /// `fallback`: where runs continue when the server goes away; `pending_dir`: where final statuses that could
    /// not be written are kept (used when there is no fallback).
    pub fn new(remote: &'a RestStore, fallback: Option<&'a LocalStore>, pending_dir: Option<PathBuf>) -> Self {
        GuardedStore { remote, fallback, pending_dir, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether (and why) the work continued in the local store.
    pub fn failed_over(&self) -> Option<FailedOver> {
        let st = self.state();
        st.local.as_ref().map(|m| FailedOver {
            reason: m.reason.clone(),
            runs: m.runs.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
        })
    }

    /// Calls the server; on an unreachable server with a fallback, switches to the local store and calls it there.
    fn route<T>(
        &self,
        remote: impl FnOnce(&RestStore) -> Result<T, PortError>,
        local: impl FnOnce(&LocalStore, &LocalMode) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        if let (Some(store), Some(mode)) = (self.fallback, self.state().local.as_ref()) {
            return local(store, mode);
        }
        match remote(self.remote) {
            Err(e) if unreachable(&e) && self.fallback.is_some() => {
                self.fail_over(&e)?;
                let st = self.state();
                let (Some(store), Some(mode)) = (self.fallback, st.local.as_ref()) else {
                    return Err(e);
                };
                local(store, mode)
            }
            other => other,
        }
    }

    /// Re-creates every journaled run in the local store.
    fn fail_over(&self, cause: &PortError) -> Result<(), PortError> {
        let Some(store) = self.fallback else { return Ok(()) };
        let mut st = self.state();
        if st.local.is_some() {
            return Ok(());
        }
        let reason = cause.message.clone();
        let mut mode = LocalMode { reason: reason.clone(), runs: HashMap::new(), experiments: HashMap::new() };
        for (id, name) in &st.experiments {
            mode.experiments.insert(id.clone(), store.experiment_by_name(name)?);
        }
        for (id, key, value) in &st.experiment_tags {
            if let Some(local) = mode.experiments.get(id) {
                store.ensure_experiment_tag(local, key, value)?;
            }
        }
        for (remote_run, j) in &st.journal {
            let exp = store.experiment_by_name(&j.experiment_name)?;
            let mut tags = j.tags.clone();
            tags.push(("kiln.fallback.server".into(), self.remote.uri().to_string()));
            tags.push(("kiln.fallback.server_run_id".into(), remote_run.clone()));
            tags.push(("kiln.fallback.reason".into(), reason.clone()));
            let info = store.create_run(&exp, &j.run_name, &tags, j.start_ms)?;
            let local = info.run_id;
            if !j.params.is_empty() {
                store.log_params(&local, &j.params)?;
            }
            if !j.metrics.is_empty() {
                store.log_metrics(&local, &j.metrics)?;
            }
            for dataset in &j.datasets {
                store.log_dataset(&local, dataset)?;
            }
            for (path, bytes) in &j.files {
                store.put_bytes(&local, path, bytes)?;
            }
            mode.runs.insert(remote_run.clone(), local);
        }
        st.journal.clear();
        st.local = Some(mode);
        Ok(())
    }

    fn journal(&self, run: &RunId, f: impl FnOnce(&mut Journal)) {
        if self.fallback.is_none() {
            return;
        }
        if let Some(j) = self.state().journal.get_mut(&run.0) {
            f(j);
        }
    }

    fn pending_file(&self, run: &RunId) -> Option<PathBuf> {
        self.pending_dir.as_ref().map(|d| d.join(format!("{}.json", run.0)))
    }

    /// Writes the final statuses that an earlier kiln process could not write to this server; returns the runs it
    /// updated. Files for other servers are left alone; a run that no longer exists is forgotten.
    ///
    /// # Errors
    /// `store_io` when the pending folder cannot be read or the server is still unreachable.
    pub fn flush_pending(remote: &RestStore, pending_dir: &Path) -> Result<Vec<RunId>, PortError> {
        let entries = match fs::read_dir(pending_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(PortError::io(format!("cannot read {}: {e}", pending_dir.display()))),
        };
        let mut done = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = fs::read_to_string(&path)
                .map_err(|e| PortError::io(format!("cannot read the pending run status {}: {e}", path.display())))?;
            let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                PortError::new(Code::StoreCorrupt, format!("pending run status {} is not JSON: {e}", path.display()))
            })?;
            if v["server"].as_str() != Some(remote.uri()) {
                continue;
            }
            let run = RunId(v["run_id"].as_str().unwrap_or("").to_string());
            let status = match v["status"].as_str() {
                Some("FINISHED") => RunStatus::Finished,
                Some("KILLED") => RunStatus::Killed,
                _ => RunStatus::Failed,
            };
            let tags: Vec<(String, String)> = v["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| Some((t[0].as_str()?.to_string(), t[1].as_str()?.to_string())))
                .collect();
            let end = v["end_time"].as_i64().unwrap_or(0);
            let result = (if tags.is_empty() { Ok(()) } else { remote.set_tags(&run, &tags) })
                .and_then(|()| remote.end_run(&run, status, end));
            match result {
                Ok(()) => done.push(run),
                Err(e) if e.code == Code::NotFound => {}
                Err(e) => return Err(e),
            }
            fs::remove_file(&path).map_err(|e| {
                PortError::io(format!("cannot remove the written pending status {}: {e}", path.display()))
            })?;
        }
        Ok(done)
    }
}

impl Tracker for GuardedStore<'_> {
    fn experiment_by_name(&self, name: &str) -> Result<ExperimentId, PortError> {
        let id = self.route(|r| r.experiment_by_name(name), |l, _| l.experiment_by_name(name))?;
        let mut st = self.state();
        if st.local.is_none() {
            st.experiments.insert(id.0.clone(), name.to_string());
        }
        Ok(id)
    }

    fn create_run(
        &self,
        experiment: &ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
        start_time_ms: i64,
    ) -> Result<RunInfo, PortError> {
        let info = self.route(
            |r| r.create_run(experiment, run_name, tags, start_time_ms),
            |l, mode| {
                let exp = mode.experiments.get(&experiment.0).cloned().unwrap_or_else(|| experiment.clone());
                let mut tags = tags.to_vec();
                tags.push(("kiln.fallback.server".into(), self.remote.uri().to_string()));
                tags.push(("kiln.fallback.reason".into(), mode.reason.clone()));
                l.create_run(&exp, run_name, &tags, start_time_ms)
            },
        )?;
        let mut st = self.state();
        if st.local.is_none() && self.fallback.is_some() {
            let experiment_name = st.experiments.get(&experiment.0).cloned().unwrap_or_default();
            let j = Journal {
                experiment_name,
                run_name: info.run_name.clone(),
                start_ms: start_time_ms,
                tags: tags.to_vec(),
                ..Journal::default()
            };
            st.journal.insert(info.run_id.0.clone(), j);
        }
        Ok(info)
    }

    fn ensure_experiment_tag(&self, experiment: &ExperimentId, key: &str, value: &str) -> Result<bool, PortError> {
        let set = self.route(
            |r| r.ensure_experiment_tag(experiment, key, value),
            |l, mode| {
                let exp = mode.experiments.get(&experiment.0).cloned().unwrap_or_else(|| experiment.clone());
                l.ensure_experiment_tag(&exp, key, value)
            },
        )?;
        let mut st = self.state();
        if st.local.is_none() {
            st.experiment_tags.push((experiment.0.clone(), key.to_string(), value.to_string()));
        }
        Ok(set)
    }

    fn log_dataset(&self, run: &RunId, dataset: &DatasetInput) -> Result<(), PortError> {
        self.route(|r| r.log_dataset(run, dataset), |l, m| l.log_dataset(&m.run(run), dataset))?;
        self.journal(run, |j| j.datasets.push(dataset.clone()));
        Ok(())
    }

    fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<(), PortError> {
        self.route(|r| r.log_params(run, params), |l, m| l.log_params(&m.run(run), params))?;
        self.journal(run, |j| j.params.extend_from_slice(params));
        Ok(())
    }

    fn log_metrics(&self, run: &RunId, metrics: &[MetricPoint]) -> Result<(), PortError> {
        self.route(|r| r.log_metrics(run, metrics), |l, m| l.log_metrics(&m.run(run), metrics))?;
        self.journal(run, |j| j.metrics.extend_from_slice(metrics));
        Ok(())
    }

    fn log_batch(
        &self,
        run: &RunId,
        params: &[(String, String)],
        metrics: &[MetricPoint],
        tags: &[(String, String)],
    ) -> Result<(), PortError> {
        let routed = self
            .route(|r| r.log_batch(run, params, metrics, tags), |l, m| l.log_batch(&m.run(run), params, metrics, tags));
        if let Err(e) = routed {
            // as set_tags: tags the server never got go with the run's end record
            if unreachable(&e) && !tags.is_empty() {
                self.state().unsent_tags.entry(run.0.clone()).or_default().extend_from_slice(tags);
            }
            return Err(e);
        }
        self.journal(run, |j| {
            j.params.extend_from_slice(params);
            j.metrics.extend_from_slice(metrics);
            j.tags.extend_from_slice(tags);
        });
        Ok(())
    }

    fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<(), PortError> {
        match self.route(|r| r.set_tags(run, tags), |l, m| l.set_tags(&m.run(run), tags)) {
            Ok(()) => {
                self.journal(run, |j| j.tags.extend_from_slice(tags));
                Ok(())
            }
            Err(e) => {
                if unreachable(&e) {
                    self.state().unsent_tags.entry(run.0.clone()).or_default().extend_from_slice(tags);
                }
                Err(e)
            }
        }
    }

    fn end_run(&self, run: &RunId, status: RunStatus, end_time_ms: i64) -> Result<(), PortError> {
        let result =
            self.route(|r| r.end_run(run, status, end_time_ms), |l, m| l.end_run(&m.run(run), status, end_time_ms));
        let local_mode = self.state().local.is_some();
        if let Err(e) = &result
            && unreachable(e)
            && !local_mode
            && let Some(file) = self.pending_file(run)
        {
            let tags = self.state().unsent_tags.remove(&run.0).unwrap_or_default();
            let record = json!({
                "server": self.remote.uri(), "run_id": run.0, "status": status.as_str(), "end_time": end_time_ms,
                "tags": tags.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(), "error": e.message,
            });
            if let Some(dir) = file.parent() {
                let _ = fs::create_dir_all(dir);
            }
            if let Err(w) = fs::write(&file, record.to_string()) {
                return Err(PortError::io(format!(
                    "{}; and the pending status could not be saved to {}: {w}",
                    e.message,
                    file.display()
                )));
            }
            return Err(PortError::io(format!(
                "{}; run {run} is still RUNNING on the server: kiln marks it {} the next time it reaches the server \
                 (kept in {})",
                e.message,
                status.as_str(),
                file.display()
            )));
        }
        result
    }

    fn get_run(&self, run: &RunId) -> Result<RunInfo, PortError> {
        self.route(|r| r.get_run(run), |l, m| l.get_run(&m.run(run)))
    }
}

impl ArtifactStore for GuardedStore<'_> {
    fn put_bytes(&self, run: &RunId, path: &str, bytes: &[u8]) -> Result<(), PortError> {
        self.route(|r| r.put_bytes(run, path, bytes), |l, m| l.put_bytes(&m.run(run), path, bytes))?;
        self.journal(run, |j| j.files.push((path.to_string(), bytes.to_vec())));
        Ok(())
    }

    fn put_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError> {
        self.route(|r| r.put_dir(run, path, local_dir), |l, m| l.put_dir(&m.run(run), path, local_dir))?;
        self.journal_dir(run, path, local_dir)
    }

    fn list(&self, run: &RunId, path: &str) -> Result<Vec<ArtifactEntry>, PortError> {
        self.route(|r| r.list(run, path), |l, m| l.list(&m.run(run), path))
    }

    fn download_dir(&self, run: &RunId, path: &str, dest: &Path) -> Result<(), PortError> {
        self.route(|r| r.download_dir(run, path, dest), |l, m| l.download_dir(&m.run(run), path, dest))
    }

    fn log_model(
        &self,
        run: &RunId,
        path: &str,
        local_dir: &Path,
        model_type: &str,
    ) -> Result<Option<String>, PortError> {
        let id = self.route(
            |r| r.log_model(run, path, local_dir, model_type),
            |l, m| l.log_model(&m.run(run), path, local_dir, model_type),
        )?;
        self.journal_dir(run, path, local_dir)?;
        Ok(id)
    }

    fn download_logged_model(&self, model_id: &str, dest: &Path) -> Result<(), PortError> {
        self.route(|r| r.download_logged_model(model_id, dest), |l, _| l.download_logged_model(model_id, dest))
    }
}

impl GuardedStore<'_> {
    fn journal_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError> {
        if self.fallback.is_none() || self.state().local.is_some() {
            return Ok(());
        }
        let mut files = Vec::new();
        read_tree(local_dir, path.trim_matches('/'), &mut files)?;
        self.journal(run, |j| j.files.extend(files));
        Ok(())
    }
}

impl ModelRegistry for GuardedStore<'_> {
    fn ensure_registered_model(&self, name: &str) -> Result<(), PortError> {
        self.route(|r| r.ensure_registered_model(name), |l, _| l.ensure_registered_model(name))
    }

    fn create_version(
        &self,
        name: &str,
        source: &str,
        run_id: &RunId,
        model_id: Option<&str>,
    ) -> Result<ModelVersion, PortError> {
        self.route(
            |r| r.create_version(name, source, run_id, model_id),
            |l, m| {
                // in the local store the bundle is the run's `model/` folder
                let local = m.run(run_id);
                let source = match model_id {
                    Some(_) => format!("runs:/{}/model", local.0),
                    None => source.replace(&run_id.0, &local.0),
                };
                l.create_version(name, &source, &local, None)
            },
        )
    }

    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError> {
        self.route(|r| r.get_version(name, version), |l, _| l.get_version(name, version))
    }

    fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, PortError> {
        self.route(|r| r.list_versions(name), |l, _| l.list_versions(name))
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<(), PortError> {
        self.route(|r| r.set_alias(name, alias, version), |l, _| l.set_alias(name, alias, version))
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PortError> {
        self.route(|r| r.delete_alias(name, alias), |l, _| l.delete_alias(name, alias))
    }

    fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, PortError> {
        self.route(|r| r.version_by_alias(name, alias), |l, _| l.version_by_alias(name, alias))
    }

    fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, PortError> {
        self.route(
            |r| r.transition_stage(name, version, stage, archive_existing),
            |l, _| l.transition_stage(name, version, stage, archive_existing),
        )
    }

    fn set_version_tag(&self, name: &str, version: u64, key: &str, value: &str) -> Result<(), PortError> {
        self.route(
            |r| r.set_version_tag(name, version, key, value),
            |l, _| l.set_version_tag(name, version, key, value),
        )
    }
}
