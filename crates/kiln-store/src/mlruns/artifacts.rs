//! The local store's artifacts: plain files under the run's artifact folder, written atomically, listed like
//! MLflow's `artifacts/list` (paths relative to the artifact root, directories without a size).

use std::fs;
use std::path::{Path, PathBuf};

use kiln_domain::{ArtifactEntry, ArtifactStore, Code, PortError, RunId};

use super::fsio::{self, Meta, artifact_segments, copy_atomic, create_dir_all, io_error, write_atomic};
use super::pyyaml::Yaml;
use super::{LocalStore, META, MODELS, now_ms};

/// The status code MLflow writes for a logged model whose files are all there (`LOGGED_MODEL_READY`).
const LOGGED_MODEL_READY: i64 = 2;

fn join(base: &Path, segments: &[&str]) -> PathBuf {
    segments.iter().fold(base.to_path_buf(), |p, s| p.join(s))
}

impl LocalStore {
    fn artifact_root(&self, run: &RunId) -> Result<PathBuf, PortError> {
        let loc = self.find_run(run)?;
        self.artifact_dir_of(&loc)
    }

    fn put_tree(&self, local: &Path, target: &Path) -> Result<(), PortError> {
        create_dir_all(target)?;
        for (name, _) in fsio::list_names(local)? {
            let source = local.join(&name);
            // follow symlinks: the artifact store holds plain files
            let meta = fs::metadata(&source).map_err(|e| io_error("read", &source, &e))?;
            if meta.is_dir() {
                self.put_tree(&source, &target.join(&name))?;
            } else if meta.is_file() {
                copy_atomic(&self.staging(), &source, &target.join(&name))?;
            } else {
                return Err(PortError::io(format!("{} is neither a file nor a folder", source.display())));
            }
        }
        Ok(())
    }
}

impl LocalStore {
    /// The folder of the logged model `model_id` (`<exp>/models/<model_id>`, its files under `artifacts/`) and its
    /// `meta.yaml`.
    ///
    /// # Errors
    /// `not_found` when no experiment holds a logged model of that id.
    pub(crate) fn logged_model(&self, model_id: &str) -> Result<(PathBuf, Meta), PortError> {
        let valid = model_id.starts_with("m-") && model_id[2..].chars().all(|c| c.is_ascii_alphanumeric());
        if valid {
            for exp in self.experiment_dirs(&self.root)? {
                let dir = self.root.join(exp).join(MODELS).join(model_id);
                if let Some(meta) = Meta::read(&dir.join(META))? {
                    return Ok((dir, meta));
                }
            }
        }
        Err(PortError::not_found(format!("logged model '{model_id}' not found in {}", self.root.display())))
    }

    /// Adds `name` version `version` to the logged model's `mlflow.modelVersions` tag (a JSON list, as MLflow keeps
    /// it), which MLflow's UI shows as the model's versions.
    pub(crate) fn tag_model_version(&self, model_id: &str, name: &str, version: u64) -> Result<(), PortError> {
        let (dir, _) = self.logged_model(model_id)?;
        let path = dir.join("tags").join("mlflow.modelVersions");
        let mut versions: Vec<serde_json::Value> = match fsio::read_text(&path)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                PortError::new(Code::StoreCorrupt, format!("{}: not a JSON list of versions: {e}", path.display()))
            })?,
            None => Vec::new(),
        };
        let entry = serde_json::json!({"name": name, "version": version});
        if !versions.contains(&entry) {
            versions.push(entry);
        }
        // Python's json.dumps spacing, as MLflow writes it
        let items: Vec<String> =
            versions.iter().map(|v| format!("{{\"name\": {}, \"version\": {}}}", v["name"], v["version"])).collect();
        create_dir_all(&dir.join("tags"))?;
        write_atomic(&self.staging(), &path, format!("[{}]", items.join(", ")).as_bytes())
    }

    /// The folder holding the files of the logged model `model_id`.
    ///
    /// # Errors
    /// `not_found` when no experiment holds a logged model of that id.
    pub fn logged_model_dir(&self, model_id: &str) -> Result<PathBuf, PortError> {
        Ok(self.logged_model(model_id)?.0.join("artifacts"))
    }

    /// The artifact path in its run that the logged model `model_id` was logged from (its name, `model`).
    ///
    /// # Errors
    /// `not_found` for an unknown model, `store_corrupt` for a `meta.yaml` without a name.
    pub(crate) fn logged_model_name(&self, model_id: &str) -> Result<String, PortError> {
        self.logged_model(model_id)?.1.string("name")
    }
}

fn copy_tree(source: &Path, dest: &Path) -> Result<(), PortError> {
    create_dir_all(dest)?;
    for (name, is_dir) in fsio::list_names(source)? {
        let from = source.join(&name);
        let to = dest.join(&name);
        if is_dir {
            copy_tree(&from, &to)?;
        } else {
            fs::copy(&from, &to).map_err(|e| io_error("copy", &from, &e))?;
        }
    }
    Ok(())
}

impl ArtifactStore for LocalStore {
    fn put_bytes(&self, run: &RunId, path: &str, bytes: &[u8]) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        if segments.is_empty() {
            return Err(PortError::new(Code::ConfigInvalid, "an artifact file path must not be empty"));
        }
        let _guard = self.lock();
        let target = join(&self.artifact_root(run)?, &segments);
        if let Some(parent) = target.parent() {
            create_dir_all(parent)?;
        }
        write_atomic(&self.staging(), &target, bytes)
    }

    fn put_dir(&self, run: &RunId, path: &str, local_dir: &Path) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        if !local_dir.is_dir() {
            return Err(PortError::not_found(format!("local folder {} not found", local_dir.display())));
        }
        let _guard = self.lock();
        let target = join(&self.artifact_root(run)?, &segments);
        self.put_tree(local_dir, &target)
    }

    /// The bundle goes into the run's artifacts (so `runs:/<run>/<path>` works) and into an MLflow 3 logged model in
    /// MLflow's file-store layout: `<exp>/models/m-<hex>/artifacts/` with a `meta.yaml` written last, READY (a crash
    /// leaves no half model that a reader would take), and the run's `outputs/<model_id>/meta.yaml` linking it.
    fn log_model(
        &self,
        run: &RunId,
        path: &str,
        local_dir: &Path,
        model_type: &str,
    ) -> Result<Option<String>, PortError> {
        self.put_dir(run, path, local_dir)?;
        let name = artifact_segments(path)?.join("/");
        let _guard = self.lock();
        let loc = self.find_run(run)?;
        let experiment = loc.meta.string("experiment_id")?;
        let model_id = format!("m-{}", uuid::Uuid::new_v4().simple());
        let dir = self.root.join(&experiment).join(MODELS).join(&model_id);
        self.put_tree(local_dir, &dir.join("artifacts"))?;
        for sub in ["metrics", "params"] {
            create_dir_all(&dir.join(sub))?;
        }
        let now = now_ms();
        Meta::new(
            dir.join(META),
            vec![
                (
                    "artifact_location".into(),
                    Yaml::str(format!("mlflow-artifacts:/{experiment}/{MODELS}/{model_id}/artifacts")),
                ),
                ("creation_timestamp".into(), Yaml::Int(now)),
                ("experiment_id".into(), Yaml::str(&experiment)),
                ("last_updated_timestamp".into(), Yaml::Int(now)),
                ("model_id".into(), Yaml::str(&model_id)),
                ("model_type".into(), Yaml::str(model_type)),
                ("name".into(), Yaml::str(&name)),
                ("source_run_id".into(), Yaml::str(&run.0)),
                ("status".into(), Yaml::Int(LOGGED_MODEL_READY)),
                ("status_message".into(), Yaml::Null),
            ],
        )
        .write(&self.staging())?;
        let output = loc.dir.join("outputs").join(&model_id);
        create_dir_all(&output)?;
        Meta::new(
            output.join(META),
            vec![
                ("destination_id".into(), Yaml::str(&model_id)),
                ("destination_type".into(), Yaml::str("MODEL_OUTPUT")),
                ("source_id".into(), Yaml::str(&model_id)),
                ("source_type".into(), Yaml::str("RUN_OUTPUT")),
                ("step".into(), Yaml::Int(0)),
                ("tags".into(), Yaml::Map(Vec::new())),
            ],
        )
        .write(&self.staging())?;
        Ok(Some(model_id))
    }

    fn download_logged_model(&self, model_id: &str, dest: &Path) -> Result<(), PortError> {
        copy_tree(&self.logged_model_dir(model_id)?, dest)
    }

    fn list(&self, run: &RunId, path: &str) -> Result<Vec<ArtifactEntry>, PortError> {
        let segments = artifact_segments(path)?;
        let dir = join(&self.artifact_root(run)?, &segments);
        let prefix = segments.join("/");
        let mut out = Vec::new();
        if !dir.is_dir() {
            // as MLflow: listing a missing path or a file gives nothing
            return Ok(out);
        }
        for (name, is_dir) in fsio::list_names(&dir)? {
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            let size = if is_dir {
                None
            } else {
                let file = dir.join(&name);
                Some(fs::metadata(&file).map_err(|e| io_error("inspect", &file, &e))?.len())
            };
            out.push(ArtifactEntry { path: rel, is_dir, size });
        }
        Ok(out)
    }

    fn download_dir(&self, run: &RunId, path: &str, dest: &Path) -> Result<(), PortError> {
        let segments = artifact_segments(path)?;
        let source = join(&self.artifact_root(run)?, &segments);
        if source.is_dir() {
            copy_tree(&source, dest)
        } else if source.is_file() {
            create_dir_all(dest)?;
            let name = segments.last().copied().unwrap_or("artifact");
            fs::copy(&source, dest.join(name)).map_err(|e| io_error("copy", &source, &e))?;
            Ok(())
        } else {
            Err(PortError::not_found(format!("artifact path '{path}' of run {} not found", run.0)))
        }
    }
}
