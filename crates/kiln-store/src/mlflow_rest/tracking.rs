//! Experiments, runs, params, metrics and tags over `/api/2.0/mlflow/...`.

use std::collections::HashMap;

use kiln_domain::{
    ArtifactStore, Code, DATASET_CONTEXT_TAG, DatasetInput, ExperimentId, MetricPoint, PortError, RunId, RunInfo,
    RunStatus, Tracker,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Field, RestStore, Retry};

/// The server's limits per `runs/log-batch` call.
const MAX_METRICS: usize = 1000;
const MAX_PARAMS_OR_TAGS: usize = 100;
/// Longer param and tag values are cut silently by the server (or refused where it runs with
/// `MLFLOW_TRUNCATE_LONG_VALUES=false`).
pub(crate) const MAX_PARAM_VALUE: usize = 6000;
pub(crate) const MAX_TAG_VALUE: usize = 8000;
const MAX_KEY: usize = 250;

/// `info.status`; a run MLflow has scheduled but not started counts as running.
fn status_of(info: &Field<'_>) -> Result<RunStatus, PortError> {
    match info.str("status")? {
        "RUNNING" | "SCHEDULED" => Ok(RunStatus::Running),
        "FINISHED" => Ok(RunStatus::Finished),
        "FAILED" => Ok(RunStatus::Failed),
        "KILLED" => Ok(RunStatus::Killed),
        _ => Err(info.invalid("status", "a run status (RUNNING, SCHEDULED, FINISHED, FAILED or KILLED)")),
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
fn key_value_list(items: &[Field<'_>]) -> Result<Vec<(String, String)>, PortError> {
    let mut out = items
        .iter()
        .map(|kv| Ok((kv.str("key")?.to_string(), kv.str("value")?.to_string())))
        .collect::<Result<Vec<_>, PortError>>()?;
    out.sort();
    Ok(out)
}

/// A `Run` message's `info`.
pub(crate) fn run_info(run: &Field<'_>) -> Result<RunInfo, PortError> {
    let info = run.object("info")?;
    Ok(RunInfo {
        run_id: RunId(info.str("run_id")?.to_string()),
        experiment_id: ExperimentId(info.str("experiment_id")?.to_string()),
        run_name: info.str("run_name")?.to_string(),
        status: status_of(&info)?,
        start_time_ms: info.int("start_time")?,
        // absent until the run ends
        end_time_ms: info.opt_int("end_time")?,
        artifact_uri: info.str("artifact_uri")?.to_string(),
    })
}

/// For a value longer than `limit` characters: the artifact path that will hold it whole and the value to log
/// instead (its beginning and a note naming that artifact, `limit` characters in all). The path carries a digest of
/// the value, so two long values that share their beginning give two different logged values (the server then sees
/// a param change) and never overwrite each other's artifact.
fn cut_value(what: &str, key: &str, value: &str, limit: usize) -> Option<(String, String)> {
    if value.chars().count() <= limit {
        return None;
    }
    let safe: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let digest = hex::encode(&Sha256::digest(value.as_bytes())[..8]);
    let path = format!("kiln/long_values/{what}.{safe}.{digest}.txt");
    let note = format!("... [cut at {limit} characters; the whole value is the artifact {path}]");
    let keep = limit.saturating_sub(note.chars().count());
    let cut = value.chars().take(keep).chain(note.chars()).collect();
    Some((path, cut))
}

/// One param as it will be logged.
struct ParamToLog<'a> {
    key: &'a str,
    /// the value sent to the server (cut when too long)
    value: String,
    /// for a cut value: the artifact path that keeps it whole, and the whole value
    whole: Option<(String, &'a str)>,
}

/// The server's rule for param, metric and tag keys, checked before anything is sent (`config_invalid`, as in the
/// local store): 1 to 250 characters, alphanumerics, `_ - . / :` and spaces, and a normalised relative path (no
/// empty, `.` or `..` segment, not absolute). The colon is the one difference from the local store, which refuses it
/// as MLflow's file store does on Windows.
fn check_key(what: &str, key: &str) -> Result<(), PortError> {
    let invalid = |why: &str| PortError::new(Code::ConfigInvalid, format!("invalid {what} key '{key}': {why}"));
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.chars().count() > MAX_KEY {
        return Err(invalid(&format!("it is longer than {MAX_KEY} characters")));
    }
    if let Some(c) = key.chars().find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | ':'))) {
        return Err(invalid(&format!(
            "'{c}' is not allowed (only alphanumerics, underscores, dashes, periods, colons, spaces and slashes)"
        )));
    }
    if key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return Err(invalid("it must be a normalised relative path (no leading '/', '//', '.' or '..')"));
    }
    Ok(())
}

/// `params` with each key once (the server refuses a key twice in one request, even with the same value); a key
/// given twice with different values is refused here, before anything is written.
fn unique_params<'a>(run: &RunId, params: &'a [(String, String)]) -> Result<Vec<&'a (String, String)>, PortError> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut unique: Vec<&(String, String)> = Vec::with_capacity(params.len());
    for pair in params {
        let (k, v) = pair;
        check_key("param", k)?;
        match seen.insert(k, v) {
            None => unique.push(pair),
            Some(prev) if prev == v => {}
            Some(prev) => {
                return Err(PortError::new(
                    Code::AlreadyExists,
                    format!("param '{k}' of run {run} is given twice with different values ('{prev}', '{v}')"),
                ));
            }
        }
    }
    Ok(unique)
}

/// The server's answer to a param logged before with another value, as `already_exists`.
fn param_changed(e: PortError) -> PortError {
    if e.message.contains("Changing param values is not allowed") {
        PortError::new(Code::AlreadyExists, e.message)
    } else {
        e
    }
}

/// Metric points as `runs/log-batch` takes them, each key checked.
fn metric_items(metrics: &[MetricPoint]) -> Result<Vec<Value>, PortError> {
    let mut items = Vec::with_capacity(metrics.len());
    for m in metrics {
        check_key("metric", &m.key)?;
        items.push(json!({"key": m.key, "value": metric_value(m.value), "timestamp": m.timestamp_ms, "step": m.step}));
    }
    Ok(items)
}

impl RestStore {
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

    /// The values to log for `pairs`: a value the server would cut or refuse is first written whole as an artifact
    /// (see [`cut_value`]), and the logged value says where.
    fn key_values(
        &self,
        run: &RunId,
        what: &str,
        pairs: &[(String, String)],
        limit: usize,
    ) -> Result<Vec<Value>, PortError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            check_key(what, k)?;
            let logged = match cut_value(what, k, v, limit) {
                Some((path, cut)) => {
                    self.put_bytes(run, &path, v.as_bytes())?;
                    cut
                }
                None => v.clone(),
            };
            out.push(json!({"key": k, "value": logged}));
        }
        Ok(out)
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
            let answer = self.answer(&v, "POST", "runs/search");
            for run in answer.list("runs")? {
                out.push(run_info(&run)?);
            }
            token = answer.next_page_token()?;
            if token.is_none() {
                return Ok(out);
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
            let answer = self.answer(&v, "GET", "metrics/get-history");
            for m in answer.list("metrics")? {
                let value = metric_from_json(&m.value()["value"]).ok_or_else(|| {
                    PortError::new(
                        Code::StoreCorrupt,
                        format!("metric '{key}' of run {run}: value {} is not a number", m.value()["value"]),
                    )
                })?;
                out.push(MetricPoint {
                    key: key.to_string(),
                    value,
                    timestamp_ms: m.int("timestamp")?,
                    step: m.int("step")?,
                });
            }
            token = answer.next_page_token()?;
            if token.is_none() {
                break;
            }
        }
        if out.is_empty() {
            // the server answers an empty history for an unknown run too
            self.get_run(run)?;
        }
        Ok(out)
    }

    /// A run's params, sorted by key, as the server has them (a value cut by kiln ends with the note that names the
    /// artifact holding the whole value).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn params(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        self.run_data_list(run, "params")
    }

    /// A run's tags, sorted by key, as the server has them (including the `mlflow.*` tags the server adds).
    ///
    /// # Errors
    /// `not_found` for an unknown run.
    pub fn tags(&self, run: &RunId) -> Result<Vec<(String, String)>, PortError> {
        self.run_data_list(run, "tags")
    }

    /// `run.data.<list>` of `runs/get` as sorted pairs.
    fn run_data_list(&self, run: &RunId, list: &str) -> Result<Vec<(String, String)>, PortError> {
        let v = self.call("GET", "runs/get", &[("run_id", &run.0)], None, Retry::Idempotent)?;
        let answer = self.answer(&v, "GET", "runs/get");
        // `data` is left out when the run has no params, metrics or tags
        match answer.object("run")?.opt_object("data")? {
            Some(data) => key_value_list(&data.list(list)?),
            None => Ok(Vec::new()),
        }
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
        let answer = self.answer(&v, "GET", "runs/get");
        // `data` is left out when the run has no params, metrics or tags
        Ok(answer.object("run")?.opt_object("data")?.map_or_else(|| json!({}), |d| d.value().clone()))
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
                    let exp = self.answer(&v, "GET", "experiments/get-by-name").object("experiment")?;
                    if exp.str("lifecycle_stage")? == "deleted" {
                        return Err(PortError::new(
                            Code::AlreadyExists,
                            format!(
                                "experiment '{name}' exists on {} but is deleted; restore it or delete it permanently",
                                self.uri()
                            ),
                        ));
                    }
                    return Ok(ExperimentId(exp.str("experiment_id")?.to_string()));
                }
                Err(e) if e.code == Code::NotFound => {}
                Err(e) => return Err(e),
            }
            match self.call("POST", "experiments/create", &[], Some(&json!({"name": name})), Retry::ConnectOnly) {
                Ok(v) => {
                    let id = self.answer(&v, "POST", "experiments/create").str("experiment_id")?;
                    return Ok(ExperimentId(id.to_string()));
                }
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

    fn ensure_experiment_tag(&self, experiment: &ExperimentId, key: &str, value: &str) -> Result<bool, PortError> {
        check_key("experiment tag", key)?;
        let v = self.call("GET", "experiments/get", &[("experiment_id", &experiment.0)], None, Retry::Idempotent)?;
        let exp = self.answer(&v, "GET", "experiments/get").object("experiment")?;
        for tag in exp.list("tags")? {
            if tag.str("key")? == key {
                return Ok(false);
            }
        }
        let body = json!({"experiment_id": experiment.0, "key": key, "value": value});
        self.call("POST", "experiments/set-experiment-tag", &[], Some(&body), Retry::Idempotent)?;
        Ok(true)
    }

    fn log_dataset(&self, run: &RunId, dataset: &DatasetInput) -> Result<(), PortError> {
        let tags: Vec<Value> = (!dataset.context.is_empty())
            .then(|| json!({"key": DATASET_CONTEXT_TAG, "value": dataset.context}))
            .into_iter()
            .collect();
        let body = json!({"run_id": run.0, "datasets": [{
            "dataset": {
                "name": dataset.name, "digest": dataset.digest, "source_type": dataset.source_type,
                "source": dataset.source, "schema": dataset.schema, "profile": dataset.profile,
            },
            "tags": tags,
        }]});
        self.call("POST", "runs/log-inputs", &[], Some(&body), Retry::Idempotent).map(|_| ())
    }

    fn create_run(
        &self,
        experiment: &ExperimentId,
        run_name: &str,
        tags: &[(String, String)],
        start_time_ms: i64,
    ) -> Result<RunInfo, PortError> {
        let user = tags.iter().rev().find(|(k, _)| k == "mlflow.user").map_or("", |(_, v)| v.as_str());
        for (k, _) in tags {
            check_key("tag", k)?;
        }
        if let Some((_, tag)) = tags.iter().rev().find(|(k, _)| k == "mlflow.runName")
            && !run_name.is_empty()
            && tag != run_name
        {
            return Err(PortError::new(
                Code::ConfigInvalid,
                format!("run name '{run_name}' differs from the mlflow.runName tag '{tag}'"),
            ));
        }
        // a tag too long for the server is set once the run exists, the way set_tags keeps it whole
        let (short, long): (Vec<_>, Vec<_>) = tags.iter().partition(|(_, v)| v.chars().count() <= MAX_TAG_VALUE);
        let tag_list: Vec<Value> = short.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let body = json!({
            "experiment_id": experiment.0, "run_name": run_name, "start_time": start_time_ms,
            "user_id": user, "tags": tag_list,
        });
        let v = self.call("POST", "runs/create", &[], Some(&body), Retry::ConnectOnly)?;
        let info = run_info(&self.answer(&v, "POST", "runs/create").object("run")?)?;
        if let Some(path) = super::artifacts::proxy_path(&info.artifact_uri) {
            self.runs.lock().unwrap_or_else(|p| p.into_inner()).insert(info.run_id.0.clone(), path);
        }
        if !long.is_empty() {
            let long: Vec<(String, String)> = long.into_iter().cloned().collect();
            self.set_tags(&info.run_id, &long)?;
        }
        Ok(info)
    }

    fn log_params(&self, run: &RunId, params: &[(String, String)]) -> Result<(), PortError> {
        let unique = unique_params(run, params)?;
        let mut logged: Vec<ParamToLog<'_>> = unique
            .into_iter()
            .map(|(k, v)| match cut_value("param", k, v, MAX_PARAM_VALUE) {
                Some((path, cut)) => ParamToLog { key: k, value: cut, whole: Some((path, v)) },
                None => ParamToLog { key: k, value: v.clone(), whole: None },
            })
            .collect();
        if logged.len() > MAX_PARAMS_OR_TAGS || logged.iter().any(|p| p.whole.is_some()) {
            // several requests, or artifacts to write first: the server would refuse a change only in the request
            // that holds it, after the others (and the artifacts) were written, so look first
            let existing: HashMap<String, String> = self.params(run)?.into_iter().collect();
            for p in &mut logged {
                match existing.get(p.key) {
                    Some(old) if *old != p.value => {
                        return Err(PortError::new(
                            Code::AlreadyExists,
                            format!("param '{}' of run {run} is already '{old}'; params cannot change", p.key),
                        ));
                    }
                    // logged before, with its artifact
                    Some(_) => p.whole = None,
                    None => {}
                }
            }
        }
        for p in &logged {
            if let Some((path, whole)) = &p.whole {
                self.put_bytes(run, path, whole.as_bytes())?;
            }
        }
        let items: Vec<Value> = logged.iter().map(|p| json!({"key": p.key, "value": p.value})).collect();
        self.log_batch(run, "params", items, MAX_PARAMS_OR_TAGS, Retry::Idempotent).map_err(param_changed)
    }

    fn log_metrics(&self, run: &RunId, metrics: &[MetricPoint]) -> Result<(), PortError> {
        self.log_batch(run, "metrics", metric_items(metrics)?, MAX_METRICS, Retry::ConnectOnly)
    }

    fn log_batch(
        &self,
        run: &RunId,
        params: &[(String, String)],
        metrics: &[MetricPoint],
        tags: &[(String, String)],
    ) -> Result<(), PortError> {
        // one request where the server's limits allow it and no value has to be kept whole as an artifact first
        let one_request = params.len() <= MAX_PARAMS_OR_TAGS
            && tags.len() <= MAX_PARAMS_OR_TAGS
            && params.len() + metrics.len() + tags.len() <= MAX_METRICS
            && params.iter().all(|(k, v)| cut_value("param", k, v, MAX_PARAM_VALUE).is_none())
            && tags.iter().all(|(k, v)| cut_value("tag", k, v, MAX_TAG_VALUE).is_none());
        if !one_request {
            self.log_params(run, params)?;
            self.log_metrics(run, metrics)?;
            return if tags.is_empty() { Ok(()) } else { self.set_tags(run, tags) };
        }
        let params: Vec<Value> =
            unique_params(run, params)?.into_iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let tags = self.key_values(run, "tag", tags, MAX_TAG_VALUE)?;
        let body = json!({"run_id": run.0, "params": params, "metrics": metric_items(metrics)?, "tags": tags});
        // not retried once sent: the metric points would be logged twice
        self.call("POST", "runs/log-batch", &[], Some(&body), Retry::ConnectOnly).map(|_| ()).map_err(param_changed)
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
        run_info(&self.answer(&v, "GET", "runs/get").object("run")?)
    }
}

#[cfg(test)]
mod tests;
