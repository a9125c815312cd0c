//! Experiments, runs, params, metrics and tags over `/api/2.0/mlflow/...`.

use kiln_domain::{ArtifactStore, Code, ExperimentId, MetricPoint, PortError, RunId, RunInfo, RunStatus, Tracker};
use serde_json::{Value, json};

use super::{RestStore, Retry, int_field, str_field};

/// The server's limits per `runs/log-batch` call.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS_OR_TAGS: usize = 100;
/// Longer param values are cut silently by the server; longer tag values are refused.
pub(crate) const MAX_PARAM_VALUE: usize = 6000;
pub(crate) const MAX_TAG_VALUE: usize = 8000;
const MAX_KEY: usize = 250;

fn status_of(s: &str) -> RunStatus {
    match s {
        "FINISHED" => RunStatus::Finished,
        "FAILED" => RunStatus::Failed,
        "KILLED" => RunStatus::Killed,
        _ => RunStatus::Running,
    }
}

/// NaN and infinities as the strings MLflow expects (a bare `NaN` token is stored as garbage).
fn metric_value(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

/// A metric value as the server sends it: a number, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn metric_from_json(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// `[{"key": .., "value": ..}, ...]` as pairs sorted by key.
fn key_value_list(v: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v
        .as_array()
        .into_iter()
        .flatten()
        .map(|kv| (str_field(kv, "key").to_string(), str_field(kv, "value").to_string()))
        .collect();
    out.sort();
    out
}

pub(crate) fn run_info(v: &Value) -> RunInfo {
    let info = &v["info"];
    RunInfo {
        run_id: RunId(str_field(info, "run_id").to_string()),
        experiment_id: ExperimentId(str_field(info, "experiment_id").to_string()),
        run_name: str_field(info, "run_name").to_string(),
        status: status_of(str_field(info, "status")),
        start_time_ms: int_field(info, "start_time").unwrap_or(0),
        end_time_ms: int_field(info, "end_time"),
        artifact_uri: str_field(info, "artifact_uri").to_string(),
    }
}

fn check_key(what: &str, key: &str) -> Result<(), PortError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(PortError::new(
            Code::StoreRejected,
            format!("{what} key '{key}' must have 1 to {MAX_KEY} characters for the MLflow server"),
        ));
    }
    Ok(())
}

impl RestStore {
    /// A value the server would cut or refuse is written whole as an artifact, and the logged value says where.
    fn fit_value(&self, run: &RunId, what: &str, key: &str, value: &str, limit: usize) -> Result<String, PortError> {
        if value.chars().count() <= limit {
            return Ok(value.to_string());
        }
        let safe: String =
            key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        let path = format!("kiln/long_values/{what}.{safe}.txt");
        self.put_bytes(run, &path, value.as_bytes())?;
        let note = format!("... [cut at {limit} characters; the whole value is the artifact {path}]");
        let keep = limit - note.chars().count();
        Ok(value.chars().take(keep).chain(note.chars()).collect())
    }

    fn log_batch(
        &self,
        run: &RunId,
        field: &str,
        items: Vec<Value>,
        chunk: usize,
        retry: Retry,
    ) -> Result<(), PortError> {
        for part in items.chunks(chunk) {
            let body = json!({"run_id": run.0, field: part});
            self.call("POST", "runs/log-batch", &[], Some(&body), retry)?;
        }
        Ok(())
    }

    fn key_values(
        &self,
        run: &RunId,
        what: &str,
        pairs: &[(String, String)],
        limit: usize,
    ) -> Result<Vec<Value>, PortError> {
        pairs
            .iter()
            .map(|(k, v)| {
                check_key(what, k)?;
                Ok(json!({"key": k, "value": self.fit_value(run, what, k, v, limit)?}))
            })
            .collect()
    }

    /// Every run of the experiment whose tag `key` equals `value` (the sync finds its earlier copies this way).
    ///
    /// # Errors
    /// `store_io` or what the server answers.
    pub fn search_runs_by_tag(
        &self,
        experiment: &ExperimentId,
        key: &str,
        value: &str,
    ) -> Result<Vec<RunInfo>, PortError> {
        let filter = format!("tags.`{key}` = '{}'", value.replace('\'', "\\'"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"experiment_ids": [experiment.0], "filter": filter, "max_results": 1000, "run_view_type": "ACTIVE_ONLY"});
            if let Some(t) = &token {
                body["page_token"] = json!(t);
            }
            let v = self.call("POST", "runs/search", &[], Some(&body), Retry::Idempotent)?;
            out.extend(v["runs"].as_array().into_iter().flatten().map(run_info));
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// Every logged point of one metric (empty when the metric was never logged), as the server orders them: by
    /// timestamp, then step, then value. NaN comes back as NaN; the server stores +-infinity as +-`f64::MAX`, so that
    /// is what comes back for them.
    ///
    /// # Errors
    /// `not_found` for an unknown run, `store_corrupt` for a value that is not a number.
    pub fn metric_history(&self, run: &RunId, key: &str) -> Result<Vec<MetricPoint>, PortError> {
        check_key("metric", key)?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("run_id", run.0.as_str()), ("metric_key", key)];
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let v = self.call("GET", "metrics/get-history", &query, None, Retry::Idempotent)?;
            for m in v["metrics"].as_array().into_iter().flatten() {
                let value = metric_from_json(&m["value"]).ok_or_else(|| {
                    PortError::new(
                        Code::StoreCorrupt,
                        format!("metric '{key}' of run {run}: value {} is not a number", m["value"]),
                    )
                })?;
                out.push(MetricPoint {
                    key: key.to_string(),
                    value,
                    timestamp_ms: int_field(m, "timestamp").unwrap_or(0),
                    step: int_field(m, "step").unwrap_or(0),
                });
            }
            match v["next_page_token"].as_str() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// A run's params, sorted by key, as the server has them (a value cut by kiln ends with the note that names the
    /// artifact holding the whole value).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        Ok(key_value_list(&self.run_data(run)?["params"]))
    }

    /// A run's tags, sorted by key, as the server has them (including the `mlflow.*` tags the server adds).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        Ok(key_value_list(&self.run_data(run)?["tags"]))
    }

    /// Marks a run deleted (MLflow's soft delete).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn delete_run(&self, run: &RunId) -> Result<(), PortError> {
        self.call("POST", "runs/delete", &[], Some(&json!({"run_id": run.0})), Retry::Idempotent).map(|_| ())
    }

    /// The run's tags, params and latest metrics as the server has them.
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn run_data(&self, run: &RunId) -> Result<Value, PortError> {
        let v = self.call("GET", "runs/get", &[("run_id", &run.0)], None, Retry::Idempotent)?;
        Ok(v["run"]["data"].clone())
    }
}

impl Tracker for RestStore {
    fn experiment_by_name(&self, name: &str) -> Result<ExperimentId, PortError> {
        if name.trim().is_empty() {
            return Err(PortError::new(Code::ConfigInvalid, "experiment name must not be empty"));
        }
        for _ in 0..2 {
            match self.call("GET", "experiments/get-by-name", &[("experiment_name", name)], None, Retry::Idempotent) {
                Ok(v) => {
                    let exp = &v["experiment"];
                    if str_field(exp, "lifecycle_stage") == "deleted" {
                        return Err(PortError::new(
                            Code::AlreadyExists,
                            format!(
                                "experiment '{name}' exists on {} but is deleted; restore it or delete it permanently",
                                self.uri()
                            ),
                        ));
                    }
                    return Ok(ExperimentId(str_field(exp, "experiment_id").to_string()));
                }
                Err(e) if e.code == Code::NotFound => {}
                Err(e) => return Err(e),
            }
            match self.call("POST", "experiments/create", &[], Some(&json!({"name": name})), Retry::ConnectOnly) {
                Ok(v) => return Ok(ExperimentId(str_field(&v, "experiment_id").to_string())),
                // created meanwhile by someone else: read it again
                Err(e) if e.code == Code::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Err(PortError::new(
            Code::StoreIo,
            format!("experiment '{name}' could neither be read nor created on {}", self.uri()),
        ))
    }

    fn create_run(
        &self,
        experiment: &ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
        start_time_ms: i64,
    ) -> Result<RunInfo, PortError> {
        let user = tags.iter().rev().find(|(k, _)| k == "mlflow.user").map_or("", |(_, v)| v.as_str());
        for (k, v) in tags {
            check_key("tag", k)?;
            if v.chars().count() > MAX_TAG_VALUE {
                return Err(PortError::new(
                    Code::StoreRejected,
                    format!("tag '{k}' at run start is longer than {MAX_TAG_VALUE} characters"),
                ));
            }
        }
        let tag_list: Vec<Value> = tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let body = json!({
            "experiment_id": experiment.0, "run_name": run_name, "start_time": start_time_ms,
            "user_id": user, "tags": tag_list,
        });
        let v = self.call("POST", "runs/create", &[], Some(&body), Retry::ConnectOnly)?;
        let info = run_info(&v["run"]);
        if let Some(path) = super::artifacts::proxy_path(&info.artifact_uri) {
            self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(info.run_id.0.clone(), path);
        }
        Ok(info)
    }

    fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<(), PortError> {
        let items = self.key_values(run, "param", params, MAX_PARAM_VALUE)?;
        self.log_batch(run, "params", items, MAX_PARAMS_OR_TAGS, Retry::Idempotent).map_err(|e| {
            if e.message.contains("Changing param values is not allowed") {
                PortError::new(Code::AlreadyExists, e.message)
            } else {
                e
            }
        })
    }

    fn log_metrics(&self, run: &RunId, metrics: &[MetricPoint]) -> Result<(), PortError> {
        let mut items = Vec::with_capacity(metrics.len());
        for m in metrics {
            check_key("metric", &m.key)?;
            items.push(
                json!({"key": m.key, "value": metric_value(m.value), "timestamp": m.timestamp_ms, "step": m.step}),
            );
        }
        self.log_batch(run, "metrics", items, MAX_METRICS, Retry::ConnectOnly)
    }

    fn set_tags(&self, run: &RunId, tags: &[(String, String)]) -> Result<(), PortError> {
        let items = self.key_values(run, "tag", tags, MAX_TAG_VALUE)?;
        self.log_batch(run, "tags", items, MAX_PARAMS_OR_TAGS, Retry::Idempotent)
    }

    fn end_run(&self, run: &RunId, status: RunStatus, end_time_ms: i64) -> Result<(), PortError> {
        let body = json!({"run_id": run.0, "status": status.as_str(), "end_time": end_time_ms});
        self.call("POST", "runs/update", &[], Some(&body), Retry::Idempotent).map(|_| ())
    }

    fn get_run(&self, run: &RunId) -> Result<RunInfo, PortError> {
        let v = self.call("GET", "runs/get", &[("run_id", &run.0)], None, Retry::Idempotent)?;
        Ok(run_info(&v["run"]))
    }
}
