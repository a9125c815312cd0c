//! [`sync`]: copies the local store (experiments, runs with their full metric history, artifacts, MLflow 3 logged
//! models, and the registry with stages and aliases) to an MLflow server. It is what `kiln sync --from ./mlruns
//! --to http://...` runs, and it is idempotent: running it again copies nothing twice.
//!
//! Key decisions:
//! - A server copy of a local run carries the tag `kiln.sync.source_run_id=<local run id>`, and
//!   `kiln.sync.complete=true` is its very last write. A copy without that tag is what an interrupted sync left
//!   behind: it is deleted and the run is copied again. Runs still RUNNING locally are left for a later sync.
//! - Every artifact folder holding an `MLmodel` file is logged as an MLflow 3 logged model (so the UI lists it and
//!   registered versions point at it); every other file is uploaded as it is.
//! - Registry versions are matched by their run, not by number: the server may already number them differently,
//!   and stages and aliases follow the mapped numbers. Local stages and aliases win over the server's for the
//!   versions the sync copied; server aliases the local store does not have are left alone.
//! - A run or version that fails is reported through `progress` and the sync goes on; at the end the call fails
//!   naming every failure, so nothing is skipped silently. An unreachable server (`store_io`) or refused
//!   credentials (`store_auth`) stop it at once; running it again resumes.
//!
//! It never writes the local store, and deletes nothing on the server but its own incomplete copies. Experiment tags
//! are set where the server's experiment lacks them (its kind among them) and a run's dataset inputs come with it;
//! registered-model and version descriptions and tags are not copied.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::Path;

use kiln_domain::{
    ArtifactStore, Code, ExperimentId, ModelRegistry, ModelVersion, PortError, RunId, RunInfo, RunStatus, Tracker,
};

use crate::mlflow_rest::Retry;
use crate::{LocalStore, RestStore};

/// On the server copy: the local run it was copied from.
const SOURCE_RUN_TAG: &str = "kiln.sync.source_run_id";
/// On the server copy: the local store it was copied from.
const SOURCE_TAG: &str = "kiln.sync.source";
/// On the server copy, written last: the copy is whole.
const COMPLETE_TAG: &str = "kiln.sync.complete";
/// On a local run that continued locally after the server went away: the server's partial run.
const FALLBACK_RUN_TAG: &str = "kiln.fallback.server_run_id";
const MODEL_KIND_TAG: &str = "kiln.model.kind";
const ERROR_TAG: &str = "kiln.error";
/// The server refuses longer tag values at run creation; `set_tags` handles them (see [`RestStore`]).
const MAX_TAG_AT_CREATE: usize = 8000;

/// What one [`sync`] did. Counts are of this call only, so a second call over an unchanged store reports copies of
/// zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// local experiments found on (or created on) the server
    pub experiments: usize,
    /// runs copied to the server
    pub runs_copied: usize,
    /// runs whose complete copy was already on the server
    pub runs_skipped: usize,
    /// runs still RUNNING in the local store, left for a later sync
    pub runs_running: usize,
    /// incomplete copies left by an interrupted sync, deleted (their runs were copied again)
    pub incomplete_deleted: usize,
    /// artifact folders logged as MLflow 3 logged models
    pub logged_models: usize,
    /// partial server runs of fallback runs, marked FAILED
    pub fallback_runs_failed: usize,
    /// registered models found on (or created on) the server
    pub models: usize,
    /// model versions registered on the server
    pub versions_copied: usize,
    /// model versions already on the server
    pub versions_skipped: usize,
    /// model versions whose run is still RUNNING locally, left for a later sync
    pub versions_waiting: usize,
    /// stages moved on the server
    pub stages_set: usize,
    /// aliases set or moved on the server
    pub aliases_set: usize,
}

/// A local run's copy on the server.
struct ServerCopy {
    run: RunId,
    /// artifact path -> logged model id; `None` until known (for a copy made by an earlier sync)
    models: Option<BTreeMap<String, String>>,
}

struct Sync<'a> {
    local: &'a LocalStore,
    remote: &'a RestStore,
    progress: &'a dyn Fn(&str),
    /// the value of `kiln.sync.source`
    source: String,
    report: SyncReport,
    failures: Vec<(String, PortError)>,
    /// local experiment id -> server experiment id
    experiments: HashMap<String, ExperimentId>,
    /// local run id -> its server copy
    copies: HashMap<String, ServerCopy>,
    /// local runs still RUNNING
    running: HashSet<String>,
}

/// Copies everything in `local` to `remote` (see the module doc), calling `progress` with one line per step.
///
/// # Errors
/// `store_io` or `store_auth` as soon as the server cannot be reached or refuses the credentials, and the local
/// store's errors when it cannot be listed. When single runs or versions fail, the others are still copied and the
/// error, with the code of the first failure, names each of them. Running the sync again resumes in all cases.
pub fn sync(local: &LocalStore, remote: &RestStore, progress: &dyn Fn(&str)) -> Result<SyncReport, PortError> {
    let root = local.root();
    let source = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()).display().to_string();
    let mut s = Sync {
        local,
        remote,
        progress,
        source,
        report: SyncReport::default(),
        failures: Vec::new(),
        experiments: HashMap::new(),
        copies: HashMap::new(),
        running: HashSet::new(),
    };
    for (exp, name) in local.experiments()? {
        let remote_exp = match remote.experiment_by_name(&name) {
            Ok(id) => id,
            Err(e) => {
                s.fail(format!("experiment '{name}'"), e)?;
                continue;
            }
        };
        // the experiment's kind (and any other tag) comes along, unless the server's experiment has it already
        for (key, value) in local.experiment_tags(&exp)? {
            if let Err(e) = remote.ensure_experiment_tag(&remote_exp, &key, &value) {
                s.fail(format!("tag '{key}' of experiment '{name}'"), e)?;
            }
        }
        s.report.experiments += 1;
        s.experiments.insert(exp.0.clone(), remote_exp.clone());
        for run in local.runs(&exp)? {
            if let Err(e) = s.sync_run(&name, &run, &remote_exp) {
                s.fail(format!("run '{}' ({}) of experiment '{name}'", run.run_name, run.run_id), e)?;
            }
        }
    }
    for name in local.registered_models()? {
        if let Err(e) = s.sync_model(&name) {
            s.fail(format!("registered model '{name}'"), e)?;
        }
    }
    s.finish()
}

fn tag<'t>(tags: &'t [(String, String)], key: &str) -> Option<&'t str> {
    tags.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The artifact path of a version's source inside its run (`runs:/<run>/<path>`, or an artifact URI containing
/// `/<run>/artifacts/`). A local logged model's version (`models:/m-...`) is found by the model's name instead.
fn source_path(source: &str, run: &RunId) -> Result<String, PortError> {
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
        if id != run.0 {
            return Err(PortError::new(
                Code::StoreCorrupt,
                format!("its source '{source}' names run {id}, but its run is {run}"),
            ));
        }
        return Ok(path.trim_matches('/').to_string());
    }
    let marker = format!("/{}/artifacts", run.0);
    if let Some(i) = source.find(&marker) {
        let rest = &source[i + marker.len()..];
        if rest.is_empty() || rest.starts_with('/') {
            return Ok(rest.trim_matches('/').to_string());
        }
    }
    Err(PortError::new(
        Code::ModelRefInvalid,
        format!(
            "its source '{source}' is not in the artifacts of its run {run}; kiln syncs versions registered from a \
             run's artifacts"
        ),
    ))
}

fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() { name.to_string() } else { format!("{rel}/{name}") }
}

impl Sync<'_> {
    fn say(&self, line: &str) {
        (self.progress)(line);
    }

    /// Records a failure and goes on, or stops the sync when the server is unreachable or refuses the credentials.
    fn fail(&mut self, what: String, e: PortError) -> Result<(), PortError> {
        if matches!(e.code, Code::StoreIo | Code::StoreAuth) {
            return Err(PortError::new(
                e.code,
                format!("sync stopped at {what}: {}; run it again to resume ({})", e.message, self.summary()),
            ));
        }
        self.say(&format!("FAILED {what}: {}", e.message));
        self.failures.push((what, e));
        Ok(())
    }

    fn summary(&self) -> String {
        let r = &self.report;
        format!(
            "so far {} runs copied, {} already there, {} versions registered, {} already there",
            r.runs_copied, r.runs_skipped, r.versions_copied, r.versions_skipped
        )
    }

    fn finish(self) -> Result<SyncReport, PortError> {
        let Some((_, first)) = self.failures.first() else {
            return Ok(self.report);
        };
        let list: Vec<String> = self.failures.iter().map(|(what, e)| format!("{what}: {}", e.message)).collect();
        Err(PortError::new(
            first.code,
            format!(
                "sync incomplete: {} item(s) failed ({}); everything else was copied ({}); fix them and run the sync \
                 again",
                self.failures.len(),
                list.join("; "),
                self.summary()
            ),
        ))
    }

    /// Whether the server run carries `kiln.sync.complete=true`.
    fn is_complete(&self, run: &RunId) -> Result<bool, PortError> {
        Ok(tag(&self.remote.tags(run)?, COMPLETE_TAG) == Some("true"))
    }

    fn sync_run(&mut self, exp_name: &str, run: &RunInfo, remote_exp: &ExperimentId) -> Result<(), PortError> {
        let label = format!("run '{}' ({}) of experiment '{exp_name}'", run.run_name, run.run_id);
        if run.status == RunStatus::Running {
            self.say(&format!("{label}: still RUNNING locally, left for a later sync"));
            self.report.runs_running += 1;
            self.running.insert(run.run_id.0.clone());
            return Ok(());
        }
        let mut complete: Option<RunId> = None;
        for copy in self.remote.search_runs_by_tag(remote_exp, SOURCE_RUN_TAG, &run.run_id.0)? {
            if self.is_complete(&copy.run_id)? {
                match &complete {
                    None => complete = Some(copy.run_id),
                    Some(kept) => self.say(&format!(
                        "{label}: the server holds a second complete copy {} (kept; {kept} is used)",
                        copy.run_id
                    )),
                }
            } else {
                self.say(&format!("{label}: deleting the incomplete copy {} of an interrupted sync", copy.run_id));
                self.remote.delete_run(&copy.run_id)?;
                self.report.incomplete_deleted += 1;
            }
        }
        let copy = match complete {
            Some(id) => {
                self.say(&format!("{label}: already on the server as {id}"));
                self.report.runs_skipped += 1;
                ServerCopy { run: id, models: None }
            }
            None => {
                let (id, models) = self.copy_run(run, remote_exp)?;
                self.say(&format!("{label}: copied as {id}"));
                self.report.runs_copied += 1;
                ServerCopy { run: id, models: Some(models) }
            }
        };
        let server_run = copy.run.clone();
        self.copies.insert(run.run_id.0.clone(), copy);
        self.fail_partial_server_run(&label, run, &server_run)
    }

    /// Creates the server copy of a finished local run; returns its id and its logged models by artifact path.
    fn copy_run(
        &mut self,
        run: &RunInfo,
        remote_exp: &ExperimentId,
    ) -> Result<(RunId, BTreeMap<String, String>), PortError> {
        let local_id = &run.run_id;
        // a local `kiln.sync.*` tag would make an incomplete copy look whole
        let tags: Vec<(String, String)> =
            self.local.tags(local_id)?.into_iter().filter(|(k, _)| !k.starts_with("kiln.sync.")).collect();
        let (mut at_start, rest): (Vec<_>, Vec<_>) =
            tags.iter().cloned().partition(|(k, v)| k.starts_with("mlflow.") && v.chars().count() <= MAX_TAG_AT_CREATE);
        at_start.push((SOURCE_RUN_TAG.to_string(), local_id.0.clone()));
        at_start.push((SOURCE_TAG.to_string(), self.source.clone()));
        let server = self.remote.create_run(remote_exp, &run.run_name, &at_start, run.start_time_ms)?.run_id;
        let params = self.local.params(local_id)?;
        if !params.is_empty() {
            self.remote.log_params(&server, &params)?;
        }
        let metrics = self.local.metrics(local_id)?;
        if !metrics.is_empty() {
            self.remote.log_metrics(&server, &metrics)?;
        }
        for dataset in self.local.datasets(local_id)? {
            self.remote.log_dataset(&server, &dataset)?;
        }
        if !rest.is_empty() {
            self.remote.set_tags(&server, &rest)?;
        }
        let mut models = BTreeMap::new();
        let dir = self.local.artifact_dir(local_id)?;
        if dir.is_dir() {
            let kind = tag(&tags, MODEL_KIND_TAG).unwrap_or("unknown").to_string();
            self.copy_artifacts(&server, &dir, "", &kind, &mut models)?;
        }
        let end = run.end_time_ms.unwrap_or(run.start_time_ms);
        self.remote.end_run(&server, run.status, end)?;
        self.remote.set_tags(&server, &[(COMPLETE_TAG.to_string(), "true".to_string())])?;
        Ok((server, models))
    }

    /// Uploads the files under `dir` to `rel` of the server run; a folder with an `MLmodel` file becomes a logged
    /// model.
    fn copy_artifacts(
        &mut self,
        server: &RunId,
        dir: &Path,
        rel: &str,
        kind: &str,
        models: &mut BTreeMap<String, String>,
    ) -> Result<(), PortError> {
        let read_err = |p: &Path, e: std::io::Error| PortError::io(format!("cannot read {}: {e}", p.display()));
        let mut entries: Vec<_> =
            fs::read_dir(dir).map_err(|e| read_err(dir, e))?.collect::<Result<_, _>>().map_err(|e| read_err(dir, e))?;
        entries.sort_by_key(fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                return Err(PortError::new(
                    Code::StoreCorrupt,
                    format!("artifact {} has a name that is not utf-8", path.display()),
                ));
            };
            let child = join(rel, &name);
            // follow symlinks, as the local store does: artifacts are plain files
            let meta = fs::metadata(&path).map_err(|e| read_err(&path, e))?;
            if meta.is_dir() && path.join("MLmodel").is_file() {
                if let Some(id) = self.remote.log_model(server, &child, &path, kind)? {
                    models.insert(child.clone(), id);
                }
                self.report.logged_models += 1;
            } else if meta.is_dir() {
                self.copy_artifacts(server, &path, &child, kind, models)?;
            } else if meta.is_file() {
                let bytes = fs::read(&path).map_err(|e| read_err(&path, e))?;
                self.remote.put_bytes(server, &child, &bytes)?;
            } else {
                return Err(PortError::io(format!("artifact {} is neither a file nor a folder", path.display())));
            }
        }
        Ok(())
    }

    /// A local run that continued after the server went away names the server's partial run: that one is marked
    /// FAILED, when it still exists and is RUNNING.
    fn fail_partial_server_run(&mut self, label: &str, run: &RunInfo, copy: &RunId) -> Result<(), PortError> {
        let tags = self.local.tags(&run.run_id)?;
        let Some(partial) = tag(&tags, FALLBACK_RUN_TAG) else {
            return Ok(());
        };
        let partial = RunId(partial.to_string());
        let v = match self.remote.call("GET", "runs/get", &[("run_id", &partial.0)], None, Retry::Idempotent) {
            Ok(v) => v,
            Err(e) if e.code == Code::NotFound => {
                self.say(&format!("{label}: its partial server run {partial} is gone"));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let info = self.remote.answer(&v, "GET", "runs/get").object("run")?.object("info")?;
        if info.str("status")? != RunStatus::Running.as_str() || info.str("lifecycle_stage")? == "deleted" {
            return Ok(());
        }
        let note = format!(
            "the server became unreachable during the run; it continued in the local store and was synced as run {copy}"
        );
        self.remote.set_tags(&partial, &[(ERROR_TAG.to_string(), note)])?;
        let end = run.end_time_ms.unwrap_or(run.start_time_ms);
        self.remote.end_run(&partial, RunStatus::Failed, end)?;
        self.report.fallback_runs_failed += 1;
        self.say(&format!("{label}: marked its partial server run {partial} FAILED"));
        Ok(())
    }

    /// The server copy of a local run: copied by this sync, or found by its tag (a run synced earlier and since
    /// deleted locally). `None` when the server has no complete copy.
    fn server_run(&mut self, local_run: &RunId) -> Result<Option<RunId>, PortError> {
        if let Some(c) = self.copies.get(&local_run.0) {
            return Ok(Some(c.run.clone()));
        }
        if self.running.contains(&local_run.0) {
            return Ok(None);
        }
        let info = match self.local.get_run(local_run) {
            Ok(info) => info,
            Err(e) if e.code == Code::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(remote_exp) = self.experiments.get(&info.experiment_id.0).cloned() else {
            return Ok(None);
        };
        for copy in self.remote.search_runs_by_tag(&remote_exp, SOURCE_RUN_TAG, &local_run.0)? {
            if self.is_complete(&copy.run_id)? {
                self.copies.insert(local_run.0.clone(), ServerCopy { run: copy.run_id.clone(), models: None });
                return Ok(Some(copy.run_id));
            }
        }
        Ok(None)
    }

    /// The logged model of the server copy of `local_run` at artifact `path`, if it has one.
    fn logged_model(&mut self, local_run: &RunId, path: &str) -> Result<Option<String>, PortError> {
        let Some(copy) = self.copies.get(&local_run.0) else {
            return Ok(None);
        };
        let models = match &copy.models {
            Some(m) => m.clone(),
            None => {
                let found = self.server_logged_models(&copy.run)?;
                if let Some(c) = self.copies.get_mut(&local_run.0) {
                    c.models = Some(found.clone());
                }
                found
            }
        };
        Ok(models.get(path).cloned())
    }

    /// The ready logged models that are outputs of a server run, by name (the artifact path they were logged from).
    fn server_logged_models(&self, run: &RunId) -> Result<BTreeMap<String, String>, PortError> {
        let v = self.remote.call("GET", "runs/get", &[("run_id", &run.0)], None, Retry::Idempotent)?;
        let mut out = BTreeMap::new();
        // `outputs` is left out when the run has none
        let outputs = self.remote.answer(&v, "GET", "runs/get").object("run")?.opt_object("outputs")?;
        let model_outputs = match outputs {
            Some(o) => o.list("model_outputs")?,
            None => Vec::new(),
        };
        for output in model_outputs {
            let id = output.str("model_id")?;
            let endpoint = format!("logged-models/{}", crate::mlflow_rest::encode_component(id));
            let m = self.remote.call("GET", &endpoint, &[], None, Retry::Idempotent)?;
            let info = self.remote.answer(&m, "GET", &endpoint).object("model")?.object("info")?;
            if info.str("status")? == "LOGGED_MODEL_READY" {
                out.insert(info.str("name")?.to_string(), id.to_string());
            }
        }
        Ok(out)
    }

    fn sync_model(&mut self, name: &str) -> Result<(), PortError> {
        self.remote.ensure_registered_model(name)?;
        self.report.models += 1;
        let local_versions = self.local.list_versions(name)?;
        let remote_versions = self.remote.list_versions(name)?;
        let remote_aliases: HashMap<&str, u64> =
            remote_versions.iter().flat_map(|v| v.aliases.iter().map(move |a| (a.as_str(), v.version))).collect();
        let mut claimed: HashSet<u64> = HashSet::new();
        let mut mapped: HashMap<u64, u64> = HashMap::new();
        for lv in &local_versions {
            match self.sync_version(name, lv, &remote_versions, &mut claimed) {
                Ok(Some(v)) => {
                    mapped.insert(lv.version, v);
                }
                Ok(None) => {}
                Err(e) => self.fail(format!("version {} of registered model '{name}'", lv.version), e)?,
            }
        }
        for lv in &local_versions {
            let Some(&target) = mapped.get(&lv.version) else {
                continue;
            };
            for alias in &lv.aliases {
                if remote_aliases.get(alias.as_str()) == Some(&target) {
                    continue;
                }
                match self.remote.set_alias(name, alias, target) {
                    Ok(()) => {
                        self.report.aliases_set += 1;
                        self.say(&format!(
                            "model '{name}': alias '{alias}' -> version {target} (version {} locally)",
                            lv.version
                        ));
                    }
                    Err(e) => self.fail(format!("alias '{alias}' of registered model '{name}'"), e)?,
                }
            }
        }
        Ok(())
    }

    /// Registers one local version on the server unless it is there already (a version of the same model whose run
    /// is the server copy), and gives it the local stage; returns its server number, or `None` when its run is
    /// still RUNNING locally.
    fn sync_version(
        &mut self,
        name: &str,
        lv: &ModelVersion,
        remote_versions: &[ModelVersion],
        claimed: &mut HashSet<u64>,
    ) -> Result<Option<u64>, PortError> {
        let label = format!("model '{name}' version {}", lv.version);
        let Some(local_run) = &lv.run_id else {
            return Err(PortError::new(
                Code::ModelRefInvalid,
                "it has no run id; kiln syncs versions registered from a run's artifacts",
            ));
        };
        // a version of a local logged model: the run artifacts the model was logged from hold the same files
        let path = match lv.source.strip_prefix("models:/").filter(|id| id.starts_with("m-")) {
            Some(model_id) => self.local.logged_model_name(model_id)?,
            None => source_path(&lv.source, local_run)?,
        };
        let Some(server_run) = self.server_run(local_run)? else {
            if self.running.contains(&local_run.0) {
                self.say(&format!("{label}: its run {local_run} is still RUNNING locally, left for a later sync"));
                self.report.versions_waiting += 1;
                return Ok(None);
            }
            return Err(PortError::not_found(format!(
                "its run {local_run} has no complete copy on the server (deleted locally before it was synced, or \
                 its copy failed)"
            )));
        };
        let existing =
            remote_versions.iter().find(|v| v.run_id.as_ref() == Some(&server_run) && !claimed.contains(&v.version));
        let (number, stage) = match existing {
            Some(v) => {
                self.report.versions_skipped += 1;
                self.say(&format!("{label}: already on the server as version {}", v.version));
                (v.version, v.stage)
            }
            None => {
                let created = match self.logged_model(local_run, &path)? {
                    Some(id) => self.remote.create_version(name, &format!("models:/{id}"), &server_run, Some(&id))?,
                    None => {
                        let source = if path.is_empty() {
                            format!("runs:/{server_run}")
                        } else {
                            format!("runs:/{server_run}/{path}")
                        };
                        self.remote.create_version(name, &source, &server_run, None)?
                    }
                };
                self.report.versions_copied += 1;
                self.say(&format!("{label}: registered as version {} ({})", created.version, created.source));
                (created.version, created.stage)
            }
        };
        claimed.insert(number);
        if stage != lv.stage {
            self.remote.transition_stage(name, number, lv.stage, false)?;
            self.report.stages_set += 1;
            self.say(&format!("{label}: stage {} on the server (version {number})", lv.stage.as_str()));
        }
        Ok(Some(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths() {
        let run = RunId("abc123".into());
        assert_eq!(source_path("runs:/abc123/model", &run).unwrap(), "model");
        assert_eq!(source_path("runs:/abc123/bundles/model/", &run).unwrap(), "bundles/model");
        assert_eq!(source_path("runs:/abc123", &run).unwrap(), "");
        assert_eq!(source_path("mlflow-artifacts:/1/abc123/artifacts/model", &run).unwrap(), "model");
        assert_eq!(source_path("file:///x/1/abc123/artifacts", &run).unwrap(), "");
        assert_eq!(source_path("runs:/other/model", &run).unwrap_err().code, Code::StoreCorrupt);
        assert_eq!(source_path("models:/m-1", &run).unwrap_err().code, Code::ModelRefInvalid);
        assert_eq!(source_path("file:///x/1/abc123/artifactsX", &run).unwrap_err().code, Code::ModelRefInvalid);
    }
}
