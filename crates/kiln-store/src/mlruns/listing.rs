//! Listing the local store as MLflow's file store reads it: the active experiments, the active runs of one, and the
//! registered model names. `kiln sync` walks the store with these; they read only and never repair anything.
//! A folder MLflow would ignore (no `meta.yaml`, or an id that differs from its folder name) is left out here too.

use kiln_domain::{Code, DATASET_CONTEXT_TAG, DatasetInput, ExperimentId, PortError, RunId, RunInfo};

use super::fsio::{self, Meta};
use super::{DATASETS, LocalStore, META, MODELS, RunLoc};

/// Numeric ids in numeric order, the rest after them by text.
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn is_deleted(meta: &Meta) -> Result<bool, PortError> {
    Ok(meta.opt_string("lifecycle_stage")?.as_deref() == Some("deleted"))
}

impl LocalStore {
    /// The active experiments as `(id, name)`, ordered by id (the Default experiment `0` first). Experiments in
    /// `.trash/` or marked deleted are left out.
    ///
    /// # Errors
    /// `store_io` when the root cannot be listed, `store_corrupt` for an unreadable `meta.yaml`.
    pub fn experiments(&self) -> Result<Vec<(ExperimentId, String)>, PortError> {
        let mut out = Vec::new();
        for id in self.experiment_dirs(&self.root)? {
            let Some(meta) = Meta::read(&self.root.join(&id).join(META))? else {
                continue;
            };
            if is_deleted(&meta)? || meta.string("experiment_id")? != id {
                continue;
            }
            out.push((ExperimentId(id), meta.string("name")?));
        }
        out.sort_by(|a, b| id_order(&a.0.0, &b.0.0));
        Ok(out)
    }

    /// The experiment's tags (`<exp>/tags/<key>`), by key.
    ///
    /// # Errors
    /// `not_found` for an unknown experiment, `store_io` when a tag cannot be read.
    pub fn experiment_tags(&self, experiment: &ExperimentId) -> Result<Vec<(String, String)>, PortError> {
        let dir = self.experiment_dir(experiment)?.join("tags");
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        Self::read_kv_dir(&dir)
    }

    /// The datasets the run read, as they were logged (`<run>/inputs/*/meta.yaml` pointing into the experiment's
    /// `datasets/`).
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_corrupt` for an input whose dataset is missing or unreadable.
    pub fn datasets(&self, run: &RunId) -> Result<Vec<DatasetInput>, PortError> {
        let loc = self.find_run(run)?;
        let experiment = self.root.join(loc.meta.string("experiment_id")?);
        let inputs = loc.dir.join("inputs");
        let mut out = Vec::new();
        if !inputs.is_dir() {
            return Ok(out);
        }
        for (name, is_dir) in fsio::list_names(&inputs)? {
            if !is_dir {
                continue;
            }
            let Some(input) = Meta::read(&inputs.join(&name).join(META))? else {
                continue;
            };
            if input.opt_string("source_type")?.as_deref() != Some("DATASET") {
                continue;
            }
            let id = input.string("source_id")?;
            let path = experiment.join(DATASETS).join(&id).join(META);
            let dataset = Meta::read(&path)?.ok_or_else(|| {
                PortError::new(
                    Code::StoreCorrupt,
                    format!("{}: dataset {id} of the run's input is missing", path.display()),
                )
            })?;
            // an input logged without a context stays without one (an empty context is not sent)
            let context = input.map_string("tags", DATASET_CONTEXT_TAG)?.unwrap_or_default();
            out.push(DatasetInput {
                name: dataset.string("name")?,
                digest: dataset.string("digest")?,
                source_type: dataset.string("source_type")?,
                source: dataset.string("source")?,
                schema: dataset.opt_string("schema")?.unwrap_or_default(),
                profile: dataset.opt_string("profile")?.unwrap_or_default(),
                context,
            });
        }
        Ok(out)
    }

    /// The active runs of an experiment (runs marked deleted are left out), oldest start first.
    ///
    /// # Errors
    /// `not_found` for an unknown or deleted experiment, `store_io` when a folder cannot be listed,
    /// `store_corrupt` for an unreadable run `meta.yaml`.
    pub fn runs(&self, experiment: &ExperimentId) -> Result<Vec<RunInfo>, PortError> {
        let id = &experiment.0;
        let known = self.experiment_dirs(&self.root)?.contains(id)
            && Meta::read(&self.root.join(id).join(META))?.map(|m| is_deleted(&m)).transpose()? == Some(false);
        if !known {
            return Err(PortError::not_found(format!("experiment '{id}' not found in {}", self.root.display())));
        }
        let exp_dir = self.root.join(id);
        let mut out = Vec::new();
        for (name, is_dir) in fsio::list_names(&exp_dir)? {
            // `tags/` holds the experiment's tags, `models/` its MLflow 3 logged models, `datasets/` its datasets
            if !is_dir || name == "tags" || name == MODELS || name == DATASETS || name.starts_with('.') {
                continue;
            }
            let dir = exp_dir.join(&name);
            let Some(meta) = Meta::read(&dir.join(META))? else {
                continue;
            };
            if is_deleted(&meta)? {
                continue;
            }
            let info = self.run_info(&RunLoc { dir, meta })?;
            if info.run_id.0 != name || info.experiment_id.0 != *id {
                continue;
            }
            out.push(info);
        }
        out.sort_by(|a, b| a.start_time_ms.cmp(&b.start_time_ms).then_with(|| a.run_id.0.cmp(&b.run_id.0)));
        Ok(out)
    }

    /// The names of the registered models, sorted.
    ///
    /// # Errors
    /// `store_io` when `models/` cannot be listed, `store_corrupt` for an unreadable `meta.yaml`.
    pub fn registered_models(&self) -> Result<Vec<String>, PortError> {
        let dir = self.root.join(MODELS);
        let mut out = Vec::new();
        for (name, is_dir) in fsio::list_names(&dir)? {
            if !is_dir || name.starts_with('.') {
                continue;
            }
            let Some(meta) = Meta::read(&dir.join(&name).join(META))? else {
                continue;
            };
            let recorded = meta.opt_string("name")?;
            if recorded.as_deref().is_some_and(|n| n != name) {
                return Err(PortError::new(
                    Code::StoreCorrupt,
                    format!(
                        "{}: name '{}' differs from its folder '{name}'",
                        meta.path.display(),
                        recorded.unwrap_or_default()
                    ),
                ));
            }
            out.push(name);
        }
        Ok(out)
    }
}
