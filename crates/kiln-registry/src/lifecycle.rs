//! Register, promote, roll back and list model versions.
//!
//! Key decision for rollback: the registry keeps no history of where an alias pointed, so rolling back moves the
//! alias to the highest version below the current one that is not `Archived` (an archived version was retired on
//! purpose). To go anywhere else, promote that version explicitly.

use kiln_domain::{ModelRegistry, ModelVersion, RunId, Stage};

use crate::RegistryError;
use crate::names::{check_alias, check_model_name, check_run_id, clean_artifact_path, explain};

/// Where [`promote`] puts a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromoteTarget {
    /// point this alias at the version (moving it from any other version)
    Alias(String),
    /// move the version to this stage; with `archive_existing`, the versions already there move to Archived
    Stage { stage: Stage, archive_existing: bool },
}

/// Registers the bundle at `artifact_path` of run `run_id` as a new version of `name` (created when missing), with
/// the source `runs:/<run_id>/<artifact_path>`, or `models:/<id>` when the store also keeps the bundle as the logged
/// model `logged_model` (MLflow 3).
///
/// # Errors
/// [`RegistryError::Invalid`] for a bad name, run id or path; [`RegistryError::Port`] when the registry fails.
pub fn register(
    registry: &dyn ModelRegistry,
    name: &str,
    run_id: &RunId,
    artifact_path: &str,
    logged_model: Option<&str>,
) -> Result<ModelVersion, RegistryError> {
    check_model_name(name)?;
    check_run_id(&run_id.0)?;
    let path = clean_artifact_path(artifact_path)?;
    if path.is_empty() {
        return Err(RegistryError::Invalid {
            what: "artifact path",
            value: artifact_path.to_string(),
            reason: "the bundle must be in a folder of the run's artifacts, for example 'model'".to_string(),
        });
    }
    let source = match logged_model {
        Some(id) => format!("models:/{id}"),
        None => format!("runs:/{}/{path}", run_id.0),
    };
    registry
        .ensure_registered_model(name)
        .map_err(RegistryError::port(format!("creating registered model '{name}'")))?;
    registry
        .create_version(name, &source, run_id, logged_model)
        .map_err(RegistryError::port(format!("registering {source} as a new version of '{name}'")))
}

/// Points an alias at `version`, or moves it to a stage; returns the version as the registry now has it.
///
/// # Errors
/// [`RegistryError::Invalid`] for a bad name or alias, [`RegistryError::NoSuchModel`] /
/// [`RegistryError::NoSuchVersion`], or [`RegistryError::Port`].
pub fn promote(
    registry: &dyn ModelRegistry,
    name: &str,
    version: u64,
    target: PromoteTarget,
) -> Result<ModelVersion, RegistryError> {
    check_model_name(name)?;
    let no_version = || RegistryError::NoSuchVersion { name: name.to_string(), version };
    match target {
        PromoteTarget::Alias(alias) => {
            check_alias(&alias)?;
            let context = format!("setting alias '{alias}' of '{name}' to version {version}");
            registry.set_alias(name, &alias, version).map_err(|e| explain(registry, name, e, &context, no_version))?;
            registry.get_version(name, version).map_err(|e| explain(registry, name, e, context, no_version))
        }
        PromoteTarget::Stage { stage, archive_existing } => {
            let context = format!("moving version {version} of '{name}' to stage {}", stage.as_str());
            registry
                .transition_stage(name, version, stage, archive_existing)
                .map_err(|e| explain(registry, name, e, context, no_version))
        }
    }
}

/// Moves `alias` back to the highest version below its current one that is not Archived; returns the versions it
/// moved from and to, as the registry now has them.
///
/// # Errors
/// [`RegistryError::NoSuchAlias`] when the alias is not set, [`RegistryError::NoPreviousVersion`] when no version
/// qualifies, [`RegistryError::NoSuchModel`], [`RegistryError::Invalid`] or [`RegistryError::Port`].
pub fn rollback(
    registry: &dyn ModelRegistry,
    name: &str,
    alias: &str,
) -> Result<(ModelVersion, ModelVersion), RegistryError> {
    check_model_name(name)?;
    check_alias(alias)?;
    let current = registry.version_by_alias(name, alias).map_err(|e| {
        explain(registry, name, e, format!("reading alias '{alias}' of '{name}'"), || RegistryError::NoSuchAlias {
            name: name.to_string(),
            alias: alias.to_string(),
        })
    })?;
    let target = versions(registry, name)?
        .into_iter()
        .filter(|v| v.version < current.version && v.stage != Stage::Archived)
        .max_by_key(|v| v.version)
        .ok_or_else(|| RegistryError::NoPreviousVersion {
            name: name.to_string(),
            alias: alias.to_string(),
            current: current.version,
        })?;
    let context = format!("moving alias '{alias}' of '{name}' from version {} to {}", current.version, target.version);
    registry.set_alias(name, alias, target.version).map_err(RegistryError::port(&context))?;
    let from = registry.get_version(name, current.version).map_err(RegistryError::port(&context))?;
    let to = registry.get_version(name, target.version).map_err(RegistryError::port(context))?;
    Ok((from, to))
}

/// Every version of `name`, oldest first.
///
/// # Errors
/// [`RegistryError::NoSuchModel`] for an unknown model, [`RegistryError::Port`] otherwise.
pub fn versions(registry: &dyn ModelRegistry, name: &str) -> Result<Vec<ModelVersion>, RegistryError> {
    check_model_name(name)?;
    registry.list_versions(name).map_err(|e| {
        if e.code == kiln_domain::Code::NotFound {
            RegistryError::NoSuchModel { name: name.to_string() }
        } else {
            RegistryError::port(format!("listing the versions of '{name}'"))(e)
        }
    })
}
