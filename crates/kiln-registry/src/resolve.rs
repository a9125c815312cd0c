//! Resolving a [`ModelRef`] to where the bundle is: a run's artifact folder, or a local folder.
//!
//! Key decisions, following MLflow's `models:/` URIs: `@alias` is the version the alias points at; a stage is the
//! highest version in that stage; `latest` is the highest version of any stage (Archived included, as MLflow's
//! `get_latest_versions` without stages). A version's `source` is parsed as `runs:/<run>/<path>`,
//! `mlflow-artifacts:/<exp>/<run>/artifacts/<path>`, or any URI containing `/<run>/artifacts/` for the version's
//! own run id (a file store's absolute path, `s3://...`); a logged-model source (`models:/m-...`, what MLflow 3 and
//! kiln on a server register) resolves to that logged model.

use kiln_domain::{ModelRef, ModelRegistry, ModelVersion, RunId, VersionSelector};

use crate::RegistryError;
use crate::names::{check_run_id, clean_artifact_path, explain};

/// A bundle in a run's artifacts.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub run_id: RunId,
    /// relative to the run's artifact root, without leading or trailing `/`; empty for the root itself
    pub artifact_path: String,
    /// the registered version, for a `models:/` reference; `None` for `runs:/`
    pub version: Option<ModelVersion>,
}

/// Where a reference points.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Run(Resolved),
    /// an MLflow 3 logged model (a version whose source is `models:/<model_id>`)
    LoggedModel {
        model_id: String,
        version: ModelVersion,
    },
    /// a bundle folder on the local disk, as written in the reference
    Folder(String),
}

/// Resolves `reference` through the registry (only `models:/` references touch it).
///
/// # Errors
/// [`RegistryError::NoSuchModel`], [`RegistryError::NoSuchAlias`], [`RegistryError::NoSuchStage`],
/// [`RegistryError::NoSuchVersion`], [`RegistryError::NoVersions`], [`RegistryError::BadSource`], or
/// [`RegistryError::Port`] naming the reference.
pub fn resolve(registry: &dyn ModelRegistry, reference: &ModelRef) -> Result<Resolution, RegistryError> {
    match reference {
        ModelRef::Folder(path) => Ok(Resolution::Folder(path.clone())),
        ModelRef::Run { run_id, path } => {
            check_run_id(&run_id.0)?;
            let artifact_path = clean_artifact_path(path)?;
            Ok(Resolution::Run(Resolved { run_id: run_id.clone(), artifact_path, version: None }))
        }
        ModelRef::Registered { name, selector } => {
            let version = select(registry, reference, name, selector)?;
            if let Some(model_id) = logged_model_id(&version)? {
                return Ok(Resolution::LoggedModel { model_id, version });
            }
            let (run_id, artifact_path) = parse_source(&version)?;
            Ok(Resolution::Run(Resolved { run_id, artifact_path, version: Some(version) }))
        }
    }
}

fn select(
    registry: &dyn ModelRegistry,
    reference: &ModelRef,
    name: &str,
    selector: &VersionSelector,
) -> Result<ModelVersion, RegistryError> {
    let context = format!("resolving {reference}");
    let owned = || name.to_string();
    let all = || {
        registry
            .list_versions(name)
            .map_err(|e| explain(registry, name, e, &context, || RegistryError::NoSuchModel { name: owned() }))
    };
    match selector {
        VersionSelector::Alias(alias) => registry.version_by_alias(name, alias).map_err(|e| {
            explain(registry, name, e, &context, || RegistryError::NoSuchAlias { name: owned(), alias: alias.clone() })
        }),
        VersionSelector::Number(version) => registry.get_version(name, *version).map_err(|e| {
            explain(registry, name, e, &context, || RegistryError::NoSuchVersion { name: owned(), version: *version })
        }),
        VersionSelector::Stage(stage) => all()?
            .into_iter()
            .filter(|v| v.stage == *stage)
            .max_by_key(|v| v.version)
            .ok_or_else(|| RegistryError::NoSuchStage { name: owned(), stage: *stage }),
        VersionSelector::Latest => {
            all()?.into_iter().max_by_key(|v| v.version).ok_or_else(|| RegistryError::NoVersions { name: owned() })
        }
    }
}

/// The logged-model id of a version whose source is `models:/<id>` (what MLflow 3 registers).
fn logged_model_id(version: &ModelVersion) -> Result<Option<String>, RegistryError> {
    let Some(id) = version.source.strip_prefix("models:/") else {
        return Ok(None);
    };
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(RegistryError::BadSource {
            name: version.name.clone(),
            version: version.version,
            uri: version.source.clone(),
            reason: "expected models:/<logged model id>".to_string(),
        });
    }
    Ok(Some(id.to_string()))
}

/// The run id and artifact path of a version's `source` (see the module doc for the accepted forms).
///
/// # Errors
/// [`RegistryError::BadSource`] for another form, a `..` in the path, or a source whose run differs from the
/// version's `run_id`.
pub fn parse_source(version: &ModelVersion) -> Result<(RunId, String), RegistryError> {
    let uri = version.source.as_str();
    let bad = |reason: String| RegistryError::BadSource {
        name: version.name.clone(),
        version: version.version,
        uri: uri.to_string(),
        reason,
    };
    let (run, path) = if let Some(rest) = uri.strip_prefix("runs:/") {
        rest.split_once('/').unwrap_or((rest, ""))
    } else if let Some(rest) = uri.strip_prefix("mlflow-artifacts:") {
        // mlflow-artifacts:/<exp>/<run>/artifacts/<path>, or with an authority: mlflow-artifacts://host:port/<exp>/...
        let rest = match rest.strip_prefix("//") {
            Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
            None => rest.trim_start_matches('/'),
        };
        let mut parts = rest.splitn(4, '/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(_exp), Some(run), Some("artifacts"), path) => (run, path.unwrap_or("")),
            _ => {
                return Err(bad("expected mlflow-artifacts:/<experiment>/<run>/artifacts/<path>".to_string()));
            }
        }
    } else if uri.starts_with("models:/") {
        return Err(bad(
            "a logged-model source; kiln resolves versions whose source is in a run's artifacts (runs:/<run>/<path>)"
                .to_string(),
        ));
    } else {
        let Some(run) = version.run_id.as_ref() else {
            return Err(bad(
                "the version has no run id, and the source is neither runs:/ nor mlflow-artifacts:/".into()
            ));
        };
        let marker = format!("/{}/artifacts", run.0);
        let Some(at) = uri.find(&marker) else {
            return Err(bad(format!("expected runs:/<run>/<path> or a URI containing {marker}/")));
        };
        let after = &uri[at + marker.len()..];
        if !(after.is_empty() || after.starts_with('/')) {
            return Err(bad(format!("expected runs:/<run>/<path> or a URI containing {marker}/")));
        }
        (run.0.as_str(), after)
    };
    if let Err(e) = check_run_id(run) {
        return Err(bad(e.to_string()));
    }
    let path = clean_artifact_path(path).map_err(|e| bad(e.to_string()))?;
    if let Some(own) = &version.run_id
        && own.0 != run
    {
        return Err(bad(format!("the source names run {run} but the version belongs to run {}", own.0)));
    }
    Ok((RunId(run.to_string()), path))
}
