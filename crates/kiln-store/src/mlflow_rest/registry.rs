//! The model registry over `/api/2.0/mlflow/registered-models/...` and `/model-versions/...`.

use kiln_domain::{Code, ModelRegistry, ModelVersion, PortError, RunId, Stage};
use serde_json::json;

use super::{Field, RestStore, Retry};
use crate::mlruns::{check_alias, check_alias_chars, check_archive_target};

/// A version number, which MLflow sends as a string.
fn version_number(f: &Field<'_>, key: &str) -> Result<u64, PortError> {
    f.str(key)?.parse::<u64>().map_err(|_| f.invalid(key, "a version number"))
}

/// A `ModelVersion` message (`model_version`, or an item of `model_versions`).
fn version_of(v: &Field<'_>) -> Result<ModelVersion, PortError> {
    let version = version_number(v, "version")?;
    let current_stage = v.str("current_stage")?;
    Ok(ModelVersion {
        name: v.str("name")?.to_string(),
        version,
        source: v.str("source")?.to_string(),
        // absent for a version registered without a run
        run_id: v.opt_str("run_id")?.filter(|r| !r.is_empty()).map(|r| RunId(r.to_string())),
        stage: Stage::parse(current_stage)
            .ok_or_else(|| v.invalid("current_stage", "a stage (None, Staging, Production or Archived)"))?,
        aliases: v.list("aliases")?.iter().map(|a| a.as_str().map(str::to_string)).collect::<Result<_, _>>()?,
        creation_time_ms: v.int("creation_timestamp")?,
        // absent when the version has none
        description: v.opt_str("description")?.unwrap_or_default().to_string(),
    })
}

fn invalid(message: String) -> PortError {
    PortError::new(Code::ModelRefInvalid, message)
}

impl RestStore {
    /// Every registered model name, sorted.
    ///
    /// # Errors
    /// `store_io` or what the server answers.
    pub fn registered_models(&self) -> Result<Vec<String>, PortError> {
        let mut names = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("max_results", "1000".to_string())];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let v = self.call("GET", "registered-models/search", &q, None, Retry::Idempotent)?;
            let answer = self.answer(&v, "GET", "registered-models/search");
            for m in answer.list("registered_models")? {
                names.push(m.str("name")?.to_string());
            }
            token = answer.next_page_token()?;
            if token.is_none() {
                break;
            }
        }
        names.sort();
        Ok(names)
    }

    fn model_exists(&self, name: &str) -> Result<(), PortError> {
        self.call("GET", "registered-models/get", &[("name", name)], None, Retry::Idempotent).map(|_| ()).map_err(|e| {
            if e.code == Code::NotFound {
                PortError::not_found(format!("no registered model '{name}' on {}", self.uri()))
            } else {
                e
            }
        })
    }
}

impl ModelRegistry for RestStore {
    fn ensure_registered_model(&self, name: &str) -> Result<(), PortError> {
        if name.trim().is_empty() {
            return Err(invalid("registered model name must not be empty".to_string()));
        }
        match self.call("POST", "registered-models/create", &[], Some(&json!({"name": name})), Retry::ConnectOnly) {
            Ok(_) => Ok(()),
            Err(e) if e.code == Code::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn create_version(
        &self,
        name: &str,
        source: &str,
        run_id: &RunId,
        model_id: Option<&str>,
    ) -> Result<ModelVersion, PortError> {
        let mut body = json!({"name": name, "source": source, "run_id": run_id.0});
        if let Some(id) = model_id {
            body["model_id"] = json!(id);
        }
        let v = self.call("POST", "model-versions/create", &[], Some(&body), Retry::ConnectOnly)?;
        version_of(&self.answer(&v, "POST", "model-versions/create").object("model_version")?)
    }

    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError> {
        let n = version.to_string();
        let v = self.call("GET", "model-versions/get", &[("name", name), ("version", &n)], None, Retry::Idempotent)?;
        version_of(&self.answer(&v, "GET", "model-versions/get").object("model_version")?)
    }

    fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, PortError> {
        self.model_exists(name)?;
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("filter", filter.clone()), ("max_results", "10000".to_string())];
            if let Some(t) = &token {
                query.push(("page_token", t.clone()));
            }
            let q: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let v = self.call("GET", "model-versions/search", &q, None, Retry::Idempotent)?;
            let answer = self.answer(&v, "GET", "model-versions/search");
            for mv in answer.list("model_versions")? {
                out.push(version_of(&mv)?);
            }
            token = answer.next_page_token()?;
            if token.is_none() {
                break;
            }
        }
        // the search may leave aliases out: take them from the registered model
        let model = self.call("GET", "registered-models/get", &[("name", name)], None, Retry::Idempotent)?;
        let aliases = self
            .answer(&model, "GET", "registered-models/get")
            .object("registered_model")?
            .list("aliases")?
            .iter()
            .map(|a| Ok((a.str("alias")?.to_string(), version_number(a, "version")?)))
            .collect::<Result<Vec<(String, u64)>, PortError>>()?;
        for v in &mut out {
            for (alias, version) in &aliases {
                if *version == v.version && !v.aliases.contains(alias) {
                    v.aliases.push(alias.clone());
                }
            }
            v.aliases.sort();
        }
        out.sort_by_key(|v| v.version);
        Ok(out)
    }

    fn set_alias(&self, name: &str, alias: &str, version: u64) -> Result<(), PortError> {
        check_alias(alias)?;
        let body = json!({"name": name, "alias": alias, "version": version.to_string()});
        self.call("POST", "registered-models/alias", &[], Some(&body), Retry::Idempotent).map(|_| ())
    }

    fn delete_alias(&self, name: &str, alias: &str) -> Result<(), PortError> {
        check_alias_chars(alias)?;
        // the server answers {} for an alias that is not set: check first, so both stores agree
        self.version_by_alias(name, alias)?;
        let body = json!({"name": name, "alias": alias});
        self.call("DELETE", "registered-models/alias", &[], Some(&body), Retry::Idempotent).map(|_| ())
    }

    fn version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion, PortError> {
        check_alias_chars(alias)?;
        match self.call("GET", "registered-models/alias", &[("name", name), ("alias", alias)], None, Retry::Idempotent)
        {
            Ok(v) => version_of(&self.answer(&v, "GET", "registered-models/alias").object("model_version")?),
            // an unknown alias is a 400 INVALID_PARAMETER_VALUE "... not found." on the server
            Err(e) if e.code == Code::StoreRejected && e.message.contains("not found") => {
                Err(PortError::not_found(format!("model '{name}' has no alias '{alias}' on {}", self.uri())))
            }
            Err(e) => Err(e),
        }
    }

    fn transition_stage(
        &self,
        name: &str,
        version: u64,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, PortError> {
        check_archive_target(stage, archive_existing)?;
        let body = json!({
            "name": name, "version": version.to_string(), "stage": stage.as_str(),
            "archive_existing_versions": archive_existing,
        });
        let v = self.call("POST", "model-versions/transition-stage", &[], Some(&body), Retry::Idempotent)?;
        version_of(&self.answer(&v, "POST", "model-versions/transition-stage").object("model_version")?)
    }

    fn set_version_tag(&self, name: &str, version: u64, key: &str, value: &str) -> Result<(), PortError> {
        // checked first, so both stores refuse an unknown version with the same not_found
        self.get_version(name, version)?;
        let body = json!({"name": name, "version": version.to_string(), "key": key, "value": value});
        self.call("POST", "model-versions/set-tag", &[], Some(&body), Retry::Idempotent).map(|_| ())
    }
}

#[cfg(test)]
mod tests;
