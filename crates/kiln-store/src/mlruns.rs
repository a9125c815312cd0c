//! [`LocalStore`]: the embedded default tracking store. It writes MLflow 3.17.2's plain file-store layout under a
//! root folder (default `./mlruns`), so that
//! `MLFLOW_ALLOW_FILE_STORE=true mlflow server --backend-store-uri ./mlruns --artifacts-destination ./mlruns`
//! serves the experiments, runs, artifacts and registered models kiln wrote, with no server needed while training.
//!
//! Key decisions: every file is written atomically (temporary file, fsync, rename), so a crash never leaves half a
//! `meta.yaml`; `meta.yaml` files are byte-for-byte what PyYAML writes; experiments are numbered 1, 2, ... and
//! registry versions are claimed with `create_dir`, so two writers never get the same number. It does not delete
//! or restore runs and experiments (MLflow's own tools do that on the same folder).

mod artifacts;
mod fsio;
mod listing;
mod pyyaml;
mod registry;
mod repair;

pub(crate) use registry::{check_alias, check_alias_chars, check_archive_target};
pub use repair::Repaired;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_domain::{
    Code, DATASET_CONTEXT_TAG, DatasetInput, ExperimentId, MetricPoint, PortError, RunId, RunInfo, RunStatus, Tracker,
};

use fsio::{Meta, check_key, create_dir_all, create_dir_new, read_text, write_atomic};
use pyyaml::Yaml;

const META: &str = "meta.yaml";
const TRASH: &str = ".trash";
const MODELS: &str = "models";
/// an experiment's datasets (`<exp>/datasets/<id>/meta.yaml`), as MLflow's file store keeps them
const DATASETS: &str = "datasets";
const RUN_NAME_TAG: &str = "mlflow.runName";
const USER_TAG: &str = "mlflow.user";

/// The embedded tracking store, artifact store and model registry, in MLflow's file-store layout.
///
/// Experiments get `artifact_location: mlflow-artifacts:/<exp_id>` and runs
/// `artifact_uri: mlflow-artifacts:/<exp_id>/<run_id>/artifacts`, with the files stored under
/// `<root>/<exp_id>/<run_id>/artifacts/`. That makes the folder relocatable: nothing in it names an absolute path,
/// and an MLflow server started with `--artifacts-destination <root>` maps those URIs back to exactly those folders.
///
/// Writes from one process are serialised by an internal lock; several processes may share a root (version numbers
/// and experiment ids are claimed atomically), but two processes appending to the same metric of the same run at the
/// same moment may lose points.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
    write_lock: Mutex<()>,
    /// the lock file of every run this process started and has not ended: held (`flock`) while the run is alive, so
    /// that [`LocalStore::repair`] in another process can tell a run killed mid-way from one still running
    running: Mutex<BTreeMap<String, std::fs::File>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn status_code(status: RunStatus) -> i64 {
    match status {
        RunStatus::Running => 1,
        RunStatus::Finished => 3,
        RunStatus::Failed => 4,
        RunStatus::Killed => 5,
    }
}

fn status_from_code(code: i64) -> Option<RunStatus> {
    match code {
        // 2 is SCHEDULED, which kiln treats as not finished yet
        1 | 2 => Some(RunStatus::Running),
        3 => Some(RunStatus::Finished),
        4 => Some(RunStatus::Failed),
        5 => Some(RunStatus::Killed),
        _ => None,
    }
}

/// One run folder found on disk.
pub(crate) struct RunLoc {
    pub(crate) dir: PathBuf,
    pub(crate) meta: Meta,
}

impl LocalStore {
    /// Opens the existing store at `root`, writing nothing: reading never creates a store.
    ///
    /// # Errors
    /// `not_found` when `root` does not exist, `store_io` when it is not a folder.
    pub fn open(root: &Path) -> Result<LocalStore, PortError> {
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => Ok(LocalStore::at(root)),
            Ok(_) => Err(PortError::io(format!("tracking store {} exists and is not a folder", root.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PortError::not_found(format!(
                "tracking store {} does not exist (a folder store is created by the first `kiln train` into it)",
                root.display()
            ))),
            Err(e) => Err(PortError::io(format!("cannot open the tracking store {}: {e}", root.display()))),
        }
    }

    /// Opens the store at `root`, creating and initialising it when missing: the folder, `.trash/` and the Default
    /// experiment `0/meta.yaml`. For writers (training) only.
    ///
    /// # Errors
    /// `store_io` when the folder cannot be created or is not a folder, `store_corrupt` when the Default
    /// experiment's `meta.yaml` is unreadable.
    pub fn create(root: &Path) -> Result<LocalStore, PortError> {
        if root.exists() && !root.is_dir() {
            return Err(PortError::io(format!("tracking store {} exists and is not a folder", root.display())));
        }
        create_dir_all(root)?;
        create_dir_all(&root.join(TRASH))?;
        let store = LocalStore::at(root);
        let default_dir = root.join("0");
        create_dir_all(&default_dir)?;
        if Meta::read(&default_dir.join(META))?.is_none() {
            store.experiment_meta("0", "Default", now_ms()).write(&store.staging())?;
        }
        Ok(store)
    }

    fn at(root: &Path) -> LocalStore {
        LocalStore { root: root.to_path_buf(), write_lock: Mutex::new(()), running: Mutex::new(BTreeMap::new()) }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where temporary files are written before being renamed into place (the writers create it when missing: a
    /// store made by MLflow, or one nobody wrote to yet, may not have it).
    fn staging(&self) -> PathBuf {
        self.root.join(TRASH)
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        // a panic in another writer cannot leave a file half-written (writes are atomic), so a poisoned lock is safe
        self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn experiment_meta(&self, id: &str, name: &str, now: i64) -> Meta {
        Meta::new(
            self.root.join(id).join(META),
            vec![
                ("artifact_location".into(), Yaml::str(format!("mlflow-artifacts:/{id}"))),
                ("creation_time".into(), Yaml::Int(now)),
                ("experiment_id".into(), Yaml::str(id)),
                ("last_update_time".into(), Yaml::Int(now)),
                ("lifecycle_stage".into(), Yaml::str("active")),
                ("name".into(), Yaml::str(name)),
            ],
        )
    }

    /// The folder of an active experiment.
    fn experiment_dir(&self, experiment: &ExperimentId) -> Result<PathBuf, PortError> {
        let exp_id = &experiment.0;
        let exp_ok = !exp_id.is_empty()
            && !exp_id.starts_with('.')
            && exp_id != MODELS
            && !exp_id.contains(['/', '\\'])
            && Meta::read(&self.root.join(exp_id).join(META))?
                .map(|m| m.opt_string("lifecycle_stage"))
                .transpose()?
                .is_some_and(|stage| stage.as_deref() != Some("deleted"));
        if !exp_ok {
            return Err(PortError::not_found(format!("experiment '{exp_id}' not found in {}", self.root.display())));
        }
        Ok(self.root.join(exp_id))
    }

    /// The ids of the experiment folders directly under `dir` (the root or `.trash`).
    fn experiment_dirs(&self, dir: &Path) -> Result<Vec<String>, PortError> {
        Ok(fsio::list_names(dir)?
            .into_iter()
            .filter(|(name, is_dir)| *is_dir && name != TRASH && name != MODELS && !name.starts_with('.'))
            .map(|(name, _)| name)
            .collect())
    }

    /// Finds the run's folder in any active experiment.
    pub(crate) fn find_run(&self, run: &RunId) -> Result<RunLoc, PortError> {
        let id = &run.0;
        let valid = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id.len() <= 256
            && id.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(PortError::not_found(format!("run '{id}' not found: not a valid run id")));
        }
        for exp in self.experiment_dirs(&self.root)? {
            let dir = self.root.join(&exp).join(id);
            if let Some(meta) = Meta::read(&dir.join(META))? {
                return Ok(RunLoc { dir, meta });
            }
        }
        Err(PortError::not_found(format!("run '{id}' not found in {}", self.root.display())))
    }

    /// Like [`LocalStore::find_run`], but refuses runs marked deleted.
    fn active_run(&self, run: &RunId) -> Result<RunLoc, PortError> {
        let loc = self.find_run(run)?;
        if loc.meta.opt_string("lifecycle_stage")?.as_deref() == Some("deleted") {
            return Err(PortError::not_found(format!("run '{}' is deleted", run.0)));
        }
        Ok(loc)
    }

    fn run_info(&self, loc: &RunLoc) -> Result<RunInfo, PortError> {
        let m = &loc.meta;
        let status_int = m.opt_int("status")?.unwrap_or(1);
        let status = status_from_code(status_int).ok_or_else(|| {
            PortError::new(Code::StoreCorrupt, format!("{}: unknown run status {status_int}", m.path.display()))
        })?;
        let run_name = match m.opt_string("run_name")? {
            Some(name) => name,
            None => read_text(&loc.dir.join("tags").join(RUN_NAME_TAG))?.unwrap_or_else(String::new),
        };
        Ok(RunInfo {
            run_id: RunId(m.string("run_id")?),
            experiment_id: ExperimentId(m.string("experiment_id")?),
            run_name,
            status,
            start_time_ms: m.opt_int("start_time")?.unwrap_or(0),
            end_time_ms: m.opt_int("end_time")?,
            artifact_uri: m.string("artifact_uri")?,
        })
    }

    /// The local folder holding a run's artifacts (from its `artifact_uri`: `mlflow-artifacts:/<path>` is under the
    /// root, `file://` URIs and absolute paths are used as they are).
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_corrupt` for an artifact URI that is not local.
    pub fn artifact_dir(&self, run: &RunId) -> Result<PathBuf, PortError> {
        let loc = self.find_run(run)?;
        self.artifact_dir_of(&loc)
    }

    fn artifact_dir_of(&self, loc: &RunLoc) -> Result<PathBuf, PortError> {
        let uri = loc.meta.string("artifact_uri")?;
        if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
            let rest = rest.trim_start_matches('/');
            let segments = fsio::artifact_segments(rest).map_err(|e| {
                PortError::new(Code::StoreCorrupt, format!("{}: bad artifact_uri: {}", loc.meta.path.display(), e))
            })?;
            return Ok(segments.iter().fold(self.root.clone(), |p, s| p.join(s)));
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            return Ok(PathBuf::from(rest));
        }
        if Path::new(&uri).is_absolute() {
            return Ok(PathBuf::from(uri));
        }
        Err(PortError::new(
            Code::StoreCorrupt,
            format!("{}: artifact_uri '{uri}' is not a local location", loc.meta.path.display()),
        ))
    }

    /// Key/value files under `dir` (params or tags), sorted by key.
    fn read_kv_dir(dir: &Path) -> Result<Vec<(String, String)>, PortError> {
        let mut out = Vec::new();
        for key in fsio::walk_files(dir)? {
            let path = dir.join(&key);
            let value = read_text(&path)?.ok_or_else(|| PortError::io(format!("{} vanished", path.display())))?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// A run's params, sorted by key.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` when a file cannot be read.
    pub fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        let loc = self.find_run(run)?;
        Self::read_kv_dir(&loc.dir.join("params"))
    }

    /// A run's tags, sorted by key.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_io` when a file cannot be read.
    pub fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        let loc = self.find_run(run)?;
        Self::read_kv_dir(&loc.dir.join("tags"))
    }

    /// Every logged point of one metric, in logging order (empty when the metric was never logged).
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_corrupt` for a malformed metric line.
    pub fn metric_history(&self, run: &RunId, key: &str) -> Result<Vec<MetricPoint>, PortError> {
        check_key("metric", key)?;
        let loc = self.find_run(run)?;
        let path = loc.dir.join("metrics").join(key);
        match read_text(&path)? {
            Some(text) => parse_metric_lines(&path, key, &text),
            None => Ok(Vec::new()),
        }
    }

    /// Every logged point of every metric, sorted by key, each key's points in logging order.
    ///
    /// # Errors
    /// As [`LocalStore::metric_history`].
    pub fn metrics(&self, run: &RunId) -> Result<Vec<MetricPoint>, PortError> {
        let loc = self.find_run(run)?;
        let dir = loc.dir.join("metrics");
        let mut out = Vec::new();
        for key in fsio::walk_files(&dir)? {
            let path = dir.join(&key);
            if let Some(text) = read_text(&path)? {
                out.extend(parse_metric_lines(&path, &key, &text)?);
            }
        }
        Ok(out)
    }

    fn write_tag(&self, run_dir: &Path, key: &str, value: &str) -> Result<(), PortError> {
        let path = run_dir.join("tags").join(key);
        if let Some(parent) = path.parent() {
            create_dir_all(parent)?;
        }
        write_atomic(&self.staging(), &path, value.as_bytes())
    }
}

/// 32 hex characters identifying `parts` (the ids of datasets and inputs; MLflow uses an MD5 of the same parts).
fn short_hash(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

/// Parses a metric file: `<timestamp> <value> <step>` per line (2 and 5 fields are accepted too, as MLflow does).
fn parse_metric_lines(path: &Path, key: &str, text: &str) -> Result<Vec<MetricPoint>, PortError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad =
            || PortError::new(Code::StoreCorrupt, format!("{} line {}: malformed metric line", path.display(), i + 1));
        let fields: Vec<&str> = line.trim().split(' ').collect();
        if !matches!(fields.len(), 2 | 3 | 5) {
            return Err(bad());
        }
        let timestamp_ms: i64 = fields[0].parse().map_err(|_| bad())?;
        let value: f64 = fields[1].parse().map_err(|_| bad())?;
        let step: i64 = if fields.len() >= 3 { fields[2].parse().map_err(|_| bad())? } else { 0 };
        out.push(MetricPoint { key: key.to_string(), value, timestamp_ms, step });
    }
    Ok(out)
}

impl Tracker for LocalStore {
    fn experiment_by_name(&self, name: &str) -> Result<ExperimentId, PortError> {
        if name.trim().is_empty() {
            return Err(PortError::new(Code::ConfigInvalid, "experiment name must not be empty"));
        }
        let _guard = self.lock();
        let mut highest: u64 = 0;
        for id in self.experiment_dirs(&self.root)? {
            if let Ok(n) = id.parse::<u64>() {
                highest = highest.max(n);
            }
            let Some(meta) = Meta::read(&self.root.join(&id).join(META))? else {
                continue;
            };
            if meta.opt_string("name")?.as_deref() == Some(name) {
                return Ok(ExperimentId(meta.string("experiment_id")?));
            }
        }
        let trash = self.root.join(TRASH);
        for id in self.experiment_dirs(&trash)? {
            if let Ok(n) = id.parse::<u64>() {
                highest = highest.max(n);
            }
            let Some(meta) = Meta::read(&trash.join(&id).join(META))? else {
                continue;
            };
            if meta.opt_string("name")?.as_deref() == Some(name) {
                return Err(PortError::new(
                    Code::AlreadyExists,
                    format!(
                        "experiment '{name}' exists but is deleted ({}); restore it or delete it permanently",
                        trash.join(&id).display()
                    ),
                ));
            }
        }
        let mut n = highest + 1;
        loop {
            let id = n.to_string();
            if !self.root.join(TRASH).join(&id).exists() && create_dir_new(&self.root.join(&id))? {
                self.experiment_meta(&id, name, now_ms()).write(&self.staging())?;
                return Ok(ExperimentId(id));
            }
            n += 1;
        }
    }

    fn ensure_experiment_tag(&self, experiment: &ExperimentId, key: &str, value: &str) -> Result<bool, PortError> {
        check_key("experiment tag", key)?;
        let _guard = self.lock();
        let dir = self.experiment_dir(experiment)?;
        let path = dir.join("tags").join(key);
        if path.exists() {
            return Ok(false);
        }
        create_dir_all(&dir.join("tags"))?;
        write_atomic(&self.staging(), &path, value.as_bytes())?;
        Ok(true)
    }

    /// As MLflow's file store: the dataset once per experiment in `<exp>/datasets/<id>/meta.yaml`, and the run's
    /// input in `<run>/inputs/<id>/meta.yaml` (with MLflow's own `destination_id`, which repeats the dataset's id).
    fn log_dataset(&self, run: &RunId, dataset: &DatasetInput) -> Result<(), PortError> {
        let _guard = self.lock();
        let loc = self.active_run(run)?;
        let experiment = loc.meta.string("experiment_id")?;
        let dataset_id = short_hash(&[&dataset.name, &dataset.digest]);
        let dataset_dir = self.root.join(&experiment).join(DATASETS).join(&dataset_id);
        if Meta::read(&dataset_dir.join(META))?.is_none() {
            create_dir_all(&dataset_dir)?;
            let meta = Meta::new(
                dataset_dir.join(META),
                vec![
                    ("digest".into(), Yaml::str(&dataset.digest)),
                    ("name".into(), Yaml::str(&dataset.name)),
                    ("profile".into(), Yaml::str(&dataset.profile)),
                    ("schema".into(), Yaml::str(&dataset.schema)),
                    ("source".into(), Yaml::str(&dataset.source)),
                    ("source_type".into(), Yaml::str(&dataset.source_type)),
                ],
            );
            meta.write(&self.staging())?;
        }
        let input_dir = loc.dir.join("inputs").join(short_hash(&[&dataset_id, &run.0]));
        if Meta::read(&input_dir.join(META))?.is_none() {
            create_dir_all(&input_dir)?;
            let context = if dataset.context.is_empty() {
                Yaml::Map(Vec::new())
            } else {
                Yaml::Map(vec![(DATASET_CONTEXT_TAG.into(), Yaml::str(&dataset.context))])
            };
            let meta = Meta::new(
                input_dir.join(META),
                vec![
                    ("destination_id".into(), Yaml::str(&dataset_id)),
                    ("destination_type".into(), Yaml::str("RUN")),
                    ("source_id".into(), Yaml::str(&dataset_id)),
                    ("source_type".into(), Yaml::str("DATASET")),
                    ("tags".into(), context),
                ],
            );
            meta.write(&self.staging())?;
        }
        Ok(())
    }

    fn create_run(
        &self,
        experiment: &ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
        start_time_ms: i64,
    ) -> Result<RunInfo, PortError> {
        for (key, _) in tags {
            check_key("tag", key)?;
        }
        let tag_name = tags.iter().rev().find(|(k, _)| k == RUN_NAME_TAG).map(|(_, v)| v.clone());
        let run_name = match tag_name {
            Some(t) if !run_name.is_empty() && t != run_name => {
                return Err(PortError::new(
                    Code::ConfigInvalid,
                    format!("run name '{run_name}' differs from the {RUN_NAME_TAG} tag '{t}'"),
                ));
            }
            Some(t) => t,
            None => run_name.to_string(),
        };
        let _guard = self.lock();
        let exp_id = &experiment.0;
        self.experiment_dir(experiment)?;
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.root.join(exp_id).join(&run_id);
        if !create_dir_new(&dir)? {
            return Err(PortError::new(Code::Internal, format!("run folder {} already exists", dir.display())));
        }
        for sub in ["metrics", "params", "tags", "artifacts"] {
            create_dir_all(&dir.join(sub))?;
        }
        let mut all_tags: BTreeMap<&str, &str> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if !run_name.is_empty() {
            all_tags.insert(RUN_NAME_TAG, &run_name);
        }
        for (key, value) in &all_tags {
            self.write_tag(&dir, key, value)?;
        }
        let user = all_tags.get(USER_TAG).copied().unwrap_or("");
        let artifact_uri = format!("mlflow-artifacts:/{exp_id}/{run_id}/artifacts");
        let meta = Meta::new(
            dir.join(META),
            vec![
                ("artifact_uri".into(), Yaml::str(&artifact_uri)),
                ("end_time".into(), Yaml::Null),
                ("entry_point_name".into(), Yaml::str("")),
                ("experiment_id".into(), Yaml::str(exp_id)),
                ("lifecycle_stage".into(), Yaml::str("active")),
                ("run_id".into(), Yaml::str(&run_id)),
                ("run_name".into(), Yaml::str(&run_name)),
                ("source_name".into(), Yaml::str("")),
                ("source_type".into(), Yaml::Int(4)),
                ("source_version".into(), Yaml::str("")),
                ("start_time".into(), Yaml::Int(start_time_ms)),
                ("status".into(), Yaml::Int(status_code(RunStatus::Running))),
                ("tags".into(), Yaml::EmptyList),
                ("user_id".into(), Yaml::str(user)),
            ],
        );
        self.hold_run_lock(&run_id, &dir)?;
        // meta.yaml last: a run folder without it is skipped by readers, so a crash before this leaves no half run
        meta.write(&self.staging())?;
        Ok(RunInfo {
            run_id: RunId(run_id),
            experiment_id: experiment.clone(),
            run_name,
            status: RunStatus::Running,
            start_time_ms,
            end_time_ms: None,
            artifact_uri,
        })
    }

    fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<(), PortError> {
        for (key, _) in params {
            check_key("param", key)?;
        }
        let _guard = self.lock();
        let loc = self.active_run(run)?;
        let dir = loc.dir.join("params");
        let changed = |key: &str, old: &str, new: &str| {
            PortError::new(
                Code::AlreadyExists,
                format!("param '{key}' of run {} is already '{old}'; params cannot change (new value '{new}')", run.0),
            )
        };
        let mut pending: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, value) in params {
            if let Some(prev) = pending.get(key.as_str()) {
                if prev != value {
                    return Err(changed(key, prev, value));
                }
                continue;
            }
            match read_text(&dir.join(key))? {
                Some(old) if old != *value => return Err(changed(key, &old, value)),
                Some(_) => {}
                None => {
                    pending.insert(key, value);
                }
            }
        }
        for (key, value) in pending {
            let path = dir.join(key);
            if let Some(parent) = path.parent() {
                create_dir_all(parent)?;
            }
            write_atomic(&self.staging(), &path, value.as_bytes())?;
        }
        Ok(())
    }

    fn log_metrics(&self, run: &RunId, metrics: &[MetricPoint]) -> Result<(), PortError> {
        for point in metrics {
            check_key("metric", &point.key)?;
        }
        let _guard = self.lock();
        let loc = self.active_run(run)?;
        let dir = loc.dir.join("metrics");
        let mut by_key: BTreeMap<&str, String> = BTreeMap::new();
        for p in metrics {
            let lines = by_key.entry(&p.key).or_default();
            lines.push_str(&format!("{} {} {}\n", p.timestamp_ms, pyyaml::python_float_repr(p.value), p.step));
        }
        for (key, lines) in by_key {
            let path = dir.join(key);
            if let Some(parent) = path.parent() {
                create_dir_all(parent)?;
            }
            let mut text = read_text(&path)?.unwrap_or_else(String::new);
            if !text.is_empty() && !text.ends_with('\n') {
                return Err(PortError::new(
                    Code::StoreCorrupt,
                    format!("{}: the last metric line is incomplete", path.display()),
                ));
            }
            text.push_str(&lines);
            write_atomic(&self.staging(), &path, text.as_bytes())?;
        }
        Ok(())
    }

    fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<(), PortError> {
        for (key, _) in tags {
            check_key("tag", key)?;
        }
        let _guard = self.lock();
        let mut loc = self.active_run(run)?;
        for (key, value) in tags {
            self.write_tag(&loc.dir, key, value)?;
        }
        if let Some((_, name)) = tags.iter().rev().find(|(k, _)| k == RUN_NAME_TAG) {
            loc.meta.set("run_name", Yaml::str(name));
            loc.meta.write(&self.staging())?;
        }
        Ok(())
    }

    fn end_run(&self, run: &RunId, status: RunStatus, end_time_ms: i64) -> Result<(), PortError> {
        let _guard = self.lock();
        let mut loc = self.active_run(run)?;
        loc.meta.set("status", Yaml::Int(status_code(status)));
        loc.meta.set("end_time", Yaml::Int(end_time_ms));
        loc.meta.write(&self.staging())?;
        if status != RunStatus::Running {
            self.release_run_lock(&run.0, &loc.dir)?;
        }
        Ok(())
    }

    fn get_run(&self, run: &RunId) -> Result<RunInfo, PortError> {
        let loc = self.find_run(run)?;
        self.run_info(&loc)
    }
}

#[cfg(test)]
mod tests;
