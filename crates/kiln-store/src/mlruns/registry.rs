//! The local store's model registry, in MLflow's layout: `models/<name>/meta.yaml`, `version-<n>/meta.yaml`
//! (version as an integer) and `aliases/<alias>` files holding the version number. Version numbers are claimed with
//! `create_dir`, which fails when the folder exists, so concurrent writers never share a number.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use kiln_domain::{Code, ModelRegistry, ModelVersion, PortError, RunId, Stage};

use super::fsio::{self, Meta, create_dir_all, io_error, read_text, sync_parent, write_atomic};
use super::pyyaml::Yaml;
use super::{LocalStore, META, MODELS, now_ms};

const ALIASES: &str = "aliases";

fn invalid(message: String) -> PortError {
    PortError::new(Code::ModelRefInvalid, message)
}

/// MLflow's registered-model name rules for the file store: not blank, no `/`, `:`, `%` or `\`, and a normalised
/// single path segment.
fn check_model_name(name: &str) -> Result<(), PortError> {
    if name.trim().is_empty() {
        return Err(invalid("registered model name must not be empty".to_string()));
    }
    if name.contains(['/', ':', '%', '\\']) {
        return Err(invalid(format!(
            "invalid registered model name '{name}': it must not contain '/', ':', '%' or '\\'"
        )));
    }
    if name == "." || name.starts_with("..") {
        return Err(invalid(format!("invalid registered model name '{name}': it must not be '.' or start with '..'")));
    }
    Ok(())
}

/// `archive_existing` only makes sense when moving into Staging or Production (the server answers a 500 otherwise).
pub(crate) fn check_archive_target(stage: Stage, archive_existing: bool) -> Result<(), PortError> {
    if archive_existing && !matches!(stage, Stage::Staging | Stage::Production) {
        return Err(invalid(format!(
            "archive_existing needs the target stage Staging or Production, not {}",
            stage.as_str()
        )));
    }
    Ok(())
}

/// MLflow's alias characters: `[A-Za-z0-9_-]` (Unicode word characters), not empty.
pub(crate) fn check_alias_chars(alias: &str) -> Result<(), PortError> {
    if alias.is_empty() {
        return Err(invalid("alias must not be empty".to_string()));
    }
    if !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(format!(
            "invalid alias '{alias}': only alphanumerics, underscores (_) and dashes (-) are allowed"
        )));
    }
    Ok(())
}

/// MLflow's rules for a new alias: its characters, at most 255 of them, and not a reserved name (`latest` in any
/// case, `v<digits>`). Both stores check them, so both refuse the same alias with the same message.
pub(crate) fn check_alias(alias: &str) -> Result<(), PortError> {
    check_alias_chars(alias)?;
    if alias.chars().count() > 255 {
        return Err(invalid(format!("invalid alias '{alias}': longer than 255 characters")));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(invalid(format!("alias '{alias}' is reserved ('latest' in any case)")));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V')) && alias.len() > 1 && chars.all(|c| c.is_ascii_digit()) {
        return Err(invalid(format!("alias '{alias}' is reserved (v<digits> names a version)")));
    }
    Ok(())
}

fn version_dir_name(version: u64) -> String {
    format!("version-{version}")
}

impl LocalStore {
    fn models_dir(&self) -> PathBuf {
        self.root.join(MODELS)
    }

    /// The folder of an existing registered model.
    fn model_dir(&self, name: &str) -> Result<PathBuf, PortError> {
        check_model_name(name)?;
        let dir = self.models_dir().join(name);
        if Meta::read(&dir.join(META))?.is_none() {
            return Err(PortError::not_found(format!("registered model '{name}' not found")));
        }
        Ok(dir)
    }

    fn touch_model(&self, model_dir: &Path, now: i64) -> Result<(), PortError> {
        let path = model_dir.join(META);
        let mut meta = Meta::read(&path)?
            .ok_or_else(|| PortError::new(Code::StoreCorrupt, format!("{} vanished", path.display())))?;
        meta.set("last_updated_timestamp", Yaml::Int(now));
        meta.write(&self.staging())
    }

    /// Version numbers present under a model folder (folders without a `meta.yaml` are left out).
    fn version_numbers(model_dir: &Path) -> Result<Vec<u64>, PortError> {
        let mut out = Vec::new();
        for (name, is_dir) in fsio::list_names(model_dir)? {
            if let Some(n) = name.strip_prefix("version-").and_then(|n| n.parse::<u64>().ok())
                && is_dir
                && model_dir.join(&name).join(META).is_file()
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Alias name -> version, from the `aliases/` files.
    fn aliases(model_dir: &Path) -> Result<Vec<(String, u64)>, PortError> {
        let dir = model_dir.join(ALIASES);
        let mut out = Vec::new();
        for alias in fsio::walk_files(&dir)? {
            let path = dir.join(&alias);
            let text = read_text(&path)?.ok_or_else(|| PortError::io(format!("{} vanished", path.display())))?;
            let version = text.trim().parse::<u64>().map_err(|_| {
                PortError::new(Code::StoreCorrupt, format!("{}: '{text}' is not a version number", path.display()))
            })?;
            out.push((alias, version));
        }
        Ok(out)
    }

    fn read_version(
        &self,
        name: &str,
        model_dir: &Path,
        version: u64,
    ) -> Result<Option<(Meta, ModelVersion)>, PortError> {
        let Some(meta) = Meta::read(&model_dir.join(version_dir_name(version)).join(META))? else {
            return Ok(None);
        };
        let stage_text = meta.string("current_stage")?;
        let stage = Stage::parse(&stage_text).ok_or_else(|| {
            PortError::new(Code::StoreCorrupt, format!("{}: unknown stage '{stage_text}'", meta.path.display()))
        })?;
        let aliases = Self::aliases(model_dir)?.into_iter().filter(|(_, v)| *v == version).map(|(a, _)| a).collect();
        let mv = ModelVersion {
            name: name.to_string(),
            version,
            source: meta.string("source")?,
            run_id: meta.opt_string("run_id")?.filter(|r| !r.is_empty()).map(RunId),
            stage,
            aliases,
            creation_time_ms: meta.opt_int("creation_timestamp")?.unwrap_or(0),
            description: meta.opt_string("description")?.unwrap_or_else(String::new),
        };
        Ok(Some((meta, mv)))
    }

    fn existing_version(&self, name: &str, version: u64) -> Result<(PathBuf, Meta, ModelVersion), PortError> {
        let model_dir = self.model_dir(name)?;
        match self.read_version(name, &model_dir, version)? {
            Some((meta, mv)) => Ok((model_dir, meta, mv)),
            None => Err(PortError::not_found(format!("version {version} of registered model '{name}' not found"))),
        }
    }
}

impl ModelRegistry for LocalStore {
    fn ensure_registered_model(&self, name: &str) -> Result<(), PortError> {
        check_model_name(name)?;
        let _guard = self.lock();
        create_dir_all(&self.models_dir())?;
        let dir = self.models_dir().join(name);
        if Meta::read(&dir.join(META))?.is_some() {
            return Ok(());
        }
        // the model folder appears whole (with its meta.yaml) or not at all: MLflow's file store fails every
        // registry listing on a model folder without one
        let now = now_ms();
        let staged = fsio::StagedDir::new(&self.staging())?;
        let meta = Meta::new(
            staged.path().join(META),
            vec![
                ("creation_timestamp".into(), Yaml::Int(now)),
                ("description".into(), Yaml::str("")),
                ("last_updated_timestamp".into(), Yaml::Int(now)),
                ("name".into(), Yaml::str(name)),
            ],
        );
        meta.write(&self.staging())?;
        // another writer may have created it meanwhile: theirs stays
        staged.publish(&dir)?;
        Ok(())
    }

    fn create_version(
        &self,
        name: &str,
        source: &str,
        run_id: &RunId,
        model_id: Option<&str>,
    ) -> Result<ModelVersion, PortError> {
        // a logged model's version points at it, as on a server (`models:/<model_id>`, `model_id`, and where its files
        // are as `storage_location`)
        let storage = match model_id {
            Some(id) => {
                let (_, logged) = self.logged_model(id)?;
                if source != format!("models:/{id}") {
                    return Err(invalid(format!("a version of logged model '{id}' has the source 'models:/{id}'")));
                }
                Some((id, logged.string("artifact_location")?))
            }
            None => None,
        };
        if run_id.0.is_empty() || !run_id.0.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(format!("invalid run id '{}' for a model version", run_id.0)));
        }
        if source.is_empty() {
            return Err(invalid("a model version needs a source".to_string()));
        }
        let _guard = self.lock();
        let model_dir = self.model_dir(name)?;
        let mut version = Self::version_numbers(&model_dir)?.last().copied().unwrap_or(0) + 1;
        let now = now_ms();
        let mut entries = vec![
            ("creation_timestamp".into(), Yaml::Int(now)),
            ("current_stage".into(), Yaml::str(Stage::None.as_str())),
            ("description".into(), Yaml::str("")),
            ("last_updated_timestamp".into(), Yaml::Int(now)),
            ("name".into(), Yaml::str(name)),
            ("run_id".into(), Yaml::str(&run_id.0)),
            ("run_link".into(), Yaml::str("")),
            ("source".into(), Yaml::str(source)),
            ("status".into(), Yaml::str("READY")),
            ("status_message".into(), Yaml::Null),
            ("user_id".into(), Yaml::str("")),
            ("version".into(), Yaml::Int(i64::try_from(version).unwrap_or(i64::MAX))),
        ];
        if let Some((id, location)) = &storage {
            entries.push(("model_id".into(), Yaml::str(*id)));
            entries.push(("storage_location".into(), Yaml::str(location)));
        }
        // the version folder is built beside the store and renamed into place: it appears whole or not at all (MLflow's
        // file store fails every listing on a version folder without its meta.yaml). The rename also claims the
        // number: it fails when another writer took it, and the next number is tried.
        let staged = fsio::StagedDir::new(&self.staging())?;
        loop {
            let version_entry = ("version".to_string(), Yaml::Int(i64::try_from(version).unwrap_or(i64::MAX)));
            let mut entries = entries.clone();
            if let Some(slot) = entries.iter_mut().find(|(k, _)| k == "version") {
                *slot = version_entry;
            }
            Meta::new(staged.path().join(META), entries).write(&self.staging())?;
            if staged.publish(&model_dir.join(version_dir_name(version)))? {
                break;
            }
            version += 1;
        }
        if let Some((id, _)) = &storage {
            self.tag_model_version(id, name, version)?;
        }
        self.touch_model(&model_dir, now)?;
        Ok(ModelVersion {
            name: name.to_string(),
            version,
            source: source.to_string(),
            run_id: Some(run_id.clone()),
            stage: Stage::None,
            aliases: Vec::new(),
            creation_time_ms: now,
            description: String::new(),
        })
    }

    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError> {
        Ok(self.existing_version(name, version)?.2)
    }

    fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, PortError> {
        let model_dir = self.model_dir(name)?;
        let mut out = Vec::new();
        for n in Self::version_numbers(&model_dir)? {
            if let Some((_, mv)) = self.read_version(name, &model_dir, n)? {
                out.push(mv);
            }
        }
        Ok(out)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<(), PortError> {
        check_alias(alias)?;
        let _guard = self.lock();
        let (model_dir, _, _) = self.existing_version(name, version)?;
        let dir = model_dir.join(ALIASES);
        create_dir_all(&dir)?;
        write_atomic(&self.staging(), &dir.join(alias), version.to_string().as_bytes())?;
        self.touch_model(&model_dir, now_ms())
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PortError> {
        if alias.is_empty() || !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(format!("invalid alias '{alias}'")));
        }
        let _guard = self.lock();
        let model_dir = self.model_dir(name)?;
        let path = model_dir.join(ALIASES).join(alias);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PortError::not_found(format!("alias '{alias}' of registered model '{name}' not found")));
            }
            Err(e) => return Err(io_error("remove", &path, &e)),
        }
        sync_parent(&path)?;
        self.touch_model(&model_dir, now_ms())
    }

    fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, PortError> {
        if alias.is_empty() || !alias.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(invalid(format!("invalid alias '{alias}'")));
        }
        let model_dir = self.model_dir(name)?;
        let path = model_dir.join(ALIASES).join(alias);
        let text = read_text(&path)?
            .ok_or_else(|| PortError::not_found(format!("alias '{alias}' of registered model '{name}' not found")))?;
        let version = text.trim().parse::<u64>().map_err(|_| {
            PortError::new(Code::StoreCorrupt, format!("{}: '{text}' is not a version number", path.display()))
        })?;
        self.existing_version(name, version).map(|(_, _, mv)| mv).map_err(|e| {
            if e.code == Code::NotFound {
                PortError::new(
                    Code::StoreCorrupt,
                    format!(
                        "alias '{alias}' of registered model '{name}' points at version {version}, which does not exist"
                    ),
                )
            } else {
                e
            }
        })
    }

    fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, PortError> {
        check_archive_target(stage, archive_existing)?;
        let _guard = self.lock();
        let (model_dir, mut meta, mut mv) = self.existing_version(name, version)?;
        let now = now_ms();
        if archive_existing {
            for other in Self::version_numbers(&model_dir)? {
                if other == version {
                    continue;
                }
                if let Some((mut other_meta, other_mv)) = self.read_version(name, &model_dir, other)?
                    && other_mv.stage == stage
                {
                    other_meta.set("current_stage", Yaml::str(Stage::Archived.as_str()));
                    other_meta.set("last_updated_timestamp", Yaml::Int(now));
                    other_meta.write(&self.staging())?;
                }
            }
        }
        meta.set("current_stage", Yaml::str(stage.as_str()));
        meta.set("last_updated_timestamp", Yaml::Int(now));
        meta.write(&self.staging())?;
        self.touch_model(&model_dir, now)?;
        mv.stage = stage;
        Ok(mv)
    }

    /// MLflow's file store keeps a version's tags as files `version-<n>/tags/<key>`.
    fn set_version_tag(&self, name: &str, version: u64, key: &str, value: &str) -> Result<(), PortError> {
        fsio::check_key("tag", key)?;
        let _guard = self.lock();
        let (model_dir, _, _) = self.existing_version(name, version)?;
        let dir = model_dir.join(version_dir_name(version)).join("tags");
        create_dir_all(&dir)?;
        write_atomic(&self.staging(), &dir.join(key), value.as_bytes())
    }
}
