//! The model registry over `/api/2.0/mlflow/registered-models/...` and `/model-versions/...`.

use kiln_domain::{Code, ModelRegistry, ModelVersion, PortError, RunId, Stage};
use serde_json::{Value, json};

use super::{RestStore, Retry, int_field, str_field};
use crate::mlruns::{check_alias, check_alias_chars, check_archive_target};

fn version_of(v: &Value) -> Result<ModelVersion, PortError> {
    let number = str_field(v, "version");
    let version = number.parse::<u64>().map_err(|_| {
        PortError::new(
            Code::StoreCorrupt,
            format!("model version '{number}' of '{}' is not a number", str_field(v, "name")),
        )
    })?;
    let run = str_field(v, "run_id");
    Ok(ModelVersion {
        name: str_field(v, "name").to_string(),
        version,
        source: str_field(v, "source").to_string(),
        run_id: (!run.is_empty()).then(|| RunId(run.to_string())),
        stage: Stage::parse(str_field(v, "current_stage")).unwrap_or(Stage::None),
        aliases: v["aliases"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_string)).collect(),
        creation_time_ms: int_field(v, "creation_timestamp").unwrap_or(0),
        description: str_field(v, "description").to_string(),
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
            names.extend(
                v["registered_models"].as_array().into_iter().flatten().map(|m| str_field(m, "name").to_string()),
            );
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
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
        version_of(&v["model_version"])
    }

    fn get_version(&self, name: &str, version: u64) -> Result<ModelVersion, PortError> {
        let n = version.to_string();
        let v = self.call("GET", "model-versions/get", &[("name", name), ("version", &n)], None, Retry::Idempotent)?;
        version_of(&v["model_version"])
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
            for mv in v["model_versions"].as_array().into_iter().flatten() {
                out.push(version_of(mv)?);
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        // the search may leave aliases out: take them from the registered model
        let model = self.call("GET", "registered-models/get", &[("name", name)], None, Retry::Idempotent)?;
        let aliases: Vec<(String, u64)> = model["registered_model"]["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| Some((str_field(a, "alias").to_string(), str_field(a, "version").parse().ok()?)))
            .collect();
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
            Ok(v) => version_of(&v["model_version"]),
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
        version_of(&v["model_version"])
    }
}
