//! Loading the bundle a model reference points at, and asking which version a `models:/` reference points at now.

use std::path::PathBuf;

use kiln_domain::{ArtifactStore, ModelRef, ModelVersion};
use kiln_features::FittedPipeline;
use kiln_models::Bundle;
use kiln_registry::{Resolution, Resolved};

use crate::error::{Error, Result};
use crate::store::{self, Opened};

/// A verified bundle and what it was loaded as.
#[derive(Debug)]
pub struct LoadedBundle {
    /// the fitted pipeline and model, every file's checksum verified
    pub bundle: Bundle<FittedPipeline>,
    /// the reference as given, with the training run when the bundle records one: `models:/churn@production (run
    /// 3f2a...)`
    pub label: String,
    /// the registered version a `models:/` reference resolved to; `None` for `runs:/` references and folders
    pub version: Option<ModelVersion>,
    /// exactly what was loaded, so that two loads can be compared: `runs:/<run id>/<artifact path>` for a run's
    /// artifacts (in the tracking store the reference was resolved in), `models:/<logged model id>` for an MLflow 3
    /// logged model on a server, or the folder as written in the reference
    pub source: String,
}

/// Loads the bundle `reference` points at and verifies every file's checksum.
///
/// `reference` is `models:/<name>@<alias>`, `models:/<name>/<stage|version|latest>`, `runs:/<run id>/<path>` or a
/// bundle folder. A folder is read in place; anything else is resolved in the tracking store `tracking_uri` names
/// (see [`open_store`](crate::open_store)). From a folder store the bundle is read where it lies; from a server it
/// is downloaded into the content-addressed cache under [`cache_dir`](crate::cache_dir) (a second load of the same
/// bundle downloads nothing) and one line on stderr says `downloaded <reference> (...)` or `cached <reference>
/// (...)`.
///
/// # Errors
/// [`Error::Domain`] for a malformed reference (naming it); [`Error::Registry`] when the model, alias, stage or
/// version does not exist; [`Error::Store`], [`Error::OpenStore`], [`Error::TrackingUri`] or
/// [`Error::Environment`] for the store; [`Error::Fetch`] when a download fails; [`Error::Bundle`] (naming the
/// reference) for a missing, incomplete or altered bundle.
pub fn load_bundle(reference: &str, tracking_uri: &str) -> Result<LoadedBundle> {
    let parsed = ModelRef::parse(reference)?;
    let (dir, version, source) = match &parsed {
        ModelRef::Folder(p) => (PathBuf::from(p), None, p.clone()),
        _ => {
            let opened = store::open_store(tracking_uri)?;
            let resolution = kiln_registry::resolve(opened.as_store(), &parsed)?;
            let version = version_of(&resolution);
            let source = source_of(&resolution);
            let dir = match (&opened, resolution) {
                (_, Resolution::Folder(p)) => PathBuf::from(p),
                (Opened::Local(local), Resolution::Run(resolved)) => {
                    let mut dir = local.artifact_dir(&resolved.run_id)?;
                    for part in resolved.artifact_path.split('/').filter(|p| !p.is_empty()) {
                        dir.push(part);
                    }
                    dir
                }
                (Opened::Local(local), Resolution::LoggedModel { model_id, .. }) => {
                    local.logged_model_dir(&model_id)?
                }
                (Opened::Remote(rest), resolution) => {
                    let (key, what) = match &resolution {
                        Resolution::Run(r) => (
                            format!("{}|run|{}|{}", rest.uri(), r.run_id, r.artifact_path),
                            format!("run {}", r.run_id),
                        ),
                        Resolution::LoggedModel { model_id, .. } => {
                            (format!("{}|model|{model_id}", rest.uri()), format!("logged model {model_id}"))
                        }
                        Resolution::Folder(_) => unreachable!("handled above"),
                    };
                    let cached = store::bundle_cache()
                        .get_or_fetch(&key, |dest| match &resolution {
                            Resolution::Run(r) => rest.download_dir(&r.run_id, &r.artifact_path, dest),
                            Resolution::LoggedModel { model_id, .. } => rest.download_logged_model(model_id, dest),
                            Resolution::Folder(_) => Ok(()),
                        })
                        .map_err(|source| Error::Fetch {
                            reference: reference.to_string(),
                            what: what.clone(),
                            server: rest.uri().to_string(),
                            source,
                        })?;
                    eprintln!(
                        "{} {reference} ({what}): {}",
                        if cached.downloaded { "downloaded" } else { "cached" },
                        cached.dir.display()
                    );
                    cached.dir
                }
            };
            (dir, version, source)
        }
    };
    let bundle = kiln_models::read_bundle::<FittedPipeline>(&dir)
        .map_err(|source| Error::Bundle { reference: reference.to_string(), source })?;
    let label = match &bundle.metadata.run_id {
        Some(run) => format!("{reference} (run {run})"),
        None => reference.to_string(),
    };
    Ok(LoadedBundle { bundle, label, version, source })
}

/// The registered version a `models:/` reference points at now, from the registry alone: nothing is downloaded and
/// no bundle is read, so it is cheap enough to poll (a server's hot reload compares it with the version it serves).
/// `None` for `runs:/` references and folders, which do not move. Unlike [`open_store`](crate::open_store), it
/// writes no pending run statuses to a server.
///
/// # Errors
/// As [`load_bundle`] before any download: a malformed reference, a missing model, alias, stage or version, or the
/// store.
pub fn current_version(reference: &str, tracking_uri: &str) -> Result<Option<ModelVersion>> {
    let parsed = ModelRef::parse(reference)?;
    if !matches!(parsed, ModelRef::Registered { .. }) {
        return Ok(None);
    }
    let opened = store::open_quietly(tracking_uri)?;
    let resolution = kiln_registry::resolve(opened.as_store(), &parsed)?;
    Ok(version_of(&resolution))
}

fn version_of(resolution: &Resolution) -> Option<ModelVersion> {
    match resolution {
        Resolution::Run(r) => r.version.clone(),
        Resolution::LoggedModel { version, .. } => Some(version.clone()),
        Resolution::Folder(_) => None,
    }
}

fn source_of(resolution: &Resolution) -> String {
    match resolution {
        Resolution::Run(Resolved { run_id, artifact_path, .. }) if artifact_path.is_empty() => {
            format!("runs:/{run_id}")
        }
        Resolution::Run(Resolved { run_id, artifact_path, .. }) => format!("runs:/{run_id}/{artifact_path}"),
        Resolution::LoggedModel { model_id, .. } => format!("models:/{model_id}"),
        Resolution::Folder(p) => p.clone(),
    }
}
